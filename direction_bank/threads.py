"""How many CPU threads torch uses for local sentence generation and embedding, chosen on
purpose: torch's own default counts the machine's cores, not the ones this process may use (a
container, `taskset`, a batch scheduler), and oversubscribed threads run slower than fewer."""
from __future__ import annotations

import os


def cpu_threads(requested: int | None = None, sharing: int = 1) -> int:
    """`requested` (--threads, DBANK_THREADS); else OMP_NUM_THREADS where it is set; else the
    cores this process may run on (os.sched_getaffinity) shared among `sharing` workers."""
    if requested:
        return requested
    omp = os.environ.get("OMP_NUM_THREADS", "").strip()
    if omp.isdigit() and int(omp) > 0:
        return int(omp)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // sharing)


def use_cpu_threads(requested: int | None = None, sharing: int = 1) -> int:
    """Set torch's CPU thread count (see cpu_threads); returns it."""
    import torch

    threads = cpu_threads(requested, sharing)
    torch.set_num_threads(threads)
    return threads
