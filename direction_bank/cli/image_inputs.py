"""The images an editing command is given: files, folders of images, and CSV manifests (image,
caption, directions), each row checked before any work; and the engine that runs them."""
from __future__ import annotations

from pathlib import Path

import click

from direction_bank.errors import BankError
from direction_bank.names import file_label


def image_stems(images) -> list[str]:
    """A file stem per input row; two inputs with the same name (d1/x.png, d2/x.png) get
    stems from their whole paths, and one image on several rows (a manifest giving it two
    captions) a stem per row, so their outputs never meet."""
    from collections import Counter

    stems = [Path(image).stem for image in images]
    stem_counts, image_counts = Counter(stems), Counter(images)  # (a folder may hold 100,000 images)
    return [file_label(stem, part=True) if stem_counts[stem] == 1
            else file_label(str(Path(image)), part=True) if image_counts[image] == 1
            else file_label(f"{image}#{row}", part=True)
            for row, (image, stem) in enumerate(zip(images, stems), 1)]


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def images_in(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def listed_images(images, manifest: str | None, caption: str | None,
                  directions_given: bool = True) -> list[tuple[str, str | None, list[str]]]:
    """(image, caption or None, its own direction names) for each image file, each image in a
    folder, and each --manifest row (see read_manifest); a usage error when there are none."""
    listed = [(str(image), caption, []) for arg in images
              for image in (images_in(Path(arg)) if Path(arg).is_dir() else [arg])]
    rows = read_manifest(manifest, directions_given) if manifest else []
    listed += [(image, own or caption, wanted) for image, own, wanted in rows]
    if not listed:
        raise click.UsageError("give IMAGES, a folder of images, or --manifest")
    return listed


def photos_on_disk(listed: list[tuple[str, str | None, list[str]]]) -> list[tuple[str, str | None, list[str]]]:
    """The listed rows whose image is a regular file. When none is, one line naming the first,
    before a model or a captioner is asked for (with some present, each missing one is the
    run's error, and the rest are edited)."""
    present = [row for row in listed if Path(row[0]).is_file()]
    if not present:
        first = Path(listed[0][0])
        others = f" (nor any of the other {len(listed) - 1})" if len(listed) > 1 else ""
        raise BankError(f"{first}: {'not a regular file' if first.exists() else 'no such file'}{others}")
    return present


def check_engine(engine: str, address: str | None, timeout: float) -> None:
    """With --engine ray: Ray installed, and a given --address answering, before anything
    loads (a dead address never hangs)."""
    if engine == "ray":
        from editor.runners.ray_address import check_ray_address, check_ray_installed

        check_ray_installed()
        if address:
            check_ray_address(address, timeout)


MAX_MANIFEST_LINE = 65_536  # characters; a caption is 77 CLIP tokens, a few hundred characters


def read_manifest(path: str, directions_given: bool = True) -> list[tuple[str, str | None, list[str]]]:
    """(image, caption or None, direction names) per CSV row 'image[,caption[,direction...]]';
    image paths are relative to the manifest's folder; a first row starting 'image' is a header.
    Each line is one row: a quote left open, a line past MAX_MANIFEST_LINE characters, or a row
    naming no direction when the command gives none, is refused with its line number before any
    work (never skipped without a word); a missing image is the run's error, naming it."""
    import csv

    from direction_bank.text.text_input import read_text

    rows = []
    for number, line in enumerate(read_text(path).splitlines(), 1):
        if len(line) > MAX_MANIFEST_LINE:
            raise BankError(f"{path}, line {number}: {len(line)} characters (at most {MAX_MANIFEST_LINE} per row)")
        try:
            [row] = list(csv.reader([line], strict=True)) or [[]]
        except csv.Error as error:
            raise BankError(f"{path}, line {number}: not a CSV row ({error}); quote a field whole, "
                            "or leave quotes out") from None
        if not row or not row[0].strip() or row[0].strip().startswith("#"):
            continue
        if number == 1 and row[0].strip().lower() == "image":
            continue
        image = Path(path).parent / row[0].strip()
        caption = row[1].strip() if len(row) > 1 and row[1].strip() else None
        names = [name.strip() for name in row[2:] if name.strip()]
        if not names and not directions_given:
            raise BankError(f"{path}, line {number}: {row[0].strip()} names no direction, and the command gives "
                            "none; add one to the row, or give --direction")
        rows.append((str(image), caption, names))
    if not rows:
        raise BankError(f"{path}: no images listed")
    return rows
