"""Captions of input images with BLIP (transformers), the source prompt when none is given."""
from __future__ import annotations

DEFAULT_CAPTION_MODEL = "Salesforce/blip-image-captioning-base"


class Captioner:
    """A BLIP image-captioning model, loaded once, captioning PIL images."""

    def __init__(self, model: str = DEFAULT_CAPTION_MODEL, device: str = "cpu"):
        from transformers import BlipForConditionalGeneration, BlipProcessor

        from editor.pipeline import EditorError, first_line

        try:
            self.processor = BlipProcessor.from_pretrained(model)
            self.model = BlipForConditionalGeneration.from_pretrained(model).to(device).eval()
        except (OSError, ValueError) as error:
            raise EditorError(
                f"cannot load the captioning model {model!r} ({first_line(error)}); pass --caption, or set "
                "--caption-model to a local BLIP folder"
            ) from None
        self.device = device

    def __call__(self, image) -> str:
        """One caption for a PIL image (greedy, up to 30 new tokens)."""
        import torch

        inputs = self.processor(images=image, return_tensors="pt").to(self.device)
        with torch.inference_mode():
            ids = self.model.generate(**inputs, max_new_tokens=30)
        return self.processor.decode(ids[0], skip_special_tokens=True).strip()
