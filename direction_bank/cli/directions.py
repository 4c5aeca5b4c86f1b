"""`dbank` commands for directions: show, diff, direction create/list/show/remove, export,
import, publish, similar."""
from __future__ import annotations

import click

from direction_bank.cli.app import (
    cli, default_model, emit, encoder_model_option, json_option, load_encoder, open_bank, overwrite_option,
    sd_model_option, warn_of_lookalike, with_device,
)
from direction_bank.cli.editor_options import caption_model_option, size_option, steps_option
from direction_bank.cli.params import count_range
from direction_bank.errors import BankError, UnknownConcept, UnknownDirection, UnknownVersion
from direction_bank.jobs.outputs import write_pictures


@cli.command("show")
@click.argument("name")
@click.option("--plot", type=click.Path(dir_okay=False),
              help="A direction: also draw its norm per token position to this PNG file.")
@overwrite_option
@json_option
@click.pass_context
def show(ctx, name, plot, overwrite, as_json):
    """Show a concept (sentence count, encoders, mean norm, a few sentences) or a saved
    direction (source, target, norm, confidence, recipe; --plot draws which tokens carry it)."""
    if plot:
        from direction_bank.output_files import check_output

        check_output(plot, overwrite)
    bank = open_bank(ctx, read_only=True)
    try:
        info = bank.describe(name)
    except UnknownConcept:
        try:
            direction = bank.direction(name)
        except UnknownVersion:
            raise
        except UnknownDirection:
            raise bank.unknown_name(name) from None
        if plot:
            _plot_token_norms(direction, plot, overwrite)
        emit(as_json, lambda: {**direction.as_dict(), **({"plot": plot} if plot else {})},
             lambda: [*direction.summary_lines(), *([f"plot: {plot}"] if plot else [])])
        return
    if plot:
        raise BankError(f"{name!r} is a concept; --plot draws a saved direction")

    def lines():
        yield f"{info['name']}: {info['sentence_count']} sentences"
        for e in info["encoders"]:
            yield (
                f"  {e['model']} ({e['encoder_class']}, {e['hidden_size']}-d"
                + (f" + {e['pooled_size']} pooled" if e.get("pooled_size") else "") + "): "
                + f"{e['count']} embedded, mean norm {e['mean_norm']:.4f}"
            )
        for text in info["sentences"]:
            yield f"  - {text}"

    emit(as_json, lambda: info, lines)


def _plot_token_norms(direction, path, overwrite: bool) -> None:
    """The direction's norm per token position, as a bar chart written to `path`."""
    from editor.pictures import token_norm_plot

    write_pictures({path: token_norm_plot(direction.token_norms(), title=direction.plot_title())}, overwrite)


@cli.command("diff")
@click.argument("source")
@click.argument("target")
@click.option("--model", envvar="DBANK_MODEL", default=None,
              help="The encoder whose statistics to use (env DBANK_MODEL: the one to use when the concepts share "
              "several); with --paired the one to load (default: the bank's text encoder when it holds exactly "
              "one, else SD 1.5).")
@click.option("--paired", is_flag=True,
              help="Average counterfactual pairs (each sentence with the concept word swapped) "
              "instead of subtracting means; embeds, so it loads the encoder.")
@click.option("--save", "save_as", default=None, help="Store the direction under this name.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the direction to this file.")
@click.option("--overwrite", is_flag=True,
              help="Replace an output file that exists; with --save, a name in use gets this as its next "
              "version (the old one is kept: dbank direction history NAME).")
@with_device
@json_option
@click.pass_context
def diff(ctx, source, target, model, paired, save_as, output, overwrite, device, dtype, as_json):
    """The direction from SOURCE to TARGET: mean(TARGET) - mean(SOURCE), [1, 77, D]."""
    from direction_bank.names import check_direction_name
    from direction_bank.jobs.directions import make_direction
    from direction_bank.output_files import check_output

    if save_as:
        save_as = check_direction_name(save_as)
    if output:
        check_output(output, overwrite)  # before any work
    # --model names the encoder; DBANK_MODEL only picks one when the concepts share several
    from_env = ctx.get_parameter_source("model") == click.core.ParameterSource.ENVIRONMENT
    model, prefer = (None, model) if from_env else (model, None)
    if not (save_as or paired or output):
        from direction_bank.store.quick_read import difference

        direction = difference(ctx.obj["database"], source, target, model, prefer)
        if direction is not None:
            emit(as_json, direction.as_dict, direction.summary_lines)
            return
    bank = open_bank(ctx, read_only=not (save_as or paired))
    if save_as and not overwrite:
        refuse_taken_direction(bank, save_as)  # before the encoder loads
    if save_as:
        warn_of_lookalike(bank, "direction", save_as)
    encoder = load_encoder(model or prefer or default_model(ctx.obj["database"]), device, dtype) if paired else None
    direction = make_direction(bank, source, target, save_as, overwrite, encoder, model, prefer)
    if output:
        bank.export_direction(direction, output, overwrite)

    def lines():
        yield from direction.summary_lines()
        if save_as:
            yield direction.saved_line()
        if output:
            yield f"wrote {output}"

    emit(as_json, direction.as_dict, lines)


