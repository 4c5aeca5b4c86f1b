"""Devices and the dtype names users give (`--dtype`), for every model dbank loads."""
from __future__ import annotations

DTYPES = ("auto", "fp32", "fp16", "bf16")


def default_device() -> str:
    """'cuda' when a GPU is usable, else 'cpu'."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def torch_dtype(name: str, device: str):
    """The torch dtype a name in DTYPES stands for on `device`: 'auto' is fp16 on CUDA and fp32
    elsewhere. ValueError for a name not in DTYPES."""
    import torch

    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; use one of {', '.join(DTYPES)}")
    if name == "auto":
        return torch.float16 if device.startswith("cuda") else torch.float32
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]
