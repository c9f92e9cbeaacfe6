"""Microphone and speaker through sounddevice (PortAudio), fed by preallocated rings.

The real-time callbacks only copy between PortAudio's buffer and a `RingBuffer` and count
xruns: no allocation, locks, logging or resampling there. Resampling to and from the device's
native rate happens on the application side in `read()` / `write()`. Anything missing
(PortAudio, a default device) raises `DeviceError` saying what to install or pick.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, TypeVar

import numpy as np

from rtaudio.dsp.resample import Resampler
from rtaudio.errors import ConfigError, DeviceError
from rtaudio.frames import AudioBlock
from rtaudio.ring import OverrunPolicy, RingBuffer


def _sounddevice() -> ModuleType:
    try:
        import sounddevice
    except (ImportError, OSError) as e:  # OSError: the PortAudio shared library is missing
        raise DeviceError(
            f"audio devices need PortAudio ({e}); install it (`apt install libportaudio2`, `brew install "
            "portaudio`) or use a file source/sink instead of a microphone/speaker"
        ) from e
    return sounddevice


def list_devices() -> list[dict[str, Any]]:
    """PortAudio's devices (name, channel counts, default rate); [] when there are none."""
    sd = _sounddevice()
    try:
        return [dict(d) for d in sd.query_devices()]
    except sd.PortAudioError as e:
        raise DeviceError(f"PortAudio cannot list devices: {e}") from e


def _device_info(kind: str, device: int | str | None) -> dict[str, Any]:
    sd = _sounddevice()
    try:
        info = sd.query_devices(device, kind=kind)
    except (sd.PortAudioError, ValueError) as e:
        names = [d["name"] for d in list_devices()]
        what = "microphone (input)" if kind == "input" else "speaker (output)"
        known = f"available devices: {names}" if names else "PortAudio sees no audio devices at all (no sound card?)"
        raise DeviceError(f"no {what} device {device if device is not None else '(default)'}: {e}; {known}") from e
    return dict(info)


_Stream = TypeVar("_Stream", bound="_DeviceStream")


