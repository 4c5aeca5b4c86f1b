"""`dbank eval` on tiny random SD, CLIP and DINO checkpoints: scores from an edit folder's records
and from edits it runs itself, the word-swap and reconstruction baselines, the report files, and
bad inputs as one line each. (Tiny random models: the numbers say nothing of edit quality.)"""
import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from direction_bank.jobs.edit_records import read_record
from editor.evaluation import ClipScorer, DinoStructure
from tests.output import said

STEPS = 2


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "photos" / "horse.png"
    path.parent.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def eval_cli(run_cli, tiny_sd, tiny_clip, tiny_dino, tmp_path, monkeypatch, horse_zebra_bank):
    monkeypatch.setenv("DBANK_CACHE", str(tmp_path / "cache"))
    models = {"DBANK_CLIP_MODEL": str(tiny_clip), "DBANK_DINO_MODEL": str(tiny_dino)}

    def run(*args, env=None):
        return run_cli(*args, "--steps", str(STEPS), "--size", "32", "--model", str(tiny_sd),
                       env={**models, **(env or {})})

    return run


def _by(summary, kind, scale=None):
    return [row for row in summary if row["kind"] == kind and (scale is None or row["scale"] == scale)]


@pytest.mark.bank_agnostic
def test_eval_scores_an_edit_folder_from_its_records(eval_cli, run_cli, image, tmp_path, tiny_clip, tiny_dino):
    out = tmp_path / "edits"
    edited = eval_cli("edit", str(image), "--direction", "horse2zebra", "--caption", "a photo of a horse",
                      "--attention-map", "horse", "-o", str(out), "--json")
    assert edited.exit_code == 0, edited.stderr
    result = run_cli("eval", str(out), "--json", env={"DBANK_CLIP_MODEL": str(tiny_clip),
                                                      "DBANK_DINO_MODEL": str(tiny_dino)})
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["errors"] == []
    # a folder dbank edit wrote holds no word-swap edits: said, not dropped without a word
    assert [w for w in report["warnings"] if w.startswith("no word-swap baseline: the records in ")]
    [direction], [reconstruction] = _by(report["summary"], "direction"), _by(report["summary"], "reconstruction")
    assert (direction["direction"], direction["source"], direction["target"], direction["images"]) == (
        "horse2zebra", "horse", "zebra", 1)
    assert reconstruction["setting"] == "reconstruction"
    [edit] = [row for row in report["edits"] if row["kind"] == "direction"]
    # the caption names the source, so the text change is the caption with the word swapped
    assert (edit["source_text"], edit["target_text"]) == ("a photo of a horse", "a photo of a zebra")
    record = read_record(json.loads(edited.stdout)["results"][0]["record"])
    picture = Image.open(out / edit["file"]).convert("RGB")
    photo = Image.open(image).convert("RGB").resize(picture.size, Image.Resampling.LANCZOS)
    clip, dino = ClipScorer.load(str(tiny_clip)), DinoStructure.load(str(tiny_dino))
    [expected] = clip.directional_similarity([photo], [picture], ["a photo of a horse"], ["a photo of a zebra"])
    assert edit["clip_directional_similarity"] == pytest.approx(expected, abs=1e-5)
    assert direction["clip_directional_similarity"]["mean"] == pytest.approx(expected, abs=1e-5)
    assert edit["structure_distance"] == pytest.approx(dino.distance([photo], [picture])[0], abs=1e-6)
    assert edit["background_change"] is not None and record.masks == {"horse": Path(
        json.loads(edited.stdout)["results"][0]["attention_maps_grey"]["horse"]).name}
    assert report["models"]["clip_directional_similarity"] == str(tiny_clip)
    paths = report["report"]
    with open(paths["summary"], newline="") as handle:
        assert handle.readline().startswith("# better: higher clip_directional_similarity")
        rows = list(csv.DictReader(handle))
    assert [row["kind"] for row in rows] == ["direction", "reconstruction"]
    assert float(rows[0]["clip_directional_similarity"]) == pytest.approx(expected, abs=1e-5)
    with open(paths["scores"], newline="") as handle:
        assert len(list(csv.DictReader(line for line in handle if not line.startswith("#")))) == 2
    assert Image.open(paths["plot"]).size[0] >= 600
    text = run_cli("eval", str(out), "--overwrite", env={"DBANK_CLIP_MODEL": str(tiny_clip),
                                                         "DBANK_DINO_MODEL": str(tiny_dino)})
    assert text.exit_code == 0, text.stderr
    assert "horse2zebra" in text.stdout and "95% BCa bootstrap interval] over the n images" in text.stdout
    assert "(1 image: no interval)" in text.stdout  # one photo: no bare "95%"
    models = {"DBANK_CLIP_MODEL": str(tiny_clip), "DBANK_DINO_MODEL": str(tiny_dino)}
    assert run_cli("eval", str(out), env=models).exit_code == 0  # the same report again: nothing to replace
    before = Path(paths["summary"]).read_bytes()
    refused = run_cli("eval", str(out), "--baseline", "none", env=models)  # another report
    assert refused.exit_code == 1 and refused.stderr.strip().endswith("exists; pass --overwrite to replace it")
    assert Path(paths["summary"]).read_bytes() == before


