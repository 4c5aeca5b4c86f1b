"""A work queue of concepts in the bank itself, for workers on one or many machines: each claims
a concept under a lease (PostgreSQL: FOR UPDATE SKIP LOCKED), renews it while it works, and a
concept whose worker died is picked up again when the lease runs out."""
from __future__ import annotations

import csv
import io
import os
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from sqlalchemy import func, or_, select

from db.models import QueueItem
from direction_bank.errors import BankError
from direction_bank.names import check_name

if TYPE_CHECKING:
    from direction_bank.bank import Bank

DEFAULT_LEASE_S = 300.0
MAX_TARGET = 2**31 - 1  # a 32-bit column on PostgreSQL


def parse_concepts(text: str, default_target: int) -> list[tuple[str, int]]:
    """(concept, target) pairs from one concept per line, or CSV lines 'concept,count'."""
    pairs = []
    for row in csv.reader(io.StringIO(text)):
        if not row or not row[0].strip() or row[0].strip().startswith("#"):
            continue
        name = row[0].strip()
        try:
            target = int(row[1]) if len(row) > 1 and row[1].strip() else default_target
        except ValueError:
            if not pairs and row[1].strip().lower() in ("count", "target", "n"):
                continue  # a header line
            raise BankError(f"{name!r}: count {row[1]!r} is not a number") from None
        if not 1 <= target <= MAX_TARGET:
            raise BankError(f"{name!r}: count {target} is not from 1 to {MAX_TARGET}")
        pairs.append((check_name(name), target))
    if not pairs:
        raise BankError("no concepts in the file")
    return pairs


def enqueue(bank: Bank, pairs: list[tuple[str, int]]) -> int:
    """Add the concepts not queued yet (a queued one keeps its place); returns how many were new."""
    def work(session) -> int:
        queued = set(session.scalars(select(QueueItem.concept)))
        new = [QueueItem(concept=name, target=target, status="pending", attempts=0, sentence_count=0)
               for name, target in dict(pairs).items() if name not in queued]
        session.add_all(new)
        return len(new)

    return bank.db.write(work)


def worker_name() -> str:
    """host:pid, so `dbank queue` shows where work runs."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _aware(moment: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes for timezone-aware columns; they were written in UTC
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment


@dataclass
class Claim:
    """A concept this worker holds until its lease expires."""

    id: int
    concept: str
    target: int


def claim(bank: Bank, worker: str, lease_s: float) -> Claim | None:
    """Take the next pending concept, or one whose lease expired; None when there is none now."""
    def work(session) -> Claim | None:
        now = _now()
        row = session.scalar(
            select(QueueItem)
            .where(or_(QueueItem.status == "pending",
                       (QueueItem.status == "running") & (QueueItem.lease_expires < now)))
            .order_by(QueueItem.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        if row is None:
            return None
        row.status, row.worker, row.attempts = "running", worker, row.attempts + 1
        row.lease_expires = now + timedelta(seconds=lease_s)
        return Claim(row.id, row.concept, row.target)

    return bank.db.write(work)


def renew(bank: Bank, item: Claim, worker: str, lease_s: float, sentence_count: int) -> None:
    """Extend this worker's lease (and record progress)."""
    def work(session) -> None:
        row = session.get(QueueItem, item.id, with_for_update=True)
        if row is not None and row.worker == worker:
            row.lease_expires = _now() + timedelta(seconds=lease_s)
            row.sentence_count = sentence_count

    bank.db.write(work)


def finish(bank: Bank, item: Claim, worker: str, sentence_count: int, error: str | None = None) -> None:
    """Mark the claim done (target reached), short (the generator ran out) or pending again (error)."""
    def work(session) -> None:
        row = session.get(QueueItem, item.id, with_for_update=True)
        if row is None or row.worker != worker:
            return  # the lease ran out and another worker took it
        row.sentence_count = sentence_count
        row.error = error
        row.lease_expires = None
        row.status = "pending" if error else ("done" if sentence_count >= row.target else "short")

    bank.db.write(work)


def next_expiry(bank: Bank) -> datetime | None:
    """When the earliest running lease runs out, or None when nothing is running."""
    with bank.db.reading() as session:
        return _aware(session.scalar(
            select(func.min(QueueItem.lease_expires)).where(QueueItem.status == "running")))


def run_worker(bank: Bank, make_generator, encoder, lease_s: float = DEFAULT_LEASE_S,
               batch_size: int = 64, make_cleaner=None, poll_s: float = 1.0, max_candidates: int | None = None,
               on_done=None) -> list[str]:
    """Claim and fill concepts until the queue is finished; returns the concepts this worker did
    and hands each one's AddReport to `on_done`. Waits while others hold leases, so a dead
    worker's concept is taken over when its lease ends."""
    worker = worker_name()
    done = []
    while True:
        item = claim(bank, worker, lease_s)
        if item is None:
            expiry = next_expiry(bank)
            if expiry is None:
                return done
            time.sleep(max(0.05, min(poll_s, (expiry - _now()).total_seconds())))
            continue
        try:
            report = bank.fill_concept(
                item.concept, make_generator(), item.target, encoder, batch_size=batch_size,
                cleaner=make_cleaner() if make_cleaner else None, max_candidates=max_candidates,
                on_batch=lambda count: renew(bank, item, worker, lease_s, count),
            )
        except BankError as error:
            finish(bank, item, worker, bank.sentence_count(item.concept), str(error))
            raise
        finish(bank, item, worker, report.sentence_count)
        done.append(item.concept)
        if on_done is not None:
            on_done(report)


def queue_status(bank: Bank) -> dict:
    """Counts by status and every queued concept's state; its sentences are those stored now
    (each batch commits on its own), so a running concept shows progress between renewals."""
    from db.models import Concept, Sentence

    with bank.db.reading() as session:
        rows = session.scalars(select(QueueItem).order_by(QueueItem.id)).all()
        stored = dict(session.execute(select(Concept.name, func.count(Sentence.id)).join(Sentence)
                                      .where(Concept.name.in_([r.concept for r in rows])).group_by(Concept.name)).all())
        items = [
            {"concept": r.concept, "target": r.target, "status": r.status,
             "sentences": stored.get(r.concept, 0) if r.status == "running" else r.sentence_count,
             "worker": r.worker, "attempts": r.attempts, "error": r.error,
             "lease_expires": _aware(r.lease_expires).isoformat() if r.lease_expires else None}
            for r in rows
        ]
    counts: dict[str, int] = {}
    for item in items:
        counts[item["status"]] = counts.get(item["status"], 0) + 1
    return {"counts": counts, "items": items}
