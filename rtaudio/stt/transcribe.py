"""Transcribe audio or video files of any length at constant memory, with optional progress bar."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rtaudio.dsp.mel import SAMPLE_RATE_HZ
from rtaudio.io.files import AudioReader
from rtaudio.progress import Progress
from rtaudio.stt.decoding import DecodeOptions
from rtaudio.stt.longform import LongFormTranscriber
from rtaudio.stt.recognizer import WhisperRecognizer
from rtaudio.stt.results import Segment, Transcript

READ_BLOCK_SAMPLES = 10 * SAMPLE_RATE_HZ  # 10 s blocks: memory stays ~30 s of audio + one block


def transcribe_file(recognizer: WhisperRecognizer, path: str | Path, options: DecodeOptions | None = None,
                    prompt: str | None = None, show_progress: bool = False,
                    on_segment: Callable[[Segment], None] | None = None) -> Transcript:
    """Stream `path` (anything rtaudio.io.files reads; video through ffmpeg) through Whisper.

    Raises AudioError / UnsupportedFormatError / EmptyAudioError / ToolMissingError for files that
    cannot be read. `on_segment` sees each segment (absolute times) as soon as it is final."""
    path = Path(path)
    transcriber = LongFormTranscriber(recognizer, options, prompt)
    with AudioReader(path, block_samples=READ_BLOCK_SAMPLES, target_rate_hz=SAMPLE_RATE_HZ) as reader:
        total_s = reader.duration_s or 0.0
        with Progress(f"transcribe {path.name}"[:28], max(total_s, 1e-3), unit="s",
                      enabled=show_progress and total_s > 0) as bar:
            for block in reader.blocks():
                for segment in transcriber.push(block.samples):
                    if on_segment:
                        on_segment(segment)
                bar.set(transcriber.position_s)
            for segment in transcriber.flush():
                if on_segment:
                    on_segment(segment)
    return transcriber.result()
