import json
import os
import sqlite3
import subprocess
import sys

import pytest

from direction_bank import __version__
from tests.output import said

HORSE = "a photo of a horse\na horse on a beach\n\na brown horse in a stable\na horse in the snow\n"
ZEBRA = "a photo of a zebra\na zebra on the savanna\na zebra at a river\n"


@pytest.fixture
def horse_and_zebra(run_cli, tmp_path):
    (tmp_path / "horse.txt").write_text(HORSE)
    (tmp_path / "zebra.txt").write_text(ZEBRA)
    assert run_cli("add-concept", "horse", "--sentences", str(tmp_path / "horse.txt")).exit_code == 0
    assert run_cli("add-concept", "zebra", "--sentences", "-", input=ZEBRA).exit_code == 0


def test_version(run_cli):
    result = run_cli("--version")
    assert result.exit_code == 0 and __version__ in result.output


def test_add_concept_reports_added_and_skipped(run_cli, tmp_path):
    (tmp_path / "horse.txt").write_text(HORSE)
    first = run_cli("add-concept", "horse", "--sentences", str(tmp_path / "horse.txt"), "--json")
    again = run_cli("add-concept", "horse", "--sentences", "-", "--json", input=HORSE + "a grey horse\n")
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["added"] == 4
    report = json.loads(again.stdout)
    assert (report["added"], report["skipped"], report["sentence_count"]) == (1, 4, 5)


def test_template_generator_fills_to_the_target_and_resumes(run_cli):
    first = json.loads(run_cli("add-concept", "cat", "-n", "10", "--generator", "template", "--json").stdout)
    more = json.loads(run_cli("add-concept", "cat", "-n", "25", "--generator", "template", "--json").stdout)
    same = json.loads(run_cli("add-concept", "cat", "-n", "25", "--generator", "template", "--json").stdout)
    assert (first["added"], first["sentence_count"]) == (10, 10)
    assert (more["added"], more["sentence_count"]) == (15, 25)
    assert (same["added"], same["sentence_count"]) == (0, 25)
    listed = json.loads(run_cli("sentences", "cat", "--json").stdout)
    assert len({s["text"] for s in listed}) == 25
    assert all("cat" in s["text"] and s["generator"] == "template" for s in listed)


def test_long_sentence_warns_and_is_truncated(run_cli):
    result = run_cli("add-concept", "horse", "--sentences", "-", input="a horse " * 50 + "\n")
    assert result.exit_code == 0
    assert "warning: longer than 77 tokens, truncated" in result.stderr


def test_concepts_show_and_sentences(run_cli, horse_and_zebra):
    concepts = json.loads(run_cli("concepts", "--json").stdout)
    assert [(c["name"], c["sentence_count"]) for c in concepts] == [("horse", 4), ("zebra", 3)]
    shown = json.loads(run_cli("show", "horse", "--json").stdout)
    assert shown["sentence_count"] == 4 and shown["sentences"][0] == "a photo of a horse"
    encoder = shown["encoders"][0]
    assert (encoder["hidden_size"], encoder["count"], encoder["max_length"]) == (32, 4, 77)
    assert encoder["mean_norm"] > 0 and len(encoder["fingerprint"]) == 64
    text = run_cli("sentences", "zebra").output.splitlines()
    assert len(text) == 3 and text[0].endswith("a photo of a zebra")


def test_diff_json_and_save(run_cli, horse_and_zebra):
    result = run_cli("diff", "horse", "zebra", "--json", "--save", "horse2zebra")
    data = json.loads(result.stdout)
    assert (data["source"], data["target"], data["shape"]) == ("horse", "zebra", [1, 77, 32])
    assert data["norm"] > 0 and data["name"] == "horse2zebra"
    listed = json.loads(run_cli("direction", "list", "--json").stdout)
    assert listed[0]["name"] == "horse2zebra" and listed[0]["norm"] == pytest.approx(data["norm"])
    back = json.loads(run_cli("diff", "zebra", "horse", "--json").stdout)
    assert back["norm"] == pytest.approx(data["norm"], rel=1e-6)


def test_remove_and_remove_sentence(run_cli, horse_and_zebra):
    assert run_cli("remove-sentence", "horse", "a horse on a beach").exit_code == 0
    assert json.loads(run_cli("show", "horse", "--json").stdout)["encoders"][0]["count"] == 3
    assert run_cli("remove", "zebra").exit_code == 0
    assert [c["name"] for c in json.loads(run_cli("concepts", "--json").stdout)] == ["horse"]


