"""Whisper's log-mel front end, whole-signal and streaming, in numpy + one Numba kernel.

Matches openai/whisper `log_mel_spectrogram`: 16 kHz mono, 25 ms periodic Hann window (n_fft 400),
10 ms hop (160 samples), centred frames with reflect padding, the last STFT frame dropped, power
spectrum, Slaney-normalised mel filterbank (librosa's formula), log10(max(x, 1e-10)), then the
per-window clamp to max - 8 and (x + 4) / 4.

The streaming `MelStream` gives the raw log10 frames (before the clamp, which needs the window's
maximum); `normalize_log_mel` applies the clamp and scale to whatever window the caller decodes.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numba import njit

from rtaudio.errors import AudioError, ConfigError, EmptyAudioError

SAMPLE_RATE_HZ = 16000
N_FFT = 400  # 25 ms window at 16 kHz
HOP_SAMPLES = 160  # 10 ms hop -> 100 frames per second
N_BINS = N_FFT // 2 + 1  # 201 one-sided FFT bins
PAD_SAMPLES = N_FFT // 2  # centre padding on each side (reflect)
LOG_FLOOR = 1e-10
DYNAMIC_RANGE = 8.0  # log10 units kept below the window maximum (80 dB)
_INV_LN10 = np.float32(1.0 / math.log(10.0))
_BLOCK_FRAMES = 512  # frames per FFT batch: keeps the working set in cache


# --- mel filterbank (Slaney / librosa formula, no librosa dependency) -------------------------------
_F_SP_HZ = 200.0 / 3.0  # linear region: 66.67 Hz per mel
_MIN_LOG_HZ = 1000.0  # log region starts at 1 kHz
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP_HZ  # = 15 mel
_LOGSTEP = math.log(6.4) / 27.0  # 27 mel per factor 6.4 in the log region


def _hz_to_mel(f_hz: np.ndarray) -> np.ndarray:
    f = np.asarray(f_hz, dtype=np.float64)
    lin = f / _F_SP_HZ
    log = _MIN_LOG_MEL + np.log(np.maximum(f, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(f >= _MIN_LOG_HZ, log, lin)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    m = np.asarray(mel, dtype=np.float64)
    lin = _F_SP_HZ * m
    log = _MIN_LOG_HZ * np.exp(_LOGSTEP * (np.maximum(m, _MIN_LOG_MEL) - _MIN_LOG_MEL))
    return np.where(m >= _MIN_LOG_MEL, log, lin)


@lru_cache(maxsize=8)
def mel_filters(n_mels: int = 80) -> np.ndarray:
    """Slaney mel filterbank for 16 kHz, n_fft 400: float32 (n_mels, 201), read-only.

    Triangles between consecutive mel-spaced edges from 0 Hz to 8 kHz, each scaled by
    2 / bandwidth so every band holds about the same energy (librosa `norm="slaney"`).
    """
    if not isinstance(n_mels, int) or not 1 <= n_mels <= 256:
        raise ConfigError(f"n_mels must be an int in [1, 256] (Whisper uses 80 or 128), got {n_mels!r}")
    bin_hz = np.arange(N_BINS, dtype=np.float64) * (SAMPLE_RATE_HZ / N_FFT)
    edges_mel = np.linspace(_hz_to_mel(np.array(0.0)), _hz_to_mel(np.array(SAMPLE_RATE_HZ / 2)), n_mels + 2)
    edges_hz = _mel_to_hz(edges_mel)
    lo, mid, hi = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    rising = (bin_hz[None, :] - lo) / (mid - lo)
    falling = (hi - bin_hz[None, :]) / (hi - mid)
    weights = np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (hi - lo))
    out = weights.astype(np.float32)
    out.flags.writeable = False
    return out


@lru_cache(maxsize=8)
def _sparse_filters(n_mels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float64 weights plus each band's first and one-past-last non-zero bin, for the kernel."""
    w = mel_filters(n_mels).astype(np.float64)
    nz = w != 0
    lo = np.where(nz.any(axis=1), nz.argmax(axis=1), 0).astype(np.int64)
    hi = np.where(nz.any(axis=1), N_BINS - nz[:, ::-1].argmax(axis=1), 0).astype(np.int64)
    return w, lo, hi


@lru_cache(maxsize=1)
def hann_window() -> np.ndarray:
    """Periodic Hann window of 400 samples (torch.hann_window default), float64, read-only."""
    n = np.arange(N_FFT, dtype=np.float64)
    w = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / N_FFT)
    w.flags.writeable = False
    return w


