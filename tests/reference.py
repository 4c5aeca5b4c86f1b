"""Direct computations the bank's results are checked against (pix2pix-zero's own way)."""
import numpy as np


def reference_embeddings(model_dir, sentences) -> np.ndarray:
    """Each sentence through CLIPTokenizer + CLIPTextModel one at a time, padded to 77, as
    pix2pix-zero's make_edit_direction.py does: float64 [n, 77, D]."""
    import torch
    from transformers import CLIPTextModel, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(model_dir, subfolder="tokenizer")
    model = CLIPTextModel.from_pretrained(model_dir, subfolder="text_encoder").eval()
    out = []
    with torch.no_grad():
        for text in sentences:
            ids = tokenizer(
                text, padding="max_length", max_length=tokenizer.model_max_length,
                truncation=True, return_tensors="pt",
            ).input_ids
            out.append(model(ids)[0][0].double().numpy())
    return np.stack(out)
