"""The shareable offline recognizer: ONNX sessions + tokenizer, one window or a whole recording.

`WhisperRecognizer` holds no per-stream state, so one instance serves many sessions and threads.
Windows shorter than 30 s run the encoder on their own length (the positional embedding is
trimmed), plus `trailing_pad_s` of silence: a window ending right at speech otherwise invites
repetition loops and early stops.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rtaudio.clock import Clock, SystemClock
from rtaudio.dsp.mel import HOP_SAMPLES, SAMPLE_RATE_HZ, log_mel_spectrogram
from rtaudio.errors import AudioError, ConfigError, EmptyAudioError
from rtaudio.frames import Word
from rtaudio.onnx_session import DEVICES
from rtaudio.stt.alignment import align_tokens, to_words
from rtaudio.stt.decoding import DecodeOptions, Hypothesis, WindowDecoder
from rtaudio.stt.onnx_whisper import PRECISIONS, OnnxWhisper, WhisperBackend
from rtaudio.stt.results import Segment, Transcript, WindowResult
from rtaudio.stt.tokenizer import WhisperTokenizer

WINDOW_S = 30.0
WINDOW_SAMPLES = int(WINDOW_S * SAMPLE_RATE_HZ)  # 480000 samples
WINDOW_FRAMES = WINDOW_SAMPLES // HOP_SAMPLES  # 3000 mel frames
FRAMES_PER_POSITION = 2  # encoder conv stride: one audio position per 20 ms
SILENCE_RMS = 10 ** (-75 / 20)  # below -75 dBFS RMS a window is silence: the model is not run


@dataclass(frozen=True)
class RecognizerConfig:
    precision: str = "auto"
    """"int8" (weight MatMuls quantized), "fp32", or "auto": int8 on the CPU, fp32 on a CUDA GPU."""
    threads: int = 2
    """onnxruntime intra-op threads of the encoder (one large call per window)."""
    decoder_threads: int = 1
    """Threads of the decoder step: its many small ops lose more to thread hand-offs than they gain."""
    spin: bool = True
    """Let onnxruntime threads spin between calls (lower latency, burns idle CPU)."""
    trailing_pad_s: float = 5.0
    """Silence appended to a window shorter than 30 s before encoding."""
    min_window_s: float = 10.0
    """Encode at least this much (audio + silence): very short windows decode worse."""
    window_step_s: float = 1.0
    """Encoder lengths are rounded up to a multiple of this (fewer distinct shapes)."""
    full_window: bool = False
    """Always encode 30 s (Whisper's training condition; slowest, reference accuracy)."""
    device: str = "auto"
    """Where the encoder and decoder run: "auto" (a CUDA GPU where onnxruntime-gpu is installed, else the
    CPU), "cpu" or "cuda"."""

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.threads < 1 or self.decoder_threads < 1:
            raise ConfigError("threads and decoder_threads must be >= 1")
        if not 0 <= self.trailing_pad_s <= WINDOW_S:
            raise ConfigError("trailing_pad_s must be within [0, 30]")
        if not 0 <= self.min_window_s <= WINDOW_S:
            raise ConfigError("min_window_s must be within [0, 30]")
        if not 0.02 <= self.window_step_s <= WINDOW_S:
            raise ConfigError("window_step_s must be within [0.02, 30]")
        if self.device not in DEVICES:
            raise ConfigError(f"device must be one of {DEVICES}, got {self.device!r}")


def _check_audio(audio: np.ndarray, max_samples: int | None) -> np.ndarray:
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise AudioError(f"expected mono 1-D audio, got shape {audio.shape}")
    if audio.size == 0:
        raise EmptyAudioError("audio is empty")
    if not np.issubdtype(audio.dtype, np.floating):
        raise AudioError(f"expected float32 samples in [-1, 1], got {audio.dtype}")
    if max_samples is not None and audio.size > max_samples:
        raise AudioError(f"window is {audio.size / SAMPLE_RATE_HZ:.2f} s; at most {WINDOW_S:.0f} s")
    return audio.astype(np.float32, copy=False)


def split_segments(tokens: Sequence[int], tokenizer: WhisperTokenizer, content_s: float,
                   ) -> tuple[list[tuple[float, float, list[int]]], float]:
    """Cut a window's sampled tokens at timestamp pairs -> ([(start_s, end_s, tokens)], consumed_s).

    `consumed_s` is where the next window starts: the last closing timestamp, or the whole content
    when the text ended with a lone timestamp (speech ran to the end) or carried no timestamps."""
    tb = tokenizer.timestamp_begin
    is_ts = [t >= tb for t in tokens]
    single_ending = len(tokens) >= 2 and is_ts[-1] and not is_ts[-2]
    cuts = [i for i in range(1, len(tokens)) if is_ts[i] and is_ts[i - 1]]
    if single_ending:
        cuts.append(len(tokens))
    if cuts:
        pieces, last = [], 0
        for cut in cuts:
            piece = list(tokens[last:cut])
            pieces.append((tokenizer.timestamp_s(piece[0]), tokenizer.timestamp_s(piece[-1]), piece))
            last = cut
        consumed = content_s if single_ending else tokenizer.timestamp_s(tokens[last - 1])
        return _clamp(pieces, content_s), min(consumed, content_s)
    stamps = [t for t in tokens if t >= tb]
    end = tokenizer.timestamp_s(stamps[-1]) if stamps and stamps[-1] != tb else content_s
    start = tokenizer.timestamp_s(stamps[0]) if stamps and len(stamps) > 1 else 0.0
    return _clamp([(start, end if end > start else content_s, list(tokens))], content_s), content_s


def _clamp(pieces: list[tuple[float, float, list[int]]], content_s: float) -> list[tuple[float, float, list[int]]]:
    """Times past the audio (the model may stamp into the silence padding) end at the audio's end."""
    return [(min(a, content_s), min(b, content_s), t) for a, b, t in pieces]


class WhisperRecognizer:
    """Whisper speech recognition on ONNX graphs. Thread-safe; share one per model."""

    def __init__(self, backend: WhisperBackend, tokenizer: WhisperTokenizer, config: RecognizerConfig,
                 name: str = "whisper", clock: Clock | None = None) -> None:
        self.backend = backend
        self.tokenizer = tokenizer
        self.config = config
        self.name = name
        self.clock: Clock = clock or SystemClock()
        """Times the stages of each window (`WindowResult.stage_s`)."""
        self.decoder = WindowDecoder(backend, tokenizer)

    @classmethod
    def load(cls, model: str = "whisper-tiny.en", config: RecognizerConfig | None = None) -> WhisperRecognizer:
        """Open a fetched model by registry name or alias (raises ModelNotFetchedError with the fix)."""
        from rtaudio.modelstore import get_spec, model_dir

        config = config or RecognizerConfig()
        spec = get_spec(model)
        if spec.kind != "stt":
            raise ConfigError(f"{spec.name} is a {spec.kind} model, not a speech recognizer")
        return cls.from_folder(model_dir(spec.name), config, spec.name)

    @classmethod
    def from_folder(cls, folder: Path, config: RecognizerConfig | None = None,
                    name: str = "whisper") -> WhisperRecognizer:
        config = config or RecognizerConfig()
        backend = OnnxWhisper(folder, config.precision, config.threads, config.spin, config.decoder_threads,
                              config.device)
        tokenizer = WhisperTokenizer.from_file(folder / "tokenizer.json", backend.info.dims.n_vocab)
        return cls(backend, tokenizer, config, name)

    @property
    def multilingual(self) -> bool:
        return self.tokenizer.multilingual

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE_HZ

    # -- one window --------------------------------------------------------------------------
    def encoder_frames(self, n_samples: int) -> int:
        """Mel frames the encoder sees for a window of `n_samples` (even, <= 3000)."""
        if self.config.full_window:
            return WINDOW_FRAMES
        step = max(2, round(self.config.window_step_s * SAMPLE_RATE_HZ / HOP_SAMPLES))
        frames_per_s = SAMPLE_RATE_HZ / HOP_SAMPLES
        wanted = max(n_samples / HOP_SAMPLES + self.config.trailing_pad_s * frames_per_s,
                     self.config.min_window_s * frames_per_s)
        frames = math.ceil(wanted / step) * step
        return min(WINDOW_FRAMES, frames + frames % 2)

    def features(self, audio: np.ndarray) -> np.ndarray:
        """Window audio (<= 30 s) -> normalised log-mel (n_mels, encoder_frames), silence-padded;
        the max-8 clamp uses this window's maximum."""
        n_frames = self.encoder_frames(audio.size)
        pad = max(0, n_frames * HOP_SAMPLES - audio.size)
        mel = log_mel_spectrogram(audio, self.backend.info.dims.n_mels, padding=pad)
        return np.ascontiguousarray(mel[:, :n_frames])

    def transcribe_window(self, audio: np.ndarray, prompt: str | None = None,
                          options: DecodeOptions | None = None) -> WindowResult:
        """Decode one window: audio float32 mono 16 kHz, at most 30 s. Times are window-relative."""
        audio = _check_audio(audio, WINDOW_SAMPLES)
        prompt_tokens = self.tokenizer.encode(" " + prompt.strip()) if prompt and prompt.strip() else []
        return self.decode_window(audio, prompt_tokens, options or DecodeOptions())

    def decode_window(self, audio: np.ndarray, prompt_tokens: Sequence[int], options: DecodeOptions,
                      ) -> WindowResult:
        """`transcribe_window` with the prompt already tokenized (long-form carries tokens)."""
        content_s = audio.size / SAMPLE_RATE_HZ
        self.tokenizer.sot_sequence(options.language or (None if self.multilingual else "en"), options.task)
        if float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) < SILENCE_RMS:
            return WindowResult([], "", 1.0, 0.0, options.language, 0.0, content_s)  # digital silence
        t0 = self.clock.now_ns()
        mel = self.features(audio)
        cross = self.backend.encode(mel)
        t1 = self.clock.now_ns()
        window_s = mel.shape[1] / (SAMPLE_RATE_HZ / HOP_SAMPLES)
        hyp = self.decoder.decode(cross, options, prompt_tokens, window_s, content_s)
        t2 = self.clock.now_ns()
        stage_s = {"encoder": (t1 - t0) / 1e9, "decoder": (t2 - t1) / 1e9}
        if self._is_silence(hyp, options):
            return WindowResult([], "", hyp.no_speech_prob, hyp.avg_logprob, hyp.language, hyp.temperature,
                                content_s, stage_s)
        pieces, consumed = split_segments(hyp.tokens, self.tokenizer, content_s)
        words_per_piece = self._words(cross, hyp, pieces, audio.size // HOP_SAMPLES, options)
        stage_s["align"] = (self.clock.now_ns() - t2) / 1e9
        segments = []
        for (start, end, toks), words in zip(pieces, words_per_piece, strict=True):
            text = self.tokenizer.decode(toks)
            if not text.strip():
                continue
            if words:  # word alignment is finer than timestamp tokens
                start, end = words[0].start_s, words[-1].end_s
            segments.append(Segment(text, start, end, words, tuple(toks), hyp.avg_logprob, hyp.no_speech_prob,
                                    hyp.compression_ratio, hyp.temperature))
        return WindowResult(segments, hyp.text, hyp.no_speech_prob, hyp.avg_logprob, hyp.language,
                            hyp.temperature, consumed, stage_s)

    @staticmethod
    def _is_silence(hyp: Hypothesis, options: DecodeOptions) -> bool:
        if options.no_speech_only_threshold is not None and hyp.no_speech_prob > options.no_speech_only_threshold:
            return True
        if options.no_speech_threshold is None or hyp.no_speech_prob <= options.no_speech_threshold:
            return not hyp.text
        return options.logprob_threshold is None or hyp.avg_logprob <= options.logprob_threshold

    def _words(self, cross: list[np.ndarray], hyp: Hypothesis, pieces: list[tuple[float, float, list[int]]],
               n_frames: int, options: DecodeOptions) -> list[list[Word]]:
        if not options.word_timestamps:
            return [[] for _ in pieces]
        eot = self.tokenizer.eot
        text_tokens = [t for t in hyp.tokens if t < eot]
        logprobs = [lp for t, lp in zip(hyp.tokens, hyp.token_logprobs, strict=True) if t < eot]
        sot_seq = self.tokenizer.sot_sequence(hyp.language, options.task)
        words = align_tokens(self.backend, self.tokenizer, cross, sot_seq, text_tokens, logprobs, n_frames,
                             hyp.language)
        out: list[list[Word]] = []
        k = 0
        for _, _, toks in pieces:  # hand words to segments in token order
            n_text = sum(1 for t in toks if t < eot)
            mine, taken = [], 0
            while k < len(words) and taken < n_text:
                mine.append(words[k])
                taken += len(words[k].tokens)
                k += 1
            out.append(to_words(mine))
        return out

    # -- long form ---------------------------------------------------------------------------
    def transcribe(self, audio: np.ndarray, options: DecodeOptions | None = None,
                   prompt: str | None = None) -> Transcript:
        """A whole recording in memory (any length) -> Transcript with absolute times. For files at
        constant memory see rtaudio.stt.transcribe.transcribe_file (same LongFormTranscriber)."""
        from rtaudio.stt.longform import LongFormTranscriber

        audio = _check_audio(audio, None)
        lf = LongFormTranscriber(self, options or DecodeOptions(), prompt)
        lf.push(audio)
        lf.flush()
        return lf.result()
