"""The studio's Bank tab: the concepts and their sentences, adding a concept, import and export, the
trash; laid out, then wired to StudioActions (studio/bank_actions.py)."""

from __future__ import annotations

from types import SimpleNamespace

from direction_bank.errors import BankError
from direction_bank.studio.page import on_button, path_of, reporter, shown_errors
from direction_bank.studio.words import exportable


def layout(actions, named: dict, concept_names: list[str], direction_names: list[str]) -> SimpleNamespace:
    """The Bank tab's controls, by name."""
    import gradio as gr

    with gr.Tab("Bank", id="bank") as bank_tab:
        with gr.Row():
            concepts = gr.Dataframe(
                headers=["concept", "sentences", "encoders"],
                type="array",
                interactive=False,
                label="concepts",
                elem_id="concepts",
            )
            refresh_button = gr.Button("Refresh", scale=0)
        with gr.Row():
            with gr.Column():
                concept = gr.Dropdown(label="concept", choices=concept_names, elem_id="concept", **named)
                sentences = gr.Dataframe(
                    headers=["id", "sentence"],
                    type="array",
                    interactive=False,
                    column_widths=["12%", "88%"],
                    label="sentences",
                    max_height=300,
                    elem_id="sentences",
                )
                with gr.Row():
                    sentence_id = gr.Number(
                        label="sentence id (click a row to fill it in)", precision=0, elem_id="sentence-id"
                    )
                    remove_sentence_button = gr.Button("Remove sentence")
                with gr.Row():
                    confirm_name = gr.Textbox(label="to remove the concept, type its name", scale=2,
                                              elem_id="confirm-name")
                    remove_concept_button = gr.Button("Remove concept", variant="stop", scale=1, elem_id="remove-concept")
                bank_status = gr.Textbox(label="status", interactive=False, elem_id="bank-status")
            with gr.Column():
                gr.Markdown("## Add a concept")
                new_name = gr.Textbox(label="name")
                with gr.Row():
                    generator = gr.Dropdown(
                        ["local", "openai", "template"],
                        value=None,
                        label="generator",
                        info="empty: openai when OPENAI_API_KEY is set, else local",
                        elem_id="generator",
                    )
                    llm = gr.Dropdown(
                        ["", *actions.llms],
                        value="",
                        label="LLM",
                        info="empty: the generator's default; others as the server offers them",
                    )
                with gr.Row():
                    count = gr.Number(label="sentences", value=200, precision=0, minimum=1, elem_id="count")
                    new_seed = gr.Number(label="seed", value=0, precision=0, minimum=0)
                add_button = gr.Button("Add concept", variant="primary")
                add_status = gr.Textbox(label="report", interactive=False, elem_id="add-status")
                gr.Markdown("## Import or export")
                upload = gr.File(label="dbank .safetensors or pix2pix-zero .pt", file_types=[".safetensors", ".pt"])
                with gr.Row():
                    import_name = gr.Textbox(label="import as (optional)", scale=3)
                    import_replace = gr.Checkbox(label="replace (the old one is kept)", scale=1)
                import_button = gr.Button("Import")
                import_status = gr.Textbox(label="import report", interactive=False, elem_id="import-status")
                export_name = gr.Dropdown(
                    label="export a direction or concept",
                    choices=exportable(direction_names, concept_names),
                    elem_id="export-name",
                    **named,
                )
                export_button = gr.Button("Export")
                export_status = gr.Markdown(elem_id="export-status")
                export_file = gr.File(label="download", interactive=False)
        gr.Markdown("## Trash: removed concepts, directions and sentences, until emptied with the CLI")
        trash = gr.Dataframe(
            headers=["id", "kind", "name", "what", "removed at"],
            type="array",
            interactive=False,
            label="trash",
            elem_id="trash",
        )
        with gr.Row():
            trash_id = gr.Number(label="trash id (click a row to fill it in)", precision=0, elem_id="trash-id")
            restore_as = gr.Textbox(label="restore as (optional: a concept or direction under another name)")
            restore_button = gr.Button("Restore")
        trash_status = gr.Textbox(label="restore report", interactive=False, elem_id="trash-status")
    return SimpleNamespace(
        concepts=concepts, refresh_button=refresh_button, concept=concept, sentences=sentences,
        sentence_id=sentence_id, remove_sentence_button=remove_sentence_button, confirm_name=confirm_name,
        remove_concept_button=remove_concept_button, bank_status=bank_status, new_name=new_name,
        generator=generator, llm=llm, count=count, new_seed=new_seed, add_button=add_button, add_status=add_status,
        upload=upload, import_name=import_name, import_replace=import_replace, import_button=import_button,
        import_status=import_status, export_name=export_name, export_button=export_button,
        export_status=export_status, export_file=export_file,
        trash=trash, trash_id=trash_id, restore_as=restore_as, restore_button=restore_button,
        trash_status=trash_status, bank_tab=bank_tab,
    )


