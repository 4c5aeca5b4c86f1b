"""Directions and concepts from the Hugging Face Hub (#34): `hf://OWNER/REPO/PATH` or
`hf://OWNER/REPO@REVISION/PATH` fetched through huggingface_hub.hf_hub_download (its cache and
offline mode included), then checked exactly as a local file is; `hf://OWNER/REPO[@REVISION]`
(a whole repo) through snapshot_download, each direction-like file (.safetensors, .pt) in turn.
The import keeps where each came from (repo, the commit the revision resolved to, the path)."""
from __future__ import annotations

import contextlib
import re
from pathlib import Path

from direction_bank.errors import BankError

PREFIX = "hf://"
_URL = re.compile(r"hf://(?P<repo>[\w.-]+/[\w.-]+)(?:@(?P<revision>[\w./-]+?))?/(?P<path>[^\0]+)$")
_REPO_URL = re.compile(r"hf://(?P<repo>[\w.-]+/[\w.-]+)(?:@(?P<revision>[\w.-]+))?/?$")
SHARED_SUFFIXES = (".safetensors", ".pt")  # what a repo's import looks at: dbank files and pix2pix-zero means


def is_hub_url(text: str) -> bool:
    """Whether an import argument names a file on the Hub rather than on disk."""
    return str(text).startswith(PREFIX)


def is_hub_repo(text: str) -> bool:
    """Whether an hf:// address names a whole repo (hf://OWNER/REPO[@REVISION]), not one file."""
    return _REPO_URL.match(str(text)) is not None


def parse_hub_url(text: str) -> tuple[str, str | None, str]:
    """(repo id, revision or None, path in the repo) of hf://OWNER/REPO[@REVISION]/PATH; one line
    when it is not one."""
    found = _URL.match(str(text))
    if not found or ".." in found["path"].split("/"):
        raise BankError(f"{text!r}: give hf://OWNER/REPO/PATH or hf://OWNER/REPO@REVISION/PATH "
                        "(a file in a Hugging Face model repo)")
    return found["repo"], found["revision"], found["path"]


@contextlib.contextmanager
def _one_line(text: str, repo: str, revision: str | None, path: str | None = None):
    """The Hub's errors on fetching `text` as dbank's one line."""
    from huggingface_hub.errors import (
        EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError,
    )

    try:
        yield
    except LocalEntryNotFoundError:
        raise BankError(f"{text}: not in the Hugging Face cache, and the Hub cannot be reached (offline, or "
                        "HF_HUB_OFFLINE=1): connect once to download it") from None
    except RevisionNotFoundError:
        raise BankError(f"{text}: the repo {repo} has no revision {revision!r}") from None
    except EntryNotFoundError:
        raise BankError(f"{text}: the repo {repo} holds no file {path!r}") from None
    except RepositoryNotFoundError:
        raise BankError(f"{text}: no model repo {repo} on the Hub (or it is private: log in with hf auth "
                        "login)") from None


def fetch_repo(text: str) -> list[tuple[Path, dict]]:
    """(local file, provenance) of each .safetensors and .pt file of the repo hf://OWNER/REPO
    [@REVISION], in path order, through the Hub's cache (offline: the snapshot cached there);
    one line when the repo cannot be had or holds no such file."""
    from huggingface_hub import snapshot_download

    found = _REPO_URL.match(str(text))
    if not found:
        raise BankError(f"{text!r}: give hf://OWNER/REPO or hf://OWNER/REPO@REVISION (a Hugging Face model repo)")
    repo, revision = found["repo"], found["revision"]
    with _one_line(text, repo, revision):
        folder = Path(snapshot_download(repo, revision=revision, allow_patterns=[f"*{s}" for s in SHARED_SUFFIXES]))
    commit = folder.name if folder.parent.name == "snapshots" else revision
    files = sorted(item for item in folder.rglob("*") if item.suffix in SHARED_SUFFIXES and item.is_file())
    if not files:
        raise BankError(f"{text}: the repo holds no .safetensors or .pt file")
    return [(item, {"hub": repo, "revision": commit, "path": item.relative_to(folder).as_posix()}) for item in files]


def fetch(text: str) -> tuple[Path, dict]:
    """(the local file, its provenance {"hub", "revision", "path"}) of an hf:// URL, through the
    Hub's cache; one line when it cannot be had (offline and not cached, no such repo or file)."""
    from huggingface_hub import hf_hub_download

    repo, revision, path = parse_hub_url(text)
    with _one_line(text, repo, revision, path):
        local = Path(hf_hub_download(repo, path, revision=revision))
    snapshot = local.parents[len(Path(path).parts) - 1]  # the cache's snapshots/COMMIT folder
    commit = snapshot.name if snapshot.parent.name == "snapshots" else revision
    return local, {"hub": repo, "revision": commit, "path": path}
