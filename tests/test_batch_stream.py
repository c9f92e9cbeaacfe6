"""Batched live streams (the GPU path's per-stream logic and scheduler), on CPU with the real VAD."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from rtaudio.errors import ConfigError
from rtaudio.frames import Stability, Word
from rtaudio.modelstore import ensure_model
from rtaudio.stt.alignment import TimedWords
from rtaudio.stt.batch_runner import BatchedVad, BatchRunner
from rtaudio.stt.batch_stream import BatchScheduler, BatchStream, BatchStreamConfig, WindowRequest
from rtaudio.stt.vad import SileroVad, SileroVadModel, SpeechStarted, VadConfig, VadEvent, VadSegmenter


def req(sid: int, due: float, final: bool = False) -> WindowRequest:
    return WindowRequest(sid, 0, 16000, final, due)


def test_scheduler_serves_most_overdue_first_and_caps_the_batch() -> None:
    s = BatchScheduler(max_batch=3)
    picked = s.pick([req(1, 5.0), req(2, 1.0), req(3, 3.0), req(4, 2.0), req(5, 9.0)])
    assert [r.stream_id for r in picked] == [2, 4, 3]


def test_scheduler_prefers_finals_on_equal_lateness() -> None:
    picked = BatchScheduler(max_batch=1).pick([req(1, 2.0), req(2, 2.0, final=True)])
    assert picked[0].stream_id == 2


def test_finals_lose_their_beam_while_the_batch_runs_late() -> None:
    """Beam finals are the costliest rows: while the most overdue request is over `greedy_late_s` late they
    decode greedily (still as finals), on time they keep the beam; partials are untouched."""
    s = BatchScheduler(max_batch=4, greedy_late_s=0.25)
    reqs = [req(1, 1.0, final=True), req(2, 1.1)]
    on_time = s.pick(reqs, now_s=1.2)
    assert [(r.final, r.beam) for r in on_time] == [(True, True), (False, True)]
    late = s.pick(reqs, now_s=1.3)
    assert [(r.final, r.beam) for r in late] == [(True, False), (False, True)]
    assert all(r.beam for r in BatchScheduler(greedy_late_s=None).pick(reqs, now_s=99.0))
    assert all(r.beam for r in s.pick(reqs)), "no clock, no judgement"
    straggler = [req(1, 0.2, final=True)] + [req(i, 1.1 + i / 100, final=i % 2 == 0) for i in range(2, 7)]
    assert BatchScheduler.lateness(straggler, 1.2) == pytest.approx(0.07), "the median request's lateness"


def test_audio_that_arrives_late_moves_the_streams_timeline_not_its_lateness() -> None:
    """A client that opens a stream and sends its audio 10 s later is not 10 s overdue: its decodes are due
    from when the audio arrived, so it neither jumps the queue nor makes the batch look late (which would
    take every stream's beam finals). Audio that arrives on time leaves the timeline alone."""
    stream = BatchStream(0, BatchStreamConfig(vad=VadConfig(min_silence_ms=100, speech_pad_ms=0)), origin_s=0.0)
    stream.accept(np.zeros(512 * 60, np.float32))
    stream.arrived(10.0)
    stream.accept_vad(np.concatenate([np.full(10, 0.05), np.full(40, 0.9), np.full(10, 0.05)]).astype(np.float32))
    final = stream.request()
    assert final is not None and final.final
    known = 50 + stream.vad._min_silence_frames  # the frame whose silence ended the segment
    assert final.due_s == pytest.approx(10.0 - (60 - known) * 512 / 16000, abs=1e-6), "due when its end arrived"
    assert all(r.beam for r in BatchScheduler().pick([final], now_s=10.1)), "not late: keeps its beam"
    on_time = BatchStream(1, origin_s=5.0)
    on_time.accept(np.zeros(16000, np.float32))
    on_time.arrived(5.9)  # one second of audio by 0.9 s after opening: faster than real time
    assert on_time.origin_s == 5.0
    on_time.arrived(6.6)  # 0.6 s late: jitter of a busy server, not a stream that fell behind
    assert on_time.origin_s == 5.0, "a little late: its requests are as late as they are"


def test_finals_are_due_when_the_stream_knew_of_them_not_at_their_end() -> None:
    """The VAD declares an end only after its silence, and a segment grown too long is cut at a pause up to
    `split_search_s` back: due at their ends, such finals looked late the moment they appeared, and the
    scheduler took every stream's beam for them (H100, 400 streams at 300-400 ms endpointing: two finals in
    three greedy). They are due when the stream learned of them."""
    config = BatchStreamConfig(max_segment_s=2.0, split_search_s=1.0, vad=VadConfig(min_silence_ms=300, speech_pad_ms=0))
    stream = BatchStream(0, config, origin_s=0.0)
    frames = 100  # 3.2 s: a dip at frame 50 (1.6 s) inside continuous speech, the cut at 2 s of segment
    stream.accept(np.zeros(512 * frames, np.float32))
    probs = np.full(frames, 0.9, np.float32)
    probs[:5] = 0.05
    probs[50] = 0.3
    stream.accept_vad(probs)
    cut = stream.request()
    assert cut is not None and cut.final
    assert cut.end_sample == pytest.approx(50.5 * 512, abs=1), "cut at the dip"
    assert cut.due_s >= cut.start_sample / 16000 + 2.0 - 1e-6, "due when the segment reached 2 s, not at the dip"
    assert all(r.beam for r in BatchScheduler().pick([cut], now_s=cut.due_s + 0.2)), "on time: keeps its beam"
    stream._pending_finals.clear()  # as if decoded: the partials of the segment's rest are on time too
    partial = stream.request()
    assert partial is not None and not partial.final
    assert partial.due_s >= cut.due_s + config.partial_interval_ms / 1000 - 1e-6, "an interval after the cut, not the dip"


def test_no_stream_starves_under_overload() -> None:
    """With capacity for 2 of 6 streams per tick, every stream is still served within 3 ticks."""
    sched = BatchScheduler(max_batch=2)
    last_served = {i: 0.0 for i in range(6)}
    for tick in range(1, 31):
        reqs = [req(i, last_served[i] + 0.4) for i in range(6)]
        for r in sched.pick(reqs):
            last_served[r.stream_id] = float(tick)
        assert all(tick - t <= 3 for t in last_served.values())


def test_config_validation() -> None:
    with pytest.raises(ConfigError):
        BatchStreamConfig(partial_interval_ms=10)
    with pytest.raises(ConfigError):
        BatchScheduler(max_batch=0)


class ReplayEngine:
    """An engine that returns fixed text for any window: isolates the stream logic from the model."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.windows: list[int] = []

    def transcribe(self, windows: list[np.ndarray], prompts: list[str] | None = None,
                   finals: list[bool] | None = None) -> list[list[int]]:
        self.windows += [len(w) for w in windows]
        self.calls.append(list(finals or [False] * len(windows)))
        return [[0] for _ in windows]

    @property
    def calls(self) -> list[list[bool]]:
        """Per engine call: which of its windows were finals."""
        return self.__dict__.setdefault("_calls", [])


def _speech(speech_dir: Path) -> np.ndarray:
    path = speech_dir / "librispeech_1988-147956-0000.flac"
    audio, rate = sf.read(path if path.exists() else sorted(speech_dir.glob("librispeech_*.flac"))[0], dtype="float32")
    assert rate == 16000
    return np.asarray(audio)


def _stream_through(audio: np.ndarray) -> tuple[list, ReplayEngine, BatchStream]:
    engine = ReplayEngine("hello world")
    vad = BatchedVad(ensure_model("silero-vad") / "raw" / "silero_vad.onnx", threads=1)
    runner = BatchRunner(engine, lambda tokens: "hello world", vad, BatchScheduler(8))
    stream = BatchStream(0)
    runner.add(stream)
    signal = np.concatenate([np.zeros(8000, np.float32), audio, np.zeros(24000, np.float32)])
    captions = []
    for i in range(0, len(signal), 1600):
        stream.accept(signal[i:i + 1600])
        captions += [c for _, c in runner.tick(i / 16000)[0]]
    return captions, engine, stream


def test_real_speech_gives_partials_then_one_final_per_utterance(speech_dir: Path) -> None:
    audio = _speech(speech_dir)
    captions, engine, stream = _stream_through(audio)
    finals = [c for c in captions if c.stability is Stability.FINAL]
    partials = [c for c in captions if c.stability is Stability.PARTIAL]
    assert len(finals) >= 1 and all(c.text == "hello world" for c in finals)
    assert len(partials) >= (len(audio) / 16000) / 0.4 * 0.5, "a partial about every 400 ms of speech"
    assert finals[0].start_s < 1.0 and finals[-1].end_s > len(audio) / 16000
    assert max(engine.windows) <= 16000 * 15, "windows stay bounded"
    kept_s = 3 + stream.config.context_s  # the VAD's look-back and a final's context
    assert len(stream._audio) < 16000 * kept_s, "audio before the last segment's context is dropped"


def test_a_rounds_partials_are_shown_before_its_finals_are_decoded() -> None:
    """Finals (beam search and word alignment) take the longest in a round: the round's partials are decoded
    and handed out first, so a partial never waits for them."""
    engine = ReplayEngine("hello world")
    vad = BatchedVad(ensure_model("silero-vad") / "raw" / "silero_vad.onnx", threads=1)
    runner = BatchRunner(engine, lambda tokens: "hello world", vad, BatchScheduler(8, greedy_late_s=None))
    ended, talking = _segmented(np.concatenate([PAUSE, SPEECH, PAUSE])), _segmented(np.concatenate([PAUSE, SPEECH]))
    talking.id = 1
    for s in (ended, talking):
        runner.add(s)
    handed: list[list[Stability]] = []
    captions, report = runner.tick(10.0, emit=lambda caps: handed.append([c.stability for _, c in caps]))
    assert report.batch_size == 2 and engine.calls == [[False], [True]]
    assert handed == [[Stability.PARTIAL], [Stability.FINAL]] and len(captions) == 2


def test_silence_never_asks_for_a_decode() -> None:
    engine = ReplayEngine("ghost")
    vad = BatchedVad(ensure_model("silero-vad") / "raw" / "silero_vad.onnx", threads=1)
    runner = BatchRunner(engine, lambda t: "ghost", vad, BatchScheduler(8))
    streams = [BatchStream(i) for i in range(3)]
    for s in streams:
        runner.add(s)
    rng = np.random.default_rng(0)
    for i in range(100):  # 10 s of low noise per stream
        for s in streams:
            s.accept((rng.standard_normal(1600) * 1e-3).astype(np.float32))
        captions, report = runner.tick(i / 10)
        assert captions == [] and report.batch_size == 0
    assert engine.windows == []
    assert all(len(s._audio) < 3 * 16000 for s in streams), "memory stays bounded in silence"


def test_decoding_loops_are_cut() -> None:
    s = BatchStream(0)
    r = WindowRequest(0, 0, 16000 * 4, True, 0.0)
    s._add_final(0, 16000 * 4, 16000 * 4)
    (cap,) = s.apply(r, "the two kittens. the two kittens. the two kittens. the two kittens. the two")
    assert cap.text.lower().count("kittens") == 1


def test_a_pause_in_speech_makes_a_partial_due_before_the_cadence() -> None:
    """The last words of a phrase are decoded ~0.1 s after the speech pauses, not at the next cadence tick."""
    stream = BatchStream(0, BatchStreamConfig(partial_interval_ms=2000, pause_pass_ms=96))
    frames = 20  # 640 ms of speech
    stream.accept(np.zeros(512 * (frames + 3), np.float32))
    stream.accept_vad(np.full(frames, 0.9, np.float32))
    assert stream.request() is None, "speech goes on: wait for the cadence"
    stream.accept_vad(np.zeros(2, np.float32))
    assert stream.request() is None, "64 ms of silence is not a pause yet"
    stream.accept_vad(np.zeros(1, np.float32))
    r = stream.request()
    assert r is not None and not r.final and r.end_sample == 512 * (frames + 3)
    assert r.due_s == pytest.approx((512 * frames + 1536) / 16000)
    stream.apply(r, "hello world")
    assert stream.request() is None, "that decode heard the end of the speech"
    assert BatchStream(1, BatchStreamConfig(pause_pass_ms=None)).request() is None
    with pytest.raises(ConfigError):
        BatchStreamConfig(pause_pass_ms=10)


def test_growing_hypotheses_keep_their_word_breaks() -> None:
    """Partials that grow pass by pass must not glue words together ("straykittens") in partials or final."""
    stream = BatchStream(0, BatchStreamConfig(pause_pass_ms=None))
    stream.accept(np.zeros(512 * 100, np.float32))
    stream.accept_vad(np.full(60, 0.9, np.float32))
    texts = ["the two", "the two stray kit.", "the two stray kittens gradually", "the two stray kittens gradually make"]
    shown = []
    for i, text in enumerate(texts):
        caps = stream.apply(WindowRequest(0, 0, 512 * (20 + 10 * i), False, 0.0), text)
        shown += [c.text for c in caps]
    assert shown[-1] == "the two stray kittens gradually make"
    assert all(" " in t or len(t.split()) == 1 for t in shown) and not any("straykit" in t for t in shown)
    stream.accept_vad(np.zeros(20, np.float32))
    r = stream.request()
    assert r is not None and r.final
    (final,) = stream.apply(r, "the two stray kittens gradually make themselves at home.")
    assert final.text == "the two stray kittens gradually make themselves at home."


class RecordingSegmenter(VadSegmenter):
    def __init__(self, config: VadConfig) -> None:
        super().__init__(config)
        self.events: list[VadEvent] = []

    def push(self, probs: np.ndarray) -> list[VadEvent]:
        events = super().push(probs)
        self.events += events
        return events


class RecordingStream(BatchStream):
    """A BatchStream that keeps every probability the batched VAD gave it and every segmenter event."""

    def __init__(self, stream_id: int, config: BatchStreamConfig) -> None:
        super().__init__(stream_id, config)
        self.vad = RecordingSegmenter(config.vad)
        self.probs: list[np.ndarray] = []

    def accept_vad(self, probs: np.ndarray) -> None:
        self.probs.append(np.array(probs))
        super().accept_vad(probs)


def _stream_state(s: BatchStream) -> tuple:
    return (s.vad.position_sample, s._seg_start, list(s._pending_finals), s._voiced_end, s._last_decoded_end)


def test_batched_vad_matches_per_stream_vad_on_many_streams(speech_dir: Path) -> None:
    """21 streams of different real speech, starting at different ticks with 0-4 frames due per tick (one leaves
    midway and a later one reuses its slot): every probability equals per-stream `SileroVad.push`'s bit for bit,
    the events equal `VadSegmenter`'s, and each stream (segments, 2 s splits, pauses) is after every tick exactly
    as one fed a frame at a time. Mixing up two streams' states or contexts breaks the equality."""
    path = ensure_model("silero-vad") / "raw" / "silero_vad.onnx"
    model = SileroVadModel(path)
    config = BatchStreamConfig(max_segment_s=2.0)  # splits long speech within the test
    rng = np.random.default_rng(1)
    signals = []
    for f in sorted(speech_dir.glob("*.flac"))[::7][:21]:
        audio, rate = sf.read(f, dtype="float32")
        assert rate == 16000
        lead = np.zeros(int(rng.integers(0, 12000)), np.float32)
        signals.append(np.concatenate([lead, np.asarray(audio)[: 16000 * 7], np.zeros(16000, np.float32)]))
    starts = [(i % 7) * 3 for i in range(len(signals))]
    starts[-1] = 60  # takes the slot stream 3 frees at tick 60
    vad = BatchedVad(path, threads=2, chunk=4)
    streams = {i: RecordingStream(i, config) for i in range(len(signals))}
    refs = {i: (SileroVad(model), VadSegmenter(config.vad), BatchStream(i, config)) for i in streams}
    ref_probs: dict[int, list[np.ndarray]] = {i: [] for i in streams}
    ref_events: dict[int, list[VadEvent]] = {i: [] for i in streams}
    fed = dict.fromkeys(streams, 0)
    for tick in range(400):
        live = [i for i in streams if starts[i] <= tick and fed[i] < len(signals[i]) and not (i == 3 and tick >= 60)]
        if tick == 60:
            vad.forget(3)
        for i in live:
            chunk = signals[i][fed[i]: fed[i] + int(rng.integers(0, 2100))]
            fed[i] += len(chunk)
            silero, segmenter, one_at_a_time = refs[i]
            streams[i].accept(chunk)
            one_at_a_time.accept(chunk)
            p = silero.push(chunk)
            ref_probs[i].append(p)
            ref_events[i] += segmenter.push(p)
            for k in range(len(p)):
                one_at_a_time.accept_vad(p[k: k + 1])
        vad.score([streams[i] for i in live])
        for i in live:
            assert _stream_state(streams[i]) == _stream_state(refs[i][2]), f"stream {i}, tick {tick}"
    assert all(fed[i] == len(signals[i]) for i in streams if i != 3)
    for i, s in streams.items():
        assert np.array_equal(np.concatenate(s.probs), np.concatenate(ref_probs[i])), f"stream {i}"
        assert s.vad.events == ref_events[i], f"stream {i}"
    assert sum(isinstance(e, SpeechStarted) for s in streams.values() for e in s.vad.events) >= 20
    assert sum(len(f) for f in (refs[i][2]._pending_finals for i in streams)) > 0


def test_the_vads_pytorch_twin_scores_all_streams_as_onnx_runtime_does(speech_dir: Path) -> None:
    """The GPU backend's VAD (the same weights in PyTorch, all streams in one call per frame; here on the CPU):
    the probabilities of 8 streams of real speech fed in uneven chunks are ONNX Runtime's to float rounding, and
    the streams' speech segments come out the same."""
    pytest.importorskip("torch")
    path = ensure_model("silero-vad") / "raw" / "silero_vad.onnx"
    rng = np.random.default_rng(3)
    signals = [np.asarray(sf.read(f, dtype="float32")[0])[: 16000 * 6] for f in sorted(speech_dir.glob("*.flac"))[::19][:8]]
    pairs = [(RecordingStream(i, BatchStreamConfig()), RecordingStream(i, BatchStreamConfig())) for i in range(len(signals))]
    onnx_vad, torch_vad = BatchedVad(path, threads=1, chunk=3), BatchedVad(path, device="cpu")
    fed = [0] * len(signals)
    while any(f < len(x) for f, x in zip(fed, signals, strict=True)):
        for i, (a, b) in enumerate(pairs):
            chunk = signals[i][fed[i]: fed[i] + int(rng.integers(0, 4000))]
            fed[i] += len(chunk)
            a.accept(chunk)
            b.accept(chunk)
        onnx_vad.score([a for a, _ in pairs])
        torch_vad.score([b for _, b in pairs])
    for a, b in pairs:
        pa, pb = np.concatenate(a.probs), np.concatenate(b.probs)
        assert len(pa) == len(pb) > 0 and np.abs(pa - pb).max() < 1e-4
        assert a.vad.events == b.vad.events
    assert sum(len(np.concatenate(a.probs)) for a, _ in pairs) > 600
    assert sum(isinstance(e, SpeechStarted) for a, _ in pairs for e in a.vad.events) >= 8


@pytest.mark.parametrize("min_speech_ms", [160, 2500])
def test_accept_vad_of_many_frames_equals_one_at_a_time(min_speech_ms: int) -> None:
    """Segments, 2 s splits and pauses come out the same however the probabilities are grouped, also when a
    segment is confirmed so late (min_speech 2.5 s) that it must be split at the very frame that opens it."""
    config = BatchStreamConfig(max_segment_s=2.0, vad=VadConfig(min_speech_ms=min_speech_ms, min_silence_ms=400,
                                                                 speech_pad_ms=160))
    rng = np.random.default_rng(min_speech_ms)
    runs = [np.full(int(rng.integers(1, 150)), 0.9 if k % 2 else 0.05, np.float32) for k in range(40)]
    probs = np.concatenate(runs) + rng.uniform(-0.04, 0.04, sum(map(len, runs))).astype(np.float32)
    grouped, single = BatchStream(0, config), BatchStream(1, config)
    for s in grouped, single:
        s.accept(np.zeros(512 * len(probs), np.float32))
    done = 0
    while done < len(probs):
        n = int(rng.integers(1, 200))
        grouped.accept_vad(probs[done: done + n])
        for k in range(done, min(done + n, len(probs))):
            single.accept_vad(probs[k: k + 1])
        done += n
        assert _stream_state(grouped) == _stream_state(single), f"after frame {done}"
    assert len(single._pending_finals) > 5


def test_a_spelled_letter_loop_is_cut_in_a_final() -> None:
    # the batched decode has no word times; a letter loop inside one hyphenated word must still be caught
    stream = BatchStream(0)
    stream.accept(np.zeros(16000, np.float32))
    req = WindowRequest(0, 0, 16000, True, 1.0)
    stream._add_final(0, 16000, 16000)
    (cap,) = stream.apply(req, "and E-W-E-L-L-L-L-L-L-L-L")
    assert cap.text == "and E-W-E-L-L"
    stream._add_final(0, 16000, 16000)
    (cap,) = stream.apply(req, "P-I-T-T-S-B-U-R-G-H.")  # a real double letter stays
    assert cap.text == "P-I-T-T-S-B-U-R-G-H."


def test_a_long_segment_is_cut_at_its_quietest_recent_frame() -> None:
    """A segment without a pause is cut where the VAD was least sure of speech within the last `split_search_s`
    (a gap between words), not through the word at which it grew too long; older dips are not considered."""
    config = BatchStreamConfig(max_segment_s=4.0, split_search_s=1.0)

    def first_final(probs: np.ndarray) -> tuple[int, int]:
        stream = BatchStream(0, config)
        stream.accept(np.zeros(512 * len(probs), np.float32))
        stream.accept_vad(probs)
        req = stream.request()
        assert req is not None and req.final
        return req.start_sample, req.end_sample

    probs = np.full(200, 0.9, np.float32)
    _, blind_end = first_final(probs)  # no dip: cut where the segment reached 4 s
    dip = blind_end // 512 - 20  # 0.64 s before that
    probs[dip] = 0.5
    probs[dip - 10] = 0.6
    probs[blind_end // 512 - 60] = 0.36  # lower, but 1.9 s back: outside the search
    start, end = first_final(probs)
    assert end == dip * 512 + 256
    assert 3.0 * 16000 < end - start < 4.0 * 16000


def test_final_decodes_get_the_streams_earlier_final_text_as_prompt() -> None:
    stream = BatchStream(0, BatchStreamConfig(prompt_chars=12, context_s=0,
                                              vad=VadConfig(min_silence_ms=100, speech_pad_ms=0)))
    speech, pause = np.full(40, 0.9, np.float32), np.full(10, 0.05, np.float32)
    probs = np.concatenate([pause, speech, pause, speech[:20]])
    stream.accept(np.zeros(512 * len(probs), np.float32))
    stream.accept_vad(probs)
    first = stream.request()
    assert first is not None and first.final and first.prompt == ""
    stream.apply(first, "Hello there, my friends.")
    partial = stream.request()  # the second segment is still open
    assert partial is not None and not partial.final and partial.prompt == ""
    stream.apply(partial, "and")
    stream.accept(np.zeros(512 * 10, np.float32))
    stream.accept_vad(pause)
    second = stream.request()
    assert second is not None and second.final and second.prompt == "my friends."


SPEECH, PAUSE = np.full(40, 0.9, np.float32), np.full(10, 0.05, np.float32)  # VAD frames of 32 ms
TWO_SEGMENTS = np.concatenate([PAUSE, SPEECH, PAUSE, SPEECH, PAUSE])  # speech at 0.32-1.6 s and 1.92-3.2 s


def _segmented(probs: np.ndarray) -> BatchStream:
    stream = BatchStream(0, BatchStreamConfig(vad=VadConfig(min_silence_ms=100, speech_pad_ms=0)))
    stream.accept(np.zeros(512 * len(probs), np.float32))
    stream.accept_vad(probs)
    return stream


def _timed(*words: tuple[str, float, float], ended: bool = True) -> TimedWords:
    return TimedWords([Word(text, a, b) for text, a, b in words], ended)


def test_a_final_hears_the_audio_before_it_and_keeps_only_its_own_words() -> None:
    """After a final, the next segment's final hears the audio before it again (a short segment is not
    decoded alone; speech the VAD scored as silence between the two is heard). Words up to the last final
    word heard again are dropped, the rest kept: "um" in the gap between the segments as well."""
    stream = _segmented(TWO_SEGMENTS)
    first = stream.request()
    assert first is not None and first.final and first.audio_start == first.start_sample, "only silence before"
    (cap,) = stream.apply(first, "Hello there.", _timed((" Hello", 0.0, 0.5), (" there.", 0.5, 1.2)))
    assert cap.text == "Hello there."
    second = stream.request()
    assert second is not None and second.final
    assert second.audio_start == first.start_sample, "the context reaches back to the first final word"
    assert second.prompt == "", "words heard again in the context are not also the prompt"
    assert len(stream.window(second)) == second.end_sample - first.start_sample
    said = [(" Hello", 0.32, 0.82), (" there.", 0.82, 1.5), (" um", 1.62, 1.8), (" general", 1.95, 2.5),
            (" Kenobi.", 2.5, 3.1)]  # stream seconds; the engine times them from the window's start
    heard = _timed(*((w, a - 0.32, b - 0.32) for w, a, b in said))
    (cap,) = stream.apply(second, "Hello there. um general Kenobi.", heard)
    assert cap.text == "um general Kenobi."
    assert [w.start_s for w in cap.words] == pytest.approx([1.62, 1.95, 2.5])  # stream seconds


def _second_final() -> tuple[BatchStream, WindowRequest]:
    """A stream whose first segment went FINAL ("Hello there."), and the request for its second's final."""
    stream = _segmented(TWO_SEGMENTS)
    first = stream.request()
    assert first is not None
    stream.apply(first, "Hello there.", _timed((" Hello", 0.0, 0.5), (" there.", 0.5, 1.2)))
    second = stream.request()
    assert second is not None and second.audio_start < second.start_sample
    return stream, second


def test_a_final_without_word_times_or_its_beam_hears_no_context() -> None:
    """Context words are dropped by their times: a final that comes back untimed (an engine without
    alignment) or is decoded greedily under load (no timed beam pass) hears its segment alone."""
    stream, second = _second_final()
    greedy = replace(second, beam=False)
    assert greedy.audio_start == second.start_sample
    assert len(stream.window(greedy)) == second.end_sample - second.start_sample
    assert second.decode_prompt == "" and greedy.decode_prompt == "Hello there.", "what it no longer hears is prompted"
    stream.timed_finals = False
    untimed = stream.request()
    assert untimed is not None and untimed.audio_start == untimed.start_sample
    assert untimed.prompt == "Hello there."


def test_a_final_that_hears_nothing_with_its_context_is_decoded_alone() -> None:
    """Context audio can throw Whisper into a loop over it: a second of speech that comes back without a word
    is decoded again, alone, before it is given up."""
    stream, second = _second_final()
    assert stream.apply(second, "Hello there.", _timed((" Hello", 0.0, 0.5), (" there.", 0.5, 1.2))) == []
    again = stream.request()
    assert again is not None and again.final and (again.start_sample, again.end_sample) == (
        second.start_sample, second.end_sample)
    assert again.audio_start == again.start_sample and again.prompt == "Hello there."
    (cap,) = stream.apply(again, "general Kenobi.", _timed((" general", 0.1, 0.6), (" Kenobi.", 0.6, 1.2)))
    assert cap.text == "general Kenobi." and stream.idle


def test_a_final_that_stopped_early_goes_on_from_its_last_word() -> None:
    """The decoder may end a final's text with speech left ("7 1 6 2 4 4 6 7" of "... 6 7 1 4", an AN4
    recording): words ending >= 0.8 s before the segment's end with the VAD hearing speech after them. They
    go FINAL at once, and the rest of the segment is the next final, prompted by them, once."""
    stream = _segmented(np.concatenate([PAUSE, SPEECH, SPEECH, PAUSE]))  # speech 0.32-2.88 s
    first = stream.request()
    assert first is not None and first.final
    (cap,) = stream.apply(first, "7 1 6", _timed((" 7", 0.0, 0.3), (" 1", 0.3, 0.6), (" 6", 0.6, 1.0)))
    assert cap.text == "7 1 6" and cap.end_sample == first.start_sample + 16000
    rest = stream.request()
    assert rest is not None and rest.final and rest.start_sample == first.start_sample + 16000
    assert rest.end_sample == first.end_sample and rest.audio_start == rest.start_sample and rest.prompt == "7 1 6"
    (cap,) = stream.apply(rest, "1", _timed((" 1", 0.1, 0.4)))  # stopped early again: not continued twice
    assert cap.text == "1" and stream.idle


def test_a_final_that_ends_with_its_speech_is_not_continued() -> None:
    stream = _segmented(np.concatenate([PAUSE, SPEECH, SPEECH[:5], PAUSE, PAUSE]))  # speech 0.32-1.76 s
    first = stream.request()
    assert first is not None and first.final and first.end_sample - first.start_sample > 1.3 * 16000
    # the words end 1.2 s into a segment of >1.4 s: not >= 0.8 s early, however the VAD scored the rest
    (cap,) = stream.apply(first, "Hello there.", _timed((" Hello", 0.0, 0.5), (" there.", 0.5, 1.2)))
    assert cap.text == "Hello there." and stream.idle


def test_words_for_a_segment_cleared_while_it_was_decoded_are_dropped() -> None:
    """The batched service decodes outside its lock: a client's clear may land between a request and its
    words. The words of a dropped final or partial then change nothing (and do not fail the service)."""
    stream = BatchStream(0, BatchStreamConfig(vad=VadConfig(min_silence_ms=100, speech_pad_ms=0)))
    probs = np.concatenate([np.full(10, 0.05), np.full(40, 0.9), np.full(10, 0.05), np.full(30, 0.9)]).astype(np.float32)
    stream.accept(np.zeros(512 * len(probs), np.float32))
    stream.accept_vad(probs)
    final = stream.request()
    assert final is not None and final.final
    stream.drop_segment()
    partial_after_clear = WindowRequest(0, final.end_sample + 512, final.end_sample + 8000, False, 1.0)
    assert stream.apply(final, "hello there") == []
    assert stream.apply(partial_after_clear, "general kenobi") == []
    assert stream.idle and stream.segment_id == 0


def test_a_final_in_a_batch_is_not_asked_for_again_until_its_words_come_back() -> None:
    """A server's front-end plans its next round while the last round's finals are still decoded in the
    engine process: a final taken into a batch is not requested twice, and the stream asks for nothing else
    meanwhile (its next partials follow its final). A final that must be decoded again (nothing heard with
    its context) is asked for again, and a clear lets the next segment's final go out at once."""
    stream, second = _second_final()
    stream.taken(second)
    assert stream.request() is None, "in flight"
    assert stream.apply(second, "Hello there.", _timed((" Hello", 0.0, 0.5), (" there.", 0.5, 1.2))) == []
    again = stream.request()
    assert again is not None and again.final and again.audio_start == again.start_sample, "decoded again, alone"
    stream.taken(again)
    assert stream.request() is None
    (cap,) = stream.apply(again, "general Kenobi.", _timed((" general", 0.1, 0.6), (" Kenobi.", 0.6, 1.2)))
    assert cap.text == "general Kenobi." and stream.idle and stream.request() is None

    cleared = _segmented(np.concatenate([PAUSE, SPEECH, PAUSE]))
    first = cleared.request()
    assert first is not None and first.final
    cleared.taken(first)
    cleared.drop_segment()
    cleared.accept(np.zeros(512 * 60, np.float32))
    cleared.accept_vad(np.concatenate([SPEECH, PAUSE, PAUSE]))
    nxt = cleared.request()
    assert nxt is not None and nxt.final and nxt.start_sample > first.end_sample, "the next segment's final"
    assert cleared.apply(first, "stale words") == [], "the cleared final's words change nothing"
    assert cleared.request() == nxt


def test_the_next_segments_partials_go_on_while_a_final_is_decoded() -> None:
    """Speech that goes on after a pause is captioned while the pause's final is still in the engine
    process: its partials are numbered as the next segment (the client keeps the two apart), and a final
    that decodes no words falls back to its own segment's committed partial words, not the next one's."""
    stream = _segmented(np.concatenate([PAUSE, SPEECH]))
    partial = stream.request()
    assert partial is not None and not partial.final
    for _ in range(2):  # the same words twice: committed
        stream.apply(partial, "Hello there")
    stream.accept(np.zeros(512 * 40, np.float32))
    stream.accept_vad(np.concatenate([PAUSE, SPEECH[:30]]))
    final = stream.request()
    assert final is not None and final.final
    stream.taken(final)
    nxt = stream.request()
    assert nxt is not None and not nxt.final and nxt.start_sample > final.end_sample, "the open segment's partial"
    (shown,) = stream.apply(nxt, "general Kenobi")
    assert shown.segment_id == 1 and shown.stability == Stability.PARTIAL and shown.text == "general Kenobi"
    assert (stream.segment_id, stream.speech_segment_id) == (0, 1), "speech events name the segment it goes into"
    (cap,) = stream.apply(final, "", _timed())
    assert cap.segment_id == 0 and cap.is_final and cap.text == "Hello there"
    (again,) = stream.apply(replace(nxt, end_sample=nxt.end_sample + 512), "general Kenobi")
    assert again.segment_id == 1 and again.text == "general Kenobi"