def _one_line_error(result, *fragments):
    assert result.exit_code != 0
    lines = said(result.stderr)
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_unknown_concept_is_one_line(run_cli, horse_and_zebra):
    _one_line_error(run_cli("diff", "horse", "unicorn"), "no concept named 'unicorn'")
    _one_line_error(run_cli("show", "unicorn"), "unicorn")


def test_empty_sentence_file_is_one_line_and_stores_nothing(run_cli, horse_and_zebra, bank_path):
    _one_line_error(run_cli("add-concept", "horse", "--sentences", "-", input="\n  \n"), "no sentences")
    assert json.loads(run_cli("show", "horse", "--json").stdout)["sentence_count"] == 4


def test_encoder_mismatch_is_one_line(run_cli, horse_and_zebra, sd_model_wide):
    run_cli("add-concept", "dog", "--sentences", "-", input="a photo of a dog\n", model=sd_model_wide)
    _one_line_error(run_cli("diff", "horse", "dog"), "different text encoders")


def test_missing_model_is_one_line(run_cli):
    _one_line_error(
        run_cli("add-concept", "horse", "--sentences", "-", input="a horse\n", model="nobody/nothing"),
        "DBANK_MODEL",
    )


@pytest.mark.sqlite_only
def test_read_only_commands_never_create_the_bank(run_cli, bank_path):
    for args in (["concepts"], ["show", "horse"], ["diff", "a", "b"]):
        _one_line_error(run_cli(*args), "no bank at")
    assert not bank_path.exists()


@pytest.mark.sqlite_only
def test_unreadable_database_is_one_line(run_cli, bank_path):
    bank_path.write_bytes(b"this is not a database at all" * 100)
    _one_line_error(run_cli("concepts"), "not a dbank database")


