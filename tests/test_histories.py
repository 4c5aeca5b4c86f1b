"""One history per direction: racing writers in real processes never split a name's versions
between the bank and the trash (SQLite and PostgreSQL), `dbank check` finds a split or
orphaned history and `--repair` mends it without losing a version; a tuning lands only on the
version it measured; one name rule at every door."""
import multiprocessing
import random
from dataclasses import replace

import pytest
from sqlalchemy import func, select, update

from db.models import Direction, TrashEntry
from direction_bank import Bank, BankError
from direction_bank.errors import DirectionChanged, UnknownDirection
from direction_bank.jobs.integrity import check_bank, repair_direction_histories
from tests.test_trash import HORSE, ZEBRA

FORK = multiprocessing.get_context("fork")
TUNING = {"scale": 1.5, "xa_guidance": 0.1, "rule": "test"}


@pytest.fixture
def h2z(database, encoder):
    """The test's bank with horse, zebra and the direction h2z (version 1)."""
    with Bank(database) as bank:
        bank.add_sentences("horse", HORSE, encoder)
        bank.add_sentences("zebra", ZEBRA, encoder)
        bank.save_direction("h2z", bank.diff("horse", "zebra"))
    return database


def histories(bank) -> tuple[dict, dict]:
    """({live name: sorted versions}, {trash entry id: sorted versions}), read from the rows."""
    live, trashed = {}, {}
    with bank.db.reading() as session:
        for name, version, trash_id in session.execute(select(Direction.name, Direction.version, Direction.trash_id)):
            if trash_id is None:
                live.setdefault(name, []).append(version)
            else:
                trashed.setdefault(trash_id, []).append(version)
    return ({k: sorted(v) for k, v in live.items()}, {k: sorted(v) for k, v in trashed.items()})


def split_histories(bank) -> list:
    """Every live name or trash entry whose versions are not 1..N (counted by hand)."""
    live, trashed = histories(bank)
    return [(key, versions) for key, versions in [*live.items(), *trashed.items()]
            if versions != list(range(1, len(versions) + 1))]


def row_count(bank) -> int:
    with bank.db.reading() as session:
        return session.scalar(select(func.count(Direction.id)))


# -- racing writers in real processes ------------------------------------------------------

def _saver(database, rounds, results):
    import torch

    torch.set_num_threads(1)
    created = 0
    with Bank(database) as bank:
        base = bank.diff("horse", "zebra")
        for i in range(rounds):
            variant = replace(base, recipe={"diff": {"source": "horse", "target": "zebra"}, "round": i})
            bank.save_direction("h2z", variant, overwrite=True)
            created += 1
    results.put(("saved", created))


def _remover(database, rounds, results):
    removed = 0
    with Bank(database) as bank:
        for _ in range(rounds):
            try:
                removed += bank.remove_direction("h2z") > 0
            except UnknownDirection:
                pass
    results.put(("removed", removed))


def test_removes_racing_overwrites_never_split_a_history(h2z):
    """500 removes race 500 --overwrite saves of one name (the split was 15 in 282 on
    PostgreSQL before names were locked): every history stays 1..N and no version is lost."""
    results = FORK.Queue()
    workers = [FORK.Process(target=_saver, args=(h2z, 500, results)),
               FORK.Process(target=_remover, args=(h2z, 500, results))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=600)
    assert [worker.exitcode for worker in workers] == [0, 0]
    outcome = dict(results.get(timeout=10) for _ in workers)
    assert outcome["saved"] == 500 and outcome["removed"] >= 1
    with Bank(h2z) as bank:
        assert split_histories(bank) == []
        assert row_count(bank) == 1 + 500  # the first version and every save: none lost
        live, trashed = histories(bank)
        assert len(trashed) == len([e for e in bank.trash() if e["kind"] == "direction"])
        assert not [line for line in check_bank(bank) if "history" in line or "orphaned" in line]


def _mixed_writer(database, encoder, file, seed, rounds, results):
    """Random writes of every kind on the names h2z and sum: save, overwrite, remove, restore,
    direction restore, import, compose and tune."""
    import torch

    torch.set_num_threads(1)
    rng = random.Random(seed)
    errors = []
    with Bank(database) as bank:
        base = bank.diff("horse", "zebra")
        for i in range(rounds):
            kind = rng.choice(["save", "remove", "restore", "version", "import", "compose", "tune"])
            try:
                if kind == "save":
                    variant = replace(base, recipe={"diff": {"source": "horse", "target": "zebra"}, "r": [seed, i]})
                    bank.save_direction("h2z", variant, overwrite=rng.random() < 0.8)
                elif kind == "remove":
                    bank.remove_direction(rng.choice(["h2z", "sum"]))
                elif kind == "restore":
                    bank.restore(rng.choice(["h2z", "sum"]))
                elif kind == "version":
                    bank.restore_direction_version("h2z", 1)
                elif kind == "import":
                    bank.import_file(file, encoder, name="h2z", overwrite=True)
                elif kind == "compose":
                    bank.compose_direction("sum", [("h2z", rng.uniform(0.1, 2))], overwrite=True)
                else:
                    bank.add_tuning(bank.direction("h2z"), {**TUNING, "scale": rng.choice([0.5, 1, 2])})
            except BankError:  # refusals (a name in use, gone, or changed meanwhile) are fine
                pass
            except Exception as error:  # reported to the parent: none may reach a user
                errors.append(f"{kind}: {type(error).__name__}: {error}")
    results.put(errors)


