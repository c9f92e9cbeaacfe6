"""PCM conversions: exact round trips, clipping, layouts, downmix, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from rtaudio.dsp import pcm
from rtaudio.errors import AudioError


def test_int16_round_trip_is_exact() -> None:
    all_codes = np.arange(-32768, 32768, dtype=np.int16)
    f = pcm.int16_to_float32(all_codes.tobytes())
    assert f.dtype == np.float32 and f.min() == -1.0 and f.max() < 1.0
    np.testing.assert_array_equal(pcm.float32_to_int16(f), all_codes)
    np.testing.assert_array_equal(pcm.int16_to_float32(all_codes), f)


def test_float_to_int16_rounds_and_clips() -> None:
    x = np.array([0.0, 1.0, -1.0, 2.0, -3.0, 0.5, 1.4 / 32768], np.float32)
    np.testing.assert_array_equal(pcm.float32_to_int16(x), [0, 32767, -32768, 32767, -32768, 16384, 1])


def test_int24_round_trip_and_sign() -> None:
    codes = np.array([0, 1, -1, 8388607, -8388608, 123456, -654321], np.int64)
    raw = b"".join(int(c).to_bytes(3, "little", signed=True) for c in codes)
    f = pcm.int24_to_float32(raw)
    np.testing.assert_array_equal(f, (codes / 8388608.0).astype(np.float32))
    assert pcm.float32_to_int24(f) == raw


def test_int32_and_uint8() -> None:
    np.testing.assert_allclose(pcm.to_float32(np.array([-2**31, 0, 2**30], np.int32)), [-1.0, 0.0, 0.5])
    np.testing.assert_allclose(pcm.to_float32(np.array([0, 128, 192], np.uint8)), [-1.0, 0.0, 0.5])


def test_interleave_layouts() -> None:
    planar = np.array([[1, 2, 3], [10, 20, 30]], np.float32)
    flat = pcm.interleave(planar)
    np.testing.assert_array_equal(flat, [1, 10, 2, 20, 3, 30])
    np.testing.assert_array_equal(pcm.deinterleave(flat, 2), planar)


def test_to_mono() -> None:
    st = np.array([[1.0, 0.0], [0.5, -0.5]], np.float32)
    np.testing.assert_allclose(pcm.to_mono(st), [0.5, 0.0])
    np.testing.assert_allclose(pcm.to_mono(st, weights=np.array([1.0, 1.0])), [1.0, 0.0])
    np.testing.assert_allclose(pcm.to_mono(np.array([[16384, 0]], np.int16)), [0.25])
    assert pcm.to_mono(np.zeros(4, np.float32)).shape == (4,)


def test_bad_input_gives_clear_errors() -> None:
    with pytest.raises(AudioError, match="multiple of 2"):
        pcm.int16_to_float32(b"\x00\x01\x02")
    with pytest.raises(AudioError, match="multiple of 3"):
        pcm.int24_to_float32(b"\x00\x01")
    with pytest.raises(AudioError, match="dtype"):
        pcm.int16_to_float32(np.zeros(3, np.int32))
    with pytest.raises(AudioError, match="float"):
        pcm.float32_to_int16(np.zeros(3, np.int16))
    with pytest.raises(AudioError, match="channels"):
        pcm.deinterleave(np.zeros(5, np.float32), 2)
    with pytest.raises(AudioError, match="weight"):
        pcm.to_mono(np.zeros((4, 2), np.float32), weights=np.ones(3))
