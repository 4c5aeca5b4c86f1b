"""Pictures for people: contact sheets (a row per image: input, reconstruction, each edit),
settings grids (sweeps), attention maps laid over the photo, and per-token norm plots. Every
picture carries its labels in the PNG's text chunks too (`labels`), so scripts can read them, and
an edit the settings that made it (`parameters`)."""
from __future__ import annotations

import json

LINE_HEIGHT = 16
PADDING = 4
BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)


def _font(size: int = 13):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def _wrap(text: str, width: float, font) -> list[str]:
    """The text in lines of at most `width` pixels, broken between words, and inside a word only
    when the word alone is wider: every character is kept."""
    lines, line = [], ""
    for word in text.split(" "):
        candidate = f"{line} {word}" if line else word
        if font.getlength(candidate) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        line = ""
        for character in word:
            if line and font.getlength(line + character) > width:
                lines.append(line)
                line = ""
            line += character
    return [*lines, line] if line or not lines else lines


def _cell(picture, size: tuple[int, int]):
    from PIL import Image

    cell = Image.new("RGB", size, BACKGROUND)
    if picture is not None:
        fitted = picture.convert("RGB").copy()
        fitted.thumbnail(size)
        cell.paste(fitted, ((size[0] - fitted.width) // 2, (size[1] - fitted.height) // 2))
    return cell


def labelled_grid(rows: list[list], column_labels: list[str], row_labels: list[str] | None = None,
                  title: str | None = None, cell: tuple[int, int] | None = None):
    """A PIL image: `rows` of pictures (None leaves a blank cell) under a band of column labels,
    each row with its label on its left (when given), and an optional title on top; labels too
    long for their place wrap onto more lines, never cut. The labels are also stored as PNG
    text ('labels': JSON) in the image's `info`."""
    from PIL import Image, ImageDraw

    pictures = [p for row in rows for p in row if p is not None]
    cell = cell or (max((p.width for p in pictures), default=64), max((p.height for p in pictures), default=64))
    columns = max(len(row) for row in rows)
    font = _font()
    side = max((int(font.getlength(label)) for label in row_labels or []), default=0)
    side = min(side + 2 * PADDING, max(2 * cell[0], 240)) if row_labels else 0
    # a column is as wide as its picture, or its label's longest word (up to 192 px) so that
    # words are not split
    labels = [*column_labels, *[""] * (columns - len(column_labels))]
    widths = [max(cell[0], min(int(max((font.getlength(w) for w in label.split()), default=0)) + 2, 192))
              for label in labels]
    lefts = [side + PADDING + sum(w + PADDING for w in widths[:column]) for column in range(columns)]
    column_lines = [_wrap(label, width, font) for label, width in zip(labels, widths)]
    row_lines = [_wrap(label, side - 2 * PADDING, font) for label in row_labels or []]
    row_heights = [max(cell[1], len(lines) * LINE_HEIGHT) for lines in row_lines] or [cell[1]] * len(rows)
    width = side + sum(w + PADDING for w in widths) + PADDING
    title_lines = _wrap(title, width - 2 * PADDING, font) if title else []
    band = max((len(lines) for lines in column_lines), default=1) * LINE_HEIGHT + 6
    top = len(title_lines) * LINE_HEIGHT + (6 if title else 0) + band
    height = top + sum(h + PADDING for h in row_heights) + PADDING
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for index, line in enumerate(title_lines):
        draw.text((PADDING, 4 + index * LINE_HEIGHT), line, fill=INK, font=font)
    for column, lines in enumerate(column_lines):
        for index, line in enumerate(lines):
            draw.text((lefts[column], top - band + 4 + index * LINE_HEIGHT), line, fill=INK, font=font)
    y = top + PADDING
    for index, row in enumerate(rows):
        if row_labels:
            lines = row_lines[index]
            first = y + (row_heights[index] - len(lines) * LINE_HEIGHT) // 2
            for number, line in enumerate(lines):
                draw.text((PADDING, first + number * LINE_HEIGHT), line, fill=INK, font=font)
        for column, picture in enumerate(row):
            sheet.paste(_cell(picture, cell), (lefts[column] + (widths[column] - cell[0]) // 2,
                                               y + (row_heights[index] - cell[1]) // 2))
        y += row_heights[index] + PADDING
    sheet.info["labels"] = json.dumps({"title": title, "columns": column_labels, "rows": row_labels or []})
    return sheet


def contact_sheet(entries: list[dict], direction_labels: list[str]):
    """One row per image: input, reconstruction, then each direction's edit. `entries` hold
    'name', 'caption', 'input', 'reconstruction' and 'edits' (label -> picture)."""
    rows = [[e["input"], e["reconstruction"], *(e["edits"].get(label) for label in direction_labels)]
            for e in entries]
    row_labels = [f"{e['name']}: {e['caption']}" for e in entries]
    return labelled_grid(rows, ["input", "reconstruction", *direction_labels], row_labels)


def attention_overlay(photo, heat, colormap: str = "inferno", opacity: float = 0.55):
    """The greyscale attention map `heat` (a PIL 'L' image) coloured and laid over `photo`."""
    import numpy as np
    from matplotlib import colormaps
    from PIL import Image

    heat = heat.convert("L").resize(photo.size, Image.Resampling.BILINEAR)
    coloured = colormaps[colormap](np.asarray(heat, np.float32) / 255.0)[..., :3]
    base = np.asarray(photo.convert("RGB"), np.float32) / 255.0
    blended = (1 - opacity) * base + opacity * coloured
    return Image.fromarray((blended * 255).round().astype(np.uint8))


def _figure_picture(figure):
    """A finished matplotlib figure as a PIL image (the figure is closed)."""
    import io

    import matplotlib.pyplot as plt
    from PIL import Image

    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    buffer.seek(0)
    picture = Image.open(buffer)
    picture.load()
    return picture


def token_norm_plot(norms, tokens: list[str] | None = None, title: str = ""):
    """A bar chart (PIL image) of a direction's norm per token position: which tokens carry the
    change. `tokens` labels the first bars (the caption's words) where given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(10, 3.2), dpi=100)
    axes.bar(range(len(norms)), norms, color="#4C72B0")
    axes.set_xlabel("token position (0 = start token)")
    axes.set_ylabel("norm of the direction")
    axes.set_xlim(-1, len(norms))
    if tokens:
        axes.set_xticks(range(len(tokens)), tokens, rotation=60, fontsize=7)
    axes.set_title(title)
    picture = _figure_picture(figure)
    picture.info["labels"] = json.dumps({"title": title, "bars": len(norms)})
    return picture


def photo_at(path, size: tuple[int, int]):
    """The image file as RGB at `size` (an edit's size): the input beside its edits."""
    from PIL import Image

    with Image.open(path) as opened:
        return opened.convert("RGB").resize(size, Image.Resampling.LANCZOS)


def save_png(picture, path) -> None:
    """Save as PNG with the picture's labels and, for an edit, the settings that made it
    ('parameters', JSON, as A1111 keeps its own) in text chunks."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key in ("labels", "parameters"):
        if key in picture.info:
            info.add_text(key, picture.info[key])
    picture.save(path, format="PNG", pnginfo=info)


def tradeoff_plot(summary: list[dict], title: str = "Edit strength against structure kept"):
    """The paper's trade-off picture (PIL image): per direction and setting, CLIP directional
    similarity (up: the edit goes where the text says) against DINO structure distance (right:
    the layout changes), with 95% intervals; a colour per direction, word-swap baselines as open
    squares, and each direction's reconstruction in its colour and a shape of its own (a star,
    then smaller plus, cross, diamond...), labelled in the legend (two reconstructions once looked the same, their labels on top of
    each other). `summary` rows as jobs.evaluate.summarise makes them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    markers = {"direction": "o", "word-swap": "s", "reconstruction": "*"}
    figure, axes = plt.subplots(figsize=(8, 5.5), dpi=100)
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    names = list(dict.fromkeys(row["direction"] for row in summary))

    def colour(row):
        return cycle[names.index(row["direction"]) % len(cycle)]

    def error(stat):
        if stat["low"] is None:  # one image: no interval
            return [[0.0], [0.0]]
        return [[stat["mean"] - stat["low"]], [stat["high"] - stat["mean"]]]

    # each direction's reconstruction a shape of its own, smaller in turn, so two at one point both show
    rebuilt = [row["direction"] for row in summary if row["kind"] == "reconstruction"]
    shapes = ["*", "P", "X", "D", "h", "p"]
    plotted = 0
    for row in summary:
        x, y = row["structure_distance"], row["clip_directional_similarity"]
        if x["mean"] is None or y["mean"] is None:
            continue
        kind = row["kind"]
        order = rebuilt.index(row["direction"]) if kind == "reconstruction" else 0
        name = {"reconstruction": f"reconstruction ({row['direction']})",
                "word-swap": f"word-swap ({row['source']} -> {row['target']})"}.get(kind, row["direction"])
        axes.errorbar(x["mean"], y["mean"], xerr=error(x), yerr=error(y),
                      fmt=shapes[order % len(shapes)] if kind == "reconstruction" else markers[kind],
                      color=colour(row), ecolor=colour(row), elinewidth=0.8, capsize=2, alpha=0.9,
                      markersize=max(16 - 6 * order, 5) if kind == "reconstruction" else 7, label=name,
                      markeredgecolor="#111111" if kind == "reconstruction" else colour(row),
                      markerfacecolor="none" if kind == "word-swap" else colour(row), zorder=3)
        if kind == "direction":
            axes.annotate(row["setting"], (x["mean"], y["mean"]), textcoords="offset points", xytext=(5, 4),
                          fontsize=7, color=colour(row))
        plotted += 1
    for direction in names:  # one direction's settings in scale order: its trade-off curve
        rows = [row for row in summary if row["direction"] == direction and row["kind"] == "direction"
                and row["structure_distance"]["mean"] is not None]
        if len(rows) > 1:
            axes.plot([r["structure_distance"]["mean"] for r in rows],
                      [r["clip_directional_similarity"]["mean"] for r in rows], color=colour(rows[0]),
                      linewidth=0.8, alpha=0.5)
    handles, labels = axes.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    if unique:
        axes.legend(unique.values(), unique.keys(), fontsize=8, loc="best")
    axes.set_xlabel("structure distance to the input (DINO-ViT)  ← better: keeps the layout")
    axes.set_ylabel("CLIP directional similarity  ↑ better: the intended change")
    axes.axhline(0, color="#999999", linewidth=0.6)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    picture = _figure_picture(figure)
    picture.info["labels"] = json.dumps({"title": title, "points": plotted, "legend": list(unique)})
    return picture
