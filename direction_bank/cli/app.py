"""The `dbank` group: the error boundary, the shared options and the helpers every command uses
(open the bank, load the encoder, print). Commands live in the sibling modules, by concern."""
from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING

import click

from direction_bank import __version__
from direction_bank.text.encoder import DEFAULT_MODEL
from direction_bank.errors import BankError, first_line
from direction_bank.progress import interactive
from editor.pipeline import Cancelled, EditorError
from sd_models.precision import DTYPES

if TYPE_CHECKING:
    from direction_bank.bank import Bank

DEBUG_HINT = "run with --debug for the traceback"


def _database_error(error: Exception) -> bool:
    """Whether `error` is the database's (SQLAlchemy's OperationalError or DatabaseError); SQLAlchemy
    is imported only by commands that open a bank, so any other command has none to raise."""
    exc = sys.modules.get("sqlalchemy.exc")
    return exc is not None and isinstance(error, (exc.OperationalError, exc.DatabaseError))


def _database_message(error: Exception) -> str:
    reason = first_line(getattr(error, "orig", error))
    if "locked" in reason or "busy" in reason:
        return "the bank is locked by another process (it waited DBANK_BUSY_TIMEOUT seconds); try again"
    if "not a database" in reason:
        return "the bank file is not a dbank database (SQLite says: file is not a database)"
    if "unable to open" in reason:
        return "cannot open the bank file (check the path and its permissions)"
    if "readonly" in reason or "read-only" in reason:
        return "the bank is read-only here (check the file's and its folder's permissions)"
    return f"database error: {reason}"


def _debugging() -> bool:
    return os.environ.get("DBANK_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


class _Stopped(click.ClickException):
    """A job stopped by the first Ctrl-C at a step of its model loop (exit 130, as an interrupt)."""

    exit_code = 130


def cancel_on_ctrl_c(editor) -> None:
    """Until the command ends, the first Ctrl-C stops the editor's model loop at its next step
    (the path the studio's Cancel takes: nothing of the unfinished job is written, what finished
    is kept); a second quits at once."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def stop(signum, frame):
        if editor.cancel.is_set():
            raise KeyboardInterrupt
        editor.cancel.set()
        print("stopping at the next step (Ctrl-C again quits at once)", file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGINT, stop)
    context = click.get_current_context(silent=True)
    if context is not None:
        context.call_on_close(lambda: signal.signal(signal.SIGINT, previous))


class BankGroup(click.Group):
    """The one error boundary of the CLI. Known errors (the bank's, the editor's, the database's,
    bad text) are one line and exit 1; usage errors one line and exit 2; anything else is one
    line naming the exception, unless --debug / DBANK_DEBUG=1 asks for the traceback (the test
    suite sets it, so bugs are never hidden from it)."""

    # the modules whose commands register themselves on the group, with the commands each holds:
    # a command's lookup imports its own module alone (`dbank concepts` loads no editor options),
    # a listing imports them all, and `dbank --version` none
    COMMAND_MODULES = {
        "concepts": ("add-concept", "concepts", "generators", "remove", "remove-sentence", "sentences"),
        "demo": ("demo-model",),
        "directions": ("diff", "direction", "export", "import", "publish", "show", "similar"),
        "editing": ("edit", "generate-edit", "sweep"),
        "evaluation": ("eval", "tune"),
        "studio": ("studio",),
        "team": ("add-concepts", "backup", "check", "queue"),
        "trash": ("restore", "trash"),
    }

    def _register_commands(self, name: str | None = None) -> None:
        import importlib

        holding = [module for module, names in self.COMMAND_MODULES.items() if name in names]
        for module in holding or self.COMMAND_MODULES:
            importlib.import_module(f"direction_bank.cli.{module}")

    def list_commands(self, ctx):
        """Every command's name (their modules imported first)."""
        self._register_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx, cmd_name):
        """The command named `cmd_name` (its module imported first; every module for a name no
        module holds, so a typo still gets click's suggestions)."""
        if cmd_name not in self.commands:
            self._register_commands(cmd_name)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except Cancelled as error:
            raise _Stopped(first_line(error)) from None
        except (BankError, EditorError) as error:
            raise click.ClickException(first_line(error)) from None
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit, KeyboardInterrupt):
            raise
        except BrokenPipeError:
            # the reader went away (`dbank sentences x | head`): nothing left to say
            sys.stderr = open(os.devnull, "w")
            raise SystemExit(1) from None
        except Exception as error:
            if _database_error(error):
                raise click.ClickException(_database_message(error)) from None
            if _debugging():
                raise
            raise click.ClickException(
                f"unexpected {type(error).__name__}: {first_line(error)} ({DEBUG_HINT})"
            ) from None

    def main(self, args=None, prog_name=None, **extra):
        """Run the command; every error that reaches here is printed on one line."""
        try:
            return super().main(args=args, prog_name=prog_name, standalone_mode=False, **extra)
        except click.exceptions.Exit as done:
            sys.exit(done.exit_code)
        except click.UsageError as error:
            command = " ".join(["dbank", *(error.ctx.command_path.split()[1:] if error.ctx else [])])
            click.echo(f"Error: {first_line(error.format_message())} (see {command} --help)", err=True)
            sys.exit(error.exit_code)
        except click.ClickException as error:
            click.echo(f"Error: {first_line(error.format_message())}", err=True)
            sys.exit(error.exit_code)
        except (click.Abort, KeyboardInterrupt):
            click.echo("Error: interrupted; what was committed is kept", err=True)
            sys.exit(130)


