"""The studio's page: Gradio Blocks laid over StudioActions (Bank, Directions and Edit tabs).
Every handler is a call into StudioActions; a BankError or EditorError shows as one line in the
page (and in gradio_client) instead of a traceback."""
from __future__ import annotations

import contextvars
import functools
import logging
import os
import sys

from direction_bank.errors import BankError, FieldError, first_line
from direction_bank.studio.actions import FOLDER_AGE_S, MAX_UPLOAD, VISITOR, StudioActions, scored_label
from editor.pipeline import EditorError

log = logging.getLogger("dbank.studio")

# system fonts only: Gradio's default theme fetches its fonts from Google
SANS = ["ui-sans-serif", "system-ui", "sans-serif"]
MONO = ["ui-monospace", "Consolas", "monospace"]


def _info() -> dict:
    """The help under each edit setting: what it does, the usual range, the allowed one."""
    from sd_models.settings import SETTING_BOUNDS as B

    return {
        "scale": "how far along the direction: 0 is no change, 1 the direction as saved; 0.5 to 2 is usual "
                 f"({B['scale'][0]:g} to {B['scale'][1]:g} allowed)",
        "xa_guidance": "how hard the edit keeps the photo's layout (its cross-attention maps); 0.05 to 0.2 is usual "
                       f"({B['xa_guidance'][0]:g} to {B['xa_guidance'][1]:g} allowed)",
        "guidance_scale": "how strongly the caption steers each step (classifier-free guidance); 3 to 7.5 is "
                          f"usual ({B['guidance_scale'][0]:g} to {B['guidance_scale'][1]:g} allowed)",
        "steps": "denoising steps of the inversion and the edit; 50 as in the paper, fewer is faster and rougher "
                 f"({B['steps'][0]} to {B['steps'][1]} allowed)",
        "size": "the longer side in pixels, a multiple of 8; the model's own size edits best (8 to 4096)",
        "seed": "the noise the inversion is regularised with; the same seed repeats an edit (0 to 4294967295)",
    }


INFO = _info()

# what the CLI's messages tell a user to pass, said with the page's controls
PAGE_WORDS = [
    (r"pass --caption, or set --caption-model to a local BLIP folder",
     "type a caption in the 'caption' box (BLIP, which writes one, cannot be loaded on this server)"),
    (r"set OPENAI_API_KEY, or point --base-url at an OpenAI-compatible server \(or use --generator local\)",
     "the server has no OpenAI key or server; choose 'local' or 'template' as the generator"),
    (r"; --overwrite stores this one as its next version and keeps the old one \(dbank direction history [^)]*\)",
     "; tick 'replace' to store this one as its next version (the old one is kept)"),
    (r"pass --name, or --overwrite to", "type another name in 'import as', or tick 'replace' to"),
    (r"\(dbank restore (\S+) --as NAME brings it back\)", r"(the Trash table below brings it back)"),
    (r"gives itself: pass --name\)", "gives itself: type another in 'import as')"),
    (r"\(restore it with --as NAME\)", "(type another name in 'restore as')"),
    (r"\(dbank direction rename ([^)]*)\)", "(the CLI's dbank direction rename renames it)"),
    (r"add both concepts with the same --model( \(none match --model [^)]*\))?",
     "this studio's model embeds concepts added here; add the other again"),
    (r"pick one with --model", "the CLI picks one with --model"),
    (r"use a smaller --size", "use a smaller 'size'"),
    (r"; set --llm\b", "; choose another LLM"),
    (r" \(--timeout\)| \(--deadline\)", ""),
]


def page_words(message: str) -> str:
    """A message of the bank or the editor as the page says it: its controls, not CLI flags."""
    import re

    for pattern, replacement in PAGE_WORDS:
        message = re.sub(pattern, replacement, message)
    return message


# the edit's inputs, in the order of the page's controls (the check marks the one at fault)
EDIT_FIELDS = ("image", "caption", "directions", "scale", "xa_guidance", "guidance_scale", "steps", "size", "seed",
               "attention_word", "use_tuned")
MAX_HISTORY = 48  # results of a session kept in the history strip


def status_line(message: str, notes=()) -> str:
    """The Markdown beside Run: the message and each note on its own line, as plain text."""
    import re

    lines = [message, *notes]
    return "  \n".join(re.sub(r"([\\`*_{}\[\]()#+!<>|~-])", r"\\\1", line) for line in lines if line)


def gallery_of(outcome) -> list:
    """(PNG path, caption with its scores) per picture of a studio edit, for the gallery."""
    return [(path, scored_label(label, outcome.scores.get(label))) for path, label in outcome.files]


