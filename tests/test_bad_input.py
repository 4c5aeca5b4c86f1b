"""Bad input, table by table, through the real CLI: every case must exit non-zero with exactly one
line on stderr (no traceback) and leave the bank as it was (statistics, directions, imports;
`check --deep` still passes). Classes: shared files, output files, read-only commands, numbers at
the door, text and names, models. Images, remote servers and the boundary have their own tests."""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sqlalchemy import text

from direction_bank import Bank
from direction_bank.sharing.files import read_metadata, write_shared_file
from tests.banks import bank_from_commands
from tests.output import said

HORSE = "a photo of a horse\na horse on a beach\na brown horse in a stable\n"
ZEBRA = "a photo of a zebra\na zebra on the savanna\na zebra at a river\n"


def snapshot(database) -> dict:
    """Everything a bad input must not change: names, counts, statistics bytes, directions,
    imported files."""
    with Bank(database, read_only=True) as bank, bank.db.reading() as session:
        def rows(sql):
            return [tuple(hashlib.sha256(v).hexdigest() if isinstance(v, bytes) else v for v in row)
                    for row in session.execute(text(sql))]

        return {
            "concepts": rows("SELECT name FROM concepts ORDER BY name"),
            "sentences": rows("SELECT concept_id, text FROM sentences ORDER BY id"),
            "statistics": rows("SELECT concept_id, encoder_id, count, mean_norm FROM statistics ORDER BY 1, 2"),
            "moments": rows("SELECT concept_id, encoder_id, mean, m2 FROM moments ORDER BY 1, 2"),
            "directions": rows("SELECT name, tensor, norm FROM directions ORDER BY name"),
            "imported": rows("SELECT sha256, name FROM imported_files ORDER BY sha256"),
            "encoders": rows("SELECT fingerprint FROM encoders ORDER BY id"),
        }


@pytest.fixture
def seeded(run_cli, database, sd_model, sqlite_banks, tmp_path, monkeypatch):
    """A bank with horse, zebra and the saved direction horse2zebra, good files of both kinds
    to tamper with, and the working folder set to an empty one."""
    bank_from_commands(database, sd_model, ((("add-concept", "horse", "--sentences", "-"), HORSE),
                                            (("add-concept", "zebra", "--sentences", "-"), ZEBRA),
                                            (("diff", "horse", "zebra", "--save", "horse2zebra"), None)), sqlite_banks)
    files = tmp_path / "files"
    files.mkdir()
    assert run_cli("export", "horse2zebra", "-o", str(files / "good.safetensors")).exit_code == 0
    assert run_cli("export", "--concept", "horse", "-o", str(files / "horse.safetensors")).exit_code == 0
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return files


