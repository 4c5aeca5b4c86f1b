"""Sentences stored per second with 1, 2, 4 and 8 concurrent writer processes, on SQLite and on
PostgreSQL, with a fake encoder (testing.FakeEncoder, 768-d) so the database is what is measured.
Each writer adds --sentences sentences in batches of --batch-size (one transaction per batch, each
rewriting the concept's 473 KB of statistics), either all into one concept or each into its own.

    python benchmarks/concurrent_writers.py                                   # SQLite only
    python benchmarks/concurrent_writers.py --postgres "$(scripts/start-test-postgres.sh)"
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from pathlib import Path


def _write(database: str, concept: str, writer: int, count: int, batch_size: int) -> None:
    from direction_bank import Bank
    from direction_bank.testing import FakeEncoder

    sentences = [f"a {concept} seen by writer {writer} number {i}" for i in range(count)]
    with Bank(database) as bank:
        bank.add_sentences(concept, sentences, FakeEncoder(), batch_size=batch_size)


def run(database: str, writers: int, same_concept: bool, count: int, batch_size: int) -> float:
    """Sentences stored per second by `writers` processes."""
    from direction_bank import Bank
    from direction_bank.testing import FakeEncoder

    with Bank(database) as bank:
        bank.register_encoder(FakeEncoder())
    context = multiprocessing.get_context("fork")
    processes = [
        context.Process(target=_write, args=(database, "shared" if same_concept else f"own{w}", w, count, batch_size))
        for w in range(writers)
    ]
    start = time.perf_counter()
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    elapsed = time.perf_counter() - start
    if any(p.exitcode for p in processes):
        raise SystemExit("a writer failed")
    return writers * count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=200, help="per writer")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--writers", default="1,2,4,8")
    parser.add_argument("--postgres", default=os.environ.get("DBANK_TEST_POSTGRES_URL"),
                        help="a PostgreSQL URL whose server may get scratch databases")
    args = parser.parse_args()
    from direction_bank.testing import fresh_postgres_database

    counts = [int(n) for n in args.writers.split(",")]
    engines = ["sqlite"] + (["postgresql"] if args.postgres else [])
    print(f"{args.sentences} sentences per writer, batches of {args.batch_size}, fake 768-d encoder, "
          f"{os.cpu_count()} CPUs")
    print(f"{'engine':<12}{'writers':>8}{'one concept':>16}{'own concepts':>16}   (sentences/s)")
    for engine in engines:
        for writers in counts:
            rates = []
            for same in (True, False):
                if engine == "sqlite":
                    database = str(Path(tempfile.mkdtemp()) / "bank.db")
                else:
                    database = fresh_postgres_database(args.postgres, f"dbank_bench_{writers}_{int(same)}")
                rates.append(run(database, writers, same, args.sentences, args.batch_size))
            print(f"{engine:<12}{writers:>8}{rates[0]:>16.1f}{rates[1]:>16.1f}")


if __name__ == "__main__":
    main()
