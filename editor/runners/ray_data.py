"""Many images on a Ray cluster (optional extra `[ray]`): Ray Data hands batches of images to a
pool of actors, each holding one Editor (one GPU each where there are GPUs), which run the same
local runner on their batch; the driver receives each image's pictures as they finish and hands
them on, so outputs are written by the same code as in one process. Directions travel as tensors
in the rows: the bank is read once, on the driver."""
from __future__ import annotations

import os
import sys
from collections.abc import Callable
from contextlib import contextmanager

from editor.edit import EditSettings
from editor.inversion import Regularisation
from editor.pipeline import EditorError, first_line
from editor.runners.local import ImageJob, ImageResult, edit_images


class EditorActor:
    """One Editor per actor; edits a batch of rows with the local runner."""

    def __init__(self, model: str, device: str | None, dtype: str, caption_model: str, settings: dict,
                 size: int, regularisation: dict, seed: int, threads: int, vae: str | None = None,
                 attention_words: tuple = ()):
        import torch

        from editor.editor import Editor

        if threads:
            torch.set_num_threads(threads)  # the driver's count: the same sums, the same bytes
        self.editor = Editor(model, device, dtype, None, caption_model, vae=vae)
        self.settings = EditSettings(**settings)
        self.size, self.seed = size, seed
        self.regularisation = Regularisation(**regularisation)
        self.attention_words = tuple(attention_words)

    def __call__(self, batch: dict) -> dict:
        """Columns index, error, edits, reconstruction, caption, cached, and the attention maps
        (map_words, maps: grey [words, H, W]) for the batch's rows."""
        import numpy as np

        jobs = [ImageJob(str(image), str(caption) if has else None, list(labels), np.asarray(directions),
                         pooled=pooled if pooled.size else None)
                for image, caption, has, labels, directions, pooled in zip(
                    batch["image"], batch["caption"], batch["has_caption"], batch["labels"], batch["directions"],
                    map(np.asarray, batch["pooled"]))]
        out = {index: None for index in range(len(jobs))}
        position = {id(job): index for index, job in enumerate(jobs)}

        def finished(result: ImageResult):
            words = list(result.maps)
            maps = (np.stack([np.asarray(result.maps[word]) for word in words]) if words
                    else np.zeros((0, 0, 0), np.uint8))
            out[position[id(result.job)]] = ("", np.stack([np.asarray(p) for p in result.edits]),
                                             np.asarray(result.reconstruction), result.caption, result.inversion_cached,
                                             "\n".join(words), maps)

        def failed(job: ImageJob, error: Exception):
            out[position[id(job)]] = (str(error), np.zeros((0,), np.uint8), np.zeros((0,), np.uint8), "", False, "",
                                      np.zeros((0, 0, 0), np.uint8))

        edit_images(self.editor, jobs, self.settings, size=self.size, regularisation=self.regularisation,
                    seed=self.seed, batch_images=len(jobs), on_result=finished, on_error=failed,
                    attention_words=self.attention_words)
        rows = [out[index] for index in range(len(jobs))]
        return {"index": batch["index"], "error": [r[0] for r in rows], "edits": [r[1] for r in rows],
                "reconstruction": [r[2] for r in rows], "caption": [r[3] for r in rows],
                "cached": [r[4] for r in rows], "map_words": [r[5] for r in rows], "maps": [r[6] for r in rows]}


def edit_images_on_ray(model: str, device: str | None, dtype: str, caption_model: str, jobs: list[ImageJob],
                       settings: EditSettings, *, size: int = 512, regularisation: Regularisation = Regularisation(),
                       seed: int = 0, batch_images: int = 4, workers: int | None = None, address: str | None = None,
                       vae: str | None = None, attention_words: tuple = (),
                       on_result: Callable[[ImageResult], None], on_error: Callable[[ImageJob, Exception], None]
                       ) -> None:
    """Edit the jobs on Ray (a local instance on 127.0.0.1, or the cluster at `address`): an
    actor pool of `workers` Editors (default: one per GPU, else one), one GPU each where there
    are GPUs, `batch_images` images a batch, in order; on_result / on_error as the local runner,
    each result with the attention maps of `attention_words` as the local runner makes them."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")  # its C++ core's notes stay in its log files
    with ray_notes_off_a_terminal():
        _run_on_ray(ray, model, device, dtype, caption_model, jobs, settings, size, regularisation, seed,
                    batch_images, workers, address, vae, tuple(attention_words), on_result, on_error)


@contextmanager
def ray_notes_off_a_terminal():
    """Ray's C++ core writes its notes (a failed probe of outside DNS servers, token
    authentication, log levels) straight to file descriptor 2, whatever its log level; when
    stderr is no terminal they go to dbank's log folder (ray.log) instead, so a script's
    stderr holds dbank's own lines only."""
    if sys.stderr.isatty():
        yield
        return
    import platformdirs

    folder = platformdirs.user_log_path("dbank")
    folder.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(folder / "ray.log", "ab") as sink:
            os.dup2(sink.fileno(), 2)
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _run_on_ray(ray, model, device, dtype, caption_model, jobs, settings, size, regularisation, seed,
                batch_images, workers, address, vae, attention_words, on_result, on_error) -> None:
    import logging
    from dataclasses import asdict

    import numpy as np
    import torch
    from PIL import Image

    if not ray.is_initialized():
        if address:
            try:
                ray.init(address=address, log_to_driver=False, configure_logging=False)
            except ConnectionError as error:  # 'auto' with no cluster this machine knows of
                raise EditorError(f"--address {address}: {first_line(error)}; start one with 'ray start "
                                  "--head', or leave out --address for a local one") from None
        else:
            ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
    gpus = int(ray.cluster_resources().get("GPU", 0))
    use_gpu = gpus > 0 and (device is None or device.startswith("cuda"))
    context = ray.data.DataContext.get_current()  # (importing Ray Data sets its loggers up)
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    rows = [{"index": index, "image": job.image, "caption": job.caption or "", "has_caption": job.caption is not None,
             "labels": list(job.labels), "directions": np.asarray(job.directions, np.float32),
             # SDXL's pooled parts; an empty [K, 0] for SD 1.x/2.x (a column holds one type)
             "pooled": np.asarray(job.pooled if job.pooled is not None else np.zeros((len(job.labels), 0)),
                                  np.float32)}
            for index, job in enumerate(jobs)]
    dataset = ray.data.from_items(rows).map_batches(
        EditorActor, batch_size=batch_images, batch_format="numpy",
        fn_constructor_kwargs={"model": model, "device": device if not use_gpu else "cuda", "dtype": dtype,
                               "caption_model": caption_model, "settings": asdict(settings), "size": size,
                               "regularisation": asdict(regularisation), "seed": seed,
                               "threads": torch.get_num_threads(), "vae": vae, "attention_words": attention_words},
        compute=ray.data.ActorPoolStrategy(size=workers or max(gpus if use_gpu else 1, 1)),
        num_gpus=1 if use_gpu else 0)
    for row in dataset.iter_rows():
        job = jobs[int(row["index"])]
        if row["error"]:
            on_error(job, EditorError(str(row["error"])))
            continue
        words = [word for word in str(row["map_words"]).split("\n") if word]
        maps = {word: Image.fromarray(np.asarray(grey, np.uint8), "L") for word, grey in zip(words, row["maps"])}
        on_result(ImageResult(job, [Image.fromarray(np.asarray(a, np.uint8)) for a in row["edits"]],
                              Image.fromarray(np.asarray(row["reconstruction"], np.uint8)), str(row["caption"]),
                              bool(row["cached"]), maps))
