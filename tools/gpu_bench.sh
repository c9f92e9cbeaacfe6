#!/usr/bin/env bash
# The GPU benchmarks of BENCHMARKS.md ("Many live streams on one GPU"), step by step, on a lent GPU machine
# that has PyTorch but no network. Pack the inputs here first (`python tools/gpu_pack.py`, into .gpu/) and
# carry them there; a bare checkout's models/ serves as rtaudio_models; missing pure-Python packages
# (websockets, soundfile) travel as unpacked wheels in .gpu/pydeps.
#   usage: bash tools/gpu_bench.sh STEP...   results go to $OUT (default bench/results)
#   steps: check steps sched sched-vad profile wer wer-in-run wer-in-streams server server-wer
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD:$PWD/.gpu/pydeps
OUT=${OUT:-bench/results}
[ -e rtaudio_models ] || python3 -c 'import rtaudio_models' 2>/dev/null || ln -sfn models rtaudio_models
P="python3 -m bench.gpu_streams --graphs"
for step in "$@"; do
  echo "=== $step $(date +%T)"
  case $step in
    check) python3 -c 'import torch, websockets, soundfile; print(torch.__version__, torch.cuda.get_device_name(0))' ;;
    steps) python3 -m bench.gpu_steps --out "$OUT/gpu_steps.json" ;;  # decode step, encode and VAD costs
    sched) $P --streams 400 --duration-s 30 --out "$OUT/gpu_sched.json" ;;  # the scheduler, no network
    sched-vad) $P --streams 400 --duration-s 30 --vad-device cuda --out "$OUT/gpu_sched_vad.json" ;;
    profile) $P --streams 400 --duration-s 30 --profile --out "$OUT/gpu_profile.json" ;;
    wer) $P --wer-only --out "$OUT/gpu_wer.json" ;;  # 159 sessions at once, one per recording
    wer-in-run) $P --streams 400 --duration-s 60 --session-per-recording --wer --out "$OUT/gpu_wer_in_run.json" ;;  # load's WER
    wer-in-streams) $P --streams 400 --duration-s 60 --wer --out "$OUT/gpu_wer_in_streams.json" ;;  # recordings back to back
    server) $P --server --server-processes 8 --client-procs 8 --streams 300 400 --duration-s 20 --out "$OUT/gpu_server.json" ;;
    server-wer) $P --server --server-processes 8 --client-procs 8 --streams 400 --duration-s 60 --session-per-recording --wer --out "$OUT/gpu_server_wer.json" ;;  # a session per recording: WER of its finals, and of the same recordings unloaded
    *) echo "unknown step $step (check steps sched sched-vad profile wer wer-in-run wer-in-streams server server-wer)" ;;
  esac
done
