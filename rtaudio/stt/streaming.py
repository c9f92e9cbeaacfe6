"""Live captions from a 16 kHz stream: partial captions a fraction of a second after speech, finals that never change.

`StreamingRecognizer` is a sans-I/O per-stream object around a shared `WhisperRecognizer`:

    stream.accept_waveform(samples)          # any chunk size; cheap (a copy)
    while stream.is_ready():
        captions = stream.decode()           # the compute: VAD, Whisper passes, stabilization
        events = stream.events()             # SpeechStarted / SpeechEnded / BudgetEvent, in order
    stream.input_finished(); stream.decode() # flushes the last segment as FINAL

How it works. Silero VAD gates everything: Whisper only runs inside speech segments, so silence,
music and noise produce no text. While a segment is open, every `partial_interval_ms` of new audio
the encoder runs on the trimmed window (the segment's audio since its start or last cut, not 30 s),
after a few seconds of already-final audio as acoustic context and with the earlier final text as
the prompt (see `window_pass`: padding against loops, loop cuts, context words dropped by time, except
those after the last final word, which the VAD had scored as silence).
`LocalAgreement` commits the words on which consecutive hypotheses agree, once the window is long
enough to trust and not at its very end (STABLE captions; PARTIAL captions show committed words +
the unstable tail). A long utterance without pauses is cut at a committed word boundary once the
window exceeds `trim_window_ms`: the committed words become a FINAL caption and the window restarts
there. The VAD endpoint ends the segment and its FINAL follows at once, from a beam-5 pass over the
segment with timestamp tokens (`final_beam_size`; with 1 the last greedy pass is reused when it heard all
the speech).
Captions carry `segment_id` (one per FINAL), sample times and word times.
`events()` returns the VAD `SpeechStarted` / `SpeechEnded` and `BudgetEvent`s in stream order.

Latency budgets (`latency_budget`): every pass is timed with the injected clock and `accept_waveform`
stamps when audio arrived (or takes the arrival time from the caller: the server's ring). Partial and
endpoint-final lags are measured against `config.budget`; over budget the stream steps down a
documented ladder (fewer partials, greedy and shorter decoding, shorter window, fallback model) and
back up when it keeps up again; partials are skipped outright while audio waits longer than
`max_lag_ms`. `lag_s` is the current output delay; `stages` records per-stage times (rtaudio.latency).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from rtaudio.clock import Clock, SystemClock
from rtaudio.errors import AudioError, ConfigError, SampleRateError
from rtaudio.frames import Caption, Stability, Word
from rtaudio.latency import StageRecorder
from rtaudio.stt.decoding import DecodeOptions
from rtaudio.stt.latency_budget import BudgetEvent, LatencyBudget, LatencyBudgetConfig, Rung
from rtaudio.stt.stabilizer import LocalAgreement
from rtaudio.stt.vad import (
    FRAME_SAMPLES,
    SileroVad,
    SileroVadModel,
    SpeechEnded,
    SpeechStarted,
    VadConfig,
    VadSegmenter,
)
from rtaudio.stt.window_pass import (
    EARLY_STOP_S,
    MISSED_WORD_GAP_S,
    STREAMING_DECODE,
    Hypothesis,
    WindowPass,
    run_pass,
    words_text,
)

SAMPLE_RATE_HZ = 16000
FINAL_TEXT_CHARS = 2000
FINAL_WORDS = 200
LIVE_PROBE_SAMPLES = 3 * SAMPLE_RATE_HZ  # input faster than real time over this much audio is not live


@dataclass(frozen=True)
class StreamingConfig:
    """Cadence, window and stability policy of one live stream."""

    partial_interval_ms: int = 250
    """New audio between two Whisper passes while someone speaks (the partial cadence)."""
    min_window_ms: int = 300
    """The first pass of a segment waits until its window holds this much audio."""
    trim_window_ms: int = 12000
    """Once the window is longer, it is cut at the last committed word (the committed words go FINAL).
    Longer windows give Whisper more context: 6 s -> 12 s (with a 700 ms commit guard) took streaming WER
    from 6.46 % to 4.09 % on the bench subset (`bench/stt_stream.py --stride 3`); each cut also risks
    Whisper skipping the first words after it."""
    max_window_ms: int = 16000
    """Hard cap: past this, tail words older than `partial_interval_ms` * 4 are committed by force."""
    agreement_n: int = 2
    """LocalAgreement-n: hypotheses that must agree before a word is committed."""
    min_commit_window_ms: int = 4000
    """No word is committed while the window is shorter: Whisper misreads the first words of a short
    window ("Ask" -> "S", "my" -> "am I") consistently enough for two passes to agree on them, and a
    segment shorter than this goes FINAL whole, from a pass that heard all of it. 1500 -> 4000 ms took
    streaming WER on all dev files from 10.04 % to 8.49 % (`bench/stt_stream.py`); 6000 ms gave no more.
    Partials are unchanged: only the STABLE mark comes later."""
    min_encode_ms: int = 8000
    """Shorter windows are padded with silence to this length before encoding. Whisper on a trimmed
    encoder falls into repetition loops on very short inputs (11 of 27 test windows under 3 s loop
    unpadded, 2 padded to 8 s), and loops cost more tokens than the padding costs encoder time."""
    final_beam_size: int = 5
    """Beam width of the pass that finalizes a segment at a VAD endpoint; 1 reuses the last partial
    pass when it heard the whole segment (no extra compute: the final comes at once). Greedy passes
    flip between readings as the window grows ("And so my" / "And so am I" at 2.4, 2.6, 2.8 s), beam 5
    settles them: streaming WER on all dev files 8.42 % -> 8.09 % (8.22 % -> 7.75 % at VAD threshold
    0.25) for +0.12 s of final latency (median 0.43 -> 0.55 s). The ladder drops it to 1 under load."""
    context_ms: int = 6000
    """Audio before a segment that follows a pause (already final) that each pass hears again for
    context; its words are recognized but dropped, so a short segment is not decoded in isolation
    (except words the VAD missed, see `keep_missed_words`). 4 s -> 6 s: all dev files on the
    deterministic clock 7.41 % -> 7.14 %, all of it the hoarse recording whose speech the VAD scores as
    silence (more of it heard again); no other file changed; partial latency p95 0.66 -> 0.69 s."""
    keep_missed_words: bool = True
    """Context words that start after the last final word are kept, not dropped with the context: speech
    the VAD scored as silence between two segments (a hoarse or soft voice), which Whisper hears when the
    next segment's passes hear the context again. All dev files: 8.42 % -> 7.61 % (the MFA recording with
    a cold: 23 -> 18 errors; the long LJSpeech reading 8 -> 3)."""
    final_timestamps: bool = True
    """The endpoint's beam pass decodes with timestamp tokens, as offline transcription does: spelled
    strings come out whole ("P-R-I-N-C-E." where the plain pass wrote "PRI NCE."). AN4 errors 45 -> 39."""
    context_words: int = 12
    """The context starts no earlier than the last this many final words (bounds the tokens it costs)."""
    commit_guard_ms: int = 700
    """Words ending this close to the window's end are not committed yet: Whisper misreads the last
    words of a window (cut off, or without the context that follows) consistently enough for two passes
    to agree on them. They stay in the PARTIAL tail meanwhile, so nothing is shown later."""
    prompt_chars: int = 160
    """How much of the stream's final text conditions the next pass."""
    no_speech_threshold: float = 0.6
    logprob_threshold: float = -1.0
    """A pass with p(no speech) above the first and mean log-probability below the second is silence."""
    max_tokens_per_s: float = 6.0
    """Token budget of a pass: 8 + this * window seconds. Fast speech needs ~5/s; a decoding loop
    (which a short window invites) is cut there instead of running to 224 tokens."""
    quiet_after_speech_ms: int = 320
    """Skip passes once the window already holds this much non-speech after the last voiced frame."""
    pause_pass_ms: int | None = None
    """Run a pass as soon as this much silence follows speech that no pass has heard the end of, so the
    VAD endpoint's FINAL can reuse it instead of running one then (the voice loop uses 64 ms: the user's
    text is ready when the turn ends). None: passes keep their cadence."""
    max_lag_ms: int = 1000
    """Backstop: while audio waits longer than this before being processed, partials are skipped."""
    vad: VadConfig = field(default_factory=lambda: VadConfig(min_silence_ms=640))
    """Endpoints after 640 ms of silence (VadConfig: 480): fewer segments end inside a spelled string or a
    hoarse voice's low-probability stretch. All dev files, deterministic clock (`bench/stt_stream.py
    --charge model`): streaming WER 7.68 % -> 7.41 % (800 ms: 7.48 %), final latency median 0.64 -> 0.66 s.
    At p(speech) 0.3 as well it was 7.28 %, but JFK's "my fellow Americans" became "am I fellow"."""
    budget: LatencyBudgetConfig = field(default_factory=LatencyBudgetConfig)
    """Latency targets and the degradation ladder (see rtaudio.stt.latency_budget)."""

    def __post_init__(self) -> None:
        if self.partial_interval_ms < 20:
            raise ConfigError("partial_interval_ms must be at least 20")
        if not 0 <= self.min_encode_ms <= 30000:
            raise ConfigError("min_encode_ms must be within [0, 30000]")
        if not 0 < self.min_window_ms <= self.trim_window_ms <= self.max_window_ms <= 30000 - self.context_ms:
            raise ConfigError("need 0 < min_window_ms <= trim_window_ms <= max_window_ms <= 30000 - context_ms "
                              "(Whisper's window)")
        if self.agreement_n < 1 or self.final_beam_size < 1:
            raise ConfigError("agreement_n and final_beam_size must be >= 1")
        if self.max_tokens_per_s <= 0:
            raise ConfigError("max_tokens_per_s must be > 0")
        if min(self.prompt_chars, self.quiet_after_speech_ms, self.commit_guard_ms, self.context_ms,
               self.context_words) < 0 or self.max_lag_ms <= 0:
            raise ConfigError("prompt_chars, quiet_after_speech_ms, commit_guard_ms, context_ms, context_words "
                              "must be >= 0; max_lag_ms > 0")


