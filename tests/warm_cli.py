"""A warm `dbank` for a test that runs many commands in a shell (the README's Tour).

One process imports torch, transformers, diffusers, SQLAlchemy and every command module once,
then forks a child for each command. A `dbank` placed first on PATH hands the child its
arguments, folder, environment and its own stdin, stdout and stderr, and exits with the child's
status. The child runs the console script's entry point (direction_bank.cli.main) from the
state a fresh interpreter reaches after those imports, so each command pays for its work and
not for about 7 s of imports. The parent only imports: no tensor work happens before a fork.

    python tests/warm_cli.py SOCKET   # prints "ready" when it takes commands
"""
from __future__ import annotations

import atexit
import gc
import json
import os
import socket
import subprocess
import sys
import traceback
from contextlib import contextmanager
from pathlib import Path

SHIM = """#!{python}
import json, os, socket, sys
link = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
link.connect({path!r})
request = {{"argv": sys.argv[1:], "cwd": os.getcwd(), "env": dict(os.environ)}}
socket.send_fds(link, [json.dumps(request).encode()], [0, 1, 2])
sys.exit(int(link.recv(16) or b"1"))
"""

PRELOAD = ("torch", "transformers", "diffusers", "sqlalchemy.orm", "matplotlib.pyplot", "PIL.Image",
           "safetensors.torch", "direction_bank.bank", "direction_bank.text.encoder", "editor.editor")
PRELOAD_ATTRIBUTES = {"transformers": ("CLIPTextModel", "CLIPTokenizer", "CLIPModel", "AutoModel",
                                       "AutoModelForCausalLM", "AutoTokenizer"),
                      "diffusers": ("UNet2DConditionModel", "AutoencoderKL", "DDIMScheduler")}


def _preload() -> None:
    import importlib

    import click

    for name in PRELOAD:
        importlib.import_module(name)
    for module, attributes in PRELOAD_ATTRIBUTES.items():
        for attribute in attributes:
            getattr(sys.modules[module], attribute)  # the lazy modules import the class's module
    from direction_bank.cli import cli

    cli.list_commands(click.Context(cli))  # every command module


def _child(request: dict, fds: list[int]) -> None:
    """In the forked child: become the command's process and run it as the console script
    would, exiting with its status."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    for fd in fds:
        if fd > 2:
            os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = ["dbank", *request["argv"]]
    from direction_bank.cli import main

    code = 0
    try:
        main()
    except SystemExit as done:  # as the interpreter reads it: a number, None, or a message
        code = done.code if isinstance(done.code, int) else 0 if done.code is None else 1
        if not isinstance(done.code, (int, type(None))):
            print(done.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        # the exit handlers and flushes of a normal exit, without tearing down every module
        # (a second or more for torch and transformers, and nothing a command relies on)
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve(path: str) -> None:
    """Take one command at a time on the Unix socket `path`, each run in a forked child."""
    _preload()
    gc.freeze()  # what the imports made stays out of the children's collections (and shared)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    listener.listen(4)
    print("ready", flush=True)
    while True:
        connection, _ = listener.accept()
        message, fds, _, _ = socket.recv_fds(connection, 1 << 20, 3)
        if not message or len(fds) != 3:
            connection.close()
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            listener.close()
            connection.close()
            _child(json.loads(message), fds)
        for fd in fds:
            os.close(fd)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        connection.send(str(code if code >= 0 else 128 - code).encode())  # killed by a signal: 128+N
        connection.close()


@contextmanager
def warm_dbank(folder: Path, env: dict):
    """A folder holding a warm `dbank` (to put first on PATH), served while the block runs."""
    folder.mkdir(parents=True, exist_ok=True)
    path = str(folder / "socket")
    server = subprocess.Popen([sys.executable, __file__, path], env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, text=True)
    try:
        if server.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the warm dbank did not start (exit {server.wait()})")
        shim = folder / "dbank"
        shim.write_text(SHIM.format(python=sys.executable, path=path))
        shim.chmod(0o755)
        yield folder
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    serve(sys.argv[1])
