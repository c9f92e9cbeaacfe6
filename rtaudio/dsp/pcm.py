"""PCM sample-format and channel-layout conversion.

Inside the engine audio is float32 in [-1, 1); integer PCM exists only at the edges (files, sound
cards, the wire). Integer full scale maps to 1.0 by dividing by 2**(bits-1), so int -> float ->
int round-trips exactly. Layouts: "interleaved" is (frames, channels) or flat L R L R ...;
"planar" is (channels, frames).
"""

from __future__ import annotations

import numpy as np

from rtaudio.errors import AudioError

_INT16_SCALE = 32768.0
_INT24_SCALE = 8388608.0


def _as_int_array(data: bytes | bytearray | memoryview | np.ndarray, dtype: type, what: str) -> np.ndarray:
    if isinstance(data, (bytes, bytearray, memoryview)):
        width = np.dtype(dtype).itemsize
        if len(data) % width:
            raise AudioError(f"{what} bytes must be a multiple of {width}, got {len(data)} bytes")
        return np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<"))
    a = np.asarray(data)
    if a.dtype != dtype:
        raise AudioError(f"{what} array must have dtype {np.dtype(dtype).name}, got {a.dtype}")
    return a


def int16_to_float32(data: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    """Little-endian int16 PCM (bytes or int16 array, any shape) -> float32 in [-1, 1)."""
    return _as_int_array(data, np.int16, "int16 PCM").astype(np.float32) * np.float32(1.0 / _INT16_SCALE)


def float32_to_int16(x: np.ndarray) -> np.ndarray:
    """float samples -> int16 (same shape), rounded to nearest and clipped at full scale."""
    a = _as_float(x)
    return np.clip(np.rint(a * _INT16_SCALE), -32768, 32767).astype(np.int16)


def int24_to_float32(data: bytes | bytearray | memoryview) -> np.ndarray:
    """Packed little-endian 24-bit PCM (3 bytes a sample) -> float32 1-D."""
    if len(data) % 3:
        raise AudioError(f"int24 PCM bytes must be a multiple of 3, got {len(data)} bytes")
    b = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
    v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
    v = np.where(v >= 1 << 23, v - (1 << 24), v)
    return v.astype(np.float32) * np.float32(1.0 / _INT24_SCALE)


def float32_to_int24(x: np.ndarray) -> bytes:
    """float samples (flattened in C order) -> packed little-endian 24-bit PCM bytes."""
    v = np.clip(np.rint(_as_float(x).ravel() * _INT24_SCALE), -_INT24_SCALE, _INT24_SCALE - 1).astype(np.int32)
    u = (v & 0xFFFFFF).astype(np.uint32)
    out = np.empty((u.size, 3), np.uint8)
    out[:, 0] = u & 0xFF
    out[:, 1] = (u >> 8) & 0xFF
    out[:, 2] = (u >> 16) & 0xFF
    return out.tobytes()


def int32_to_float32(data: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    """Little-endian int32 PCM -> float32 in [-1, 1)."""
    return (_as_int_array(data, np.int32, "int32 PCM").astype(np.float64) / 2147483648.0).astype(np.float32)


def _as_float(x: np.ndarray) -> np.ndarray:
    a = np.asarray(x)
    if not np.issubdtype(a.dtype, np.floating):
        raise AudioError(f"expected float samples in [-1, 1], got dtype {a.dtype}")
    return a


def to_float32(x: np.ndarray) -> np.ndarray:
    """Any numpy PCM array (int16/int32/uint8/float) -> float32 of the same shape in [-1, 1)."""
    a = np.asarray(x)
    if a.dtype == np.int16:
        return int16_to_float32(a)
    if a.dtype == np.int32:
        return int32_to_float32(a)
    if a.dtype == np.uint8:  # 8-bit WAV is unsigned, centred on 128
        return (a.astype(np.float32) - 128.0) * np.float32(1.0 / 128.0)
    if np.issubdtype(a.dtype, np.floating):
        return a.astype(np.float32, copy=False)
    raise AudioError(f"unsupported PCM dtype {a.dtype}")


def interleave(planar: np.ndarray) -> np.ndarray:
    """(channels, frames) -> flat interleaved (frames * channels,), L R L R ..."""
    p = np.asarray(planar)
    if p.ndim != 2:
        raise AudioError(f"planar audio must be 2-D (channels, frames), got shape {p.shape}")
    return np.ascontiguousarray(p.T).reshape(-1)


def deinterleave(flat: np.ndarray, channels: int) -> np.ndarray:
    """Flat interleaved (frames * channels,) -> planar (channels, frames)."""
    a = np.asarray(flat)
    if channels < 1 or a.ndim != 1 or a.size % channels:
        raise AudioError(f"cannot split {a.shape} samples into {channels} channels")
    return np.ascontiguousarray(a.reshape(-1, channels).T)


def to_mono(x: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Downmix (frames, channels) to (frames,) float32: the channel mean, or a weighted sum.

    1-D input is already mono and comes back as float32.
    """
    a = to_float32(np.asarray(x))
    if a.ndim == 1:
        return a
    if a.ndim != 2:
        raise AudioError(f"to_mono expects (frames, channels), got shape {a.shape}")
    if weights is None:
        return a.mean(axis=1, dtype=np.float64).astype(np.float32)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (a.shape[1],):
        raise AudioError(f"need one downmix weight per channel ({a.shape[1]}), got shape {w.shape}")
    return (a.astype(np.float64) @ w).astype(np.float32)
