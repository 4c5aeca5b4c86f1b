"""Edit latency and peak memory: this editor against diffusers' StableDiffusionPix2PixZeroPipeline,
in one process, on the same random-weight model (SD 1.4's shapes, so the same FLOPs as the real
one; or tiny, for the CPU), at the same size, steps and dtype.

    python benchmarks/edit_latency.py --shape sd14 --size 512 --steps 50            # a GPU, fp16
    python benchmarks/edit_latency.py --shape tiny --size 64 --steps 10 --device cpu  # CI-sized
    python benchmarks/edit_latency.py --shape sd14 --size 512 --steps 50 --images 16 --directions 2
    python benchmarks/edit_latency.py --shape sdxl --size 1024 --steps 50            # SDXL, a GPU, fp16
    python benchmarks/edit_latency.py --shape sdxl --size 256 --steps 3 --device cpu  # SDXL, CPU

Printed first: UNet calls per edit step and the samples they run, for both (counted with a
forward hook, so device-independent). Then per implementation: inversion time, edit time, first
edit (both), another direction on the same image (diffusers: its edit alone, reusing its inverted
latents, which is the fair comparison), and peak GPU memory; then the ratios. Targets on an H100/H200 at 512, 50 steps,
fp16: first edit <= 4 s, another direction <= 2.5 s, peak <= 6 GiB. --compile adds a run with
torch.compile'd UNet and reports the compile time apart.

SDXL (--shape sdxl: SDXL 1.0 base's shapes, random weights written to disk in fp16, about 7 GB;
tiny-sdxl for a quick check): diffusers has no SDXL pix2pix-zero, so the baseline is one plain
StableDiffusionXLPipeline generation at the same size, steps and guidance (what an edit costs in
generations).
"""
from __future__ import annotations

import argparse
import atexit
import os
import shutil
import tempfile
import time
from pathlib import Path

