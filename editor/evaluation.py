"""Scores of edits: images in, numbers out. CLIP directional similarity and CLIP accuracy (how
far an edit went where the text says), DINO-ViT structure distance (how much of the photo's
layout it kept) and background change (how much it changed outside the edited object). Models
load by id, folder or Hugging Face cache through transformers; torch and transformers are
imported inside the functions that need them."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

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
    # the texts longer than CLIP's context, scored on their first tokens (see texts)
    truncated: set = field(default_factory=set)

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
        """[n, P] unit text embeddings. A text longer than CLIP's context (77 tokens) is cut to
        it exactly as the editor's text encoder cuts a caption (start token, the first 75, end
        token), and kept in `truncated`."""
        import torch

        limit = self.context_length
        # a token covers at least one byte: only a text longer than the context in bytes can overflow
        long = [prompt for prompt in prompts if len(prompt.encode("utf-8")) > limit - 2]
        lengths = [len(ids) for ids in self.processor.tokenizer(long)["input_ids"]] if long else []
        self.truncated.update(prompt for prompt, length in zip(long, lengths) if length > limit)
        ids = self.processor(text=prompts, return_tensors="pt", padding=True, truncation=True,
                             max_length=limit).to(self.device)
        with torch.inference_mode():
            embeds = _features(self.model.get_text_features(input_ids=ids["input_ids"],
                                                            attention_mask=ids["attention_mask"])).float()
        return embeds / embeds.norm(dim=-1, keepdim=True)

    @property
    def context_length(self) -> int:
        """The most tokens CLIP's text tower reads (77), start and end tokens included."""
        return int(self.model.config.text_config.max_position_embeddings)

    def directional_similarity(self, inputs: list, edits: list, sources: list[str], targets: list[str]) -> list[float]:
        """Per edit, the cosine between the image change (edit - input) and the text change
        (target - source) in CLIP space, as diffusers' evaluation guide defines it."""
        similarity = changes_cosine(self.images(inputs), self.images(edits), self.texts(sources), self.texts(targets))
        return [float(v) for v in similarity]

    def accuracy(self, edits: list, sources: list[str], targets: list[str]) -> list[bool]:
        """Per edit, whether it is closer in CLIP space to its target prompt than to its source
        prompt (zero-shot), as the paper's table counts."""
        return [bool(v) for v in nearer_target(self.images(edits), self.texts(sources), self.texts(targets))]


def changes_cosine(inputs, edits, sources, targets):
    """[n] cosine of each image change (edit - input) with its text change (target - source),
    from unit CLIP embeddings [n, P]."""
    import torch

    return torch.nn.functional.cosine_similarity(edits - inputs, targets - sources, dim=-1)


def nearer_target(edits, sources, targets):
    """[n] bool: each edit's embedding has a larger dot product with its target than its source."""
    return (edits * targets).sum(-1) > (edits * sources).sum(-1)


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


def attention_mask(grey, threshold: float = 0.5):
    """[H, W] 0/1 array: where a grey attention map (0-255, as the editor writes them) reaches
    `threshold` of its range, the word's region."""
    import numpy as np

    heat = np.asarray(grey.convert("L"), np.float64) / 255.0
    return (heat >= threshold).astype(np.float64)


@dataclass
class ScorePair:
    """An input photo and one edit of it (PIL images of one size), what the edit should change
    (`source_text` -> `target_text`, the texts of the directional similarity; `source_prompt`
    -> `target_prompt`, the zero-shot classes of the accuracy) and the source word's region."""

    photo: object
    edit: object
    source_text: str
    target_text: str
    source_prompt: str
    target_prompt: str
    mask: object = None


# what each score is: name -> (what it measures, which model computes it: 'clip', 'dino' or None)
METRICS = {
    "clip_directional_similarity": ("cosine of CLIP image change and text change (higher: the edit goes "
                                    "where the text says)", "clip"),
    "clip_accuracy": ("share of edits CLIP puts nearer the target than the source prompt", "clip"),
    "structure_distance": ("DINO-ViT key self-similarity distance to the input (lower: layout kept)", "dino"),
    "background_change": ("mean absolute pixel change outside the source word's attention region (0-1)", None),
    "whole_image_change": ("mean absolute pixel change over the whole image (0-1)", None),
}


