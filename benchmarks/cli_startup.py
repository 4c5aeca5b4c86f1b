"""Start-up of read-only commands on a large bank: `dbank concepts` and `dbank diff`.

Builds a bank of --concepts concepts (statistics [77, --hidden-size] each, 3 sentences each),
then times each command as a fresh process (best of --repeat) and says whether it imported torch
or SQLAlchemy (a SQLite bank is read through the standard library's sqlite3: store/quick_read.py).
Targets (#35): `dbank concepts` and `dbank diff` at most 0.3 s wall each on a bank of 10,000
concepts, `dbank --version` under 0.15 s. Baselines: the same answers through the Bank's rooms
(SQLAlchemy), timed here in the same run; and the commands before the house was split into rooms
(commit 936bc4c), as #35 measured them with --concepts 10000 --hidden-size 64: 0.41 s, 0.54 s and
0.50 s.

    python benchmarks/cli_startup.py                      # 10,000 concepts, 768-d (about 4.7 GB)
    python benchmarks/cli_startup.py --concepts 1000 --hidden-size 64
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def build_bank(path: Path, concepts: int, hidden: int) -> None:
    """A bank with `concepts` concepts written straight through the schema, in one transaction."""
    from sqlalchemy import insert

    from db.models import Concept, Encoder, Moments, Sentence, Statistics
    from direction_bank import Bank
    from direction_bank.text.cleaning import content_hash

    rng = np.random.default_rng(0)
    with Bank(path) as bank, bank.db.writing() as session:
        encoder = Encoder(model="benchmark/random", encoder_class="CLIPTextModel", hidden_size=hidden,
                          max_length=77, fingerprint="0" * 64)
        session.add(encoder)
        session.flush()
        session.execute(insert(Concept), [{"id": i + 1, "name": f"concept{i}"} for i in range(concepts)])
        session.execute(insert(Sentence), [
            {"concept_id": i + 1, "text": f"a photo of concept{i} number {j}",
             "content_hash": content_hash(f"{i}-{j}"), "generator": "benchmark"}
            for i in range(concepts) for j in range(3)
        ])
        for start in range(0, concepts, 500):
            chunk = range(start, min(start + 500, concepts))
            session.execute(insert(Statistics), [
                {"concept_id": i + 1, "encoder_id": encoder.id, "count": 3, "mean_norm": 1.0}
                for i in chunk
            ])
            session.execute(insert(Moments), [
                {"concept_id": i + 1, "encoder_id": encoder.id,
                 "mean": rng.standard_normal((77, hidden), dtype=np.float32).tobytes(),
                 "m2": np.ones((77, hidden), np.float32).tobytes()}
                for i in chunk
            ])


PROBE = (
    "import sys\nfrom direction_bank.cli import main\n"
    "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    assert not e.code\n"
    "sys.stderr.write(' '.join(m.upper() for m in ('torch', 'sqlalchemy') if m in sys.modules))\n"
)
# the same answers through the Bank's rooms, as before store/quick_read.py
THROUGH_BANK = (
    "import sys\nfrom direction_bank import Bank\n"
    "with Bank(sys.argv[1], read_only=True) as bank:\n"
    "    if sys.argv[2:]:\n        print(bank.diff(*sys.argv[2:]).as_dict())\n"
    "    else:\n        print('\\n'.join(s.name for s in bank.concepts()))\n"
)


# #35's figures for commit 936bc4c (--concepts 10000 --hidden-size 64), in seconds
BEFORE = {"version": 0.41, "concepts": 0.54, "diff": 0.50}


def best_wall_of(command: list[str], repeat: int) -> tuple[float, str]:
    """Best wall time of a command, and the heavy libraries it said it imported."""
    best, loaded = float("inf"), ""
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        best = min(best, time.perf_counter() - start)
        if done.returncode:
            raise SystemExit(done.stderr)
        loaded = done.stderr.strip()
    return best, loaded


def best_wall(args: list[str], repeat: int) -> tuple[float, str]:
    """Best wall time of `dbank ARGS` in a fresh interpreter, and the heavy libraries it imported."""
    return best_wall_of([sys.executable, "-c", PROBE, *args], repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concepts", type=int, default=10_000)
    parser.add_argument("--hidden-size", type=int, default=768)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    path = Path(tempfile.mkdtemp(prefix="dbank-startup-")) / "bank.db"
    start = time.perf_counter()
    build_bank(path, args.concepts, args.hidden_size)
    print(f"bank of {args.concepts} concepts, [77, {args.hidden_size}] statistics: "
          f"{path.stat().st_size / 2**20:.0f} MiB, built in {time.perf_counter() - start:.1f} s")
    version, _ = best_wall(["--version"], args.repeat)
    print(f"{'dbank --version':<36}{version:6.3f} s wall (target < 0.15 s; before: {BEFORE['version']:.2f} s)")
    last = f"concept{args.concepts - 1}"
    for label, key, cmd, pair in (("dbank concepts", "concepts", ["concepts"], []),
                                  (f"dbank diff concept1 {last}", "diff", ["diff", "concept1", last, "--json"],
                                   ["concept1", last])):
        wall, loaded = best_wall(["-d", str(path), *cmd], args.repeat)
        rooms, _ = best_wall_of([sys.executable, "-c", THROUGH_BANK, str(path), *pair], args.repeat)
        print(f"{label:<36}{wall:6.3f} s wall (target <= 0.3 s; through the Bank's rooms: {rooms:.3f} s; "
              f"before: {BEFORE[key]:.2f} s), imported: {loaded.lower() or 'neither torch nor SQLAlchemy'}")
    floor, _ = best_wall_of([sys.executable, "-c", "pass"], args.repeat)
    print(f"{'python -c pass (interpreter floor)':<36}{floor:6.3f} s wall")
    path.unlink()


if __name__ == "__main__":
    main()
