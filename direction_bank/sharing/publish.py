"""A saved direction as a Hugging Face Hub model repo (#34): a folder holding the direction file
and a model card (README.md: YAML metadata written by huggingface_hub's ModelCardData, then what
the direction joins, how far to trust it, sample sentences and how to use it), and its upload
through huggingface_hub.upload_folder."""
from __future__ import annotations

import os
import re
from pathlib import Path

from direction_bank.errors import BankError

TAGS = ["pix2pix-zero", "dbank", "stable-diffusion", "edit-direction"]
SAMPLE_SENTENCES = 5  # per concept, on the card
PREVIEW = "preview.png"
_HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")
_LICENSE = re.compile(r"[a-z0-9][a-z0-9.+-]{0,63}")  # the Hub's license ids: apache-2.0, openrail++, cc-by-4.0, other


def check_license(license: str) -> None:
    """One line for a license that is no Hub license id."""
    if not _LICENSE.fullmatch(license):
        raise BankError(f"--license {license[:60]!r}: give a Hub license id (apache-2.0, mit, openrail, other, ...)")


def check_repo(repo: str) -> None:
    """One line for a --push target that is no OWNER/REPO."""
    if not _HUB_ID.fullmatch(repo):
        raise BankError(f"--push {repo[:60]!r}: give OWNER/REPO")


def hub_model_id(model: str | None) -> str | None:
    """`model` when it reads as a Hub model id (OWNER/NAME, not a folder on this machine): what a
    card's base_model may name; None otherwise."""
    if not model or not _HUB_ID.fullmatch(model) or Path(model).expanduser().exists():
        return None
    return model


def model_card(direction, file_name: str, samples: dict[str, list[str]], license: str,
               repo: str | None = None, preview: str | None = None) -> str:
    """The README.md of a direction's Hub repo: YAML metadata (base_model when the encoder's
    model is a Hub id, library_name, license, tags), what it joins, its size, signal-to-noise and
    tuned setting, the preview sheet (`preview`: the settings it was made with) when there is
    one, sample sentences per concept, and how to use it with dbank and with diffusers."""
    from huggingface_hub import ModelCardData

    from direction_bank.store.records import describe_tuning

    base = hub_model_id(direction.encoder.model)
    data = ModelCardData(base_model=base, library_name="dbank", license=license, tags=TAGS)
    name, source, target = direction.name, direction.source, direction.target
    where = repo or "OWNER/REPO"
    shape = ", ".join(str(n) for n in direction.tensor.shape)
    lines = [f"---\n{data.to_yaml()}\n---", "", f"# {name}", ""]
    joins = (f"**{target}** minus **{source}**: the mean CLIP text embedding of sentences about {target} minus "
             f"that of sentences about {source}" if source and target else "a combination of directions")
    lines += [f"An edit direction for Stable Diffusion ([pix2pix-zero](https://arxiv.org/abs/2302.03027)): {joins}, "
              f"`[{shape}]`{' + pooled' if direction.pooled is not None else ''}, made with dbank. Added to a "
              "caption's embedding it turns one into the other while the picture keeps its layout.", ""]
    lines += ["| | concept | sentences |", "|---|---|---|"]
    for role, concept, count in (("source", source, direction.source_count), ("target", target, direction.target_count)):
        if concept:
            lines.append(f"| {role} | {concept} | {count} |")
    lines.append("")
    facts = [f"- text encoder: `{base or Path(direction.encoder.model).name}` ({direction.encoder.hidden_size}-d)"
             + ("" if base else " (a local model, named without its folder: no base_model in the metadata)"),
             f"- norm: {direction.norm:.4f}"]
    if direction.confidence:
        facts.append(f"- signal-to-noise: {direction.confidence['snr']:.2f} (its length over the error its "
                     "sentence counts leave in it)")
    if direction.tuning:
        facts.append(f"- {describe_tuning(direction.tuning)}")
    lines += [*facts, ""]
    if preview is not None:
        lines += ["## Preview", "", f"![Each photo, its reconstruction and its edit with {name}]({PREVIEW})", "",
                  f"Each photo, its reconstruction and the edit (`dbank edit`: {preview}).", ""]
    if any(samples.values()):
        lines += ["## Sample sentences", ""]
        for concept, texts in samples.items():
            lines += [f"{concept}:", "", *[f"- {text}" for text in texts], ""]
    lines += ["## Use it", "", "With dbank (checked against your model before it is stored):", "", "```bash",
              f"dbank import hf://{where}/{file_name}",
              f'dbank edit photo.png --direction {name} --caption "a photo of a {source or "..."}" -o out/',
              "```", "", "In any diffusers pipeline (prompt embeddings through the pipeline's own encoder):", "",
              "```python", "from diffusers import StableDiffusionPipeline", "from huggingface_hub import hf_hub_download",
              "from direction_bank.diffusers import steered", "",
              f'pipe = StableDiffusionPipeline.from_pretrained("{base or "YOUR-BASE-MODEL"}")',
              f'direction = hf_hub_download("{where}", "{file_name}")',
              f'image = pipe(**steered(pipe, "a photo of a {source or "..."}", [(direction, 1.0)])).images[0]',
              "```", ""]
    return "\n".join(lines)


