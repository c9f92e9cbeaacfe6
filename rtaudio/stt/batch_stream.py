"""Live streams served by a batching backend (GPU): per-stream state without model calls, plus the scheduler.

`BatchStream` holds one stream's audio, VAD segmentation and caption stabilization; it never runs a model.
Instead it offers a `WindowRequest` when a partial is due or a segment has ended, and takes the resulting
words back in `apply`. `BatchScheduler` picks which due streams go into the next batch: the most overdue
first, at most `max_batch`, finals before partials at equal lateness, so under load every stream's lag
grows evenly and nobody starves. Both are pure and unit-tested on CPU; the GPU engine only sees arrays.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np

from rtaudio.errors import ConfigError
from rtaudio.frames import Caption, Stability, Word
from rtaudio.stt.alignment import TimedWords
from rtaudio.stt.stabilizer import LocalAgreement, repetition_start
from rtaudio.stt.vad import FRAME_SAMPLES, SpeechEnded, SpeechStarted, VadConfig, VadSegmenter
from rtaudio.stt.window_pass import EARLY_STOP_S, MISSED_WORD_GAP_S, heard_words, words_text

SAMPLE_RATE_HZ = 16000
KEEP_BACK_SAMPLES = SAMPLE_RATE_HZ  # the VAD may open a segment up to ~0.4 s before its current frame
LATE_ARRIVAL_S = 1.0  # audio this much later than its stream's timeline moves the timeline on (see `arrived`)
FINAL_WORDS = 200  # recent final words kept per stream (prompt and context)


@dataclass(frozen=True)
class BatchStreamConfig:
    partial_interval_ms: float = 200.0
    """New audio between two partial decodes of a stream. On a GPU a decode step costs about the same for 32
    rows as for 128 (0.51 vs 0.74 ms, H100), so frequent partials cost little: 400 tiny.en streams, p99 of
    words first shown in a partial 0.91 s at 300 ms, 0.76 s at 200 ms (same H100; 0.98-1.15 s at 400 ms on
    others), rounds ~180 ms either way (`bench/gpu_streams.py`)."""
    prompt_chars: int = 160
    """How much of the stream's final text conditions the final decode of its next segment (0: none). On
    all dev files the batched WER fell from 8.69 % to 8.42 % (`bench/gpu_streams.py --wer-finals`). Partial
    decodes get none: with it, 400 streams on the H100 left 800 instead of 540 of 8560 words never shown."""
    context_s: float = 6.0
    """Audio before a segment (already final) that its beam final hears again, as the CPU recognizer's
    passes do (`StreamingConfig.context_ms`): a short segment is not decoded in isolation, and speech the
    VAD scored as silence between two segments (a hoarse or soft voice) is heard and kept (see
    `window_pass.heard_words`). The context's own words are dropped by their times, which the engine's
    word alignment gives finals. Not after a cut inside continuous speech, nor for a final decoded
    greedily under load. 0: none."""
    context_words: int = 12
    """The context starts no earlier than the last this many final words (bounds the tokens it costs)."""
    max_segment_s: float = 14.0
    """A segment this long without a pause is closed as final (keeps windows short and bounded)."""
    split_search_s: float = 4.0
    """Such a segment is cut at its least speech-like VAD frame of the last this many seconds (a gap between
    words), not at the frame where it grew too long: a cut through a word garbles it on both sides. At most
    half the segment is searched."""
    pause_pass_ms: float | None = 96.0
    """A partial is due at once when the speech has paused this long and no decode has heard its end yet:
    the last words of a phrase show ~0.1 s after they are said instead of waiting for the cadence or the
    VAD endpoint's final (the tail of the partial latency distribution). None: cadence only."""
    vad: VadConfig = field(default_factory=lambda: VadConfig(min_silence_ms=400, speech_pad_ms=160))

    def __post_init__(self) -> None:
        if self.partial_interval_ms < 50 or self.max_segment_s < 2:
            raise ConfigError("partial_interval_ms must be >= 50 and max_segment_s >= 2")
        if self.context_s < 0 or self.context_words < 0:
            raise ConfigError("context_s and context_words must be >= 0")
        if self.split_search_s < 0:
            raise ConfigError("split_search_s must be >= 0")
        if self.pause_pass_ms is not None and self.pause_pass_ms < 32:
            raise ConfigError("pause_pass_ms must be >= 32 (one VAD frame) or None")


