"""Shared fixtures: tiny random SD text encoders on disk, banks, a CLI runner."""
import os
import sys

if os.environ.pop("PYTHONDONTWRITEBYTECODE", None):
    # the suite starts a few hundred Python processes (commands, servers, workers); without
    # bytecode each one compiles the dbank modules it imports again (all 116: 0.26 s here), so
    # the suite keeps it (in __pycache__/, which git ignores), as Python does by default
    sys.dont_write_bytecode = False

os.environ["HF_HUB_OFFLINE"] = "1"  # a stray hub call fails fast instead of hanging
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["DBANK_DEBUG"] = "1"  # the CLI re-raises unexpected errors, so no bug hides behind its one-line boundary
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    # the workers share the cores: each (and each command it starts) takes its share of threads,
    # set before torch is imported, rather than every worker's torch taking them all
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))
if "DBANK_GGUF_CACHE" not in os.environ:  # converted GGUF models go to a temporary cache, not the user's
    import atexit
    import shutil
    import tempfile

    os.environ["DBANK_GGUF_CACHE"] = tempfile.mkdtemp(prefix="dbank-test-gguf-")
    atexit.register(shutil.rmtree, os.environ["DBANK_GGUF_CACHE"], ignore_errors=True)

import pytest  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from tests.banks import SqliteBanks, bank_from_commands  # noqa: E402
from direction_bank.testing import (  # noqa: E402
    fresh_postgres_database, write_clip_tokenizer, write_sd_text_checkpoint, write_tiny_blip, write_tiny_sd,
)


def pytest_collection_modifyitems(items):
    """Tests marked long run first (the order is otherwise kept): with one worker per core, the
    Tour at the end of the list would run alone for minutes after the rest are done."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


@pytest.fixture(autouse=True)
def no_openai_environment(monkeypatch):
    """Tests choose their generator explicitly; a developer's OpenAI settings never leak in."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def clip_tokenizer_dir(tmp_path_factory):
    """The real SD 1.x CLIP tokenizer saved to disk once."""
    return write_clip_tokenizer(tmp_path_factory.mktemp("tokenizer"))


def _checkpoint(tmp_path_factory, clip_tokenizer_dir, name, seed=0, **config):
    return write_sd_text_checkpoint(
        tmp_path_factory.mktemp(name), seed=seed, tokenizer_from=clip_tokenizer_dir, **config
    )


@pytest.fixture(scope="session")
def sd_model(tmp_path_factory, clip_tokenizer_dir):
    """A tiny random SD checkpoint (text encoder 32-d, real tokenizer) in the diffusers layout."""
    return _checkpoint(tmp_path_factory, clip_tokenizer_dir, "sd-tiny")


@pytest.fixture(scope="session")
def sd_model_wide(tmp_path_factory, clip_tokenizer_dir):
    """Another tiny checkpoint with a different hidden size (48-d), like SD 2.x beside SD 1.x."""
    return _checkpoint(
        tmp_path_factory, clip_tokenizer_dir, "sd-wide", seed=1,
        hidden_size=48, projection_dim=48, num_attention_heads=4,
    )


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory, clip_tokenizer_dir):
    """A whole tiny random SD checkpoint on disk (UNet, VAE, text encoder, tokenizer, scheduler)."""
    return write_tiny_sd(tmp_path_factory.mktemp("tiny-sd"), tokenizer_from=clip_tokenizer_dir)


@pytest.fixture(scope="session")
def sqlite_banks(tmp_path_factory):
    """The session's SqliteBanks."""
    return SqliteBanks(tmp_path_factory.mktemp("banks"))


HORSE_ZEBRA = (
    (("add-concept", "horse", "--sentences", "-"), "a photo of a horse\na horse on a beach\na horse in a field\n"),
    (("add-concept", "zebra", "--sentences", "-"), "a photo of a zebra\na zebra on a beach\na zebra in a field\n"),
    (("diff", "horse", "zebra", "--save", "horse2zebra"), None),
)


@pytest.fixture
def horse_zebra_bank(database, tiny_sd, sqlite_banks):
    """The test's bank holding horse and zebra (three sentences each, embedded by the tiny SD's
    text encoder) and the saved direction horse2zebra."""
    bank_from_commands(database, tiny_sd, HORSE_ZEBRA, sqlite_banks)


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory, clip_tokenizer_dir):
    """A tiny random CLIP (image and text towers) on disk, for the edit scores."""
    from direction_bank.testing import write_tiny_clip

    return write_tiny_clip(tmp_path_factory.mktemp("clip"), tokenizer_from=clip_tokenizer_dir)


@pytest.fixture(scope="session")
def tiny_dino(tmp_path_factory):
    """A tiny random DINO-ViT on disk, for the structure distance."""
    from direction_bank.testing import write_tiny_dino

    return write_tiny_dino(tmp_path_factory.mktemp("dino"))


@pytest.fixture(scope="session")
def tiny_blip(tmp_path_factory):
    """A tiny random BLIP captioner on disk."""
    return write_tiny_blip(tmp_path_factory.mktemp("blip"))


@pytest.fixture(scope="session")
def encoder(sd_model):
    """The tiny text encoder, loaded through the bank's loader (CPU, fp32)."""
    from direction_bank.text.encoder import TextEncoder

    return TextEncoder.load(str(sd_model), device="cpu")


@pytest.fixture
def bank_path(tmp_path):
    """Where a test's SQLite bank file lives (not created yet)."""
    return tmp_path / "bank.db"


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, bank_path):
    """The test's bank: a fresh SQLite file, or a fresh database on the PostgreSQL server named by
    DBANK_TEST_POSTGRES_URL (skipped without one; .ci/run starts one). Tests marked sqlite_only
    look at the SQLite file itself."""
    if request.param == "sqlite":
        return str(bank_path)
    if request.node.get_closest_marker("sqlite_only"):
        pytest.skip("looks at the SQLite file itself")
    if request.node.get_closest_marker("bank_agnostic"):
        pytest.skip("the bank only hands out directions here; its PostgreSQL side is tested elsewhere")
    url = os.environ.get("DBANK_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("set DBANK_TEST_POSTGRES_URL (scripts/start-test-postgres.sh) to test PostgreSQL")
    return fresh_postgres_database(url, f"dbank_{os.getpid()}_{abs(hash(request.node.nodeid)) % 10**8}")


@pytest.fixture
def bank(database):
    """An empty bank on the test's engine."""
    from direction_bank import Bank

    with Bank(database) as opened:
        yield opened


@pytest.fixture
def run_cli(database, sd_model):
    """Invoke `dbank` in-process against the test's bank and tiny model; returns the Result."""
    from direction_bank.cli import cli

    runner = CliRunner()

    def run(*args, input=None, model=None, env=None):
        full_env = {"DBANK_DB": database, "DBANK_MODEL": str(model or sd_model), **(env or {})}
        return runner.invoke(cli, list(args), input=input, env=full_env, catch_exceptions=False)

    return run
