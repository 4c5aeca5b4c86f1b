"""Many images in one process: images are decoded and resized on CPU threads while the model
works; each image is inverted (through the cache), then several images' reference and edit
passes run in one batch (images of one size with the same number of directions); each image's
results are handed on as soon as its batch finishes."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from editor.edit import EditSettings, edit
from editor.inversion import Regularisation
from editor.pipeline import Cancelled, EditorError, decode_latents, encode_prompts, load_image


@dataclass
class ImageJob:
    """One image to edit: its file, its caption (None: BLIP writes one) and its directions
    [K, 77, D] with a label each (for an SDXL model also their pooled parts [K, P])."""

    image: str
    caption: str | None
    labels: list[str]
    directions: object
    extra: dict = field(default_factory=dict)  # the caller's own, handed back with the result
    pooled: object = None
    inversion: object = None  # one made before (the studio's memory): used as it is, not made again


@dataclass
class ImageResult:
    """A finished image: PIL edits (one per label), the reconstruction, the caption used, and
    the inversion (an image edited alone keeps its reference pass with it, for a next edit)."""

    job: ImageJob
    edits: list
    reconstruction: object
    caption: str
    inversion_cached: bool
    maps: dict = field(default_factory=dict)  # attention maps by caption word
    inversion: object = None


def edit_images(editor, jobs: Iterable[ImageJob], settings: EditSettings, *, size: int = 512,
                regularisation: Regularisation = Regularisation(), seed: int = 0, batch_images: int = 4,
                on_result: Callable[[ImageResult], None], on_error: Callable[[ImageJob, Exception], None],
                attention_words: tuple[str, ...] = (), max_batch: int | None = None, loaders: int = 2,
                on_inverted: Callable[[ImageJob, object], None] | None = None) -> None:
    """Edit every job's image with its directions, `batch_images` images per UNet batch (one
    when attention maps are asked for); calls on_inverted(job, inversion) as soon as an image
    is inverted (so a later stop keeps it), on_result as each image finishes and on_error (one
    line) for an image that cannot be edited, and goes on with the others. Loading runs ahead
    on `loaders` CPU threads. `max_batch` bounds the directions in one batch."""
    jobs = list(jobs)
    if attention_words:
        batch_images = 1
    single = {"attention_words": attention_words, "max_batch": max_batch}
    window = max(batch_images, 1) * 2
    pending: list = []

    def flush():
        groups: dict = {}
        for job, inversion in pending:
            key = (tuple(inversion.latents.shape), len(job.labels),
                   id(job) if job.inversion is not None else None)  # a given one keeps its own passes: alone
            groups.setdefault(key, []).append((job, inversion))
        pending.clear()
        for (_, directions, _), group in groups.items():
            # --max-batch bounds the directions in one batch, whichever images they belong to
            size = max(1, max_batch // directions) if max_batch else len(group)
            for start in range(0, len(group), size):
                _edit_group(editor, group[start : start + size], settings, on_result, on_error, single)

    with ThreadPoolExecutor(loaders) as pool:
        loads = {}
        for index, job in enumerate(jobs):
            for ahead in range(index, min(index + window, len(jobs))):
                if ahead not in loads and jobs[ahead].inversion is None:
                    loads[ahead] = pool.submit(load_image, jobs[ahead].image, size)
            try:
                inversion = job.inversion or editor.invert_file(job.image, job.caption, size, settings.steps,
                                                                regularisation, seed, pixels=loads.pop(index).result())
            except Cancelled:  # the whole run stops, not this image alone
                raise
            except EditorError as error:
                on_error(job, error)
                continue
            if on_inverted is not None and job.inversion is None:
                on_inverted(job, inversion)
            pending.append((job, inversion))
            if len(pending) >= batch_images:
                flush()
        flush()


def _edit_group(editor, group, settings, on_result, on_error, single) -> None:
    """One batch of images of one size with the same number of directions; halved and run again
    when the GPU runs out of memory (a single image then chunks its directions itself)."""
    import torch

    if len(group) == 1:
        job, inversion = group[0]
        try:
            edits, reconstruction, *maps = editor.edit(inversion, job.directions, settings, pooled=job.pooled,
                                                       keep_reference=True, **single)
        except Cancelled:
            raise
        except EditorError as error:
            on_error(job, error)
            return
        on_result(ImageResult(job, edits, reconstruction, inversion.caption, inversion.cached, *maps,
                              inversion=inversion))
        return
    components = editor.components
    try:
        latents = torch.cat([inversion.latents for _, inversion in group])
        captions = encode_prompts(components, [inversion.caption for _, inversion in group])
        directions = torch.cat([torch.as_tensor(job.directions, dtype=torch.float32) for job, _ in group])
        pooled = None if group[0][0].pooled is None else torch.cat(
            [torch.as_tensor(job.pooled, dtype=torch.float32) for job, _ in group])
        edited, reconstructions = edit(components, latents, captions, directions, settings,
                                       progress_bar=editor.cancellable_steps, pooled_directions=pooled)
    except torch.OutOfMemoryError:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        half = len(group) // 2
        _edit_group(editor, group[:half], settings, on_result, on_error, single)
        _edit_group(editor, group[half:], settings, on_result, on_error, single)
        return
    per_image = len(edited) // len(group)
    for index, (job, inversion) in enumerate(group):
        pictures = decode_latents(components, edited[index * per_image : (index + 1) * per_image])
        reconstruction = decode_latents(components, reconstructions[index : index + 1])[0]
        on_result(ImageResult(job, pictures, reconstruction, inversion.caption, inversion.cached,
                              inversion=inversion))
