"""Nothing is lost: direction names keep every version, removals go to a trash and come back
bit for bit, and racing writers never corrupt statistics. SQLite and PostgreSQL alike."""
import json
import multiprocessing

import numpy as np
import pytest
from sqlalchemy import select

from db.models import Moments, Statistics
from direction_bank import Bank, BankError
from direction_bank.jobs.integrity import check_bank
from tests.banks import bank_from_commands
from tests.reference import reference_embeddings

HORSE = ["a photo of a horse", "a horse running on a beach", "a brown horse in a stable",
         "a horse grazing in a green field", "two horses in the snow", "a painting of a white horse"]
ZEBRA = ["a photo of a zebra", "a zebra on the savanna", "a zebra drinking at a river",
         "a herd of zebras at sunset"]


def statistics_bytes(bank, concept=None) -> dict:
    """Every statistics row's count and tensor bytes (of one concept's name, or all), as stored."""
    from db.models import Concept

    with bank.db.reading() as session:
        query = select(Concept.name, Statistics.encoder_id, Statistics.count, Moments.mean, Moments.m2).join(
            Statistics, Statistics.concept_id == Concept.id).join(
            Moments, (Moments.concept_id == Concept.id) & (Moments.encoder_id == Statistics.encoder_id))
        if concept is not None:
            query = query.where(Concept.name == concept)
        return {(name, eid): (count, mean, m2) for name, eid, count, mean, m2 in session.execute(query)}


def assert_statistics_are_a_recomputation(bank, sd_model, concept):
    """The stored statistics equal those of the concept's stored sentences, embedded afresh."""
    texts = [s.text for s in bank.sentences(concept)]
    stats = bank.statistics(concept, bank.common_encoder(concept, concept))
    direct = reference_embeddings(sd_model, texts)
    assert stats.count == len(texts)
    np.testing.assert_allclose(stats.mean, direct.mean(0), atol=1e-5)
    np.testing.assert_allclose(stats.variance(), direct.var(0, ddof=1), atol=1e-4)


@pytest.fixture
def filled(run_cli, database, sd_model, sqlite_banks):
    """The test's bank with horse, zebra and the direction h2z; the CLI runner."""
    bank_from_commands(database, sd_model, ((("add-concept", "horse", "--sentences", "-"), "\n".join(HORSE)),
                                            (("add-concept", "zebra", "--sentences", "-"), "\n".join(ZEBRA)),
                                            (("diff", "horse", "zebra", "--save", "h2z"), None)), sqlite_banks)
    return run_cli


def test_saving_onto_a_name_is_refused_and_overwrite_keeps_every_version(filled, database):
    run_cli = filled
    with Bank(database) as bank:
        first = bank.direction("h2z")
    refused = run_cli("diff", "zebra", "horse", "--save", "h2z")
    assert refused.exit_code == 1 and refused.stdout == ""
    assert refused.stderr.count("\n") == 1 and "a direction named 'h2z' exists; --overwrite" in refused.stderr
    composed = run_cli("direction", "create", "h2z", "--add", "h2z:2")
    assert composed.exit_code == 1 and "a direction named 'h2z' exists" in composed.stderr
    with Bank(database) as bank:  # nothing was replaced
        assert [d["version"] for d in bank.directions()] == [1]
        np.testing.assert_array_equal(bank.direction("h2z").tensor, first.tensor)

    replaced = run_cli("diff", "zebra", "horse", "--save", "h2z", "--overwrite", "--json")
    assert replaced.exit_code == 0 and json.loads(replaced.stdout)["version"] == 2
    again = run_cli("diff", "zebra", "horse", "--save", "h2z", "--overwrite", "--json")
    assert json.loads(again.stdout)["version"] == 2  # the same tensor and recipe: nothing new stored
    history = json.loads(run_cli("direction", "history", "h2z", "--json").stdout)
    assert [(v["version"], v["current"], v["source"]) for v in history] == [(1, False, "horse"), (2, True, "zebra")]
    assert history[0]["fingerprint"] != history[1]["fingerprint"] and len(history[0]["fingerprint"]) == 64
    with Bank(database) as bank:
        np.testing.assert_array_equal(bank.direction("h2z@1").tensor, first.tensor)
        np.testing.assert_array_equal(bank.direction("h2z").tensor, -first.tensor)
    shown = run_cli("show", "h2z@1", "--json")
    assert json.loads(shown.stdout)["version"] == 1 and json.loads(shown.stdout)["source"] == "horse"
    assert "h2z (version 2): zebra -> horse" in run_cli("show", "h2z").stdout
    missing = run_cli("show", "h2z@7")
    assert missing.exit_code == 1 and "direction 'h2z' has no version 7" in missing.stderr

    restored = run_cli("direction", "restore", "h2z", "--version", "1")
    assert restored.exit_code == 0 and "version 1 is current again, as version 3" in restored.stdout
    history = json.loads(run_cli("direction", "history", "h2z", "--json").stdout)
    assert [v["version"] for v in history] == [1, 2, 3]
    assert history[2]["fingerprint"] == history[0]["fingerprint"]
    assert history[2]["recipe"]["restored_from"] == 1
    with Bank(database) as bank:
        np.testing.assert_array_equal(bank.direction("h2z").tensor, first.tensor)