from sd_models.precision import DTYPES, default_device

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=["sd14", "tiny", "sdxl", "tiny-sdxl"], default="sd14")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--device", default=None)
    parser.add_argument("--dtype", default="auto", choices=DTYPES)
    parser.add_argument("--skip-diffusers", action="store_true")
    parser.add_argument("--compile", action="store_true", help="also time a torch.compile'd UNet")
    parser.add_argument("--images", type=int, default=0,
                        help="also time N images x --directions each (images/s; diffusers loops over them)")
    parser.add_argument("--directions", type=int, default=2)
    parser.add_argument("--batch-images", type=int, default=4, help="images per dbank UNet batch")
    args = parser.parse_args()

    import numpy as np
    import torch
    from PIL import Image

    from direction_bank.testing import write_tiny_sd, write_tiny_sdxl
    from editor.edit import EditSettings
    from editor.editor import Editor
    from editor.inversion import Regularisation

    device = args.device or default_device()
    cuda = device.startswith("cuda")
    work = Path(tempfile.mkdtemp(prefix="dbank-edit-bench-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)  # the SDXL-shaped model is 7 GB
    sdxl = args.shape.endswith("sdxl")
    if sdxl:
        write_tiny_sdxl(work / "sd", shape="sdxl" if args.shape == "sdxl" else "tiny")
    else:
        write_tiny_sd(work / "sd", shape=args.shape)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (args.size, args.size, 3), dtype=np.uint8)).save(
        work / "image.png")
    caption = "a photo of a horse"

    def synchronize():
        if cuda:
            torch.cuda.synchronize()

    def reset_peak():
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()

    def peak_gib():
        return torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")

    def count_unet_calls(unet, work):
        """(calls, samples) the UNet runs during work()."""
        seen = []
        hook = unet.register_forward_pre_hook(lambda module, args, kwargs: seen.append(len(args[0])),
                                              with_kwargs=True)
        try:
            work()
        finally:
            hook.remove()
        return len(seen), sum(seen)

    editor = Editor(str(work / "sd"), device=device, dtype=args.dtype)
    hidden = editor.hidden_size
    direction = torch.randn(1, 77, hidden, generator=torch.Generator().manual_seed(0)).numpy() * 0.1
    other = torch.randn(1, 77, hidden, generator=torch.Generator().manual_seed(1)).numpy() * 0.1
    # SDXL directions carry a pooled part too
    pooled = torch.randn(1, editor.pooled_size, generator=torch.Generator().manual_seed(2)).numpy() * 0.1 if sdxl \
        else None
    settings = EditSettings(steps=args.steps)
    print(f"{args.shape} model, {args.size}x{args.size}, {args.steps} steps, {device}, "
          f"{editor.components.dtype}, torch {torch.__version__}")

    def our_calls():
        """UNet calls and samples of one edit (no reference pass kept, so nothing carries over
        into the timed runs; one model in memory, as SDXL's fills a 24 GiB machine in fp32)."""
        counted = editor.invert_file(work / "image.png", caption, args.size, args.steps, seed=0)
        return count_unet_calls(editor.components.unet, lambda: editor.edit(counted, direction, settings, pooled=pooled))

    ours_calls, ours_samples = our_calls()

    def ours(label):
        editor.invert_file(work / "image.png", caption, args.size, args.steps, seed=0)  # warm-up
        reset_peak()
        synchronize()
        start = time.perf_counter()
        inversion = editor.invert_file(work / "image.png", caption, args.size, args.steps, Regularisation(), seed=1)
        synchronize()
        inverted = time.perf_counter()
        editor.edit(inversion, direction, settings, keep_reference=True, pooled=pooled)
        synchronize()
        edited = time.perf_counter()
        editor.edit(inversion, other, settings, keep_reference=True, pooled=pooled)
        synchronize()
        again = time.perf_counter()
        return {"label": label, "inversion": inverted - start, "edit": edited - inverted,
                "first": edited - start, "another": again - edited, "peak": peak_gib()}

    rows = [ours("dbank editor (eager)")]
    if args.compile:
        from editor.editor import compile_unet

        start = time.perf_counter()
        compile_unet(editor.components)
        editor.invert_file(work / "image.png", caption, args.size, 2, seed=7)
        editor.edit(editor.invert_file(work / "image.png", caption, args.size, 2, seed=7), direction,
                    EditSettings(steps=2), pooled=pooled)
        synchronize()
        print(f"torch.compile of the UNet (first calls): {time.perf_counter() - start:.1f} s")
        rows.append(ours("dbank editor (compiled)"))

    if sdxl and not args.skip_diffusers:
        import gc

        del editor
        gc.collect()
        rows.append(sdxl_generation(work, args, device, caption, synchronize, reset_peak, peak_gib))
        print(f"unet calls per step: dbank {ours_calls / args.steps:.2f} (samples {ours_samples / args.steps:.2f}); "
              "diffusers SDXL generation 1.00 (samples 2.00)")
    elif not args.skip_diffusers:
        c, pipe = diffusers_pipeline(work, device, args.dtype)
        image = Image.open(work / "image.png")
        source = torch.zeros(1, 77, hidden, device=device, dtype=c.dtype)

        def their_edit(latents, target):
            pipe(caption, source_embeds=source, target_embeds=torch.as_tensor(target, device=device, dtype=c.dtype),
                 num_inference_steps=args.steps, cross_attention_guidance_amount=0.1, guidance_scale=5.0,
                 latents=latents, negative_prompt=caption, output_type="latent")

        def theirs():
            start = time.perf_counter()
            latents = pipe.invert(caption, image=image, num_inference_steps=args.steps,
                                  generator=torch.Generator().manual_seed(0)).latents  # needs a CPU generator
            synchronize()
            inverted = time.perf_counter()
            their_edit(latents, direction)
            synchronize()
            edited = time.perf_counter()
            their_edit(latents, other)  # another direction: diffusers re-runs its whole edit, not the inversion
            synchronize()
            return inverted - start, edited - inverted, time.perf_counter() - edited, latents

        _, _, _, latents = theirs()  # warm-up
        their_calls, their_samples = count_unet_calls(c.unet, lambda: their_edit(latents, direction))
        reset_peak()
        inversion, edit, another, _ = theirs()
        rows.append({"label": "diffusers Pix2PixZero", "inversion": inversion, "edit": edit,
                     "first": inversion + edit, "another": another, "peak": peak_gib()})
        print(f"unet calls per step: dbank {ours_calls / args.steps:.2f}, diffusers {their_calls / args.steps:.2f} "
              f"(samples per step: dbank {ours_samples / args.steps:.2f}, diffusers {their_samples / args.steps:.2f})")
    else:
        print(f"unet calls per step: dbank {ours_calls / args.steps:.2f} (samples {ours_samples / args.steps:.2f})")

    if args.images and not sdxl:
        throughput(args, work, device, caption, synchronize, reset_peak, peak_gib)
    print(f"{'':<26}{'inversion':>10}{'edit':>9}{'first':>9}{'another':>9}{'peak GiB':>10}")
    def cell(value, width, unit="s"):  # a blank where a baseline has no such figure
        return f"{'-':>{width}} " if value != value and unit else f"{value:{width}.2f}{unit}"

    for r in rows:
        print(f"{r['label']:<26}{cell(r['inversion'], 9)}{cell(r['edit'], 8)}{cell(r['first'], 8)}"
              f"{cell(r['another'], 8)}{cell(r['peak'], 10, '')}")
    if sdxl and len(rows) > 1 and rows[-1]["label"].startswith("diffusers"):
        print(f"dbank first edit = {rows[0]['first'] / rows[-1]['first']:.2f} SDXL generations, "
              f"another direction = {rows[0]['another'] / rows[-1]['first']:.2f}")
    elif len(rows) > 1 and rows[-1]["label"].startswith("diffusers"):
        base, mine = rows[-1], rows[0]
        print(f"diffusers / dbank: first edit {base['first'] / mine['first']:.2f}x, "
              f"another direction {base['another'] / mine['another']:.2f}x")


