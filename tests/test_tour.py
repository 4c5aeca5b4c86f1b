"""The README's Tour runs as written, on the demo model, offline, in a new folder: the first
thing a newcomer does must work."""
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def tour_commands() -> str:
    """The Tour's first bash block, as a script."""
    text = README.read_text()
    tour = text[text.index("## Tour"):]
    return re.search(r"```bash\n(.*?)```", tour, re.DOTALL).group(1)


def test_the_tour_starts_with_the_demo_model_and_says_its_pictures_are_noise():
    script = tour_commands()
    assert script.splitlines()[0].startswith("dbank demo-model ")
    assert "DBANK_MODEL=" in script.splitlines()[1]
    intro = README.read_text().split("## Tour", 1)[1].split("```bash", 1)[0]
    assert "pictures are noise" in intro


def test_the_installed_dbank_command_runs():
    """The console script pip installs (the Tour below runs its commands through a warm copy)."""
    from direction_bank import __version__

    done = subprocess.run([str(Path(sys.executable).parent / "dbank"), "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.split()[-1] == __version__


@pytest.mark.long
def test_the_readme_tour_runs_as_written(tmp_path):
    """Every command of the Tour, in bash, through the entry point the console script calls: a
    warm `dbank` (tests/warm_cli.py) forks each from a process that imported torch and the rest
    once, as a fresh interpreter would after its imports (about 7 s of a command's 10)."""
    from tests.warm_cli import warm_dbank

    script = tour_commands()
    env = {key: value for key, value in os.environ.items()
           if key not in ("DBANK_MODEL", "DBANK_DB", "DBANK_STEPS", "DBANK_DEBUG", "DBANK_CLIP_MODEL", "DBANK_DINO_MODEL")}
    env.update(HF_HUB_OFFLINE="1", DBANK_CACHE=str(tmp_path / "inversions"))
    started = time.monotonic()
    with warm_dbank(tmp_path / "warm", env) as warm:
        env["PATH"] = f"{warm}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        done = subprocess.run(["bash", "-e", "-x", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=1800)
    print(f"the Tour took {time.monotonic() - started:.0f} s")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    said = [line for line in done.stderr.splitlines() if line.startswith(("warning", "note"))]
    assert not said, "\n".join(said)
    assert "the bank is sound" in done.stdout
    for name in ("out/horse-field.horse2zebra.png", "out/horse-beach.day2night.png", "norms.png", "tour-copy.db",
                 "horse-to-zebra.safetensors", "horse.safetensors", "out-all/horse-beach.attention-horse.png",
                 "out-all/eval-summary.csv", "out-all/eval-tradeoff.png"):
        assert (tmp_path / name).is_file(), name
    assert len(list((tmp_path / "out-all").glob("sheet-*.png"))) == 1
    assert "  tuned: scale " in done.stdout  # tune kept a setting and show prints it
    assert len(list((tmp_path / "out").glob("horse-beach.sweep-horse2zebra-*.png"))) == 1
    assert len(list((tmp_path / "out").glob("generated-*.horse2zebra.png"))) == 1
