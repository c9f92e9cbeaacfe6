"""One way to open an onnxruntime CPU session, with memory that stays flat in a long-running server.

Two onnxruntime defaults make a server's memory creep for hours when input shapes vary (Whisper
windows of many lengths, a decoder cache one token longer each step, TTS sentences):
- memory patterns are planned and cached per distinct set of input shapes, so every new shape adds
  a plan and its buffers (measured: +185 MB over 400 random Whisper windows, still rising);
- each session grows its own arena, doubling, and never gives it back.
So patterns are off (~3 % slower decoding, measured) and every session allocates from one
process-wide arena registered with the onnxruntime environment, which grows to the peak working set
of the largest window and then stays flat (measured: +45 MB, flat after the first 100 windows).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from rtaudio.errors import ModelError

_lock = threading.Lock()
_shared_arena: bool | None = None  # None: not tried yet; False: this onnxruntime refused it


def _register_shared_arena(ort: Any) -> bool:
    """Register the process-wide CPU arena once; False when onnxruntime cannot (old versions)."""
    global _shared_arena
    with _lock:
        if _shared_arena is None:
            try:
                info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
                ort.create_and_register_allocator(info, ort.OrtArenaCfg(0, 0, -1, -1))
                _shared_arena = True
            except Exception:  # an onnxruntime without env allocators: per-session arenas
                _shared_arena = False
        return _shared_arena


def open_session(path: Path, what: str, threads: int = 1, spin: bool = False) -> Any:
    """An `onnxruntime.InferenceSession` on the CPU; ModelError naming `what` when the file is unusable.

    threads: intra-op threads (0 = onnxruntime's choice); spin: let idle workers spin (faster for one
    busy session, steals cores from others)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.enable_mem_pattern = False
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    if _register_shared_arena(ort):
        opts.add_session_config_entry("session.use_env_allocators", "1")
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own untyped errors
        raise ModelError(f"cannot load {what} from {path}: {e}") from e
