"""Run the CPU benchmark suite in one go: each script prints its table and writes bench/results/<name>.json.

    ./rt bench            # or: .venv/bin/python -m bench.run_all [--only dsp tts]

Peers (soxr, scipy, faster-whisper, piper-tts) are measured in the same run by each script. The GPU
benchmark (bench/gpu_streams.py) needs a CUDA machine and is not part of this suite.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SUITE: dict[str, list[str]] = {
    "dsp": ["bench/dsp.py", "--duration-s", "10"],
    "stt_offline": ["bench/stt_offline.py"],
    "stt_stream": ["bench/stt_stream.py", "--noise-s", "300"],
    "tts": ["bench/tts.py"],
    "server": ["bench/server.py", "--max-clients", "8"],
    "voice_loop": ["-m", "bench.voice_loop", "--trials", "10"],
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", choices=sorted(SUITE), help="run only these")
    args = ap.parse_args()
    failed = []
    times = {}
    for name in args.only or list(SUITE):
        print(f"\n=== {name}: {' '.join(SUITE[name])}", flush=True)
        t = time.monotonic()
        rc = subprocess.call([sys.executable, *SUITE[name]], cwd=REPO)
        times[name] = time.monotonic() - t
        if rc != 0:
            failed.append(name)
    print("\n" + "\n".join(f"{n:<12} {s:7.0f} s{'  FAILED' if n in failed else ''}" for n, s in times.items()))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
