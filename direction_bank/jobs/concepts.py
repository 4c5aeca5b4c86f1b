"""The add-a-concept job both faces call (cli/concepts.py, studio/actions.py): the sentence
writer and the cleaner's models set up before any bank opens, the concept filled to a count
through the cleaner, and the lines that report it."""
from __future__ import annotations


def sentence_writer(generator: str | None, llm: str | None, seed: int, device: str | None, cleaning,
                    base_url: str | None = None, timeout_s: float | None = None, deadline_s: float | None = None):
    """(writer, deduplicator): the sentence generator and the cleaner's near-duplicate model,
    loaded before the bank opens, so a failed load leaves no bank behind."""
    from direction_bank.text.generators import make_generator

    writer = make_generator(generator, llm=llm, seed=seed, base_url=base_url, device=device,
                            timeout_s=timeout_s, deadline_s=deadline_s)
    return writer, cleaning.deduplicator(writer.provenance.generator, device)


def fill_concept(bank, name: str, writer, deduplicator, cleaning, encoder, count: int, **options):
    """Bank.fill_concept through the cleaner `cleaning` builds: generate, clean, embed and store
    until `name` holds `count` sentences; its FillReport. `options` go to Bank.fill_concept
    (batch_size, max_candidates, progress, on_batch)."""
    return bank.fill_concept(name, writer, count, encoder, cleaner=cleaning.cleaner(encoder, deduplicator), **options)


def fill_lines(report) -> list[str]:
    """What an add did, for a person: sentences added and skipped, where every candidate went
    (each drop reason with its count, the surplus), the LLM's usage."""
    lines = [f"{report.concept}: added {report.added}, skipped {report.skipped} duplicates"
             + (f", embedded {report.backfilled} stored sentences" if report.backfilled else "")
             + f"; {report.sentence_count} sentences stored"]
    if report.tried:
        lines.append(tried_line(report))
    if report.usage:
        lines.append(f"LLM usage: {report.usage['requests']} requests, {report.usage['prompt_tokens']} prompt + "
                     f"{report.usage['completion_tokens']} completion tokens")
    return lines


def tried_line(report) -> str:
    """Where every candidate (or given line) went, adding up to those tried."""
    from direction_bank.text.cleaning import tried_text

    return tried_text(report.tried, ("added", report.added), report.skipped, report.dropped, report.surplus)


def stopped_line(report) -> str | None:
    """The line for an add that stopped short of its target (None when it reached it)."""
    if report.target is None or report.sentence_count >= report.target:
        return None
    return (f"stopped at {report.sentence_count} of {report.target} sentences after trying {report.tried} "
            "candidates; run again to continue")
