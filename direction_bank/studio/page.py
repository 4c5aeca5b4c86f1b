"""What every tab's events share: errors shown as one line, the visitor an event runs for, the
path of an upload, and progress reported to the page."""
from __future__ import annotations

import functools
import logging

from direction_bank.errors import BankError, first_line
from direction_bank.studio.session import VISITOR
from direction_bank.studio.words import page_words, status_line
from editor.pipeline import EditorError

log = logging.getLogger("dbank.studio")


def shown_errors(handler):
    """Known errors as a one-line gr.Error; anything else too, with the traceback in the log."""
    import gradio as gr

    @functools.wraps(handler)
    def wrapper(*args, **kwargs):
        try:
            return handler(*args, **kwargs)
        except (BankError, EditorError) as error:
            raise gr.Error(page_words(first_line(error)), print_exception=False) from None
        except gr.Error:
            raise
        except Exception as error:
            log.exception("studio handler %s failed", handler.__name__)
            raise gr.Error(f"unexpected {type(error).__name__}: {first_line(error)}", print_exception=False) from None

    return wrapper


def visit(request) -> None:
    """Run the rest of this event as the visitor (Gradio's session) that sent `request`: a job
    remembers who started it, and only they may cancel it (actions.VISITOR)."""
    VISITOR.set(getattr(request, "session_hash", None) or "")


def path_of(upload) -> str:
    """The server path of an uploaded or generated file as an event without Gradio's
    preprocessing receives it (FileData, after Gradio's own check that the file is its upload or
    one of this page's files); "" when there is none. Such events check their inputs themselves,
    so a file that is not an image, or a number that is not one, is dbank's one line, not
    Gradio's multi-line preprocessing error."""
    if isinstance(upload, dict):
        return str(upload.get("path") or "")
    return ""


def reporter(progress):
    """report(fraction, text) for a job, shown on the page's progress bar."""
    return lambda fraction, text: progress(fraction, desc=text)


def on_button(button, handler, inputs, outputs: list, line, *, api_name: str, listing: dict | None = None,
              event: str = "click", **options) -> None:
    """`handler` run by the page's `button` (its `event`: a click, or a file's upload), and as the
    API endpoint `api_name` (a hidden twin).

    On the page a mistake (a BankError or EditorError: one line, in the page's words) changes
    nothing but `line`, the status line beside the button (announced to screen readers), which
    says why; nothing else on the page moves, and no output turns into an error pill. Success
    clears `line` (unless it is one of `outputs`) and refreshes the lists (`listing`, app.refresh's
    event). Through the API a mistake is still the client's error (shown_errors)."""
    import gradio as gr

    outputs = list(outputs)
    shown = outputs if line in outputs else [*outputs, line]
    said = (lambda text: status_line(text)) if isinstance(line, gr.Markdown) else (lambda text: text)
    done = gr.State(False)

    @functools.wraps(handler)
    def page(*args, **kwargs):
        try:
            result = handler(*args, **kwargs)
        except (BankError, EditorError) as error:
            mistake = said(page_words(first_line(error)))
            return *[mistake if output is line else gr.skip() for output in shown], False
        except Exception as error:
            log.exception("studio handler %s failed", handler.__name__)
            failed = said(f"failed: unexpected {type(error).__name__} (the server log has the details)")
            return *[failed if output is line else gr.skip() for output in shown], False
        values = list(result) if isinstance(result, tuple) else [result]
        return *values, *([] if line in outputs else [""]), True

    ran = getattr(button, event)(page, inputs, [*shown, done], api_name=False, **options)
    if listing is not None:
        refresh = listing["fn"]

        def refreshed(succeeded, *chosen):
            return refresh(*chosen) if succeeded else tuple(gr.skip() for _ in listing["outputs"])

        ran.then(refreshed, [done, *listing["inputs"]], listing["outputs"], api_name=False)
    twin = gr.Button(visible=False)
    twin.click(shown_errors(handler), inputs, outputs, api_name=api_name, **options)
