"""Run the CPU benchmark suite in one go: every table, its JSON under bench/results/, then the plots.

    ./rt bench                 # or: .venv/bin/python -m bench.run_all [--only dsp tts] [--full] [--no-plots]
    ./rt bench --only          # no script: redraw the plots from the JSON already there

The default sizes finish in under 20 minutes on a quiet 2-core machine (the budget per script is in
BUDGET_S and BENCHMARKS.md); --full runs the published sizes (every dev file for streaming, the fp32
rows of offline STT, all 108 TTS sentences, more trials), about 30 minutes. Peers (soxr, scipy,
faster-whisper, piper-tts) are measured in the same run by each script. The suite writes
bench/results/run_all.json (mode, machine, each script's command, duration, budget and load average),
then bench/plots.py draws docs/bench/*.png. The GPU benchmark (bench/gpu_streams.py) needs a CUDA
machine and is not part of this suite.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# Default (quick) sizes and why each is enough:
# - stt_offline: the two int8 systems on all 159 files (WER stays comparable with the published table);
#   --full adds the fp32 rows (+5 min).
# - stt_stream: every 3rd dev file (53 files, 296 s, all groups, including the 117 s long file)
#   instead of all 785 s (11 min); --charge cpu as in the published table.
# - tts: 5 interleaved latency runs per sentence and the first 54 of the 108 round-trip sentences.
# - server: 15 s of speech per client (as in the published run), stopping at the first step that fails.
# - voice_loop: 8 trials (48 s of speech, as in the published run); dsp and timeline run at full size.
SUITE: dict[str, list[str]] = {
    "dsp": ["bench/dsp.py", "--duration-s", "10"],
    "stt_offline": ["bench/stt_offline.py", "--systems", "ours-int8,fw-int8"],
    "stt_stream": ["bench/stt_stream.py", "--charge", "cpu", "--stride", "3", "--noise-s", "300"],
    "tts": ["bench/tts.py", "--repeats", "5", "--wer-limit", "54"],
    "server": ["bench/server.py", "--max-clients", "8", "--seconds", "15"],
    "latency": ["bench/latency.py"],
    "voice_loop": ["-m", "bench.voice_loop", "--trials", "8"],
    "timeline": ["-m", "bench.timeline"],
}
FULL: dict[str, list[str]] = {
    "stt_offline": ["bench/stt_offline.py"],
    "stt_stream": ["bench/stt_stream.py", "--charge", "cpu", "--noise-s", "300"],
    "tts": ["bench/tts.py"],
    "voice_loop": ["-m", "bench.voice_loop", "--trials", "10"],
}
# Seconds each script may take at the default sizes on a quiet 2-core machine (sum + plots < 20 min).
BUDGET_S: dict[str, int] = {"dsp": 30, "stt_offline": 200, "stt_stream": 240, "tts": 150, "server": 180,
                            "latency": 150, "voice_loop": 90, "timeline": 45, "plots": 15}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", choices=sorted(SUITE), help="run only these scripts (then the plots)")
    ap.add_argument("--full", action="store_true", help="the published sizes (about 30 min) instead of < 20 min")
    ap.add_argument("--no-plots", action="store_true", help="skip docs/bench/*.png")
    args = ap.parse_args(argv)
    suite = SUITE | FULL if args.full else SUITE
    names = list(SUITE) if args.only is None else args.only
    record: dict = {"mode": "full" if args.full else "quick",
                    "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                                "platform": platform.platform()}, "scripts": {}}
    out = REPO / "bench" / "results" / "run_all.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.only is not None and out.exists():  # a partial run keeps the other scripts' records
        record["scripts"] = json.loads(out.read_text()).get("scripts", {})
    failed = []
    t_all = time.monotonic()
    for name in names:
        print(f"\n=== {name}: {' '.join(suite[name])}", flush=True)
        load = os.getloadavg()
        t = time.monotonic()
        rc = subprocess.call([sys.executable, *suite[name]], cwd=REPO)
        record["scripts"][name] = {"command": " ".join(suite[name]), "wall_s": round(time.monotonic() - t, 1),
                                   "budget_s": BUDGET_S[name], "mode": record["mode"], "rc": rc,
                                   "loadavg_before": load,
                                   "loadavg_after": os.getloadavg()}
        if rc != 0:
            failed.append(name)
        out.write_text(json.dumps(record, indent=1))  # after each script: plots read the machine note from it
    if not args.no_plots:
        from bench import plots

        print("\n=== plots: bench/plots.py", flush=True)
        t = time.monotonic()
        try:
            plots.make_all()
            rc = 0
        except Exception as e:  # a broken figure must not hide the tables above
            print(f"plots failed: {e!r}", file=sys.stderr)
            rc = 1
            failed.append("plots")
        record["scripts"]["plots"] = {"command": "bench/plots.py", "wall_s": round(time.monotonic() - t, 1),
                                      "budget_s": BUDGET_S["plots"], "rc": rc}
    record["total_s"] = round(time.monotonic() - t_all, 1)
    out.write_text(json.dumps(record, indent=1))
    print(f"\n{'script':<12} {'time s':>7} {'budget s':>8}")
    for n in [*names, *([] if args.no_plots else ["plots"])]:
        r = record["scripts"][n]
        over = "  OVER BUDGET" if r["wall_s"] > r["budget_s"] and not args.full else ""
        print(f"{n:<12} {r['wall_s']:7.0f} {r['budget_s']:8d}{'  FAILED' if n in failed else ''}{over}")
    print(f"{'total':<12} {record['total_s']:7.0f} {sum(BUDGET_S.values()):8d}  ({record['mode']} sizes)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