def test_history_says_when_the_concepts_changed_since(filled, database):
    run_cli = filled
    history = json.loads(run_cli("direction", "history", "h2z", "--json").stdout)
    assert history[0]["concepts_changed"] is False
    assert (history[0]["source_count"], history[0]["source_count_now"]) == (len(HORSE), len(HORSE))
    run_cli("add-concept", "horse", "--sentences", "-", input="a horse under a tree")
    history = json.loads(run_cli("direction", "history", "h2z", "--json").stdout)
    assert history[0]["concepts_changed"] is True and history[0]["source_count_now"] == len(HORSE) + 1
    assert "(concepts changed)" in run_cli("direction", "history", "h2z").stdout


def test_export_takes_a_version(filled, tmp_path):
    from direction_bank.sharing.files import read_shared_file

    run_cli = filled
    run_cli("diff", "zebra", "horse", "--save", "h2z", "--overwrite")
    out = tmp_path / "v1.safetensors"
    assert run_cli("export", "h2z@1", "-o", str(out)).exit_code == 0
    shared = read_shared_file(out)
    assert shared.meta["source"]["name"] == "horse"


def test_import_onto_a_name_in_use_is_refused_before_the_model_loads(filled, database, tmp_path):
    run_cli = filled
    out = tmp_path / "h2z.safetensors"
    run_cli("export", "h2z", "-o", str(out))
    run_cli("diff", "zebra", "horse", "--save", "h2z", "--overwrite")
    with Bank(database) as bank:
        before = bank.direction_history("h2z")
    # a model that cannot load: the refusal must come first
    refused = run_cli("import", str(out), "--model", str(tmp_path / "no-such-model"))
    assert refused.exit_code == 1 and "a direction named 'h2z' exists; pass --name, or --overwrite" in refused.stderr
    with Bank(database) as bank:
        assert bank.direction_history("h2z") == before
    stored = run_cli("import", str(out), "--overwrite", "--json")
    assert stored.exit_code == 0, stored.stderr
    with Bank(database) as bank:
        history = bank.direction_history("h2z")
        assert [v["version"] for v in history] == [1, 2, 3]
        assert history[2]["fingerprint"] == history[0]["fingerprint"]  # the file held version 1


def test_a_removed_concept_comes_back_bit_identical(filled, database, sd_model):
    run_cli = filled
    with Bank(database) as bank:
        before, sentences = statistics_bytes(bank, "horse"), bank.sentences("horse")
    removed = run_cli("remove", "horse")
    assert removed.exit_code == 0 and "moved horse (6 sentences) to the trash" in removed.stdout
    assert [c["name"] for c in json.loads(run_cli("concepts", "--json").stdout)] == ["zebra"]
    gone = run_cli("diff", "horse", "zebra")
    assert gone.exit_code == 1 and "no concept named 'horse'" in gone.stderr
    listed = json.loads(run_cli("trash", "--json").stdout)
    assert [(e["kind"], e["name"], e["detail"]["sentences"]) for e in listed] == [("concept", "horse", 6)]
    assert "concept horse (6 sentences)" in run_cli("trash").stdout

    # a new concept of the name may be made meanwhile; restoring onto it is refused
    run_cli("add-concept", "horse", "--sentences", "-", input="a horse in a new bank")
    clash = run_cli("restore", "horse")
    assert clash.exit_code == 1 and "a concept named 'horse' exists now" in clash.stderr
    assert run_cli("restore", "horse", "--as", "old-horse").exit_code == 0
    with Bank(database) as bank:
        assert statistics_bytes(bank, "old-horse") == {("old-horse", k[1]): v for k, v in before.items()}
        assert bank.sentences("old-horse") == sentences
        assert bank.trash() == []
        assert check_bank(bank) == []
    assert run_cli("remove", "horse").exit_code == 0 and run_cli("restore", "horse").exit_code == 0
    assert [c["name"] for c in json.loads(run_cli("concepts", "--json").stdout)] == ["horse", "old-horse", "zebra"]