def test_every_pair_of_writers_keeps_one_history(h2z, encoder, tmp_path):
    with Bank(h2z) as bank:
        file = tmp_path / "h2z.safetensors"
        bank.export_direction("h2z", file)
    results = FORK.Queue()
    workers = [FORK.Process(target=_mixed_writer, args=(h2z, encoder, file, seed, 60, results)) for seed in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=600)
    assert [results.get(timeout=10) for _ in workers] == [[]] * 4
    with Bank(h2z) as bank:
        assert split_histories(bank) == []
        assert check_bank(bank) == []
        with bank.db.reading() as session:  # every tuning sits on the tensor it measured
            for fingerprint, tunings in session.execute(select(Direction.fingerprint, Direction.tuning)):
                assert all(t["fingerprint"] == fingerprint for t in tunings or [])


# -- check and repair ------------------------------------------------------------------------

def _split_by_hand(bank):
    """The state a racing remove left before names were locked: h2z's versions 1 and 2 in the
    trash, version 3 live."""
    base = bank.diff("horse", "zebra")
    bank.save_direction("h2z", replace(base, recipe={"v": 2}), overwrite=True)
    bank.save_direction("h2z", replace(base, recipe={"v": 3}), overwrite=True)
    fingerprints = [v["fingerprint"] for v in bank.direction_history("h2z")]
    with bank.db.writing() as session:
        entry = TrashEntry(kind="direction", name="h2z", detail={"versions": 2})
        session.add(entry)
        session.flush()
        session.execute(update(Direction).where(Direction.name == "h2z", Direction.version < 3)
                        .values(name=f"\x1ftrash/{entry.id}", trash_id=entry.id))
    return fingerprints


def test_check_finds_a_split_history_and_repair_takes_back_the_trashed_versions(h2z):
    with Bank(h2z) as bank:
        fingerprints = _split_by_hand(bank)
        assert histories(bank)[0] == {"h2z": [3]}
        assert "direction 'h2z': versions 3, not 1 to 1: a split history (dbank check --repair mends it)" in \
            check_bank(bank)
        done = repair_direction_histories(bank)
        assert len(done) == 1 and "versions 1, 2 taken back from trash" in done[0]
        assert histories(bank) == ({"h2z": [1, 2, 3]}, {})
        assert [v["fingerprint"] for v in bank.direction_history("h2z")] == fingerprints
        assert bank.trash() == [] and check_bank(bank) == []


def test_repair_numbers_a_history_it_cannot_fill_again_and_drops_an_empty_entry(h2z):
    with Bank(h2z) as bank:
        fingerprints = _split_by_hand(bank)
        bank.restore("h2z", as_name="old")  # the trashed part is not there to fill the gap
        with bank.db.writing() as session:
            session.add(TrashEntry(kind="direction", name="ghost", detail={"versions": 1}))
        problems = check_bank(bank)
        assert any("orphaned entry" in line for line in problems) and any("split" in line for line in problems)
        repair_direction_histories(bank)
        history = bank.direction_history("h2z")
        assert [(v["version"], v["fingerprint"], v["recipe"]["renumbered_from"]) for v in history] == \
            [(1, fingerprints[2], 3)]
        assert [v["fingerprint"] for v in bank.direction_history("old")] == fingerprints[:2]
        assert bank.trash() == [] and check_bank(bank) == []


def test_check_repair_through_the_cli(run_cli, h2z):
    with Bank(h2z) as bank:
        _split_by_hand(bank)
    result = run_cli("check")
    assert result.exit_code == 1 and "a split history" in result.output
    result = run_cli("check", "--repair")
    assert result.exit_code == 0, result.output
    assert "taken back from trash" in result.output and "the bank is sound" in result.output


# -- tunings --------------------------------------------------------------------------------