def history_label(outcome) -> str:
    """A history entry's caption: the directions and the settings that tell it from the others."""
    _, names, scale, xa_guidance, _, _, _, seed, *_ = outcome.controls
    return f"{', '.join(names)} · scale {scale:g} · cross-attention {xa_guidance:g} · seed {seed}"


def before_after(files: list) -> tuple:
    """The slider's first pair of an edit's (path, caption) pictures: the input and the first edit."""
    return files[0][0], files[2][0]


def history_strip(kept: list) -> list:
    """(picture, caption) per history entry, oldest first: its first edit stands for it."""
    return [(entry["files"][2][0], f"{number}. {entry['label']}") for number, entry in enumerate(kept, 1)]


# status lines are announced to screen readers as they change (Gradio's Markdown and Textbox
# take no ARIA attributes; tabs mount their children when first shown, hence the observer)
PAGE_JS = """() => {
  const mark = () => document.querySelectorAll('[id$="-status"]').forEach((el) => {
    if (!el.hasAttribute('aria-live')) { el.setAttribute('role', 'status'); el.setAttribute('aria-live', 'polite'); }
  });
  mark();
  new MutationObserver(mark).observe(document.body, {childList: true, subtree: true});
}"""


def exportable(directions: list[str], concepts: list[str]) -> list[tuple[str, str]]:
    """The export list's (label, name) choices: each saved direction, then each concept that no
    direction's name hides, labelled with what it is."""
    return ([(f"{name} (direction)", name) for name in directions]
            + [(f"{name} (concept)", name) for name in concepts if name not in directions])


# after an upload Gradio swaps the drop area for the picture, and the focus would fall to the page;
# it goes to the photo's first control instead (keyboard and screen-reader users stay in place)
KEEP_FOCUS_JS = """(photo) => {
  setTimeout(() => { const control = document.querySelector('#photo button'); if (control) control.focus(); }, 300);
  return photo;
}"""


