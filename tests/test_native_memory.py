"""Freed native memory goes back to the OS (what keeps a long-running server's RSS flat)."""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

from rtaudio.native_memory import release_free_memory


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_freed_arrays_on_worker_threads_leave_the_resident_set() -> None:
    """Worker threads allocate and free many mid-size arrays, keeping small ones alive in between (the
    pattern that strands free pages in glibc's per-thread arenas); trimming returns them."""
    keep: list[np.ndarray] = []

    def work(seed: int) -> None:
        rng = np.random.default_rng(seed)
        held = []
        for i in range(400):
            held.append(np.ones(int(rng.integers(20_000, 120_000)), np.float32))  # below the mmap threshold
            if i % 4 == 0:
                keep.append(np.ones(64, np.float32))  # pins the top of the heap
            if len(held) > 64:
                held.clear()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    before = rss_mb()
    assert release_free_memory()
    after = rss_mb()
    assert before - after > 5.0, (before, after)
    assert len(keep) == 400
