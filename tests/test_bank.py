import sqlite3

import numpy as np
import pytest

from direction_bank import Bank, BankError
from direction_bank.errors import EncoderMismatch, UnknownConcept
from tests.reference import reference_embeddings

HORSE = [
    "a photo of a horse", "a horse running on a beach", "a brown horse in a stable",
    "a horse grazing in a green field", "two horses in the snow", "a painting of a white horse",
    "a horse jumping over a fence", "a close-up photo of a horse's face",
]
ZEBRA = ["a photo of a zebra", "a zebra on the savanna", "a zebra drinking at a river",
         "a herd of zebras at sunset", "a zebra standing in tall grass"]


@pytest.mark.parametrize("batch_size,runs", [(64, 1), (3, 1), (1, 1), (3, 3)])
def test_stored_mean_equals_direct_mean(bank, encoder, sd_model, batch_size, runs):
    chunks = np.array_split(np.arange(len(HORSE)), runs)
    for chunk in chunks:
        bank.add_sentences("horse", [HORSE[i] for i in chunk], encoder, batch_size=batch_size)
    info = bank.common_encoder("horse", "horse")
    stats = bank.statistics("horse", info)
    direct = reference_embeddings(sd_model, HORSE)
    assert stats.count == len(HORSE)
    np.testing.assert_allclose(stats.mean, direct.mean(0), atol=1e-5)
    np.testing.assert_allclose(stats.variance(), direct.var(0, ddof=1), atol=1e-5)


def test_duplicates_are_skipped_by_content_hash(bank, encoder):
    first = bank.add_sentences("horse", HORSE[:4], encoder)
    again = bank.add_sentences(
        "horse", [HORSE[0], "A photo of a horse.", "  a   horse running on a beach ", HORSE[4], HORSE[4]],
        encoder,
    )
    assert (first.added, first.skipped) == (4, 0)
    assert (again.added, again.skipped, again.sentence_count) == (1, 4, 5)
    assert bank.statistics("horse", bank.common_encoder("horse", "horse")).count == 5


def test_removing_a_sentence_restores_previous_statistics(bank, encoder):
    bank.add_sentences("horse", HORSE[:-1], encoder)
    info = bank.common_encoder("horse", "horse")
    before = bank.statistics("horse", info)
    bank.add_sentences("horse", HORSE[-1:], encoder)
    removed = bank.remove_sentence("horse", lambda _: encoder, text=HORSE[-1])
    after = bank.statistics("horse", info)
    assert removed.text == HORSE[-1]
    assert after.count == before.count == len(HORSE) - 1
    np.testing.assert_allclose(after.mean, before.mean, atol=1e-5)
    np.testing.assert_allclose(after.m2, before.m2, rtol=1e-4, atol=1e-5)
    assert [s.text for s in bank.sentences("horse")] == HORSE[:-1]


def test_removing_the_last_sentence_drops_the_statistics(bank, encoder):
    bank.add_sentences("horse", HORSE[:1], encoder)
    bank.remove_sentence("horse", lambda _: encoder, sentence_id=bank.sentences("horse")[0].id)
    assert bank.describe("horse") ["encoders"] == []
    with pytest.raises(BankError, match="no embedded sentences"):
        bank.diff("horse", "horse")


def test_diff_is_target_mean_minus_source_mean(bank, encoder, sd_model):
    bank.add_sentences("horse", HORSE, encoder)
    bank.add_sentences("zebra", ZEBRA, encoder)
    direction = bank.diff("horse", "zebra")
    expected = reference_embeddings(sd_model, ZEBRA).mean(0) - reference_embeddings(sd_model, HORSE).mean(0)
    assert direction.tensor.shape == (1, 77, 32) and direction.tensor.dtype == np.float32
    np.testing.assert_allclose(direction.tensor[0], expected, atol=1e-5)
    assert direction.norm == pytest.approx(np.linalg.norm(expected), rel=1e-5)
    assert (direction.source_count, direction.target_count) == (len(HORSE), len(ZEBRA))


def test_saved_direction_is_a_snapshot(bank, encoder):
    bank.add_sentences("horse", HORSE, encoder)
    bank.add_sentences("zebra", ZEBRA, encoder)
    saved = bank.save_direction("horse2zebra", bank.diff("horse", "zebra"))
    bank.add_sentences("zebra", ["a zebra grazing beside a horse"], encoder)
    loaded = bank.direction("horse2zebra")
    np.testing.assert_array_equal(loaded.tensor, saved.tensor)
    assert [d["name"] for d in bank.directions()] == ["horse2zebra"]


def test_concepts_from_different_encoders_do_not_diff(bank, encoder, sd_model_wide):
    from direction_bank.text.encoder import TextEncoder

    wide = TextEncoder.load(str(sd_model_wide), device="cpu")
    bank.add_sentences("horse", HORSE[:3], encoder)
    bank.add_sentences("zebra", ZEBRA[:3], wide)
    with pytest.raises(EncoderMismatch, match="different text encoders"):
        bank.diff("horse", "zebra")


