"""Commands for banks that many people and machines share: `add-concepts` (workers on one or
many machines), `queue` (their progress), `check` (integrity, --repair) and `backup`."""
from __future__ import annotations

import click

from direction_bank.cli.app import (
    cli, emit, encoder_model_option, json_option, load_encoder, open_bank, overwrite_option, with_device,
)
from direction_bank.cli.concepts import cleaning_options, generator_options
from direction_bank.cli.params import FiniteFloat, count_range


def _work(database, generator, llm, base_url, request_timeout, deadline, seed, model, device, dtype, lease,
          batch_size, max_candidates, cleaning, threads, workers) -> list[str]:
    """One worker: load the encoder, the near-duplicate model and the generator's settings, then
    drain the queue, printing each concept's kept/dropped report (on stderr) as it finishes."""
    from direction_bank.bank import Bank
    from direction_bank.threads import use_cpu_threads

    use_cpu_threads(threads, sharing=workers)
    from direction_bank.text.generators import make_generator
    from direction_bank.jobs.work_queue import run_worker

    writer = make_generator(generator, llm=llm, seed=seed, base_url=base_url, device=device,
                            timeout_s=request_timeout, deadline_s=deadline)  # loaded once, for every concept
    deduplicator = cleaning.deduplicator(writer.provenance.generator, device)
    encoder = load_encoder(model, device, dtype)

    def cleaner():
        if deduplicator is not None:
            deduplicator.forget()  # each concept is de-duplicated against itself only
        return cleaning.cleaner(encoder, deduplicator)

    with Bank(database) as bank:
        return run_worker(bank, lambda: writer, encoder, lease_s=lease, batch_size=batch_size, make_cleaner=cleaner,
                          max_candidates=max_candidates, on_done=lambda report: click.echo(report_line(report), err=True))


def report_line(report) -> str:
    """One line per finished concept: its sentences against the target, and where every
    candidate went."""
    from direction_bank.jobs.concepts import tried_line

    return f"{report.concept}: {report.sentence_count}/{report.target} sentences; {tried_line(report)}"


@cli.command("add-concepts")
@click.argument("concepts_file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("-n", "--count", type=count_range(), default=1000, show_default=True,
              help="Target for lines without a count.")
@click.option("--workers", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Worker processes on this machine.")
@click.option("--lease", type=FiniteFloat(1, 7 * 86400), default=300.0, show_default=True,
              help="Seconds a claim lasts without renewal; a dead worker's concept is retaken after it.")
@click.option("--max-candidates", type=count_range(), default=None,
              help="Stop a concept after trying this many generated sentences (default 10x its count).")
@cleaning_options
@generator_options
@encoder_model_option
@with_device
@json_option
@click.pass_context
def add_concepts(ctx, concepts_file, count, workers, lease, max_candidates, cleaning, generator, llm, base_url,
                 request_timeout, deadline, seed, batch_size, threads, model, device, dtype, as_json):
    """Queue the concepts in CONCEPTS_FILE (one per line, or CSV 'concept,count') and work on
    them; run the same command on other machines against the same bank to share the work."""
    import multiprocessing

    from direction_bank.text.generators import check_generator
    from direction_bank.text.text_input import read_text
    from direction_bank.jobs.work_queue import enqueue, parse_concepts, queue_status

    pairs = parse_concepts(read_text(concepts_file), count)
    check_generator(generator, llm, base_url)  # before the queue changes
    bank = open_bank(ctx, create=True)
    added = enqueue(bank, pairs)
    database = bank.db.url
    args = (database, generator, llm, base_url, request_timeout, deadline, seed, model, device, dtype, lease,
            batch_size, max_candidates, cleaning, threads, workers)
    if workers == 1:
        _work(*args)
    else:
        context = multiprocessing.get_context("spawn")
        processes = [context.Process(target=_work, args=args) for _ in range(workers)]
        for process in processes:
            process.start()
        for process in processes:
            process.join()
        if any(process.exitcode for process in processes):
            raise click.ClickException("a worker failed; run the command again to finish the queue")
    status = queue_status(bank)
    emit(as_json, lambda: {"queued": added, **status},
          lambda: [f"queued {added} new; " + ", ".join(f"{n} {s}" for s, n in sorted(status["counts"].items()))])


@cli.command("queue")
@json_option
@click.pass_context
def queue(ctx, as_json):
    """Progress of the work queue across all workers."""
    from direction_bank.jobs.work_queue import queue_status

    status = queue_status(open_bank(ctx, read_only=True))

    def lines():
        yield ", ".join(f"{n} {s}" for s, n in sorted(status["counts"].items())) or "the queue is empty"
        for item in status["items"]:
            where = f" ({item['worker']})" if item["status"] == "running" else ""
            yield f"{item['concept']}\t{item['status']}{where}\t{item['sentences']}/{item['target']}"

    emit(as_json, lambda: status, lines)


@cli.command("check")
@click.option("--deep", is_flag=True, help="Also re-embed a sample of each concept's sentences.")
@click.option("--sample", type=count_range(), default=64, show_default=True,
              help="Sentences per concept for --deep.")
@click.option("--repair", is_flag=True, help="First mend split or orphaned direction histories (no version is "
              "lost) and recompute statistics from the stored sentences.")
@with_device
@json_option
@click.pass_context
def check(ctx, deep, sample, repair, device, dtype, as_json):
    """Verify the bank: schema version, counts, hashes, finite statistics (exit 1 on problems)."""
    from direction_bank.jobs.integrity import check_bank, repair_direction_histories, repair_statistics

    bank = open_bank(ctx, read_only=not repair)
    encoders = {}

    def load(info):
        if info.id not in encoders:
            encoders[info.id] = load_encoder(info.model, device, dtype)
            if bank.encoder_id(encoders[info.id]) != info.id:
                raise click.ClickException(f"the weights at {info.model!r} changed since they were used")
        return encoders[info.id]

    repaired = [*repair_direction_histories(bank), *repair_statistics(bank, load)] if repair else []
    problems = check_bank(bank, deep, sample, load)
    emit(as_json, lambda: {"ok": not problems, "problems": list(problems), "repaired": repaired,
                           "checked": problems.checked},
         lambda: [*repaired, *problems, problems.summary(),
                  "the bank is sound" if not problems else f"{len(problems)} problems"])
    if problems:
        raise SystemExit(1)


@cli.command("backup")
@click.argument("destination", type=click.Path(dir_okay=False))
@overwrite_option
@click.pass_context
def backup(ctx, destination, overwrite):
    """Write a consistent copy of a SQLite bank to DESTINATION, even while it is in use."""
    from direction_bank.jobs.integrity import backup_bank
    from direction_bank.output_files import check_output

    check_output(destination, overwrite)
    click.echo(f"wrote {backup_bank(open_bank(ctx, read_only=True), destination, overwrite)}")
