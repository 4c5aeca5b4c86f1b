"""Scores of edits: images in, numbers out. CLIP directional similarity and CLIP accuracy (how
far an edit went where the text says), DINO-ViT structure distance (how much of the photo's
layout it kept) and background change (how much it changed outside the edited object). Models
load by id, folder or Hugging Face cache through transformers; torch and transformers are
imported inside the functions that need them."""
from __future__ import annotations

from dataclasses import dataclass

DEFAULT_CLIP = "openai/clip-vit-large-patch14"
DEFAULT_DINO = "facebook/dino-vitb8"


def _loaded(kind: str, model: str, load):
    """load(), or one line naming the model when it cannot be loaded."""
    from editor.pipeline import EditorError, first_line

    try:
        return load()
    except (OSError, ValueError) as error:
        raise EditorError(f"cannot load the {kind} model {model!r} ({first_line(error)})") from None


def _features(output):
    """Projected features from get_image_features/get_text_features (a tensor in transformers
    4.x, an output whose pooler_output holds them in 5.x)."""
    import torch

    return output if torch.is_tensor(output) else output.pooler_output


@dataclass
class ClipScorer:
    """A CLIP model with its processor: image and text embeddings, unit length."""

    model: object
    processor: object
    device: str = "cpu"

    @classmethod
    def load(cls, model: str = DEFAULT_CLIP, device: str = "cpu") -> ClipScorer:
        """CLIP by id or folder (one line naming the model when it cannot be loaded)."""
        from transformers import CLIPModel, CLIPProcessor

        return _loaded("CLIP", model, lambda: cls(CLIPModel.from_pretrained(model).to(device).eval(),
                                                  CLIPProcessor.from_pretrained(model), device))

    def images(self, pictures: list):
        """[n, P] unit image embeddings of PIL images."""
        import torch

        pixels = self.processor(images=pictures, return_tensors="pt")["pixel_values"].to(self.device)
        with torch.inference_mode():
            embeds = _features(self.model.get_image_features(pixel_values=pixels)).float()
        return embeds / embeds.norm(dim=-1, keepdim=True)

    def texts(self, prompts: list[str]):
        """[n, P] unit text embeddings."""
        import torch

        ids = self.processor(text=prompts, return_tensors="pt", padding=True).to(self.device)
        with torch.inference_mode():
            embeds = _features(self.model.get_text_features(input_ids=ids["input_ids"],
                                                            attention_mask=ids["attention_mask"])).float()
        return embeds / embeds.norm(dim=-1, keepdim=True)

    def directional_similarity(self, inputs: list, edits: list, sources: list[str], targets: list[str]) -> list[float]:
        """Per edit, the cosine between the image change (edit - input) and the text change
        (target - source) in CLIP space, as diffusers' evaluation guide defines it."""
        import torch

        image_change = self.images(edits) - self.images(inputs)
        text_change = self.texts(targets) - self.texts(sources)
        return [float(v) for v in torch.nn.functional.cosine_similarity(image_change, text_change, dim=-1)]

    def accuracy(self, edits: list, sources: list[str], targets: list[str]) -> list[bool]:
        """Per edit, whether it is closer in CLIP space to its target prompt than to its source
        prompt (zero-shot), as the paper's table counts."""
        images = self.images(edits)
        to_target = (images * self.texts(targets)).sum(-1)
        to_source = (images * self.texts(sources)).sum(-1)
        return [bool(t > s) for t, s in zip(to_target, to_source)]


@dataclass
class DinoStructure:
    """DINO-ViT's last-layer self-attention keys, for the structure distance of Tumanyan et al.
    ("Splicing ViT Features"): the difference of the two images' key self-similarity matrices."""

    model: object
    processor: object
    device: str = "cpu"

    @classmethod
    def load(cls, model: str = DEFAULT_DINO, device: str = "cpu") -> DinoStructure:
        """DINO by id or folder (one line naming the model when it cannot be loaded)."""
        from transformers import AutoImageProcessor, ViTModel

        return _loaded("DINO", model, lambda: cls(
            ViTModel.from_pretrained(model, add_pooling_layer=False).to(device).eval(),
            AutoImageProcessor.from_pretrained(model), device))

    def keys(self, pictures: list):
        """[n, tokens, D] keys of the last layer's self-attention (class token included)."""
        import torch

        last = [module for name, module in self.model.named_modules() if name.endswith(("k_proj", "attention.key"))][-1]
        captured = []
        handle = last.register_forward_hook(lambda module, args, output: captured.append(output))
        try:
            pixels = self.processor(images=pictures, return_tensors="pt")["pixel_values"].to(self.device)
            with torch.inference_mode():
                self.model(pixel_values=pixels)
        finally:
            handle.remove()
        return captured[-1].float()

    @staticmethod
    def self_similarity(keys):
        """[n, tokens, tokens] cosine similarity of every token's key with every other's."""
        unit = keys / keys.norm(dim=-1, keepdim=True)
        return unit @ unit.transpose(1, 2)

    def distance(self, inputs: list, edits: list) -> list[float]:
        """Per pair, the mean squared difference of the key self-similarity matrices: 0 for an
        image and itself, larger as the layout changes."""
        a = self.self_similarity(self.keys(inputs))
        b = self.self_similarity(self.keys(edits))
        return [float(v) for v in ((a - b) ** 2).mean(dim=(1, 2))]


def background_change(photo, edit, mask=None) -> float:
    """Mean absolute change per pixel (0-1 scale, RGB) between two same-size images, outside
    `mask` (a [H, W] array in [0, 1], 1 on the edited object; its weights are respected), or over
    the whole image without one."""
    import numpy as np

    a = np.asarray(photo.convert("RGB"), np.float64) / 255.0
    b = np.asarray(edit.convert("RGB"), np.float64) / 255.0
    if a.shape != b.shape:
        raise ValueError(f"the images differ in size: {a.shape[1]}x{a.shape[0]} and {b.shape[1]}x{b.shape[0]}")
    change = np.abs(a - b).mean(-1)
    if mask is None:
        return float(change.mean())
    outside = 1.0 - np.clip(np.asarray(mask, np.float64), 0.0, 1.0)
    if outside.shape != change.shape:
        raise ValueError(f"the mask is {outside.shape[1]}x{outside.shape[0]}, the images "
                         f"{change.shape[1]}x{change.shape[0]}")
    return float((change * outside).sum() / outside.sum()) if outside.sum() else 0.0