def refuse_taken_direction(bank, name: str) -> None:
    """A one-line refusal when a direction of this name exists (the user did not ask for a new
    version with --overwrite)."""
    from direction_bank.store.directions import direction_name_taken

    if bank.name_in_use("direction", name):
        raise direction_name_taken(name)


@cli.group("direction")
def direction_group():
    """Saved directions: create (compose), list, show, history, restore, remove."""


MAX_WEIGHT = 1000.0


def _part(text: str) -> tuple[str, float]:
    name, _, weight = text.rpartition(":") if ":" in text else (text, "", "1")
    try:
        value = float(weight)
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected NAME or NAME:WEIGHT") from None
    if not abs(value) <= MAX_WEIGHT:  # also refuses NaN
        raise click.BadParameter(f"{text!r}: the weight must be a finite number from -{MAX_WEIGHT:g} to {MAX_WEIGHT:g}")
    return name, value


@direction_group.command("create")
@click.argument("name")
@click.option("--add", "parts", multiple=True, required=True, metavar="DIRECTION[:WEIGHT]",
              help="A saved direction (NAME or NAME@VERSION) to add, optionally scaled (repeatable).")
@click.option("--overwrite", is_flag=True,
              help="A name in use gets this as its next version (the old one is kept).")
@json_option
@click.pass_context
def direction_create(ctx, name, parts, overwrite, as_json):
    """Save NAME as the weighted sum of saved directions."""
    bank = open_bank(ctx)
    warn_of_lookalike(bank, "direction", name)
    direction = bank.compose_direction(name, [_part(p) for p in parts], overwrite)
    emit(as_json, direction.as_dict, lambda: direction.summary_lines())


@direction_group.command("list")
@json_option
@click.pass_context
def direction_list(ctx, as_json):
    """List the saved directions."""
    rows = open_bank(ctx, read_only=True).directions()

    def lines():
        for r in rows:
            joins = f"{r['source']} -> {r['target']}" if r["source"] else "composed"
            snr = f"snr {r['snr']:.2f}" if r["snr"] is not None else "snr ?"
            changed = "\tconcepts changed since" if r["concepts_changed"] else ""
            yield f"{r['name']}\tv{r['version']}\t{joins}\tnorm {r['norm']:.4f}\t{snr}{changed}"

    emit(as_json, lambda: rows, lines)


@direction_group.command("show")
@click.argument("name")
@json_option
@click.pass_context
def direction_show(ctx, name, as_json):
    """Show a saved direction."""
    direction = open_bank(ctx, read_only=True).direction(name)
    emit(as_json, direction.as_dict, lambda: direction.summary_lines())


@direction_group.command("history")
@click.argument("name")
@json_option
@click.pass_context
def direction_history(ctx, name, as_json):
    """Every version of a direction name: when, recipe, norm, fingerprint, and whether the
    concepts it was made from have changed since."""
    from direction_bank.store.records import describe_recipe

    history = open_bank(ctx, read_only=True).direction_history(name)

    def lines():
        for v in history:
            how = describe_recipe(v["recipe"], v["source"], v["target"])
            line = (f"{'*' if v['current'] else ' '} v{v['version']}\t{v['created_at'][:19]}\t{how}\t"
                    f"norm {v['norm']:.4f}\t{(v['fingerprint'] or '?')[:12]}")
            if v["source_count_now"] is not None or v["target_count_now"] is not None:
                counts = f"{v['source_count']}/{v['target_count']} sentences"
                line += (f"\t{counts}, now {v['source_count_now']}/{v['target_count_now']} (concepts changed)"
                         if v["concepts_changed"] else f"\t{counts}, unchanged")
            yield line

    emit(as_json, lambda: history, lines)


@direction_group.command("restore")
@click.argument("name")
@click.option("--version", "version", type=click.IntRange(1, 2**31 - 1), required=True,
              help="The version to make current again (see dbank direction history NAME).")
@json_option
@click.pass_context
def direction_restore(ctx, name, version, as_json):
    """Make an earlier version of a direction current again (stored as its newest version;
    nothing is replaced)."""
    direction = open_bank(ctx).restore_direction_version(name, version)
    emit(as_json, direction.as_dict,
         lambda: [f"{name}: version {version} is current again, as version {direction.version}"])


