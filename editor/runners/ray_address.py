"""Checks before Ray is used: that it is installed, and that a cluster's address answers (an
address where nothing answers is one line within a bounded time; Ray itself would keep
retrying for minutes)."""
from __future__ import annotations

import socket

from editor.pipeline import EditorError

RAY_CLIENT_PORT = 10001  # ray://HOST without a port
GCS_PORT = 6379  # HOST without a port


def check_ray_installed() -> None:
    """Refuse, in one line with the install command, when Ray Data is not installed."""
    import importlib.util

    try:
        found = importlib.util.find_spec("ray.data") is not None
    except (ImportError, ValueError):  # ray itself missing, or hidden
        found = False
    if not found:
        raise EditorError("--engine ray needs Ray Data, which is not installed: pip install 'dbank[ray]'")


def check_ray_address(address: str, timeout_s: float) -> None:
    """Refuse, in one line, an address whose host and port take no connection within
    `timeout_s` seconds. 'auto' (a cluster this machine knows of) is left to Ray."""
    if address == "auto":
        return
    client = address.startswith("ray://")
    if client:
        try:
            import grpc  # noqa: F401  (what ray[client] adds to ray[data])
        except ImportError:
            raise EditorError(f"--address {address}: a ray:// address needs Ray's client: "
                              "pip install 'ray[client]'") from None
    where = address.removeprefix("ray://")
    if where.startswith("["):  # [IPv6]:PORT
        host, _, rest = where[1:].partition("]")
        port = rest.removeprefix(":")
    elif where.count(":") == 1:
        host, port = where.split(":")
    else:  # a bare host name or IPv6 address
        host, port = where, ""
    try:
        number = int(port) if port else (RAY_CLIENT_PORT if client else GCS_PORT)
    except ValueError:
        raise EditorError(f"--address {address!r}: expected HOST:PORT or ray://HOST:PORT") from None
    if not host or not 0 < number < 65536:
        raise EditorError(f"--address {address!r}: expected HOST:PORT or ray://HOST:PORT")
    try:
        with socket.create_connection((host, number), timeout=timeout_s):
            pass
    except OSError as error:
        if isinstance(error, TimeoutError) and error.errno is None:  # ours ran out, not the system's
            raise EditorError(f"no Ray cluster answered at {host}:{number} within {timeout_s:g} s "
                              "(--connect-timeout); is it running and reachable?") from None
        raise EditorError(f"no Ray cluster at {host}:{number} ({error.strerror or error}); start one with "
                          "'ray start --head', or leave out --address for a local one") from None
