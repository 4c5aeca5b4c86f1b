"""`dbank` commands for concepts: add-concept, generators, concepts, sentences, remove,
remove-sentence."""
from __future__ import annotations

import click

from direction_bank.text.encoder import DEFAULT_BATCH_SIZE
from direction_bank.cli.app import (
    cli, emit, encoder_model_option, json_option, load_encoder, open_bank, require_encoder, warn_of_lookalike,
    with_device,
)
from direction_bank.cli.params import ID, SEED, FiniteFloat, count_range
from direction_bank.text.generators.openai_chat import DEFAULT_DEADLINE_S, DEFAULT_REQUEST_TIMEOUT_S


def cleaning_options(func):
    """Options that judge generated sentences (add-concept, add-concepts), passed to the command
    as one `cleaning` CleaningSettings."""
    import functools

    from direction_bank.text.cleaning import DEFAULT_DEDUP_MODEL, DEFAULT_DEDUP_THRESHOLD, DEFAULT_FAMILY_CAP, CleaningSettings

    @functools.wraps(func)
    def wrapped(*args, dedup_threshold, dedup_model, family_cap, coherence, **kwargs):
        return func(*args, cleaning=CleaningSettings(dedup_model, dedup_threshold, family_cap, coherence), **kwargs)

    options = [
        click.option("--dedup-threshold", type=FiniteFloat(0, 1), default=DEFAULT_DEDUP_THRESHOLD, show_default=True,
                     help="Cosine similarity at which a sentence counts as a near duplicate (1 turns MiniLM's "
                     "checks off, the family cap too; the template generator never uses them)."),
        click.option("--dedup-model", default=DEFAULT_DEDUP_MODEL, show_default=True,
                     help="sentence-transformers model for near-duplicate and family detection."),
        click.option("--family-cap", type=click.IntRange(0, 100_000), default=DEFAULT_FAMILY_CAP, show_default=True,
                     help="Drop a sentence that already has this many kept relatives (MiniLM cosine >= 0.8, or "
                     "the same frame with one phrase swapped) as a crowded family; 0 turns it off."),
        click.option("--coherence/--no-coherence", default=True, show_default=True,
                     help="Drop generated captions that name the concept twice ('a horse riding a horse'), ride "
                     "with no person named ('a horse riding on the beach'), borrow a body part ('the head of a "
                     "lion') or repeat another word ('a cage in its cage'), each counted under its reason."),
    ]
    for option in reversed(options):
        wrapped = option(wrapped)
    return wrapped


