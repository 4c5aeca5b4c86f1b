"""The studio's page: Gradio Blocks laid over StudioActions (Bank, Directions and Edit tabs).
Every handler is a call into StudioActions; a BankError or EditorError shows as one line in the
page (and in gradio_client) instead of a traceback."""
from __future__ import annotations

import functools
import logging
import os
import sys

from direction_bank.errors import BankError, first_line
from direction_bank.studio.actions import FOLDER_AGE_S, MAX_UPLOAD, StudioActions, scored_label
from editor.pipeline import EditorError

log = logging.getLogger("dbank.studio")

# system fonts only: Gradio's default theme fetches its fonts from Google
SANS = ["ui-sans-serif", "system-ui", "sans-serif"]
MONO = ["ui-monospace", "Consolas", "monospace"]


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
            raise gr.Error(first_line(error), print_exception=False) from None
        except gr.Error:
            raise
        except Exception as error:
            log.exception("studio handler %s failed", handler.__name__)
            raise gr.Error(f"unexpected {type(error).__name__}: {first_line(error)}", print_exception=False) from None

    return wrapper


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


def build_app(actions: StudioActions):
    """The studio's gr.Blocks. Model work (add, import, caption, generate, edit) runs one job at
    a time through the queue (concurrency id 'model'); reading the bank does not wait for it."""
    offline_environment()
    import gradio as gr

    def reporter(progress):
        return lambda fraction, text: progress(fraction, desc=text)

    @_shown
    def refresh():
        concept_rows, direction_rows = actions.concepts_table(), actions.directions_table()
        concepts, directions = [row[0] for row in concept_rows], [row[0] for row in direction_rows]
        return (concept_rows, direction_rows, *[gr.update(choices=concepts)] * 3,
                *[gr.update(choices=directions)] * 3,
                gr.update(choices=directions + [c for c in concepts if c not in directions]), actions.trash_table())

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

    @_shown
    def compose(name, rows, replace):
        return actions.compose(name, [(row[0], row[1]) for row in rows or [] if row and row[0]], bool(replace))

    @_shown
    def plot(name):
        return actions.plot(name) if name else None

    @_shown
    def suggest(image):
        return actions.suggest_caption(_path_of(image))

    @_shown
    def generate(prompt, size, steps, guidance_scale, seed, progress=gr.Progress()):
        return actions.generate(prompt, size, steps, guidance_scale, seed, report=reporter(progress)), prompt

    @_shown
    def edit(image, caption, directions, scale, xa_guidance, guidance_scale, steps, size, seed, word,
             use_tuned=False, progress=gr.Progress()):
        outcome = actions.edit(_path_of(image), caption, directions, scale, xa_guidance, guidance_scale, steps, size,
                               seed, word, report=reporter(progress), use_tuned=bool(use_tuned))
        for note in outcome.notes:
            gr.Warning(note)
        gallery = [(picture, scored_label(label, outcome.scores.get(label))) for picture, label in outcome.pictures]
        return gallery, outcome.caption, outcome.message, outcome.archive

    @_shown
    def load_settings(upload):
        found = actions.settings_from_png(_path_of(upload))
        if found["note"]:
            gr.Warning(found["note"])
        return (found["caption"], gr.update(value=found["directions"]), found["scale"], found["xa_guidance"],
                found["guidance_scale"], found["steps"], found["size"], found["seed"],
                f"loaded the settings of {found['directions'][0]} at scale {found['scale']:g}")

    @_shown
    def tune(name, photos, scales, guidances, margin, caption, steps, size, progress=gr.Progress()):
        paths = [_path_of(photo) for photo in photos or []]
        return actions.tune(name, paths, scales, guidances, margin, caption, steps, size, report=reporter(progress))

    # names made after the page was built (here or by another writer) are taken too: the bank checks them
    named = {"allow_custom_value": True, "value": None}
    concept_names, direction_names = actions.concept_names(), actions.direction_names()
    # Gradio's own copies of uploads and outputs: swept every 10 minutes of what is over two hours old, and at exit
    with gr.Blocks(title="dbank studio", analytics_enabled=False, delete_cache=(600, FOLDER_AGE_S)) as app:
        gr.Markdown(f"# dbank studio\nmodel `{actions.model}` · bank `{actions.database or 'the default bank'}`")
        with gr.Tab("Bank"):
            with gr.Row():
                concepts = gr.Dataframe(headers=["concept", "sentences", "encoders"], type="array",
                                        interactive=False, label="concepts", elem_id="concepts")
                refresh_button = gr.Button("Refresh", scale=0)
            with gr.Row():
                with gr.Column():
                    concept = gr.Dropdown(label="concept", choices=concept_names, **named)
                    sentences = gr.Dataframe(headers=["id", "sentence"], type="array", interactive=False,
                                             label="sentences", max_height=300)
                    with gr.Row():
                        sentence_id = gr.Number(label="sentence id", precision=0)
                        remove_sentence_button = gr.Button("Remove sentence")
                    with gr.Row():
                        confirm_name = gr.Textbox(label="to remove the concept, type its name", scale=2)
                        remove_concept_button = gr.Button("Remove concept", variant="stop", scale=1)
                    bank_status = gr.Textbox(label="status", interactive=False)
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
                    add_status = gr.Textbox(label="report", interactive=False)
                    gr.Markdown("### Import or export")
                    upload = gr.File(label="dbank .safetensors or pix2pix-zero .pt", file_types=[".safetensors", ".pt"])
                    with gr.Row():
                        import_name = gr.Textbox(label="import as (optional)", scale=3)
                        import_replace = gr.Checkbox(label="replace (the old one is kept)", scale=1)
                    import_button = gr.Button("Import")
                    import_status = gr.Textbox(label="import report", interactive=False)
                    export_name = gr.Dropdown(label="export a direction or concept", choices=direction_names + concept_names, **named)
                    export_button = gr.Button("Export")
                    export_file = gr.File(label="download", interactive=False)
            gr.Markdown("### Trash: removed concepts, directions and sentences, until emptied with the CLI")
            trash = gr.Dataframe(headers=["id", "kind", "name", "what", "removed at"], type="array",
                                 interactive=False, label="trash", elem_id="trash")
            with gr.Row():
                trash_id = gr.Number(label="trash id", precision=0)
                restore_as = gr.Textbox(label="restore as (optional: a concept or direction under another name)")
                restore_button = gr.Button("Restore")
            trash_status = gr.Textbox(label="restore report", interactive=False)
        with gr.Tab("Directions"):
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
                                      type="array", interactive=False, label="saved directions")
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
                    compose_name = gr.Textbox(label="name")
                    compose_replace = gr.Checkbox(label="replace (the old version is kept)")
                compose_rows = gr.Dataframe(headers=["direction", "weight"], datatype=["str", "number"],
                                            type="array", interactive=True, value=[["", 1.0], ["", 1.0]],
                                            label="parts")
                compose_button = gr.Button("Save sum")
            compose_text = gr.Textbox(label="composed", interactive=False)
        with gr.Tab("Edit"):
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
                    scale = gr.Slider(-3, 3, value=1.0, step=0.05, label="scale")
                    xa_guidance = gr.Slider(0, 0.5, value=0.1, step=0.01, label="cross-attention guidance")
                    guidance_scale = gr.Slider(0, 15, value=5.0, step=0.5, label="guidance scale")
                    steps = gr.Slider(1, 100, value=50, step=1, label="steps", elem_id="steps")
                    with gr.Row():
                        size = gr.Slider(64, 1024, value=actions.default_size(), step=8, label="size (longer side)", elem_id="size")
                        seed = gr.Number(label="seed", value=0, precision=0, minimum=0)
                    word = gr.Textbox(label="attention map of a caption word (optional)", elem_id="word")
                    use_tuned = gr.Checkbox(label="tuned directions use their tuned scale and guidance (dbank tune) "
                                            "instead of the sliders", value=False, elem_id="use-tuned")
                    run_button = gr.Button("Run edit", variant="primary", elem_id="run")
                    settings_png = gr.File(label="load the settings of an edit dbank made (its PNG)",
                                           file_types=[".png"], elem_id="settings-png")
                with gr.Column():
                    gallery = gr.Gallery(label="input · reconstruction · edits", columns=3, elem_id="results",
                                         object_fit="contain", height="auto", format="png")
                    edit_status = gr.Markdown(elem_id="edit-status")
                    archive = gr.File(label="download all", interactive=False)

        lists = [concepts, directions, concept, source, target, chosen, plot_name, tune_name, export_name, trash]
        listing = {"fn": refresh, "outputs": lists, "api_name": False}
        refresh_button.click(refresh, outputs=lists, api_name="refresh")
        app.load(refresh, outputs=lists, api_name=False)
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
        compose_button.click(compose, [compose_name, compose_rows, compose_replace], compose_text,
                             api_name="compose").success(**listing)
        restore_button.click(restore, [trash_id, restore_as], trash_status, api_name="restore").success(**listing)
        plot_name.change(plot, plot_name, direction_plot, api_name="plot")
        suggest_button.click(suggest, image, caption, api_name="caption", concurrency_id="model", concurrency_limit=1,
                             preprocess=False)
        generate_button.click(generate, [prompt, size, steps, guidance_scale, seed], [image, caption],
                              api_name="generate", concurrency_id="model", concurrency_limit=1)
        run_button.click(edit, [image, caption, chosen, scale, xa_guidance, guidance_scale, steps, size, seed, word,
                                use_tuned], [gallery, caption, edit_status, archive], api_name="edit",
                         concurrency_id="model", concurrency_limit=1, preprocess=False)
        settings_png.upload(load_settings, settings_png, [caption, chosen, scale, xa_guidance, guidance_scale, steps,
                                                          size, seed, edit_status],
                            api_name="settings_from_png", preprocess=False)
        tune_button.click(tune, [tune_name, tune_photos, tune_scales, tune_guidances, tune_margin, tune_caption, steps,
                                 size], [tune_text, tune_plot], api_name="tune", concurrency_id="model",
                          concurrency_limit=1, preprocess=False)
    app.queue(default_concurrency_limit=4)
    return app


