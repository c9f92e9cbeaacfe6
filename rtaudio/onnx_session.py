"""One way to open an onnxruntime session, with memory that stays flat in a long-running server.

Sessions run on the CPU, or on a CUDA GPU where onnxruntime-gpu is installed (the `gpu` extra): `device`
"auto" takes the GPU when this onnxruntime offers CUDA and an NVIDIA driver is loaded, "cuda" insists
on it (a clear error otherwise), "cpu" never uses it.

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

import contextlib
import io
import logging
import os
import threading
from pathlib import Path
from typing import Any

from rtaudio.errors import ConfigError, ModelError

DEVICES = ("auto", "cpu", "cuda")
CUDA_PROVIDER = "CUDAExecutionProvider"

log = logging.getLogger("rtaudio.onnx")

_lock = threading.Lock()
_shared_arena: bool | None = None  # None: not tried yet; False: this onnxruntime refused it
_cuda_preloaded = False


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


def _preload_cuda(ort: Any) -> None:
    """Load the CUDA and cuDNN libraries that pip installed beside onnxruntime-gpu (the nvidia-* packages of
    its `cuda`/`cudnn` extras): they are not on the loader's path, so without this the CUDA provider fails
    to load unless PyTorch happened to load them first. onnxruntime prints its findings; they go to the log."""
    global _cuda_preloaded
    with _lock:
        if _cuda_preloaded or not hasattr(ort, "preload_dlls"):  # onnxruntime < 1.21: the loader's path only
            return
        _cuda_preloaded = True
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                ort.preload_dlls(msvc=False)
        except Exception as e:  # a library it could not find is found (or not) by the loader below
            out.write(str(e))
        if out.getvalue().strip():
            log.debug("onnxruntime preload_dlls: %s", out.getvalue().strip())


def nvidia_driver_present() -> bool:
    """Whether an NVIDIA driver is loaded (checked before importing any GPU library)."""
    return os.path.exists("/proc/driver/nvidia/version")


def execution_providers(device: str = "cpu") -> list[str]:
    """onnxruntime's execution providers for `device` ("auto", "cpu" or "cuda"), best first.

    onnxruntime-gpu lists CUDA even on a machine without a GPU, so "auto" also wants the driver."""
    import onnxruntime as ort

    if device not in DEVICES:
        raise ConfigError(f"device must be one of {DEVICES}, got {device!r}")
    offered = ort.get_available_providers()
    driver = nvidia_driver_present()
    cuda = CUDA_PROVIDER in offered and driver
    if device == "cuda" and not cuda:
        raise ConfigError("device 'cuda' needs onnxruntime-gpu (pip install 'rtaudio[gpu]') and an NVIDIA GPU; "
                          f"this onnxruntime offers {', '.join(offered)}"
                          + ("" if driver else " and no NVIDIA driver is loaded"))
    return [CUDA_PROVIDER, "CPUExecutionProvider"] if cuda and device != "cpu" else ["CPUExecutionProvider"]


def open_session(path: Path, what: str, threads: int = 1, spin: bool = False, device: str = "cpu") -> Any:
    """An `onnxruntime.InferenceSession` on `device` (see `execution_providers`); ModelError naming `what`
    when the file is unusable.

    threads: intra-op threads of its CPU work (0 = onnxruntime's choice); spin: let idle workers spin
    (faster for one busy session, steals cores from others)."""
    import onnxruntime as ort

    providers = execution_providers(device)

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.enable_mem_pattern = False
    opts.log_severity_level = 3  # errors only: its warnings (e.g. "Memcpy nodes are added") are not the user's to act on
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    if _register_shared_arena(ort):
        opts.add_session_config_entry("session.use_env_allocators", "1")
    if CUDA_PROVIDER in providers:
        _preload_cuda(ort)
    try:
        session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as e:  # onnxruntime raises its own untyped errors
        raise ModelError(f"cannot load {what} from {path}: {e}") from e
    if CUDA_PROVIDER in providers and CUDA_PROVIDER not in session.get_providers():
        # onnxruntime falls back to the CPU when the CUDA libraries do not load, and only logs it
        message = (f"onnxruntime could not start its CUDA provider for {what} (CUDA 13 / cuDNN 9 libraries missing? "
                   "pip install 'rtaudio[gpu]' brings them)")
        if device == "cuda":
            raise ConfigError(message)
        log.warning("%s; running on the CPU", message)
    return session
