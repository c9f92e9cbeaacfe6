"""Exponential sine sweeps and the resampler quality figures measured with them.

A sweep has a closed form, so the ideal resampled signal is the same formula sampled at the
new rate: SNR against it counts ripple, imaging and arithmetic noise together. A second sweep
lying wholly above the output Nyquist measures aliasing: ideally nothing of it comes out.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rtaudio.errors import ConfigError


def exp_sweep(rate_hz: int, start_hz: float, end_hz: float, duration_s: float, amplitude: float = 0.5) -> np.ndarray:
    """float64 exponential sine sweep from start_hz to end_hz (phase 0 at t = 0)."""
    if not 0 < start_hz < end_hz or duration_s <= 0:
        raise ConfigError(f"sweep needs 0 < start_hz < end_hz and duration_s > 0, got {start_hz}, {end_hz}")
    t = np.arange(int(round(duration_s * rate_hz)), dtype=np.float64) / rate_hz
    k = math.log(end_hz / start_hz) / duration_s
    return amplitude * np.sin(2.0 * math.pi * start_hz * np.expm1(k * t) / k)


@dataclass(frozen=True)
class ResampleQuality:
    """Passband SNR (dB, higher is better) and aliasing (dB re the input level, lower is better)."""

    snr_db: float
    aliasing_db: float | None  # None when upsampling: nothing can fold back


def resample_quality(fn: Callable[[np.ndarray], np.ndarray], in_rate_hz: int, out_rate_hz: int,
                     duration_s: float = 2.0, passband_fraction: float = 0.9) -> ResampleQuality:
    """Measure a whole-signal resampler `fn(float32 x) -> y` from in_rate_hz to out_rate_hz.

    SNR: a 20 Hz .. passband_fraction * lower-Nyquist sweep vs its ideal; aliasing: a sweep from the
    output Nyquist to 0.99 of the input Nyquist, output power re a full sine of the same amplitude.
    The first and last 5 % are skipped (filter start-up and tail).
    """
    amp = 0.5
    top = passband_fraction * min(in_rate_hz, out_rate_hz) / 2
    x = exp_sweep(in_rate_hz, 20.0, top, duration_s, amp).astype(np.float32)
    ideal = exp_sweep(out_rate_hz, 20.0, top, duration_s, amp)
    y = np.asarray(fn(x), np.float64)[: ideal.size]
    a, b = int(0.05 * ideal.size), int(0.95 * ideal.size)
    err = np.sum((y[a:b] - ideal[a:b]) ** 2)
    snr = 10.0 * math.log10(np.sum(ideal[a:b] ** 2) / max(err, 1e-300))
    aliasing = None
    if out_rate_hz < in_rate_hz:
        xs = exp_sweep(in_rate_hz, out_rate_hz / 2, 0.99 * in_rate_hz / 2, duration_s, amp).astype(np.float32)
        ys = np.asarray(fn(xs), np.float64)
        ys = ys[int(0.05 * ys.size): int(0.95 * ys.size)]
        aliasing = 10.0 * math.log10(max(float(np.mean(ys**2)), 1e-300) / (amp**2 / 2))
    return ResampleQuality(snr_db=snr, aliasing_db=aliasing)
