"""Shared banks: the work queue, crashes, integrity checks and repair, backups."""
import json
import multiprocessing
import os
import random
import signal
import sqlite3
import time

import numpy as np
import pytest

from direction_bank import Bank, BankError
from direction_bank.text.generators.template import TemplateGenerator
from direction_bank.jobs.integrity import backup_bank, check_bank, repair_statistics
from direction_bank.jobs.work_queue import enqueue, parse_concepts, queue_status, run_worker
from tests.reference import reference_embeddings
from tests.output import said

FORK = multiprocessing.get_context("fork")


def _worker(database, encoder, lease_s):
    import torch

    torch.set_num_threads(1)
    with Bank(database) as bank:
        run_worker(bank, TemplateGenerator, encoder, lease_s=lease_s, batch_size=3, poll_s=0.2)


def _stored(database) -> int:
    with Bank(database) as bank:
        return sum(c.sentence_count for c in bank.concepts())


def test_parse_concepts_lines_and_csv():
    assert parse_concepts("horse\nzebra, 20\n\n# a comment\ncat,\n", 7) == [("horse", 7), ("zebra", 20), ("cat", 7)]
    assert parse_concepts("concept,count\nhorse,3\n", 7) == [("horse", 3)]
    with pytest.raises(BankError, match="'dog': count 'many' is not a number"):
        parse_concepts("horse,3\ndog,many\n", 7)


def test_three_workers_twelve_concepts_one_killed(database, encoder):
    concepts = [f"thing{i}" for i in range(12)]
    with Bank(database) as bank:
        assert enqueue(bank, [(c, 12) for c in concepts]) == 12
        assert enqueue(bank, [(c, 12) for c in concepts]) == 0  # queued once
    workers = [FORK.Process(target=_worker, args=(database, encoder, 1.5)) for _ in range(3)]
    for worker in workers:
        worker.start()
    deadline = time.time() + 60
    while _stored(database) < 30 and time.time() < deadline:
        time.sleep(0.1)
    os.kill(workers[0].pid, signal.SIGKILL)
    for worker in workers:
        worker.join(timeout=300)
    assert [w.exitcode for w in workers] == [-signal.SIGKILL, 0, 0]
    with Bank(database) as bank:
        status = queue_status(bank)
        assert status["counts"] == {"done": 12}
        for concept in concepts:
            texts = [s.text for s in bank.sentences(concept)]
            assert len(texts) == len(set(texts)) == 12
        assert sum(item["attempts"] for item in status["items"]) <= 13  # only the killed one was retaken
        assert check_bank(bank) == []


def _crashing_worker(database, encoder):
    import torch

    torch.set_num_threads(1)
    with Bank(database) as bank:
        run_worker(bank, TemplateGenerator, encoder, lease_s=0.01, batch_size=2, poll_s=0.05)


def test_twenty_sigkills_then_a_rerun_leave_a_sound_bank(database, encoder, sd_model):
    with Bank(database) as bank:
        enqueue(bank, [(f"crash{i}", 15) for i in range(4)])
    rng = random.Random(0)
    for _ in range(20):
        worker = FORK.Process(target=_crashing_worker, args=(database, encoder))
        worker.start()
        time.sleep(rng.uniform(0.05, 0.6))
        os.kill(worker.pid, signal.SIGKILL)
        worker.join()
    _crashing_worker(database, encoder)
    with Bank(database) as bank:
        load = lambda info: encoder  # noqa: E731
        assert check_bank(bank, deep=True, load_encoder=load) == []
        for i in range(4):
            texts = [s.text for s in bank.sentences(f"crash{i}")]
            assert len(texts) == len(set(texts)) == 15
            stats = bank.statistics(f"crash{i}", bank.common_encoder(f"crash{i}", f"crash{i}"))
            np.testing.assert_allclose(stats.mean, reference_embeddings(sd_model, texts).mean(0), atol=1e-5)
        assert queue_status(bank)["counts"] == {"done": 4}


