"""What every editing command (edit, generate-edit, sweep, eval, tune) shares: the options, where
its directions come from (saved, made on the fly, files), the image size, the editor and the
output folder."""
from __future__ import annotations

import os
from pathlib import Path

import click

from direction_bank.cli.app import json_option, open_bank, overwrite_option, require_sd_model, sd_model_option, vae_option, with_device
from direction_bank.cli.params import SEED, FiniteFloat, ImageSize
from direction_bank.errors import BankError
from sd_models.settings import SETTING_BOUNDS


def direction_sources(ctx, names, sources, targets, files):
    """[(label, load)] for every direction asked for; load() gives ((tokens [1, 77, D], pooled
    [1, P] for SDXL or None), source concept, target concept, tuning or None)."""
    from direction_bank.jobs.edit import direction_parts, saved_directions
    from direction_bank.sharing.files import read_direction_file

    if len(sources) != len(targets):
        raise click.UsageError("give --from and --to in pairs")
    if not (names or sources or files):
        raise click.UsageError("name at least one --direction, --from/--to pair or --direction-file")
    bank = open_bank(ctx, read_only=True) if (names or sources) else None
    wanted = saved_directions(bank, names)
    wanted += [(f"{s}2{t}", lambda s=s, t=t: direction_parts(bank.diff(s, t))) for s, t in zip(sources, targets)]

    def from_file(path):
        shared = read_direction_file(path)
        source, target = ((shared.meta.get(role) or {}).get("name") for role in ("source", "target"))
        return ((shared.tensors["direction"], shared.tensors.get("direction_pooled")), source, target,
                shared.meta.get("tuning"))

    wanted += [(Path(path).stem, lambda path=path: from_file(path)) for path in files]
    return wanted


def size_for(model: str, size: int | None) -> int:
    """--size, or the model's own default (editor.pipeline.default_size), read from its configs."""
    from editor.pipeline import default_size

    if size:
        return size
    require_sd_model(model)
    return default_size(model)


def require_captioner(caption_model: str) -> None:
    """Fail in one line, loading nothing, when a caption is needed and BLIP cannot be had."""
    from direction_bank.model_check import require_model

    require_model(caption_model, "the captioning model", "pass --caption, or set --caption-model to a local BLIP folder")


def load_editor(model, device, dtype, caption_model, no_cache, compile=False, vae=None):
    """The editor the editing commands run: the SD model checked first, the inversion cache (unless
    --no-cache), progress bars, and Ctrl-C cancelling the run in progress."""
    import diffusers.utils.logging  # noqa: F401  (so that it can be quietened)
    import transformers.utils.logging  # noqa: F401

    from direction_bank.cli.app import cancel_on_ctrl_c, quiet_third_parties
    from direction_bank.model_check import require_model
    from direction_bank.progress import progress_bar
    from editor.cache import InversionCache
    from editor.editor import Editor

    quiet_third_parties()
    require_sd_model(model)
    cache = None if no_cache else InversionCache(os.environ.get("DBANK_CACHE") or None)
    if vae:
        require_model(vae, "the VAE", "set --vae or DBANK_VAE to a local AutoencoderKL folder")
    editor = Editor(model, device, dtype, cache, caption_model,
                    progress_bar=lambda steps, **kw: progress_bar(steps, **kw), compile=compile, vae=vae)
    cancel_on_ctrl_c(editor)
    return editor


def output_folder(out_dir: str) -> Path:
    """-o, checked but not made: a writable folder, or one that can be made in a writable folder
    (make_output_folder makes it once the work is about to start, so a failure leaves none)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise BankError(f"-o {out_dir}: not a folder")
    existing = out
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise BankError(f"cannot make the folder {out_dir}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise BankError(f"the folder {out_dir} is not writable" if existing == out
                        else f"cannot make the folder {out_dir}: {existing} is not writable")
    return out


size_option = click.option("--size", type=ImageSize(), default=None,
                           help="Longer image side, a multiple of 8 up to 4096 [default: the model's own, its UNet's sample "
                           "size times the VAE's factor: 512 for SD 1.x, 768 for SD 2.x, 1024 for SDXL].")


steps_option = click.option("--steps", type=click.IntRange(*SETTING_BOUNDS["steps"]), default=50, show_default=True,
                            envvar="DBANK_STEPS", show_envvar=True, help="DDIM steps.")
guidance_scale_option = click.option("--guidance-scale", type=FiniteFloat(*SETTING_BOUNDS["guidance_scale"]),
                                     default=5.0, show_default=True, help="Classifier-free guidance.")
bootstrap_seed_option = click.option("--bootstrap-seed", type=SEED, default=0, show_default=True,
                                     help="Seed of the bootstrap intervals.")

caption_model_option = click.option("--caption-model", default="Salesforce/blip-image-captioning-base",
                                    show_default=True, help="BLIP model for captions when --caption is not given.")
no_cache_option = click.option("--no-cache", is_flag=True, help="Do not read or write the inversion cache.")


def edit_options(func):
    """Options shared by edit and generate-edit (edit adds its captioning and cache options)."""
    options = [
        click.option("--direction", "names", multiple=True, help="A saved direction (repeatable)."),
        click.option("--from", "sources", multiple=True,
                     help="Source concept or word, one per --to (dbank edit: default, the concept the caption names)."),
        click.option("--to", "targets", multiple=True,
                     help="Target concept or word. dbank edit uses the saved direction between the two concepts, "
                     "else their mean difference, else the word-swap direction ('a photo of a TO' minus 'a photo "
                     "of a FROM'), and says which; generate-edit: the mean difference of two concepts in the bank."),
        click.option("--direction-file", "files", multiple=True, type=click.Path(dir_okay=False),
                     help="A dbank direction file (repeatable)."),
        click.option("--scale", type=FiniteFloat(*SETTING_BOUNDS["scale"]), default=None,
                     help="Multiplies every direction [default: each direction's tuned scale (dbank tune), else 1]."),
        steps_option,
        click.option("--xa-guidance", type=FiniteFloat(*SETTING_BOUNDS["xa_guidance"]), default=None,
                     help="Cross-attention guidance step [default: the directions' tuned one (dbank tune), else 0.1]."),
        guidance_scale_option,
        click.option("--seed", type=SEED, default=0, show_default=True,
                     help="Seed (inversion shifts, generated noise)."),
        size_option,
        click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
                     help="Folder for the images."),
        overwrite_option,
        click.option("--max-batch", type=click.IntRange(1, 1024), default=None,
                     help="Directions per batch (default: all, halved whenever the GPU runs out of memory)."),
        click.option("--compile", "compile_unet", is_flag=True,
                     help="torch.compile the UNet (slow first run, cached on disk; eager by default)."),
        sd_model_option,
        vae_option,
    ]
    for option in reversed(options):
        func = option(func)
    return with_device(json_option(func))
