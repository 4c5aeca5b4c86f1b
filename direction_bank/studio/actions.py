"""What the studio can do, as plain calls over the Bank, jobs/ and the Editor: tables, PIL images
and file paths out, BankError / EditorError (one line) for bad input. Each tab's actions live in
their own module over one shared session; the Gradio page only lays them out, and gradio_client
and the tests call the same functions through it."""
from __future__ import annotations

from direction_bank.studio.bank_actions import BankActions
from direction_bank.studio.direction_actions import DirectionActions
from direction_bank.studio.edit_actions import EditActions


class StudioActions(BankActions, DirectionActions, EditActions):
    """One server's studio: the session (studio/session.py) with each tab's actions."""
