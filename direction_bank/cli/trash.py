"""`dbank` commands for the trash: trash (list), trash empty, restore."""
from __future__ import annotations

import click

from direction_bank.cli.app import cli, emit, json_option, open_bank
from direction_bank.cli.params import ID, FiniteFloat


def _describe(entry: dict) -> str:
    detail = entry["detail"] or {}
    when = entry["trashed_at"][:19]
    if entry["kind"] == "concept":
        what = f"concept {entry['name']} ({detail.get('sentences', '?')} sentences)"
    elif entry["kind"] == "direction":
        versions = detail.get("versions", 1)
        what = f"direction {entry['name']} ({versions} version{'s' * (versions != 1)})"
    else:
        sentence = detail.get("sentence", {})
        what = f"sentence #{sentence.get('id')} of {entry['concept']}: {sentence.get('text')}"
    return f"#{entry['id']}\t{when}\t{what}"


@cli.group("trash", invoke_without_command=True)
@json_option
@click.pass_context
def trash(ctx, as_json):
    """List what was removed (concepts, directions, sentences), newest first; `dbank restore`
    puts it back, `dbank trash empty` deletes it for good."""
    if ctx.invoked_subcommand is not None:
        return
    entries = open_bank(ctx, read_only=True).trash()
    emit(as_json, lambda: entries, lambda: (_describe(e) for e in entries) if entries else ["the trash is empty"])


@trash.command("empty")
@click.option("--older-than", "older_than", type=FiniteFloat(0, 1e6), default=None, metavar="DAYS",
              help="Delete only what went to the trash more than DAYS days ago.")
@json_option
@click.pass_context
def trash_empty(ctx, older_than, as_json):
    """Delete what the trash holds, for good."""
    count = open_bank(ctx).empty_trash(older_than)
    emit(as_json, lambda: {"deleted": count},
         lambda: [f"deleted {count} trash entr{'y' if count == 1 else 'ies'} for good"])


@cli.command("restore")
@click.argument("name", required=False)
@click.option("--id", "entry_id", type=ID, help="The trash entry's id (see dbank trash); for sentences.")
@click.option("--as", "as_name", default=None, help="Restore a concept or direction under this name.")
@json_option
@click.pass_context
def restore(ctx, name, entry_id, as_name, as_json):
    """Put back from the trash the newest concept or direction named NAME, or the entry --id
    (a sentence goes back into its concept and its statistics)."""
    if (name is None) == (entry_id is None):
        raise click.UsageError("give a NAME or a trash --id (one of the two)")
    restored = open_bank(ctx).restore(name, entry_id, as_name)

    def lines():
        if restored["kind"] == "sentence":
            if restored["already_there"]:
                yield f"#{restored['sentence_id']} of {restored['name']} was added again since; nothing to put back"
            else:
                yield f"restored #{restored['sentence_id']} to {restored['name']}: {restored['text']}"
        else:
            yield f"restored {restored['kind']} {restored['name']}"

    emit(as_json, lambda: restored, lines)
