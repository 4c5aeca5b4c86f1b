"""The studio's Directions tab: a direction previewed, saved, plotted, tuned and composed; laid out,
then wired to StudioActions (studio/direction_actions.py)."""

from __future__ import annotations

from types import SimpleNamespace

from direction_bank.errors import BankError
from direction_bank.studio.page import on_button, path_of, reporter, shown_errors, visit


def layout(actions, named: dict, concept_names: list[str], direction_names: list[str]) -> SimpleNamespace:
    """The Directions tab's controls, by name."""
    import gradio as gr

    with gr.Tab("Directions", id="directions") as directions_tab:
        with gr.Row():
            with gr.Column():
                source = gr.Dropdown(label="source concept", choices=concept_names, elem_id="source", **named)
                target = gr.Dropdown(label="target concept", choices=concept_names, elem_id="target", **named)
                preview_button = gr.Button("Preview direction", elem_id="preview")
                with gr.Row():
                    save_name = gr.Textbox(label="save as", scale=3, elem_id="save-name")
                    save_replace = gr.Checkbox(label="replace (the old version is kept)", scale=1)
                save_button = gr.Button("Save direction", variant="primary", elem_id="save")
                direction_status = gr.Markdown(elem_id="direction-status")
                direction_text = gr.Textbox(label="direction", lines=4, interactive=False, elem_id="direction-text")
            with gr.Column():
                direction_plot = gr.Image(label="norm per token", type="pil", interactive=False, elem_id="direction-plot")
        directions = gr.Dataframe(
            headers=["direction", "source", "target", "norm", "signal-to-noise"],
            type="array",
            interactive=False,
            label="saved directions",
            elem_id="saved-directions",
        )
        gr.Markdown(
            "**norm**: the direction's length. **signal-to-noise**: that length over the error its two "
            "means still carry from the sentences sampled; under about 3 the direction is mostly noise "
            "(add sentences: four times as many halve the noise), above 10 it is well measured; empty "
            "when the statistics cannot tell (a composed or imported mean).",
            elem_id="snr-help",
        )
        with gr.Row():
            plot_name = gr.Dropdown(label="plot a saved direction", choices=direction_names, **named)
        gr.Markdown("## Tune: the scale and guidance a saved direction edits best with (kept on it)")
        with gr.Row():
            with gr.Column():
                tune_name = gr.Dropdown(label="direction", choices=direction_names, elem_id="tune-name", **named)
                tune_photos = gr.File(label="photos", file_count="multiple", file_types=["image"])
                with gr.Row():
                    tune_scales = gr.Textbox(label="scales", value="0.5,1,1.5,2")
                    tune_guidances = gr.Textbox(label="cross-attention guidance", value="0.05,0.1,0.2")
                with gr.Row():
                    tune_margin = gr.Number(label="structure margin over the reconstruction", value=0.02, minimum=0)
                    tune_caption = gr.Textbox(label="caption of every photo (empty: BLIP)")
                tune_button = gr.Button("Tune", elem_id="tune")
                tune_status = gr.Markdown(elem_id="tune-status")
            with gr.Column():
                tune_text = gr.Textbox(label="tuning", lines=8, interactive=False, elem_id="tune-report")
                tune_plot = gr.Image(
                    label="CLIP directional similarity against structure distance", type="pil", interactive=False
                )
        gr.Markdown("## Compose: a weighted sum of saved directions")
        with gr.Row():
            with gr.Column(scale=1):
                compose_pick = gr.Dropdown(
                    label="a saved direction", choices=direction_names, elem_id="compose-pick", **named
                )
                compose_weight = gr.Number(label="its weight", value=1.0, elem_id="compose-weight")
                with gr.Row():
                    compose_add = gr.Button("Add part", elem_id="compose-add")
                    compose_drop = gr.Button("Remove last part", elem_id="compose-drop")
            with gr.Column(scale=2):
                compose_rows = gr.Dataframe(
                    headers=["direction", "weight"],
                    datatype=["str", "number"],
                    type="array",
                    interactive=True,
                    value=[],
                    row_count=0,
                    label="parts (edit a weight in place)",
                    elem_id="compose-rows",
                )
            with gr.Column(scale=1):
                compose_name = gr.Textbox(label="name", elem_id="compose-name")
                compose_replace = gr.Checkbox(label="replace (the old version is kept)", elem_id="compose-replace")
                compose_button = gr.Button("Save sum", elem_id="compose-save")
        compose_text = gr.Textbox(label="composed", interactive=False, elem_id="compose-status")
    return SimpleNamespace(
        source=source, target=target, preview_button=preview_button, save_name=save_name, save_replace=save_replace,
        save_button=save_button, direction_status=direction_status, direction_text=direction_text, direction_plot=direction_plot,
        directions=directions, plot_name=plot_name, tune_name=tune_name, tune_photos=tune_photos,
        tune_scales=tune_scales, tune_guidances=tune_guidances, tune_margin=tune_margin, tune_caption=tune_caption,
        tune_button=tune_button, tune_status=tune_status, tune_text=tune_text, tune_plot=tune_plot, compose_pick=compose_pick,
        compose_weight=compose_weight, compose_add=compose_add, compose_drop=compose_drop,
        compose_rows=compose_rows, compose_name=compose_name, compose_replace=compose_replace,
        compose_button=compose_button, compose_text=compose_text, directions_tab=directions_tab,
    )