def test_a_tuning_lands_on_the_version_it_measured_or_nowhere(h2z):
    with Bank(h2z) as bank:
        measured = bank.direction("h2z")
        bank.save_direction("h2z", replace(bank.diff("zebra", "horse"), recipe={"other": 1}), overwrite=True)
        stored = bank.add_tuning(measured, TUNING)  # a newer version meanwhile: still on version 1
        assert stored["version"] == 1 and stored["fingerprint"] == measured.fingerprint
        assert [v["tuning"] for v in bank.direction_history("h2z")] == [[stored], []]
        bank.remove_direction("h2z")
        other = bank.diff("zebra", "horse")
        bank.save_direction("h2z", other)  # another direction under the name, as version 1
        with pytest.raises(DirectionChanged, match="changed while it was tuned .*nothing stored"):
            bank.add_tuning(measured, TUNING)
        assert bank.direction("h2z").tuning is None
        bank.remove_direction("h2z")
        with pytest.raises(DirectionChanged, match="version 1 is gone"):
            bank.add_tuning(measured, TUNING)


def test_direction_restore_keeps_the_tunings_of_the_version_it_restores(h2z):
    with Bank(h2z) as bank:
        first = bank.direction("h2z")
        bank.add_tuning(first, TUNING)
        bank.save_direction("h2z", replace(bank.diff("zebra", "horse"), recipe={"x": 1}), overwrite=True)
        bank.add_tuning(bank.direction("h2z"), {**TUNING, "scale": 0.5})
        restored = bank.restore_direction_version("h2z", 1)
        assert restored.version == 3 and restored.fingerprint == first.fingerprint
        assert restored.tuning["scale"] == 1.5


def test_restore_by_name_brings_back_the_newest_trash_entry(h2z):
    with Bank(h2z) as bank:
        bank.remove_direction("h2z")
        bank.save_direction("h2z", replace(bank.diff("zebra", "horse"), recipe={"second": 1}))
        newer = bank.direction("h2z").fingerprint
        bank.remove_direction("h2z")
        assert bank.restore("h2z")["name"] == "h2z"
        assert bank.direction("h2z").fingerprint == newer


# -- one name rule ----------------------------------------------------------------------------

def test_no_door_takes_a_name_that_reads_as_a_version(h2z, encoder, tmp_path, run_cli):
    rule = "cannot end in @NUMBER"
    with Bank(h2z) as bank:
        file = tmp_path / "h2z.safetensors"
        bank.export_direction("h2z", file)
        with pytest.raises(BankError, match=rule):
            bank.import_file(file, encoder, name="h2z@1")
        with pytest.raises(BankError, match=rule):
            bank.compose_direction("sum@2", [("h2z", 1.0)])
        bank.remove_direction("h2z")
        with pytest.raises(BankError, match=rule):
            bank.restore("h2z", as_name="h2z@7")
        assert bank.restore("h2z")["name"] == "h2z"
        with pytest.raises(BankError, match=rule):
            bank.rename_direction("h2z", "x@3")
        assert histories(bank)[0] == {"h2z": [1]}
    named = tmp_path / "own.safetensors"
    with Bank(h2z) as bank:  # a file whose own metadata names it so
        bank.export_direction("h2z", named)
    from safetensors import safe_open
    from safetensors.numpy import save_file
    import json

    with safe_open(named, "np") as handle:
        meta, tensors = handle.metadata(), {k: handle.get_tensor(k) for k in handle.keys()}
    dbank = json.loads(meta["dbank"])
    dbank["name"] = "h2z@1"
    save_file(tensors, named, {**meta, "dbank": json.dumps(dbank)})
    result = run_cli("import", str(named))
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].endswith("(the name own.safetensors gives itself: pass --name)")


def test_check_lists_a_name_from_before_the_rule_and_rename_is_the_way_out(run_cli, h2z):
    with Bank(h2z) as bank:  # a bank from before the rule, with 'h2z@1' beside 'h2z'
        bank.save_direction("other", replace(bank.diff("zebra", "horse"), recipe={"o": 1}))
        with bank.db.writing() as session:
            session.execute(update(Direction).where(Direction.name == "other").values(name="h2z@1"))
        h2z_fingerprint = bank.direction("h2z").fingerprint
        legacy = bank.direction_history("h2z@1")[0]["fingerprint"]
        assert bank.direction("h2z@1").fingerprint == h2z_fingerprint  # the trap: version 1 of h2z
    result = run_cli("check")
    assert result.exit_code == 1
    assert "direction 'h2z@1': its name reads as version 1 of 'h2z'" in result.output
    result = run_cli("direction", "rename", "h2z@1", "z2h")
    assert result.exit_code == 0 and "renamed direction h2z@1 to z2h (1 version)" in result.output
    assert run_cli("check").exit_code == 0
    with Bank(h2z) as bank:
        assert bank.direction("z2h").fingerprint == legacy
    result = run_cli("direction", "rename", "z2h", "h2z")
    assert result.exit_code == 1 and "a direction named 'h2z' exists" in result.output