@pytest.mark.bank_agnostic
def test_eval_scores_a_generate_edit_folder(eval_cli, run_cli, tmp_path, tiny_clip, tiny_dino):
    out = tmp_path / "generated"
    made = eval_cli("generate-edit", "a photo of a horse", "--direction", "horse2zebra", "-o", str(out), "--json")
    assert made.exit_code == 0, made.stderr
    [result] = json.loads(made.stdout)["results"]
    record = read_record(result["record"])
    assert (record.input, record.reconstruction, record.regularised) == (
        str(Path(result["image"]).resolve()), Path(result["image"]).name, False)
    scored = run_cli("eval", str(out), "--json", env={"DBANK_CLIP_MODEL": str(tiny_clip),
                                                      "DBANK_DINO_MODEL": str(tiny_dino)})
    assert scored.exit_code == 0, scored.stderr
    summary = json.loads(scored.stdout)["summary"]
    [direction] = _by(summary, "direction")
    assert direction["images"] == 1 and direction["clip_directional_similarity"]["mean"] is not None
    [reconstruction] = _by(summary, "reconstruction")  # the generated picture itself: nothing changed
    assert reconstruction["structure_distance"]["mean"] == 0 and reconstruction["whole_image_change"]["mean"] == 0


def test_bad_records_in_a_folder_are_skipped_with_their_reasons(eval_cli, run_cli, image, tmp_path, tiny_clip,
                                                                tiny_dino):
    """A number as a source, an unknown baseline, a NUL byte in a file name: each record is one
    line with its reason (once 'unexpected AttributeError' for the whole folder), and the rest
    is scored."""
    out = tmp_path / "edits"
    edited = eval_cli("edit", str(image), "--direction", "horse2zebra", "--caption", "a photo of a horse",
                      "-o", str(out), "--json")
    assert edited.exit_code == 0, edited.stderr
    good = Path(json.loads(edited.stdout)["results"][0]["record"])
    data = json.loads(good.read_text())
    for name, change, reason in (
            ("number", lambda edit: edit.update(source=7), "the edit's source '7' is not a concept name"),
            ("baseline", lambda edit: edit.update(baseline="hand-made"),
             "the edit's baseline 'hand-made' is none dbank knows (word-swap)"),
            ("nul", lambda edit: edit.update(file="horse\x00.png"), "the edit's file is not a name")):
        bad = json.loads(json.dumps(data))
        change(bad["edits"][0])
        (out / f"horse.record-{name}.json").write_text(json.dumps(bad))
    result = run_cli("eval", str(out), "--json", env={"DBANK_CLIP_MODEL": str(tiny_clip),
                                                      "DBANK_DINO_MODEL": str(tiny_dino)})
    assert result.exit_code == 1
    errors = json.loads(result.stdout)["errors"]
    assert len(errors) == 4 and errors[-1] == f"skipped 3 of 4 edit records in {out} (each said above); scored the rest"
    assert "baseline 'hand-made' is none dbank knows" in errors[0]  # in the order of their file names
    assert "the edit's file is not a name" in errors[1] and "the edit's source '7' is not a concept name" in errors[2]
    [direction] = _by(json.loads(result.stdout)["summary"], "direction")
    assert direction["images"] == 1
    assert "unexpected" not in result.stderr


