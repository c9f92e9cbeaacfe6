"""A short soak in the suite: bench/soak.py's run and checks, 2 clients for 30 s (the bench runs 30 min)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.soak import SoakConfig, print_table, run_soak  # noqa: E402

pytestmark = pytest.mark.slow


def test_short_soak_keeps_memory_flat_and_every_final(speech_dir: Path) -> None:
    # The bench's bound is 5% growth after a 60 s warm-up over 30 min. Here the warm-up is 10 s and the
    # run 30 s: the first sessions still grow onnxruntime's arenas and glibc's per-thread heaps. Measured
    # on this 2-core machine, same code before and after session 7: +9.6, 10.9, 11.2, 11.2 and once
    # +17.8% (a fresh-clone CI run failed the old 15% bound), so the bound is 25%. That still fails on a
    # gross leak: the run opens 4-5 sessions, and a per-session model copy (tiny.en's int8 ONNX graphs
    # are ~120 MB) adds far more than 140 MB (25% of ~560 MB); small slow leaks are the 30-minute bench's
    # job.
    cfg = SoakConfig(clients=2, minutes=0.5, program_s=8.0, warmup_s=10.0, sample_s=0.5, windows=3,
                     max_rss_growth=0.25)
    result = run_soak(cfg)
    print()
    print_table(result)
    assert result["sessions"] >= 3 and not result["errors"], (result["sessions"], result["errors"])
    assert result["checks"]["every_final_arrived"], result["windows"]
    assert result["checks"]["rss_flat"], (result["rss_after_warmup_mb"], result["rss_end_mb"])
    assert result["checks"]["latency_steady"], result["windows"]
