"""Long recordings at constant memory: a sans-I/O transcriber fed with audio blocks.

Whisper reads 30 s windows. After each window the next one starts where the decoded segments
ended (the last closing timestamp), so words cut by the window edge are decoded again in full;
the previous window's tokens prompt the next one for consistent spelling and style. Only the audio
from the current window start onwards is kept (at most 30 s plus one pushed block).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from rtaudio.dsp.mel import SAMPLE_RATE_HZ
from rtaudio.stt.decoding import DecodeOptions
from rtaudio.stt.recognizer import WINDOW_SAMPLES, WhisperRecognizer
from rtaudio.stt.results import Segment, Transcript

MIN_ADVANCE_SAMPLES = SAMPLE_RATE_HZ // 50  # one timestamp step: guarantees progress


class LongFormTranscriber:
    """push(samples) -> finished segments (absolute times); flush() at the end; result() for all."""

    def __init__(self, recognizer: WhisperRecognizer, options: DecodeOptions | None = None,
                 prompt: str | None = None) -> None:
        self.recognizer = recognizer
        self.options = options or DecodeOptions()
        self._prompt: list[int] = (recognizer.tokenizer.encode(" " + prompt.strip())
                                   if prompt and prompt.strip() else [])
        self._buffer = np.zeros(0, np.float32)
        self._buffer_start = 0  # absolute sample index of _buffer[0] (== the next window start)
        self._received = 0
        self._segments: list[Segment] = []
        self._language: str | None = self.options.language

    @property
    def position_s(self) -> float:
        """Audio decoded so far (start of the next window), seconds."""
        return self._buffer_start / SAMPLE_RATE_HZ

    def push(self, samples: np.ndarray) -> list[Segment]:
        """Add mono float32 16 kHz samples; decode every full 30 s window now available."""
        samples = np.asarray(samples, dtype=np.float32)
        self._buffer = np.concatenate([self._buffer, samples]) if self._buffer.size else samples.copy()
        self._received += samples.size
        out: list[Segment] = []
        while self._buffer.size >= WINDOW_SAMPLES:
            out += self._decode_next()
        return out

    def flush(self) -> list[Segment]:
        """Decode what is left (the last, shorter windows)."""
        out: list[Segment] = []
        while self._buffer.size >= MIN_ADVANCE_SAMPLES:
            out += self._decode_next()
        self._buffer = self._buffer[:0]
        return out

    def result(self) -> Transcript:
        return Transcript(list(self._segments), self._language, self._received / SAMPLE_RATE_HZ)

    def _decode_next(self) -> list[Segment]:
        window = self._buffer[:WINDOW_SAMPLES]
        options = self.options if self._language is None else dataclasses.replace(self.options,
                                                                                    language=self._language)
        result = self.recognizer.decode_window(window, self._prompt, options)
        if self._language is None:
            self._language = result.language
        offset_s = self._buffer_start / SAMPLE_RATE_HZ
        new = [s.shifted(offset_s) for s in result.segments]
        self._segments += new
        for s in result.segments:
            self._prompt += list(s.tokens)
        if not options.condition_on_previous_text or result.temperature > options.prompt_reset_on_temperature:
            self._prompt = []
        advance = max(MIN_ADVANCE_SAMPLES, round(result.consumed_s * SAMPLE_RATE_HZ))
        advance = min(advance, window.size)
        self._buffer = self._buffer[advance:]
        self._buffer_start += advance
        return new
