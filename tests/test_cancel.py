"""Stopping a model job: the studio's Cancel and the CLI's first Ctrl-C set the editor's cancel
flag, the loop stops at its next step, nothing of the job is kept, and the next job runs; the
studio's one progress bar over a job's phases."""
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image

from editor.pipeline import Cancelled

pytestmark = pytest.mark.bank_agnostic
STEPS, SIZE = 3, 32


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "horse.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(path)
    return str(path)


@pytest.fixture
def actions(horse_zebra_bank, database, tiny_sd, tmp_path, monkeypatch):
    from direction_bank.studio.actions import StudioActions

    monkeypatch.setenv("DBANK_CACHE", str(tmp_path / "cache"))
    return StudioActions(database, str(tiny_sd), device="cpu", work_dir=tmp_path / "work")


def test_the_editor_stops_at_the_next_step_once_its_flag_is_set(tiny_sd, photo):
    from editor.editor import Editor

    seen = []
    editor = Editor(str(tiny_sd), device="cpu", progress_bar=lambda steps, **kw: steps)
    steps = editor.cancellable_steps(range(5), desc="inverting")
    seen.append(next(steps))
    editor.cancel.set()
    with pytest.raises(Cancelled, match="^cancelled at inverting step 2 of 5; nothing of this job was kept$"):
        next(steps)
    editor.cancel.clear()
    assert editor.invert_file(photo, "a photo of a horse", SIZE, STEPS).latents.shape[0] == 1


def test_a_cancelled_studio_edit_keeps_nothing_and_the_next_edit_runs(actions, photo, tiny_sd):
    from editor.edit import EditSettings
    from editor.editor import Editor

    texts = []

    def report(fraction, text):
        texts.append(text)
        if text.startswith("editing (2 of 2): step 2 "):  # the inversion done, the edit under way
            assert actions.cancel() == "stopping at the next step"

    with pytest.raises(Cancelled, match="^cancelled at editing step 2 of 3"):
        actions.edit(photo, "a photo of a horse", ["horse2zebra"], steps=STEPS, size=SIZE, report=report)
    [remembered] = actions._remembered.values()  # the finished inversion is kept, no half reference pass
    assert remembered.inversion.traces == {} and remembered.first_seconds is None
    assert actions.cancel() == "nothing is running"
    outcome = actions.edit(photo, "a photo of a horse", ["horse2zebra"], steps=STEPS, size=SIZE)
    assert outcome.message.split(": ", 1)[1].startswith("reused the inversion; a new reference pass")
    fresh = Editor(str(tiny_sd), device="cpu")
    inversion = fresh.invert_file(photo, "a photo of a horse", SIZE, STEPS)
    with actions.bank(read_only=True) as bank:
        edited, _ = fresh.edit(inversion, bank.direction("horse2zebra").tensor, EditSettings(steps=STEPS))
    assert np.array_equal(np.asarray(outcome.pictures[2][0]), np.asarray(edited[0]))


def test_a_cancel_at_any_point_of_a_job_stops_it_there_and_the_next_job_runs(actions, photo):
    """Cancel clicked while the job starts (after Run, before the model loop), and at each step
    of the inversion and of the edit: the job always stops, at that very step, keeping nothing."""
    from direction_bank.studio.session import STOPPING

    points = [("starting", "inverting step 1 of 3"), *[(f"inverting (1 of 2): step {k} ", f"inverting step {k} of 3")
                                                      for k in (1, 2, 3)],
              *[(f"editing (2 of 2): step {k} ", f"editing step {k} of 3") for k in (1, 2, 3)]]
    for point, where in points:
        actions._remembered.clear()  # each job inverts (from the disk cache once an inversion finished)
        actions.expect_job()  # Run clicked
        if point == "starting":
            assert actions.cancel() == STOPPING

        def report(fraction, text, point=point):
            if text.startswith(point):
                assert actions.cancel() == STOPPING

        with pytest.raises(Cancelled, match=f"^cancelled at {where}; nothing of this job was kept$"):
            actions.edit(photo, "a photo of a horse", ["horse2zebra"], steps=STEPS, size=SIZE, report=report)
        actions.job_over()
        assert actions.cancel() == "nothing is running"
    outcome = actions.edit(photo, "a photo of a horse", ["horse2zebra"], steps=STEPS, size=SIZE)
    assert [label for _, label in outcome.pictures] == ["input", "reconstruction", "horse2zebra"]


