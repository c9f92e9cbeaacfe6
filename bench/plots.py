"""Benchmark figures: bench/results/*.json in, docs/bench/*.png out (matplotlib, no display needed).

    .venv/bin/python -m bench.plots [--results bench/results] [--out docs/bench]

bench/run_all.py calls this at the end of the suite. Each figure is drawn from one JSON and skipped
(with a line saying so) when that JSON is missing; older JSON without raw samples is drawn from its
percentiles. Every figure carries the machine and the load average recorded during its run.

    caption_latency_cdf.png  stt_stream.json   partial / final caption latency CDF, whisper_streaming marked
    caption_timeline.png     timeline.json     one recording: waveform, words, when each caption appeared
    tts_ttfa.png             tts.json          time to first audio and RTF per sentence length vs piper-tts
    server_capacity.png      server.json       p95 partial latency vs concurrent sessions, budget line
    stt_offline.png          stt_offline.json  WER and real-time factor vs faster-whisper
    voice_loop.png           voice_loop.json   voice-to-voice latency per turn, by stage
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure  # Figure objects render with Agg, no pyplot state or display
from matplotlib.layout_engine import ConstrainedLayoutEngine

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
OUT = REPO / "docs" / "bench"
OURS = "#1f77b4"  # rtaudio
OURS_LIGHT = "#7fb3e0"
PEER = "#ff7f0e"  # the system users would pick instead
PEER_LIGHT = "#ffbb78"
FINAL = "#2ca02c"
BAD = "#d62728"
DPI = 120
Json = dict[str, Any]


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and np.isfinite(x) else None


def machine_note(d: Json, source: str, suite: Json | None = None) -> str:
    """'2 cores x86_64, load average 3.1-3.8 during the run; data: bench/results/x.json' from whatever the
    JSON recorded (each script stores the machine a little differently), else from run_all.json."""
    machine: Json = d["machine"] if isinstance(d.get("machine"), dict) else {}
    summary: Json = d["summary"] if isinstance(d.get("summary"), dict) else {}
    fallback: Json = (suite or {}).get("machine", {})
    script: Json = (suite or {}).get("scripts", {}).get(source.removesuffix(".json"), {})
    cpus = machine.get("cpus") or summary.get("cpus") or fallback.get("cpus")
    proc = machine.get("processor") or fallback.get("processor") or (d.get("machine") if isinstance(
        d.get("machine"), str) else None)
    loads = []
    for holder in (d, machine, summary):
        for key in ("loadavg_before", "loadavg_after", "load_avg", "load_avg_1m"):
            v = holder.get(key)
            v = v[0] if isinstance(v, list) and v else v
            if (x := _num(v)) is not None:
                loads.append(x)
    if not loads:  # the script did not record it: run_all did, around the script
        loads = [x for key in ("loadavg_before", "loadavg_after") if (x := _num((script.get(key) or [None])[0]))]
    parts = [" ".join(str(p) for p in (f"{cpus} cores" if cpus else None, proc) if p)]
    if loads:
        lo, hi = min(loads), max(loads)
        parts.append(f"load average {lo:.1f}" + (f"-{hi:.1f}" if hi - lo >= 0.05 else "") + " during the run")
    else:
        parts.append("load not recorded")
    return ", ".join(p for p in parts if p) + f"; data: bench/results/{source}"


def _figure(size_in: tuple[float, float], bottom: float) -> Figure:
    """A figure laid out above a strip of height `bottom` (fraction) kept free for the notes."""
    return Figure(figsize=size_in, layout=ConstrainedLayoutEngine(rect=(0, bottom, 1, 1 - bottom)))


def _finish(fig: Figure, note: str, out: Path) -> Path:
    fig.text(0.01, 0.01, note, fontsize=7, color="0.35", ha="left", va="bottom")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI)
    return out


def _ecdf(ax: Axes, xs: list[float], floor: float, **kw: Any) -> int:
    """Step CDF of `xs` with values below `floor` drawn at it (log axis); returns how many were raised."""
    x = np.sort(np.asarray(xs, dtype=float))
    y = np.arange(1, len(x) + 1) / len(x)
    ax.step(np.maximum(x, floor), y, where="post", **kw)
    return int(np.sum(x < floor))


def plot_caption_latency(d: Json, out: Path, note: str) -> Path:
    """CDF of partial latency (word end -> first caption showing it) and final latency (end of the
    segment's last word -> its FINAL), log time axis so whisper_streaming's 14 s p95 fits."""
    floor = 0.02
    fig = _figure((10, 6), bottom=0.03)
    ax = fig.add_subplot()
    raised = 0
    for key, what, color in (("partial_latency_s", "partial: word end -> first caption showing it", OURS),
                             ("final_latency_s", "final: end of speech -> FINAL caption", FINAL)):
        s = d.get(key) or {}
        n = s.get("words", s.get("count", 0))
        label = f"rtaudio {what}: median {s.get('median', float('nan')):.2f} s, p95 {s.get('p95', float('nan')):.2f} s"
        if s.get("samples"):
            raised += _ecdf(ax, s["samples"], floor, color=color, lw=2, label=f"{label} (n={len(s['samples'])})")
        else:  # JSON from before raw samples were stored: percentiles only
            qs = [(s[k], q) for k, q in (("median", 0.5), ("p95", 0.95), ("p99", 0.99))
                  if _num(s.get(k)) is not None]
            ax.plot([x for x, _ in qs], [q for _, q in qs], "o--", color=color,
                    label=f"{label} (n={n}, percentiles only)")
    ax.plot([1.9, 2.7], [0.5, 0.5], color=PEER, lw=6, solid_capstyle="butt",
            label="whisper_streaming median 1.9-2.7 s (published figure, not run here)")
    ax.plot([14.0], [0.95], marker="D", color=PEER, ls="none", ms=8,
            label="whisper_streaming p95 up to 14 s (published figure)")
    ax.plot([0.6], [0.5], marker="v", color="0.3", ls="none", ms=8, label="goals: median < 0.6 s, p95 < 1.0 s")
    ax.plot([1.0], [0.95], marker="v", color="0.3", ls="none", ms=8)
    ax.set_xscale("log")
    ax.set_xlim(floor, 30)
    ax.set_ylim(0, 1.02)
    ticks = [0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.grid(True, which="major", alpha=0.3)
    ax.set_xlabel("latency (s, log scale)")
    ax.set_ylabel("fraction of words / finals")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=8, frameon=False)
    p = d.get("partial_latency_s") or {}
    files = f"{d.get('files', '?')} files, {float(d.get('audio_s', 0)):.0f} s of speech"
    ax.set_title(f"Live caption latency, {d.get('model', 'whisper')} on CPU ({files})", fontsize=11)
    extra = [f"{p['never_shown']} of {p['offline_words']} words never shown in any caption (not in the CDF)"
             if "never_shown" in p else "", f"{raised} values < {floor} s drawn at {floor} s" if raised else ""]
    ax.text(0.01, 0.98, "\n".join(x for x in extra if x), transform=ax.transAxes, fontsize=8, va="top",
            color="0.3")
    return _finish(fig, f"{d.get('clock', '')}; " + note, out)


def plot_timeline(d: Json, out: Path, note: str) -> Path:
    """Waveform with the words at their times; per word, when it was spoken and when it first appeared in
    a partial and in a final; every caption emission as a tick."""
    words = d.get("words", [])
    caps = d.get("captions", [])
    fig = _figure((10, 3.2 + 0.22 * len(words)), bottom=0.1)
    ax_w, ax_c, ax_t = fig.subplots(3, 1, sharex=True, height_ratios=[1.2, 0.35, max(2.0, 0.16 * len(words))])
    step = float(d.get("envelope_step_s", 0.01))
    lo, hi = np.asarray(d.get("envelope_min", []), float), np.asarray(d.get("envelope_max", []), float)
    t = np.arange(len(lo)) * step
    ax_w.fill_between(t, lo, hi, color="0.55", lw=0)
    peak = float(max(np.max(np.abs(lo), initial=0), np.max(np.abs(hi), initial=0))) or 1.0
    for i, w in enumerate(words):
        ax_w.axvspan(w["start_s"], w["end_s"], color=OURS_LIGHT if i % 2 else PEER_LIGHT, alpha=0.35, lw=0)
        ax_w.text((w["start_s"] + w["end_s"]) / 2, peak * (1.05 if i % 2 else 1.3), w["text"], ha="center",
                  fontsize=7, va="bottom")
    ax_w.set_ylim(-peak * 1.1, peak * 1.75)
    ax_w.set_ylabel("audio")
    ax_w.set_yticks([])
    for c in caps:
        final = c["stability"] == "final"
        ax_c.axvline(c["emitted_s"], ymin=0.05 if final else 0.3, ymax=0.95 if final else 0.7,
                     color=FINAL if final else OURS, lw=2 if final else 1)
    ax_c.set_yticks([])
    ax_c.set_ylabel("captions", rotation=0, ha="right", va="center")
    ys = np.arange(len(words))
    for y, w in zip(ys, words, strict=True):
        ax_t.plot([w["start_s"], w["end_s"]], [y, y], color="0.4", lw=5, solid_capstyle="butt")
        for key, marker, color in (("first_shown_s", "o", OURS), ("final_s", "s", FINAL)):
            if w.get(key) is not None:
                ax_t.plot([w["end_s"], w[key]], [y, y], color=color, lw=0.8, alpha=0.6)
                ax_t.plot([w[key]], [y], marker=marker, color=color, ms=5)
        if w.get("first_shown_s") is None:
            ax_t.text(w["end_s"] + 0.05, y, "never shown", fontsize=7, color=BAD, va="center")
    ax_t.plot([], [], color="0.4", lw=5, label="word spoken (offline alignment)")
    ax_t.plot([], [], "o", color=OURS, label="first shown in a caption (partial)")
    ax_t.plot([], [], "s", color=FINAL, label="first shown in a FINAL")
    ax_t.set_yticks(ys, [w["text"] for w in words], fontsize=7)
    ax_t.set_ylim(len(words) - 0.5, -0.5)
    ax_t.set_xlabel("time since the stream started = audio time (s)")
    ax_t.legend(loc="lower left", fontsize=8)
    ax_t.grid(True, axis="x", alpha=0.3)
    ax_t.set_xlim(0, max(float(d.get("duration_s", 0)), max((c["emitted_s"] for c in caps), default=0)) + 0.3)
    partials = sum(c["stability"] != "final" for c in caps)
    ax_w.set_title(f"Caption timeline: {d.get('file', '?')} streamed live ({partials} partial / stable captions, "
                   f"{len(caps) - partials} finals; partial every {d.get('partial_interval_ms', '?')} ms)",
                   fontsize=10)
    text = textwrap.fill(f"final captions: {d.get('streaming', '')!r}   reference: {d.get('reference', '')!r}",
                         170)
    fig.text(0.01, 0.035, text, fontsize=7, va="bottom")
    return _finish(fig, f"{d.get('clock', '')}; " + note, out)


def plot_tts(d: Json, out: Path, note: str) -> Path:
    """TTFA (median bar, min..p90 whisker, every run as a dot) and RTF per sentence length."""
    rows = d.get("latency", [])
    fig = _figure((10, 4.8), bottom=0.04)
    ax, ax_r = fig.subplots(1, 2, width_ratios=[2, 1])
    x = np.arange(len(rows))
    width = 0.38
    peer = str(d.get("peer", "piper-tts"))
    for k, (key, label, color) in enumerate((("rtaudio", "rtaudio (streams vocoder chunks)", OURS),
                                             ("piper_tts", f"{peer} (whole sentence)", PEER))):
        xs = x + (k - 0.5) * width
        p50 = np.array([r[key]["ttfa_ms_p50"] for r in rows])
        lo = p50 - np.array([r[key]["ttfa_ms_min"] for r in rows])
        hi = np.array([r[key]["ttfa_ms_p90"] for r in rows]) - p50
        ax.bar(xs, p50, width, color=color, label=label, yerr=[lo, hi], capsize=3, ecolor="0.2")
        for xi, r, v in zip(xs, rows, p50, strict=True):
            ax.text(xi, v * 1.08, f"{v:.0f}", ha="center", va="bottom", fontsize=8)
            runs = r[key].get("ttfa_ms") or []
            ax.plot(np.full(len(runs), xi) + np.linspace(-0.08, 0.08, len(runs)), runs, ".", color="0.15", ms=3)
        ax_r.bar(xs, [r[key]["rtf_p50"] for r in rows], width, color=color)
    ax.axhline(100, color="0.3", ls="--", lw=1, label="goal: first audio < 100 ms")
    ax.set_yscale("log")
    ax.set_ylabel("time to first audio (ms, log scale)")
    labels = [f"{r['case']}\n{r['words']} words\n{r['rtaudio']['audio_s']:.1f} s audio" for r in rows]
    ax.set_xticks(x, labels)
    for xi, r in zip(x, rows, strict=True):
        top = max(r["piper_tts"]["ttfa_ms_p90"], r["rtaudio"]["ttfa_ms_p90"])
        ax.text(xi, top * 1.6, f"{r['ttfa_speedup']:.1f}x sooner", ha="center", fontsize=8, color=OURS,
                weight="bold")
    ax.set_ylim(top=ax.get_ylim()[1] * 2.5)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(True, axis="y", which="both", alpha=0.25)
    ax.set_title("Time to first audio: median bar, min-p90 whisker, dots = runs", fontsize=10)
    ax_r.set_xticks(x, [r["case"] for r in rows])
    ax_r.set_ylabel("real-time factor (compute s / audio s)")
    ax_r.set_title("Speed (median RTF, lower is faster)", fontsize=10)
    ax_r.grid(True, axis="y", alpha=0.25)
    fig.suptitle(f"Text to speech vs {peer}, same voice ({d.get('voice', '?')}), interleaved runs", fontsize=11)
    return _finish(fig, note, out)


def plot_server(d: Json, out: Path, note: str) -> Path:
    """p50 / p95 client-measured partial latency per step of concurrent sessions, against the budget."""
    steps = d.get("steps", [])
    fig = _figure((8, 4.8), bottom=0.04)
    ax = fig.add_subplot()
    n = [s["clients"] for s in steps]
    ax.plot(n, [s["p95_ms"] / 1000 for s in steps], "-", color=OURS, lw=2,
            label="p95 partial latency (client-measured)")
    ax.plot(n, [s["p50_ms"] / 1000 for s in steps], "--", color=OURS_LIGHT, lw=1.5, label="median partial latency")
    for s in steps:
        ok = s.get("real_time", True)
        ax.plot([s["clients"]], [s["p95_ms"] / 1000], marker="o" if ok else "X", ms=9 if ok else 11,
                color=OURS if ok else BAD, ls="none")
    ax.plot([], [], "X", color=BAD, ms=10, ls="none", label="step missed real time (p95 or final too late)")
    budget = float(d.get("budget_ms", 1500)) / 1000
    ax.axhline(budget, color=BAD, ls=":", lw=1.5, label=f"budget: p95 <= {budget:.1f} s")
    peer = d.get("peer") or {}
    if _num(peer.get("p95_ms")) is not None:
        ax.plot([1], [peer["p95_ms"] / 1000], "D", color=PEER, ms=8, ls="none",
                label="peer: same engine in-process, 1 stream, no server (p95)")
    if (cap := _num(d.get("cpu_bound_streams"))) is not None:
        ax.axvline(cap, color="0.4", ls="-.", lw=1,
                   label=f"CPU estimate on idle cores: {cap:.1f} streams "
                         f"({d.get('cpu_s_per_audio_s_per_stream', 0):.2f} CPU-s per audio s)")
    ax.set_xlabel("concurrent live sessions (loopback websocket clients, real-time pace)")
    ax.set_ylabel("partial caption latency (s)")
    ax.set_xticks(sorted(set(n) | {1}))
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    best = d.get("max_real_time_clients", "?")
    ax.set_title(f"Server capacity, {d.get('model', '?')}: {best} sessions kept in real time "
                 f"({d.get('seconds_per_client', '?')} s of speech each)", fontsize=11)
    return _finish(fig, f"{d.get('command', '')}; " + note, out)


SYSTEM_LABELS = {"ours-int8": ("rtaudio int8", OURS), "ours-fp32": ("rtaudio fp32", OURS_LIGHT),
                 "fw-int8": ("faster-whisper int8", PEER), "fw-fp32": ("faster-whisper fp32", PEER_LIGHT)}


def plot_stt_offline(d: Json, out: Path, note: str) -> Path:
    """Pooled WER and RTF per model and system (window-sweep variants left out: they are in the JSON)."""
    models = [m for m in ("whisper-tiny.en", "whisper-base") if m in d] + sorted(
        m for m in d if m not in ("whisper-tiny.en", "whisper-base") and isinstance(d[m], dict) and "systems" in d[m])
    fig = _figure((10, 4.6), bottom=0.04)
    ax_w, ax_r = fig.subplots(1, 2)
    x = np.arange(len(models))
    systems = [s for s in SYSTEM_LABELS if any(s in d[m]["systems"] for m in models)]
    width = 0.8 / max(1, len(systems))
    for k, name in enumerate(systems):
        label, color = SYSTEM_LABELS[name]
        xs = x + (k - (len(systems) - 1) / 2) * width
        wer = [d[m]["systems"].get(name, {}).get("wer", {}).get("pooled", {}).get("wer", np.nan) * 100
               for m in models]
        rtf = [d[m]["systems"].get(name, {}).get("rtf", np.nan) for m in models]
        ax_w.bar(xs, wer, width, color=color, label=label)
        ax_r.bar(xs, rtf, width, color=color, label=label)
        for xi, w, r in zip(xs, wer, rtf, strict=True):
            if np.isfinite(w):
                ax_w.text(xi, w, f"{w:.1f}", ha="center", va="bottom", fontsize=7)
                ax_r.text(xi, r, f"{r:.3f}", ha="center", va="bottom", fontsize=7)
    for i, m in enumerate(models):
        s = d[m]["systems"]
        if "ours-int8" in s and "fw-int8" in s:
            ax_r.text(i, max(s["fw-int8"]["rtf"], s["ours-int8"]["rtf"]) * 1.12,
                      f"int8: {s['fw-int8']['rtf'] / s['ours-int8']['rtf']:.1f}x faster", ha="center", fontsize=8,
                      color=OURS, weight="bold")
    ticks = [f"{m.removeprefix('whisper-')}\n{d[m]['files']} files, {d[m]['audio_s']:.0f} s" for m in models]
    for ax, ylabel, title in ((ax_w, "WER (%, pooled, lower is better)", "Accuracy"),
                              (ax_r, "real-time factor (wall s / audio s, lower is faster)", "Speed")):
        ax.set_xticks(x, ticks)
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
        ax.grid(True, axis="y", alpha=0.25)
        ax.set_ylim(top=ax.get_ylim()[1] * 1.2)
    ax_w.legend(loc="upper right", fontsize=8)
    threads = {d[m].get("threads") for m in models}
    fig.suptitle("Offline speech to text: rtaudio (ONNX) vs faster-whisper (CTranslate2), same weights, beam 5, "
                 f"{'/'.join(str(t) for t in threads)} threads", fontsize=11)
    return _finish(fig, note, out)


def plot_voice_loop(d: Json, out: Path, note: str) -> Path:
    """Per-turn latency after the user stops speaking: end-of-turn decision, first responder token, first
    reply sample (voice-to-voice); box = quartiles, dots = turns."""
    trials = d.get("trials", [])
    stages = [("end_of_turn_s", "end-of-turn decision"), ("first_token_s", "first responder token"),
              ("voice_to_voice_s", "first reply audio\n(voice-to-voice)")]
    fig = _figure((8.5, 4.2), bottom=0.05)
    ax = fig.add_subplot()
    data = [[float(t[k]) for t in trials if _num(t.get(k)) is not None] for k, _ in stages]
    ax.boxplot(data, orientation="horizontal", widths=0.5, showfliers=False,
               medianprops={"color": OURS, "lw": 2})
    rng = np.random.default_rng(0)
    for i, xs in enumerate(data, start=1):
        ax.plot(xs, i + rng.uniform(-0.12, 0.12, len(xs)), "o", color=OURS, alpha=0.7, ms=5)
        if xs:
            ax.text(max(xs) + 0.05, i, f"median {np.median(xs):.2f} s", va="center", fontsize=8)
    ax.axvline(0.6, color=BAD, ls=":", lw=1.5, label="goal: voice-to-voice median < 0.6 s")
    ax.axvline(0, color="0.2", lw=1)
    lows = [x for xs in data for x in xs]
    if lows and min(lows) < 0:
        ax.axvspan(min(lows) - 0.3, 0, color="0.9", lw=0,
                   label="< 0: the turn ended before the user finished (cut at a pause)")
    ax.set_yticks(range(1, len(stages) + 1), [label for _, label in stages])
    ax.set_ylim(0.1, len(stages) + 0.5)  # room for the legend under the boxes
    ax.set_xlabel("time after the end of the user's speech (s)")
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(loc="lower left", fontsize=8, framealpha=0.95)
    s = d.get("summary", {})
    cut = f"; {s['cut_in_trials']} with a turn ended in a mid-sentence pause" if "cut_in_trials" in s else ""
    ax.set_title(f"Voice assistant loop: {s.get('trials', len(trials))} of {s.get('of', len(trials))} turns answered"
                 f"{cut}\n(real recordings spoken at real-time pace, offline echo responder)", fontsize=10)
    return _finish(fig, note, out)


PLOTS: dict[str, tuple[str, Callable[[Json, Path, str], Path]]] = {
    "caption_latency_cdf.png": ("stt_stream.json", plot_caption_latency),
    "caption_timeline.png": ("timeline.json", plot_timeline),
    "tts_ttfa.png": ("tts.json", plot_tts),
    "server_capacity.png": ("server.json", plot_server),
    "stt_offline.png": ("stt_offline.json", plot_stt_offline),
    "voice_loop.png": ("voice_loop.json", plot_voice_loop),
}


def make_all(results: Path = RESULTS, out: Path = OUT) -> list[Path]:
    """Draw every figure whose JSON is in `results`; returns the PNGs written."""
    suite_file = results / "run_all.json"
    suite = json.loads(suite_file.read_text()) if suite_file.exists() else None
    written = []
    for png, (source, draw) in PLOTS.items():
        path = results / source
        if not path.exists():
            print(f"skip {png}: no {path}")
            continue
        d = json.loads(path.read_text())
        written.append(draw(d, out / png, machine_note(d, source, suite)))
        print(f"wrote {written[-1]}")
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=RESULTS, help="folder of the benchmark JSON")
    ap.add_argument("--out", type=Path, default=OUT, help="folder for the PNGs")
    args = ap.parse_args(argv)
    return 0 if make_all(args.results, args.out) else 1


if __name__ == "__main__":
    sys.exit(main())