StreamEvent = SpeechStarted | SpeechEnded | BudgetEvent


class _AudioBuffer:
    """Growable float32 buffer addressed by absolute stream sample; old audio is dropped explicitly."""

    def __init__(self) -> None:
        self._data = np.zeros(SAMPLE_RATE_HZ * 8, np.float32)
        self.start = 0  # absolute sample of _data[0]
        self.end = 0  # absolute sample after the last one

    def append(self, x: np.ndarray) -> None:
        used = self.end - self.start
        if used + len(x) > len(self._data):
            grown = np.zeros(max(2 * len(self._data), used + len(x)), np.float32)
            grown[:used] = self._data[:used]
            self._data = grown
        self._data[used: used + len(x)] = x
        self.end += len(x)

    def view(self, a: int, b: int) -> np.ndarray:
        a, b = max(a, self.start), min(b, self.end)
        return self._data[a - self.start: max(a, b) - self.start]

    def drop_before(self, sample: int) -> None:
        cut = min(max(sample, self.start), self.end) - self.start
        if cut > len(self._data) // 2:  # move only when it frees a lot: amortized O(1) per sample
            used = self.end - self.start
            self._data[: used - cut] = self._data[cut:used]
            self.start += cut


def _ms_to_samples(ms: float) -> int:
    return int(ms * SAMPLE_RATE_HZ) // 1000