def test_a_second_encoder_embeds_the_stored_sentences_too(bank, encoder, sd_model_wide):
    from direction_bank.text.encoder import TextEncoder

    wide = TextEncoder.load(str(sd_model_wide), device="cpu")
    bank.add_sentences("horse", HORSE[:3], encoder)
    report = bank.add_sentences("horse", HORSE[3:5], wide)
    assert (report.added, report.backfilled) == (2, 3)
    counts = sorted((e["hidden_size"], e["count"]) for e in bank.describe("horse")["encoders"])
    assert counts == [(32, 3), (48, 5)]


def test_unknown_concept(bank, encoder):
    bank.add_sentences("horse", HORSE[:2], encoder)
    with pytest.raises(UnknownConcept, match="no concept named 'unicorn'"):
        bank.diff("horse", "unicorn")


@pytest.mark.sqlite_only
def test_a_removed_concept_is_deleted_only_when_the_trash_is_emptied(bank, encoder):
    bank.add_sentences("horse", HORSE, encoder)
    bank.add_sentences("zebra", ZEBRA, encoder)
    assert bank.remove_concept("horse") == len(HORSE)
    assert [c.name for c in bank.concepts()] == ["zebra"]
    with sqlite3.connect(bank.db.url.split(":///")[1]) as raw:
        assert raw.execute("select count(*) from sentences").fetchone()[0] == len(HORSE) + len(ZEBRA)
    assert bank.empty_trash() == 1
    with sqlite3.connect(bank.db.url.split(":///")[1]) as raw:
        assert raw.execute("select count(*) from sentences").fetchone()[0] == len(ZEBRA)
        assert raw.execute("select count(*) from statistics").fetchone()[0] == 1
        assert raw.execute("select count(*) from trash").fetchone()[0] == 0


def test_statistics_take_about_half_a_megabyte_at_sd_size():
    from direction_bank.store.stats import RunningStats

    mean, m2 = RunningStats.empty((77, 768)).to_blobs()
    assert len(mean) + len(m2) <= 0.5 * 1024 * 1024


def test_read_only_open_never_creates_a_file(tmp_path):
    with pytest.raises(BankError, match="no bank at"):
        Bank(tmp_path / "missing.db", create=False)
    assert not (tmp_path / "missing.db").exists()


def test_schema_head_matches_alembic(tmp_path):
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from db import migrations

    config = Config()
    config.set_main_option("script_location", str(migrations.SCRIPT_LOCATION))
    assert ScriptDirectory.from_config(config).get_current_head() == migrations.HEAD
    with Bank(tmp_path / "new.db") as bank:
        assert bank.db.schema_version() == migrations.HEAD


def test_a_bank_from_the_first_schema_opens_and_keeps_its_data(tmp_path, encoder):
    from sqlalchemy import create_engine

    from db import migrations
    from db.urls import database_url

    path = tmp_path / "old.db"
    engine = create_engine(database_url(path))
    with engine.begin() as connection:  # a bank as dbank 0.1's first schema wrote it
        migrations.upgrade(connection, "0001")
    engine.dispose()
    with sqlite3.connect(path) as raw:
        assert raw.execute("select version_num from alembic_version").fetchone() == ("0001",)
        assert "snr" not in {row[1] for row in raw.execute("pragma table_info(directions)")}
        raw.execute("insert into concepts (name, created_at) values ('old', '2026-01-01 00:00:00')")
    with Bank(path, create=False) as bank:
        assert bank.db.schema_version() == migrations.HEAD
        assert [c.name for c in bank.concepts()] == ["old"]
        bank.add_sentences("horse", HORSE[:3], encoder)
        bank.add_sentences("zebra", ZEBRA[:3], encoder)
        saved = bank.save_direction("horse2zebra", bank.diff("horse", "zebra"))
        assert bank.direction("horse2zebra").confidence["snr"] == pytest.approx(saved.confidence["snr"])


def test_each_room_works_alone_over_a_database(database, encoder, sd_model):
    """The rooms under Bank need no Bank: sentences in through the sentences room, the direction out of
    the directions room, the trash through its own; the same numbers as a hand computation."""
    from db.engine import Database
    from db.urls import database_url
    from direction_bank.store.concepts import Concepts
    from direction_bank.store.directions import Directions
    from direction_bank.store.encoders import Encoders
    from direction_bank.store.sentences import Sentences
    from direction_bank.store.trash import Trash

    db = Database(database_url(database), create=True)
    try:
        encoders, concepts = Encoders(db), Concepts(db)
        sentences, directions = Sentences(db, encoders, concepts), Directions(db, encoders, concepts)
        sentences.add("horse", HORSE, encoder)
        sentences.add("zebra", ZEBRA, encoder)
        direction = directions.diff("horse", "zebra")
        by_hand = reference_embeddings(sd_model, ZEBRA).mean(0) - reference_embeddings(sd_model, HORSE).mean(0)
        np.testing.assert_allclose(direction.tensor[0], by_hand, atol=1e-5)
        assert directions.save("h2z", direction).version == 1
        assert [s.name for s in concepts.summaries()] == ["horse", "zebra"]
        assert concepts.remove("zebra") == len(ZEBRA)
        assert [entry["name"] for entry in Trash(db).listing()] == ["zebra"]
        assert [e.id for e in encoders.all()] == [encoders.id_of(encoder)]
    finally:
        db.dispose()
