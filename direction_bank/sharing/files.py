"""Direction and concept files: dbank's self-describing safetensors files, and pix2pix-zero's
bare `torch.save` tensors. Reading validates everything before anything is handed on."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from direction_bank import __version__
from direction_bank.errors import BankError, FileRejected
from direction_bank.output_files import write_output
from sd_models.family import model_kind

# 2: SDXL files, with the pooled parts (`*_pooled` tensors, encoder.pooled_size). A file is
# written at the lowest version that holds it, so SD 1.x/2.x files stay readable by dbank 1.
FORMAT_VERSION = 2
POOLED_FORMAT_VERSION = 2  # the first version that holds pooled parts
# CLIP hidden states stay within a few tens; a mean or direction a thousand times past that is
# not an embedding (1e38 would overflow every norm and similarity computed from it)
MAX_ABS_VALUE = 1e4
MAX_FILE_BYTES = {"dbank": 1 << 30, "pix2pix-zero": 64 << 20}
FORMATS = {"direction": "dbank-direction", "concept": "dbank-concept"}
# tensors each kind must carry, and the ones it may carry; shapes are checked against the encoder
REQUIRED = {"direction": {"direction"}, "concept": {"mean", "m2"}}
OPTIONAL = {"direction": {"source_mean", "target_mean"}, "concept": set()}
POOLED = "_pooled"  # suffix of the pooled part of each tensor in an SDXL file


def tensor_names(kind: str, pooled: bool) -> tuple[set[str], set[str]]:
    """(required, optional) tensor names of a `kind` file, with their pooled parts for SDXL."""
    if not pooled:
        return REQUIRED[kind], OPTIONAL[kind]
    return ({*REQUIRED[kind], *(n + POOLED for n in REQUIRED[kind])},
            {*OPTIONAL[kind], *(n + POOLED for n in OPTIONAL[kind])})


@dataclass(frozen=True)
class SharedFile:
    """A validated file: its kind ('direction', 'concept' or 'p2p-zero'), float32 tensors,
    metadata and the SHA-256 of its bytes."""

    path: Path
    kind: str
    tensors: dict[str, np.ndarray]
    meta: dict
    sha256: str
    hub: dict | None = None  # where it came from on the Hugging Face Hub (sharing.hub.fetch), if there

    @property
    def hidden_size(self) -> int:
        """D of the [.., 77, D] tensors."""
        return self.tensors["direction" if self.kind == "direction" else "mean"].shape[-1]

    @property
    def pooled_size(self) -> int:
        """Size of the pooled parts (SDXL files), 0 without them."""
        return int((self.meta.get("encoder") or {}).get("pooled_size") or 0)

    @property
    def model_kind(self) -> str:
        """'SDXL' or 'SD 1.x/2.x': the kind of model the file was made for."""
        return model_kind(bool(self.pooled_size))


def tensor_sha256(tensor: np.ndarray) -> str:
    """SHA-256 of a tensor's float32 little-endian bytes."""
    return hashlib.sha256(np.ascontiguousarray(tensor, dtype="<f4").tobytes()).hexdigest()


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_shared_file(path: str | os.PathLike, kind: str, tensors: dict[str, np.ndarray], meta: dict,
                      overwrite: bool = False) -> dict:
    """Write a dbank file of `kind` safely (see output_files.write_output); returns the full
    metadata written."""
    from safetensors.numpy import save_file

    arrays = {name: np.ascontiguousarray(t, dtype="<f4") for name, t in tensors.items()}
    full = {
        "format": FORMATS[kind],
        "format_version": POOLED_FORMAT_VERSION if any(name.endswith(POOLED) for name in arrays) else 1,
        "dbank_version": __version__,
        "created_at": datetime.now(timezone.utc).isoformat(),
        **meta,
        "tensors": {
            name: {"shape": list(a.shape), "dtype": "float32", "sha256": tensor_sha256(a)}
            for name, a in arrays.items()
        },
    }
    write_output(path, lambda temporary: save_file(arrays, str(temporary), metadata={"dbank": json.dumps(full)}),
                 overwrite)
    return full


