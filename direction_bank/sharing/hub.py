"""Directions and concepts from the Hugging Face Hub (#34): `hf://OWNER/REPO/PATH` or
`hf://OWNER/REPO@REVISION/PATH` fetched through huggingface_hub.hf_hub_download (its cache and
offline mode included), then checked exactly as a local file is; the import keeps where it came
from (repo, the commit the revision resolved to, the path)."""
from __future__ import annotations

import re
from pathlib import Path

from direction_bank.errors import BankError

PREFIX = "hf://"
_URL = re.compile(r"hf://(?P<repo>[\w.-]+/[\w.-]+)(?:@(?P<revision>[\w./-]+?))?/(?P<path>[^\0]+)$")


def is_hub_url(text: str) -> bool:
    """Whether an import argument names a file on the Hub rather than on disk."""
    return str(text).startswith(PREFIX)


def parse_hub_url(text: str) -> tuple[str, str | None, str]:
    """(repo id, revision or None, path in the repo) of hf://OWNER/REPO[@REVISION]/PATH; one line
    when it is not one."""
    found = _URL.match(str(text))
    if not found or ".." in found["path"].split("/"):
        raise BankError(f"{text!r}: give hf://OWNER/REPO/PATH or hf://OWNER/REPO@REVISION/PATH "
                        "(a file in a Hugging Face model repo)")
    return found["repo"], found["revision"], found["path"]


def fetch(text: str) -> tuple[Path, dict]:
    """(the local file, its provenance {"hub", "revision", "path"}) of an hf:// URL, through the
    Hub's cache; one line when it cannot be had (offline and not cached, no such repo or file)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError,
    )

    repo, revision, path = parse_hub_url(text)
    try:
        local = Path(hf_hub_download(repo, path, revision=revision))
    except LocalEntryNotFoundError:
        raise BankError(f"{text}: not in the Hugging Face cache, and the Hub cannot be reached (offline, or "
                        "HF_HUB_OFFLINE=1): connect once to download it") from None
    except RevisionNotFoundError:
        raise BankError(f"{text}: the repo {repo} has no revision {revision!r}") from None
    except EntryNotFoundError:
        raise BankError(f"{text}: the repo {repo} holds no file {path!r}") from None
    except RepositoryNotFoundError:
        raise BankError(f"{text}: no model repo {repo} on the Hub (or it is private: log in with hf auth login)") from None
    snapshot = local.parents[len(Path(path).parts) - 1]  # the cache's snapshots/COMMIT folder
    commit = snapshot.name if snapshot.parent.name == "snapshots" else revision
    return local, {"hub": repo, "revision": commit, "path": path}
