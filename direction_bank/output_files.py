"""Writing the user's output files safely: atomically (a temporary file in the same folder, then a
rename), never over a symlink, a device, a FIFO or a folder, never over an existing file unless
asked, with the user's umask, and with a one-line error for a missing or unwritable folder."""
from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import Callable

from direction_bank.errors import BankError


class OutputRefused(BankError):
    """An output path that must not be written (it exists, or is not a regular file)."""


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "a symlink"), (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def check_output(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """The path, after checking that it may be written: its folder exists and is writable, and it
    is new, or a regular file and `overwrite` is set. Raises OutputRefused in one line."""
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise OutputRefused(f"cannot write {path}: no folder {folder}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputRefused(f"cannot write {path}: the folder {folder} is not writable")
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return path
    if not stat.S_ISREG(mode):
        raise OutputRefused(f"refusing to replace {path}: it is {_kind(mode)}, not a regular file")
    if not overwrite:
        raise OutputRefused(f"{path} exists; pass --overwrite to replace it")
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temporaries_of(path: Path) -> list[Path]:
    return list(path.parent.glob(f".{_glob_escape(path.name[:100])}.*.tmp"))


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def remove_stale_temporaries(paths) -> int:
    """Delete the temporary files a killed writer of these outputs left beside them (see
    write_output); returns how many."""
    count = 0
    for path in map(Path, paths):
        for temporary in _temporaries_of(path):
            temporary.unlink(missing_ok=True)
            count += 1
    return count


def write_output(path: str | os.PathLike, write: Callable[[Path], None], overwrite: bool = False) -> Path:
    """Call write(temporary path) and move the result to `path` atomically; the file gets the
    permissions a new file would (0666 less the umask). Without `overwrite`, an existing file is
    never replaced, even one that appears while writing."""
    path = check_output(path, overwrite)
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:100]}.", suffix=".tmp")
    except OSError as error:
        raise OutputRefused(f"cannot write {path}: {error.strerror or error}") from None
    os.close(handle)
    temporary = Path(temporary)
    try:
        write(temporary)
        os.chmod(temporary, 0o666 & ~_umask())
        if overwrite:
            check_output(path, overwrite)  # still not a symlink or special file
            os.replace(temporary, path)
        else:
            try:
                os.link(temporary, path)  # fails if the name was taken meanwhile: nothing replaced
            except FileExistsError:
                raise OutputRefused(f"{path} exists; pass --overwrite to replace it") from None
            except OSError as error:
                if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                    raise
                check_output(path)  # a file system without hard links: check, then rename
                os.replace(temporary, path)
    except OSError as error:
        raise OutputRefused(f"cannot write {path}: {error.strerror or error}") from None
    finally:
        temporary.unlink(missing_ok=True)
    return path
