"""One Whisper pass over a live window: audio in stream time -> the words said in it, cleaned for streaming.

The window [start, end) is decoded after some earlier (already final) audio, the context, and is
padded with silence to a minimum length; then what Whisper says is checked before it is trusted:
- a decoding loop is cut (`repetition_start`; anywhere when the pass ran out of its token budget;
  `fuzzy_repeat_start` for a loop that rewords itself);
- words placed in the silence padding were never said, and words of the context are already final;
- words the alignment left out at the end of the text are put back (see `complete_words`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from difflib import SequenceMatcher
from typing import Any

import numpy as np

from rtaudio.frames import Word
from rtaudio.stt.decoding import DecodeOptions
from rtaudio.stt.stabilizer import is_code, normalize_word, repetition_start

SAMPLE_RATE_HZ = 16000
PADDING_EDGE_S = 0.1  # a partial's word starting this close to its audio's end may not have been said yet
MISSED_WORD_GAP_S = 0.2  # a context word starting this long after the last final word is a new word
EARLY_STOP_S = 0.8  # a final pass whose words end this long before the segment's audio stopped early
CROWD_SPACING_S = 0.05  # words to the end of a pass that start closer than this on average were never said
ECHO_S = 0.6  # a context word ending within this of the last final word's end, and reading like it, is its echo (alignment stretches words into pauses)

STREAMING_DECODE = DecodeOptions(beam_size=1, temperatures=(0.0,), timestamps=False, word_timestamps=True)
"""Greedy, no temperature fallback (a retry costs a whole pass; the next pass comes soon anyway),
no timestamp tokens (word times come from the alignment heads), word times on."""


@dataclass(frozen=True)
class WindowPass:
    """How a window is decoded (from `StreamingConfig`)."""

    min_encode_s: float
    """Windows shorter than this are padded with silence (short inputs make Whisper loop)."""
    max_tokens_per_s: float
    """Token budget: 8 + this * seconds of audio decoded."""


@dataclass(frozen=True)
class Hypothesis:
    """One pass over the window: words in stream seconds, heard up to `end_sample`."""

    words: tuple[Word, ...]
    end_sample: int
    compute_s: float
    stage_s: dict[str, float] = field(default_factory=dict)
    """The recognizer's own stage times (encoder, decoder, align) when it reports them."""


def words_text(words: Sequence[Word]) -> str:
    """Words joined as Whisper spelled them: a word without a leading space attaches ("527" "-66")."""
    return " ".join("".join(w.text for w in words).split())


def complete_words(text: str, words: Sequence[Word], content_s: float) -> list[Word]:
    """A segment's words, with trailing words of `text` that the word alignment left out appended
    (evenly timed up to the content end). The recognizer's alignment currently drops the last word
    when the text does not end in punctuation; this keeps the text whole either way."""
    got = "".join(w.text for w in words).split()
    want = text.split()
    if len(got) >= len(want) or want[: len(got)] != got:
        return list(words)
    missing = want[len(got):]
    t0 = words[-1].end_s if words else 0.0
    step = max(0.0, min(0.4, (content_s - t0) / len(missing)))
    return [*words, *(Word(" " + m, t0 + i * step, t0 + (i + 1) * step, 0.5) for i, m in enumerate(missing))]


def fuzzy_repeat_start(words: Sequence[Word], min_words: int = 4, min_ratio: float = 0.8) -> int | None:
    """Where the hypothesis starts saying again, loosely, what it just said, and goes on so to its end
    ("... terms of address. The more in approach we will also be reflecting the terms of address.");
    None if it does not. Exact loops are `repetition_start`'s; this catches the reworded ones."""
    keys = [normalize_word(w.text) for w in words]
    matcher = SequenceMatcher(None)
    for p in range(min_words, len(keys) - min_words + 1):
        rest = keys[p:]
        m = len(rest)
        matcher.set_seq2(rest)  # indexed once per split point (it runs per final of every live stream)
        for q in range(max(0, p - m - 2), max(0, p - m + 2) + 1):
            if p - q < min_words:
                continue
            matcher.set_seq1(keys[q:p])
            if matcher.quick_ratio() >= min_ratio and matcher.ratio() >= min_ratio:  # quick_ratio bounds ratio
                return p
    return None


def piled_start(words: Sequence[Word], min_words: int = 3, spacing_s: float = CROWD_SPACING_S) -> int | None:
    """Where the text runs on past what the audio holds: the earliest point from which `min_words` or more
    words to the end start less than `spacing_s` apart on average (speech takes >= 0.12 s a word; the
    alignment, with no audio left to give them, crams them together); None if the words do not end so.
    A loop too long for `repetition_start` ends like this ("... in casting | in casting especially as no
    more time is occupied ... in casting", all at 79.32 s of a segment ending at 79.68 s), and so does one
    that changes as it goes ("Enter 45821 | Enter 45821 Enter 45821 Enter 4821 Enter 4821 ...", 13 words
    in 0.4 s, a final of an AN4 reading decoded in a batch)."""
    last = len(words) - 1
    for k in range(0, len(words) - min_words + 1):
        if (words[k + 1].start_s - words[k].start_s <= spacing_s  # (a said word just before the pile is not in it)
                and words[last].start_s - words[k].start_s <= spacing_s * (last - k)):
            return k
    return None


