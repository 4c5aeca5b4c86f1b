"""Start-up of read-only commands on a large bank: `dbank concepts` and `dbank diff`.

Builds a bank of --concepts concepts (statistics [77, --hidden-size] each, 3 sentences each),
then times each command as a fresh process (best of --repeat) and checks that neither imports
torch. Targets (#35): `dbank concepts` and `dbank diff` at most 0.3 s wall each on a bank of 10,000
concepts, `dbank --version` under 0.15 s. Baseline: the same commands before the house was split
into rooms (commit 936bc4c, where `import direction_bank` loaded SQLAlchemy), as #35 measured them
with --concepts 10000 --hidden-size 64: 0.41 s, 0.54 s and 0.50 s.

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
    "sys.stderr.write('TORCH' if 'torch' in sys.modules else '')\n"
)


# #35's figures for commit 936bc4c (--concepts 10000 --hidden-size 64), in seconds
BEFORE = {"version": 0.41, "concepts": 0.54, "diff": 0.50}


def best_wall_of(command: list[str], repeat: int) -> tuple[float, bool]:
    """Best wall time of a command, and whether it said that torch was imported."""
    best, torch_loaded = float("inf"), False
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        best = min(best, time.perf_counter() - start)
        if done.returncode:
            raise SystemExit(done.stderr)
        torch_loaded |= "TORCH" in done.stderr
    return best, torch_loaded


def best_wall(args: list[str], repeat: int) -> tuple[float, bool]:
    """Best wall time of `dbank ARGS` in a fresh interpreter, and whether torch was imported."""
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
    for label, key, cmd in (("dbank concepts", "concepts", ["concepts"]),
                            ("dbank diff concept1 concept9999", "diff",
                             ["diff", "concept1", f"concept{args.concepts - 1}", "--json"])):
        wall, torch_loaded = best_wall(["-d", str(path), *cmd], args.repeat)
        print(f"{label:<36}{wall:6.3f} s wall (target <= 0.3 s; before: {BEFORE[key]:.2f} s), "
              f"torch imported: {torch_loaded}")
    floor, _ = best_wall_of([sys.executable, "-c", "pass"], args.repeat)
    print(f"{'python -c pass (interpreter floor)':<36}{floor:6.3f} s wall")
    path.unlink()


if __name__ == "__main__":
    main()