def wire(ui: SimpleNamespace, actions, listing: dict) -> None:
    """The Bank tab's events; `listing` (app.refresh's event) runs after each change to the bank."""
    import gradio as gr

    def restore(entry_id, as_name):
        return actions.restore(entry_id, as_name)

    @shown_errors
    def show_sentences(concept):
        return actions.sentences_table(concept) if concept else []

    def remove_sentence(concept, sentence_id):
        return actions.remove_sentence(concept, sentence_id), actions.sentences_table(concept)

    def remove_concept(concept, typed):
        if not concept or (typed or "").strip() != concept:
            raise BankError("type the concept's name in the box beside the button to remove it")
        return actions.remove_concept(concept), []

    def add_concept(name, generator, llm, count, seed, progress=gr.Progress()):
        return actions.add_concept(name, generator, llm, count, seed, report=reporter(progress))

    def import_file(upload, name, replace):
        return actions.import_file(path_of(upload), name, bool(replace))

    def export(name):
        if not name:
            raise BankError("choose a direction or a concept to export")
        return actions.export(name)

    def row_id(event):
        """The id of a clicked table row (its first cell)."""
        row = getattr(event, "row_value", None)
        return row[0] if row else gr.skip()

    row_id.__annotations__["event"] = gr.SelectData  # Gradio hands it the clicked row

    ui.concept.change(show_sentences, ui.concept, ui.sentences, api_name="sentences")
    on_button(ui.remove_sentence_button, remove_sentence, [ui.concept, ui.sentence_id], [ui.bank_status, ui.sentences],
              ui.bank_status, api_name="remove_sentence", listing=listing, concurrency_id="model", concurrency_limit=1)
    on_button(ui.remove_concept_button, remove_concept, [ui.concept, ui.confirm_name], [ui.bank_status, ui.sentences],
              ui.bank_status, api_name="remove_concept", listing=listing)
    on_button(ui.add_button, add_concept, [ui.new_name, ui.generator, ui.llm, ui.count, ui.new_seed], [ui.add_status],
              ui.add_status, api_name="add_concept", listing=listing, concurrency_id="model", concurrency_limit=1)
    on_button(ui.import_button, import_file, [ui.upload, ui.import_name, ui.import_replace], [ui.import_status],
              ui.import_status, api_name="import", listing=listing, concurrency_id="model", concurrency_limit=1,
              preprocess=False)
    on_button(ui.export_button, export, [ui.export_name], [ui.export_file], ui.export_status, api_name="export")
    ui.sentences.select(row_id, None, ui.sentence_id, api_name=False, queue=False)
    ui.trash.select(row_id, None, ui.trash_id, api_name=False, queue=False)
    on_button(ui.restore_button, restore, [ui.trash_id, ui.restore_as], [ui.trash_status], ui.trash_status,
              api_name="restore", listing=listing)
