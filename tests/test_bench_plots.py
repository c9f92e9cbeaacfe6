"""bench/plots.py draws every figure from small synthetic results (no models, a few seconds)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="matplotlib is in the dev extra: pip install -e .[dev]")

from matplotlib.image import imread  # noqa: E402

from bench import plots  # noqa: E402

RNG = np.random.default_rng(0)


def _latency_case(case: str, words: int, ours_ms: float, peer_ms: float) -> dict:
    def stats(ms: float, rtf: float) -> dict:
        runs = sorted((ms * RNG.uniform(0.8, 1.3, 5)).round(1).tolist())
        return {"ttfa_ms_min": runs[0], "ttfa_ms_p50": runs[2], "ttfa_ms_p90": runs[-1], "rtf_p50": rtf,
                "audio_s": words * 0.3, "stall_ms_max": 0.0, "ttfa_ms": runs}

    return {"case": case, "words": words, "rtaudio": stats(ours_ms, 0.2), "piper_tts": stats(peer_ms, 0.19),
            "ttfa_speedup": round(peer_ms / ours_ms, 2)}


def synthetic_results(folder: Path, samples: bool = True) -> None:
    """One JSON per benchmark, shaped like the scripts write them."""
    partial = np.abs(RNG.lognormal(-1.5, 0.8, 300)).round(3).tolist() + [-0.05]
    final = RNG.lognormal(-0.6, 0.6, 40).round(3).tolist()
    stream = {
        "model": "whisper-tiny.en", "files": 3, "audio_s": 30.0, "clock": "virtual real-time",
        "partial_latency_s": {"median": float(np.median(partial)), "p95": float(np.percentile(partial, 95)),
                              "p99": float(np.percentile(partial, 99)), "words": len(partial), "never_shown": 7,
                              "offline_words": len(partial) + 7},
        "final_latency_s": {"median": float(np.median(final)), "p95": float(np.percentile(final, 95)),
                            "count": len(final)},
        "loadavg_before": [1.0, 1.0, 1.0], "loadavg_after": [1.5, 1.0, 1.0],
    }
    if samples:
        stream["partial_latency_s"]["samples"] = partial
        stream["final_latency_s"]["samples"] = final
    t = np.arange(0, 3.0, 0.01)
    env = (0.3 * np.abs(np.sin(3 * t))).round(4)
    words = [{"text": w, "start_s": 0.3 + 0.4 * i, "end_s": 0.6 + 0.4 * i,
              "first_shown_s": None if i == 3 else 0.9 + 0.4 * i, "final_s": 3.2 if i < 5 else None}
             for i, w in enumerate("and so my fellow americans ask".split())]
    timeline = {
        "file": "jfk.flac", "reference": "And so, my fellow Americans: ask", "streaming": "And so my fellow Americans.",
        "duration_s": 3.0, "clock": "virtual", "partial_interval_ms": 250, "envelope_step_s": 0.01,
        "envelope_min": (-env).tolist(), "envelope_max": env.tolist(), "words": words,
        "captions": [{"emitted_s": 0.5 + 0.25 * i, "audio_s": 0.5 + 0.25 * i, "stability": "partial", "segment": 0,
                      "start_s": 0.0, "end_s": 0.5 + 0.25 * i, "text": "and so"} for i in range(10)]
        + [{"emitted_s": 3.2, "audio_s": 3.0, "stability": "final", "segment": 0, "start_s": 0.0, "end_s": 2.6,
            "text": "And so my fellow Americans."}],
        "machine": {"cpus": 2, "processor": "x86_64", "loadavg_before": [0.5, 0, 0], "loadavg_after": [0.7, 0, 0]},
    }
    tts = {"machine": {"cpus": 2, "processor": "x86_64", "loadavg_before": [1.0], "loadavg_after": [1.2]},
           "peer": "piper-tts 1.8.0", "voice": "piper-joe",
           "latency": [_latency_case("short", 4, 45, 90), _latency_case("medium", 21, 80, 340),
                       _latency_case("long", 48, 55, 860)]}
    server = {"command": "bench/server.py --max-clients 4", "machine": {"cpus": 2, "load_avg_1m": 2.0},
              "model": "whisper-tiny.en", "budget_ms": 1500.0, "seconds_per_client": 15.0,
              "peer": {"clients": 1, "p50_ms": 300.0, "p95_ms": 700.0},
              "steps": [{"clients": n, "p50_ms": 250.0 * n, "p95_ms": 400.0 * n * n, "real_time": n < 3}
                        for n in (1, 2, 3)],
              "max_real_time_clients": 2, "cpu_s_per_audio_s_per_stream": 0.4, "cpu_bound_streams": 5.0}

    def system(wer: float, rtf: float) -> dict:
        return {"rtf": rtf, "wall_s": rtf * 30, "wer": {"pooled": {"wer": wer}}}

    offline = {"whisper-tiny.en": {"audio_s": 30.0, "files": 3, "threads": 2, "machine": "x86_64",
                                   "systems": {"ours-int8": system(0.06, 0.06), "fw-int8": system(0.065, 0.16),
                                               "ours-int8-30s": system(0.067, 0.11)}}}
    trials = [{"file": f"f{i}.flac", "end_of_turn_s": x, "first_token_s": x, "voice_to_voice_s": x + 0.2}
              for i, x in enumerate([0.3, 0.4, 0.5, -0.8])]
    voice = {"summary": {"trials": 4, "of": 5, "cpus": 2, "load_avg": [3.0, 2, 2]}, "trials": trials}
    for name, d in (("stt_stream", stream), ("timeline", timeline), ("tts", tts), ("server", server),
                    ("stt_offline", offline), ("voice_loop", voice)):
        (folder / f"{name}.json").write_text(json.dumps(d))


@pytest.fixture(autouse=True)
def low_dpi(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plots, "DPI", 50)  # same drawing, fewer pixels: keeps the test fast


def _drawn(png: Path) -> None:
    assert png.stat().st_size > 8_000, png
    image = imread(png)
    assert image.shape[0] > 150 and image.shape[1] > 350, (png, image.shape)
    ink = image[..., :3].mean(axis=2) < 0.9  # drawn (non-white) pixels
    assert 0.02 < ink.mean() < 0.6, (png, ink.mean())


def test_every_figure_is_drawn(tmp_path: Path) -> None:
    synthetic_results(tmp_path)
    written = plots.make_all(tmp_path, tmp_path / "png")
    assert sorted(p.name for p in written) == sorted(plots.PLOTS)
    for png in written:
        _drawn(png)


def test_stream_results_without_raw_samples_still_plot(tmp_path: Path) -> None:
    synthetic_results(tmp_path, samples=False)
    d = json.loads((tmp_path / "stt_stream.json").read_text())
    _drawn(plots.plot_caption_latency(d, tmp_path / "cdf.png", "note"))


def test_missing_results_are_skipped(tmp_path: Path) -> None:
    synthetic_results(tmp_path)
    for name in plots.PLOTS.values():
        if name[0] != "voice_loop.json":
            (tmp_path / name[0]).unlink()
    assert [p.name for p in plots.make_all(tmp_path, tmp_path / "png")] == ["voice_loop.png"]


def test_machine_note_names_cores_and_load() -> None:
    note = plots.machine_note({"machine": {"cpus": 2, "processor": "x86_64", "load_avg_1m": 7.3}}, "server.json")
    assert note == "2 cores x86_64, load average 7.3 during the run; data: bench/results/server.json"
    suite = {"machine": {"cpus": 2}, "scripts": {"stt_offline": {"loadavg_before": [1.0], "loadavg_after": [2.0]}}}
    assert "load average 1.0-2.0" in plots.machine_note({}, "stt_offline.json", suite)