def assert_one_line_and_unchanged(run_cli, database, args, fragment, exit_codes=(1, 2), input=None, env=None):
    """Run one bad input; check the exit code, the single stderr line and the bank afterwards."""
    before = snapshot(database)
    result = run_cli(*args, input=input, env=env)
    lines = said(result.stderr)
    assert result.exit_code in exit_codes, (args, result.exit_code, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("Error: "), (args, result.stderr)
    assert "Traceback" not in result.output
    assert fragment in lines[0], (args, lines[0])
    assert snapshot(database) == before, args
    return lines[0]


def assert_sound(run_cli):
    checked = run_cli("check", "--deep", "--json")
    assert checked.exit_code == 0 and json.loads(checked.stdout)["ok"], checked.stdout


# -- 1. shared files are checked against the bank before anything is stored ------------------


def _retyped(original, destination, changes: dict, kind="direction", tensors=None):
    """A copy of a good dbank file with metadata fields changed (tensor hashes recomputed)."""
    from safetensors.numpy import load_file

    meta = {k: v for k, v in read_metadata(original).items() if k not in ("kind", "tensors")}
    for key, value in changes.items():
        *path, last = key.split(".")
        node = meta
        for part in path:
            node = node[part]
        node[last] = value
    write_shared_file(destination, kind, tensors or load_file(str(original)), meta)
    return destination


def _nested(original, destination, depth=100_000):
    """A copy of a good dbank file whose metadata JSON is nested `depth` deep."""
    from safetensors.numpy import load_file, save_file

    save_file(load_file(str(original)), str(destination), metadata={"dbank": '{"a":' * depth + "1" + "}" * depth})
    return destination


def _pt(path, tensor):
    torch.save(tensor, path)
    return path


def _shared_file_cases(files):
    good, bundle = files / "good.safetensors", files / "horse.safetensors"
    from safetensors.numpy import load_file

    arrays = load_file(str(good))
    short = {name: a[..., :10, :] if name == "direction" else a[:10] for name, a in arrays.items()}
    huge = {name: np.full_like(a, 1e38) for name, a in load_file(str(bundle)).items()}
    d = arrays["direction"].shape[-1]
    return [
        (_pt(files / "long.pt", torch.randn(1, 1000, d)), "shape [1000,"),
        (_pt(files / "empty.pt", torch.randn(1, 0, d)), "empty tensor"),
        (_pt(files / "huge.pt", torch.full((1, 77, d), 1e38)), "outside [-10000, 10000]"),
        (_pt(files / "nan.pt", torch.full((1, 77, d), float("nan"))), "NaN or infinite"),
        (_pt(files / "sparse.pt", torch.zeros(1, 77, d).to_sparse()), "sparse"),
        (_pt(files / "ints.pt", torch.zeros(1, 77, d, dtype=torch.int64)), "expected floating point"),
        (_pt(files / "dict.pt", {"mean": torch.zeros(1, 77, d)}), "expected a bare tensor"),
        # (a name of its own: a name in use is refused before the model loads, see test_trash)
        (_retyped(good, files / "short.safetensors", {"encoder.max_length": 10, "name": "short"}, tensors=short),
         "embeds sentences as [1, 77,"),
        (_retyped(bundle, files / "huge.safetensors", {}, "concept", huge), "outside [-10000, 10000]"),
        (_retyped(good, files / "v-true.safetensors", {"format_version": True}), "format version True"),
        (_retyped(good, files / "v-str.safetensors", {"format_version": "2"}),
         "format version '2' is not a version number"),
        (_nested(good, files / "nested.safetensors"), "nested too deeply"),
        (_retyped(bundle, files / "big-settings.safetensors",
                  {"sentences": [{"text": "a photo of a horse", "settings": {"x": "y" * 5_000_000}}]}, "concept"),
         "metadata field sentences.0.settings"),
        (_retyped(good, files / "big-recipe.safetensors", {"recipe": {"sum": [["x", 1.0]] * 10_000}}),
         "metadata field recipe"),
        (_retyped(good, files / "enc-list.safetensors", {"encoder": [1, 2]}), "metadata field encoder"),
        (_retyped(good, files / "hidden-str.safetensors", {"encoder.hidden_size": "32"}),
         "metadata field encoder.hidden_size"),
        (_retyped(good, files / "name-num.safetensors", {"name": 7}), "metadata field name"),
        (_retyped(good, files / "source-list.safetensors", {"source": ["horse"]}), "metadata field source"),
        (_retyped(good, files / "snr-str.safetensors", {"confidence": {"snr": "high"}}),
         "metadata field confidence.snr"),
        (_retyped(good, files / "null-enc.safetensors", {"encoder": None}), "metadata field encoder"),
        (_retyped(bundle, files / "count-str.safetensors", {"count": "3"}, "concept"), "metadata field count"),
        (_retyped(bundle, files / "sent-num.safetensors", {"sentences": [{"text": 5}]}, "concept"),
         "metadata field sentences.0.text"),
        (_retyped(good, files / "ansi.safetensors", {"name": "evil\x1b[31m"}), "control or invisible"),
        (files, "is a directory"),
    ]


def test_bad_shared_files_are_refused_before_anything_is_stored(run_cli, database, seeded):
    for path, fragment in _shared_file_cases(seeded):
        assert_one_line_and_unchanged(run_cli, database, ["import", str(path)], fragment)
    assert_sound(run_cli)
    # the bank still lists, compares and checks every concept
    assert run_cli("similar", "horse").exit_code == 0 and run_cli("diff", "horse", "zebra").exit_code == 0


def test_a_removed_import_can_be_imported_again(run_cli, seeded):
    bundle = seeded / "horse.safetensors"
    assert run_cli("import", str(bundle), "--name", "pony").exit_code == 0
    again = run_cli("import", str(bundle), "--name", "pony", "--json")
    assert json.loads(again.stdout)["already_imported"] is True
    assert run_cli("remove", "pony").exit_code == 0
    back = run_cli("import", str(bundle), "--name", "pony", "--json")
    assert back.exit_code == 0 and json.loads(back.stdout)["already_imported"] is False
    assert "pony" in [c["name"] for c in json.loads(run_cli("concepts", "--json").stdout)]


def test_check_flags_a_damaged_row_and_the_others_still_work(run_cli, database, seeded):
    with Bank(database) as bank, bank.db.writing() as session:
        zebra = session.execute(text("SELECT id FROM concepts WHERE name = 'zebra'")).scalar()
        session.execute(text("UPDATE moments SET mean = :blob WHERE concept_id = :id"),
                        {"blob": b"\x00" * 12, "id": zebra})
        session.execute(text("UPDATE directions SET tensor = :blob WHERE name = 'horse2zebra'"),
                        {"blob": np.full(77 * 32, np.inf, "<f4").tobytes()})
    run_cli("add-concept", "pony", "--sentences", "-", input="a pony\na small pony\n")
    checked = run_cli("check", "--json")
    problems = json.loads(checked.stdout)["problems"]
    assert checked.exit_code == 1
    assert any("zebra" in p and "wrong size" in p for p in problems)
    assert any("horse2zebra" in p and "NaN or infinite" in p for p in problems)
    listed = json.loads(run_cli("similar", "horse", "--json").stdout)
    assert [r["name"] for r in listed] == ["pony"]  # the damaged zebra is left out, not a crash
    assert run_cli("diff", "horse", "pony").exit_code == 0
    assert "does not fit the shape [77, 32]; run dbank check" in run_cli("diff", "horse", "zebra").stderr


# -- 2, 3. outputs are never silently overwritten, and written safely ----------------------------


def test_bad_output_paths_are_one_line_and_replace_nothing(run_cli, database, seeded, tmp_path):
    existing = tmp_path / "existing.safetensors"
    existing.write_bytes(b"keep me")
    target = tmp_path / "target.txt"
    target.write_text("the link's target")
    link = tmp_path / "link.safetensors"
    link.symlink_to(target)
    fifo = tmp_path / "fifo.safetensors"
    os.mkfifo(fifo)
    cases = [
        (["export", "horse2zebra", "-o", str(existing)], "exists; pass --overwrite"),
        (["export", "horse2zebra", "-o", str(link), "--overwrite"], "it is a symlink"),
        (["export", "horse2zebra", "-o", str(fifo), "--overwrite"], "it is a FIFO"),
        (["export", "horse2zebra", "-o", "/dev/null", "--overwrite"], "it is a device"),
        (["export", "horse2zebra", "-o", str(tmp_path / "no" / "such" / "x.safetensors")], "no folder"),
        (["diff", "horse", "zebra", "-o", str(existing)], "exists; pass --overwrite"),
        (["export", "--concept", "horse", "-o", str(link)], "it is a symlink"),
    ]
    if sqlite_bank(database):
        cases += [(["backup", str(existing)], "exists; pass --overwrite"),
                  (["backup", str(link), "--overwrite"], "it is a symlink"),
                  # pointless or self-destructive: the bank onto itself, by any path
                  (["backup", str(database), "--overwrite"], "is the bank itself"),
                  (["backup", str(Path(database).parent / "." / Path(database).name), "--overwrite"],
                   "is the bank itself"),
                  (["backup", f"{database}-wal", "--overwrite"], "is the bank itself")]
    for args, fragment in cases:
        assert_one_line_and_unchanged(run_cli, database, args, fragment)
    assert existing.read_bytes() == b"keep me" and target.read_text() == "the link's target"
    assert link.is_symlink() and fifo.is_fifo()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == []


def sqlite_bank(database) -> bool:
    return "://" not in str(database)


def test_outputs_are_atomic_get_the_umask_and_default_names_stay_here(run_cli, seeded, tmp_path):
    old = os.umask(0o027)
    try:
        assert run_cli("export", "horse2zebra").exit_code == 0
    finally:
        os.umask(old)
    written = tmp_path / "work" / "horse2zebra.safetensors"
    assert written.stat().st_mode & 0o777 == 0o640
    replaced = run_cli("export", "horse2zebra", "--overwrite", "--json")
    assert replaced.exit_code == 0 and json.loads(replaced.stdout)["file"] == "horse2zebra.safetensors"
    for name in ("../evil", "/etc/evil", ".."):
        assert run_cli("diff", "horse", "zebra", "--save", name).exit_code == 0
        exported = run_cli("export", name, "--json")
        assert exported.exit_code == 0, exported.stderr
        assert "/" not in json.loads(exported.stdout)["file"]
    assert not (tmp_path / "evil.safetensors").exists()
    names = sorted(p.name for p in (tmp_path / "work").iterdir())
    assert len(names) == 4 and all(n.endswith(".safetensors") and not n.startswith(".") for n in names)


# -- 4. read-only commands change nothing ---------------------------------------------------


READ_ONLY = [["concepts"], ["show", "horse"], ["sentences", "horse"], ["diff", "a", "b"], ["direction", "list"],
             ["similar", "horse"], ["queue"], ["check"], ["export", "x", "-o", "x.safetensors"]]


def _files_of(path):
    return {p.name: p.read_bytes() for p in path.parent.iterdir() if p.name.startswith(path.name)}


@pytest.mark.sqlite_only
def test_another_programs_database_is_refused_untouched(run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    other = tmp_path / "other_app.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        connection.execute("INSERT INTO notes (body) VALUES ('mine')")
    connection.close()
    before = _files_of(other)
    for args in [*READ_ONLY, ["add-concept", "horse", "--sentences", "-"], ["remove", "horse"]]:
        result = run_cli("-d", str(other), *args, input="a horse\n")
        lines = said(result.stderr)
        assert result.exit_code == 1 and len(lines) == 1, (args, result.stderr)
        assert "is not a dbank bank" in lines[0], lines[0]
        assert _files_of(other) == before, args  # byte-identical, no -wal or -shm beside it


def test_a_bank_from_a_newer_dbank_is_one_line(run_cli, seeded, database):
    from db import migrations

    with Bank(database) as bank, bank.db.writing() as session:
        session.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    for args in (["concepts"], ["add-concept", "horse", "--sentences", "-"]):
        result = run_cli(*args, input="a horse\n")
        assert result.exit_code == 1
        assert result.stderr.strip().endswith(
            f"was made by a newer dbank (schema version 9999; this dbank knows up to {migrations.HEAD}); upgrade dbank")


@pytest.mark.sqlite_only
def test_a_bank_in_a_read_only_folder_can_be_read(run_cli, tmp_path, sd_model):
    import shutil
    import subprocess
    import sys

    if not shutil.which("unshare"):
        pytest.skip("needs unshare(1) to mount a folder read-only")
    folder = tmp_path / "ro"
    folder.mkdir()
    bank = folder / "bank.db"
    env = {"DBANK_DB": str(bank), "DBANK_MODEL": str(sd_model)}
    assert run_cli("add-concept", "horse", "--sentences", "-", input=HORSE, env=env).exit_code == 0
    dbank = [sys.executable, "-m", "direction_bank.cli", "-d", str(bank)]
    script = (f"mount --bind {folder} {folder} && mount -o remount,bind,ro {folder} && "
              f"{' '.join(dbank)} concepts --json && {' '.join(dbank)} sentences horse")
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount --bind {folder} {folder} && "
                            f"mount -o remount,bind,ro {folder} && touch {folder}/x"],
                           capture_output=True, text=True)
    if "Read-only file system" not in probe.stderr:
        pytest.skip(f"cannot mount a folder read-only here ({probe.stderr.strip()[:80]})")
    before = _files_of(bank)
    done = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True,
                          env={**os.environ, "DBANK_DEBUG": "0"})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.split("\n]")[0] + "\n]")[0]["sentence_count"] == 3
    assert "a brown horse in a stable" in done.stdout
    assert _files_of(bank) == before