@direction_group.command("rename")
@click.argument("old")
@click.argument("new")
@click.pass_context
def direction_rename(ctx, old, new):
    """Give the direction OLD, every version of it, the name NEW (OLD is taken as written: a name
    like 'h2z@1' from before dbank refused them can be renamed)."""
    versions = open_bank(ctx).rename_direction(old, new)
    click.echo(f"renamed direction {old} to {new} ({versions} version{'s' * (versions != 1)})")


@direction_group.command("remove")
@click.argument("name")
@click.pass_context
def direction_remove(ctx, name):
    """Move a saved direction, every version of it, to the trash."""
    versions = open_bank(ctx).remove_direction(name)
    click.echo(f"moved direction {name} ({versions} version{'s' * (versions != 1)}) to the trash")


@cli.command("export")
@click.argument("name", required=False)
@click.option("--concept", default=None, help="Export this concept as a bundle (statistics and sentences).")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="File to write (default NAME.safetensors in this folder).")
@click.option("--model", default=None, help="With --concept: the encoder, when it has several.")
@overwrite_option
@json_option
@click.pass_context
def export(ctx, name, concept, output, model, overwrite, as_json):
    """Write a saved direction NAME, or a --concept bundle, to a self-describing safetensors file."""
    from direction_bank.names import file_label
    from direction_bank.output_files import check_output

    if (name is None) == (concept is None):
        raise click.ClickException("name a direction, or a concept with --concept (one of the two)")
    output = output or f"{file_label(name or concept)}.safetensors"
    check_output(output, overwrite)
    bank = open_bank(ctx, read_only=True)
    meta = (bank.export_concept(concept, output, model, overwrite) if concept
            else bank.export_direction(name, output, overwrite))
    meta.pop("sentences", None)
    emit(as_json, lambda: {"file": output, **meta}, lambda: [f"wrote {output}"])


@cli.command("import")
@click.argument("file")
@click.option("--name", default=None,
              help="Store under this name (default: the name in the file's metadata, else the file's stem).")
@click.option("--strict", is_flag=True, help="Refuse a file made with other text-encoder weights.")
@click.option("--count", type=count_range(), default=None,
              help="pix2pix-zero means: how many sentences the mean averaged (default 1000).")
@click.option("--overwrite", is_flag=True,
              help="A name in use: a direction gets this as its next version, a concept goes to the trash "
              "first (nothing is lost).")
@click.option("--skip-bad", is_flag=True,
              help="A whole repo (hf://OWNER/REPO): import the files that pass and leave out those refused "
              "(default: nothing is stored if any is refused).")
@encoder_model_option
@with_device
@json_option
@click.pass_context
def import_(ctx, file, name, strict, count, overwrite, skip_bad, model, device, dtype, as_json):
    """Import a dbank direction or concept file, or a pix2pix-zero concept mean (.pt): a path, or
    hf://OWNER/REPO[@REVISION]/PATH on the Hugging Face Hub (through its cache; offline too), or
    every .safetensors and .pt file of a repo, hf://OWNER/REPO[@REVISION]."""
    from dataclasses import replace

    from direction_bank.errors import NameTaken
    from direction_bank.sharing.files import read_shared_file
    from direction_bank.sharing.hub import fetch, is_hub_repo, is_hub_url
    from direction_bank.sharing.transfer import import_name

    if is_hub_repo(file):
        if name is not None:
            raise BankError("--name names one file; a repo's files are imported under their own names")
        _import_repo(ctx, file, strict, count, overwrite, skip_bad, load_encoder(model, device, dtype), as_json)
        return
    if is_hub_url(file):  # fetched (or found in the cache), then checked as a local file is
        local, hub = fetch(file)
        shared = replace(read_shared_file(local), hub=hub)
    else:
        shared = read_shared_file(file)  # a bad file fails before the model loads or a bank is made
    kind = "direction" if shared.kind == "direction" else "concept"
    target = import_name(shared, name)
    try:
        existing = open_bank(ctx, read_only=True)
    except BankError:  # no bank yet (or none to open: the write below says why)
        existing = None
    if (existing is not None and not overwrite and existing.name_in_use(kind, target)
            and existing.earlier_import(shared, name) is None):  # before the model loads
        raise NameTaken(f"a {kind} named {target!r} exists; pass --name, or --overwrite "
                        + ("to store this one as its next version (the old one is kept)" if kind == "direction"
                           else "to move that one to the trash first"))
    if existing is not None:
        warn_of_lookalike(existing, kind, target)
    encoder = load_encoder(model, device, dtype)
    report = open_bank(ctx, create=True).import_file(shared, encoder, name, strict, count, overwrite)
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)

    emit(as_json, report.as_dict, lambda: [report.summary(file)])


