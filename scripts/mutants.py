#!/usr/bin/env python
"""One-line bugs that the tests must catch: each mutant is applied to a scratch copy of the
working tree and the tests named for it are run there; a mutant the tests still pass is a
"survived" line, and the script exits 1 if any survived.

    python scripts/mutants.py                 # every mutant (two cores: about 28 min for 69)
    python scripts/mutants.py kl-log-var ...  # only these
    python scripts/mutants.py --list

Not run in CI. PostgreSQL-parametrised tests run only where DBANK_TEST_POSTGRES_URL is set; the
mutants below name SQLite variants where a test has both."""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutant:
    """`old` (which must occur exactly once in `path`) replaced by `new`; `tests` are pytest
    arguments (node ids or -k expressions) that must fail with it."""

    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


E = "tests/test_editor.py"
X = "tests/test_sdxl.py"
H = "tests/test_histories.py"
MUTANTS = [
    # -- this round (#21) -----------------------------------------------------------------
    Mutant("kl-log-var", "editor/inversion.py", "return (var + mean**2 - 1 - (var + 1e-7).log()).sum()",
           "return (var + mean**2 - 1).sum()", (f"{E}::test_the_kl_loss_is_pinned_to_its_formula",)),
    Mutant("auto-corr-square", "editor/inversion.py", ".mean((2, 3)) ** 2).sum()", ".mean((2, 3))).sum()",
           (f"{E}::test_the_auto_correlation_loss_is_pinned_to_its_formula",)),
    Mutant("v-prediction-not-converted", "editor/inversion.py", 'if prediction == "v_prediction":  # regularise',
           "if False:  # regularise", ("-k", "independent_loop")),
    Mutant("kept-reference-off-by-one", "editor/edit.py",
           "return trace.latents[step + 1] if step + 1 < len(timesteps)",
           "return trace.latents[step] if step + 1 < len(timesteps)",
           (f"{E}::test_a_kept_reference_gives_the_same_latents_under_strong_guidance",)),
    Mutant("sdxl-time-ids-swapped", "editor/pipeline.py", "[[height, width, 0, 0, height, width]]",
           "[[width, height, 0, 0, width, height]]", (X, "-k", "non_square")),
    Mutant("sdxl-empty-negative-not-zeroed", "editor/pipeline.py",
           'if prompt == "" and components.zero_empty_prompt:', "if False:", (X, "-k", "non_square")),
    Mutant("file-token-shape-unchecked", "direction_bank/sharing/transfer.py",
           "expected = (encoder.pooled_size,) if name.endswith(POOLED) else encoder.shape",
           "expected = (encoder.pooled_size,) if name.endswith(POOLED) else tensor.shape[-2:]",
           (X, "-k", "hostile and sqlite")),
    Mutant("cache-key-without-steps", "editor/editor.py", "caption=caption, captioner=captioner, size=size, steps=steps,",
           "caption=caption, captioner=captioner, size=size,", (f"{E}::test_the_cache_key_names_every_setting_of_an_inversion",)),
    Mutant("cache-key-without-regularisation", "editor/editor.py", "regularisation=regularisation.as_dict(), seed=seed,",
           "seed=seed,", (f"{E}::test_the_cache_key_names_every_setting_of_an_inversion",)),
    Mutant("cache-key-path-not-weights", "editor/editor.py", "weights=self.components.weights_fingerprint(),",
           "weights=self.components.model,", (f"{E}::test_other_weights_in_the_same_folder_miss_the_cache",)),
    Mutant("cache-entry-unchecked", "editor/cache.py", "if not torch.isfinite(latents).all():", "if False:",
           (E, "-k", "tampered_cache_entry and nan")),
    Mutant("generated-start-quantised", "editor/editor.py", "return noise.to(self.components.device, torch.float32)",
           "return noise.to(self.components.device, self.components.dtype)",
           (f"{E}::test_generated_starts_are_float32_whatever_the_unet_dtype",)),
    Mutant("oom-retry-keeps-maps", "editor/editor.py", "attention.clear()  # the failed", "pass  # the failed",
           (f"{E}::test_a_retry_after_running_out_of_memory_counts_the_attention_maps_once",)),
    # -- nothing lost, racing writers (#18, #22) -----------------------------------------
    Mutant("second-remover-not-told", "direction_bank/store/trash.py",
           "if row is None or row.concept_id != concept_row.id:", "if row is not None and row.concept_id != concept_row.id:",
           ("tests/test_trash.py", "-k", "racing_removers and sqlite")),
    Mutant("restore-not-bit-exact", "direction_bank/store/trash.py",
           'if statistics_digest(session, concept.id, info.id) == detail["after"]:', "if False:",
           ("tests/test_trash.py", "-k", "removed_sentence_comes_back and sqlite")),
    Mutant("save-replaces-silently", "direction_bank/store/directions.py", "if latest and not overwrite:", "if False:",
           ("tests/test_trash.py", "-k", "refused_and_overwrite and sqlite")),
    Mutant("dotted-names-collide", "direction_bank/names.py", 'and not (part and "." in name)):', "and True):",
           (E, "-k", "dotted_names and sqlite")),
    Mutant("backup-onto-itself", "direction_bank/jobs/integrity.py", "if any(target.resolve() == path.resolve()",
           "if False and any(target.resolve() == path.resolve()",
           ("tests/test_bad_input.py", "-k", "bad_output_paths and sqlite")),
    # -- one history per direction, tunings on the version tuned, one name rule (#30) ----------
    Mutant("direction-names-not-locked", "direction_bank/store/rows.py",
           'if session.get_bind().dialect.name != "postgresql":', "if True:",
           (H, "-k", "(racing or pair) and postgresql")),
    Mutant("history-check-blind", "direction_bank/store/histories.py",
           "return sorted(versions) == list(range(1, len(versions) + 1))", "return True",
           (H, "-k", "split_history and sqlite")),
    Mutant("repair-renumbers-instead-of-filling", "direction_bank/store/histories.py", "if filler is not None:", "if False:",
           (H, "-k", "takes_back and sqlite")),
    Mutant("tuning-on-any-tensor", "direction_bank/store/directions.py",
           "if row is None or row.fingerprint != direction.fingerprint:", "if row is None:",
           (H, "-k", "lands_on_the_version and sqlite")),
    Mutant("restore-drops-tunings", "direction_bank/store/directions.py", "fingerprint=old.fingerprint, tuning=old.tuning,",
           "fingerprint=old.fingerprint, tuning=None,", (H, "-k", "keeps_the_tunings and sqlite")),
    Mutant("restore-oldest-entry", "direction_bank/store/trash.py",
           ".order_by(TrashEntry.trashed_at.desc(), TrashEntry.id.desc()).limit(1))",
           ".order_by(TrashEntry.trashed_at, TrashEntry.id).limit(1))", (H, "-k", "newest_trash_entry and sqlite")),
    Mutant("import-name-unchecked", "direction_bank/sharing/transfer.py",
           'return check_direction_name(name or shared.meta.get("name") or shared.path.stem)',
           'return check_name(name or shared.meta.get("name") or shared.path.stem)', (H, "-k", "no_door and sqlite")),
    Mutant("restore-as-unchecked", "direction_bank/store/trash.py", "name = _restorable_direction_name(name, as_name)",
           "pass", (H, "-k", "no_door and sqlite")),
    Mutant("cache-huge-latents-trusted", "editor/cache.py", "if latents.abs().max() > MAX_LATENT_MAGNITUDE:",
           "if False:", (E, "-k", "tampered_cache_entry and huge")),
    Mutant("cache-caption-unchecked", "editor/cache.py", "if caption is not None and stored_caption != caption:",
           "if False:", (E, "-k", "tampered_cache_entry and caption")),
    Mutant("trash-cutoff-overflows", "direction_bank/store/trash.py", "except OverflowError:", "except ZeroDivisionError:",
           ("tests/test_trash.py", "-k", "emptying_the_trash and sqlite")),
    Mutant("like-seed-unbounded", "direction_bank/jobs/edit_records.py", '_whole_in(data.get("seed"), "seed", *SEED_RANGE)',
           'data.get("seed")', (E, "-k", "never_takes_charge and sqlite")),
    Mutant("like-picks-the-model", "direction_bank/cli/editing.py", "    if not named:", "    if False:",
           (E, "-k", "never_takes_charge and sqlite")),
    Mutant("like-depth-unchecked", "direction_bank/jobs/edit_records.py", "if _depth(data) > MAX_PARAMETERS_DEPTH:",
           "if False:", (E, "-k", "never_takes_charge and sqlite")),
    Mutant("anyone-cancels", "direction_bank/studio/session.py",
           "if self._editor is not None and self._running and visitor == self._owner:",
           "if self._editor is not None and self._running:",
           ("tests/test_cancel.py", "-k", "another_visitors_job")),
    Mutant("logins-limited-globally", "direction_bank/studio/server.py", "now, client = self.clock(), _CLIENT.get()",
           'now, client = self.clock(), ""', ("tests/test_studio.py", "-k", "login_limiter")),
    Mutant("header-shows-folders", "direction_bank/studio/app.py",
           'model, bank = ((actions.model, actions.database or "the default bank") if loopback',
           'model, bank = ((actions.model, actions.database or "the default bank") if True',
           ("tests/test_studio.py", "-k", "header")),
    Mutant("download-names-server-path", "direction_bank/jobs/edit.py",
           "Path(photo.image).name if run.photo_by_name else", "Path(photo.image).resolve() if run.photo_by_name else",
           ("tests/test_studio.py", "-k", "same_edit")),
    Mutant("sigterm-leaves-temporaries", "direction_bank/cli/studio.py",
           "signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))", "pass",
           ("tests/test_studio.py", "-k", "removes_its_downloads and SIGTERM")),
    Mutant("record-source-untyped", "direction_bank/jobs/edit_records.py",
           'if value is not None and (not isinstance(value, str) or not value or "\\0" in value):', "if False:",
           ("tests/test_eval_cli.py", "-k", "bad_records and sqlite")),
    Mutant("manifest-row-without-direction-skipped", "direction_bank/cli/image_inputs.py",
           "if not names and not directions_given:", "if False:",
           (f"{E}::test_a_malformed_manifest_is_refused_with_its_line_number",)),
    Mutant("download-names-the-model-folder", "direction_bank/studio/bank_actions.py",
           "bank.export_direction(direction, path, names_only=True)", "bank.export_direction(direction, path)",
           ("tests/test_studio.py", "-k", "round_trips_files")),
    # -- eval numbers you can trust (#31) ----------------------------------------------------
    Mutant("word-swap-backwards", "direction_bank/cli/evaluation.py",
           "swaps = [(s, t, word_swap_direction(encoder, s, t)) for s, t in pairs]",
           "swaps = [(s, t, word_swap_direction(encoder, t, s)) for s, t in pairs]",
           ("tests/test_eval_cli.py", "-k", "both_baselines_and_resumes")),
    Mutant("class-prompts-reversed", "direction_bank/jobs/evaluate.py",
           "else (class_prompt(source), class_prompt(target))", "else (class_prompt(target), class_prompt(source))",
           ("tests/test_eval_cli.py", "-k", "does_not_name_the_source")),
    Mutant("csv-low-from-high", "direction_bank/jobs/evaluate.py", 'f"{metric}_low": row[metric]["low"]',
           'f"{metric}_low": row[metric]["high"]', ("tests/test_evaluation.py", "-k", "own_end")),
    Mutant("tune-maps-the-target", "direction_bank/jobs/tune.py",
           "words = (direction.source,) if index == 0 else ()", "words = (direction.target,) if index == 0 else ()",
           ("tests/test_eval_cli.py", "-k", "tune_stores and sqlite")),
    Mutant("tuning-note-names-another-guidance", "direction_bank/jobs/tune.py",
           'f"using {DEFAULT_XA_GUIDANCE:g}")', 'f"using {found[0]:g}")',
           ("tests/test_eval_cli.py", "-k", "guidance_used")),
    Mutant("tie-goes-to-the-larger-scale", "direction_bank/jobs/tune.py",
           'best = min(ranked[:2], key=lambda row: (abs(row["scale"]), row["xa_guidance"]))',
           'best = max(ranked[:2], key=lambda row: (abs(row["scale"]), row["xa_guidance"]))',
           ("tests/test_eval_cli.py", "-k", "interval_clears")),
    Mutant("best-mean-wins-inside-the-interval", "direction_bank/jobs/tune.py",
           "if len(ranked) > 1 and not _clears(best, ranked[1]):", "if False:",
           ("tests/test_eval_cli.py", "-k", "interval_clears")),
    Mutant("sdxl-fingerprint-without-pooled", "direction_bank/jobs/edit.py",
           '(b"" if pooled is None else tensor_to_blob(pooled))', 'b""',
           ("tests/test_eval_cli.py", "-k", "covers_the_pooled_part")),
    Mutant("tune-grades-its-own-homework", "direction_bank/jobs/tune.py",
           "graded = chosen if held_out is None else next(", "graded = chosen if True else next(",
           ("tests/test_eval_cli.py", "-k", "reports_the_others and sqlite")),
    Mutant("percentile-not-bca", "editor/evaluation.py",
           'confidence_level=level, method="BCa",', 'confidence_level=level, method="percentile",',
           ("tests/test_evaluation.py", "-k", "bca")),
    Mutant("one-image-interval", "editor/evaluation.py", "if n == 1:\n        return mean, None, None, 1",
           "if False:\n        return mean, None, None, 1", ("tests/test_evaluation.py", "-k", "bca")),
    Mutant("clip-reads-past-its-context", "editor/evaluation.py",
           'return_tensors="pt", padding=True, truncation=True,', 'return_tensors="pt", padding=True, truncation=False,',
           ("tests/test_eval_cli.py", "-k", "past_clips_context and sqlite")),
    Mutant("ray-returns-no-maps", "editor/runners/ray_data.py", '"attention_words": attention_words},',
           '"attention_words": ()},', (E, "-k", "ray_data_gives_the_same_bytes and sqlite")),
    Mutant("folder-baseline-dropped-silently", "direction_bank/cli/evaluation.py",
           "if WORD_SWAP in baselines and not any(", "if False and not any(",
           ("tests/test_eval_cli.py", "-k", "scores_an_edit_folder_from and sqlite")),
    Mutant("generate-edit-writes-no-record", "direction_bank/cli/editing.py",
           "written.append(write_record(written_record, record, overwrite))", "pass",
           ("tests/test_eval_cli.py", "-k", "generate_edit_folder")),
    # -- killed before, kept killed --------------------------------------------------------
    Mutant("direction-sign", "direction_bank/store/queries.py", "b.mean - a.mean, encoder, source, target,",
           "a.mean - b.mean, encoder, source, target,", ("tests/test_bank.py", "-k", "sqlite")),
    Mutant("guidance-step-sign", "editor/edit.py", "pair = (pair - settings.xa_guidance * gradient.to(state))",
           "pair = (pair + settings.xa_guidance * gradient.to(state))", (E, "-k", "matches_diffusers")),
    Mutant("fused-reference-timestep", "editor/edit.py", "next_timestep = timesteps[step + 1]", "next_timestep = t",
           (E, "-k", "matches_diffusers")),
    Mutant("guidance-halves", "editor/edit.py", "halves = 2 if settings.guidance_scale > 1 else 1", "halves = 2",
           (E, "-k", "matches_diffusers or one_branch")),
    Mutant("fp32-state", "editor/edit.py", "state = state_dtype or torch.float32", "state = state_dtype or components.dtype",
           (E, "-k", "float32 or fp32 or bf16")),
    Mutant("penultimate-layer", "sd_models/prompts.py", "states.append(output.hidden_states[-2])",
           "states.append(output.hidden_states[-1])", (X, "-k", "encode_prompt or non_square")),
    Mutant("sdxl-not-detected", "sd_models/family.py", 'return "text_encoder_2" in json.loads(Path(index).read_text())',
           "return False", (X, "-k", "encode_prompt or non_square")),
    Mutant("loss-per-edit-summed", "editor/attention.py", "store.loss = store.loss + per_edit.sum()",
           "store.loss = store.loss + per_edit.mean()", (E, "-k", "one_batch or matches_diffusers")),
    Mutant("zero-shift", "editor/inversion.py", "torch.randint(1, max(size // 2, 2), (1,), generator=generator)",
           "torch.randint(0, max(size // 2, 2), (1,), generator=generator)", (E, "-k", "never_zero")),
    # -- #35: the suite in minutes (a real-SmolLM2 test made smaller must still catch this) --------
    Mutant("continuation-replays-first-round", "direction_bank/store/sentences.py",
           "round_seed(concept, stored)):", "round_seed(concept, set())):",
           ("tests/test_generation.py", "-k", "continuation_samples_new_candidates")),
    # the bound is told by the message, not a clock: without --connect-timeout, the system's own
    # time-out (about 2 min) answers the silent port, and the line says so
    Mutant("ray-connect-unbounded", "editor/runners/ray_address.py",
           "socket.create_connection((host, number), timeout=timeout_s)",
           "socket.create_connection((host, number), timeout=None)",
           (f"{E}::test_a_ray_address_where_nothing_answers_is_one_line_in_bounded_time[sqlite]",)),
    Mutant("answer-time-unbounded", "direction_bank/text/generators/openai_chat.py",
           "if time.monotonic() > limit:", "if False:",
           ("tests/test_remote_bounds.py", "-k", "trickles")),
    Mutant("lookup-imports-every-module", "direction_bank/cli/app.py",
           "for module in holding or self.COMMAND_MODULES:", "for module in self.COMMAND_MODULES:",
           ("tests/test_first_hour.py", "-k", "imports_only")),
    # the conversion tests now convert a tiny GGUF file (tokenizer cut to 1024 tokens): still caught
    Mutant("cut-short-conversion-kept", "direction_bank/text/generators/local.py",
           "    if conversion_is_whole(folder):", "    if folder.is_dir():",
           ("tests/test_generation.py", "-k", "cut_short")),
    Mutant("did-you-mean-every-close-name", "direction_bank/names.py",
           "if ratio >= ratios[0] - 0.1]", "if ratio >= 0]",
           ("tests/test_first_hour.py", "-k", "mistyped and sqlite")),
    Mutant("missing-photo-checked-late", "direction_bank/cli/image_inputs.py",
           "present = [row for row in listed if Path(row[0]).is_file()]", "present = list(listed)",
           ("tests/test_first_hour.py", "-k", "not_there")),
    Mutant("surplus-uncounted", "direction_bank/store/sentences.py",
           "report.surplus += len(cleaned) - len(texts)", "report.surplus += 0",
           ("tests/test_generation.py", "-k", "accounted_for and sqlite")),
    Mutant("threads-not-as-told", "direction_bank/threads.py",
           "    if requested:\n        return requested", "    if False:\n        return requested",
           ("tests/test_generation.py", "-k", "threads_are and sqlite")),
    Mutant("threads-from-every-core", "direction_bank/threads.py",
           "len(os.sched_getaffinity(0))", "(os.cpu_count() or 1)",
           ("tests/test_generation.py", "-k", "threads_are and sqlite")),
    Mutant("silent-while-a-batch-runs", "direction_bank/progress.py",
           "        if self.interval > 0:\n", "        if False:\n",
           ("tests/test_generation.py", "-k", "never_silent")),
    Mutant("horses-may-ride", "direction_bank/text/cleaning.py",
           'return "ride without a rider"', "return None", ("tests/test_cleaning.py", "-k", "incoherent or ride")),
    Mutant("borrowed-parts-kept", "direction_bank/text/cleaning.py",
           'return "borrowed body part"', "return None", ("tests/test_cleaning.py", "-k", "incoherent")),
    Mutant("x-and-x-an-idiom", "direction_bank/text/cleaning.py",
           "(?:by|to|after) \\1", "(?:by|to|after|and) \\1", ("tests/test_cleaning.py", "-k", "incoherent")),
    Mutant("frames-not-families", "direction_bank/text/cleaning.py",
           "if near or same_frame(words, kept)", "if near", ("tests/test_cleaning.py", "-k", "family")),
    Mutant("one-worked-example", "direction_bank/text/generators/prompts.py",
           "if name not in concept.casefold():", 'if name not in concept.casefold() and name != "deer":',
           ("tests/test_generation.py", "-k", "scenes_of_other")),
    Mutant("own-example-shown", "direction_bank/text/generators/prompts.py",
           "if name not in concept.casefold():", "if name:", ("tests/test_generation.py", "-k", "scenes_of_other")),
    Mutant("concept-twice-a-line", "direction_bank/text/generators/line_rules.py",
           "if self.concept.search(line):", "if self.concept.fullmatch(line):",
           ("tests/test_generation.py", "-k", "concept_once")),
    Mutant("ride-and-rode-allowed", "direction_bank/text/generators/line_rules.py",
           "for verb in RIDE_VERBS], 4)", "for verb in RIDE_VERBS], 5)",
           ("tests/test_generation.py", "-k", "concept_once")),
    Mutant("rules-read-the-prompt", "direction_bank/text/generators/line_rules.py",
           "self.texts.last_line(ids[self.prompt_length:])", "self.texts.last_line(ids)",
           ("tests/test_generation.py", "-k", "concept_once")),
    Mutant("list-runs-a-line-on", "direction_bank/text/generators/line_rules.py",
           ">= self.lines for ids", "> self.lines for ids", ("tests/test_generation.py", "-k", "list_is_written")),
    Mutant("min-p-halved", "direction_bank/text/generators/local.py",
           '"min_p": 0.1}', '"min_p": 0.05}', ("tests/test_generation.py", "-k", "scenes_of_other")),
    Mutant("warm-at-a-quarter", "direction_bank/text/generators/local.py",
           "if repeats > WARM_WHEN_REPEATED", "if repeats >= WARM_WHEN_REPEATED",
           ("tests/test_generation.py", "-k", "warms_when")),
    Mutant("warm-without-a-cap", "direction_bank/text/generators/local.py",
           "return min(round(temperature + WARM_STEP, 2), MAX_TEMPERATURE)", "return round(temperature + WARM_STEP, 2)",
           ("tests/test_generation.py", "-k", "warms_when")),
    Mutant("family-cap-two", "direction_bank/text/cleaning.py",
           "DEFAULT_FAMILY_CAP = 1", "DEFAULT_FAMILY_CAP = 2", ("tests/test_cleaning.py", "-k", "crowded_family")),
    Mutant("steps-env-ignored", "direction_bank/cli/editor_options.py",
           'envvar="DBANK_STEPS", show_envvar=True, help="DDIM steps.")', 'help="DDIM steps.")',
           (E, "-k", "dbank_steps and sqlite")),
    # -- #35: start-up that follows the rooms ----------------------------------------------------
    Mutant("quick-read-any-schema", "direction_bank/store/quick_read.py",
           'fetchall() == [(HEAD,)]:', "fetchall() != []:", ("tests/test_cli.py", "-k", "quick_reads")),
    Mutant("quick-read-uses-sqlalchemy", "direction_bank/store/quick_read.py",
           "import sqlite3\n", "import sqlite3\nimport sqlalchemy  # noqa: F401\n",
           ("tests/test_cli.py", "-k", "start_without_torch and sqlite")),
    # -- #32: edit by a word ---------------------------------------------------------------------
    Mutant("word-edit-ignores-saved", "direction_bank/jobs/word_edit.py", "    if matching:\n", "    if False:\n",
           (E, "-k", "by_a_word and sqlite")),
    Mutant("word-swap-unlabelled", "direction_bank/jobs/edit.py",
           "return WORD_SWAP if self.label.startswith(WORD_SWAP) else None", "return None",
           (E, "-k", "by_a_word and sqlite")),
    Mutant("caption-source-shortest", "direction_bank/jobs/word_edit.py",
           "found.append((-len(concept), match.start(), concept))", "found.append((len(concept), match.start(), concept))",
           (E, "-k", "longest_concept")),
    Mutant("studio-word-swap-dropped", "direction_bank/studio/edit_actions.py", "        if request.swaps:",
           "        if False:", ("tests/test_studio.py", "-k", "a_word_edits")),
    Mutant("identical-save-says-saved", "direction_bank/store/records.py", "        if self.unchanged:\n",
           "        if False:\n", ("tests/test_studio.py", "-k", "asks_before_replacing")),
    Mutant("page-mistake-pills", "direction_bank/studio/page.py",
           "            mistake = said(page_words(first_line(error)))\n",
           "            raise gr.Error(page_words(first_line(error)))\n", ("tests/test_studio.py", "-k", "real_browser")),
    Mutant("cancel-while-starting-lost", "direction_bank/studio/session.py", "        if self._expected.get(owner):\n",
           "        if False:\n", ("tests/test_cancel.py", "-k", "any_point")),
    Mutant("generation-says-editing", "direction_bank/studio/session.py",
           "        desc = self.phases[index] if self.phases else desc", "        pass",
           ("tests/test_cancel.py", "-k", "one_bar")),
    Mutant("example-caption-unnatural", "direction_bank/studio/direction_actions.py",
           "prompt = min(naming, key=lambda text: (len(text), text)) if naming else class_prompt(row[\"source\"])",
           "prompt = class_prompt(row[\"source\"])", ("tests/test_cancel.py", "-k", "example_prompt")),
    Mutant("upload-label-hides-text", "direction_bank/studio/server.py",
           "el.removeAttribute('aria-label'));", "el.setAttribute('aria-label', 'upload'));",
           ("tests/test_studio.py", "-k", "real_browser")),
    # -- #34: directions in any diffusers pipeline ----------------------------------------------
    Mutant("steered-ignores-scale", "direction_bank/diffusers.py", "shift += float(scale) * tokens[0]",
           "shift += tokens[0]", ("tests/test_diffusers_api.py", "-k", "zero_direction")),
    Mutant("hub-provenance-dropped", "direction_bank/sharing/transfer.py",
           '**({"hub": shared.hub} if shared.hub else {})}', "}", ("tests/test_sharing.py", "-k", "hub_goes")),
    Mutant("scoring-phase-silent", "direction_bank/studio/edit_actions.py",
           '        report(1.0, f"scoring: {len(pairs)} pictures (CLIP and DINO)")', "        pass",
           ("tests/test_studio.py", "-k", "scores_each_edit")),
    Mutant("stale-line-beside-run", "direction_bank/studio/edit_tab.py",
           '    ui.run_button.click(lambda: ("", ""), None, [ui.edit_status, ui.build_status], api_name=False, queue=False)\n',
           "",
           ("tests/test_studio.py", "-k", "edit_tab_in_a_real_browser")),
    Mutant("studio-word-error-dropped", "direction_bank/studio/edit_actions.py",
           "found, _ = word_directions([choice], bank, None, strict=True)",
           "found, _ = word_directions([choice], bank, None)", ("tests/test_studio.py", "-k", "cannot_be_diffed")),
    Mutant("gguf-parsed-for-each-part", "direction_bank/text/generators/local.py", "        if key not in readers:\n",
           "        if True:\n", ("tests/test_generation.py", "-k", "parsed_once")),
    Mutant("word-swap-offers-no-build", "direction_bank/studio/edit_actions.py",
           "outcome.missing = tuple(sorted({word for choice in request.swaps for word in choice.missing}))",
           "outcome.missing = ()", ("tests/test_studio.py", "-k", "word_edits_with_the_saved")),
    Mutant("build-skips-a-word", "direction_bank/studio/bank_actions.py", "for number, word in enumerate(words):",
           "for number, word in enumerate(words[1:]):", ("tests/test_studio.py", "-k", "word_edits_with_the_saved")),
    Mutant("png-words-forget-concepts", "direction_bank/studio/edit_actions.py",
           "return entry.baseline == WORD_SWAP or entry.direction == WordChoice(entry.source, entry.target, CONCEPTS).label",
           "return entry.baseline == WORD_SWAP", ("tests/test_studio.py", "-k", "carries_its_words")),
    Mutant("repo-import-stores-despite-refusal", "direction_bank/sharing/transfer.py",
           "    if refused and not skip_bad:\n", "    if False:\n", ("tests/test_sharing.py", "-k", "hub_goes")),
    Mutant("card-without-base-model", "direction_bank/sharing/publish.py",
           "    base = hub_model_id(direction.encoder.model)\n", "    base = None\n",
           ("tests/test_sharing.py", "-k", "publish_writes and sqlite")),
    Mutant("publish-writes-over-a-folder", "direction_bank/sharing/publish.py",
           "    if folder.exists() and any(folder.iterdir()) and not overwrite:\n", "    if False:\n",
           ("tests/test_sharing.py", "-k", "publish_writes and sqlite")),
    Mutant("publish-takes-any-license", "direction_bank/sharing/publish.py",
           "    if not _LICENSE.fullmatch(license):\n", "    if False:\n",
           ("tests/test_sharing.py", "-k", "publish_writes and sqlite")),
    Mutant("slider-step-too-far", "direction_bank/studio/server.py", "(event.shiftKey ? 0.2 : 0.05)",
           "(event.shiftKey ? 0.2 : 0.1)", ("tests/test_studio.py", "-k", "edit_tab_in_a_real_browser")),
    Mutant("preview-without-the-direction", "direction_bank/jobs/preview.py",
           "editor.edit(inversion, entry.parts[0], settings", "editor.edit(inversion, 0 * entry.parts[0], settings",
           (E, "-k", "publish_preview")),
    Mutant("card-hides-the-preview", "direction_bank/sharing/publish.py", "    if preview is not None:\n        lines",
           "    if False:\n        lines", (E, "-k", "publish_preview")),
    Mutant("stale-preview-kept", "direction_bank/sharing/publish.py", "        (folder / PREVIEW).unlink(missing_ok=True)",
           "        pass", (E, "-k", "publish_preview")),
    Mutant("refresh-resets-a-fresh-pick", "direction_bank/studio/app.py",
           "    if value_then is None or value_then in values:\n        return gr.update(choices=choices)\n",
           "    if value_then is None or value_then in values:\n        return gr.update(choices=choices, value=value_then)\n",
           ("tests/test_studio.py", "-k", "refresh_clears")),
    Mutant("cli-reference-not-generated", "mkdocs.yml", "  - mkdocs-click\n", "",
           ("tests/test_docs.py", "-k", "site_builds")),
    Mutant("walkthrough-forgets-saving", "docs/guide/python.md",
           '    bank.save_direction("horse2zebra", bank.diff("horse", "zebra"))\n', "",
           ("tests/test_docs.py", "-k", "walkthrough")),
    Mutant("size-through-diffusers", "sd_models/family.py", "    folder = Path(source)\n    if folder.is_dir():",
           "    import diffusers  # noqa: F401\n    folder = Path(source)\n    if folder.is_dir():",
           (X, "-k", "default_size_is_the_models_own")),
    Mutant("model-index-unread", "editor/pipeline.py", 'bool(model_index(source).get("force_zeros_for_empty_prompt", True))',
           'bool({}.get("force_zeros_for_empty_prompt", True))', (X, "-k", "fp32_vae_under_fp16")),
]