@pytest.mark.sqlite_only
def test_locked_database_is_one_line_and_loses_nothing(run_cli, horse_and_zebra, bank_path, monkeypatch):
    monkeypatch.setenv("DBANK_BUSY_TIMEOUT", "0.2")
    holder = sqlite3.connect(bank_path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        result = run_cli("add-concept", "horse", "--sentences", "-", input="a horse at night\n")
        _one_line_error(result, "locked")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert json.loads(run_cli("show", "horse", "--json").stdout)["sentence_count"] == 4


def test_concepts_and_diff_start_without_torch(horse_and_zebra, database):
    probe = (
        "import sys\n"
        "from direction_bank.cli import main\n"
        "for args in (['concepts'], ['diff', 'horse', 'zebra', '--json']):\n"
        "    try:\n"
        "        main(['-d', sys.argv[1], *args])\n"
        "    except SystemExit as e:\n"
        "        assert not e.code, e.code\n"
        "print('torch' in sys.modules, 'transformers' in sys.modules, 'sqlalchemy' in sys.modules, file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, database], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    # a SQLite bank is read through the standard library's sqlite3 (store/quick_read.py)
    assert done.stderr.strip() == f"False False {'://' in database}"
    assert '"shape": [' in done.stdout


@pytest.mark.sqlite_only
def test_quick_reads_answer_as_the_bank_does_and_leave_the_rest_to_it(run_cli, horse_and_zebra, bank_path, tmp_path):
    import numpy as np

    from direction_bank import Bank
    from direction_bank.store import quick_read

    with Bank(bank_path, read_only=True) as bank:
        listed, made = bank.concepts(), bank.diff("horse", "zebra")
    assert quick_read.concept_summaries(bank_path) == listed
    quick = quick_read.difference(bank_path, "horse", "zebra")
    np.testing.assert_array_equal(quick.tensor, made.tensor)
    assert quick.as_dict() == made.as_dict()
    # what the bank must say is left to it: an unknown name, and a bank at another schema version
    assert quick_read.difference(bank_path, "horse", "hrose") is None
    _one_line_error(run_cli("diff", "horse", "hrose"), "did you mean 'horse'?")
    older = tmp_path / "older.db"
    older.write_bytes(bank_path.read_bytes())
    with sqlite3.connect(older) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0005'")
    assert quick_read.concept_summaries(older) is None
    assert quick_read.difference(older, "horse", "zebra") is None


def test_an_unexpected_error_is_one_line_unless_debugging(run_cli, horse_and_zebra, monkeypatch):
    from direction_bank.store import queries

    def broken(run):
        raise ZeroDivisionError("a bug\nwith a second line")

    monkeypatch.setattr(queries, "summaries", broken)
    quiet = run_cli("concepts", env={"DBANK_DEBUG": "0"})
    assert quiet.exit_code == 1
    assert quiet.stderr == ("Error: unexpected ZeroDivisionError: a bug (run with --debug for the traceback)\n")
    with pytest.raises(ZeroDivisionError):  # the test suite's own setting: bugs are never hidden
        run_cli("concepts")
    with pytest.raises(ZeroDivisionError):
        run_cli("--debug", "concepts", env={"DBANK_DEBUG": "0"})


def test_usage_errors_are_one_line_with_exit_2(run_cli):
    result = run_cli("diff", "horse")
    assert result.exit_code == 2
    assert result.stderr == "Error: Missing argument 'TARGET'. (see dbank diff --help)\n"
    assert run_cli("no-such-command").stderr.startswith("Error: No such command 'no-such-command'.")


def test_a_traceback_never_reaches_a_user_in_a_real_process(tmp_path, sd_model):
    env = {**os.environ, "DBANK_DEBUG": "0", "DBANK_DB": str(tmp_path / "b.db"), "DBANK_MODEL": str(sd_model)}
    done = subprocess.run([sys.executable, "-m", "direction_bank.cli", "similar", "x", "-k", "99999999999999999999"],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 2 and "Traceback" not in done.stderr and len(said(done.stderr)) == 1


def test_an_unsupported_database_or_missing_driver_is_one_line(run_cli):
    for url, fragment in (("mysql://me@db/bank", "cannot open mysql:// banks here (No module named"),
                          ("nosuch://x", "cannot open nosuch:// banks here")):
        result = run_cli("concepts", env={"DBANK_DB": url})
        assert result.exit_code == 1 and result.stderr.count("\n") == 1 and fragment in result.stderr


def test_similar_on_a_concept_with_two_encoders_names_it_once(run_cli, sd_model_wide, horse_and_zebra):
    run_cli("add-concept", "horse", "--sentences", "-", input=HORSE, model=sd_model_wide)
    result = run_cli("similar", "horse")
    assert result.exit_code == 1 and "'horse' has statistics from several encoders; pick one with --model" in result.stderr


def test_a_name_that_only_looks_like_another_is_warned_about(run_cli, horse_and_zebra):
    """'hоrse' with a Cyrillic о is another concept than 'horse' that no one can tell apart on
    screen: it is kept (it may be meant) but said, for concepts and directions alike; a
    full-width 'ｈｏｒｓｅ' is NFKC-normalised to 'horse' itself."""
    lookalike = "h\u043erse"
    result = run_cli("add-concept", lookalike, "--sentences", "-", input="a photo of a h\u043erse\n")
    assert result.exit_code == 0
    assert (f"warning: the new concept '{lookalike}' looks like the existing 'horse' (look-alike characters: "
            "U+043E)") in result.stderr
    again = run_cli("add-concept", lookalike, "--sentences", "-", input="a h\u043erse in a field\n")
    assert "warning" not in again.stderr  # only when the name is new
    assert run_cli("diff", "horse", "zebra", "--save", "h2z").exit_code == 0
    composed = run_cli("direction", "create", "\u04bb2z", "--add", "h2z")  # Cyrillic shha for h
    assert composed.exit_code == 0 and "looks like the existing 'h2z'" in composed.stderr
    assert "warning" not in run_cli("direction", "create", "h2y", "--add", "h2z").stderr
    before = {c["name"]: c["sentence_count"] for c in json.loads(run_cli("concepts", "--json").stdout)}
    fullwidth = run_cli("add-concept", "\uff48\uff4f\uff52\uff53\uff45", "--sentences", "-", input="a grey horse\n")
    assert fullwidth.exit_code == 0 and "warning" not in fullwidth.stderr
    after = {c["name"]: c["sentence_count"] for c in json.loads(run_cli("concepts", "--json").stdout)}
    assert after == {**before, "horse": before["horse"] + 1}