@dataclass
class EditScorer:
    """CLIP and DINO together: every metric of METRICS for many pairs, `batch_size` pairs per
    model call (a photo shared by several edits is embedded once per batch)."""

    clip: ClipScorer
    dino: DinoStructure
    clip_model: str = DEFAULT_CLIP
    dino_model: str = DEFAULT_DINO

    @classmethod
    def load(cls, clip_model: str = DEFAULT_CLIP, dino_model: str = DEFAULT_DINO, device: str = "cpu") -> EditScorer:
        """Both models by id or folder (one line naming the one that cannot be loaded)."""
        return cls(ClipScorer.load(clip_model, device), DinoStructure.load(dino_model, device), clip_model, dino_model)

    def truncation_note(self) -> str | None:
        """One line when texts longer than CLIP's context were scored on their first tokens."""
        count = len(self.clip.truncated)
        if not count:
            return None
        return (f"{count} text{'s' * (count != 1)} longer than CLIP's {self.clip.context_length} tokens "
                f"{'were' if count != 1 else 'was'} scored on the first {self.clip.context_length}, as the "
                "editor's text encoder reads a caption")

    @property
    def models(self) -> dict[str, str]:
        """Metric name -> the model that computes it ('' for pixel metrics)."""
        named = {"clip": self.clip_model, "dino": self.dino_model}
        return {metric: named.get(kind, "") for metric, (_, kind) in METRICS.items()}

    def score(self, pairs: list[ScorePair], batch_size: int = 16) -> list[dict]:
        """Per pair, {metric: value} for every metric of METRICS (background_change is None
        without a mask)."""
        scores = []
        for start in range(0, len(pairs), max(1, batch_size)):
            scores += self._score_batch(pairs[start : start + max(1, batch_size)])
        return scores

    def _score_batch(self, pairs: list[ScorePair]) -> list[dict]:
        import torch

        for pair in pairs:
            if pair.photo.size != pair.edit.size:
                raise ValueError(f"the images differ in size: {pair.photo.size[0]}x{pair.photo.size[1]} and "
                                 f"{pair.edit.size[0]}x{pair.edit.size[1]}")
        # each distinct picture embedded once: a photo shared by several edits, and an edit
        # identical to its photo (whose distances are then exactly 0)
        rows_of: dict = {}
        pictures, rows = [], []
        for picture in [image for pair in pairs for image in (pair.photo, pair.edit)]:
            key = (picture.size, hashlib.sha1(picture.tobytes()).digest())
            if key not in rows_of:
                rows_of[key] = len(pictures)
                pictures.append(picture)
            rows.append(rows_of[key])
        photo_rows, edit_rows = torch.tensor(rows[0::2]), torch.tensor(rows[1::2])
        images = self.clip.images(pictures)
        photo_images, edit_images = images[photo_rows], images[edit_rows]
        texts = list(dict.fromkeys(text for pair in pairs for text in (pair.source_text, pair.target_text,
                                                                         pair.source_prompt, pair.target_prompt)))
        text_embeds = self.clip.texts(texts)
        index = {text: row for row, text in enumerate(texts)}

        def embeds(attribute):
            return text_embeds[torch.tensor([index[getattr(pair, attribute)] for pair in pairs])]

        direction = changes_cosine(photo_images, edit_images, embeds("source_text"), embeds("target_text"))
        nearer = nearer_target(edit_images, embeds("source_prompt"), embeds("target_prompt"))
        similarity = self.dino.self_similarity(self.dino.keys(pictures))
        structure = ((similarity[edit_rows] - similarity[photo_rows]) ** 2).mean(dim=(1, 2))
        return [{"clip_directional_similarity": float(direction[i]), "clip_accuracy": bool(nearer[i]),
                 "structure_distance": float(structure[i]),
                 "background_change": None if pair.mask is None else background_change(pair.photo, pair.edit, pair.mask),
                 "whole_image_change": background_change(pair.photo, pair.edit)}
                for i, pair in enumerate(pairs)]


FEW_IMAGES = 10  # an interval over fewer images than this is said to be wide for that reason


def bootstrap_interval(values, seed: int = 0, resamples: int = 2000, level: float = 0.95) -> tuple:
    """(mean, low, high, n): the mean of the n usable `values` (None and NaN left out; booleans
    count as 0/1) and its `level` bias-corrected and accelerated (BCa) bootstrap interval over
    `resamples` resamples (scipy.stats.bootstrap), the same for the same seed. Values that are
    all equal give that value as both ends; a single value has no interval (None, None);
    no values, (None, None, None, 0). Where BCa cannot be computed (its acceleration undefined)
    the percentile interval is given."""
    import warnings

    import numpy as np
    from scipy.stats import bootstrap

    data = np.array([float(v) for v in values if v is not None], np.float64)
    data = data[np.isfinite(data)]
    n = len(data)
    if not n:
        return None, None, None, 0
    mean = float(data.mean())
    if n == 1:
        return mean, None, None, 1
    if np.ptp(data) == 0:
        return mean, mean, mean, n
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a degenerate BCa warns, then gives NaN: handled below
        low, high = bootstrap((data,), np.mean, n_resamples=resamples, confidence_level=level, method="BCa",
                              rng=np.random.default_rng(seed), vectorized=True).confidence_interval
        if not (np.isfinite(low) and np.isfinite(high)):
            low, high = bootstrap((data,), np.mean, n_resamples=resamples, confidence_level=level,
                                  method="percentile", rng=np.random.default_rng(seed),
                                  vectorized=True).confidence_interval
    return mean, float(low), float(high), n
