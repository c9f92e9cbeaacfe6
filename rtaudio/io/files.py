"""Audio files in and out, whole or streamed in blocks at constant memory.

libsndfile (via soundfile) reads and writes WAV, FLAC, OGG/Vorbis/Opus, AIFF and MP3 in-process;
containers it cannot open (MP4/M4A, MKV, WebM, MOV, AAC, ...) go through an `ffmpeg` subprocess
that streams raw float32 through a pipe. Everything comes back as mono float32 in [-1, 1];
`target_rate_hz` resamples with rtaudio's streaming resampler so blocks stay consistent.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import numpy as np
import soundfile as sf

from rtaudio.dsp.pcm import to_mono
from rtaudio.dsp.resample import WHOLE_SIGNAL, Resampler
from rtaudio.errors import AudioError, EmptyAudioError, ToolMissingError, UnsupportedFormatError
from rtaudio.frames import AudioBlock

FFMPEG_ONLY_EXTS = frozenset({".mp4", ".m4a", ".mkv", ".webm", ".mov", ".aac", ".wma", ".avi", ".3gp", ".ts"})
SOUNDFILE_WRITE = {  # extension -> (libsndfile format, default subtype)
    ".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS"),
    ".oga": ("OGG", "VORBIS"), ".opus": ("OGG", "OPUS"), ".mp3": ("MP3", "MPEG_LAYER_III"),
    ".aiff": ("AIFF", "PCM_16"), ".aif": ("AIFF", "PCM_16"),
}
DEFAULT_BLOCK_SAMPLES = 65536
_PIPE_CHUNK_BYTES = 1 << 18


def find_tool(name: str, purpose: str) -> str:
    """Path of an external program, or ToolMissingError saying how to get it."""
    path = shutil.which(name)
    if path is None:
        raise ToolMissingError(
            f"{purpose} needs `{name}`, which is not on PATH; install FFmpeg (e.g. `apt install ffmpeg`, "
            "`brew install ffmpeg`) or convert the file to WAV/FLAC first"
        )
    return path


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise AudioError(f"audio file not found: {path}")
    if path.is_dir():
        raise AudioError(f"expected an audio file, got a directory: {path}")


def _probe_ffmpeg(path: Path) -> tuple[int, int, float | None]:
    """(sample rate Hz, channels, duration s or None) of the first audio stream, via ffprobe."""
    ffprobe = find_tool("ffprobe", f"reading {path.suffix or 'this'} files")
    cmd = [ffprobe, "-v", "error", "-select_streams", "a:0", "-show_entries",
           "stream=sample_rate,channels:format=duration", "-of", "default=noprint_wrappers=1", str(path)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    fields = dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)
    if res.returncode != 0 or "sample_rate" not in fields:
        why = (res.stderr.strip().splitlines() or ["no audio stream"])[-1]
        raise UnsupportedFormatError(f"cannot read audio from {path}: {why}")
    try:
        duration: float | None = float(fields.get("duration", ""))
    except ValueError:
        duration = None
    return int(fields["sample_rate"]), int(fields.get("channels", "1")), duration


def _last_line(proc: subprocess.Popen[bytes]) -> str:
    """ffmpeg's last stderr line (its error message), for a finished process."""
    err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
    return err.splitlines()[-1] if err else f"exit code {proc.returncode}"