class LoginLimiter:
    """The studio's password check: constant-time comparison, a pause after each wrong
    password, and no check at all (every login refused) for `lockout_s` once `attempts` wrong
    passwords came within that time, so a password cannot be guessed at speed. `check` is a
    coroutine: Gradio awaits it on its event loop, which a blocking pause would stall for all."""

    def __init__(self, user: str, password: str, attempts: int = 10, lockout_s: float = 60.0,
                 pause_s: float = 0.5, clock=None):
        import time

        self.user, self.password = user, password
        self.attempts, self.lockout_s, self.pause_s = attempts, lockout_s, pause_s
        self.clock = clock or time.monotonic
        self.failures: list[float] = []

    async def check(self, user: str, password: str) -> bool:
        """Whether this login is let in."""
        import asyncio
        import hmac

        now = self.clock()
        self.failures = [t for t in self.failures if now - t < self.lockout_s]
        if len(self.failures) >= self.attempts:
            return False
        good = hmac.compare_digest(f"{user}\0{password}".encode(), f"{self.user}\0{self.password}".encode())
        if not good:
            self.failures.append(now)
            await asyncio.sleep(self.pause_s)
        return good


def serve(actions: StudioActions, host: str, port: int, auth: tuple[str, str] | None = None,
          block: bool = True):
    """Build the page and serve it on host:port (an IPv6 address in brackets; no share links,
    no server-side rendering); a login, when asked for, is rate-limited (LoginLimiter)."""
    app = build_app(actions)
    print(f"dbank studio: http://{host}:{port}", file=sys.stderr, flush=True)
    app.launch(server_name=host, server_port=port, auth=LoginLimiter(*auth).check if auth else None, share=False,
               inbrowser=False, quiet=True,
               ssr_mode=False, mcp_server=False, pwa=False, show_error=True, theme=theme(),
               allowed_paths=[str(actions.work_dir)], prevent_thread_lock=not block, max_file_size=MAX_UPLOAD,
               footer_links=["api", "settings"])
    return app