def generator_options(func):
    """Options that choose and bound the sentence writer (add-concept, add-concepts)."""
    options = [
        click.option("--generator", type=click.Choice(["openai", "local", "template"]), default=None,
                     help="Sentence writer (default: openai when OPENAI_API_KEY is set, else local)."),
        click.option("--llm", default=None, help="Generator model: an OpenAI model name, or a local id, "
                     "folder, .gguf file or 'smollm2'."),
        click.option("--base-url", envvar="OPENAI_BASE_URL", default=None,
                     help="OpenAI-compatible server (env OPENAI_BASE_URL): vLLM, Ollama, llama.cpp."),
        click.option("--timeout", "request_timeout", type=FiniteFloat(0.1, 3600),
                     default=DEFAULT_REQUEST_TIMEOUT_S, show_default=True,
                     help="OpenAI-compatible servers: seconds one request may take, answer included."),
        click.option("--deadline", type=FiniteFloat(1, 7 * 86400), default=DEFAULT_DEADLINE_S,
                     show_default=True, help="OpenAI-compatible servers: seconds the whole generation may "
                     "take (what was stored by then is kept)."),
        click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the generator."),
        click.option("--batch-size", type=click.IntRange(1, 4096), default=DEFAULT_BATCH_SIZE,
                     show_default=True, help="Sentences per batch."),
        click.option("--threads", type=click.IntRange(1, 1024), envvar="DBANK_THREADS", show_envvar=True, default=None,
                     help="CPU threads for local generation and embedding [default: OMP_NUM_THREADS, else the "
                     "cores this process may use, shared among --workers]."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@cli.command("add-concept")
@click.argument("name")
@click.option("--sentences", "sentences_file", type=click.Path(dir_okay=False, allow_dash=True),
              help="Sentences to add, one per line ('-' for stdin), instead of generating them.")
@click.option("-n", "--count", type=count_range(), default=1000, show_default=True,
              help="Sentences the concept should hold.")
@click.option("--max-candidates", type=count_range(), default=None,
              help="Stop after trying this many generated sentences (default 10x --count).")
@cleaning_options
@click.option("--preview", type=click.IntRange(1, 10_000), default=None, metavar="K",
              help="Print K generated and cleaned sentences, and each dropped line with its reason; "
              "embed and store nothing.")
@click.option("--require-concept", is_flag=True,
              help="With --sentences: leave out lines that do not name the concept (they are counted either way).")
@generator_options
@encoder_model_option
@with_device
@json_option
@click.pass_context
def add_concept(ctx, name, sentences_file, count, max_candidates, cleaning, preview, require_concept, generator, llm,
                base_url, request_timeout, deadline, seed, batch_size, threads, model, device, dtype, as_json):
    """Add sentences about NAME and fold their embeddings into its statistics."""
    from direction_bank.jobs.concepts import fill_concept, fill_lines, sentence_writer, stopped_line
    from direction_bank.names import check_name

    name = check_name(name)
    if preview and sentences_file is not None:
        raise click.UsageError("--preview shows generated sentences; it does not read --sentences")
    require_encoder(model)  # before the sentence models load
    from direction_bank.threads import use_cpu_threads

    use_cpu_threads(threads)
    if sentences_file is not None:
        from direction_bank.text.text_input import read_text

        sentences = [line for line in read_text(sentences_file).splitlines() if line.strip()]
        if not sentences:
            raise click.ClickException(f"no sentences in {sentences_file}")
    else:  # every model loads before the bank is opened, so a failed load leaves no bank behind
        writer, deduplicator = sentence_writer(generator, llm, seed, device, cleaning, base_url, request_timeout,
                                               deadline)
    encoder = load_encoder(model, device, dtype)
    if preview:
        _preview(name, writer, cleaning.cleaner(encoder, deduplicator, record=True), preview, batch_size,
                 max_candidates, as_json)
        return
    bank = open_bank(ctx, create=True)
    warn_of_lookalike(bank, "concept", name)
    if sentences_file is not None:
        report = bank.add_sentences(name, sentences, encoder, batch_size=batch_size, progress=True,
                                    require_concept=require_concept)
        if report.off_concept:
            lines = "1 line does" if report.off_concept == 1 else f"{report.off_concept} lines do"
            click.echo(f"warning: {lines} not name {name!r}"
                       + (" and were left out" if require_concept else " (--require-concept leaves them out)"),
                       err=True)
    else:
        report = fill_concept(bank, name, writer, deduplicator, cleaning, encoder, count, batch_size=batch_size,
                              max_candidates=max_candidates, progress=True)
    for text in report.truncated:
        click.echo(f"warning: longer than {encoder.max_length} tokens, truncated: {text}", err=True)
    if report.refused:
        click.echo(f"warning: {report.refused} lines with control characters were not stored", err=True)
    if stopped_line(report):
        click.echo(f"warning: {stopped_line(report)}", err=True)
    emit(as_json, report.as_dict, lambda: fill_lines(report))


def _preview(name, writer, cleaner, count, batch_size, max_candidates, as_json) -> None:
    """Print what a run would keep and drop (and why), storing nothing."""
    from direction_bank.text.cleaning import preview_sentences, tried_text

    kept, tried = preview_sentences(writer, cleaner, name, count, batch_size, max_candidates or max(10 * count, 100),
                                    progress=True)
    dropped, surplus = cleaner.dropped_lines, cleaner.report.kept - len(kept)
    counts = {reason: n for reason, n in sorted(cleaner.report.dropped.items()) if n}

    def lines():
        yield from (f"kept\t{text}" for text in kept)
        yield from (f"dropped ({reason})\t{text}" for text, reason in dropped)
        yield f"{name}: {tried_text(tried, ('kept', len(kept)), 0, counts, surplus)}; nothing stored"

    emit(as_json, lambda: {"concept": name, "kept": kept, "tried": tried, "dropped_counts": counts, "surplus": surplus,
                           "dropped": [{"text": text, "reason": reason} for text, reason in dropped]}, lines)


@cli.command("generators")
@click.option("--clear-cache", is_flag=True,
              help="Delete the converted GGUF models (made again, about 20 s, when next used).")
@json_option
def generators(clear_cache, as_json):
    """List the sentence generators, whether each can run here, and where the local one keeps
    GGUF models converted (one copy per file content, shared by every install; env DBANK_GGUF_CACHE)."""
    if clear_cache:
        from direction_bank.text.generators.local import clear_gguf_cache, gguf_cache_folder

        freed = clear_gguf_cache()
        emit(as_json, lambda: {"cache": str(gguf_cache_folder()), "freed_bytes": freed},
             lambda: [f"cleared {gguf_cache_folder()}: freed {freed / 1e6:.0f} MB"])
        return
    from direction_bank.text.generators import available_generators

    rows = available_generators()

    def lines():
        for r in rows:
            yield (f"{r['name']}{' (default)' if r['default'] else ''}\t"
                   f"{'available' if r['available'] else 'unavailable'}\t{r['model'] or '-'}\t{r['note']}")
            if "cache" in r:
                yield (f"  converted GGUF models: {r['cache']} ({r['cache_bytes'] / 1e6:.0f} MB; "
                       "dbank generators --clear-cache deletes them)")

    emit(as_json, lambda: rows, lines)


@cli.command("concepts")
@json_option
@click.pass_context
def concepts(ctx, as_json):
    """List the concepts in the bank."""
    from direction_bank.store.quick_read import concept_summaries

    summaries = concept_summaries(ctx.obj["database"])
    if summaries is None:
        summaries = open_bank(ctx, read_only=True).concepts()

    def lines():
        for s in summaries:
            models = ", ".join(f"{e['model']} ({e['count']})" for e in s.encoders) or "not embedded"
            yield f"{s.name}\t{s.sentence_count} sentences\t{models}"

    emit(as_json, lambda: [s.as_dict() for s in summaries], lines)


@cli.command("sentences")
@click.argument("name")
@json_option
@click.pass_context
def sentences(ctx, name, as_json):
    """List a concept's sentences with their ids."""
    records = open_bank(ctx, read_only=True).sentences(name)
    emit(as_json, lambda: [r.as_dict() for r in records], lambda: (f"{r.id}\t{r.text}" for r in records))


@cli.command("remove")
@click.argument("name")
@click.pass_context
def remove(ctx, name):
    """Move a concept (sentences and statistics) or, when no concept has the name, a saved
    direction (every version) to the trash; dbank restore NAME brings it back."""
    from direction_bank.errors import UnknownConcept, UnknownDirection

    bank = open_bank(ctx)
    try:
        count = bank.remove_concept(name)
    except UnknownConcept:
        try:
            versions = bank.remove_direction(name)
        except UnknownDirection:
            raise bank.unknown_name(name) from None
        click.echo(f"moved direction {name} ({versions} version{'s' * (versions != 1)}) to the trash")
        return
    click.echo(f"moved {name} ({count} sentences) to the trash")


@cli.command("remove-sentence")
@click.argument("name")
@click.argument("text", required=False)
@click.option("--id", "sentence_id", type=ID, help="The sentence's id (see dbank sentences).")
@with_device
@click.pass_context
def remove_sentence(ctx, name, text, sentence_id, device, dtype):
    """Move one sentence (by TEXT or --id) to the trash, taking it out of the statistics."""
    if (text is None) == (sentence_id is None):
        raise click.ClickException("give the sentence's TEXT or its --id (one of the two)")
    bank = open_bank(ctx)
    record = bank.remove_sentence(
        name, lambda info: load_encoder(info.model, device, dtype), text=text, sentence_id=sentence_id
    )
    click.echo(f"moved #{record.id} of {name} to the trash: {record.text}")
