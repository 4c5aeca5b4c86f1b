"""The bounds of the edit settings every face and every stored tuning share."""
from __future__ import annotations

# name -> (lowest, highest); the CLI's options, the studio's sliders, the editor's checks and
# the tunings kept in banks and files all say the same
SETTING_BOUNDS = {"steps": (1, 1000), "guidance_scale": (0.0, 50.0), "xa_guidance": (0.0, 10.0), "scale": (-20.0, 20.0)}
SEED_RANGE = (0, 2**32 - 1)  # the seeds of inversion shifts and generated starts
SIZE_RANGE = (8, 4096)  # an image's longer side in pixels, a multiple of 8
MAX_INPUT_PIXELS = 80_000_000  # the largest photos are about 60 megapixels; past this, a bomb
