"""The studio's Edit tab: a photo uploaded or generated, edited with saved directions, compared
before and after, kept in a history, its settings loaded from a dbank PNG; laid out, then wired
to StudioActions (studio/edit_actions.py)."""

from __future__ import annotations

from types import SimpleNamespace

import logging

from direction_bank.errors import BankError, FieldError, first_line
from direction_bank.studio.page import on_button, path_of, reporter, shown_errors, visit
from direction_bank.studio.session import STOPPING
from direction_bank.studio.words import (
    EDIT_FIELDS,
    INFO,
    MAX_HISTORY,
    before_after,
    gallery_of,
    history_label,
    history_strip,
    page_words,
    status_line,
)
from editor.pipeline import EditorError

log = logging.getLogger("dbank.studio")

# after an upload Gradio swaps the drop area for the picture, and the focus would fall to the page;
# it goes to the photo's first control instead (keyboard and screen-reader users stay in place)
KEEP_FOCUS_JS = """(photo) => {
  setTimeout(() => { const control = document.querySelector('#photo button'); if (control) control.focus(); }, 300);
  return photo;
}"""


def layout(actions, named: dict, concept_names: list[str], direction_names: list[str]) -> SimpleNamespace:
    """The Edit tab's controls, by name."""
    import gradio as gr

    with gr.Tab("Edit", id="edit") as edit_tab:
        with gr.Row():
            gr.Markdown(
                "New here? One click generates a picture of a saved direction's source concept and "
                "edits it with that direction, at the steps, size and seed below."
            )
            example_button = gr.Button("Try an example", elem_id="example", scale=0)
        with gr.Row():
            with gr.Column():
                image = gr.Image(label="photo", type="filepath", sources=["upload", "clipboard"], elem_id="photo")
                with gr.Row():
                    prompt = gr.Textbox(label="or generate from a prompt", scale=3)
                    generate_button = gr.Button("Generate", scale=1)
                with gr.Row():
                    caption = gr.Textbox(label="caption (empty: BLIP writes one)", scale=3, elem_id="caption")
                    suggest_button = gr.Button("Suggest (BLIP)", scale=1)
                chosen = gr.Dropdown(
                    label="directions", choices=direction_names, multiselect=True, elem_id="directions", **named
                )
                with gr.Row():
                    to_word = gr.Textbox(label="or edit to a word (e.g. zebra)", elem_id="to-word")
                    from_word = gr.Textbox(label="from (empty: the concept the caption names)", elem_id="from-word")
                # numbers, not sliders: a slider's box silently clamps what is typed into it; these
                # take any typed value and the check beside Run refuses one out of bounds
                with gr.Row():
                    scale = gr.Number(label="scale", value=1.0, step=0.05, elem_id="scale", info=INFO["scale"])
                    xa_guidance = gr.Number(
                        label="cross-attention guidance",
                        value=0.1,
                        step=0.01,
                        elem_id="xa-guidance",
                        info=INFO["xa_guidance"],
                    )
                with gr.Row():
                    guidance_scale = gr.Number(
                        label="guidance scale",
                        value=5.0,
                        step=0.5,
                        elem_id="guidance-scale",
                        info=INFO["guidance_scale"],
                    )
                    steps = gr.Number(label="steps", value=50, step=1, elem_id="steps", info=INFO["steps"])
                with gr.Row():
                    size = gr.Number(
                        label="size (longer side)",
                        value=actions.default_size(),
                        step=8,
                        elem_id="size",
                        info=INFO["size"],
                    )
                    seed = gr.Number(label="seed", value=0, step=1, elem_id="seed", info=INFO["seed"])
                    seed_button = gr.Button("random seed", elem_id="random-seed", scale=0)
                word = gr.Textbox(label="attention map of a caption word (optional)", elem_id="word")
                use_tuned = gr.Checkbox(
                    label="tuned directions use their tuned scale and guidance (dbank tune) instead of the boxes above",
                    value=False,
                    elem_id="use-tuned",
                )
                with gr.Row():
                    run_button = gr.Button("Run edit", variant="primary", elem_id="run", scale=3)
                    cancel_button = gr.Button("Cancel", variant="stop", elem_id="cancel", interactive=False, scale=1)
                edit_status = gr.Markdown(elem_id="edit-status")
                # offered after a word-swap: the concepts it stood in for, built with the Bank tab's
                # generator while the page stays usable; the next edit then uses their mean difference
                with gr.Row():
                    build_button = gr.Button("build the concepts", visible=False, elem_id="build-concepts", scale=0)
                    build_status = gr.Markdown(elem_id="build-status")
                settings_png = gr.File(
                    label="load the settings of an edit dbank made (its PNG)",
                    file_types=[".png"],
                    elem_id="settings-png",
                )
                # the dropped picture replaces the photo only when asked
                use_png_button = gr.Button("use this picture as the photo too", visible=False, elem_id="use-png")
            with gr.Column():
                gallery = gr.Gallery(
                    label="input · reconstruction · edits",
                    columns=3,
                    elem_id="results",
                    object_fit="contain",
                    height="auto",
                    format="png",
                )
                compare = gr.ImageSlider(
                    label="before · after (drag the line; click a result to compare it)",
                    type="filepath",
                    elem_id="compare",
                    interactive=False,
                )
                use_as_input = gr.Button("Use the compared edit as the photo", elem_id="use-as-input")
                archive = gr.File(label="download all", interactive=False)
                history_gallery = gr.Gallery(
                    label="history of this session: click one to bring back its settings and pictures",
                    columns=6,
                    height=300,
                    object_fit="contain",
                    elem_id="history",
                    allow_preview=False,
                    format="png",
                )
        history, compared, build_words = gr.State([]), gr.State(None), gr.State([])
        # api only: scripts (gradio_client) get an error for a bad request, the page a line beside Run
        edit_api_trigger = gr.Button(visible=False)

    return SimpleNamespace(
        example_button=example_button, image=image, prompt=prompt, generate_button=generate_button, caption=caption,
        suggest_button=suggest_button, chosen=chosen, scale=scale, xa_guidance=xa_guidance,
        guidance_scale=guidance_scale, steps=steps, size=size, seed=seed, seed_button=seed_button, word=word,
        use_tuned=use_tuned,
        to_word=to_word, from_word=from_word,
        run_button=run_button, cancel_button=cancel_button, edit_status=edit_status, settings_png=settings_png,
        build_button=build_button, build_status=build_status, build_words=build_words, use_png_button=use_png_button,
        gallery=gallery, compare=compare, use_as_input=use_as_input, archive=archive,
        history_gallery=history_gallery, history=history, compared=compared, edit_api_trigger=edit_api_trigger,
        edit_tab=edit_tab,
    )