class _DeviceStream:
    """What Microphone and Speaker share: config checks, opening the PortAudio stream, closing it.

    A subclass names its direction (`_kind`, `_what`, `_stream_class`) and implements `_prepare`
    (allocate everything its callback touches) and `_callback`.
    """

    _kind = ""  # "input" | "output": PortAudio's device kind
    _what = ""  # "microphone" | "speaker": for error messages
    _stream_class = ""  # "InputStream" | "OutputStream": the sounddevice class to open
    device_rate_hz: int  # the device's native rate, set by `_prepare`

    def __init__(self, rate_hz: int, device: int | str | None, block_ms: float, buffer_ms: float) -> None:
        if block_ms <= 0 or buffer_ms < 2 * block_ms:
            raise ConfigError(f"need block_ms > 0 and buffer_ms >= 2 * block_ms, got {block_ms}, {buffer_ms}")
        self.rate_hz = rate_hz
        self.device = device
        self.block_ms = block_ms
        self.buffer_ms = buffer_ms
        self.xruns = 0
        self._stream: Any = None
        self._ring: RingBuffer | None = None
        self._resampler: Resampler | None = None

    def start(self) -> None:
        sd = _sounddevice()
        info = _device_info(self._kind, self.device)
        self._prepare(int(info["default_samplerate"]))
        try:
            self._stream = getattr(sd, self._stream_class)(
                samplerate=self.device_rate_hz, channels=1, dtype="float32", device=self.device,
                blocksize=int(self.device_rate_hz * self.block_ms / 1000), callback=self._callback)
            self._stream.start()
        except sd.PortAudioError as e:
            raise DeviceError(f"cannot open {self._what} {info.get('name')!r} at {self.device_rate_hz} Hz: {e}") from e

    def _prepare(self, device_rate_hz: int) -> None:
        raise NotImplementedError

    def _callback(self, data: np.ndarray, frames: int, time: Any, status: Any) -> None:
        raise NotImplementedError

    def close(self) -> None:
        if self._stream is not None:
            self._stream.stop()
            self._stream.close()
            self._stream = None
        self._ring = None

    def __enter__(self: _Stream) -> _Stream:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Microphone(_DeviceStream):
    """Captures mono audio; `read()` returns what arrived since the last call at `rate_hz`.

    The ring holds `buffer_ms` of device audio and drops the oldest on overrun, so a stalled
    consumer loses old audio (counted in `overrun_samples`) instead of blocking the callback.
    """

    _kind, _what, _stream_class = "input", "microphone", "InputStream"

    def __init__(self, rate_hz: int = 16000, device: int | str | None = None, block_ms: float = 20.0,
                 buffer_ms: float = 2000.0) -> None:
        super().__init__(rate_hz, device, block_ms, buffer_ms)
        self._scratch = np.zeros(0, np.float32)
        self._position = 0

    def _prepare(self, device_rate_hz: int) -> None:
        """Allocate everything the callback touches before the stream starts."""
        self.device_rate_hz = device_rate_hz
        self._ring = RingBuffer(int(device_rate_hz * self.buffer_ms / 1000), policy=OverrunPolicy.DROP_OLDEST)
        self._scratch = np.zeros(self._ring.capacity, np.float32)
        self._resampler = Resampler(device_rate_hz, self.rate_hz)

    def _callback(self, indata: np.ndarray, frames: int, time: Any, status: Any) -> None:
        """PortAudio thread: copy into the ring, count xruns. Nothing else."""
        if status.input_overflow:
            self.xruns += 1
        assert self._ring is not None
        self._ring.write(indata[:, 0])

    def read(self) -> AudioBlock | None:
        """Captured audio since the last read (maybe empty); None once closed."""
        if self._ring is None or self._resampler is None:
            return None
        n, _ = self._ring.read_into(self._scratch)
        out = self._resampler.push(self._scratch[:n])
        block = AudioBlock(out, self.rate_hz, self._position)
        self._position += out.size
        return block

    @property
    def overrun_samples(self) -> int:
        return self._ring.overrun_samples if self._ring is not None else 0


class Speaker(_DeviceStream):
    """Plays mono float32 written at `rate_hz`; the callback pads with silence on underrun."""

    _kind, _what, _stream_class = "output", "speaker", "OutputStream"

    def __init__(self, rate_hz: int, device: int | str | None = None, block_ms: float = 20.0,
                 buffer_ms: float = 2000.0) -> None:
        super().__init__(rate_hz, device, block_ms, buffer_ms)

    def _prepare(self, device_rate_hz: int) -> None:
        """Allocate everything the callback touches before the stream starts."""
        self.device_rate_hz = device_rate_hz
        self._ring = RingBuffer(int(device_rate_hz * self.buffer_ms / 1000), policy=OverrunPolicy.REJECT_NEWEST)
        self._resampler = Resampler(self.rate_hz, device_rate_hz)

    def _callback(self, outdata: np.ndarray, frames: int, time: Any, status: Any) -> None:
        """PortAudio thread: copy from the ring (zero-padding an underrun), count xruns."""
        if status.output_underflow:
            self.xruns += 1
        assert self._ring is not None
        self._ring.read_into(outdata[:, 0], pad=True)

    def write(self, samples: np.ndarray) -> int:
        """Queue samples; returns how many were accepted (the rest did not fit in the buffer)."""
        if self._ring is None or self._resampler is None:
            raise DeviceError("speaker is not started; call start() first")
        dev = self._resampler.push(samples)
        accepted = self._ring.write(dev)  # a short write is counted in the ring's overrun_samples
        return samples.shape[0] if accepted == dev.size else accepted * self.rate_hz // self.device_rate_hz

    @property
    def underrun_samples(self) -> int:
        return self._ring.underrun_samples if self._ring is not None else 0