def test_a_removed_direction_comes_back_with_every_version(filled, database):
    run_cli = filled
    run_cli("diff", "zebra", "horse", "--save", "h2z", "--overwrite")
    with Bank(database) as bank:
        history = bank.direction_history("h2z")
    removed = run_cli("remove", "h2z")  # not a concept: the direction of that name
    assert removed.exit_code == 0 and "moved direction h2z (2 versions) to the trash" in removed.stdout
    assert json.loads(run_cli("direction", "list", "--json").stdout) == []
    assert run_cli("show", "h2z").exit_code == 1
    assert run_cli("restore", "h2z").exit_code == 0
    with Bank(database) as bank:
        assert bank.direction_history("h2z") == history


def test_a_removed_sentence_comes_back_into_the_statistics(filled, database, sd_model):
    run_cli = filled
    with Bank(database) as bank:
        before = statistics_bytes(bank, "horse")
        target = bank.sentences("horse")[2]
    removed = run_cli("remove-sentence", "horse", "--id", str(target.id))
    assert removed.exit_code == 0 and f"moved #{target.id} of horse to the trash" in removed.stdout
    with Bank(database) as bank:
        assert target.text not in [s.text for s in bank.sentences("horse")]
        assert_statistics_are_a_recomputation(bank, sd_model, "horse")  # trashed sentences are not counted
        entry = bank.trash()[0]
    assert (entry["kind"], entry["concept"], entry["detail"]["sentence"]["id"]) == ("sentence", "horse", target.id)
    again = run_cli("remove-sentence", "horse", "--id", str(target.id))
    assert again.exit_code == 1 and "already removed" in again.stderr
    assert run_cli("restore", "--id", str(entry["id"])).exit_code == 0
    with Bank(database) as bank:
        assert statistics_bytes(bank, "horse") == before  # bit for bit
        assert target in bank.sentences("horse")

    # when the statistics changed in between, the embedding is added back (exact to rounding)
    run_cli("remove-sentence", "horse", "--id", str(target.id))
    run_cli("add-concept", "horse", "--sentences", "-", input="a horse under a tree")
    with Bank(database) as bank:
        entry = bank.trash()[0]
        assert bank.restore(entry_id=entry["id"])["statistics_exact"] is False
        assert_statistics_are_a_recomputation(bank, sd_model, "horse")
        assert check_bank(bank) == []


def test_emptying_the_trash(filled, database):
    run_cli = filled
    run_cli("remove", "zebra")
    run_cli("remove", "h2z")
    kept = run_cli("trash", "empty", "--older-than", "1")
    assert "deleted 0 trash entries" in kept.stdout
    kept = run_cli("trash", "empty", "--older-than", "1000000")  # 2738 years: before the year 1
    assert kept.exit_code == 0 and "deleted 0 trash entries" in kept.stdout
    assert len(json.loads(run_cli("trash", "--json").stdout)) == 2
    assert "deleted 2 trash entries" in run_cli("trash", "empty").stdout
    assert run_cli("trash").stdout.strip() == "the trash is empty"
    assert run_cli("restore", "zebra").exit_code == 1
    with Bank(database) as bank:
        assert check_bank(bank) == []
        assert set(k[0] for k in statistics_bytes(bank)) == {"horse"}


def test_bad_restore_and_trash_input_is_one_line(filled):
    run_cli = filled
    for args in (["restore"], ["restore", "horse", "--id", "1"], ["restore", "--id", "0"],
                 ["trash", "empty", "--older-than", "nan"], ["trash", "empty", "--older-than", "-1"],
                 ["direction", "restore", "h2z", "--version", "0"]):
        result = run_cli(*args)
        assert result.exit_code == 2 and result.stderr.count("\n") == 1, args
    for args in (["restore", "nothing"], ["restore", "--id", "99999"], ["restore", "h\x1bz"],
                 ["direction", "restore", "h2z", "--version", "5"], ["direction", "history", "nope"],
                 ["diff", "horse", "zebra", "--save", "x@2"]):
        result = run_cli(*args)
        assert result.exit_code == 1 and result.stderr.count("\n") == 1, (args, result.stderr)