# -- 6. numbers are checked at the door, before any model loads -------------------------------


NUMBERS = [
    (["edit", "x.png", "--direction", "d", "-o", "out", "--steps", "0"], "--steps"),
    (["edit", "x.png", "--direction", "d", "-o", "out", "--steps", "-1"], "--steps"),
    (["edit", "x.png", "--direction", "d", "-o", "out", "--scale", "nan"], "--scale"),
    (["edit", "x.png", "--direction", "d", "-o", "out", "--scale", "inf"], "--scale"),
    (["edit", "x.png", "--direction", "d", "-o", "out", "--guidance-scale", "nan"], "--guidance-scale"),
    (["edit", "x.png", "--direction", "d", "-o", "out", "--xa-guidance", "-inf"], "--xa-guidance"),
    (["edit", "x.png", "--direction", "d", "-o", "out", "--seed", str(2**64)], "--seed"),
    (["generate-edit", "a cat", "--direction", "d", "-o", "out", "--size", "100000"], "--size"),
    (["generate-edit", "a cat", "--direction", "d", "-o", "out", "--size", "100"], "multiple of 8"),
    (["direction", "create", "x", "--add", "horse2zebra:1e39"], "finite number"),
    (["direction", "create", "x", "--add", "horse2zebra:nan"], "finite number"),
    (["remove-sentence", "horse", "--id", str(2**70)], "--id"),
    (["add-concept", "horse", "-n", str(2**70)], "--count"),
    (["add-concept", "horse", "--max-candidates", "0"], "--max-candidates"),
    (["add-concept", "horse", "--dedup-threshold", "nan"], "--dedup-threshold"),
    (["add-concept", "horse", "--timeout", "inf", "--generator", "openai"], "--timeout"),
    (["add-concepts", "list.txt", "--workers", "0"], "--workers"),
    (["add-concepts", "list.txt", "--lease", "nan"], "--lease"),
    (["check", "--sample", "-5"], "--sample"),
    (["similar", "horse", "-k", "0"], "--limit"),
    (["import", "x.pt", "--count", str(2**40)], "--count"),
]


