"""`dbank edit PHOTO --to zebra [--from horse]`: the command line's side of an edit by a word
(jobs/word_edit.py chooses the direction): the bank's names, and the captions that name the
source when no --from is given (BLIP writes the missing ones first)."""
from __future__ import annotations

from pathlib import Path

import click

from direction_bank.errors import BankError


def _bank_names(ctx) -> tuple[object | None, list[str], list[dict]]:
    """(bank or None, concept names, saved direction rows): a word edit needs no bank at all."""
    from direction_bank.cli.app import open_bank

    try:
        bank = open_bank(ctx, read_only=True)
    except BankError:  # no bank yet: every pair is a word-swap
        return None, [], []
    return bank, [summary.name for summary in bank.concepts()], bank.directions()


def _captioned(listed, caption_model: str, device: str | None):
    """The rows with BLIP's caption where they have none (an unreadable image keeps None: the run
    reports it)."""
    from PIL import Image, UnidentifiedImageError

    from editor.caption import Captioner
    from sd_models.precision import default_device

    captioner, rows = None, []
    for image, caption, own in listed:
        if caption is None and Path(image).is_file():
            captioner = captioner or Captioner(caption_model, device or default_device())
            try:
                with Image.open(image) as opened:
                    caption = captioner(opened.convert("RGB"))
            except (OSError, UnidentifiedImageError):
                pass
        rows.append((image, caption, own))
    return rows


def word_edits(ctx, listed, sources, targets, model: str, caption_model: str, device: str | None, dtype: str):
    """(rows with captions, the word labels of each row, [Resolved], errors, [WordChoice]) for
    the --from/--to words of `dbank edit`; each choice is said on stderr."""
    from direction_bank.cli.app import load_encoder
    from direction_bank.jobs.word_edit import check_word, choose, concept_in_caption, word_directions

    if sources and len(sources) != len(targets):
        raise click.UsageError("give a --from for every --to, or none (then the concept each caption names)")
    targets = [check_word(word, "to") for word in targets]
    sources = [check_word(word, "from") for word in sources]
    bank, concepts, saved = _bank_names(ctx)
    if not sources:
        listed = _captioned(listed, caption_model, device)
    labels, choices, errors = [], {}, []
    for image, caption, _ in listed:
        own = []
        if caption is None:  # an image BLIP could not read: the run says so
            labels.append(own)
            continue
        source = concept_in_caption(caption, concepts) if not sources else None
        if not sources and source is None:
            errors.append(f"{image}: its caption {caption!r} names no concept in the bank; name the word to "
                          "change with --from")
        for source, target in (zip(sources, targets) if sources else ((source, t) for t in targets if source)):
            try:
                choice = choose(source, target, concepts, saved, model)
            except BankError as error:
                errors.append(f"{image}: {error}")
                continue
            choices.setdefault(choice.label, choice)
            own.append(choice.label)
        labels.append(own)
    for choice in choices.values():
        click.echo(choice.line(), err=True)
    resolved, more = word_directions(list(choices.values()), bank, lambda: load_encoder(model, device, dtype))
    return listed, labels, resolved, errors + more, list(choices.values())