class AudioReader:
    """Stream a file as mono float32 `AudioBlock`s of about `block_samples`, at constant memory.

    Use as a context manager; `blocks()` yields blocks whose `start_sample` counts output samples.
    """

    def __init__(self, path: str | Path, block_samples: int = DEFAULT_BLOCK_SAMPLES,
                 target_rate_hz: int | None = None) -> None:
        self.path = Path(path)
        if block_samples < 1:
            raise AudioError(f"block_samples must be >= 1, got {block_samples}")
        self.block_samples = block_samples
        _check_readable(self.path)
        self._sf: sf.SoundFile | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self.frames: int | None = None  # source frames, when known up front
        if self.path.suffix.lower() not in FFMPEG_ONLY_EXTS:
            try:
                self._sf = sf.SoundFile(str(self.path))
            except (sf.LibsndfileError, RuntimeError) as e:
                if shutil.which("ffmpeg") is None:
                    raise UnsupportedFormatError(
                        f"cannot read {self.path}: {e}. Readable without FFmpeg: WAV, FLAC, OGG, MP3, AIFF"
                    ) from e
        if self._sf is not None:
            self.source_rate_hz = int(self._sf.samplerate)
            self.channels = int(self._sf.channels)
            self.frames = int(self._sf.frames) if self._sf.seekable() else None
            duration = self.frames / self.source_rate_hz if self.frames is not None else None
        else:
            ffmpeg = find_tool("ffmpeg", f"reading {self.path.suffix or 'this'} files")
            self.source_rate_hz, self.channels, duration = _probe_ffmpeg(self.path)
            cmd = [ffmpeg, "-nostdin", "-v", "error", "-i", str(self.path), "-vn", "-map", "0:a:0",
                   "-ac", "1", "-f", "f32le", "-acodec", "pcm_f32le", "-"]
            self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.rate_hz = target_rate_hz or self.source_rate_hz
        self.duration_s = duration
        self._resampler = Resampler(self.source_rate_hz, self.rate_hz, WHOLE_SIGNAL) if self.rate_hz != self.source_rate_hz else None

    def _raw_chunks(self) -> Iterator[np.ndarray]:
        if self._sf is not None:
            for block in self._sf.blocks(blocksize=self.block_samples, dtype="float32", always_2d=True):
                yield to_mono(block)
            return
        assert self._proc is not None and self._proc.stdout is not None
        while True:
            data = self._proc.stdout.read(self.block_samples * 4)  # short only at end of stream
            if not data:
                break
            yield np.frombuffer(data[: len(data) // 4 * 4], dtype="<f4").astype(np.float32)
        if self._proc.wait() != 0:
            raise UnsupportedFormatError(f"ffmpeg could not decode {self.path}: {_last_line(self._proc)}")

    def blocks(self) -> Iterator[AudioBlock]:
        """Mono float32 blocks at `rate_hz`; raises EmptyAudioError if the file has no samples."""
        start = 0
        for chunk in self._raw_chunks():
            out = self._resampler.push(chunk) if self._resampler is not None else chunk
            if out.size:
                yield AudioBlock(out, self.rate_hz, start)
                start += out.size
        if self._resampler is not None:
            tail = self._resampler.flush()
            if tail.size:
                yield AudioBlock(tail, self.rate_hz, start)
                start += tail.size
        if start == 0:
            raise EmptyAudioError(f"{self.path} contains no audio samples")

    def close(self) -> None:
        if self._sf is not None:
            self._sf.close()
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            for pipe in (self._proc.stdout, self._proc.stderr):
                if pipe is not None:
                    pipe.close()

    def __enter__(self) -> AudioReader:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def read_audio(path: str | Path, target_rate_hz: int | None = None) -> tuple[np.ndarray, int]:
    """Whole file as (mono float32 1-D, rate Hz); resampled when target_rate_hz is given."""
    with AudioReader(path, target_rate_hz=target_rate_hz) as reader:
        parts = [b.samples for b in reader.blocks()]
        return (parts[0] if len(parts) == 1 else np.concatenate(parts)), reader.rate_hz


class AudioWriter:
    """Write float audio (n,) or (n, channels) to a file block by block; format from the extension."""

    def __init__(self, path: str | Path, rate_hz: int, channels: int = 1, subtype: str | None = None) -> None:
        self.path = Path(path)
        self.rate_hz = int(rate_hz)
        self.channels = channels
        ext = self.path.suffix.lower()
        self._sf: sf.SoundFile | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self.samples_written = 0
        if rate_hz <= 0 or channels < 1:
            raise AudioError(f"need a positive rate and channel count, got {rate_hz} Hz, {channels} channels")
        if ext in SOUNDFILE_WRITE:
            fmt, default_subtype = SOUNDFILE_WRITE[ext]
            self._integer = (subtype or default_subtype).startswith("PCM")
            try:
                self._sf = sf.SoundFile(str(self.path), "w", samplerate=self.rate_hz, channels=channels,
                                        format=fmt, subtype=subtype or default_subtype)
            except (sf.LibsndfileError, RuntimeError, ValueError) as e:
                raise UnsupportedFormatError(f"cannot write {self.path} as {fmt}/{subtype or default_subtype}: {e}") from e
        elif ext in FFMPEG_ONLY_EXTS:
            ffmpeg = find_tool("ffmpeg", f"writing {ext} files")
            self._integer = False
            cmd = [ffmpeg, "-nostdin", "-v", "error", "-y", "-f", "f32le", "-ar", str(self.rate_hz),
                   "-ac", str(channels), "-i", "-", "-vn", str(self.path)]
            self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        else:
            known = ", ".join(sorted(set(SOUNDFILE_WRITE) | FFMPEG_ONLY_EXTS))
            raise UnsupportedFormatError(f"cannot write {self.path}: unknown extension {ext!r} (known: {known})")

    def write(self, x: np.ndarray) -> None:
        a = np.asarray(x, dtype=np.float32)
        if a.ndim == 1:
            a = a[:, None]
        if a.ndim != 2 or a.shape[1] != self.channels:
            raise AudioError(f"expected (frames,) or (frames, {self.channels}) samples, got shape {np.shape(x)}")
        if self._integer:
            a = np.clip(a, -1.0, 1.0)  # libsndfile wraps out-of-range floats when writing integer PCM
        if self._sf is not None:
            self._sf.write(a)
        else:
            assert self._proc is not None and self._proc.stdin is not None
            try:
                self._proc.stdin.write(np.ascontiguousarray(a, dtype="<f4").tobytes())
            except BrokenPipeError as e:
                self._proc.wait()
                raise AudioError(f"ffmpeg stopped while writing {self.path}: {_last_line(self._proc)}") from e
        self.samples_written += a.shape[0]

    def close(self) -> None:
        if self._sf is not None:
            self._sf.close()
            self._sf = None
        if self._proc is not None:
            proc, self._proc = self._proc, None
            try:
                if proc.stdin is not None:
                    proc.stdin.close()
            except BrokenPipeError:
                pass
            if proc.wait() != 0:
                raise UnsupportedFormatError(f"ffmpeg could not write {self.path}: {_last_line(proc)}")
            if proc.stderr is not None:
                proc.stderr.close()

    def __enter__(self) -> AudioWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def write_audio(path: str | Path, x: np.ndarray, rate_hz: int, subtype: str | None = None) -> None:
    """Write float audio (n,) or (n, channels) in [-1, 1]; format from the extension.

    WAV/FLAC default to 16-bit PCM (pass subtype="FLOAT" / "PCM_24" for more); MP4/M4A/WebM/...
    are encoded by ffmpeg with its default codec for the container.
    """
    a = np.asarray(x)
    if not np.issubdtype(a.dtype, np.floating):
        raise AudioError(f"write_audio takes float samples in [-1, 1], got dtype {a.dtype}")
    channels = 1 if a.ndim == 1 else int(a.shape[1])
    with AudioWriter(path, rate_hz, channels=channels, subtype=subtype) as w:
        w.write(a)