# metadata carries the sentences of a concept bundle: 100,000 captions fit in 40 MB
MAX_METADATA_CHARACTERS = 64 * 1024 * 1024


def read_metadata(path: str | os.PathLike) -> dict:
    """The metadata of a dbank file, read from its header alone (no tensor is loaded)."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="numpy") as handle:
            header = handle.metadata() or {}
    except Exception:  # safetensors raises its own error types for every malformed header
        raise FileRejected(f"{path.name}: not a dbank file (empty, truncated or not safetensors)") from None
    if len(header.get("dbank", "")) > MAX_METADATA_CHARACTERS:
        raise FileRejected(f"{path.name}: {len(header['dbank'])} characters of metadata "
                           f"(at most {MAX_METADATA_CHARACTERS})")
    try:
        meta = json.loads(header["dbank"])
    except (KeyError, ValueError):
        raise FileRejected(f"{path.name}: a safetensors file without dbank metadata") from None
    except RecursionError:  # JSON nested thousands deep
        raise FileRejected(f"{path.name}: its dbank metadata is nested too deeply") from None
    if not isinstance(meta, dict):
        raise FileRejected(f"{path.name}: its dbank metadata is not a JSON object")
    kind = {v: k for k, v in FORMATS.items()}.get(meta.get("format")) if isinstance(meta.get("format"), str) else None
    if kind is None:
        raise FileRejected(f"{path.name}: unknown format {meta.get('format')!r:.60}")
    version = meta.get("format_version")
    if type(version) is not int or version < 1:
        raise FileRejected(f"{path.name}: format version {version!r:.60} is not a version number (1, 2, ...)")
    if version > FORMAT_VERSION:
        raise FileRejected(
            f"{path.name}: format version {meta.get('format_version')!r} is newer than this dbank "
            f"reads ({FORMAT_VERSION}); upgrade dbank"
        )
    return {**meta, "kind": kind}


def check_values(path: Path, name: str, tensor: np.ndarray, variance: bool = False) -> None:
    """Refuse a tensor with NaN or infinite values, or values past MAX_ABS_VALUE (for a
    `variance`, non-negative and at most MAX_ABS_VALUE squared)."""
    if not np.isfinite(tensor).all():
        raise FileRejected(f"{path.name}: tensor {name!r} holds NaN or infinite values")
    low, high = (0.0, MAX_ABS_VALUE**2) if variance else (-MAX_ABS_VALUE, MAX_ABS_VALUE)
    if tensor.size and (float(tensor.min()) < low or float(tensor.max()) > high):
        raise FileRejected(
            f"{path.name}: tensor {name!r} holds values from {float(tensor.min()):.3g} to {float(tensor.max()):.3g}, "
            f"outside [{low:g}, {high:g}]: not an embedding {'spread' if variance else 'mean'}"
        )


def _check_tensor(path: Path, name: str, tensor: np.ndarray, shape: tuple[int, ...]) -> None:
    if tensor.shape != shape:
        raise FileRejected(f"{path.name}: tensor {name!r} has shape {list(tensor.shape)}, expected {list(shape)}")
    if name.startswith("m2"):  # a sum over the sentences: its size is checked against the count on import
        if not np.isfinite(tensor).all() or (tensor < 0).any():
            raise FileRejected(f"{path.name}: tensor {name!r} holds NaN, infinite or negative values")
    else:
        check_values(path, name, tensor)


def _read_dbank(path: Path) -> SharedFile:
    from safetensors.numpy import load_file

    from direction_bank.sharing.file_metadata import validate_metadata

    meta = read_metadata(path)
    kind = meta["kind"]
    validate_metadata(path.name, kind, meta)
    try:
        tensors = load_file(str(path))
    except Exception:
        raise FileRejected(f"{path.name}: truncated or damaged tensor data") from None
    names = set(tensors)
    pooled = meta["encoder"].get("pooled_size") or 0
    if pooled and meta["format_version"] < POOLED_FORMAT_VERSION:
        raise FileRejected(f"{path.name}: pooled parts (SDXL) in a format version 1 file, which cannot hold them")
    required, optional = tensor_names(kind, bool(pooled))
    if not required <= names or not names <= required | optional:
        raise FileRejected(
            f"{path.name}: {'an SDXL' if pooled else 'a'} {kind} file holds {sorted(required)}"
            f" (and optionally {sorted(optional)}), not {sorted(names)}"
        )
    row = (meta["encoder"]["max_length"], meta["encoder"]["hidden_size"])
    for name, tensor in tensors.items():
        if tensor.dtype != np.float32:
            raise FileRejected(f"{path.name}: tensor {name!r} is {tensor.dtype}, expected float32")
        shape = (pooled,) if name.endswith(POOLED) else row
        _check_tensor(path, name, tensor, (1, *shape) if name.startswith("direction") else shape)
        if tensor_sha256(tensor) != meta.get("tensors", {}).get(name, {}).get("sha256"):
            raise FileRejected(f"{path.name}: tensor {name!r} does not match its SHA-256 (altered or damaged)")
    return SharedFile(path, kind, tensors, meta, file_sha256(path))


def _read_pix2pix_zero(path: Path) -> SharedFile:
    import pickle

    import torch

    try:
        # weights_only: tensors and plain containers only, so a pickle carrying code is refused
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise FileRejected(
            f"{path.name}: refused: its pickle holds objects other than tensors (it could run code)"
        ) from None
    except Exception:
        raise FileRejected(f"{path.name}: empty, truncated or not a PyTorch tensor file") from None
    if not isinstance(loaded, torch.Tensor):
        raise FileRejected(f"{path.name}: expected a bare tensor [1, 77, D], found {type(loaded).__name__}")
    if loaded.layout != torch.strided or loaded.is_meta or loaded.is_nested:
        raise FileRejected(f"{path.name}: a {loaded.layout} tensor; expected a dense tensor [1, 77, D]")
    if loaded.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        raise FileRejected(f"{path.name}: tensor of {loaded.dtype}, expected floating point")
    tensor = loaded.float().numpy()
    if tensor.ndim == 3 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tensor.ndim != 2:
        raise FileRejected(f"{path.name}: tensor of shape {list(loaded.shape)}, expected [1, 77, D]")
    if tensor.shape[0] == 0 or tensor.shape[1] == 0:
        raise FileRejected(f"{path.name}: an empty tensor of shape {list(loaded.shape)}, expected [1, 77, D]")
    _check_tensor(path, "mean", tensor, tensor.shape)
    return SharedFile(path, "p2p-zero", {"mean": tensor}, {"dtype": str(loaded.dtype)}, file_sha256(path))


def read_direction_file(path: str | os.PathLike) -> SharedFile:
    """A validated dbank direction file (read_shared_file); one line when it holds something else."""
    shared = read_shared_file(path)
    if shared.kind != "direction":
        raise BankError(f"{path}: a {shared.kind} file, not a direction")
    return shared


def read_shared_file(path: str | os.PathLike) -> SharedFile:
    """A validated dbank file (.safetensors) or pix2pix-zero concept mean (anything else)."""
    path = Path(path)
    if not path.is_file():
        raise FileRejected(f"no file at {path}" if not path.exists() else f"{path} is a directory, not a file"
                           if path.is_dir() else f"{path} is not a regular file")
    kind = "dbank" if path.suffix == ".safetensors" else "pix2pix-zero"
    if path.stat().st_size > MAX_FILE_BYTES[kind]:
        raise FileRejected(f"{path.name}: over {MAX_FILE_BYTES[kind] >> 20} MiB, too large for a {kind} file")
    return _read_dbank(path) if kind == "dbank" else _read_pix2pix_zero(path)