def test_a_bank_at_schema_0004_upgrades_and_keeps_its_direction(database, encoder):
    from sqlalchemy import create_engine, text

    from db import migrations
    from db.urls import database_url

    engine = create_engine(database_url(database))
    with engine.begin() as connection:
        migrations.upgrade(connection, "0004")
        connection.execute(text("insert into encoders (model, encoder_class, hidden_size, max_length, fingerprint, "
                                "created_at) values ('m', 'CLIPTextModel', 1, 1, 'f', '2026-01-01 00:00:00')"))
        connection.execute(text("insert into directions (name, encoder_id, norm, created_at, tensor) "
                                "values ('old', 1, 1.0, '2026-01-01 00:00:00', :blob)"),
                           {"blob": np.ones(1, np.float32).tobytes()})
    engine.dispose()
    with Bank(database) as bank:
        assert bank.db.schema_version() == migrations.HEAD
        [old] = bank.direction_history("old")
        assert old["version"] == 1 and old["fingerprint"] == __import__("hashlib").sha256(
            np.ones(1, np.float32).tobytes()).hexdigest()
        assert bank.remove_direction("old") == 1 and bank.restore("old")["name"] == "old"


# -- racing writers ----------------------------------------------------------------------

def _in_process(work, database, encoder, args, results):
    import torch

    torch.set_num_threads(1)
    try:
        with Bank(database) as bank:
            results.put(("ok", work(bank, encoder, *args)))
    except BankError as error:
        results.put(("refused", str(error)))
    except Exception as error:  # reported to the parent: none may reach a user
        results.put(("crash", f"{type(error).__name__}: {error}"))


def _race(database, encoder, jobs):
    """Run each (function, args) in its own forked process at once; their (outcome, value)s."""
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    workers = [context.Process(target=_in_process, args=(work, database, encoder, args, results))
               for work, args in jobs]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
    return [results.get(timeout=10) for _ in workers]


def _remove_sentence(bank, encoder, sentence_id):
    return bank.remove_sentence("horse", lambda info: encoder, sentence_id=sentence_id).id


def _remove_concept(bank, encoder, name):
    return bank.remove_concept(name)


def _restore(bank, encoder, name):
    return bank.restore(name)["name"]


def _add(bank, encoder, texts):
    return bank.add_sentences("horse", texts, encoder, batch_size=2).added


def test_racing_removers_of_one_sentence_take_it_out_once(database, encoder, sd_model):
    with Bank(database) as bank:
        bank.add_sentences("horse", HORSE, encoder)
        ids = [s.id for s in bank.sentences("horse")]
    for round_, sentence_id in enumerate(ids[:3]):
        extra = [f"a horse number {round_}-{i} in a field" for i in range(4)]
        outcomes = _race(database, encoder, [(_remove_sentence, (sentence_id,))] * 3 + [(_add, (extra,))])
        kinds = sorted(kind for kind, _ in outcomes)
        assert kinds == ["ok", "ok", "refused", "refused"], outcomes
        assert all("already removed" in value for kind, value in outcomes if kind == "refused")
        with Bank(database) as bank:
            assert check_bank(bank, deep=True, load_encoder=lambda info: encoder) == []
            assert_statistics_are_a_recomputation(bank, sd_model, "horse")
            assert sum(e["kind"] == "sentence" for e in bank.trash()) == round_ + 1


def test_racing_remove_and_restore_lose_nothing(database, encoder):
    with Bank(database) as bank:
        bank.add_sentences("horse", HORSE, encoder)
        original, sentences = statistics_bytes(bank, "horse"), bank.sentences("horse")
    for _ in range(3):
        outcomes = _race(database, encoder, [(_remove_concept, ("horse",)), (_restore, ("horse",)),
                                             (_remove_concept, ("horse",)), (_restore, ("horse",))])
        assert not [o for o in outcomes if o[0] == "crash"], outcomes
        with Bank(database) as bank:
            # the concept is in the bank or in the trash, exactly once, and whole
            live = [c.name for c in bank.concepts()]
            trashed = [e for e in bank.trash() if e["kind"] == "concept"]
            assert len(live) + len(trashed) == 1, (live, trashed)
            if not live:
                bank.restore("horse")
            assert statistics_bytes(bank, "horse") == original
            assert bank.sentences("horse") == sentences
            assert check_bank(bank) == []
