"""Devices without a sound card: clear errors; the callbacks' copy-only contract; file sources/sinks."""

from __future__ import annotations

import sys
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from rtaudio.clock import FakeClock
from rtaudio.errors import DeviceError
from rtaudio.io.devices import Microphone, Speaker, list_devices
from rtaudio.io.files import read_audio, write_audio
from rtaudio.io.sources import AudioSink, AudioSource, FileSource, NullSink, PacedFileSource, RecordingSink

OK = SimpleNamespace(input_overflow=False, output_underflow=False)


def _has_input_device() -> bool:
    try:
        return any(d["max_input_channels"] > 0 for d in list_devices())
    except DeviceError:
        return False


@pytest.mark.skipif(_has_input_device(), reason="this machine has a sound card; the error path needs none")
def test_no_sound_card_gives_a_clear_device_error() -> None:
    with pytest.raises(DeviceError, match="microphone.*no audio devices"):
        Microphone(16000).start()
    with pytest.raises(DeviceError, match="speaker.*no audio devices"):
        Speaker(16000).start()


def test_missing_portaudio_gives_a_clear_device_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import now fails like a missing library
    with pytest.raises(DeviceError, match="PortAudio.*libportaudio2"):
        Microphone(16000).start()
    with pytest.raises(DeviceError, match="PortAudio"):
        list_devices()


def test_microphone_callback_only_copies_and_counts_xruns() -> None:
    mic = Microphone(rate_hz=16000, block_ms=10, buffer_ms=100)
    mic._prepare(48000)  # what start() does before PortAudio starts calling back
    block = np.arange(480, dtype=np.float32)[:, None] / 1000
    mic._callback(block, 480, None, OK)  # first call may touch lazily created views
    overflow = SimpleNamespace(input_overflow=True)
    tracemalloc.start()
    for _ in range(20):
        mic._callback(block, 480, None, overflow)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < block.nbytes, f"callback allocated up to {peak} bytes: it must only copy"
    assert mic.xruns == 20
    assert mic.overrun_samples == 21 * 480 - 4800  # ring holds 100 ms; the oldest were dropped
    out = mic.read()
    assert out is not None and out.sample_rate == 16000 and 0 < out.samples.size <= 1600


def test_speaker_callback_pads_underruns() -> None:
    spk = Speaker(rate_hz=48000, block_ms=10, buffer_ms=100)
    spk._prepare(48000)
    assert spk.write(np.full(100, 0.5, np.float32)) == 100
    out = np.full((480, 1), 9.0, np.float32)
    spk._callback(out, 480, None, SimpleNamespace(output_underflow=True))
    assert np.all(out[:100, 0] == 0.5) and np.all(out[100:, 0] == 0.0)
    assert spk.underrun_samples == 380 and spk.xruns == 1


def test_file_source_and_sinks(speech_dir: Path, tmp_path: Path) -> None:
    src = FileSource(speech_dir / "ljspeech_LJ001-0019.flac", rate_hz=16000, block_samples=4000)
    rec, null, to_file = RecordingSink(16000), NullSink(16000), RecordingSink(16000, tmp_path / "copy.wav")
    assert isinstance(src, AudioSource) and isinstance(rec, AudioSink) and isinstance(null, AudioSink)
    while (block := src.read()) is not None:
        assert block.samples.size <= 4000
        for sink in (rec, null, to_file):
            sink.write(block.samples)
    for s in (src, rec, null, to_file):
        s.close()
    whole, _ = read_audio(speech_dir / "ljspeech_LJ001-0019.flac")
    np.testing.assert_array_equal(rec.audio(), whole)
    assert null.samples_written == whole.size
    np.testing.assert_allclose(read_audio(tmp_path / "copy.wav")[0], whole, atol=1 / 32768)


def test_paced_file_source_follows_the_injected_clock(tmp_path: Path) -> None:
    x = (np.arange(16000) % 100 / 100).astype(np.float32)
    write_audio(tmp_path / "one_second.wav", x, 16000, subtype="FLOAT")
    clock = FakeClock()
    src = PacedFileSource(tmp_path / "one_second.wav", clock, block_samples=1000)
    first = src.read()
    assert first is not None and first.samples.size == 0
    got: list[np.ndarray] = []
    for _ in range(10):
        clock.advance(0.1)
        block = src.read()
        assert block is not None and block.samples.size == 1600 and block.start_sample == 1600 * len(got)
        got.append(block.samples)
    clock.advance(0.1)
    assert src.read() is None
    np.testing.assert_array_equal(np.concatenate(got), x)
    fast = PacedFileSource(tmp_path / "one_second.wav", FakeClock(), speed=4.0)
    fast.read()
    fast.clock.advance(0.125)  # type: ignore[attr-defined]
    block = fast.read()
    assert block is not None and block.samples.size == 8000