def test_numbers_are_refused_at_the_door(run_cli, database, seeded):
    for args, fragment in NUMBERS:
        line = assert_one_line_and_unchanged(run_cli, database, args, fragment, exit_codes=(2,))
        assert line.endswith("--help)")
    for value in ("abc", "nan", "-1", "1e300"):
        assert_one_line_and_unchanged(run_cli, database, ["concepts"], "DBANK_BUSY_TIMEOUT",
                                      env={"DBANK_BUSY_TIMEOUT": value})
    (seeded / "counts.csv").write_text(f"horse,{2**40}\n")
    assert_one_line_and_unchanged(run_cli, database, ["add-concepts", str(seeded / "counts.csv")], "count")
    assert_sound(run_cli)


# -- 8. text and names --------------------------------------------------------------------------


def test_bad_text_and_names_are_one_line(run_cli, database, seeded):
    (seeded / "latin1.txt").write_bytes("a horse in a caf\xe9\n".encode("latin-1"))
    (seeded / "binary.txt").write_bytes(b"a horse\x00\x01\x02\n")
    (seeded / "list.txt").write_bytes(b"\xff\xfehorse\n")
    cases = [
        (["add-concept", "horse", "--sentences", str(seeded / "latin1.txt")], "not UTF-8 text"),
        (["add-concept", "horse", "--sentences", str(seeded / "binary.txt")], "NUL bytes"),
        (["add-concept", "horse", "--sentences", "/dev/zero"], "is a device"),
        (["add-concept", "horse", "--sentences", str(seeded / "missing.txt")], "no file at"),
        (["add-concepts", str(seeded / "list.txt")], "not UTF-8 text"),
        (["add-concept", "ho\x1b[31mrse", "--sentences", "-"], "control or invisible"),
        (["add-concept", "a\x00b", "--sentences", "-"], "control or invisible"),
        (["add-concept", "x" * 10_000, "--sentences", "-"], "at most 200 characters"),
        (["add-concept", "\u200b", "--sentences", "-"], "control or invisible"),
        (["add-concept", "   ", "--sentences", "-"], "cannot be empty"),
        (["diff", "horse", "zebra", "--save", "d\x07"], "control or invisible"),
        (["direction", "create", "y" * 300, "--add", "horse2zebra"], "at most 200 characters"),
        (["import", str(seeded / "good.safetensors"), "--name", "\x1b]0;owned\x07"], "control or invisible"),
        (["show", "a\x00b"], "control or invisible"),
    ]
    for args, fragment in cases:
        assert_one_line_and_unchanged(run_cli, database, args, fragment, input="a horse\n")
    assert_sound(run_cli)