@pytest.mark.bank_agnostic
def test_eval_runs_the_edits_with_both_baselines_and_resumes(eval_cli, image, tmp_path, tiny_sd):
    out = tmp_path / "eval"
    args = ("eval", str(image.parent), "--direction", "horse2zebra", "--scale", "0.5,1", "--xa-guidance", "0.1,0.2",
            "--caption", "a horse in a field", "-o", str(out), "--json")
    result = eval_cli(*args)
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    summary = report["summary"]
    settings = [f"scale {s}, xa {g}" for s in ("0.5", "1") for g in ("0.1", "0.2")]
    assert [(row["direction"], row["kind"], row["setting"]) for row in summary] == [
        *[("horse2zebra", "direction", setting) for setting in settings],
        *[("word-swap horse->zebra", "word-swap", setting) for setting in settings],
        ("horse2zebra", "reconstruction", "reconstruction")]
    assert all(row["images"] == 1 for row in summary)  # the reconstruction too, though two records name it
    # the caption names the source: the text change is the caption to the caption with the word swapped
    assert {(row["source_text"], row["target_text"]) for row in report["edits"]} == {
        ("a horse in a field", "a zebra in a field")}
    records = sorted(out.glob("horse.record-*.json"))
    assert len(records) == 2  # one per guidance
    record = next(r for r in map(read_record, records) if r.edits[0].xa_guidance == 0.1)
    assert [(e.direction, e.scale, e.baseline) for e in record.edits] == [
        ("horse2zebra", 0.5, None), ("horse2zebra", 1.0, None),
        ("word-swap horse->zebra", 0.5, "word-swap"), ("word-swap horse->zebra", 1.0, "word-swap")]
    assert list(record.masks) == ["horse"] and all(row["background_change"] is not None for row in report["edits"])
    # the word-swap edits went from horse to zebra: 'a photo of a zebra' minus 'a photo of a horse'
    from direction_bank.text.encoder import TextEncoder
    from direction_bank.jobs.edit import parts_fingerprint
    from direction_bank.jobs.evaluate import word_swap_direction

    forward = parts_fingerprint(word_swap_direction(TextEncoder.load(str(tiny_sd), device="cpu"), "horse", "zebra"))
    assert {e.fingerprint for e in record.edits if e.baseline == "word-swap"} == {forward}
    # the two scales are different edits: a direction scaled by 0.5 moves the picture less
    half, whole = (Image.open(out / e.file) for e in record.edits[:2])
    assert half.tobytes() != whole.tobytes()
    files = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = eval_cli(*args)  # the records mark the edits done; the report is the same
    assert again.exit_code == 0, again.stderr
    assert "2 image edits were done by an earlier run" in again.stderr
    assert json.loads(again.stdout)["summary"] == summary
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == files
    # a run stopped after an image's pictures but before its record: that image is redone whole
    records[0].unlink()
    redone = eval_cli(*args, "--overwrite")
    assert redone.exit_code == 0, redone.stderr
    assert "1 image edits were done by an earlier run" in redone.stderr
    assert json.loads(redone.stdout)["summary"] == summary and records[0].is_file()
    # killed while writing the report (a half-written temporary, the plot not yet there); the
    # rerun finishes it, byte-identical, exits 0 and leaves nothing hidden
    plot = out / "eval-tradeoff.png"
    before = plot.read_bytes()
    plot.unlink()
    (out / ".eval-summary.csv.k1ll3d.tmp").write_text("half a summ")
    finished = eval_cli(*args)
    assert finished.exit_code == 0, finished.stderr
    assert plot.read_bytes() == before and not list(out.glob(".*"))