def emit(as_json: bool, data, text_lines) -> None:
    """Print data() as JSON, or the text_lines() for a person (only the one asked for is built)."""
    if as_json:
        click.echo(json.dumps(data(), indent=2, default=str))
    else:
        lines = list(text_lines())
        if lines:
            click.echo("\n".join(lines))


def open_bank(ctx, *, create: bool = False, read_only: bool = False) -> Bank:
    """The bank named by -d/DBANK_DB, closed with the command. A read-only command opens with
    read_only=True: it never creates or changes the file."""
    from direction_bank.bank import Bank

    bank = Bank(ctx.obj["database"], create=create, read_only=read_only)
    ctx.call_on_close(bank.close)
    return bank


def quiet_third_parties() -> None:
    """Keep the libraries' own progress bars, warnings and retry chatter off a stderr that no
    person watches: environment variables for libraries not imported yet, their switches for
    those already imported (nothing is imported for it)."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    watched = interactive()
    if not watched:
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for name in ("transformers.utils.logging", "diffusers.utils.logging"):
        module = sys.modules.get(name)
        if module is not None:
            module.set_verbosity_error()
            if not watched:
                module.disable_progress_bar()
    hub = sys.modules.get("huggingface_hub.utils")
    if hub is not None and not watched:
        hub.disable_progress_bars()


def require_encoder(model: str) -> None:
    """Fail in one line, without loading anything, when the text encoder `model` cannot be had."""
    from direction_bank.model_check import require_model

    require_model(model, "the Stable Diffusion text encoder",
                  "set --model or DBANK_MODEL to a local folder with text_encoder/ and tokenizer/")


def require_sd_model(model: str) -> None:
    """Fail in one line, without loading anything, when the whole Stable Diffusion `model` cannot be had."""
    from direction_bank.model_check import require_model

    require_model(model, "the Stable Diffusion model", "set --model or DBANK_MODEL to a local diffusers folder")


def load_encoder(model: str, device: str | None, dtype: str):
    """The bank's text encoder for `model` (one line when it cannot be loaded)."""
    import transformers.utils.logging  # noqa: F401  (so that it can be quietened)

    from direction_bank.text.encoder import TextEncoder

    require_encoder(model)
    quiet_third_parties()
    return TextEncoder.load(model, device=device, dtype=dtype)