def check_target(folder: str | os.PathLike, license: str, repo: str | None, overwrite: bool) -> Path:
    """The folder to publish into, once the license, the repo id and the folder (new or empty,
    unless `overwrite`) are checked: all before anything is written or computed."""
    check_license(license)
    if repo is not None:
        check_repo(repo)
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise BankError(f"{folder}: exists and is not a folder")
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise BankError(f"{folder}: not empty; choose a new folder, or pass --overwrite to replace its "
                        "direction file, README.md and preview")
    return folder


def publish(bank, name: str, folder: str | os.PathLike, license: str, repo: str | None = None,
            overwrite: bool = False, preview=None) -> dict:
    """Write `folder` (new or empty; with `overwrite` its files are replaced): the direction
    `name` as NAME.safetensors (export_direction, model names without local folders), its model
    card README.md, and `preview` ((PNG bytes, the settings it was made with), from
    jobs.preview.preview_sheet) as preview.png. Returns {"folder", "files"}."""
    from direction_bank.names import file_label

    folder = check_target(folder, license, repo, overwrite)
    direction = bank.direction(name)
    file_name = f"{file_label(name)}.safetensors"
    samples = {}
    for concept in (direction.source, direction.target):
        if concept and concept not in samples:
            try:
                samples[concept] = [s.text for s in bank.sentences(concept)[:SAMPLE_SENTENCES]]
            except BankError:  # the concept is gone from the bank: the card shows what the direction holds
                samples[concept] = []
    folder.mkdir(parents=True, exist_ok=True)
    bank.export_direction(name, folder / file_name, overwrite=True, names_only=True)
    files = [file_name, "README.md"]
    if preview is not None:
        (folder / PREVIEW).write_bytes(preview[0])
        files.append(PREVIEW)
    else:  # --overwrite without --preview: an earlier preview would show what this card no longer says
        (folder / PREVIEW).unlink(missing_ok=True)
    card = model_card(direction, file_name, samples, license, repo, preview[1] if preview is not None else None)
    (folder / "README.md").write_text(card, encoding="utf-8")
    return {"folder": str(folder), "files": files}


def push(folder: str | os.PathLike, repo: str) -> str:
    """Upload `folder` to the Hub model repo `repo` (made when missing) with
    huggingface_hub.upload_folder; the commit's URL. One line saying why not when offline or
    without a token."""
    import huggingface_hub
    from huggingface_hub import constants

    check_repo(repo)
    if constants.HF_HUB_OFFLINE:
        raise BankError("cannot push: HF_HUB_OFFLINE is set (the folder is written; push it when online)")
    if not huggingface_hub.get_token():
        raise BankError("cannot push: no Hugging Face token (hf auth login, or set HF_TOKEN); the folder is written")
    huggingface_hub.create_repo(repo, exist_ok=True)
    return str(huggingface_hub.upload_folder(repo_id=repo, folder_path=str(folder),
                                             commit_message="a dbank direction"))