# --- power spectrum -> log10 mel: Numba kernel and its numpy reference -------------------------------
def _power_log_mel_kernel(spec: np.ndarray, weights: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                          out: np.ndarray, col0: int) -> None:
    """spec complex128 (frames, 201) -> out[:, col0 + t] = mel energy, floored at 1e-10 (float32).

    Sums only each band's non-zero bins (about 400 multiply-adds per frame instead of 16,000).
    """
    n_frames = spec.shape[0]
    n_bins = spec.shape[1]
    n_mels = weights.shape[0]
    power = np.empty(n_bins, np.float64)
    for t in range(n_frames):
        for k in range(n_bins):
            c = spec[t, k]
            power[k] = c.real * c.real + c.imag * c.imag
        for m in range(n_mels):
            acc = 0.0
            for k in range(lo[m], hi[m]):
                acc += weights[m, k] * power[k]
            out[m, col0 + t] = max(acc, LOG_FLOOR)


_power_log_mel_jit = njit(nogil=True, cache=True)(_power_log_mel_kernel)


def power_mel_reference(spec: np.ndarray, n_mels: int) -> np.ndarray:
    """Numpy reference for the kernel: floored mel energies, float32 (n_mels, frames)."""
    mel = mel_filters(n_mels).astype(np.float64) @ (np.abs(spec) ** 2).T
    return np.maximum(mel, LOG_FLOOR).astype(np.float32)


def _window_frames_kernel(padded: np.ndarray, first: int, window: np.ndarray, out: np.ndarray) -> None:
    """out[t] = padded[first + 160 t : first + 160 t + 400] * window, float64 (frames, 400)."""
    for t in range(out.shape[0]):
        base = first + t * HOP_SAMPLES
        for k in range(N_FFT):
            out[t, k] = padded[base + k] * window[k]


_window_frames_jit = njit(nogil=True, cache=True)(_window_frames_kernel)


def window_frames_reference(padded: np.ndarray, first: int, n_frames: int) -> np.ndarray:
    """Numpy reference for the framing kernel: a gather, then the window."""
    idx = first + np.arange(N_FFT)[None, :] + HOP_SAMPLES * np.arange(n_frames)[:, None]
    return padded[idx].astype(np.float64) * hann_window()


def _log10_mel(padded: np.ndarray, n_frames: int, n_mels: int) -> np.ndarray:
    """Raw log10 mel of frames t = 0..n_frames-1 taken at padded[160 t : 160 t + 400].

    padded: float32 1-D, already centre-padded; returns float32 (n_mels, n_frames).
    """
    out = np.empty((n_mels, n_frames), np.float32)
    if n_frames == 0:
        return out
    weights, lo, hi = _sparse_filters(n_mels)
    window = hann_window()
    frames = np.empty((min(_BLOCK_FRAMES, n_frames), N_FFT), np.float64)
    for b0 in range(0, n_frames, _BLOCK_FRAMES):
        nb = min(_BLOCK_FRAMES, n_frames - b0)
        _window_frames_jit(padded, b0 * HOP_SAMPLES, window, frames[:nb])
        # float64 FFT: numpy's float32 pocketfft path is slower, and the extra precision is free here.
        spec = np.fft.rfft(frames[:nb], axis=-1)
        _power_log_mel_jit(spec, weights, lo, hi, out, b0)
    np.log(out, out=out)  # natural log is SIMD in numpy; log10 is not
    out *= _INV_LN10
    return out