def wire(ui: SimpleNamespace, actions, listing: dict) -> None:
    """The Edit tab's events (`listing`: app.refresh's event, after concepts are built here)."""
    import gradio as gr

    @shown_errors
    def suggest(image):
        return actions.suggest_caption(path_of(image))

    @shown_errors
    def generate(prompt, size, steps, guidance_scale, seed, progress=gr.Progress(), request=None):
        visit(request)
        return actions.generate(prompt, size, steps, guidance_scale, seed, report=reporter(progress)), prompt

    def edit_photo(image, caption, directions, scale, xa_guidance, guidance_scale, steps, size, seed, word, use_tuned,
                   to_word, from_word, progress):
        """actions.edit of the page's edit inputs (EDIT_FIELDS, the photo as Gradio sends it), its
        progress on the page: what the Run button and the api's /edit both run."""
        return actions.edit(path_of(image), caption, directions, scale, xa_guidance, guidance_scale, steps, size, seed,
                            word, report=reporter(progress), use_tuned=bool(use_tuned), to_word=to_word,
                            from_word=from_word)

    @shown_errors
    def edit_api(image, caption, directions, scale, xa_guidance, guidance_scale, steps, size, seed, word,
                 use_tuned=False, to_word=None, from_word=None, progress=gr.Progress(), request=None):
        visit(request)
        outcome = edit_photo(image, caption, directions, scale, xa_guidance, guidance_scale, steps, size, seed, word,
                             use_tuned, to_word, from_word, progress)
        for note in outcome.notes:
            gr.Warning(note)
        return gallery_of(outcome), outcome.caption, outcome.message, outcome.archive

    def validate_edit(image, caption, directions, scale, xa_guidance, guidance_scale, steps, size, seed, word,
                      use_tuned, to_word, from_word):
        """Each input of an edit checked before the job starts: a bad one is marked, with its
        line, on its own control, and nothing runs."""
        field, message = None, ""
        try:
            actions.check_edit(path_of(image), caption, directions, scale, xa_guidance, guidance_scale, steps, size,
                               seed, word, bool(use_tuned), to_word, from_word)
        except FieldError as error:
            field, message = error.field, page_words(first_line(error))
        except Exception:  # anything else is said beside Run by the job itself
            log.debug("edit check failed", exc_info=True)
        return [gr.validate(name != field, message if name == field else "") for name in EDIT_FIELDS]

    def job_started(request, *_):
        """Run clicked: from now on a Cancel is kept for this job, even before it reaches the model."""
        visit(request)
        actions.expect_job()
        return gr.update(interactive=False), gr.update(interactive=True, value="Cancel"), "running..."

    def job_finished(request):
        visit(request)
        actions.job_over()
        return gr.update(interactive=True), gr.update(interactive=False, value="Cancel")

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
            line = (
                f"failed: unexpected {type(error).__name__} (the server log has the details); earlier results are kept"
            )
        return *[gr.skip()] * unchanged, status_line(line)

    def shown(outcome, kept: list):
        """An edit on the page: gallery, caption, archive, before/after pair, history strip and
        its state (the entry keeps the controls it ran with), the pair's state, the offer to build
        the concepts a word-swap stood in for (and the words), the line beside Run."""
        gallery = gallery_of(outcome)
        entry = {
            "files": gallery,
            "archive": outcome.archive,
            "settings": outcome.controls,
            "label": history_label(outcome),
        }
        kept = [*(kept or []), entry][-MAX_HISTORY:]
        pair = before_after(outcome.files)
        return (
            gallery,
            outcome.caption,
            outcome.archive,
            pair,
            history_strip(kept),
            kept,
            pair,
            gr.update(visible=bool(outcome.missing), value=f"build {' and '.join(outcome.missing)} (Bank tab's generator)"),
            list(outcome.missing),
            status_line(outcome.message, outcome.notes),
        )

    def edit_on_page(image, caption, directions, scale, xa_guidance, guidance_scale, steps, size, seed, word,
                     use_tuned, to_word, from_word, kept, progress=gr.Progress(), request=None):
        """The Run button: the edit's pictures, the before/after pair and a history entry."""
        visit(request)

        def run():
            outcome = edit_photo(image, caption, directions, scale, xa_guidance, guidance_scale, steps, size, seed,
                                 word, use_tuned, to_word, from_word, progress)
            return shown(outcome, kept)

        return on_page(run, 9)

    def build_concepts(words, generator, llm, count, seed, progress=gr.Progress(), request=None):
        """The offer after a word-swap taken: each missing concept generated, cleaned, embedded and
        stored with the Bank tab's generator, LLM, count and seed; progress on the page."""
        visit(request)
        first, *rest = actions.build_concepts(words, generator, llm, count, seed, report=reporter(progress)).splitlines()
        return gr.update(visible=False), [], status_line(first, rest)

    def try_example(steps, size, seed, kept, progress=gr.Progress(), request=None):
        """The first-run example: a picture the model generates from a saved direction's source
        concept, edited with that direction, in one click."""
        visit(request)

        def run():
            name, prompt = actions.example()
            path = actions.generate(prompt, size, steps, 5.0, seed, report=reporter(progress))
            outcome = actions.edit(path, prompt, [name], 1.0, 0.1, 5.0, steps, size, seed, report=reporter(progress))
            return (path, [name], *shown(outcome, kept))

        return on_page(run, 11)

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
            return [gr.skip()] * 18
        entry = kept[event.index]
        pair = before_after(entry["files"])
        return (
            entry["files"][0][0],
            *entry["settings"],
            entry["files"],
            entry["archive"],
            pair,
            pair,
            status_line(f"brought back: {entry['label']}"),
        )

    def cancel(request=None):
        """Cancel: this visitor's job stops at its next step. The job's own last line says
        'cancelled at ...'; this event writes only to the button ('Stopping...'), so its answer can
        never arrive after that line and replace it. Nothing to cancel is said beside Run."""
        visit(request)
        said = actions.cancel()
        if said == STOPPING:
            return gr.update(interactive=False, value="Stopping..."), gr.skip()
        return gr.skip(), status_line(said)

    def check_photo(upload):
        """A photo as it lands: one that is not an image is taken off the page, with dbank's line."""
        path = path_of(upload)
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

    def load_settings(upload):
        """A dbank PNG dropped: its settings in the controls, and the offer to take the picture
        as the photo too (the photo is not replaced unasked)."""
        found = actions.settings_from_png(path_of(upload))
        if found["note"]:
            gr.Warning(found["note"])
        return (
            found["caption"],
            gr.update(value=found["directions"]),
            found["scale"],
            found["xa_guidance"],
            found["guidance_scale"],
            found["steps"],
            found["size"],
            found["seed"],
            found["to_word"],
            found["from_word"],
            gr.update(visible=True),
            status_line(f"loaded the settings of {(found['directions'] or [found['label']])[0]} at scale "
                        f"{found['scale']:g}; the photo is unchanged: 'use this picture as the photo too' replaces it"),
        )

    def use_png(upload):
        if not path_of(upload):
            return gr.skip(), gr.update(visible=False), status_line("drop a PNG that dbank made first")
        return path_of(upload), gr.update(visible=False), status_line("the dropped picture is the photo now")

    # Gradio hands the clicked item to a parameter annotated with its class (a string annotation,
    # as this module's future import makes them, is not resolved), and its request to one so annotated
    for handler in (compare_with, restore_entry):
        handler.__annotations__["event"] = gr.SelectData
    for handler in (generate, edit_api, edit_on_page, try_example, cancel, job_started, job_finished, build_concepts):
        handler.__annotations__["request"] = gr.Request

    ui.suggest_button.click(
        suggest, ui.image, ui.caption, api_name="caption", concurrency_id="model", concurrency_limit=1, preprocess=False
    )
    ui.generate_button.click(
        generate,
        [ui.prompt, ui.size, ui.steps, ui.guidance_scale, ui.seed],
        [ui.image, ui.caption],
        api_name="generate",
        concurrency_id="model",
        concurrency_limit=1,
    )
    edit_inputs = [
        ui.image,
        ui.caption,
        ui.chosen,
        ui.scale,
        ui.xa_guidance,
        ui.guidance_scale,
        ui.steps,
        ui.size,
        ui.seed,
        ui.word,
        ui.use_tuned,
        ui.to_word,
        ui.from_word,
    ]
    ui.edit_api_trigger.click(
        edit_api,
        edit_inputs,
        [ui.gallery, ui.caption, ui.edit_status, ui.archive],
        api_name="edit",
        concurrency_id="model",
        concurrency_limit=1,
        preprocess=False,
    )
    # every click of Run clears the lines beside it first (the job's, and the last build's), so a
    # mistake marked on its box never sits beside an earlier message (the validator below stops a
    # bad click before job_started)
    ui.run_button.click(lambda: ("", ""), None, [ui.edit_status, ui.build_status], api_name=False, queue=False)
    ui.run_button.click(
        job_started,
        edit_inputs,
        [ui.run_button, ui.cancel_button, ui.edit_status],
        validator=validate_edit,
        api_name=False,
        preprocess=False,
    ).then(
        edit_on_page,
        [*edit_inputs, ui.history],
        [ui.gallery, ui.caption, ui.archive, ui.compare, ui.history_gallery, ui.history, ui.compared, ui.build_button,
         ui.build_words, ui.edit_status],
        api_name=False,
        concurrency_id="model",
        concurrency_limit=1,
        preprocess=False,
        show_progress_on=[ui.gallery],
    ).then(job_finished, None, [ui.run_button, ui.cancel_button], api_name=False, queue=False)
    ui.example_button.click(job_started, None, [ui.run_button, ui.cancel_button, ui.edit_status], api_name=False).then(
        try_example,
        [ui.steps, ui.size, ui.seed, ui.history],
        [
            ui.image,
            ui.chosen,
            ui.gallery,
            ui.caption,
            ui.archive,
            ui.compare,
            ui.history_gallery,
            ui.history,
            ui.compared,
            ui.build_button,
            ui.build_words,
            ui.edit_status,
        ],
        api_name=False,
        concurrency_id="model",
        concurrency_limit=1,
        show_progress_on=[ui.gallery],
    ).then(job_finished, None, [ui.run_button, ui.cancel_button], api_name=False, queue=False)
    on_button(ui.build_button, build_concepts, [ui.build_words, ui.generator, ui.llm, ui.count, ui.new_seed],
              [ui.build_button, ui.build_words, ui.build_status], ui.build_status, api_name="build_concepts",
              listing=listing, concurrency_id="model", concurrency_limit=1)
    ui.cancel_button.click(cancel, None, [ui.cancel_button, ui.edit_status], api_name=False, queue=False)
    # in the browser: a seed from the whole range (editor.edit's bounds), no round trip
    ui.seed_button.click(None, None, ui.seed, js="() => Math.floor(Math.random() * 4294967296)", api_name=False)
    ui.gallery.select(compare_with, ui.compared, [ui.compare, ui.compared], api_name=False, queue=False)
    ui.history_gallery.select(
        restore_entry,
        ui.history,
        [ui.image, *edit_inputs[1:], ui.gallery, ui.archive, ui.compare, ui.compared, ui.edit_status],
        api_name=False,
        queue=False,
    )
    ui.image.upload(
        check_photo,
        ui.image,
        [ui.image, ui.edit_status],
        api_name=False,
        preprocess=False,
        queue=False,
        js=KEEP_FOCUS_JS,
    )
    ui.use_as_input.click(use_compared, ui.compared, [ui.image, ui.edit_status], api_name=False, queue=False)
    on_button(
        ui.settings_png,
        load_settings,
        ui.settings_png,
        [ui.caption, ui.chosen, ui.scale, ui.xa_guidance, ui.guidance_scale, ui.steps, ui.size, ui.seed, ui.to_word,
         ui.from_word, ui.use_png_button, ui.edit_status],
        ui.edit_status,
        api_name="settings_from_png",
        event="upload",
        preprocess=False,
    )
    ui.use_png_button.click(use_png, ui.settings_png, [ui.image, ui.use_png_button, ui.edit_status], api_name=False,
                            preprocess=False, queue=False)
