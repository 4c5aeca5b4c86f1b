"""Text files given by the user (sentences, concept lists), read strictly: UTF-8, no binary, a
bounded size, standard input when named '-'. Every failure is one line."""
from __future__ import annotations

import sys
from pathlib import Path

from direction_bank.errors import BankError

MAX_TEXT_BYTES = 64 << 20


def read_text(source: str) -> str:
    """The text of the file `source` ('-' for standard input), or a one-line BankError when it
    cannot be read, is not UTF-8 text, holds NUL bytes or is over MAX_TEXT_BYTES."""
    label = "standard input" if source == "-" else source
    try:
        if source == "-":
            stream = getattr(sys.stdin, "buffer", None)
            if stream is None or stream.closed:
                raise BankError("standard input is closed; give a file, or pipe the sentences in")
            data = stream.read(MAX_TEXT_BYTES + 1)
        else:
            path = Path(source)
            if path.is_dir():
                raise BankError(f"{source} is a folder, not a text file")
            if path.exists() and not path.is_file() and path.is_char_device():
                raise BankError(f"{source} is a device, not a text file")
            with open(path, "rb") as handle:
                data = handle.read(MAX_TEXT_BYTES + 1)
    except FileNotFoundError:
        raise BankError(f"no file at {source}") from None
    except (OSError, ValueError) as error:  # ValueError: a closed stream
        raise BankError(f"cannot read {label} ({type(error).__name__}: {error})") from None
    if len(data) > MAX_TEXT_BYTES:
        raise BankError(f"{label} is over {MAX_TEXT_BYTES >> 20} MiB; split it")
    if b"\x00" in data:
        raise BankError(f"{label} holds NUL bytes: a binary file, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise BankError(f"{label} is not UTF-8 text (byte {data[error.start]:#04x} at offset {error.start})") from None
