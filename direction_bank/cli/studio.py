"""`dbank studio`: serve the Gradio page (extra [studio]) over this bank and one model."""
from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import click

from direction_bank.cli.app import (
    cli, eval_model_options, require_sd_model, sd_model_option, vae_option, with_device,
)
from direction_bank.errors import BankError

LOOPBACK = "127.0.0.1"


def _auth(value: str | None) -> tuple[str, str] | None:
    if value is None:
        return None
    user, colon, password = value.partition(":")
    if not colon or not user or not password:
        raise click.BadParameter("give USER:PASSWORD, both non-empty", param_hint="--auth")
    return user, password


def _host(value: str) -> tuple[str, str]:
    """(the bare address to bind and check, the form Gradio serves: an IPv6 address in
    brackets, so its URL is http://[::1]:PORT/); an empty host is a usage error."""
    bare = value.strip()
    if bare.startswith("[") and bare.endswith("]"):
        bare = bare[1:-1]
    if not bare or any(c.isspace() or c in "[]/@" for c in bare):
        raise click.BadParameter(f"{value!r}: give an address or host name to serve on (127.0.0.1, ::1, "
                                 "0.0.0.0, ::)", param_hint="--host")
    try:
        version = ipaddress.ip_address(bare).version
    except ValueError:  # a host name, such as localhost
        version = 4
    return bare, f"[{bare}]" if version == 6 else bare


def _check_address(host: str, port: int) -> None:
    """One line, before Gradio loads, when host:port cannot be served (not this machine's
    address, or the port taken)."""
    import socket

    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((host, port))
    except (OSError, UnicodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise BankError(f"cannot serve the studio on {host}:{port} ({reason}); choose another --host or --port") from None


def _temporary_folder() -> Path:
    """The server's own temporary folder (downloads, Gradio's upload copies), removed when it
    exits: cleanly, on Ctrl-C (SIGINT) or on SIGTERM, which exits as SIGINT does."""
    import atexit
    import shutil
    import signal
    import sys
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="dbank-studio-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    return folder


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@cli.command("studio")
@click.option("--host", default=LOOPBACK, show_default=True,
              help="Interface to serve on; anything but loopback lets other machines in (a warning is printed).")
@click.option("--port", type=click.IntRange(1, 65535), default=7860, show_default=True, help="Port to listen on.")
@click.option("--auth", "auth_text", envvar="DBANK_STUDIO_AUTH", default=None, metavar="USER:PASSWORD",
              help="Ask for this user and password (env DBANK_STUDIO_AUTH).")
@click.option("--caption-model", default="Salesforce/blip-image-captioning-base", show_default=True,
              help="BLIP model that suggests captions.")
@click.option("--llm", "llms", multiple=True,
              help="A sentence model visitors may choose when adding a concept (repeatable; without it, "
              "only each generator's default). Visitors can name no other path or model id.")
@eval_model_options
@sd_model_option
@vae_option
@with_device
@click.pass_context
def studio(ctx, host, port, auth_text, caption_model, llms, dino_model, clip_model, model, vae, device, dtype):
    """Serve the studio: the bank's concepts and directions, and edits of uploaded or generated
    images, in a browser. One model is loaded (on first use) and kept; model work runs one job
    at a time. Edits are scored (and directions can be tuned) when the CLIP and DINO models can
    be had. Works offline: no CDN, no analytics, no update checks."""
    auth = _auth(auth_text)
    host, served = _host(host)
    _check_address(host, port)
    work = _temporary_folder()
    try:
        from direction_bank.studio.server import offline_environment

        offline_environment()
        os.environ["GRADIO_TEMP_DIR"] = str(work / "uploads")  # read when gradio is imported
        import gradio  # noqa: F401
    except ImportError:
        raise BankError("the studio needs Gradio: pip install 'dbank[studio]'") from None
    from direction_bank.studio.actions import StudioActions
    from direction_bank.studio.app import serve

    require_sd_model(model)
    if not _is_loopback(host):
        click.echo(f"warning: serving on {host}: other machines can reach the studio"
                   + ("" if auth else " and change the bank (no --auth given)"), err=True)
    actions = StudioActions(ctx.obj["database"], model, device, dtype, caption_model, vae=vae, llms=llms,
                            clip_model=clip_model, dino_model=dino_model, work_dir=work / "downloads")
    actions.bank(read_only=False).close()  # make (or check) the bank before the page comes up
    serve(actions, served, port, auth, loopback=_is_loopback(host))