def scratch_copy() -> Path:
    """The working tree (tracked and untracked, not ignored files) copied to a temporary folder."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                            check=True, capture_output=True).stdout.decode().split("\0")
    folder = Path(tempfile.mkdtemp(prefix="dbank-mutant-"))
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, folder / name)
    if (ROOT / ".axe").is_dir():  # axe-core from npm (ignored by git, installed by the README's test command)
        (folder / ".axe").symlink_to(ROOT / ".axe")
    return folder


def run(mutant: Mutant) -> tuple[str, float]:
    """'killed', 'SURVIVED' or 'not applied' (the text to change is not there exactly once)."""
    folder = scratch_copy()
    try:
        target = folder / mutant.path
        text = target.read_text()
        if text.count(mutant.old) != 1:
            return f"not applied ({mutant.old[:40]!r} occurs {text.count(mutant.old)} times)", 0.0
        target.write_text(text.replace(mutant.old, mutant.new))
        started = time.monotonic()
        env = {**os.environ, "PYTHONPATH": str(folder)}
        result = subprocess.run([sys.executable, "-m", "pytest", "-n", "0", "-x", "-q", "-p", "no:cacheprovider",
                                 *mutant.tests], cwd=folder, env=env, capture_output=True, text=True)
        elapsed = time.monotonic() - started
        if result.returncode == 5:
            return "no test ran (check the test names)", elapsed
        return ("killed" if result.returncode != 0 else "SURVIVED"), elapsed
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="only these mutants")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = parser.parse_args()
    if args.list:
        for mutant in MUTANTS:
            print(f"{mutant.name}\t{mutant.path}\t{' '.join(mutant.tests)}")
        return 0
    unknown = set(args.names) - {m.name for m in MUTANTS}
    if unknown:
        parser.error(f"unknown mutants: {', '.join(sorted(unknown))}")
    chosen = [m for m in MUTANTS if not args.names or m.name in args.names]
    bad = 0
    for mutant in chosen:
        outcome, seconds = run(mutant)
        bad += outcome != "killed"
        print(f"{outcome:10s} {seconds:6.1f} s  {mutant.name}  ({mutant.path})", flush=True)
    print(f"{len(chosen) - bad} of {len(chosen)} mutants killed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