def _import_repo(ctx, url: str, strict: bool, count, overwrite: bool, skip_bad: bool, encoder, as_json: bool) -> None:
    """dbank import hf://OWNER/REPO: each file read and checked, then all stored in one
    transaction (or, with --skip-bad, those that pass); a line per file."""
    from dataclasses import replace

    from direction_bank.errors import first_line
    from direction_bank.sharing.files import read_shared_file
    from direction_bank.sharing.hub import fetch_repo

    shared, unreadable = [], []
    for local, hub in fetch_repo(url):
        try:
            shared.append(replace(read_shared_file(local), hub=hub))
        except BankError as error:
            reason = first_line(error).removeprefix(f"{local}: ").removeprefix(f"{local.name}: ")
            unreadable.append(f"{hub['path']}: {reason}")  # named by its path in the repo, not in the cache
    try:
        reports, skipped = open_bank(ctx, create=True).import_files(shared, encoder, strict, count, overwrite,
                                                                   skip_bad, tuple(unreadable))
    except BankError as error:
        raise BankError(f"{url}: {error}") from None
    for line in skipped:
        click.echo(f"warning: left out {line}", err=True)
    for report in reports:
        for warning in report.warnings:
            click.echo(f"warning: {warning}", err=True)
    in_repo = {str(item.path): item.hub["path"] for item in shared}
    emit(as_json, lambda: {"repo": url, "imported": [r.as_dict() for r in reports], "left_out": skipped},
         lambda: [report.summary(f"{url.rstrip('/')}/{in_repo[report.path]}") for report in reports])


@cli.command("publish")
@click.argument("name")
@click.option("-o", "--output", "folder", required=True, type=click.Path(file_okay=False),
              help="Folder to write the Hub repo into (new or empty).")
@click.option("--license", "license_", default="openrail", show_default=True,
              help="The license the model card names (a Hub license id).")
@click.option("--push", "repo", default=None, metavar="OWNER/REPO",
              help="Then upload the folder to this Hub model repo (online, with a token).")
@click.option("--overwrite", is_flag=True,
              help="Replace the direction file, README.md and preview in a folder that has them.")
@click.option("--preview", "photos", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="A photo to edit with the direction for the card's preview sheet (repeatable): the photo, its "
                   "reconstruction and the edit, at the direction's tuned setting, else scale 1 (loads --model).")
@click.option("--caption", default=None, help="The preview photos' caption (default: BLIP writes one per photo).")
@steps_option
@size_option
@caption_model_option
@sd_model_option
@with_device
@json_option
@click.pass_context
def publish(ctx, name, folder, license_, repo, overwrite, photos, caption, steps, size, caption_model, model, device,
            dtype, as_json):
    """Write a saved direction as a Hugging Face Hub model repo: NAME.safetensors and a model card
    (README.md: metadata, the concepts and their sentence counts, sample sentences,
    signal-to-noise, the tuned setting, how to use it with dbank and with diffusers; with
    --preview, a sheet of photos edited with it); --push uploads it. Others import it with
    dbank import hf://OWNER/REPO."""
    from direction_bank.sharing.publish import check_target, publish as write_repo, push

    check_target(folder, license_, repo, overwrite)  # before a model loads
    bank = open_bank(ctx, read_only=True)
    preview = None
    if photos:
        from direction_bank.cli.editor_options import load_editor, require_captioner, size_for
        from direction_bank.jobs.preview import preview_sheet

        direction = bank.direction(name)  # an unknown name is one line before the model loads
        if caption is None:
            require_captioner(caption_model)
        editor = load_editor(model, device, dtype, caption_model, no_cache=False)
        preview = preview_sheet(editor, direction, list(photos), caption, size_for(model, size), steps)
    written = write_repo(bank, name, folder, license_, repo, overwrite, preview)
    pushed = push(folder, repo) if repo else None
    emit(as_json, lambda: {**written, "pushed": pushed},
         lambda: [f"wrote {folder}: {', '.join(written['files'])}", *([f"pushed: {pushed}"] if pushed else [])])


@cli.command("similar")
@click.argument("name")
@click.option("-k", "--limit", type=count_range(), default=10, show_default=True, help="How many concepts to list.")
@click.option("--model", default=None, help="Encoder to compare under, when the concept has several.")
@json_option
@click.pass_context
def similar(ctx, name, limit, model, as_json):
    """List the concepts whose mean embeddings are nearest to NAME's: the cosine similarity of
    their token-averaged means, centred on the mean over every concept (from -1 to 1)."""
    rows = open_bank(ctx, read_only=True).similar(name, limit, model)
    emit(as_json, lambda: rows, lambda: (f"{r['name']}\tcosine {r['similarity']:+.3f}" for r in rows))
