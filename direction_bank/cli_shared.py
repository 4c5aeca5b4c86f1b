"""Commands for banks that many people and machines share: `add-concepts` (workers on one or
many machines), `queue` (their progress), `check` (integrity, --repair) and `backup`.
Registered on the group in cli.py."""
from __future__ import annotations

import click

from direction_bank.bank import DEFAULT_BATCH_SIZE
from direction_bank.cli import _emit, _load_encoder, _open, cli, json_option, model_option, with_device


def _work(database, generator, llm, base_url, seed, model, device, dtype, lease, batch_size) -> list[str]:
    """One worker: load the encoder and the generator's settings, then drain the queue."""
    from direction_bank.bank import Bank
    from direction_bank.generators import make_generator
    from direction_bank.work_queue import run_worker

    encoder = _load_encoder(model, device, dtype)
    with Bank(database) as bank:
        return run_worker(bank, lambda: make_generator(generator, llm=llm, seed=seed, base_url=base_url,
                                                       device=device),
                          encoder, lease_s=lease, batch_size=batch_size)


@cli.command("add-concepts")
@click.argument("concepts_file", type=click.File("r", encoding="utf-8"))
@click.option("-n", "--count", default=1000, show_default=True, help="Target for lines without a count.")
@click.option("--workers", default=1, show_default=True, help="Worker processes on this machine.")
@click.option("--lease", default=300.0, show_default=True,
              help="Seconds a claim lasts without renewal; a dead worker's concept is retaken after it.")
@click.option("--generator", type=click.Choice(["openai", "local", "template"]), default=None,
              help="Sentence writer (default: openai when OPENAI_API_KEY is set, else local).")
@click.option("--llm", default=None, help="Generator model (see add-concept).")
@click.option("--base-url", envvar="OPENAI_BASE_URL", default=None, help="OpenAI-compatible server.")
@click.option("--seed", default=0, show_default=True)
@click.option("--batch-size", default=DEFAULT_BATCH_SIZE, show_default=True)
@model_option
@with_device
@json_option
@click.pass_context
def add_concepts(ctx, concepts_file, count, workers, lease, generator, llm, base_url, seed, batch_size,
                 model, device, dtype, as_json):
    """Queue the concepts in CONCEPTS_FILE (one per line, or CSV 'concept,count') and work on
    them; run the same command on other machines against the same bank to share the work."""
    import multiprocessing

    from direction_bank.work_queue import enqueue, parse_concepts, queue_status

    if workers < 1:
        raise click.ClickException("--workers must be at least 1")
    pairs = parse_concepts(concepts_file.read(), count)
    bank = _open(ctx, create=True)
    added = enqueue(bank, pairs)
    database = bank.db.url
    args = (database, generator, llm, base_url, seed, model, device, dtype, lease, batch_size)
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
    _emit(as_json, lambda: {"queued": added, **status},
          lambda: [f"queued {added} new; " + ", ".join(f"{n} {s}" for s, n in sorted(status["counts"].items()))])


@cli.command("queue")
@json_option
@click.pass_context
def queue(ctx, as_json):
    """Progress of the work queue across all workers."""
    from direction_bank.work_queue import queue_status

    status = queue_status(_open(ctx))

    def lines():
        yield ", ".join(f"{n} {s}" for s, n in sorted(status["counts"].items())) or "the queue is empty"
        for item in status["items"]:
            where = f" ({item['worker']})" if item["status"] == "running" else ""
            yield f"{item['concept']}\t{item['status']}{where}\t{item['sentences']}/{item['target']}"

    _emit(as_json, lambda: status, lines)


@cli.command("check")
@click.option("--deep", is_flag=True, help="Also re-embed a sample of each concept's sentences.")
@click.option("--sample", default=64, show_default=True, help="Sentences per concept for --deep.")
@click.option("--repair", is_flag=True, help="Recompute statistics from the stored sentences first.")
@with_device
@json_option
@click.pass_context
def check(ctx, deep, sample, repair, device, dtype, as_json):
    """Verify the bank: schema version, counts, hashes, finite statistics (exit 1 on problems)."""
    from direction_bank.integrity import check_bank, repair_statistics

    bank = _open(ctx)
    encoders = {}

    def load(info):
        if info.id not in encoders:
            encoders[info.id] = _load_encoder(info.model, device, dtype)
            if bank.register_encoder(encoders[info.id]).id != info.id:
                raise click.ClickException(f"the weights at {info.model!r} changed since they were used")
        return encoders[info.id]

    repaired = repair_statistics(bank, load) if repair else []
    problems = check_bank(bank, deep, sample, load)
    _emit(as_json, lambda: {"ok": not problems, "problems": problems, "repaired": repaired},
          lambda: [*repaired, *problems, "the bank is sound" if not problems else f"{len(problems)} problems"])
    if problems:
        raise SystemExit(1)


@cli.command("backup")
@click.argument("destination", type=click.Path(dir_okay=False))
@click.pass_context
def backup(ctx, destination):
    """Write a consistent copy of a SQLite bank to DESTINATION, even while it is in use."""
    from direction_bank.integrity import backup_bank

    click.echo(f"wrote {backup_bank(_open(ctx), destination)}")
