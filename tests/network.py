"""Running a test's subprocess with no network but loopback, so that nothing it (or a library
under it: the Hub, Ray) does can reach another address."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[2] / "shared" / "tools" / "loopback-only"


def loopback_only() -> list[str]:
    """The command prefix that runs a command in a loopback-only network namespace: the
    workplace's tool, or the same by hand; skips the test where neither works."""
    prefix = [str(TOOL)] if TOOL.exists() else ["unshare", "-n", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "-"]
    try:
        works = subprocess.run([*prefix, "true"], capture_output=True).returncode == 0
    except OSError:
        works = False
    if not works:
        pytest.skip("needs a loopback-only network namespace (root or user namespaces) to cut the network")
    return prefix
