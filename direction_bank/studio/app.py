"""The studio's page: Gradio Blocks laid over StudioActions, a module per tab (bank_tab,
directions_tab, edit_tab), each laying out its controls and wiring them to its actions. Every
handler is a call into StudioActions; a BankError or EditorError shows as one line in the page
(and in gradio_client) instead of a traceback. `serve` puts the page on a host and port."""
from __future__ import annotations

import sys
from types import SimpleNamespace

from direction_bank.studio import bank_tab, directions_tab, edit_tab
from direction_bank.studio.page import shown_errors
from direction_bank.studio.server import PAGE_CSS, PAGE_JS, ClientAddress, LoginLimiter, offline_environment, theme
from direction_bank.studio.session import FOLDER_AGE_S, MAX_UPLOAD
from direction_bank.studio.words import exportable


def listed_choices(choices: list, value_then):
    """A list's update after the bank was read again: its new choices, and its value only where
    the name chosen when the refresh began (a name, or a list of names for a multi-select) is
    gone from the bank and must be cleared. A value the bank still holds is left out of the
    update, so a name picked while the refresh was under way is not put back to the old one."""
    import gradio as gr

    values = [choice[1] if isinstance(choice, tuple) else choice for choice in choices]
    if isinstance(value_then, list):  # a NAME@N stays: the bank checks it when it is used
        held = [name for name in value_then if name in values or "@" in name]
        return gr.update(choices=choices) if held == value_then else gr.update(choices=choices, value=held)
    if value_then is None or value_then in values:
        return gr.update(choices=choices)
    return gr.update(choices=choices, value=None)


def build_app(actions, loopback: bool = True):
    """The studio's gr.Blocks. Model work (add, import, caption, generate, edit) runs one job at
    a time through the queue (concurrency id 'model'); reading the bank does not wait for it."""
    offline_environment()
    import gradio as gr

    @shown_errors
    def refresh(concept_value=None, source_value=None, target_value=None, chosen_value=None, plot_value=None,
                tune_value=None, export_value=None, compose_value=None):
        """Every table and list as the bank holds it now (changes from any tab, browser or the
        CLI); a chosen name the bank no longer holds is cleared."""
        concept_rows, direction_rows = actions.concepts_table(), actions.directions_table()
        concepts, directions = [row[0] for row in concept_rows], [row[0] for row in direction_rows]
        return (concept_rows, direction_rows,
                *[listed_choices(concepts, v) for v in (concept_value, source_value, target_value)],
                *[listed_choices(directions, v) for v in (chosen_value, plot_value, tune_value)],
                listed_choices(exportable(directions, concepts), export_value), actions.trash_table(),
                listed_choices(directions, compose_value))

    # names made after the page was built (here or by another writer) are taken too: the bank checks them
    named = {"allow_custom_value": True, "value": None}
    concept_names, direction_names = actions.concept_names(), actions.direction_names()
    # Gradio's own copies of uploads and outputs: swept every 10 minutes of what is over two hours old, and at exit
    with gr.Blocks(title="dbank studio", analytics_enabled=False, delete_cache=(600, FOLDER_AGE_S)) as app:
        model, bank = ((actions.model, actions.database or "the default bank") if loopback
                       else (actions.model_name, actions.bank_name()))  # no server folder for other machines
        gr.Markdown(f"# dbank studio\nmodel `{model}` · bank `{bank}`")
        ui = SimpleNamespace()
        for tab in (bank_tab, directions_tab, edit_tab):
            vars(ui).update(vars(tab.layout(actions, named, concept_names, direction_names)))
        # refresh's outputs, in the order it returns them (the api's /refresh gives them in this order)
        lists = [ui.concepts, ui.directions, ui.concept, ui.source, ui.target, ui.chosen, ui.plot_name, ui.tune_name,
                 ui.export_name, ui.trash, ui.compose_pick]
        chosen_names = [ui.concept, ui.source, ui.target, ui.chosen, ui.plot_name, ui.tune_name, ui.export_name,
                        ui.compose_pick]
        listing = {"fn": refresh, "inputs": chosen_names, "outputs": lists, "api_name": False}
        ui.refresh_button.click(refresh, chosen_names, lists, api_name="refresh")
        app.load(**listing)
        for tab in (ui.bank_tab, ui.directions_tab, ui.edit_tab):  # another tab, browser or the CLI may have changed it
            tab.select(**listing)
        bank_tab.wire(ui, actions, listing)
        directions_tab.wire(ui, actions, listing)
        edit_tab.wire(ui, actions, listing)
    app.queue(default_concurrency_limit=4)
    return app


def serve(actions, host: str, port: int, auth: tuple[str, str] | None = None,
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
               js=PAGE_JS, css=PAGE_CSS, allowed_paths=[str(actions.work_dir)], prevent_thread_lock=not block, max_file_size=MAX_UPLOAD,
               footer_links=["api", "settings"], app_kwargs={"middleware": [Middleware(ClientAddress)]})
    return app