@dataclass(frozen=True)
class WindowRequest:
    stream_id: int
    start_sample: int
    end_sample: int
    final: bool
    due_s: float
    """Clock time (s) by which this decode should have happened; the scheduler serves the smallest first."""
    prompt: str = ""
    """The stream's recent final text, to condition the decode on (finals only)."""
    beam: bool = True
    """A final decoded with beam search; the scheduler clears it when the batch runs late."""
    context_sample: int | None = None
    """Where a beam final's audio starts (<= start_sample): the earlier audio it hears for context."""
    prompt_alone: str = ""
    """The prompt should the final be decoded without its context (greedily, under load): the words the
    context would have heard are then prompted."""

    @property
    def audio_start(self) -> int:
        """First sample of the audio decoded: the context, for a beam final that has one."""
        return self.context_sample if self.context_sample is not None and self.final and self.beam else self.start_sample

    @property
    def decode_prompt(self) -> str:
        """The prompt of the decode as it runs: without the words of a context it hears."""
        return self.prompt if self.audio_start < self.start_sample else self.prompt_alone or self.prompt


class PendingFinal(NamedTuple):
    """A segment waiting for its final decode: [start, end) samples, the VAD position at which the stream
    knew of it (the final is due then, see `BatchStream.request`), and the words its partials had committed
    (the final's text should its decode hear none)."""

    start: int
    end: int
    known: int
    committed: tuple[Word, ...] = ()