@pytest.mark.bank_agnostic
def test_eval_bad_inputs_are_one_line_each(eval_cli, run_cli, image, tmp_path, tiny_clip, tiny_dino):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = eval_cli("eval", str(empty))
    assert result.exit_code == 1 and result.stderr.strip() == (
        f"Error: {empty}: no edit records (STEM.record-*.json, which dbank edit writes beside its pictures); "
        "edit into it first, or give images with --direction")
    out = tmp_path / "eval"
    missing = eval_cli("eval", str(image), "--direction", "horse2zebra", "--caption", "a horse", "-o", str(out),
                       env={"DBANK_DINO_MODEL": str(tmp_path / "no-dino")})
    assert missing.exit_code == 1 and len(said(missing.stderr)) == 1
    assert "the DINO model" in missing.stderr and "no-dino" in missing.stderr and "--dino-model" in missing.stderr
    assert not out.exists()  # refused before any edit ran
    edits = tmp_path / "edits"
    assert eval_cli("edit", str(image), "--direction", "horse2zebra", "--caption", "a horse", "-o",
                    str(edits)).exit_code == 0
    Image.new("RGB", (16, 16)).save(edits / "horse.horse2zebra.png")  # an image of another size
    resized = eval_cli("eval", str(edits))
    assert resized.exit_code == 1
    assert said(resized.stderr)[-1] == (
        f"Error: {edits / 'horse.horse2zebra.png'}: 16x16, but its reconstruction is 32x24; not an edit of this record")
    (edits / "bad.record-0.json").write_text("{not json")
    assert "bad.record-0.json: not JSON" in eval_cli("eval", str(edits)).stderr


def _row(kind, scale, xa, similarity, structure, width=0.0):
    stat = lambda value: {"mean": value, "low": value - width, "high": value + width, "n": 5}  # noqa: E731
    return {"kind": kind, "scale": scale, "xa_guidance": xa, "clip_directional_similarity": stat(similarity),
            "structure_distance": stat(structure)}


def test_the_tuning_rule_takes_the_strongest_edit_that_keeps_the_structure():
    from direction_bank.jobs.tune import choose_setting

    summary = [_row("direction", 0.5, 0.1, 0.10, 0.11), _row("direction", 1.0, 0.1, 0.20, 0.12),
               _row("direction", 2.0, 0.1, 0.40, 0.30), _row("word-swap", 1.0, 0.1, 0.9, 0.1),
               _row("reconstruction", None, None, 0.0, 0.10)]
    chosen, allowed = choose_setting(summary, margin=0.02)
    assert (chosen["scale"], allowed) == (1.0, pytest.approx(0.12))  # 2.0 edits more but breaks the layout
    assert choose_setting(summary, margin=0.5)[0]["scale"] == 2.0
    assert choose_setting(summary, margin=0.0)[0] is None  # nothing keeps it: nothing is chosen


def test_a_setting_wins_only_when_its_interval_clears_the_runner_ups():
    from direction_bank.jobs.tune import choose_setting

    reconstruction = _row("reconstruction", None, None, 0.0, 0.10)
    overlapping = [_row("direction", 2.0, 0.1, 0.30, 0.11, width=0.05), _row("direction", 1.0, 0.2, 0.28, 0.11, 0.05),
                   _row("direction", 0.5, 0.1, 0.10, 0.11, 0.01)]
    chosen, _ = choose_setting([*overlapping, reconstruction], margin=0.02)
    assert (chosen["scale"], chosen["xa_guidance"]) == (1.0, 0.2)  # 0.30 does not clear 0.28: the smaller scale
    clear = [_row("direction", 2.0, 0.1, 0.30, 0.11, width=0.005), _row("direction", 1.0, 0.2, 0.28, 0.11, 0.005)]
    assert choose_setting([*clear, reconstruction], margin=0.02)[0]["scale"] == 2.0
    tie = [_row("direction", 1.0, 0.2, 0.30, 0.11), _row("direction", -0.5, 0.1, 0.30, 0.11),
           _row("direction", 1.0, 0.1, 0.30, 0.11)]  # equal: the smaller |scale|, then the smaller guidance
    assert choose_setting([*tie, reconstruction], margin=0.02)[0]["scale"] == -0.5
    assert choose_setting([tie[0], tie[2], reconstruction], margin=0.02)[0]["xa_guidance"] == 0.1