def sdxl_generation(work, args, device, caption, synchronize, reset_peak, peak_gib) -> dict:
    """A row for one plain StableDiffusionXLPipeline generation on the same model, size, steps
    and guidance (timed after a warm-up), with the VAE in fp32 under fp16 as dbank runs it."""
    import torch
    from diffusers import StableDiffusionXLPipeline

    from editor.pipeline import load_components

    c = load_components(str(work / "sd"), device, args.dtype)
    pipe = StableDiffusionXLPipeline(vae=c.vae, text_encoder=c.text_encoder, text_encoder_2=c.text_encoder_2,
                                     tokenizer=c.tokenizer, tokenizer_2=c.tokenizer_2, unet=c.unet,
                                     scheduler=c.scheduler).to(device)
    pipe.set_progress_bar_config(disable=True)

    def generate():
        pipe(caption, height=args.size, width=args.size, num_inference_steps=args.steps, guidance_scale=5.0,
             generator=torch.Generator().manual_seed(0))

    generate()
    reset_peak()
    synchronize()
    start = time.perf_counter()
    generate()
    synchronize()
    seconds = time.perf_counter() - start
    return {"label": "diffusers SDXL generation", "inversion": float("nan"), "edit": seconds, "first": seconds,
            "another": float("nan"), "peak": peak_gib()}


def diffusers_pipeline(work, device, dtype):
    """(components, diffusers' StableDiffusionPix2PixZeroPipeline) on the benchmark's model,
    loaded afresh (the pipeline rewires the UNet's attention)."""
    from diffusers.pipelines.deprecated import StableDiffusionPix2PixZeroPipeline

    from editor.editor import Editor

    c = Editor(str(work / "sd"), device=device, dtype=dtype).components
    pipe = StableDiffusionPix2PixZeroPipeline(
        vae=c.vae, text_encoder=c.text_encoder, tokenizer=c.tokenizer, unet=c.unet, scheduler=c.scheduler,
        inverse_scheduler=c.inverse_scheduler, feature_extractor=None, safety_checker=None,
        caption_generator=None, caption_processor=None, requires_safety_checker=False,
    ).to(device)
    pipe.set_progress_bar_config(disable=True)
    return c, pipe


def throughput(args, work, device, caption, synchronize, reset_peak, peak_gib) -> None:
    """N images x K directions each, from files to PIL images: dbank's local runner (images
    batched, loading on CPU threads) against diffusers' pipeline looping over images and
    directions (one direction a call, as it edits)."""
    import numpy as np
    import torch
    from PIL import Image

    from editor.edit import EditSettings
    from editor.editor import Editor
    from editor.runners.local import ImageJob, edit_images

    folder = work / "images"
    folder.mkdir(exist_ok=True)
    paths = []
    for index in range(args.images):
        path = folder / f"{index}.png"
        Image.fromarray(np.random.default_rng(100 + index).integers(0, 255, (args.size, args.size, 3),
                                                                      dtype=np.uint8)).save(path)
        paths.append(path)
    editor = Editor(str(work / "sd"), device=device, dtype=args.dtype)
    hidden = editor.hidden_size
    directions = torch.randn(args.directions, 77, hidden, generator=torch.Generator().manual_seed(5)).numpy() * 0.1
    jobs = [ImageJob(str(p), caption, [str(k) for k in range(args.directions)], directions) for p in paths]
    settings = EditSettings(steps=args.steps)
    done = []
    reset_peak()
    synchronize()
    start = time.perf_counter()
    edit_images(editor, jobs, settings, size=args.size, batch_images=args.batch_images,
                on_result=done.append, on_error=lambda job, error: print(f"error: {error}"))
    synchronize()
    ours = time.perf_counter() - start
    ours_peak = peak_gib()
    del editor
    line = (f"throughput, {args.images} images x {args.directions} directions: dbank {args.images / ours:.3f} img/s "
            f"({ours:.1f} s, {args.batch_images} images a batch, peak {ours_peak:.2f} GiB)")
    if not args.skip_diffusers:
        c, pipe = diffusers_pipeline(work, device, args.dtype)
        source = torch.zeros(1, 77, hidden, device=device, dtype=c.dtype)
        reset_peak()
        synchronize()
        start = time.perf_counter()
        for path in paths:
            image = Image.open(path).convert("RGB")
            latents = pipe.invert(caption, image=image, num_inference_steps=args.steps,
                                  generator=torch.Generator().manual_seed(0)).latents
            for direction in directions:
                pipe(caption, source_embeds=source,
                     target_embeds=torch.as_tensor(direction[None], device=device, dtype=c.dtype),
                     num_inference_steps=args.steps, cross_attention_guidance_amount=0.1, guidance_scale=5.0,
                     latents=latents, negative_prompt=caption)
        synchronize()
        theirs = time.perf_counter() - start
        line += (f"; diffusers {args.images / theirs:.3f} img/s ({theirs:.1f} s, peak {peak_gib():.2f} GiB); "
                 f"dbank / diffusers {theirs / ours:.2f}x")
    print(line)


if __name__ == "__main__":
    main()