def wire(ui: SimpleNamespace, actions, listing: dict) -> None:
    """The Directions tab's events (Tune edits at the Edit tab's steps and size); `listing` (app.refresh's
    event) runs after each change to the bank."""
    import gradio as gr

    def preview(source, target):
        return actions.diff(source, target)

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

    def compose(name, rows, replace):
        return actions.compose(name, [(row[0], row[1]) for row in rows or [] if row and row[0]], bool(replace))

    @shown_errors
    def plot(name):
        if not name:
            return gr.skip(), gr.skip()
        return actions.describe(name)

    def tune(name, photos, scales, guidances, margin, caption, steps, size, progress=gr.Progress(), request=None):
        visit(request)
        paths = [path_of(photo) for photo in photos or []]
        return actions.tune(name, paths, scales, guidances, margin, caption, steps, size, report=reporter(progress))

    tune.__annotations__["request"] = gr.Request  # Gradio hands it its request

    shown = [ui.direction_text, ui.direction_plot]
    on_button(ui.preview_button, preview, [ui.source, ui.target], shown, ui.direction_status, api_name="preview")
    on_button(ui.save_button, save, [ui.source, ui.target, ui.save_name, ui.save_replace], shown, ui.direction_status,
              api_name="save_direction", listing=listing)
    ui.compose_add.click(
        add_part, [ui.compose_rows, ui.compose_pick, ui.compose_weight], ui.compose_rows, api_name=False, queue=False
    )
    ui.compose_drop.click(drop_part, ui.compose_rows, ui.compose_rows, api_name=False, queue=False)
    on_button(ui.compose_button, compose, [ui.compose_name, ui.compose_rows, ui.compose_replace], [ui.compose_text],
              ui.compose_text, api_name="compose", listing=listing)
    ui.plot_name.change(plot, ui.plot_name, [ui.direction_text, ui.direction_plot], api_name="plot")
    on_button(
        ui.tune_button,
        tune,
        [
            ui.tune_name,
            ui.tune_photos,
            ui.tune_scales,
            ui.tune_guidances,
            ui.tune_margin,
            ui.tune_caption,
            ui.steps,
            ui.size,
        ],
        [ui.tune_text, ui.tune_plot],
        ui.tune_status,
        api_name="tune",
        concurrency_id="model",
        concurrency_limit=1,
        preprocess=False,
    )