def default_model(database: str | None) -> str:
    """The model a command uses when neither --model nor DBANK_MODEL names one: the text encoder
    of the bank when it holds exactly one, else SD 1.5. Never creates a bank."""
    from sqlalchemy.exc import SQLAlchemyError

    from direction_bank.bank import Bank

    try:
        with Bank(database, create=False, read_only=True) as bank:
            encoders = bank.encoders()
    except (BankError, SQLAlchemyError):
        return DEFAULT_MODEL
    return encoders[0].model if len(encoders) == 1 else DEFAULT_MODEL


def _model_or_default(ctx, param, value):
    return value or default_model((ctx.obj or {}).get("database"))


def model_option(what: str):
    """--model (env DBANK_MODEL), defaulting to the bank's only encoder, else SD 1.5; `what` says
    what the command loads of it."""
    return click.option(
        "--model", envvar="DBANK_MODEL", default=None, callback=_model_or_default,
        help=f"Stable Diffusion model id or folder: {what} (env DBANK_MODEL; default: the bank's text "
             f"encoder when it holds exactly one, else {DEFAULT_MODEL}).")


encoder_model_option = model_option("its text encoder embeds sentences")
sd_model_option = model_option("the whole pipeline is loaded")
vae_option = click.option("--vae", envvar="DBANK_VAE", default=None,
                          help="Another VAE (id or folder) in the model's dtype, e.g. an fp16-safe SDXL VAE "
                               "(default: the model's own; SDXL's runs in fp32 under fp16) (env DBANK_VAE).")
device_options = [
    click.option("--device", default=None, help="torch device (default: cuda if available, else cpu)."),
    click.option(
        "--dtype",
        type=click.Choice(DTYPES),
        default="auto",
        show_default=True,
        help="Precision of the models loaded: auto is fp16 on CUDA, fp32 on CPU.",
    ),
]
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
overwrite_option = click.option("--overwrite", is_flag=True, help="Replace output files that exist.")


def eval_model_options(func):
    """--clip-model and --dino-model (shared by eval and tune)."""
    from editor.evaluation import DEFAULT_CLIP, DEFAULT_DINO

    func = click.option("--dino-model", envvar="DBANK_DINO_MODEL", default=DEFAULT_DINO, show_default=True,
                        help="DINO-ViT for the structure distance (id, folder or cache) [env DBANK_DINO_MODEL].")(func)
    return click.option("--clip-model", envvar="DBANK_CLIP_MODEL", default=DEFAULT_CLIP, show_default=True,
                        help="CLIP for directional similarity and accuracy [env DBANK_CLIP_MODEL].")(func)


def with_device(func):
    """Add --device and --dtype to a command."""
    for option in reversed(device_options):
        func = option(func)
    return func


@click.group(cls=BankGroup)
@click.version_option(__version__, prog_name="dbank")
@click.option(
    "-d",
    "--database",
    envvar="DBANK_DB",
    default=None,
    help="Bank file path or SQLAlchemy URL (env DBANK_DB; default: bank.db in the user data dir).",
)
@click.option("--debug", is_flag=True, help="Show the traceback of an unexpected error (env DBANK_DEBUG=1).")
@click.pass_context
def cli(ctx, database, debug):
    """A bank of reusable pix2pix-zero edit directions for Stable Diffusion."""
    if debug:
        os.environ["DBANK_DEBUG"] = "1"
    quiet_third_parties()
    ctx.ensure_object(dict)
    ctx.obj["database"] = database


def warn_of_lookalike(bank: Bank, kind: str, name: str) -> None:
    """A warning on stderr when a new name differs from one in the bank only by look-alike
    characters (a Cyrillic а for a Latin a): two names a person cannot tell apart."""
    if bank.name_in_use(kind, name):
        return
    other = bank.lookalike(kind, name)
    if other is not None:
        odd = ", ".join(f"U+{ord(c):04X}" for c in name if c not in other)
        click.echo(f"warning: the new {kind} {name!r} looks like the existing {other!r} "
                   f"(look-alike characters: {odd}); is it meant to be another one?", err=True)
