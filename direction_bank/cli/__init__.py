"""`dbank`, the command-line face of the Bank: the group and its error boundary (app), and the
commands by concern, which register themselves on the group when it first looks one up
(app.BankGroup.COMMAND_MODULES)."""
from __future__ import annotations

from direction_bank.cli.app import cli


def main(argv=None) -> None:
    """Console entry point."""
    cli.main(args=argv, prog_name="dbank")


__all__ = ["cli", "main"]