def test_one_visitor_cannot_cancel_another_visitors_job(actions, photo):
    import contextvars

    from direction_bank.studio.session import VISITOR

    answers = []

    def cancel_as(visitor):
        def cancel():
            VISITOR.set(visitor)
            return actions.cancel()

        return contextvars.copy_context().run(cancel)

    def report(fraction, text):
        if text.startswith("editing (2 of 2): step 2 ") and not answers:
            answers.extend([cancel_as("a-stranger"), cancel_as(""), cancel_as("the-owner")])

    def edit_as_the_owner():
        VISITOR.set("the-owner")
        return actions.edit(photo, "a photo of a horse", ["horse2zebra"], steps=STEPS, size=SIZE, report=report)

    with pytest.raises(Cancelled, match="^cancelled at editing step 2 of 3"):
        contextvars.copy_context().run(edit_as_the_owner)
    assert answers == ["another visitor's job is running; only they can cancel it"] * 2 + ["stopping at the next step"]


def test_one_bar_runs_over_the_phases_of_a_job_with_the_time_left(actions, photo):
    seen = []
    actions.edit(photo, "a photo of a horse", ["horse2zebra"], steps=STEPS, size=SIZE,
                 report=lambda fraction, text: seen.append((fraction, text)))
    fractions = [fraction for fraction, _ in seen]
    assert fractions == sorted(fractions) and fractions[0] == 0 and fractions[-1] == pytest.approx(5 / 6)
    assert [text.split(",")[0] for _, text in seen] == [
        "inverting (1 of 2): step 1 of 3", "inverting (1 of 2): step 2 of 3", "inverting (1 of 2): step 3 of 3",
        "editing (2 of 2): step 1 of 3", "editing (2 of 2): step 2 of 3", "editing (2 of 2): step 3 of 3"]
    assert all(text.endswith(" s left") for _, text in seen[1:])
    seen.clear()  # the same photo again: no inversion, so editing is the whole bar
    actions.edit(photo, "a photo of a horse", ["horse2zebra"], scale=2.0, steps=STEPS, size=SIZE,
                 report=lambda fraction, text: seen.append((fraction, text)))
    assert [round(f, 3) for f, _ in seen] == [0, 0.333, 0.667] and seen[0][1] == "editing: step 1 of 3"
    seen.clear()  # a generation runs the edit's loop, and says it is generating
    actions.generate("a photo of a horse", SIZE, STEPS, 5.0, 0, report=lambda fraction, text: seen.append(text))
    assert [text.split(",")[0] for text in seen] == [f"generating: step {k} of 3" for k in (1, 2, 3)]


def test_the_example_prompt_is_the_sources_shortest_sentence_that_names_it(actions):
    name, prompt = actions.example()
    with actions.bank(read_only=True) as bank:
        direction = bank.direction(name)
        texts = [record.text for record in bank.sentences(direction.source)]
    assert (name, direction.source) == ("horse2zebra", "horse")  # by name, among those whose source has sentences
    # horse's sentences (conftest): 'a photo of a horse', 'a horse on a beach', 'a horse in a field', all of
    # 18 characters: the first of them in order
    assert texts == ["a photo of a horse", "a horse on a beach", "a horse in a field"]
    assert prompt == "a horse in a field"


def test_the_first_ctrl_c_stops_dbank_edit_at_a_step_and_writes_nothing(horse_zebra_bank, database, tiny_sd,
                                                                         photo, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "DBANK_DB": database, "DBANK_MODEL": str(tiny_sd), "DBANK_DEBUG": "0",
           "DBANK_CACHE": str(tmp_path / "cache")}
    worker = subprocess.Popen([sys.executable, "-m", "direction_bank.cli", "edit", photo, "--direction",
                               "horse2zebra", "--caption", "a photo of a horse", "--steps", "1000", "--size", "64",
                               "-o", str(out)], env=env, stderr=subprocess.PIPE, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(worker.stderr), daemon=True)
    reader.start()
    deadline = time.monotonic() + 120
    while not any(line.startswith(("inverting: ", "editing: ")) for line in lines):  # a plain progress line: the loop runs
        assert worker.poll() is None and time.monotonic() < deadline, "".join(lines)
        time.sleep(0.1)
    worker.send_signal(signal.SIGINT)
    assert worker.wait(timeout=60) == 130
    reader.join(timeout=10)
    text = "".join(lines)
    assert "stopping at the next step (Ctrl-C again quits at once)\n" in text
    assert text.rstrip().splitlines()[-1].startswith(("Error: cancelled at inverting step ", "Error: cancelled at editing step "))
    assert "Traceback" not in text
    assert not out.exists() or list(out.iterdir()) == []