def test_control_characters_in_sentences_are_not_stored(run_cli, database, seeded):
    result = run_cli("add-concept", "horse", "--sentences", "-", "--json",
                     input="a horse \x1b[31mred\n a horse at dawn\n")
    assert json.loads(result.stdout)["added"] == 1 and json.loads(result.stdout)["refused"] == 1
    assert "1 lines with control characters were not stored" in result.stderr


def test_a_closed_stdin_is_one_line(seeded, database, sd_model):
    import subprocess
    import sys

    command = f"{sys.executable} -m direction_bank.cli add-concept horse --sentences - <&-"
    env = {**os.environ, "DBANK_DB": str(database), "DBANK_MODEL": str(sd_model), "DBANK_DEBUG": "0"}
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, env=env)
    assert done.returncode == 1
    assert done.stderr.strip() == "Error: standard input is closed; give a file, or pipe the sentences in"


# -- 9. models that cannot load fail fast, before a bank is made --------------------------------


def test_a_missing_model_is_one_line_and_leaves_no_bank(run_cli, bank_path, database, tmp_path):
    photo = tmp_path / "x.png"
    Image.new("RGB", (16, 16)).save(photo)
    cases = [
        (["add-concept", "horse", "--generator", "template", "--model", "nobody/no-sd"],
         "the Stable Diffusion text encoder 'nobody/no-sd' is not in the Hugging Face cache"),
        (["add-concept", "horse", "--llm", str(bank_path.parent / "none.gguf")], "no GGUF file"),
        (["add-concept", "horse", "--generator", "local", "--llm", "nobody/no-llm", "--dedup-model",
          "nobody/no-minilm"], "nobody/no-llm"),
        (["add-concept", "horse", "--generator", "openai", "--base-url", "http://127.0.0.1:9/v1",
          "--dedup-model", "./no/such/folder"], "the near-duplicate model './no/such/folder': no such folder"),
        (["edit", str(photo), "--direction", "nope", "--caption", "x", "-o", str(bank_path.parent / "out"),
          "--model", "/no/sd"], "add a concept first"),
    ]
    for args, fragment in cases:
        result = run_cli(*args)
        lines = said(result.stderr)
        assert result.exit_code == 1 and len(lines) == 1 and fragment in lines[0], (args, result.stderr)
    if sqlite_bank(database):
        assert not bank_path.exists()