def offline_environment() -> None:
    """Gradio and the Hub make no calls of their own (analytics, update checks, telemetry); set
    before gradio is imported."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("GRADIO_DO_NOT_TRACK", "True")


def _shown(handler):
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


def _path_of(upload) -> str:
    """The server path of an uploaded or generated file as an event without Gradio's
    preprocessing receives it (FileData, after Gradio's own check that the file is its upload or
    one of this page's files); "" when there is none. Such events check their inputs themselves,
    so a file that is not an image, or a number that is not one, is dbank's one line, not
    Gradio's multi-line preprocessing error."""
    if isinstance(upload, dict):
        return str(upload.get("path") or "")
    return ""


def theme():
    """Gradio's default look with system fonts (nothing fetched from a CDN)."""
    import gradio as gr

    return gr.themes.Default(font=SANS, font_mono=MONO)


def build_app(actions: StudioActions, loopback: bool = True):
    """The studio's gr.Blocks. Model work (add, import, caption, generate, edit) runs one job at
    a time through the queue (concurrency id 'model'); reading the bank does not wait for it."""
    offline_environment()
    import gradio as gr

    def reporter(progress):
        return lambda fraction, text: progress(fraction, desc=text)

    @_shown
    def refresh(concept_value=None, source_value=None, target_value=None, chosen_value=None, plot_value=None,
                tune_value=None, export_value=None, compose_value=None):
        """Every table and list as the bank holds it now (changes from any tab, browser or the
        CLI); a chosen name the bank no longer holds is cleared."""
        concept_rows, direction_rows = actions.concepts_table(), actions.directions_table()
        concepts, directions = [row[0] for row in concept_rows], [row[0] for row in direction_rows]

        def listed(choices, value):
            values = [choice[1] if isinstance(choice, tuple) else choice for choice in choices]
            return gr.update(choices=choices, value=value if value in values else None)

        held = [name for name in chosen_value or [] if name in directions or "@" in name]
        return (concept_rows, direction_rows, *[listed(concepts, v) for v in (concept_value, source_value, target_value)],
                gr.update(choices=directions, value=held), listed(directions, plot_value),
                listed(directions, tune_value), listed(exportable(directions, concepts), export_value),
                actions.trash_table(), listed(directions, compose_value))

    @_shown
    def restore(entry_id, as_name):
        return actions.restore(entry_id, as_name)

    @_shown
    def show_sentences(concept):
        return actions.sentences_table(concept) if concept else []

    @_shown
    def remove_sentence(concept, sentence_id):
        return actions.remove_sentence(concept, sentence_id), actions.sentences_table(concept)

    @_shown
    def remove_concept(concept, typed):
        if not concept or (typed or "").strip() != concept:
            raise BankError("type the concept's name in the box beside the button to remove it")
        return actions.remove_concept(concept), []

    @_shown
    def add_concept(name, generator, llm, count, seed, progress=gr.Progress()):
        return actions.add_concept(name, generator, llm, count, seed, report=reporter(progress))

    @_shown
    def import_file(upload, name, replace):
        return actions.import_file(_path_of(upload), name, bool(replace))

    @_shown
    def export(name):
        if not name:
            raise BankError("choose a direction or a concept to export")
        return actions.export(name)

    @_shown
    def preview(source, target):
        return actions.diff(source, target)

    @_shown
    def save(source, target, name, replace):
        if not (name or "").strip():
            raise BankError("name the direction to save it")
        return actions.diff(source, target, save_as=name.strip(), replace=bool(replace))

    def add_part(rows, name, weight):
        if not name:
            return gr.skip()
        return [*[row for row in rows or [] if row and row[0]], [name, 1.0 if weight is None else weight]]

    def drop_part(rows):
        return [row for row in rows or [] if row and row[0]][:-1]

    def row_id(event):
        """The id of a clicked table row (its first cell)."""
        row = getattr(event, "row_value", None)
        return row[0] if row else gr.skip()

    @_shown
    def compose(name, rows, replace):
        return actions.compose(name, [(row[0], row[1]) for row in rows or [] if row and row[0]], bool(replace))

    @_shown
    def plot(name):
        if not name:
            return gr.skip(), gr.skip()
        return actions.describe(name)

    @_shown
    def suggest(image):
        return actions.suggest_caption(_path_of(image))

    @_shown
    def generate(prompt, size, steps, guidance_scale, seed, progress=gr.Progress(), request=None):
        visit(request)
        return actions.generate(prompt, size, steps, guidance_scale, seed, report=reporter(progress)), prompt

    @_shown
    def edit_api(image, caption, directions, scale, xa_guidance, guidance_scale, steps, size, seed, word,
                 use_tuned=False, progress=gr.Progress(), request=None):
        visit(request)
        outcome = actions.edit(_path_of(image), caption, directions, scale, xa_guidance, guidance_scale, steps, size,
                               seed, word, report=reporter(progress), use_tuned=bool(use_tuned))
        for note in outcome.notes:
            gr.Warning(note)
        return gallery_of(outcome), outcome.caption, outcome.message, outcome.archive

    def validate_edit(image, caption, directions, scale, xa_guidance, guidance_scale, steps, size, seed, word,
                      use_tuned):
        """Each input of an edit checked before the job starts: a bad one is marked, with its
        line, on its own control, and nothing runs."""
        field, message = None, ""
        try:
            actions.check_edit(_path_of(image), caption, directions, scale, xa_guidance, guidance_scale, steps, size,
                               seed, word, bool(use_tuned))
        except FieldError as error:
            field, message = error.field, page_words(first_line(error))
        except Exception:  # anything else is said beside Run by the job itself
            log.debug("edit check failed", exc_info=True)
        return [gr.validate(name != field, message if name == field else "") for name in EDIT_FIELDS]

    def job_started(*_):
        return gr.update(interactive=False), gr.update(interactive=True), "running..."

    def job_finished():
        return gr.update(interactive=True), gr.update(interactive=False)

    def on_page(run, unchanged: int):
        """run()'s outputs; on any failure `unchanged` outputs left as they are (gr.skip) and the
        line beside Run saying why, so no earlier result or input is lost."""
        from editor.pipeline import Cancelled

        try:
            return run()
        except Cancelled as error:
            line = first_line(error)
        except (BankError, EditorError) as error:
            line = f"not run: {page_words(first_line(error))}"
        except Exception as error:
            log.exception("a studio job failed")
            gr.Warning(f"unexpected {type(error).__name__}: {first_line(error)}")
            line = f"failed: unexpected {type(error).__name__} (the server log has the details); earlier results are kept"
        return *[gr.skip()] * unchanged, status_line(line)

    def shown(outcome, kept: list):
        """An edit on the page: gallery, caption, archive, before/after pair, history strip and
        its state (the entry keeps the controls it ran with), the pair's state, the line beside Run."""
        gallery = gallery_of(outcome)
        entry = {"files": gallery, "archive": outcome.archive, "settings": outcome.controls,
                 "label": history_label(outcome)}
        kept = [*(kept or []), entry][-MAX_HISTORY:]
        pair = before_after(outcome.files)
        return (gallery, outcome.caption, outcome.archive, pair, history_strip(kept), kept, pair,
                status_line(outcome.message, outcome.notes))

    def edit_on_page(image, caption, directions, scale, xa_guidance, guidance_scale, steps, size, seed, word,
                     use_tuned, kept, progress=gr.Progress(), request=None):
        """The Run button: the edit's pictures, the before/after pair and a history entry."""
        visit(request)

        def run():
            outcome = actions.edit(_path_of(image), caption, directions, scale, xa_guidance, guidance_scale, steps,
                                   size, seed, word, report=reporter(progress), use_tuned=bool(use_tuned))
            return shown(outcome, kept)

        return on_page(run, 7)

    def try_example(steps, size, seed, kept, progress=gr.Progress(), request=None):
        """The first-run example: a picture the model generates from a saved direction's source
        concept, edited with that direction, in one click."""
        visit(request)

        def run():
            name, prompt = actions.example()
            path = actions.generate(prompt, size, steps, 5.0, seed, report=reporter(progress))
            outcome = actions.edit(path, prompt, [name], 1.0, 0.1, 5.0, steps, size, seed,
                                   report=reporter(progress))
            return (path, [name], *shown(outcome, kept))

        return on_page(run, 9)

    def compare_with(pair, event):
        """A result clicked in the gallery: the before/after slider compares it with the input."""
        if not pair or event.index in (None, 0):
            return gr.skip(), gr.skip()
        chosen_file = event.value["image"]["path"] if isinstance(event.value, dict) else None
        if not chosen_file:
            return gr.skip(), gr.skip()
        new_pair = (pair[0], chosen_file)
        return new_pair, new_pair

    def restore_entry(kept, event):
        """A history entry clicked: its settings back in the controls, its pictures in the gallery."""
        if not kept or event.index is None or not 0 <= event.index < len(kept):
            return [gr.skip()] * 16
        entry = kept[event.index]
        pair = before_after(entry["files"])
        return (entry["files"][0][0], *entry["settings"], entry["files"], entry["archive"], pair, pair,
                status_line(f"brought back: {entry['label']}"))

    # Gradio hands the clicked item to a parameter annotated with its class (a string annotation,
    # as this module's future import makes them, is not resolved)
    def cancel(request=None):
        """Cancel: the running job stops at its next step, when this visitor started it."""
        visit(request)
        return status_line(actions.cancel())

    for handler in (compare_with, restore_entry, row_id):
        handler.__annotations__["event"] = gr.SelectData

    def check_photo(upload):
        """A photo as it lands: one that is not an image is taken off the page, with dbank's line."""
        path = _path_of(upload)
        if not path:
            return gr.skip(), gr.skip()
        try:
            actions.check_photo(path)
        except (BankError, EditorError) as error:
            return None, status_line(page_words(first_line(error)))
        return gr.skip(), gr.skip()

    def use_compared(pair):
        if not pair:
            return gr.skip(), status_line("run an edit first: its result becomes the photo")
        return pair[1], status_line("the compared edit is the photo now; write its caption and run again")

    @_shown
    def load_settings(upload):
        found = actions.settings_from_png(_path_of(upload))
        if found["note"]:
            gr.Warning(found["note"])
        return (found["caption"], gr.update(value=found["directions"]), found["scale"], found["xa_guidance"],
                found["guidance_scale"], found["steps"], found["size"], found["seed"],
                f"loaded the settings of {found['directions'][0]} at scale {found['scale']:g}")

    @_shown
    def tune(name, photos, scales, guidances, margin, caption, steps, size, progress=gr.Progress(), request=None):
        visit(request)
        paths = [_path_of(photo) for photo in photos or []]
        return actions.tune(name, paths, scales, guidances, margin, caption, steps, size, report=reporter(progress))

    for handler in (generate, edit_api, edit_on_page, try_example, tune, cancel):
        handler.__annotations__["request"] = gr.Request  # Gradio hands each its request

    # names made after the page was built (here or by another writer) are taken too: the bank checks them
    named = {"allow_custom_value": True, "value": None}
    concept_names, direction_names = actions.concept_names(), actions.direction_names()
    # Gradio's own copies of uploads and outputs: swept every 10 minutes of what is over two hours old, and at exit
    with gr.Blocks(title="dbank studio", analytics_enabled=False, delete_cache=(600, FOLDER_AGE_S)) as app:
        model, bank = ((actions.model, actions.database or "the default bank") if loopback
                       else (actions.model_name, actions.bank_name()))  # no server folder for other machines
        gr.Markdown(f"# dbank studio\nmodel `{model}` · bank `{bank}`")
        with gr.Tab("Bank", id="bank") as bank_tab:
            with gr.Row():
                concepts = gr.Dataframe(headers=["concept", "sentences", "encoders"], type="array",
                                        interactive=False, label="concepts", elem_id="concepts")
                refresh_button = gr.Button("Refresh", scale=0)
            with gr.Row():
                with gr.Column():
                    concept = gr.Dropdown(label="concept", choices=concept_names, elem_id="concept", **named)
                    sentences = gr.Dataframe(headers=["id", "sentence"], type="array", interactive=False,
                                             label="sentences", max_height=300, elem_id="sentences")
                    with gr.Row():
                        sentence_id = gr.Number(label="sentence id (click a row to fill it in)", precision=0,
                                                elem_id="sentence-id")
                        remove_sentence_button = gr.Button("Remove sentence")
                    with gr.Row():
                        confirm_name = gr.Textbox(label="to remove the concept, type its name", scale=2)
                        remove_concept_button = gr.Button("Remove concept", variant="stop", scale=1)
                    bank_status = gr.Textbox(label="status", interactive=False, elem_id="bank-status")
                with gr.Column():
                    gr.Markdown("### Add a concept")
                    new_name = gr.Textbox(label="name")
                    with gr.Row():
                        generator = gr.Dropdown(["local", "openai", "template"], value=None, label="generator",
                                                info="empty: openai when OPENAI_API_KEY is set, else local")
                        llm = gr.Dropdown(["", *actions.llms], value="", label="LLM",
                                          info="empty: the generator's default; others as the server offers them")
                    with gr.Row():
                        count = gr.Number(label="sentences", value=200, precision=0, minimum=1)
                        new_seed = gr.Number(label="seed", value=0, precision=0, minimum=0)
                    add_button = gr.Button("Add concept", variant="primary")
                    add_status = gr.Textbox(label="report", interactive=False, elem_id="add-status")
                    gr.Markdown("### Import or export")
                    upload = gr.File(label="dbank .safetensors or pix2pix-zero .pt", file_types=[".safetensors", ".pt"])
                    with gr.Row():
                        import_name = gr.Textbox(label="import as (optional)", scale=3)
                        import_replace = gr.Checkbox(label="replace (the old one is kept)", scale=1)
                    import_button = gr.Button("Import")
                    import_status = gr.Textbox(label="import report", interactive=False, elem_id="import-status")
                    export_name = gr.Dropdown(label="export a direction or concept",
                                              choices=exportable(direction_names, concept_names), elem_id="export-name",
                                              **named)
                    export_button = gr.Button("Export")
                    export_file = gr.File(label="download", interactive=False)
            gr.Markdown("### Trash: removed concepts, directions and sentences, until emptied with the CLI")
            trash = gr.Dataframe(headers=["id", "kind", "name", "what", "removed at"], type="array",
                                 interactive=False, label="trash", elem_id="trash")
            with gr.Row():
                trash_id = gr.Number(label="trash id (click a row to fill it in)", precision=0, elem_id="trash-id")
                restore_as = gr.Textbox(label="restore as (optional: a concept or direction under another name)")
                restore_button = gr.Button("Restore")
            trash_status = gr.Textbox(label="restore report", interactive=False, elem_id="trash-status")
        with gr.Tab("Directions", id="directions") as directions_tab:
            with gr.Row():
                with gr.Column():
                    source = gr.Dropdown(label="source concept", choices=concept_names, **named)
                    target = gr.Dropdown(label="target concept", choices=concept_names, **named)
                    preview_button = gr.Button("Preview direction")
                    with gr.Row():
                        save_name = gr.Textbox(label="save as", scale=3)
                        save_replace = gr.Checkbox(label="replace (the old version is kept)", scale=1)
                    save_button = gr.Button("Save direction", variant="primary")
                    direction_text = gr.Textbox(label="direction", lines=4, interactive=False)
                with gr.Column():
                    direction_plot = gr.Image(label="norm per token", type="pil", interactive=False)
            directions = gr.Dataframe(headers=["direction", "source", "target", "norm", "signal-to-noise"],
                                      type="array", interactive=False, label="saved directions",
                                      elem_id="saved-directions")
            gr.Markdown("**norm**: the direction's length. **signal-to-noise**: that length over the error its two "
                        "means still carry from the sentences sampled; under about 3 the direction is mostly noise "
                        "(add sentences: four times as many halve the noise), above 10 it is well measured; empty "
                        "when the statistics cannot tell (a composed or imported mean).", elem_id="snr-help")
            with gr.Row():
                plot_name = gr.Dropdown(label="plot a saved direction", choices=direction_names, **named)
            gr.Markdown("### Tune: the scale and guidance a saved direction edits best with (kept on it)")
            with gr.Row():
                with gr.Column():
                    tune_name = gr.Dropdown(label="direction", choices=direction_names, elem_id="tune-name", **named)
                    tune_photos = gr.File(label="photos", file_count="multiple", file_types=["image"])
                    with gr.Row():
                        tune_scales = gr.Textbox(label="scales", value="0.5,1,1.5,2")
                        tune_guidances = gr.Textbox(label="cross-attention guidance", value="0.05,0.1,0.2")
                    with gr.Row():
                        tune_margin = gr.Number(label="structure margin over the reconstruction", value=0.02,
                                                minimum=0)
                        tune_caption = gr.Textbox(label="caption of every photo (empty: BLIP)")
                    tune_button = gr.Button("Tune", elem_id="tune")
                with gr.Column():
                    tune_text = gr.Textbox(label="tuning", lines=8, interactive=False, elem_id="tune-report")
                    tune_plot = gr.Image(label="CLIP directional similarity against structure distance", type="pil",
                                         interactive=False)
            gr.Markdown("### Compose: a weighted sum of saved directions")
            with gr.Row():
                with gr.Column(scale=1):
                    compose_pick = gr.Dropdown(label="a saved direction", choices=direction_names,
                                               elem_id="compose-pick", **named)
                    compose_weight = gr.Number(label="its weight", value=1.0, elem_id="compose-weight")
                    with gr.Row():
                        compose_add = gr.Button("Add part", elem_id="compose-add")
                        compose_drop = gr.Button("Remove last part", elem_id="compose-drop")
                with gr.Column(scale=2):
                    compose_rows = gr.Dataframe(headers=["direction", "weight"], datatype=["str", "number"],
                                                type="array", interactive=True, value=[], row_count=0,
                                                label="parts (edit a weight in place)", elem_id="compose-rows")
                with gr.Column(scale=1):
                    compose_name = gr.Textbox(label="name", elem_id="compose-name")
                    compose_replace = gr.Checkbox(label="replace (the old version is kept)", elem_id="compose-replace")
                    compose_button = gr.Button("Save sum", elem_id="compose-save")
            compose_text = gr.Textbox(label="composed", interactive=False, elem_id="compose-status")
        with gr.Tab("Edit", id="edit") as edit_tab:
            with gr.Row():
                gr.Markdown("New here? One click generates a picture of a saved direction's source concept and "
                            "edits it with that direction, at the steps, size and seed below.")
                example_button = gr.Button("Try an example", elem_id="example", scale=0)
            with gr.Row():
                with gr.Column():
                    image = gr.Image(label="photo", type="filepath", sources=["upload", "clipboard"],
                                     elem_id="photo")
                    with gr.Row():
                        prompt = gr.Textbox(label="or generate from a prompt", scale=3)
                        generate_button = gr.Button("Generate", scale=1)
                    with gr.Row():
                        caption = gr.Textbox(label="caption (empty: BLIP writes one)", scale=3, elem_id="caption")
                        suggest_button = gr.Button("Suggest (BLIP)", scale=1)
                    chosen = gr.Dropdown(label="directions", choices=direction_names, multiselect=True, elem_id="directions",
                                         **named)
                    # numbers, not sliders: a slider's box silently clamps what is typed into it; these
                    # take any typed value and the check beside Run refuses one out of bounds
                    with gr.Row():
                        scale = gr.Number(label="scale", value=1.0, step=0.05, elem_id="scale", info=INFO["scale"])
                        xa_guidance = gr.Number(label="cross-attention guidance", value=0.1, step=0.01,
                                                elem_id="xa-guidance", info=INFO["xa_guidance"])
                    with gr.Row():
                        guidance_scale = gr.Number(label="guidance scale", value=5.0, step=0.5, elem_id="guidance-scale",
                                                   info=INFO["guidance_scale"])
                        steps = gr.Number(label="steps", value=50, step=1, elem_id="steps", info=INFO["steps"])
                    with gr.Row():
                        size = gr.Number(label="size (longer side)", value=actions.default_size(), step=8,
                                         elem_id="size", info=INFO["size"])
                        seed = gr.Number(label="seed", value=0, step=1, elem_id="seed", info=INFO["seed"])
                    word = gr.Textbox(label="attention map of a caption word (optional)", elem_id="word")
                    use_tuned = gr.Checkbox(label="tuned directions use their tuned scale and guidance (dbank tune) "
                                            "instead of the boxes above", value=False, elem_id="use-tuned")
                    with gr.Row():
                        run_button = gr.Button("Run edit", variant="primary", elem_id="run", scale=3)
                        cancel_button = gr.Button("Cancel", variant="stop", elem_id="cancel", interactive=False,
                                                  scale=1)
                    edit_status = gr.Markdown(elem_id="edit-status")
                    settings_png = gr.File(label="load the settings of an edit dbank made (its PNG)",
                                           file_types=[".png"], elem_id="settings-png")
                with gr.Column():
                    gallery = gr.Gallery(label="input · reconstruction · edits", columns=3, elem_id="results",
                                         object_fit="contain", height="auto", format="png")
                    compare = gr.ImageSlider(label="before · after (drag the line; click a result to compare it)",
                                             type="filepath", elem_id="compare", interactive=False)
                    use_as_input = gr.Button("Use the compared edit as the photo", elem_id="use-as-input")
                    archive = gr.File(label="download all", interactive=False)
                    history_gallery = gr.Gallery(label="history of this session: click one to bring back its "
                                                 "settings and pictures", columns=6, height=220, elem_id="history",
                                                 allow_preview=False, format="png")
            history, compared = gr.State([]), gr.State(None)
            # api only: scripts (gradio_client) get an error for a bad request, the page a line beside Run
            edit_api_trigger = gr.Button(visible=False)

        lists = [concepts, directions, concept, source, target, chosen, plot_name, tune_name, export_name, trash,
                 compose_pick]
        chosen_names = [concept, source, target, chosen, plot_name, tune_name, export_name, compose_pick]
        listing = {"fn": refresh, "inputs": chosen_names, "outputs": lists, "api_name": False}
        refresh_button.click(refresh, chosen_names, lists, api_name="refresh")
        app.load(**listing)
        for tab in (bank_tab, directions_tab, edit_tab):  # another tab, browser or the CLI may have changed the bank
            tab.select(**listing)
        concept.change(show_sentences, concept, sentences, api_name="sentences")
        remove_sentence_button.click(remove_sentence, [concept, sentence_id], [bank_status, sentences],
                                     concurrency_id="model", concurrency_limit=1).success(**listing)
        remove_concept_button.click(remove_concept, [concept, confirm_name], [bank_status, sentences],
                                    api_name="remove_concept").success(**listing)
        add_button.click(add_concept, [new_name, generator, llm, count, new_seed], add_status,
                         api_name="add_concept", concurrency_id="model", concurrency_limit=1).success(**listing)
        import_button.click(import_file, [upload, import_name, import_replace], import_status, api_name="import",
                            concurrency_id="model", concurrency_limit=1, preprocess=False).success(**listing)
        export_button.click(export, export_name, export_file, api_name="export")
        preview_button.click(preview, [source, target], [direction_text, direction_plot], api_name="preview")
        save_button.click(save, [source, target, save_name, save_replace], [direction_text, direction_plot],
                          api_name="save_direction").success(**listing)
        compose_add.click(add_part, [compose_rows, compose_pick, compose_weight], compose_rows, api_name=False,
                          queue=False)
        compose_drop.click(drop_part, compose_rows, compose_rows, api_name=False, queue=False)
        sentences.select(row_id, None, sentence_id, api_name=False, queue=False)
        trash.select(row_id, None, trash_id, api_name=False, queue=False)
        compose_button.click(compose, [compose_name, compose_rows, compose_replace], compose_text,
                             api_name="compose").success(**listing)
        restore_button.click(restore, [trash_id, restore_as], trash_status, api_name="restore").success(**listing)
        plot_name.change(plot, plot_name, [direction_text, direction_plot], api_name="plot")
        suggest_button.click(suggest, image, caption, api_name="caption", concurrency_id="model", concurrency_limit=1,
                             preprocess=False)
        generate_button.click(generate, [prompt, size, steps, guidance_scale, seed], [image, caption],
                              api_name="generate", concurrency_id="model", concurrency_limit=1)
        edit_inputs = [image, caption, chosen, scale, xa_guidance, guidance_scale, steps, size, seed, word, use_tuned]
        edit_api_trigger.click(edit_api, edit_inputs, [gallery, caption, edit_status, archive], api_name="edit",
                       concurrency_id="model", concurrency_limit=1, preprocess=False)
        run_button.click(job_started, edit_inputs, [run_button, cancel_button, edit_status], validator=validate_edit,
                         api_name=False, preprocess=False).then(
            edit_on_page, [*edit_inputs, history], [gallery, caption, archive, compare, history_gallery, history,
                                                    compared, edit_status],
            api_name=False, concurrency_id="model", concurrency_limit=1, preprocess=False,
            show_progress_on=[gallery]).then(job_finished, None, [run_button, cancel_button], api_name=False,
                                             queue=False)
        example_button.click(job_started, None, [run_button, cancel_button, edit_status], api_name=False).then(
            try_example, [steps, size, seed, history], [image, chosen, gallery, caption, archive, compare,
                                                         history_gallery, history, compared, edit_status],
            api_name=False, concurrency_id="model", concurrency_limit=1, show_progress_on=[gallery]).then(
            job_finished, None, [run_button, cancel_button], api_name=False, queue=False)
        cancel_button.click(cancel, None, edit_status, api_name=False, queue=False)
        gallery.select(compare_with, compared, [compare, compared], api_name=False, queue=False)
        history_gallery.select(restore_entry, history, [image, *edit_inputs[1:], gallery, archive, compare, compared,
                                                        edit_status], api_name=False, queue=False)
        image.upload(check_photo, image, [image, edit_status], api_name=False, preprocess=False, queue=False,
                     js=KEEP_FOCUS_JS)
        use_as_input.click(use_compared, compared, [image, edit_status], api_name=False, queue=False)
        settings_png.upload(load_settings, settings_png, [caption, chosen, scale, xa_guidance, guidance_scale, steps,
                                                          size, seed, edit_status],
                            api_name="settings_from_png", preprocess=False)
        tune_button.click(tune, [tune_name, tune_photos, tune_scales, tune_guidances, tune_margin, tune_caption, steps,
                                 size], [tune_text, tune_plot], api_name="tune", concurrency_id="model",
                          concurrency_limit=1, preprocess=False)
    app.queue(default_concurrency_limit=4)
    return app


# the peer address of the request being served (ClientAddress sets it), for LoginLimiter
_CLIENT = contextvars.ContextVar("dbank_studio_client", default="")


class ClientAddress:
    """ASGI middleware that makes each HTTP request's peer address known to the code serving it
    (Gradio hands a login check the user name and password only)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        token = _CLIENT.set((scope.get("client") or ("",))[0])
        try:
            return await self.app(scope, receive, send)
        finally:
            _CLIENT.reset(token)


class LoginLimiter:
    """The studio's password check: constant-time comparison, a pause after each wrong
    password, and no check at all (every login refused) for `lockout_s` once `attempts` wrong
    passwords came within that time from one client address, so a password cannot be guessed at
    speed, and strangers guessing cannot lock the owner out from another address. `check` is a
    coroutine: Gradio awaits it on its event loop, which a blocking pause would stall for all."""

    def __init__(self, user: str, password: str, attempts: int = 10, lockout_s: float = 60.0,
                 pause_s: float = 0.5, clock=None):
        import time

        self.user, self.password = user, password
        self.attempts, self.lockout_s, self.pause_s = attempts, lockout_s, pause_s
        self.clock = clock or time.monotonic
        self.failures: dict[str, list[float]] = {}  # client address -> times of its wrong passwords

    async def check(self, user: str, password: str) -> bool:
        """Whether this login (from the client address being served) is let in."""
        import asyncio
        import hmac

        now, client = self.clock(), _CLIENT.get()
        self.failures = {address: recent for address, times in self.failures.items()
                         if (recent := [t for t in times if now - t < self.lockout_s])}
        if len(self.failures.get(client, [])) >= self.attempts:
            return False
        good = hmac.compare_digest(f"{user}\0{password}".encode(), f"{self.user}\0{self.password}".encode())
        if not good:
            self.failures.setdefault(client, []).append(now)
            await asyncio.sleep(self.pause_s)
        return good


def serve(actions: StudioActions, host: str, port: int, auth: tuple[str, str] | None = None,
          block: bool = True, loopback: bool = True):
    """Build the page and serve it on host:port (an IPv6 address in brackets; no share links,
    no server-side rendering); a login, when asked for, is rate-limited (LoginLimiter). Off
    `loopback`, the page names the model and the bank without server folders."""
    from starlette.middleware import Middleware

    app = build_app(actions, loopback)
    print(f"dbank studio: http://{host}:{port}", file=sys.stderr, flush=True)
    app.launch(server_name=host, server_port=port, auth=LoginLimiter(*auth).check if auth else None, share=False,
               inbrowser=False, quiet=True,
               ssr_mode=False, mcp_server=False, pwa=False, show_error=True, theme=theme(),
               js=PAGE_JS, allowed_paths=[str(actions.work_dir)], prevent_thread_lock=not block, max_file_size=MAX_UPLOAD,
               footer_links=["api", "settings"], app_kwargs={"middleware": [Middleware(ClientAddress)]})
    return app