def test_photos_held_out_of_the_choice():
    from direction_bank.jobs.tune import held_out_photos

    assert held_out_photos(3, None) == [] and held_out_photos(1, 0.5) == []  # too few: in-sample
    held = held_out_photos(6, None, seed=2)
    assert len(held) == 3 and held == held_out_photos(6, None, seed=2) and set(held) <= set(range(6))
    assert len(held_out_photos(4, 0.9)) == 3 and len(held_out_photos(10, 0.05)) == 1  # never all, never none


def test_a_note_names_the_guidance_used_when_tunings_differ():
    from direction_bank.jobs.tune import tuned_settings

    own, scale, xa, notes = tuned_settings([("a", {"scale": 2.0, "xa_guidance": 0.2}),
                                            ("b", {"scale": 0.5, "xa_guidance": 0.05}), ("c", None)], None, None)
    assert (own, scale, xa) == ([2.0, 0.5, 1.0], 1.0, 0.1)
    assert notes[-1] == "the directions were tuned to different xa-guidance (0.05, 0.2); using 0.1"
    assert tuned_settings([("a", {"scale": 2.0, "xa_guidance": 0.2})], None, None)[2] == 0.2


def test_tune_stores_a_setting_that_show_edit_and_shared_files_use(eval_cli, run_cli, image, tmp_path):
    tuned = eval_cli("tune", "horse2zebra", str(image), "--scale", "0.5,1.5", "--xa-guidance", "0.2",
                     "--caption", "a horse", "--margin", "100", "--report", str(tmp_path / "report"), "--json")
    assert tuned.exit_code == 0, tuned.stderr
    report = json.loads(tuned.stdout)
    rows = [row for row in report["summary"] if row["kind"] == "direction"]
    best = max(rows, key=lambda row: row["clip_directional_similarity"]["mean"])
    tuning = report["tuning"]
    assert report["stored"] and (tuning["scale"], tuning["xa_guidance"]) == (best["scale"], 0.2)
    assert tuning["scores"]["clip_directional_similarity"] == best["clip_directional_similarity"]["mean"]
    # the source word's attention region ('horse', which the caption names) masks the background change
    assert tuning["scores"]["background_change"] is not None
    assert tuning["scores_on"].startswith("in-sample: the 1 photo ")
    assert (tmp_path / "report" / "eval-tradeoff.png").is_file()
    shown = json.loads(run_cli("show", "horse2zebra", "--json").stdout)
    assert shown["tuning"] == tuning
    assert f"tuned: scale {tuning['scale']:g}, xa-guidance 0.2" in run_cli("show", "horse2zebra").stdout
    # edit with no --scale or --xa-guidance: the tuned ones, said on stderr and kept in the record
    untold = eval_cli("edit", str(image), "--direction", "horse2zebra", "--caption", "a horse",
                      "-o", str(tmp_path / "tuned"), "--json")
    assert untold.exit_code == 0, untold.stderr
    assert f"its tuned scale {tuning['scale']:g}" in untold.stderr and "xa-guidance 0.2, as tuned" in untold.stderr
    [entry] = read_record(json.loads(untold.stdout)["results"][0]["record"]).edits
    assert (entry.scale, entry.xa_guidance) == (tuning["scale"], 0.2)
    told = eval_cli("edit", str(image), "--direction", "horse2zebra", "--caption", "a horse", "--scale",
                    f"{tuning['scale']:g}", "--xa-guidance", "0.2", "-o", str(tmp_path / "told"), "--json")
    assert told.exit_code == 0 and "tuned" not in told.stderr
    assert np.abs(np.asarray(Image.open(tmp_path / "tuned" / "horse.horse2zebra.png"), np.int16)
                  - np.asarray(Image.open(tmp_path / "told" / "horse.horse2zebra.png"), np.int16)).max() <= 1
    # a shared file carries the tuning, and an import keeps it
    path = tmp_path / "h2z.safetensors"
    assert run_cli("export", "horse2zebra", "-o", str(path)).exit_code == 0
    assert run_cli("import", str(path), "--name", "shared").exit_code == 0
    assert json.loads(run_cli("show", "shared", "--json").stdout)["tuning"] == tuning
    # a dry run stores nothing: the tuning shown is still the first one
    again = eval_cli("tune", "horse2zebra", str(image), "--scale", "0.25", "--xa-guidance", "0.1", "--caption",
                     "a horse", "--margin", "100", "--dry-run", "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["stored"] is False
    assert json.loads(run_cli("show", "horse2zebra", "--json").stdout)["tuning"] == tuning


@pytest.mark.bank_agnostic
def test_tune_chooses_on_some_photos_and_reports_the_others(eval_cli, run_cli, tmp_path):
    folder = tmp_path / "four"
    folder.mkdir()
    for index in range(4):
        pixels = np.random.default_rng(10 + index).integers(0, 255, (40, 48, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"horse{index}.png")
    tuned = eval_cli("tune", "horse2zebra", str(folder), "--scale", "0.5,1.5", "--xa-guidance", "0.1",
                     "--caption", "a horse", "--margin", "100", "--json")
    assert tuned.exit_code == 0, tuned.stderr
    report = json.loads(tuned.stdout)
    assert report["scores_on"] == "held-out: 2 of 4 photos, not used to choose"
    chose_on = {row["images"] for row in report["summary"]} | {row["images"] for row in report["held_out"]}
    assert chose_on == {2}
    tuning = report["tuning"]
    [graded] = [row for row in report["held_out"] if row["kind"] == "direction" and row["scale"] == tuning["scale"]]
    assert tuning["scores"]["clip_directional_similarity"] == graded["clip_directional_similarity"]["mean"]
    assert tuning["scores_on"] == report["scores_on"] and tuning["held_out_photos"] == 2
    text = eval_cli("tune", "horse2zebra", str(folder / "horse0.png"), "--scale", "0.5", "--xa-guidance", "0.1",
                    "--caption", "a horse", "--margin", "100", "--dry-run")
    assert "the stored scores are in-sample: the 1 photo the setting was chosen on (hold some out with 4" in text.stdout


def test_the_text_change_of_a_caption_that_does_not_name_the_source():
    """'a brown animal' (as BLIP may say it) names no horse: the text change is then the class
    prompts, from the source's to the target's."""
    from direction_bank.jobs.evaluate import score_pair

    pair = score_pair(None, None, "a brown animal in a field", "horse", "zebra")
    assert (pair.source_text, pair.target_text) == ("a photo of a horse", "a photo of a zebra")
    assert (pair.source_prompt, pair.target_prompt) == ("a photo of a horse", "a photo of a zebra")
    named = score_pair(None, None, "a Horse in a field", "horse", "zebra")
    assert (named.source_text, named.target_text) == ("a Horse in a field", "a zebra in a field")


def test_an_sdxl_fingerprint_covers_the_pooled_part():
    """An edit record names its direction by the SHA-256 of the bytes the bank stores: the
    tokens, then the pooled part (SDXL), as little-endian float32."""
    import hashlib

    from direction_bank.jobs.edit import parts_fingerprint

    rng = np.random.default_rng(0)
    tokens, pooled = rng.normal(size=(1, 77, 32)).astype(np.float32), rng.normal(size=(1, 16)).astype(np.float32)
    by_hand = hashlib.sha256(tokens.astype("<f4").tobytes() + pooled.astype("<f4").tobytes()).hexdigest()
    assert parts_fingerprint((tokens, pooled)) == by_hand != parts_fingerprint((tokens, None))


def test_the_word_swap_direction_is_the_change_between_the_two_prompts(sd_model):
    from direction_bank.text.encoder import TextEncoder
    from direction_bank.jobs.evaluate import word_swap_direction

    encoder = TextEncoder.load(str(sd_model), device="cpu")
    tokens, pooled = word_swap_direction(encoder, "horse", "zebra")
    embedded = encoder.embed(["a photo of a horse", "a photo of a zebra"])  # as the bank embeds sentences
    assert tokens.shape == (1, 77, 32) and pooled is None
    np.testing.assert_allclose(tokens[0], embedded[1] - embedded[0], atol=1e-6)


LONG_CAPTION = " ".join(["a", "photo", "of", "a", "horse", "standing"]
                        + ["in", "a", "field", "with", "tall", "grass", "and", "flowers"] * 10)  # 86 words


@pytest.mark.bank_agnostic
def test_a_caption_past_clips_context_goes_through_edit_eval_tune_and_the_studio(
        eval_cli, run_cli, image, tmp_path, tiny_sd, tiny_clip, tiny_dino, database):
    """An ordinary 86-word caption (more than CLIP's 77 tokens) once failed eval, tune and the
    studio's scores after the edit had run. Scoring cuts it as the editor's text encoder does,
    and says so once."""
    import torch

    from direction_bank.studio.actions import StudioActions

    clip = ClipScorer.load(str(tiny_clip))
    ids = clip.processor.tokenizer(LONG_CAPTION)["input_ids"]
    assert len(LONG_CAPTION.split()) == 86 and len(ids) > 77
    # the rule by hand: the start token, the first 75 of the caption, the end token
    with torch.inference_mode():
        by_hand = clip.model.get_text_features(input_ids=torch.tensor([ids[:76] + [ids[-1]]]))
    by_hand = getattr(by_hand, "pooler_output", by_hand)
    torch.testing.assert_close(clip.texts([LONG_CAPTION])[0], (by_hand / by_hand.norm(dim=-1, keepdim=True))[0])
    assert clip.truncated == {LONG_CAPTION}

    out = tmp_path / "edits"
    edited = eval_cli("edit", str(image), "--direction", "horse2zebra", "--caption", LONG_CAPTION, "-o", str(out))
    assert edited.exit_code == 0, edited.stderr
    scored = run_cli("eval", str(out), "--json", env={"DBANK_CLIP_MODEL": str(tiny_clip),
                                                      "DBANK_DINO_MODEL": str(tiny_dino)})
    assert scored.exit_code == 0, scored.stderr
    report = json.loads(scored.stdout)
    note = "texts longer than CLIP's 77 tokens were scored on the first 77, as the editor's text encoder reads a caption"
    assert report["errors"] == [] and any(note in warning for warning in report["warnings"])
    assert all(row["clip_directional_similarity"] is not None for row in report["edits"])
    tuned = eval_cli("tune", "horse2zebra", str(image), "--caption", LONG_CAPTION, "--scale", "0.5,1",
                     "--xa-guidance", "0.1", "--margin", "10")
    assert tuned.exit_code == 0, tuned.stderr
    assert note in tuned.stderr and "stored on horse2zebra version 1" in tuned.stdout
    actions = StudioActions(database, str(tiny_sd), device="cpu", work_dir=tmp_path / "work",
                            clip_model=str(tiny_clip), dino_model=str(tiny_dino))
    outcome = actions.edit(str(image), LONG_CAPTION, ["horse2zebra"], steps=STEPS, size=32)
    assert any(note in line for line in outcome.notes)
    assert set(outcome.scores) == {"horse2zebra", "reconstruction"}
