"""Signal processing: Whisper log-mel, resampling, PCM, filters, loudness, dynamics, fades.

Modules are imported on use; `warmup()` compiles (or loads from Numba's on-disk cache) every
kernel up front so the first real audio frame does not pay for a JIT compile.
"""

from __future__ import annotations

import numpy as np


def warmup() -> None:
    """Run every Numba kernel once on a tiny input; takes ~0.1 s when Numba's cache is warm."""
    from rtaudio.dsp import dynamics, filters, loudness, mel, resample

    x = np.zeros(1600, np.float32)
    mel.MelStream(80).push(x)
    resample.resample(x[:64], 48000, 16000)
    filters.sos_filter(x[:8], filters.highpass(50.0, 16000))
    dynamics.Agc(16000).push(x[:8])
    dynamics.DuckingMixer(16000).push(x[:8], x[:8])
    loudness.integrated_lufs(x, 16000)
