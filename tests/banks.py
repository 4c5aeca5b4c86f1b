"""Test banks made once per session by dbank commands and copied into each test that asks."""
from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner


class SqliteBanks:
    """SQLite banks built once per session by a list of dbank commands and copied into each test
    that asks for one (SQLite's backup API: a whole, consistent copy), instead of each test
    running the same commands again (a second or so each, for about 80 tests)."""

    def __init__(self, folder: Path):
        self.folder, self.built = folder, {}

    def copy(self, commands: tuple, model: str, path: str) -> None:
        """The bank `commands` (each (args, stdin or None)) make with `model`, copied to `path`."""
        import sqlite3

        key = (commands, model)
        if key not in self.built:
            built = self.folder / f"bank-{len(self.built)}.db"
            run_commands(str(built), model, commands)
            self.built[key] = built
        source, target = sqlite3.connect(self.built[key]), sqlite3.connect(path)
        try:
            source.backup(target)
        finally:
            source.close()
            target.close()


def run_commands(database: str, model: str, commands: tuple) -> None:
    """Run dbank `commands` ((args, stdin or None) each) in-process on `database` with `model`."""
    from direction_bank.cli import cli

    runner = CliRunner()
    for args, stdin in commands:
        done = runner.invoke(cli, list(args), input=stdin, env={"DBANK_DB": database, "DBANK_MODEL": model},
                             catch_exceptions=False)
        assert done.exit_code == 0, done.output


def bank_from_commands(database: str, model, commands: tuple, sqlite_banks: SqliteBanks) -> None:
    """The bank `commands` make at `database`: a copy of the session's where it is a SQLite file
    (PostgreSQL's is made by the commands)."""
    if "://" in database:
        run_commands(database, str(model), commands)
    else:
        sqlite_banks.copy(commands, str(model), database)
