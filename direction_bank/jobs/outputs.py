"""Writing a job's outputs: pictures and records, each safely (output_files.write_output: a
temporary file renamed into place, never silently over an existing one), and the output folder
made only once the work is about to start."""
from __future__ import annotations

from pathlib import Path

from direction_bank.errors import BankError


def write_pictures(pictures: dict, overwrite: bool) -> list[str]:
    """Write each PIL image (path -> picture) as PNG, safely (output_files.write_output), its
    labels in a text chunk; returns the paths written."""
    from direction_bank.output_files import write_output
    from editor.pictures import save_png

    written = []
    for path, picture in pictures.items():
        write_output(path, lambda temporary, picture=picture: save_png(picture, temporary), overwrite)
        written.append(str(path))
    return written


def write_record(path: Path, record, overwrite: bool) -> str:
    """Write an edit record safely (output_files.write_output); returns its path."""
    from direction_bank.output_files import write_output

    write_output(path, lambda temporary: temporary.write_text(record.as_json(), encoding="utf-8"), overwrite)
    return str(path)


def make_output_folder(out: Path) -> None:
    """Make an output folder (and its parents), or one line saying why it cannot be made."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise BankError(f"-o {out}: not a folder") from None
    except OSError as error:
        raise BankError(f"cannot make the folder {out}: {error.strerror or error}") from None
