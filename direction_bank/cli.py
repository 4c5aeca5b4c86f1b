"""`dbank`: the command-line face of the Bank. Parses, calls Bank (or the editor), prints."""
from __future__ import annotations

import json
import sys

import click
from sqlalchemy.exc import DatabaseError, OperationalError, SQLAlchemyError

from direction_bank import __version__
from direction_bank.bank import DEFAULT_BATCH_SIZE, Bank
from direction_bank.cleaning import DEFAULT_DEDUP_MODEL, DEFAULT_DEDUP_THRESHOLD
from direction_bank.encoder import DEFAULT_MODEL
from direction_bank.errors import BankError, UnknownConcept, UnknownDirection


def _database_message(error: SQLAlchemyError) -> str:
    reason = str(getattr(error, "orig", error)).strip().splitlines()[0]
    if "locked" in reason or "busy" in reason:
        return "the bank is locked by another process (it waited DBANK_BUSY_TIMEOUT seconds); try again"
    if "not a database" in reason:
        return "the bank file is not a dbank database (SQLite says: file is not a database)"
    if "unable to open" in reason:
        return "cannot open the bank file (check the path and its permissions)"
    return f"database error: {reason}"


class BankGroup(click.Group):
    """A click group that turns bank and database errors into one-line messages."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BankError as error:
            raise click.ClickException(str(error)) from None
        except (OperationalError, DatabaseError) as error:
            raise click.ClickException(_database_message(error)) from None


def _emit(as_json: bool, data, text_lines) -> None:
    """Print data() as JSON, or the text_lines() for a person (only the one asked for is built)."""
    if as_json:
        click.echo(json.dumps(data(), indent=2, default=str))
    else:
        lines = list(text_lines())
        if lines:
            click.echo("\n".join(lines))


def _open(ctx, create: bool = False) -> Bank:
    bank = Bank(ctx.obj["database"], create=create)
    ctx.call_on_close(bank.close)
    return bank


model_option = click.option(
    "--model",
    envvar="DBANK_MODEL",
    default=DEFAULT_MODEL,
    show_default=True,
    help="Stable Diffusion model id or folder whose text encoder embeds sentences (env DBANK_MODEL).",
)
device_options = [
    click.option("--device", default=None, help="torch device (default: cuda if available, else cpu)."),
    click.option(
        "--dtype",
        type=click.Choice(["auto", "fp32", "fp16", "bf16"]),
        default="auto",
        show_default=True,
        help="Encoder precision: auto is fp16 on CUDA, fp32 on CPU.",
    ),
]
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def with_device(func):
    """Add --device and --dtype to a command."""
    for option in reversed(device_options):
        func = option(func)
    return func


def _load_encoder(model: str, device: str | None, dtype: str):
    from transformers.utils import logging as transformers_logging

    from direction_bank.encoder import TextEncoder
    from direction_bank.progress import interactive

    # we warn about long sentences ourselves; weight-loading bars only for a person watching
    transformers_logging.set_verbosity_error()
    if not interactive():
        transformers_logging.disable_progress_bar()
    return TextEncoder.load(model, device=device, dtype=dtype)


@click.group(cls=BankGroup)
@click.version_option(__version__, prog_name="dbank")
@click.option(
    "-d",
    "--database",
    envvar="DBANK_DB",
    default=None,
    help="Bank file path or SQLAlchemy URL (env DBANK_DB; default: bank.db in the user data dir).",
)
@click.pass_context
def cli(ctx, database):
    """A bank of reusable pix2pix-zero edit directions for Stable Diffusion."""
    ctx.ensure_object(dict)
    ctx.obj["database"] = database


@cli.command("add-concept")
@click.argument("name")
@click.option(
    "--sentences",
    "sentences_file",
    type=click.File("r", encoding="utf-8"),
    help="Sentences to add, one per line ('-' for stdin), instead of generating them.",
)
@click.option(
    "--generator",
    type=click.Choice(["openai", "local", "template"]),
    default=None,
    help="Sentence writer (default: openai when OPENAI_API_KEY is set, else local).",
)
@click.option("--llm", default=None, help="Generator model: an OpenAI model name, or a local id, folder, "
              ".gguf file or 'smollm2'.")
@click.option("--base-url", envvar="OPENAI_BASE_URL", default=None,
              help="OpenAI-compatible server (env OPENAI_BASE_URL): vLLM, Ollama, llama.cpp.")
@click.option("-n", "--count", default=1000, show_default=True, help="Sentences the concept should hold.")
@click.option("--max-candidates", type=int, default=None,
              help="Stop after trying this many generated sentences (default 10x --count).")
@click.option("--dedup-threshold", type=float, default=DEFAULT_DEDUP_THRESHOLD, show_default=True,
              help="Cosine similarity at which a sentence counts as a near duplicate (1 turns it off; "
              "the template generator never uses it).")
@click.option("--dedup-model", default=DEFAULT_DEDUP_MODEL, show_default=True,
              help="sentence-transformers model for near-duplicate detection.")
@click.option("--seed", default=0, show_default=True, help="Seed of the generator.")
@click.option("--batch-size", default=DEFAULT_BATCH_SIZE, show_default=True, help="Sentences per batch.")
@model_option
@with_device
@json_option
@click.pass_context
def add_concept(ctx, name, sentences_file, generator, llm, base_url, count, max_candidates,
                dedup_threshold, dedup_model, seed, batch_size, model, device, dtype, as_json):
    """Add sentences about NAME and fold their embeddings into its statistics."""
    if count < 1:
        raise click.ClickException("--count must be at least 1")
    if sentences_file is not None:
        sentences = [line for line in sentences_file.read().splitlines() if line.strip()]
        if not sentences:
            raise click.ClickException(f"no sentences in {sentences_file.name}")
    else:
        from direction_bank.generators import make_generator

        writer = make_generator(generator, llm=llm, seed=seed, base_url=base_url, device=device)
    encoder = _load_encoder(model, device, dtype)
    bank = _open(ctx, create=True)
    if sentences_file is not None:
        report = bank.add_sentences(name, sentences, encoder, batch_size=batch_size, progress=True)
    else:
        from direction_bank.cleaning import SemanticDeduplicator, SentenceCleaner

        semantic = writer.provenance.generator != "template" and dedup_threshold < 1
        cleaner = SentenceCleaner(
            encoder.token_counts, encoder.max_length,
            SemanticDeduplicator(dedup_model, dedup_threshold, device) if semantic else None,
        )
        report = bank.fill_concept(name, writer, count, encoder, batch_size=batch_size,
                                   cleaner=cleaner, max_candidates=max_candidates, progress=True)
    for text in report.truncated:
        click.echo(f"warning: longer than {encoder.max_length} tokens, truncated: {text}", err=True)
    if report.target is not None and report.sentence_count < report.target:
        click.echo(
            f"warning: stopped at {report.sentence_count} of {report.target} sentences after "
            f"trying {report.tried} candidates; run again to continue", err=True,
        )

    def lines():
        yield (
            f"{report.concept}: added {report.added}, skipped {report.skipped} duplicates"
            + (f", embedded {report.backfilled} stored sentences" if report.backfilled else "")
            + f"; {report.sentence_count} sentences stored"
        )
        if report.dropped:
            reasons = ", ".join(f"{n} {why}" for why, n in sorted(report.dropped.items()) if n)
            yield f"tried {report.tried} generated sentences; dropped: {reasons or 'none'}"
        if report.usage:
            yield (f"LLM usage: {report.usage['requests']} requests, {report.usage['prompt_tokens']} "
                   f"prompt + {report.usage['completion_tokens']} completion tokens")

    _emit(as_json, report.as_dict, lines)


@cli.command("generators")
@json_option
def generators(as_json):
    """List the sentence generators and whether each can run here."""
    from direction_bank.generators import available_generators

    rows = available_generators()
    _emit(as_json, lambda: rows, lambda: (
        f"{r['name']}{' (default)' if r['default'] else ''}\t"
        f"{'available' if r['available'] else 'unavailable'}\t{r['model'] or '-'}\t{r['note']}"
        for r in rows
    ))


@cli.command("concepts")
@json_option
@click.pass_context
def concepts(ctx, as_json):
    """List the concepts in the bank."""
    summaries = _open(ctx).concepts()

    def lines():
        for s in summaries:
            models = ", ".join(f"{e['model']} ({e['count']})" for e in s.encoders) or "not embedded"
            yield f"{s.name}\t{s.sentence_count} sentences\t{models}"

    _emit(as_json, lambda: [s.as_dict() for s in summaries], lines)


@cli.command("show")
@click.argument("name")
@json_option
@click.pass_context
def show(ctx, name, as_json):
    """Show a concept (sentence count, encoders, mean norm, a few sentences) or a saved
    direction (source, target, norm, confidence, recipe)."""
    bank = _open(ctx)
    try:
        info = bank.describe(name)
    except UnknownConcept:
        try:
            direction = bank.direction(name)
        except UnknownDirection:
            raise BankError(f"no concept or direction named {name!r} in the bank") from None
        from direction_bank.cli_directions import direction_lines

        _emit(as_json, direction.as_dict, lambda: direction_lines(direction))
        return

    def lines():
        yield f"{info['name']}: {info['sentence_count']} sentences"
        for e in info["encoders"]:
            yield (
                f"  {e['model']} ({e['encoder_class']}, {e['hidden_size']}-d): "
                f"{e['count']} embedded, mean norm {e['mean_norm']:.4f}"
            )
        for text in info["sentences"]:
            yield f"  - {text}"

    _emit(as_json, lambda: info, lines)


@cli.command("sentences")
@click.argument("name")
@json_option
@click.pass_context
def sentences(ctx, name, as_json):
    """List a concept's sentences with their ids."""
    records = _open(ctx).sentences(name)
    _emit(as_json, lambda: [r.as_dict() for r in records], lambda: (f"{r.id}\t{r.text}" for r in records))


@cli.command("remove")
@click.argument("name")
@click.pass_context
def remove(ctx, name):
    """Remove a concept with its sentences and statistics."""
    count = _open(ctx).remove_concept(name)
    click.echo(f"removed {name} ({count} sentences)")


@cli.command("remove-sentence")
@click.argument("name")
@click.argument("text", required=False)
@click.option("--id", "sentence_id", type=int, help="The sentence's id (see dbank sentences).")
@with_device
@click.pass_context
def remove_sentence(ctx, name, text, sentence_id, device, dtype):
    """Remove one sentence (by TEXT or --id) and take it out of the statistics."""
    if (text is None) == (sentence_id is None):
        raise click.ClickException("give the sentence's TEXT or its --id (one of the two)")
    bank = _open(ctx)
    record = bank.remove_sentence(
        name, lambda info: _load_encoder(info.model, device, dtype), text=text, sentence_id=sentence_id
    )
    click.echo(f"removed #{record.id} from {name}: {record.text}")


from direction_bank import cli_directions, cli_edit, cli_shared  # noqa: E402,F401  (they register commands)


def main(argv=None) -> None:
    """Console entry point."""
    cli.main(args=argv, prog_name="dbank")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