def said_again(words: Sequence[Word], loop: int, content_s: float, max_copies: int = 4) -> bool:
    """A word said over and over to the end of the speech ("here's some more word word word word word"),
    not a loop, in a pass that heard the whole segment: the decoder ended the text itself (it was not cut
    by its token budget), after at most `max_copies` surplus copies, none placed in the silence padding
    where a loop runs on. Numbers and spelled strings are never exempt ("1928 1928" is a loop)."""
    keys = [normalize_word(w.text) for w in words]
    run = keys[loop:]
    return (0 < len(run) <= max_copies and loop > 0 and all(k == keys[loop - 1] for k in run)
            and not is_code(words[loop - 1].text, keys[loop - 1]) and words[-1].start_s < content_s - PADDING_EDGE_S)


def echo_index(words: Sequence[Word], offset_s: float, finals: Sequence[Word]) -> int | None:
    """Index of the context word that is the last final word heard again, or None: a word that ends within
    `ECHO_S` of where the final's last word ended (the nearest) and reads like it, or like its last two
    words run together ("Rub out." heard again as "Robout")."""
    if not finals:
        return None
    last = finals[-1]
    keys = [normalize_word(last.text)]
    if len(finals) > 1:
        keys.append(normalize_word(finals[-2].text) + keys[0])
    near = [(abs(offset_s + w.end_s - last.end_s), i) for i, w in enumerate(words)
            if abs(offset_s + w.end_s - last.end_s) <= ECHO_S
            and any(SequenceMatcher(None, normalize_word(w.text), k).ratio() >= 0.8 for k in keys if k)]
    return min(near)[1] if near else None


def run_pass(recognizer: Any, audio: np.ndarray, audio_start: int, start: int, end: int, prompt: str,
             options: DecodeOptions, spec: WindowPass, clock_ns: Any, new_from: int | None = None,
             finals: Sequence[Word] = (), final: bool = False) -> Hypothesis:
    """Decode window [start, end) of the stream; `audio` holds stream samples from `audio_start` (which is
    <= start: the context) to `end`. Words of the context are dropped, except speech the VAD left out:
    those after the echo of the last of `finals` (recent final words) where the context holds it, else those
    starting at or after sample `new_from`. `final`: the pass hears a whole segment for its final (see
    `said_again` and the padding edge below). `clock_ns()` times the pass."""
    content_s = len(audio) / SAMPLE_RATE_HZ
    pad = int(spec.min_encode_s * SAMPLE_RATE_HZ) - len(audio)
    if pad > 0:
        audio = np.concatenate([audio, np.zeros(pad, np.float32)])
    options = replace(options, max_new_tokens=8 + math.ceil(spec.max_tokens_per_s * content_s))
    t0 = clock_ns()
    result = recognizer.transcribe_window(audio, prompt=prompt or None, options=options)
    compute_s = (clock_ns() - t0) / 1e9
    raw = [w for seg in result.segments for w in complete_words(seg.text, seg.words, content_s) if w.text.strip()]
    capped = sum(len(seg.tokens) for seg in result.segments) >= (options.max_new_tokens or 0) - 1
    words = heard_words(raw, capped, content_s, audio_start, start, new_from, finals, final)
    return Hypothesis(words, end, compute_s, dict(getattr(result, "stage_s", None) or {}))


def heard_words(raw: Sequence[Word], capped: bool, content_s: float, audio_start: int, start: int,
                new_from: int | None = None, finals: Sequence[Word] = (), final: bool = False) -> tuple[Word, ...]:
    """The words of one pass (`raw`: window-relative times, the window's audio from stream sample
    `audio_start`, `content_s` of it before the silence padding) that were said in the window from sample
    `start` on, in stream seconds: loops cut, padding and context words dropped (see `run_pass`); `capped`:
    the pass ran out of its token budget."""
    # text piled up past the audio goes first: the copies of a loop that ends so run to the end only then
    pile = piled_start(raw)
    said = raw[:pile]
    loop = repetition_start(said, anywhere=capped)  # on all words: the padding holds the loop's evidence
    if loop is not None and not capped and final and said_again(said, loop, content_s):
        loop = None
    if loop is None:
        loop = fuzzy_repeat_start(said)
    if loop is None:
        loop = pile
    offset_s, start_s = audio_start / SAMPLE_RATE_HZ, start / SAMPLE_RATE_HZ
    new_s = math.inf if new_from is None else new_from / SAMPLE_RATE_HZ
    heard = raw[:loop]
    # A partial's last 0.1 s may hold a word not yet said; a final's pass keeps a word that starts before
    # its audio ends: the VAD closes quiet endings early ("what's called a | liner.", "1, 5, 2, 1, | 3."
    # at the end of the input) and Whisper still names the word it heard begin.
    edge_s = 0.0 if final else PADDING_EDGE_S
    # words after the final's last word heard again are new, however close to it ("know | how people",
    # where the time rule lost "how people": they start within MISSED_WORD_GAP of "know"), and words up to
    # it are not, however late the alignment put them ("Rub out." | "Robout" stretched into the window)
    echo = echo_index(heard, offset_s, finals) if new_from is not None else None
    return tuple(
        Word(w.text, offset_s + w.start_s, offset_s + min(max(w.end_s, w.start_s), content_s), w.probability)
        for i, w in enumerate(heard)
        if w.start_s < content_s - edge_s  # a word placed in the silence padding was never said
        # a word of the context is already final: up to the echo of the last final word where there is one
        # (the words are in order, whatever their times), else by time. Its end decides: the alignment
        # stretches a word that follows a pause back over the pause, so starts are unreliable there
        and (i > echo if echo is not None else offset_s + w.end_s > start_s + 0.05 or offset_s + w.start_s >= new_s)
    )