class StreamingRecognizer:
    """Per-stream live captioning state over a shared recognizer (see the module docstring).

    `recognizer` is a `rtaudio.stt.recognizer.WhisperRecognizer` (anything with its
    `transcribe_window(audio, prompt=, options=) -> WindowResult`). `decode_options` defaults to
    `STREAMING_DECODE`; its token budget is set per pass from the window length.
    """

    def __init__(self, recognizer: Any, config: StreamingConfig | None = None, clock: Clock | None = None,
                 vad_model: SileroVadModel | None = None, decode_options: DecodeOptions | None = None,
                 fallback_recognizer: Any = None) -> None:
        self.recognizer = recognizer
        self.fallback_recognizer = fallback_recognizer
        """A smaller model for the ladder's last rung (None: the ladder stops at SHORT_WINDOW)."""
        self.config = config or StreamingConfig()
        self.clock: Clock = clock or SystemClock()
        cfg = self.config
        self.decode_options = replace(decode_options or STREAMING_DECODE, no_speech_threshold=cfg.no_speech_threshold,
                                      logprob_threshold=cfg.logprob_threshold)
        self._vad = SileroVad(vad_model or SileroVadModel.load())
        self._segmenter = VadSegmenter(cfg.vad)
        self._stab = LocalAgreement(cfg.agreement_n)
        self._budget = LatencyBudget(cfg.budget, cfg.partial_interval_ms / 1000, cfg.max_lag_ms / 1000,
                                     Rung.SMALLER_MODEL if fallback_recognizer is not None else Rung.SHORT_WINDOW)
        self.stages = StageRecorder()
        """Per-stage times of this stream (accept, vad, encoder, decoder, align, pass, stabilizer, partial, final)."""
        self._pass_spec = WindowPass(cfg.min_encode_ms / 1000, cfg.max_tokens_per_s)
        self._resampler: Any = None
        self.reset()

    # ----------------------------------------------------------------- input
    def reset(self) -> None:
        """Start a new stream (the model and configuration are kept)."""
        self._vad.reset()
        self._segmenter.reset()
        self._stab.reset()
        self._audio = _AudioBuffer()
        self._arrivals: list[tuple[int, int]] = []  # (end sample, clock ns) per accepted chunk
        self._finished = False
        self._flushed = False
        self._events: list[StreamEvent] = []
        self._segment_id = 0
        self._window_start: int | None = None  # None: no speech segment open
        self._after_cut = False  # the window starts at a cut in continuous speech (not after a pause)
        self._last_pass: Hypothesis | None = None
        self._last_voiced_end = 0
        self._final_text = ""
        self._final_words: list[Word] = []  # recent final words (stream times): context echo and prompt
        self._budget.reset()
        self.lag_s = 0.0
        """Seconds from the arrival of the newest audio a decode used to the end of that decode."""
        self.passes = 0
        """Whisper passes run (partial and final)."""
        self._resampler = None
        self._resampler_rate = 0

    def accept_waveform(self, samples: np.ndarray, sample_rate: int = SAMPLE_RATE_HZ,
                        arrival_ns: int | None = None) -> None:
        """Queue mono float samples (any length); other rates are resampled to 16 kHz. `arrival_ns`: when
        the newest of them arrived (clock time; default now), so lag counts the wait before this call."""
        t0 = self.clock.now_ns()
        if self._finished:
            raise AudioError("accept_waveform after input_finished; call reset() for a new stream")
        x = np.asarray(samples)
        if x.ndim != 1 or not np.issubdtype(x.dtype, np.floating):
            raise AudioError(f"samples must be 1-D float (mono), got {x.dtype} with shape {x.shape}")
        if sample_rate <= 0:
            raise SampleRateError(f"sample rate must be positive, got {sample_rate}")
        x = x.astype(np.float32, copy=False)
        if sample_rate != SAMPLE_RATE_HZ:
            x = self._resample(x, sample_rate)
        self._audio.append(x)
        now = self.clock.now_ns()
        self._arrivals.append((self._audio.end, now if arrival_ns is None else min(arrival_ns, now)))
        self.stages.record("accept", (now - t0) / 1e9)

    def _resample(self, x: np.ndarray, rate: int) -> np.ndarray:
        from rtaudio.dsp.resample import Resampler

        if self._resampler_rate != rate:
            if self._resampler_rate:
                raise SampleRateError("the sample rate of a stream cannot change; call reset()")
            self._resampler = Resampler(rate, SAMPLE_RATE_HZ)
            self._resampler_rate = rate
        out: np.ndarray = self._resampler.push(x)
        return out

    def input_finished(self) -> None:
        """No more audio: the next `decode()` flushes everything as FINAL."""
        if not self._finished and self._resampler is not None:
            self._audio.append(self._resampler.flush())
        self._finished = True

    def is_ready(self) -> bool:
        """True when `decode()` has work: a VAD frame of new audio, or the end-of-input flush."""
        unscored = self._audio.end - self._vad.frames_done * FRAME_SAMPLES
        return unscored >= FRAME_SAMPLES or (self._finished and not self._flushed)

    def events(self) -> list[StreamEvent]:
        """VAD and budget events since the last call, in stream order."""
        out, self._events = self._events, []
        return out

    def stage_times(self) -> list[tuple[str, float]]:
        """(stage, seconds) recorded since the last call: for metrics (see `stages` for percentiles)."""
        return self.stages.drain()

    @property
    def segment_id(self) -> int:
        """Id of the segment in progress (or of the next one)."""
        return self._segment_id

    @property
    def final_text(self) -> str:
        """The stream's recent final text (its last FINAL_TEXT_CHARS characters; the prompt's source)."""
        return self._final_text

    @property
    def degraded(self) -> bool:
        """True while partials are thinned out to keep up."""
        return self._budget.degraded

    @property
    def rung(self) -> Rung:
        """The degradation rung in force."""
        return self._budget.rung

    @property
    def skipped_partials(self) -> int:
        """Partial passes skipped to stay within `max_lag_ms`."""
        return self._budget.skipped

    def warm_up(self) -> None:
        """Run one pass on silence so onnxruntime's first-call setup is not charged to the first caption, and
        compile the Numba kernels (all of `rtaudio.dsp`'s, which the server's audio path uses, and the word
        alignment's; loaded from Numba's cache after the first run): on a fresh install they took the first
        partial from ~1.7 to ~3.9 s."""
        from rtaudio import dsp
        from rtaudio.stt import alignment

        dsp.warmup()
        alignment.warmup()
        self.recognizer.transcribe_window(np.zeros(max(_ms_to_samples(self.config.min_encode_ms), SAMPLE_RATE_HZ),
                                                   np.float32), options=self.decode_options)

    # ----------------------------------------------------------------- compute
    def decode(self) -> list[Caption]:
        """Run VAD over new audio, end or cut segments, run a partial pass when due; captions in order."""
        newest = self._audio.end
        backlog_s = self._waited_s(self._vad.frames_done * FRAME_SAMPLES)
        t0 = self.clock.now_ns()
        captions = self._run_vad()
        self.stages.record("vad", (self.clock.now_ns() - t0) / 1e9)
        if self._finished and not self._flushed:
            captions += self._end_segment()
            self._flushed = True
        elif self._window_start is not None and self._partial_due(backlog_s):
            captions += self._partial_pass()
            lag_s = self._waited_s(newest)
            self.stages.record("partial", lag_s)
            if self._input_is_live():
                self._budget.observe_lag(lag_s)
        self._events += self._budget.events()
        self._forget_old_audio()
        if captions:
            self.lag_s = self._waited_s(newest)
        return captions

    def finalize(self) -> list[Caption]:
        """End the segment in progress now (it goes FINAL at once); the stream goes on."""
        return self._run_vad() + self._end_segment()

    def _input_is_live(self) -> bool:
        """False while audio arrives faster than real time (a file pushed fast): its backlog is the
        sender's doing, so it does not move the degradation ladder (partials are still skipped)."""
        if len(self._arrivals) < 2:
            return True
        end, t = self._arrivals[-1]
        i = bisect.bisect_left(self._arrivals, (end - LIVE_PROBE_SAMPLES, 0))
        end0, t0 = self._arrivals[max(0, min(i, len(self._arrivals) - 2))]
        return (end - end0) / SAMPLE_RATE_HZ <= 1.5 * (t - t0) / 1e9 + 0.25

    def _waited_s(self, sample: int) -> float:
        """How long ago (clock) the audio at stream sample `sample` arrived; 0 when unknown."""
        if not self._arrivals:
            return 0.0
        i = min(bisect.bisect_right(self._arrivals, (sample, 1 << 62)), len(self._arrivals) - 1)
        return max(0.0, (self.clock.now_ns() - self._arrivals[i][1]) / 1e9)

    def _run_vad(self) -> list[Caption]:
        done = self._vad.frames_done * FRAME_SAMPLES
        end = self._audio.end
        if self._finished and (end - done) % FRAME_SAMPLES:
            pad = FRAME_SAMPLES - (end - done) % FRAME_SAMPLES  # score the last partial frame too
            x = np.concatenate([self._audio.view(done, end), np.zeros(pad, np.float32)])
        else:
            x = self._audio.view(done, done + (end - done) // FRAME_SAMPLES * FRAME_SAMPLES)
        probs = self._vad.push(x) if len(x) else np.zeros(0, np.float32)
        captions: list[Caption] = []
        # frame by frame, so a segment that ends and one that starts in the same batch stay apart
        for i in range(len(probs)):
            for ev in self._segmenter.push(probs[i: i + 1]):
                self._events.append(ev)
                if isinstance(ev, SpeechStarted):
                    self._open_segment(ev.start_sample)
                else:
                    closed = self._close_segment(ev.end_sample)
                    if closed:  # an endpoint final: its lag counts from the end of speech
                        lag_s = self._waited_s(min(ev.end_sample, max(self._last_voiced_end, 1)) - 1)
                        self.stages.record("final", lag_s)
                        if self._input_is_live():
                            self._budget.observe_lag(lag_s, self.config.budget.final_ms / 1000)
                    captions += closed
            if probs[i] >= self.config.vad.threshold:
                self._last_voiced_end = done + (i + 1) * FRAME_SAMPLES
        return captions

    def _end_segment(self) -> list[Caption]:
        """Close the segment in progress at the audio received so far."""
        captions: list[Caption] = []
        for ev in self._segmenter.flush():
            self._events.append(ev)
            if isinstance(ev, SpeechEnded):
                captions += self._close_segment(min(ev.end_sample, self._audio.end))
        return captions

    def _open_segment(self, start_sample: int) -> None:
        self._window_start = max(start_sample, self._audio.start)
        self._after_cut = False
        context_s = (self._window_start - _ms_to_samples(self.config.context_ms)) / SAMPLE_RATE_HZ
        self._stab.reset(anchor=[w for w in self._final_words if w.end_s > context_s])
        self._last_pass = None

    def _partial_due(self, backlog_s: float) -> bool:
        assert self._window_start is not None
        cfg = self.config
        end = self._audio.end
        since = self._last_pass.end_sample if self._last_pass else self._window_start
        pause = None if cfg.pause_pass_ms is None else _ms_to_samples(cfg.pause_pass_ms)
        if (pause is not None and since < self._last_voiced_end <= end - pause
                and end - self._window_start >= _ms_to_samples(cfg.min_window_ms)):
            return self._budget.allow_partial(backlog_s, self._input_is_live())  # speech paused: hear its end now
        if end - since < self._budget.interval_s * SAMPLE_RATE_HZ or end - self._window_start < _ms_to_samples(cfg.min_window_ms):
            return False
        if self._last_pass and since - self._last_voiced_end >= _ms_to_samples(cfg.quiet_after_speech_ms):
            return False  # the last pass already heard the speech end; only silence since
        # audio waiting too long: catch up on VAD and finals
        return self._budget.allow_partial(backlog_s, self._input_is_live())

    def _transcribe(self, start: int, end: int, final: bool = False, after: Sequence[Word] = ()) -> Hypothesis:
        """One pass over the window [start, end), heard after up to `context_ms` of earlier audio
        (no earlier than the last `context_words` final words); `final`: the segment's final pass (beam
        `final_beam_size`); `after`: words of this segment already decoded before `start`, which count as
        final for the prompt and context."""
        cfg = self.config
        rung = self._budget.rung
        # Context only before a segment that follows a pause: right after a cut inside continuous
        # speech, Whisper tends to skip from the context straight past the window's first words.
        # From SHORT_WINDOW on there is none: its words cost decoder tokens on every pass.
        context = 0 if self._after_cut or rung >= Rung.SHORT_WINDOW else _ms_to_samples(cfg.context_ms)
        ctx = max(start - context, self._audio.start, 0)
        recent = self._final_words[-cfg.context_words:] if cfg.context_words else []
        if len(recent) == cfg.context_words and recent:
            ctx = max(ctx, min(start, int(recent[0].start_s * SAMPLE_RATE_HZ)))
        before = [*self._final_words, *after]
        prompt = words_text([w for w in before if w.end_s * SAMPLE_RATE_HZ <= ctx + 1600])
        beam_size = cfg.final_beam_size if final else 1
        beam = 1 if rung >= Rung.GREEDY_SHORT else max(beam_size, self.decode_options.beam_size)
        options = replace(self.decode_options, beam_size=beam)
        if beam_size > 1 and cfg.final_timestamps:
            options = replace(options, timestamps=True)
        spec = self._pass_spec
        if rung >= Rung.GREEDY_SHORT:
            spec = replace(spec, max_tokens_per_s=spec.max_tokens_per_s * cfg.budget.token_factor)
        recognizer = self.fallback_recognizer if rung >= Rung.SMALLER_MODEL else self.recognizer
        self.passes += 1
        prompt = prompt[-cfg.prompt_chars:].strip() if cfg.prompt_chars else ""
        new_from = None  # context words after the last final word were never shown: the VAD missed them
        if cfg.keep_missed_words and ctx < start:
            last = before[-1].end_s if before else 0.0
            new_from = max(ctx, int((last + MISSED_WORD_GAP_S) * SAMPLE_RATE_HZ))
        hyp = run_pass(recognizer, self._audio.view(ctx, end), ctx, start, end, prompt, options, spec,
                       self.clock.now_ns, new_from, before[-2:], final=final)
        if not hyp.words and (ctx < start or prompt) and end - start >= SAMPLE_RATE_HZ:
            # A second of speech (the VAD opened the window) and not a word: the context or prompt can
            # throw Whisper into a loop over the context audio ("the. the. the."). Hear the window alone.
            self.passes += 1
            retry = run_pass(recognizer, self._audio.view(start, end), start, start, end, "", options, spec,
                             self.clock.now_ns, final=final)
            hyp = replace(retry, compute_s=hyp.compute_s + retry.compute_s)
        self.stages.record("pass", hyp.compute_s)
        for stage, seconds in hyp.stage_s.items():
            self.stages.record(stage, seconds)
        return hyp

    def _partial_pass(self) -> list[Caption]:
        assert self._window_start is not None
        hyp = self._transcribe(self._window_start, self._audio.end)
        self._budget.observe_pass(hyp.compute_s)
        self._last_pass = hyp
        cfg = self.config
        long_enough = hyp.end_sample - self._window_start >= _ms_to_samples(cfg.min_commit_window_ms)
        t0 = self.clock.now_ns()
        new = self._stab.insert(hyp.words, allow_commit=long_enough,
                                commit_before_s=(hyp.end_sample - _ms_to_samples(cfg.commit_guard_ms)) / SAMPLE_RATE_HZ)
        self.stages.record("stabilizer", (self.clock.now_ns() - t0) / 1e9)
        out: list[Caption] = []
        if new:
            out.append(self._caption(self._stab.committed, Stability.STABLE, hyp.end_sample))
        out += self._maybe_cut(hyp.end_sample)
        out.append(self._caption(self._stab.committed + self._stab.tail, Stability.PARTIAL, hyp.end_sample))
        return out

    def _maybe_cut(self, end: int) -> list[Caption]:
        """Keep the window short: finalize committed words and restart the window after them."""
        assert self._window_start is not None
        cfg = self.config
        length = end - self._window_start
        if length > _ms_to_samples(cfg.max_window_ms):
            # agreement never came: commit the older part of the tail by force
            old_s = end / SAMPLE_RATE_HZ - 4 * cfg.partial_interval_ms / 1000
            forced = [w for w in self._stab.tail if w.end_s <= old_s]
            if forced:
                self._stab.commit(len(forced))
        trim_ms = cfg.trim_window_ms
        if self._budget.rung >= Rung.SHORT_WINDOW:
            trim_ms = int(trim_ms * cfg.budget.window_factor)
        committed = self._stab.committed
        if length <= _ms_to_samples(max(trim_ms, cfg.min_window_ms)) or not committed:
            return []
        tail = self._stab.tail
        cut_s = committed[-1].end_s
        if tail and tail[0].start_s > cut_s:
            cut_s = (cut_s + tail[0].start_s) / 2  # mid-gap: neither word loses its edge
        cut = max(self._window_start, min(int(round(cut_s * SAMPLE_RATE_HZ)), end))
        words = self._stab.pop_committed()
        final = self._caption(words, Stability.FINAL, cut, start=self._window_start)
        self._remember_final(words)
        self._segment_id += 1
        self._window_start = cut
        self._after_cut = True
        return [final]

    def _close_segment(self, end_sample: int) -> list[Caption]:
        """VAD endpoint: flush the segment as FINAL (an empty FINAL retracts partials that were shown)."""
        start = self._window_start
        if start is None:
            return []
        last = self._last_pass
        cfg = self.config
        heard_all = last is not None and last.end_sample >= min(end_sample, self._last_voiced_end)
        greedy = cfg.final_beam_size == 1 or self._budget.rung >= Rung.GREEDY_SHORT
        if last is not None and heard_all and greedy:
            words = self._stab.finish(last.words)
        elif end_sample - start >= _ms_to_samples(cfg.min_window_ms) // 2:
            words = self._stab.finish(self._final_pass(start, end_sample))
        else:
            words = self._stab.finish(None)
        self._window_start = None
        self._last_pass = None
        if not words and last is None:
            return []
        final = self._caption(words, Stability.FINAL, end_sample, start=start)
        self._remember_final(words)
        self._segment_id += 1
        return [final]

    def _final_pass(self, start: int, end: int) -> list[Word]:
        """The endpoint's beam pass over the segment. Whisper sometimes closes the text at a timestamp
        well before the speech ends (LJ050-0131: "... activities there under." of "... thereunder in this
        regard", the rest never read). Offline transcription goes on from there with its next window; so
        does this: once more over what follows, when the VAD heard speech there."""
        words = list(self._transcribe(start, end, final=True).words)
        heard_s = words[-1].end_s if words else start / SAMPLE_RATE_HZ
        voiced_s = min(end, self._last_voiced_end) / SAMPLE_RATE_HZ
        if end / SAMPLE_RATE_HZ - heard_s >= EARLY_STOP_S and voiced_s - heard_s >= EARLY_STOP_S / 2:
            rest = max(start, int(heard_s * SAMPLE_RATE_HZ))
            words += self._transcribe(rest, end, final=True, after=words).words
        return words

    def _remember_final(self, words: Sequence[Word]) -> None:
        text = words_text(words)
        if text:
            self._final_text = f"{self._final_text} {text}".strip()[-FINAL_TEXT_CHARS:]
            self._final_words = [*self._final_words, *words][-FINAL_WORDS:]

    def _caption(self, words: Sequence[Word], stability: Stability, end_sample: int,
                 start: int | None = None) -> Caption:
        start = self._window_start if start is None else start
        assert start is not None
        if words:
            start = max(start, int(round(words[0].start_s * SAMPLE_RATE_HZ)))
            end_sample = min(end_sample, int(round(words[-1].end_s * SAMPLE_RATE_HZ)))
        return Caption(text=words_text(words), start_sample=start, end_sample=max(end_sample, start),
                       stability=stability, segment_id=self._segment_id, sample_rate=SAMPLE_RATE_HZ,
                       words=tuple(words))

    def _forget_old_audio(self) -> None:
        keep = self._vad.frames_done * FRAME_SAMPLES - SAMPLE_RATE_HZ * 2  # room for the VAD's start pad
        if self._window_start is not None:
            keep = min(keep, self._window_start)
        keep -= _ms_to_samples(self.config.context_ms)
        self._audio.drop_before(keep)
        i = bisect.bisect_left(self._arrivals, (keep, 0))
        if i > 64:
            del self._arrivals[: i - 1]
