"""Direction histories: a live name's versions are 1..N, and so are the versions a direction
trash entry holds. Renaming a name with its whole history, finding split or orphaned histories
(`dbank check`) and mending them without losing a version (`dbank check --repair`). Every
function runs inside the caller's transaction."""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone

from sqlalchemy import select

from db.models import Direction, TrashEntry
from direction_bank.errors import NameTaken
from direction_bank.names import VERSION_SUFFIX, check_direction_name, check_name
from direction_bank.store.rows import TRASH_NAME_PREFIX, lock_direction_names, trash_name, unknown_direction


def rename_direction(session, old: str, new: str) -> int:
    """Give every version of the direction named exactly `old` the name `new` (checked by
    check_direction_name, not in use); returns the versions renamed. `old` is taken as written,
    never as NAME@N, so a name from before the rule can be renamed."""
    old, new = check_name(old, "direction"), check_direction_name(new)
    lock_direction_names(session, old, new)
    rows = session.scalars(select(Direction).where(Direction.name == old)).all()
    if not rows:
        raise unknown_direction(session, old)
    if new != old:
        if session.scalar(select(Direction.id).where(Direction.name == new).limit(1)) is not None:
            raise NameTaken(f"a direction named {new!r} exists; choose another name")
        for row in rows:
            row.name = new
    return len(rows)


def _span(versions) -> str:
    return ", ".join(str(v) for v in sorted(versions))


def _whole(versions) -> bool:
    return sorted(versions) == list(range(1, len(versions) + 1))


def _live_and_trashed(session):
    """({live name: [rows]}, {trash entry id: [rows]}, [rows named as trash with no entry])."""
    live, trashed, stray = defaultdict(list), defaultdict(list), []
    for row in session.scalars(select(Direction).order_by(Direction.version)):
        if row.trash_id is not None:
            trashed[row.trash_id].append(row)
        elif row.name.startswith(TRASH_NAME_PREFIX):
            stray.append(row)
        else:
            live[row.name].append(row)
    return live, trashed, stray


def history_problems(session) -> list[str]:
    """One line for each direction history that is not whole: a live name or a trash entry
    whose versions are not 1..N (split), a direction trash entry with no versions or rows left
    in the trash without an entry (orphaned), and names that read as a version reference."""
    problems = []
    live, trashed, stray = _live_and_trashed(session)
    for name, rows in sorted(live.items()):
        versions = [row.version for row in rows]
        if not _whole(versions):
            problems.append(f"direction {name!r}: versions {_span(versions)}, not 1 to {len(versions)}: a split "
                            "history (dbank check --repair mends it)")
        if VERSION_SUFFIX.search(name):
            base, version = name.rsplit("@", 1)
            problems.append(f"direction {name!r}: its name reads as version {int(version)} of {base!r}, which "
                            f"show, edit and export take instead (dbank direction rename {name!r} NEW)")
    entries = session.scalars(select(TrashEntry).where(TrashEntry.kind == "direction")).all()
    for entry in entries:
        versions = [row.version for row in trashed.get(entry.id, [])]
        if not versions:
            problems.append(f"trash #{entry.id} ({entry.name!r}) holds no versions: an orphaned entry "
                            "(dbank check --repair removes it)")
        elif not _whole(versions):
            problems.append(f"trash #{entry.id} ({entry.name!r}): versions {_span(versions)}, not 1 to "
                            f"{len(versions)}: a split history (dbank check --repair mends it)")
    if stray:
        problems.append(f"{len(stray)} direction versions are marked as trashed but no trash entry holds them: "
                        "orphaned (dbank check --repair gives them an entry)")
    return problems


def _renumber(session, rows) -> None:
    """Versions 1..N in the order the rows had, each recipe keeping its old number
    (renumbered_from)."""
    old = {row.id: row.version for row in rows}
    for index, row in enumerate(rows):  # out of the way first: (name, version) is unique
        row.version = -(index + 1)
    session.flush()
    for number, row in enumerate(sorted(rows, key=lambda r: old[r.id]), start=1):
        row.version = number
        if old[row.id] != number:
            row.recipe = {**(row.recipe or {}), "renumbered_from": old[row.id]}
    session.flush()


def repair_histories(session) -> list[str]:
    """Mend what history_problems finds, losing no version; returns what was done, one line
    each. A live name missing its first versions takes them back from the trash entry of that
    name that holds exactly those (the split a racing remove left), else its versions are
    numbered 1..N again (each recipe keeps its old number); likewise inside a trash entry. An
    empty direction entry is deleted; stray trashed rows get an entry of their own. Names that
    read as a version are left to dbank direction rename."""
    done = []
    live, trashed, stray = _live_and_trashed(session)
    entries = {entry.id: entry for entry in
               session.scalars(select(TrashEntry).where(TrashEntry.kind == "direction").with_for_update())}
    for name, rows in sorted(live.items()):
        versions = {row.version for row in rows}
        if _whole(versions):
            continue
        lock_direction_names(session, name)
        missing = set(range(1, max(versions) + 1)) - versions
        filler = next((entry_id for entry_id, entry in entries.items() if entry.name == name
                       and {row.version for row in trashed.get(entry_id, [])} == missing), None)
        if filler is not None:
            for row in trashed.pop(filler):
                row.name, row.trash_id = name, None
            session.flush()
            session.delete(entries.pop(filler))
            done.append(f"direction {name!r}: versions {_span(missing)} taken back from trash #{filler}, beside "
                        f"{_span(versions)}: one history again (dbank direction remove {name} trashes it whole)")
        else:
            _renumber(session, rows)
            done.append(f"direction {name!r}: versions {_span(versions)} numbered 1 to {len(rows)} again "
                        "(each recipe keeps its old number as renumbered_from)")
    for entry_id, entry in entries.items():
        rows = trashed.get(entry_id, [])
        if not rows:
            session.delete(entry)
            done.append(f"trash #{entry_id} ({entry.name!r}) held no versions: removed")
        elif not _whole([row.version for row in rows]):
            _renumber(session, rows)
            done.append(f"trash #{entry_id} ({entry.name!r}): versions numbered 1 to {len(rows)} again")
    if stray:
        entry = TrashEntry(kind="direction", name=f"recovered-{stray[0].id}", trashed_at=datetime.now(timezone.utc),
                           detail={"versions": len(stray), "recovered": True})
        session.add(entry)
        session.flush()
        for row in stray:
            row.name, row.trash_id = trash_name(entry.id), entry.id
        _renumber(session, stray)
        done.append(f"{len(stray)} stray trashed versions: now trash #{entry.id} ('recovered-{stray[0].id}')")
    session.flush()
    return done
