"""A published direction's preview (dbank publish --preview): photos edited with it, as a
contact sheet of the photo, its reconstruction and the edit, with the settings it used."""
from __future__ import annotations

import io
from pathlib import Path

from direction_bank.jobs.edit import apply_tuning, check_shapes, direction_parts, resolve_directions


def preview_sheet(editor, direction, photos: list[str], caption: str | None, size: int, steps: int,
                  seed: int = 0):
    """(the contact sheet as PNG bytes, the settings line): each photo inverted (captioned by
    BLIP when `caption` is None) and edited with `direction` (a saved one, the bank's
    DirectionResult) at its tuned scale and cross-attention guidance (dbank tune), else scale 1
    and 0.1, as `dbank edit` would. A direction that does not fit the editor's model is one
    line before any photo is inverted."""
    from editor.edit import EditSettings
    from editor.pictures import contact_sheet, photo_at, save_png

    name = direction.name
    resolved, _ = resolve_directions([(name, lambda: direction_parts(direction))], strict=True)
    resolved = check_shapes(editor, resolved)
    resolved, scale, xa_guidance, _ = apply_tuning(resolved, None, None)
    entry = resolved[0]
    settings = EditSettings(steps=steps, scale=scale, xa_guidance=xa_guidance)
    rows = []
    for photo in photos:
        inversion = editor.invert_file(photo, caption, size, steps, seed=seed)
        pictures, reconstruction = editor.edit(inversion, entry.parts[0], settings, pooled=entry.parts[1])
        rows.append({"name": Path(photo).name, "caption": inversion.caption,
                     "input": photo_at(photo, reconstruction.size), "reconstruction": reconstruction,
                     "edits": {name: pictures[0]}})
    said = (f"scale {entry.scale * scale:g}, cross-attention guidance {xa_guidance:g}, {steps} steps, {size} px, "
            f"seed {seed}" + (" (its tuned setting)" if entry.tuning else ""))
    sheet = io.BytesIO()
    save_png(contact_sheet(rows, [name]), sheet)
    return sheet.getvalue(), said
