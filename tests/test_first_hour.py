"""A newcomer's first hour: the demo model, defaults that follow the model and the bank, progress
off a terminal, cheap checks before slow work, and help and pictures that match the code."""
import json
import os
import re
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from PIL import Image

from direction_bank.cli import cli

HORSE = "a photo of a horse\na horse on a beach\na horse in a field\n"
ZEBRA = "a photo of a zebra\na zebra on a beach\na zebra in a field\n"

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def demo_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo") / "demo-sd"
    result = CliRunner().invoke(cli, ["demo-model", str(folder), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return folder, json.loads(result.stdout)


def test_demo_model_is_a_real_layout_with_the_real_tokenizer_and_example_photos(demo_model, tmp_path):
    """What `dbank demo-model` writes loads through the same code as a real id: the real CLIP
    tokenizer (its ids for a sentence are SD's), 64-pixel images by default, two photos."""
    from transformers import AutoTokenizer

    from direction_bank.text.encoder import TextEncoder
    from editor.pipeline import default_size
    from sd_models.family import has_second_text_encoder

    folder, report = demo_model
    assert report["model"] == str(folder.resolve()) and len(report["examples"]) == 2
    assert all(Image.open(path).size == (192, 128) for path in report["examples"])
    tokenizer = AutoTokenizer.from_pretrained(folder, subfolder="tokenizer")
    assert tokenizer("a photo of a horse").input_ids == [49406, 320, 1125, 539, 320, 4558, 49407]
    assert default_size(str(folder)) == 64 and not has_second_text_encoder(str(folder))
    assert TextEncoder.load(str(folder), device="cpu").sample_shape == (77, 32)
    assert oct(folder.stat().st_mode & 0o777) != oct(0o700)  # a folder like any other, not mkdtemp's
    from editor.evaluation import EditScorer  # and scoring models for eval and tune, loaded by folder

    assert (report["clip_model"], report["dino_model"]) == (str(folder.resolve() / "eval-clip"),
                                                            str(folder.resolve() / "eval-dino"))
    scorer = EditScorer.load(report["clip_model"], report["dino_model"])
    photo = Image.open(report["examples"][0]).convert("RGB")
    assert scorer.clip.texts(["a photo of a horse"]).shape[0] == 1 and scorer.dino.distance([photo], [photo]) == [0.0]


def test_demo_model_says_the_tours_exports_and_the_guide_the_current_schema(demo_model):
    from tests.test_tour import tour_commands

    folder, report = demo_model
    said = dict(pair.split("=", 1) for pair in report["try"].removeprefix("export ").split())
    tour = dict(pair.split("=", 1) for line in tour_commands().splitlines() if line.startswith("export ")
                for pair in line.split("#")[0].removeprefix("export ").split())
    assert said.keys() == tour.keys() and said["DBANK_STEPS"] == tour["DBANK_STEPS"]
    assert said["DBANK_MODEL"] == str(folder.resolve()) and said["DBANK_DB"] == str(folder.resolve().parent / "demo.db")
    head = max(path.name[:4] for path in (ROOT / "db" / "migrations" / "versions").glob("[0-9]*.py"))
    assert f"to the current schema ({head}, which `dbank\ncheck` names)" in (ROOT / "docs/guide/bank.md").read_text()


def test_demo_model_never_writes_over_a_folder(demo_model, tmp_path):
    folder, _ = demo_model
    before = sorted(p.name for p in folder.iterdir())
    again = CliRunner().invoke(cli, ["demo-model", str(folder)])
    assert again.exit_code == 1 and again.output.strip() == f"Error: {folder} exists and is not an empty folder; name a new one"
    assert sorted(p.name for p in folder.iterdir()) == before
    (tmp_path / "empty").mkdir()
    assert CliRunner().invoke(cli, ["demo-model", str(tmp_path / "empty")]).exit_code == 0
    assert (tmp_path / "empty" / "unet" / "config.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no half-built folder left


def test_model_commands_default_to_the_banks_only_encoder(run_cli, tiny_sd, sd_model_wide, tmp_path):
    """Without --model or DBANK_MODEL, a model command loads the bank's text encoder when the bank
    holds exactly one (here: offline, so SD 1.5 would be a one-line error); with two, SD 1.5."""
    no_model = {"DBANK_MODEL": None}
    run_cli("add-concept", "horse", "--sentences", "-", input=HORSE, model=tiny_sd)
    run_cli("add-concept", "zebra", "--sentences", "-", input=ZEBRA, model=tiny_sd)
    paired = run_cli("diff", "horse", "zebra", "--paired", "--json", env=no_model)
    assert paired.exit_code == 0, paired.stderr
    assert json.loads(paired.stdout)["encoder"]["model"] == str(tiny_sd)
    run_cli("diff", "horse", "zebra", "-o", str(tmp_path / "h2z.safetensors"))
    imported = run_cli("import", str(tmp_path / "h2z.safetensors"), "--name", "h2z-copy", env=no_model)
    assert imported.exit_code == 0, imported.stderr
    edited = run_cli("edit", str(_photo(tmp_path)), "--direction", "h2z-copy", "--caption", "a horse", "--steps", "2",
                     "-o", str(tmp_path / "out"), "--json", env=no_model)
    assert edited.exit_code == 0, edited.stderr
    assert Image.open(json.loads(edited.stdout)["results"][0]["edits"]["h2z-copy"]).size == (32, 24)  # tiny_sd's 32
    # a second encoder in the bank: no single default, so SD 1.5 (not cached here: one line)
    run_cli("add-concept", "cat", "--sentences", "-", input="a cat\na small cat\n", model=sd_model_wide)
    second = run_cli("diff", "horse", "zebra", "--paired", env=no_model)
    assert second.exit_code == 1 and "stable-diffusion-v1-5/stable-diffusion-v1-5" in second.stderr
    assert second.stderr.count("\n") == 1


def test_diff_honours_dbank_model(run_cli, sd_model, sd_model_wide):
    """Plain diff reads DBANK_MODEL like every other command: when the concepts share several
    encoders it picks that one; when they share one, that one (whatever DBANK_MODEL says)."""
    for model in (sd_model, sd_model_wide):
        run_cli("add-concept", "horse", "--sentences", "-", input=HORSE, model=model)
        run_cli("add-concept", "zebra", "--sentences", "-", input=ZEBRA, model=model)
    run_cli("add-concept", "cat", "--sentences", "-", input="a cat\na small cat\n", model=sd_model_wide)
    unsure = run_cli("diff", "horse", "zebra", env={"DBANK_MODEL": None})
    assert unsure.exit_code == 1 and "share several encoders; pick one with --model" in unsure.stderr
    for model in (sd_model, sd_model_wide):
        chosen = run_cli("diff", "horse", "zebra", "--json", model=model)
        assert json.loads(chosen.stdout)["encoder"]["model"] == str(model)
    only = run_cli("diff", "horse", "cat", "--json", model=sd_model)  # they share the wide one alone
    assert only.exit_code == 0 and json.loads(only.stdout)["encoder"]["model"] == str(sd_model_wide)
    named = run_cli("diff", "horse", "cat", "--model", str(sd_model))  # a flag is not a preference
    assert named.exit_code == 1 and "none match --model" in named.stderr


def _photo(tmp_path):
    path = tmp_path / "photo.png"
    if not path.exists():
        Image.new("RGB", (48, 40), (120, 160, 90)).save(path)
    return path


def test_long_work_reports_progress_off_a_terminal(run_cli, tiny_sd, tmp_path, monkeypatch):
    """Off a terminal a bar would be noise, but silence for an hour is worse: long work writes a
    plain line every PLAIN_INTERVAL_S seconds; work that ends sooner writes none."""
    import direction_bank.progress as progress

    run_cli("add-concept", "horse", "--sentences", "-", input=HORSE, model=tiny_sd)
    run_cli("add-concept", "zebra", "--sentences", "-", input=ZEBRA, model=tiny_sd)
    run_cli("diff", "horse", "zebra", "--save", "h2z")
    args = ["edit", str(_photo(tmp_path)), "--direction", "h2z", "--caption", "a horse", "--steps", "3", "--no-cache"]
    quiet = run_cli(*args, "-o", str(tmp_path / "quiet"), model=tiny_sd)
    assert quiet.exit_code == 0 and "step" not in quiet.stderr
    monkeypatch.setattr(progress, "PLAIN_INTERVAL_S", 0.0)
    talkative = run_cli(*args, "-o", str(tmp_path / "talkative"), model=tiny_sd)
    assert talkative.exit_code == 0, talkative.stderr
    for done in ("inverting: 3/3 step (100%)", "editing: 3/3 step (100%)", "images: 1/1 img (100%)"):
        assert re.search(rf"^{re.escape(done)}, \d+ s$", talkative.stderr, re.MULTILINE), talkative.stderr
    assert "\r" not in talkative.stderr


def test_an_edit_needing_blip_fails_before_anything_loads_and_leaves_no_folder(run_cli, tmp_path):
    """No --caption and no BLIP: one line about the captioning model, even where the SD model
    itself is missing (so that check came first), and no output folder."""
    out = tmp_path / "out" / "nested"
    result = run_cli("edit", str(_photo(tmp_path)), "--direction", "h2z", "-o", str(out),
                     "--model", str(tmp_path / "no-such-model"))
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert "the captioning model 'Salesforce/blip-image-captioning-base'" in result.stderr
    assert "pass --caption" in result.stderr and not (tmp_path / "out").exists()
    swept = run_cli("sweep", str(_photo(tmp_path)), "--direction", "h2z", "-o", str(out))
    assert swept.exit_code == 1 and "captioning model" in swept.stderr and not (tmp_path / "out").exists()


def test_a_photo_that_is_not_there_is_the_first_thing_said(run_cli, tmp_path):
    """Checked before the captioner (no BLIP here), the bank and the model: the cheap check first."""
    missing, fifo = tmp_path / "no-such.png", tmp_path / "a-pipe.png"
    os.mkfifo(fifo)
    out = tmp_path / "out"
    expected = [
        (("edit", str(missing), "--direction", "h2z", "-o", str(out)), f"{missing}: no such file"),
        (("edit", str(missing), str(tmp_path / "nor.png"), "--direction", "h2z", "-o", str(out)),
         f"{missing}: no such file (nor any of the other 1)"),
        (("sweep", str(missing), "--direction", "h2z", "-o", str(out)), f"{missing}: no such file"),
        (("edit", str(fifo), "--direction", "h2z", "-o", str(out)), f"{fifo}: not a regular file"),
        (("tune", "h2z", str(missing), "--dry-run"), f"{missing}: no such file"),
        (("eval", str(missing), "--direction", "h2z", "-o", str(out)), f"{missing}: no such file"),
    ]
    for args, message in expected:
        result = run_cli(*args)
        assert (result.exit_code, result.stderr) == (1, f"Error: {message}\n"), args
    assert not out.exists()


def test_nothing_is_created_when_the_model_cannot_load(run_cli, tiny_sd, tmp_path):
    run_cli("add-concept", "horse", "--sentences", "-", input=HORSE, model=tiny_sd)
    run_cli("add-concept", "zebra", "--sentences", "-", input=ZEBRA, model=tiny_sd)
    run_cli("diff", "horse", "zebra", "--save", "h2z")
    broken = tmp_path / "broken-model"
    (broken / "unet").mkdir(parents=True)
    (broken / "unet" / "config.json").write_text("{not json")
    for args in (["edit", str(_photo(tmp_path)), "--caption", "a horse"], ["generate-edit", "a horse"],
                 ["sweep", str(_photo(tmp_path)), "--caption", "a horse"]):
        out = tmp_path / f"out-{args[0]}"
        result = run_cli(*args, "--direction", "h2z", "-o", str(out), "--model", str(broken))
        assert result.exit_code == 1 and result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
        assert not out.exists(), args[0]


def test_ray_without_the_extra_is_the_install_line(run_cli, tmp_path, monkeypatch):
    for module in ("ray", "ray.data"):
        monkeypatch.setitem(sys.modules, module, None)  # as if `dbank[ray]` was not installed
    result = run_cli("edit", str(_photo(tmp_path)), "--direction", "h2z", "--caption", "a horse", "--engine", "ray",
                     "-o", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert result.stderr == "Error: --engine ray needs Ray Data, which is not installed: pip install 'dbank[ray]'\n"
    assert not (tmp_path / "out").exists()


def test_every_option_has_help_and_edit_only_options_stay_on_edit():
    """Help matches the code: every option says what it does; generate-edit, which never
    captions or inverts, offers neither --caption-model nor --no-cache; commands that load the
    whole pipeline say so of --model."""
    def commands(group, path):
        context = click.Context(group)
        for name in group.list_commands(context):
            command = group.get_command(context, name)
            yield f"{path} {name}", command
            if isinstance(command, click.Group):
                yield from commands(command, f"{path} {name}")

    listed = dict(commands(cli, "dbank"))
    missing = [(name, p.name) for name, command in listed.items() for p in command.params
               if isinstance(p, click.Option) and not p.help]
    assert missing == []
    generate = {p.name for p in listed["dbank generate-edit"].params}
    assert not {"caption_model", "no_cache"} & generate and {"caption_model", "no_cache"} <= {
        p.name for p in listed["dbank edit"].params}
    model_help = lambda name: next(p.help for p in listed[name].params if p.name == "model")  # noqa: E731
    assert "whole pipeline" in model_help("dbank edit") and "whole pipeline" in model_help("dbank sweep")
    assert "text encoder embeds" in model_help("dbank add-concept")


def test_a_command_imports_only_its_own_module():
    """Each command is declared under the module that defines it, and looking one up in a fresh
    interpreter imports that module alone: `dbank concepts` loads no editing options or studio."""
    import subprocess
    import sys

    from direction_bank.cli.app import BankGroup

    context = click.Context(cli)
    declared = {name: module for module, names in BankGroup.COMMAND_MODULES.items() for name in names}
    assert {name: cli.get_command(context, name).callback.__module__ for name in cli.list_commands(context)} == {
        name: f"direction_bank.cli.{module}" for name, module in declared.items()}
    loaded = subprocess.run([sys.executable, "-c", (
        "import sys, click; from direction_bank.cli.app import cli; cli.get_command(click.Context(cli), 'concepts');"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('direction_bank.cli.'))))")],
        capture_output=True, text=True, check=True).stdout.split()
    commands = [name for name in loaded if name.rsplit(".", 1)[1] in BankGroup.COMMAND_MODULES]
    assert commands == ["direction_bank.cli.concepts"] and "direction_bank.cli.editor_options" not in loaded


def test_grid_labels_wrap_and_are_never_cut():
    """'reconstruction' under a 32-pixel picture was cut to 'reconstr…': the column grows to the
    word, and a long caption wraps onto more lines, every character kept."""
    from editor.pictures import _font, _wrap, contact_sheet

    font = _font()
    picture = Image.new("RGB", (32, 32), (200, 0, 0))
    caption = "a horse standing in a wide green field near an old wooden barn at sunset"
    sheet = contact_sheet([{"name": "x.png", "caption": caption, "input": picture, "reconstruction": picture,
                            "edits": {"horse2zebra": picture}}], ["horse2zebra"])
    assert sheet.width >= 6 + font.getlength("x.png: a horse") + font.getlength("reconstruction")
    lines = _wrap(caption, 120, font)
    assert len(lines) > 1 and " ".join(lines) == caption and all(font.getlength(line) <= 120 for line in lines)
    assert "".join(_wrap("supercalifragilistic", 30, font)) == "supercalifragilistic"


def test_check_says_what_it_checked(run_cli, tiny_sd):
    run_cli("add-concept", "horse", "--sentences", "-", input=HORSE, model=tiny_sd)
    run_cli("add-concept", "zebra", "--sentences", "-", input=ZEBRA, model=tiny_sd)
    run_cli("diff", "horse", "zebra", "--save", "h2z")
    plain = run_cli("check")
    assert plain.exit_code == 0
    assert plain.stdout.splitlines() == [
        "checked schema 0006, 6 sentence hashes, 2 statistics (concept x encoder) and 1 directions",
        "the bank is sound"]
    deep = json.loads(run_cli("check", "--deep", "--sample", "2", "--json").stdout)
    assert deep["checked"] == {"schema_version": "0006", "sentences": 6, "statistics": 2, "directions": 1,
                               "re_embedded": 4, "compared_whole": 0, "compared_by_sample": 2, "imported_means": 0}


def test_saved_directions_show_when_their_concepts_changed(run_cli, tiny_sd):
    run_cli("add-concept", "horse", "--sentences", "-", input=HORSE, model=tiny_sd)
    run_cli("add-concept", "zebra", "--sentences", "-", input=ZEBRA, model=tiny_sd)
    run_cli("diff", "horse", "zebra", "--save", "h2z")
    assert "changed" not in run_cli("show", "h2z").stdout and "changed" not in run_cli("direction", "list").stdout
    run_cli("add-concept", "horse", "--sentences", "-", input="a horse at night\n", model=tiny_sd)
    shown = run_cli("show", "h2z").stdout
    assert ("made from 3/3 sentences; horse/zebra hold 4/3 now: dbank diff horse zebra --save h2z --overwrite "
            "brings it up to date") in shown
    assert run_cli("direction", "list").stdout.rstrip().endswith("concepts changed since")
    report = json.loads(run_cli("show", "h2z", "--json").stdout)
    assert report["concepts_changed"] is True and report["source_count_now"] == 4


def test_a_mistyped_name_gets_the_nearest_names_the_bank_holds(run_cli, horse_zebra_bank, tmp_path):
    image = tmp_path / "photo.png"
    Image.new("RGB", (32, 32)).save(image)
    expected = {
        ("diff", "hrose", "zebra"): "no concept named 'hrose' in the bank; did you mean 'horse'?",
        ("sentences", "zebar"): "no concept named 'zebar' in the bank; did you mean 'zebra'?",
        ("show", "hrose2zebra"): "no concept or direction named 'hrose2zebra' in the bank; did you mean 'horse2zebra'?",
        ("direction", "history", "horse2zebr"):
            "no direction named 'horse2zebr' in the bank; did you mean 'horse2zebra'?",
        ("edit", str(image), "--direction", "horse2zebar", "--caption", "a horse", "-o", str(tmp_path / "out")):
            "horse2zebar: no direction named 'horse2zebar' in the bank; did you mean 'horse2zebra'?",
        ("remove", "hores"): "no concept or direction named 'hores' in the bank; did you mean 'horse'?",
        ("remove", "horse2zebr"):
            "no concept or direction named 'horse2zebr' in the bank; did you mean 'horse2zebra'?",
        ("diff", "cat", "zebra"): "no concept named 'cat' in the bank",  # nothing close: no guess
    }
    for args, message in expected.items():
        result = run_cli(*args)
        assert (result.exit_code, result.stderr) == (1, f"Error: {message}\n"), args
    assert not (tmp_path / "out").exists()
