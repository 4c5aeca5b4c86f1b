"""Schema versions of a bank (Alembic scripts under versions/), applied when a bank is opened."""
from __future__ import annotations

from pathlib import Path

# The newest revision under versions/; a bank at this revision needs no migration (checked by a
# test against Alembic's own view, so opening a bank need not load Alembic at all).
HEAD = "0006"
# every revision this dbank knows, oldest first: a bank at another one was made by a newer dbank
REVISIONS = ("0001", "0002", "0003", "0004", "0005", "0006")

SCRIPT_LOCATION = Path(__file__).parent


def upgrade(connection, revision: str = "head") -> None:
    """Bring the schema behind `connection` (inside a transaction) up to `revision` (HEAD)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)