def _as_mono_float32(audio: np.ndarray) -> np.ndarray:
    a = np.asarray(audio)
    if a.ndim != 1:
        raise AudioError(f"log-mel needs 1-D mono audio at 16 kHz, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.floating):
        raise AudioError(f"log-mel needs float audio in [-1, 1], got dtype {a.dtype} (convert PCM first)")
    return np.ascontiguousarray(a, dtype=np.float32)


def normalize_log_mel(logmel: np.ndarray) -> np.ndarray:
    """Whisper's window normalisation: clamp to (max - 8), then (x + 4) / 4; float32, same shape."""
    x = np.asarray(logmel, dtype=np.float32)
    if x.size == 0:
        return x.copy()
    return ((np.maximum(x, x.max() - DYNAMIC_RANGE) + 4.0) / 4.0).astype(np.float32)


def log_mel_spectrogram(audio: np.ndarray, n_mels: int = 80, padding: int = 0) -> np.ndarray:
    """Whisper's log-mel features of 16 kHz mono float audio: float32 (n_mels, (len + padding) // 160).

    `padding` zeros are appended first (Whisper pads 30 s so the last window is complete).
    """
    x = _as_mono_float32(audio)
    if padding < 0:
        raise ConfigError(f"padding must be >= 0 samples, got {padding}")
    if padding:
        x = np.concatenate([x, np.zeros(padding, np.float32)])
    if x.size == 0:
        raise EmptyAudioError("log-mel of empty audio: give at least one sample")
    padded = np.pad(x, PAD_SAMPLES, mode="reflect")
    n_frames = x.size // HOP_SAMPLES  # centred STFT has 1 + len // hop frames; Whisper drops the last
    return normalize_log_mel(_log10_mel(padded, n_frames, n_mels))


def log_mel_reference(audio: np.ndarray, n_mels: int = 80, padding: int = 0) -> np.ndarray:
    """Plain float64 numpy transcription of Whisper's front end; the yardstick for tests and bench."""
    x = np.asarray(audio, dtype=np.float64)
    x = np.concatenate([x, np.zeros(padding)])
    padded = np.pad(x, PAD_SAMPLES, mode="reflect")
    n_frames = 1 + (padded.size - N_FFT) // HOP_SAMPLES
    idx = np.arange(N_FFT)[None, :] + HOP_SAMPLES * np.arange(n_frames)[:, None]
    spec = np.fft.rfft(padded[idx] * hann_window(), axis=-1)
    power = np.abs(spec[:-1]) ** 2
    mel = mel_filters(n_mels).astype(np.float64) @ power.T
    log = np.log10(np.maximum(mel, LOG_FLOOR))
    log = np.maximum(log, log.max() - DYNAMIC_RANGE)
    return ((log + 4.0) / 4.0).astype(np.float32)


class MelStream:
    """Streaming log10 mel: push 16 kHz float32 chunks of any size, get the frames they complete.

    Frame t is centred on sample 160 t and needs samples up to 160 t + 200, so frames trail the
    input by 200 samples (12.5 ms); the first needs 201 samples for the reflect padding. `flush()`
    reflect-pads the end and returns the rest, so push(...)s + flush() == the whole-signal frames
    (before `normalize_log_mel`). Memory stays bounded: only the last window's samples are kept.
    """

    def __init__(self, n_mels: int = 80) -> None:
        mel_filters(n_mels)  # validates n_mels early
        self.n_mels = n_mels
        self.reset()

    def reset(self) -> None:
        self._buf = np.zeros(0, np.float32)  # padded signal from padded index self._buf_start
        self._buf_start = 0
        self._started = False  # has the start reflection been prepended?
        self._head = np.zeros(0, np.float32)  # first samples, held until 201 have arrived
        self.samples_in = 0
        self.frames_out = 0
        self._finished = False

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Add samples (float 1-D); returns float32 (n_mels, new_frames) raw log10 mel."""
        if self._finished:
            raise ConfigError("MelStream.push after flush(); call reset() to start a new stream")
        x = _as_mono_float32(samples)
        self.samples_in += x.size
        if not self._started:
            self._head = np.concatenate([self._head, x])
            if self._head.size <= PAD_SAMPLES:
                return np.zeros((self.n_mels, 0), np.float32)
            self._buf = np.concatenate([self._head[PAD_SAMPLES:0:-1], self._head])
            self._head = np.zeros(0, np.float32)
            self._started = True
        else:
            self._buf = np.concatenate([self._buf, x])
        return self._emit(self._buf_start + self._buf.size)

    def flush(self) -> np.ndarray:
        """End of stream: reflect-pad the end and return the remaining frames (float32 (n_mels, k))."""
        if self._finished:
            return np.zeros((self.n_mels, 0), np.float32)
        self._finished = True
        total_frames = self.samples_in // HOP_SAMPLES
        if not self._started:  # fewer than 201 samples: too short to stream, do it whole
            if self._head.size == 0:
                return np.zeros((self.n_mels, 0), np.float32)
            padded = np.pad(self._head, PAD_SAMPLES, mode="reflect")
            self.frames_out = total_frames
            return _log10_mel(padded, total_frames, self.n_mels)
        n = self.samples_in
        tail_idx = np.arange(n + PAD_SAMPLES - 2, n - 2, -1) - self._buf_start  # x[n-2], x[n-3], ...
        self._buf = np.concatenate([self._buf, self._buf[tail_idx]])
        return self._emit(self._buf_start + self._buf.size, limit=total_frames)

    def _emit(self, padded_len: int, limit: int | None = None) -> np.ndarray:
        ready = (padded_len - N_FFT) // HOP_SAMPLES + 1 if padded_len >= N_FFT else 0
        if limit is not None:
            ready = min(ready, limit)
        n_new = max(0, ready - self.frames_out)
        offset = self.frames_out * HOP_SAMPLES - self._buf_start
        out = _log10_mel(self._buf[offset:], n_new, self.n_mels)
        self.frames_out += n_new
        keep_from = self.frames_out * HOP_SAMPLES  # padded index of the next frame's first sample
        self._buf = self._buf[keep_from - self._buf_start:].copy()
        self._buf_start = keep_from
        return out