class BatchStream:
    """One live stream: `accept(samples)`, `accept_vad(probs)`, `request()`, then `apply(req, text)`."""

    def __init__(self, stream_id: int, config: BatchStreamConfig | None = None, origin_s: float = 0.0) -> None:
        self.id = stream_id
        self.origin_s = origin_s
        """Clock time at which sample 0 of this stream arrived: puts all streams' deadlines on one timeline."""
        self.config = config or BatchStreamConfig()
        self.vad = VadSegmenter(self.config.vad)
        self.agreement = LocalAgreement()
        self._buf = np.zeros(SAMPLE_RATE_HZ * 4, dtype=np.float32)  # grows by doubling: appends are amortised O(1)
        self._n = 0  # samples held in self._buf
        self._audio_start = 0  # stream sample of self._buf[0]
        self.written = 0
        self.segment_id = 0
        self._final_words: list[Word] = []  # recent final words (stream seconds): the prompt, the context's end
        self._context = int(self.config.context_s * SAMPLE_RATE_HZ)
        self._no_context: set[int] = set()  # start samples of pending finals decoded without context
        self._continued: set[int] = set()  # start samples of pending finals that continue one that stopped early
        self.timed_finals = True
        """Finals come back with word times (the runner's engine aligns them): without, a final hears no
        context, whose words could not be told from its own."""
        self._seg_start: int | None = None
        self._last_decoded_end = 0
        self._cadence_from = 0  # the next partial is due a partial interval after this (or the last decode)
        self._pending_finals: list[PendingFinal] = []
        self._decoding: tuple[int, int] | None = None  # (start, end) of the final in a batch, see `taken`
        self._close_due = False  # close the open segment once the VAD has scored all audio written
        self._dropped_until = 0  # audio before this sample was cleared: no segment covers it
        self._min_final = int(self.config.vad.min_speech_ms * SAMPLE_RATE_HZ / 1000)
        self.events: list[SpeechStarted | SpeechEnded] = []
        """VAD events in stream order (a caller that reports them drains the list)."""
        self._partial_samples = int(self.config.partial_interval_ms * SAMPLE_RATE_HZ / 1000)
        pause = self.config.pause_pass_ms
        self._pause_samples = None if pause is None else int(pause * SAMPLE_RATE_HZ / 1000)
        self._voiced_end = 0  # end sample of the last VAD frame scored as speech
        self._max_segment = int(self.config.max_segment_s * SAMPLE_RATE_HZ)
        search_s = min(self.config.split_search_s, self.config.max_segment_s / 2)
        self._search_frames = int(search_s * SAMPLE_RATE_HZ) // FRAME_SAMPLES
        # VAD probabilities of recent frames, frame k at k % size: a push (<= max_segment_s + 2 frames, see
        # _frames_before_split) plus the split search before it
        self._probs = np.zeros((self._max_segment // FRAME_SAMPLES + 3) + self._search_frames, np.float32)

    @property
    def _audio(self) -> np.ndarray:
        return self._buf[: self._n]

    def accept(self, samples: np.ndarray) -> None:
        need = self._n + len(samples)
        if need > len(self._buf):
            grown = np.zeros(max(need, 2 * len(self._buf)), dtype=np.float32)
            grown[: self._n] = self._buf[: self._n]
            self._buf = grown
        self._buf[self._n: need] = samples
        self._n = need
        self.written += len(samples)

    def arrived(self, now_s: float) -> None:
        """The audio written so far had all arrived by clock time `now_s`: a stream whose audio comes more
        than `LATE_ARRIVAL_S` later than its timeline says (a client that opened, then waited, or fell
        behind) has its timeline moved on, so its decodes are not scheduled as overdue, and it cannot make
        the batch look late to the scheduler (which would take every stream's beam finals). Audio that
        comes a little late (network and event-loop jitter of a busy server) leaves it alone: moved by
        every delay, the timeline ratcheted on by the largest one, and the scheduler saw the stream's
        requests less late than its captions were."""
        behind = now_s - self.written / SAMPLE_RATE_HZ - self.origin_s
        if behind > LATE_ARRIVAL_S:
            self.origin_s += behind

    def vad_frames_due(self) -> int:
        """Whole 32 ms frames written but not yet scored by the VAD."""
        return self.written // FRAME_SAMPLES - self.vad.position_sample // FRAME_SAMPLES

    def frame(self, index: int) -> np.ndarray:
        """Samples of VAD frame `index` (512 samples) as a view."""
        return self.frames(index, 1)

    def frames(self, index: int, count: int) -> np.ndarray:
        """Samples of VAD frames `index` .. `index + count - 1`, back to back, as one view."""
        a = index * FRAME_SAMPLES - self._audio_start
        return self._audio[a: a + count * FRAME_SAMPLES]

    def accept_vad(self, probs: np.ndarray) -> None:
        """Advance by one VAD frame per probability: many at once end up exactly as one at a time."""
        probs = np.asarray(probs).reshape(-1)
        voiced = np.nonzero(probs >= self.config.vad.threshold)[0]
        if len(voiced):
            self._voiced_end = self.vad.position_sample + (int(voiced[-1]) + 1) * FRAME_SAMPLES
        done = 0
        while done < len(probs):
            n = min(len(probs) - done, self._frames_before_split())
            first = self.vad.position_sample // FRAME_SAMPLES
            self._probs[np.arange(first, first + n) % len(self._probs)] = probs[done: done + n]
            self._on_vad_events(self.vad.push(probs[done: done + n]))
            done += n
            if self._seg_start is not None and self.vad.position_sample - self._seg_start >= self._max_segment:
                end = self._split_point()
                self._add_final(self._seg_start, end, self.vad.position_sample)
                self._seg_start = end
                self._no_context.add(end)  # after a cut in continuous speech Whisper skips from the context past it
                self._last_decoded_end = end
                self._cadence_from = self.vad.position_sample  # the partials so far showed up to here
        self._trim()

    def _add_final(self, start: int, end: int, known: int) -> None:
        # the partials' words are this segment's from here: the next segment's partials may come before its
        # final does (while it is decoded in an engine process)
        self._pending_finals.append(PendingFinal(start, end, max(end, known), tuple(self.agreement.finish(None))))

    def _split_point(self) -> int:
        """Where a segment that reached max_segment_s is cut: mid-frame of the lowest VAD probability among
        its last `split_search_s` (the latest such frame on ties)."""
        assert self._seg_start is not None
        last = self.vad.position_sample // FRAME_SAMPLES  # frames < last are scored
        lo = max(last - self._search_frames, -(-self._seg_start // FRAME_SAMPLES) + 1)
        if lo >= last:
            return self.vad.position_sample
        frames = np.arange(lo, last)
        p = self._probs[frames % len(self._probs)]
        k = len(p) - 1 - int(np.argmin(p[::-1]))
        return int(frames[k]) * FRAME_SAMPLES + FRAME_SAMPLES // 2

    def _on_vad_events(self, events: list[SpeechStarted | SpeechEnded]) -> None:
        for event in events:
            self.events.append(event)
            if isinstance(event, SpeechStarted):
                self._seg_start = max(event.start_sample, self._dropped_until)
                self._last_decoded_end = self._seg_start
            elif self._seg_start is not None:
                if event.end_sample - self._seg_start >= self._min_final:  # not a remnant after a clear
                    self._add_final(self._seg_start, event.end_sample, event.decided_sample)
                self._seg_start = None
        if self._close_due and self.vad_frames_due() == 0:
            self._close_due = False
            self._on_vad_events(self.vad.flush())

    def close_segment(self, end_of_input: bool = False) -> None:
        """End the segment in progress as a final once the VAD has scored the audio written so far (a
        client's flush); with `end_of_input` the last partial VAD frame is padded with silence first."""
        if end_of_input and self.written % FRAME_SAMPLES:
            self.accept(np.zeros(FRAME_SAMPLES - self.written % FRAME_SAMPLES, np.float32))
        self._close_due = True
        self._on_vad_events([])

    def drop_segment(self) -> None:
        """Forget the audio written so far, its open segment and the finals not yet decoded, without captions
        (a client's clear): speech that goes on is a segment from here."""
        self._dropped_until = self.written
        if self._seg_start is not None:
            self._seg_start = self._last_decoded_end = self.written
        self._close_due = False
        self._pending_finals.clear()
        self._decoding = None  # its words, if they come, are for no segment any more
        self._no_context.clear()
        self._continued.clear()
        self.agreement.reset()
        self._trim()

    @property
    def idle(self) -> bool:
        """No final waits to be decoded or closed."""
        return not self._pending_finals and not self._close_due

    def _frames_before_split(self) -> int:
        """Frames to push in one go: the max_segment_s split is checked after every frame, so push only up to
        the first frame at which a segment (this one, or one the coming frames open) could reach that length."""
        pos = self.vad.position_sample
        earliest = pos + FRAME_SAMPLES - self.vad.start_lookback_samples
        if self._seg_start is not None:
            earliest = min(earliest, self._seg_start)
        return max(1, -(-(earliest + self._max_segment - pos) // FRAME_SAMPLES))

    def _trim(self) -> None:
        """Drop audio no decode can need any more: bounded memory through hours of silence."""
        needed = [f.start for f in self._pending_finals]
        if self._seg_start is not None:
            needed.append(self._seg_start)
        keep_from = min(needed + [self.vad.position_sample - KEEP_BACK_SAMPLES])
        if self._context and self.timed_finals:  # and the final words a coming final may hear again
            again = self._first_word_from(keep_from - self._context)
            if again is not None:
                keep_from = min(keep_from, int(again.start_s * SAMPLE_RATE_HZ))
        cut = keep_from - self._audio_start
        if cut > SAMPLE_RATE_HZ:  # trim in steps of >= 1 s so copies stay rare
            self._buf[: self._n - cut] = self._buf[cut: self._n]
            self._n -= cut
            self._audio_start += cut

    def taken(self, req: WindowRequest) -> None:
        """`req` went into a batch. A final is then not requested again until its words come back (`apply`):
        a server's front-end plans its next round while the finals of the last are still being decoded
        (`rtaudio.stt.engine_host`). Meanwhile the next segment's partials go on (they need nothing of it);
        its next final waits, since that one is prompted with this one's words."""
        if req.final:
            self._decoding = (req.start_sample, req.end_sample)

    def request(self) -> WindowRequest | None:
        """The decode this stream needs next, if any (finals first)."""
        if self._pending_finals and self._pending_finals[0][:2] != self._decoding:  # (not being decoded)
            # Due when the stream knew of it: the VAD declares an end only after its silence, and a cut of a
            # long segment lies up to split_search_s back. Due at its end, a final looked that late at once,
            # and the scheduler took every stream's beam for it (H100, 400 streams at 300-400 ms endpointing:
            # two finals in three greedy, the batch "3 s late" while it kept up).
            start, end, known, _ = self._pending_finals[0]
            ctx = self._context_start(start)
            due = self.origin_s + known / SAMPLE_RATE_HZ
            return WindowRequest(self.id, start, end, True, due, self._prompt(ctx),
                                 context_sample=ctx, prompt_alone=self._prompt(start) if ctx < start else "")
        if self._seg_start is None:
            return None
        end = self.vad.position_sample
        pause = self._pause_samples
        if pause is not None and self._last_decoded_end < self._voiced_end <= end - pause:
            due = self._voiced_end + pause  # the speech paused and no decode has heard its end yet
        else:
            due = max(self._last_decoded_end, self._cadence_from) + self._partial_samples
            if end < due:
                return None
        return WindowRequest(self.id, self._seg_start, end, False, self.origin_s + due / SAMPLE_RATE_HZ)

    def _context_start(self, start: int) -> int:
        """Where a final's context starts: at the first final word within `context_s` before it (only
        silence before a stream's first final: hearing it changed the decode, for worse), within the audio
        kept, after a clear, and no earlier than the last `context_words` final words; `start` for none."""
        if start in self._no_context or not self._context or not self.timed_finals:
            return start
        ctx = max(start - self._context, self._dropped_until, self._audio_start, 0)
        n = self.config.context_words
        recent = self._final_words[-n:] if n else []
        if n and len(recent) == n:
            ctx = max(ctx, min(start, int(recent[0].start_s * SAMPLE_RATE_HZ)))
        # from a final word's start: heard from within a word, and prompted with the text up to it, Whisper
        # made up a sentence there ("Ages." -> "of the shadow of death he is with us. And the valley of ...")
        first = self._first_word_from(ctx)
        if first is None or first.start_s * SAMPLE_RATE_HZ >= start:
            return start  # no final word to hear again
        return int(first.start_s * SAMPLE_RATE_HZ)

    def _first_word_from(self, sample: int) -> Word | None:
        """The first final word starting at or after `sample` (a bisection: this runs for every stream every
        round, `_final_words` holds up to FINAL_WORDS)."""
        k = bisect.bisect_left(self._final_words, sample / SAMPLE_RATE_HZ, key=lambda w: w.start_s)
        return self._final_words[k] if k < len(self._final_words) else None

    def _prompt(self, before: int) -> str:
        """The final text said before sample `before` (the context's words are heard, not prompted)."""
        n = self.config.prompt_chars
        k = bisect.bisect_right(self._final_words, (before + 1600) / SAMPLE_RATE_HZ, key=lambda w: w.end_s)
        said = words_text(self._final_words[max(0, k - n):k])  # (no word has fewer than a character)
        return said[len(said) - n:].strip() if n else ""

    def window(self, req: WindowRequest) -> np.ndarray:
        return self._audio[req.audio_start - self._audio_start: req.end_sample - self._audio_start]

    def apply(self, req: WindowRequest, text: str, timed: TimedWords | None = None) -> list[Caption]:
        """Words decoded for `req` -> captions (a FINAL closes the segment; otherwise committed + PARTIAL).
        `timed`: the words with times (s from the window's start) where the engine aligned them (finals)."""
        if req.final:
            return self._apply_final(req, text, timed)
        words = _words(text, req.start_sample, req.end_sample)
        loop = repetition_start(words)
        if loop is not None:
            words = words[:loop]
        if self._seg_start != req.start_sample:
            return []  # its segment was dropped or has ended meanwhile: the final has the say
        self._last_decoded_end = req.end_sample
        self.agreement.insert(words)
        shown = list(self.agreement.committed) + list(self.agreement.tail)
        if not shown:
            return []
        return [Caption(words_text(shown), req.start_sample, req.end_sample, Stability.PARTIAL,
                        self.speech_segment_id, SAMPLE_RATE_HZ, tuple(shown))]

    @property
    def speech_segment_id(self) -> int:
        """The number of the segment that speech now goes into: after those whose finals are still to come
        (a segment's number is its final's, `segment_id` counts the finals given)."""
        return self.segment_id + len(self._pending_finals)

    def _apply_final(self, req: WindowRequest, text: str, timed: TimedWords | None) -> list[Caption]:
        segment = (req.start_sample, req.end_sample)
        if self._decoding == segment:
            self._decoding = None
        if not self._pending_finals or self._pending_finals[0][:2] != segment:
            return []  # dropped (a client's clear) while it was being decoded
        begin = req.audio_start
        raw = timed.words if timed is not None else _words(text, 0, req.end_sample - begin)
        capped = timed is not None and not timed.ended
        new_from = None  # context words after the last final word were never shown: the VAD missed them
        if begin < req.start_sample:
            last = self._final_words[-1].end_s if self._final_words else 0.0
            new_from = max(begin, int((last + MISSED_WORD_GAP_S) * SAMPLE_RATE_HZ))
        words = list(heard_words(raw, capped, (req.end_sample - begin) / SAMPLE_RATE_HZ, begin, req.start_sample,
                                 new_from, self._final_words[-2:], final=True))
        if not words and begin < req.start_sample and req.end_sample - req.start_sample >= SAMPLE_RATE_HZ:
            # A second of speech (the VAD opened the segment) and not a word: the context can throw Whisper
            # into a loop over the context audio ("the. the. the."). Decode the segment alone next round.
            self._no_context.add(req.start_sample)
            return []
        self._no_context.discard(req.start_sample)
        continues = req.start_sample in self._continued
        self._continued.discard(req.start_sample)
        rest = None if continues else self._stopped_early(req, words, timed is not None)
        pending = self._pending_finals[0]
        if rest is not None:  # the rest of the segment is the next final, prompted by these words
            self._pending_finals[0] = self._pending_finals[0]._replace(start=rest)
            self._continued.add(rest)
            self._no_context.add(rest)  # heard again, "7 1 6 2 4 4 6 7" + "1 4" came back as one "7162446714"
        else:
            self._pending_finals.pop(0)
        # The final decode heard the whole segment at once, as offline transcription does: it is the final.
        # (Merging it into words committed from partials, whose times are only spread evenly, garbles
        # spelled letters: "pi tts bu rgh".) Partials only ever showed a preview.
        final_words = words or list(pending.committed)
        cap = Caption(words_text(final_words), req.start_sample, req.end_sample if rest is None else rest,
                      Stability.FINAL, self.segment_id, SAMPLE_RATE_HZ, tuple(final_words))
        self.segment_id += 1
        self._final_words = [*self._final_words, *final_words][-FINAL_WORDS:]
        self._trim()
        return [cap] if cap.text else []

    def _stopped_early(self, req: WindowRequest, words: list[Word], timed: bool) -> int | None:
        """Where the rest of a segment starts when its final stopped early (None if it did not): the
        decoder ended the text (its words are timed) >= `EARLY_STOP_S` before the segment's end while the
        VAD heard speech >= half that after the last word. Offline transcription goes on with its next
        window there; so does a live final, once (CPU path: `StreamingRecognizer._final_pass`)."""
        if not timed or not words:
            return None
        heard = int(words[-1].end_s * SAMPLE_RATE_HZ)
        if req.end_sample - heard < EARLY_STOP_S * SAMPLE_RATE_HZ:
            return None
        first, last = heard // FRAME_SAMPLES, req.end_sample // FRAME_SAMPLES
        if first < self.vad.position_sample // FRAME_SAMPLES - len(self._probs) + 1:
            return None  # decoded so late that the VAD's scores of that audio are gone
        frames = np.arange(first, last)
        voiced = np.nonzero(self._probs[frames % len(self._probs)] >= self.config.vad.threshold)[0]
        if not len(voiced) or (int(frames[voiced[-1]]) + 1) * FRAME_SAMPLES - heard < EARLY_STOP_S / 2 * SAMPLE_RATE_HZ:
            return None
        return max(req.start_sample, heard)


def _words(text: str, start: int, end: int) -> list[Word]:
    """Spread words evenly over the window: the batched path decodes without timestamps. Each word gets
    the leading space Whisper's words carry (the stabilizer joins words without one to the previous).
    A spelled word ("E-W-E-L-L") is split into its letters ("E", "-W", ...) as the CPU path's word
    alignment splits it, so `repetition_start` sees a letter loop ("E-W-E-L-L-L-L-L-L-L") and cuts it."""
    parts = [(" " if i == 0 else "") + piece for word in text.split()
             for i, piece in enumerate(_SPELLED_PIECE.findall(word) if _SPELLED.fullmatch(word) else [word])]
    if not parts:
        return []
    t0, t1 = start / SAMPLE_RATE_HZ, end / SAMPLE_RATE_HZ
    step = (t1 - t0) / len(parts)
    return [Word(p, t0 + i * step, t0 + (i + 1) * step) for i, p in enumerate(parts)]


_SPELLED = re.compile(r"[A-Za-z0-9](?:-[A-Za-z0-9])+-?[.,!?]?")
_SPELLED_PIECE = re.compile(r"-?[A-Za-z0-9]-?[.,!?]?$|-?[A-Za-z0-9]")


class BatchScheduler:
    """Chooses the next batch among due requests: most overdue first, finals first on ties; finals are
    decoded greedily while the most overdue request is more than `greedy_late_s` late (None: never).

    Beam finals cost the most per tick (on the H100 with 400 tiny.en streams a tick took 102 ms with them,
    60 ms without), so when the batch falls behind they are the first thing to give up, as the CPU
    recognizer's ladder gives up its beam under load: the lag stays bounded and finals still come.
    H100, 400 streams, p99 over all words (before the batch transfer fix of session 7): 1.37 s always
    beam, 1.19 s at 0.5 s (5 % of finals greedy), 1.09 s at 0.25 s (44 %); but 0.25 s also takes the
    beam from 204 of the finals of 159 sessions that start at once (WER 7.48 -> 8.42 %), 0.5 s from 18
    (7.68 %)."""

    def __init__(self, max_batch: int = 512, greedy_late_s: float | None = 0.5) -> None:
        if max_batch < 1:
            raise ConfigError("max_batch must be >= 1")
        if greedy_late_s is not None and greedy_late_s < 0:
            raise ConfigError("greedy_late_s must be >= 0 or None")
        self.max_batch = max_batch
        self.greedy_late_s = greedy_late_s

    def pick(self, requests: list[WindowRequest], now_s: float | None = None) -> list[WindowRequest]:
        """The next batch; with `now_s` (the clock on the requests' timeline) finals may lose their beam."""
        chosen = sorted(requests, key=lambda r: (r.due_s, not r.final, r.stream_id))[: self.max_batch]
        late = self.greedy_late_s
        if chosen and now_s is not None and late is not None and now_s - chosen[0].due_s > late:
            return [replace(r, beam=False) if r.final else r for r in chosen]
        return chosen

    @staticmethod
    def lateness(chosen: list[WindowRequest], now_s: float) -> float:
        """How late a batch runs: its median request's lateness (the upper one of an even count), which grows
        once the batch falls behind, unlike the most overdue request's (a final decoded a second time is as
        late as its first decode plus a round). Reported, not used to take the beams: judged by it, 400
        streams on the H100 kept three finals in four on beam search and rounds grew from ~200 to 330 ms
        (p99 of words first in a partial 0.76 -> 1.15 s)."""
        waits = sorted(now_s - r.due_s for r in chosen)
        return waits[len(waits) // 2]
