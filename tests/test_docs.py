"""The documentation: the site builds in strict mode (a broken link, reference, snippet or picture
fails it), its CLI reference holds every command, its API reference the docstrings, its Python
walkthrough runs as written, and the README stays a front page that links into it."""
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def _text(page: Path) -> str:
    """A built page's text, tags stripped (code is split into highlighted spans), spaces collapsed."""
    return " ".join(re.sub(r"<[^>]+>", "", page.read_text()).split())


def _build(config: Path, site: Path) -> subprocess.CompletedProcess:
    pytest.importorskip("mkdocs", reason="the site needs the [docs] extra: pip install -e '.[docs]'")
    from tests.network import loopback_only

    return subprocess.run([*loopback_only(), sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config),
                           "-d", str(site)], cwd=config.parent, capture_output=True, text=True,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"}, timeout=300)


def test_the_readme_is_a_front_page_that_links_into_the_guide():
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    links = re.findall(r"\]\(((?:docs/)[^)#\s]+)", text)
    assert len(links) >= 12 and all((ROOT / link).is_file() for link in links), links
    assert "pip install" in text and "python -m pytest" in text and "## Tour" in text


def test_the_site_builds_strict_with_every_command_the_api_and_the_tour(tmp_path):
    done = _build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "WARNING" not in done.stderr
    site = tmp_path / "site"
    from click import Context

    from direction_bank.cli import cli

    reference = _text(site / "cli" / "index.html")
    for name in cli.list_commands(Context(cli)):  # mkdocs-click wrote each command's own help
        command = cli.get_command(Context(cli), name)
        assert f"dbank {name}" in reference, name
        assert " ".join((command.help or "").split())[:40] in reference, name
    api = _text(site / "guide" / "python" / "index.html")
    from direction_bank.store.directions import Directions

    for docstring in (Directions.save.__doc__, Directions.history.__doc__):  # mkdocstrings rendered them
        assert " ".join(docstring.replace("`", "").split()) in api
    tour = _text(site / "tour" / "index.html")
    from tests.test_tour import tour_commands

    for command in tour_commands().splitlines()[:5]:  # the README's Tour, included as a snippet
        assert " ".join(command.split("#")[0].split()) in tour.replace("&amp;", "&").replace("&#39;", "'")
    assert "--8&lt;--" not in tour and "start:tour" not in tour


def test_a_broken_link_fails_the_build(tmp_path):
    """The strict build is what keeps the site honest: a link to a page that is not there fails it."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(ROOT / "docs", copy / "docs")
    shutil.copy(ROOT / "mkdocs.yml", copy / "mkdocs.yml")
    shutil.copy(README, copy / "README.md")
    page = copy / "docs" / "guide" / "team.md"
    page.write_text(page.read_text() + "\nSee [the queue](queue.md).\n")
    done = _build(copy / "mkdocs.yml", tmp_path / "site")
    assert done.returncode != 0 and "queue.md" in done.stderr, done.stderr[-2000:]


def test_the_python_walkthrough_runs_as_written(tmp_path, tiny_sd, monkeypatch):
    """Each python block of the guide's walkthrough, in order, in one namespace, in a new folder:
    the model id becomes the tiny model's folder, and the photo is 32 px edited in 2 steps."""
    page = (ROOT / "docs" / "guide" / "python.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, re.DOTALL)
    assert len(blocks) == 4
    monkeypatch.chdir(tmp_path)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save("horse.png")
    namespace: dict = {}
    for block in blocks:
        code = (block.replace('"stable-diffusion-v1-5/stable-diffusion-v1-5"', repr(str(tiny_sd)))
                .replace("512, 50)", "32, 2)").replace("steps=50", "steps=2"))
        exec(compile(code, "python.md", "exec"), namespace)
    assert namespace["direction"].tensor.shape == (1, 77, 32) and namespace["saved"].name == "horse2zebra"
    assert np.array_equal(namespace["saved"].tensor, namespace["direction"].tensor)
    assert Image.open("zebra.png").size == (32, 32) and Image.open("steered.png").size[0] > 0