def test_check_finds_damage_and_repair_mends_it(database, encoder):
    from sqlalchemy import update

    from db.models import Sentence, Statistics

    with Bank(database) as bank:
        bank.add_sentences("horse", ["a horse", "a brown horse", "two horses", "a horse at dawn"], encoder)
        assert check_bank(bank, deep=True, load_encoder=lambda info: encoder) == []
        bank.db.write(lambda s: s.execute(update(Statistics).values(count=9)))
        bank.db.write(lambda s: s.execute(update(Sentence).where(Sentence.text == "a horse").values(text="a cow")))
        problems = check_bank(bank, deep=True, load_encoder=lambda info: encoder)
        assert any("content hash does not match" in p for p in problems)
        assert any("statistics count 9, but 4 sentences" in p for p in problems)
        assert any("re-embedded sentences do not give the stored mean" in p for p in problems)
        bank.db.write(lambda s: s.execute(update(Sentence).where(Sentence.text == "a cow").values(text="a horse")))
        assert repair_statistics(bank, lambda info: encoder) == [
            f"horse ({encoder.model}): statistics rebuilt from 4 sentences"]
        assert check_bank(bank, deep=True, load_encoder=lambda info: encoder) == []


def test_cli_check_queue_and_add_concepts(run_cli, tmp_path):
    (tmp_path / "concepts.csv").write_text("horse,5\nzebra,4\n")
    result = run_cli("add-concepts", str(tmp_path / "concepts.csv"), "--generator", "template", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["counts"] == {"done": 2}
    queue = json.loads(run_cli("queue", "--json").stdout)
    assert [(i["concept"], i["sentences"], i["status"]) for i in queue["items"]] == [
        ("horse", 5, "done"), ("zebra", 4, "done")]
    checked = run_cli("check", "--deep", "--json")
    assert checked.exit_code == 0 and json.loads(checked.stdout)["ok"] is True


def test_add_concepts_bounds_candidates_and_reports_each_concept(run_cli, tmp_path):
    (tmp_path / "concepts.csv").write_text("horse,5\nzebra,4000\n")
    result = run_cli("add-concepts", str(tmp_path / "concepts.csv"), "--generator", "template",
                     "--max-candidates", "64", "--dedup-threshold", "0.5", "--batch-size", "32", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["counts"] == {"done": 1, "short": 1}
    lines = said(result.stderr)
    # template batches of 32: horse uses 5 of the first batch's 32, zebra is cut off at 64 candidates
    assert lines[0] == "horse: 5/5 sentences; tried 32: 5 added, 27 unused past the target"
    assert lines[1] == "zebra: 64/4000 sentences; tried 64: 64 added"


def test_the_queue_shows_sentences_stored_by_a_running_worker(database, encoder):
    from direction_bank.jobs.work_queue import claim, enqueue, queue_status

    with Bank(database) as bank:
        enqueue(bank, [("horse", 10)])
        assert claim(bank, "other-host:1", 300) is not None
        bank.add_sentences("horse", ["a horse", "a brown horse", "two horses"], encoder)  # its first batch
        (item,) = queue_status(bank)["items"]
    assert (item["status"], item["sentences"], item["target"], item["worker"]) == ("running", 3, 10, "other-host:1")


@pytest.mark.sqlite_only
def test_backup_is_a_consistent_copy_while_a_writer_holds_the_bank(bank, encoder, bank_path, tmp_path):
    bank.add_sentences("horse", ["a horse", "a brown horse"], encoder)
    writer = sqlite3.connect(bank_path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO concepts (name, created_at) VALUES ('half-written', '2026-01-01')")
    try:
        copy = backup_bank(bank, tmp_path / "copy.db")
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    with Bank(copy, create=False) as restored:
        assert [c.name for c in restored.concepts()] == ["horse"]
        assert check_bank(restored) == []
    with pytest.raises(BankError, match="exists"):
        backup_bank(bank, copy)
