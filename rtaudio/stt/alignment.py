"""Word timestamps: where each text token looks in the audio, by the cross-attention of the model's
alignment heads, then a monotonic path (dynamic time warping) from text tokens to audio frames.

Audio positions are 20 ms apart (10 ms mel hop, encoder stride 2). The DTW kernel is Numba with a
plain-Python reference (`dtw_reference`) that tests compare against.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numba import njit

from rtaudio.frames import Word
from rtaudio.stt.onnx_whisper import WhisperBackend, empty_cache
from rtaudio.stt.tokenizer import TIME_PRECISION_S, WhisperTokenizer

MEDIAN_FILTER_WIDTH = 7  # audio positions (140 ms): smooths single-frame attention spikes
PREPEND_PUNCTUATION = "\"'“¿([{-"
APPEND_PUNCTUATION = "\"'.。,，!！?？:：”)]}、"


@dataclass(frozen=True)
class TokenWord:
    text: str
    tokens: tuple[int, ...]
    start_s: float
    end_s: float
    probability: float


# -- dynamic time warping ---------------------------------------------------------------------------

@njit(nogil=True, cache=True)
def _dtw_fill(x: np.ndarray, cost: np.ndarray, trace: np.ndarray) -> None:  # pragma: no cover - compiled
    n, m = x.shape
    for j in range(1, m + 1):
        for i in range(1, n + 1):
            c0 = cost[i - 1, j - 1]
            c1 = cost[i - 1, j]
            c2 = cost[i, j - 1]
            if c0 < c1 and c0 < c2:
                c, t = c0, 0
            elif c1 < c0 and c1 < c2:
                c, t = c1, 1
            else:
                c, t = c2, 2
            cost[i, j] = x[i - 1, j - 1] + c
            trace[i, j] = t


def _backtrace(trace: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Plain-Python twin of `_backtrace_compiled` (for `dtw_reference`): from the last cell back to the first,
    along the step each cell took (0 diagonal, 1 up, 2 left; the first row only left, the first column up)."""
    step = {0: (1, 1), 1: (1, 0), 2: (0, 1)}
    i, j = trace.shape[0] - 1, trace.shape[1] - 1
    path = []
    while (i, j) != (0, 0):
        path.append((i - 1, j - 1))
        di, dj = step[2 if i == 0 else 1 if j == 0 else int(trace[i, j])]
        i, j = i - di, j - dj
    arr = np.array(path[::-1], dtype=np.int64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


@njit(nogil=True, cache=True)
def _backtrace_compiled(trace: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """`_backtrace` compiled: in Python it was most of a final's alignment time (the GPU path times every final)."""
    n, m = trace.shape
    rows = np.empty(n + m, np.int64)
    cols = np.empty(n + m, np.int64)
    i, j, k = n - 1, m - 1, 0
    while i > 0 or j > 0:
        rows[k], cols[k] = i - 1, j - 1
        k += 1
        t = 2 if i == 0 else 1 if j == 0 else trace[i, j]
        if t == 0:
            i, j = i - 1, j - 1
        elif t == 1:
            i -= 1
        else:
            j -= 1
    return rows[:k][::-1].copy(), cols[:k][::-1].copy()


def _dtw_tables(n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    cost = np.full((n + 1, m + 1), np.inf)
    cost[0, 0] = 0.0
    return cost, np.full((n + 1, m + 1), -1, dtype=np.int8)


def dtw(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cheapest monotonic path through cost x (N text tokens, M audio positions) float64 ->
    (text indices, time indices), both of the path's length."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    cost, trace = _dtw_tables(*x.shape)
    _dtw_fill(x, cost, trace)
    return _backtrace_compiled(trace)


def dtw_reference(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Plain-Python twin of `dtw` (same tie-breaking), for tests."""
    x = np.asarray(x, dtype=np.float64)
    cost, trace = _dtw_tables(*x.shape)
    n, m = x.shape
    for j in range(1, m + 1):
        for i in range(1, n + 1):
            options = (cost[i - 1, j - 1], cost[i - 1, j], cost[i, j - 1])
            c0, c1, c2 = options
            t = 0 if (c0 < c1 and c0 < c2) else 1 if (c1 < c0 and c1 < c2) else 2
            cost[i, j] = x[i - 1, j - 1] + options[t]
            trace[i, j] = t
    return _backtrace(trace)


def median_filter(x: np.ndarray, width: int) -> np.ndarray:
    """Median over the last axis in a centred window, edges reflected (width odd)."""
    pad = width // 2
    if x.shape[-1] <= pad:
        return x
    padded = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(pad, pad)], mode="reflect")
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, width, axis=-1), axis=-1)


# -- alignment -------------------------------------------------------------------------------------

def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def align_tokens(backend: WhisperBackend, tokenizer: WhisperTokenizer, cross: list[np.ndarray],
                 sot_sequence: Sequence[int], text_tokens: Sequence[int], token_logprobs: Sequence[float],
                 n_content_frames: int, language: str | None) -> list[TokenWord]:
    """Words of `text_tokens` (no timestamps) with window-relative times from one decoder pass."""
    if not text_tokens:
        return []
    tokens = [*sot_sequence, tokenizer.no_timestamps, *text_tokens, tokenizer.eot]
    dims = backend.info.dims
    _, _, scores = backend.step(np.array([tokens], np.int64), empty_cache(dims, 1), cross)
    starts = token_starts(scores[0], len(sot_sequence), n_content_frames // 2)
    return timed_words(tokenizer, text_tokens, starts, token_logprobs, language)


def token_starts(scores: np.ndarray, n_sot: int, n_positions: int) -> np.ndarray:
    """Where each text token starts, and where the text ends (s, window-relative; multiples of 20 ms), from
    the alignment heads' cross-attention scores (A, N, T) of a teacher-forced pass over
    [start sequence (`n_sot` tokens), <|notimestamps|>, text tokens, end-of-text]; `n_positions`: audio
    positions that hold the window's audio (not its silence padding)."""
    return path_starts(alignment_matrix(scores, n_sot, n_positions))


def alignment_matrix(scores: np.ndarray, n_sot: int, n_positions: int) -> np.ndarray:
    """`token_starts`' cost matrix (text tokens and end-of-text x audio positions): attention weights over
    the window's audio, normalised per position across tokens, median-filtered in time, averaged over heads."""
    n_pos = max(1, min(n_positions, scores.shape[-1]))
    weights = _softmax(scores[:, :, :n_pos].astype(np.float64))  # (A, N, T)
    mean = weights.mean(axis=-2, keepdims=True)
    std = weights.std(axis=-2, keepdims=True) + 1e-10
    weights = median_filter((weights - mean) / std, MEDIAN_FILTER_WIDTH)
    return weights.mean(axis=0)[n_sot: -1]  # rows predicting each text token and eot


def warmup() -> None:
    """Compile (or load from Numba's on-disk cache) the DTW kernels now: a fresh install's first final
    with word times paid ~2 s for them, and the caption waited."""
    dtw(np.zeros((2, 3)))


def path_starts(matrix: np.ndarray) -> np.ndarray:
    """The cheapest monotonic path through an `alignment_matrix` -> where each of its rows starts (s)."""
    text_idx, time_idx = dtw(-matrix)
    jumps = np.pad(np.diff(text_idx), (1, 0), constant_values=1).astype(bool)
    return time_idx[jumps] * TIME_PRECISION_S


def timed_words(tokenizer: WhisperTokenizer, text_tokens: Sequence[int], starts: np.ndarray,
                token_logprobs: Sequence[float] | None, language: str | None) -> list[TokenWord]:
    """Words of `text_tokens` timed by `token_starts` (one start per token, then the end of the text)."""
    words, word_tokens = tokenizer.split_words(text_tokens, language)
    if not words:
        return []
    boundaries = np.pad(np.cumsum([len(t) for t in word_tokens]), (1, 0))
    word_starts = starts[boundaries[:-1]]
    ends = starts[np.minimum(boundaries[1:], len(starts) - 1)]
    probs = None if token_logprobs is None else np.exp(np.asarray(token_logprobs, dtype=np.float64))
    out = []
    for k, (text, toks) in enumerate(zip(words, word_tokens, strict=True)):
        lo, hi = int(boundaries[k]), int(boundaries[k + 1])
        p = float(probs[lo:hi].mean()) if probs is not None and hi <= len(probs) and hi > lo else 1.0
        out.append(TokenWord(text, tuple(toks), float(word_starts[k]), float(ends[k]), p))
    return _clip_long_words(_merge_punctuation(out))


def timed_row(tokenizer: WhisperTokenizer, row: Sequence[int]) -> tuple[list[int], np.ndarray, bool] | None:
    """A batching engine's timed row (each text token after the timestamp token of where it starts, one for
    where the text ends, then end-of-text if the decoder ended the text itself: `BatchedWhisper.timed`) ->
    (text tokens, `token_starts`, whether the decoder ended the text); None for a row without times."""
    ended = bool(row) and row[-1] == tokenizer.eot
    row = row[:-1] if ended else row
    tb = tokenizer.timestamp_begin
    times, text = list(row[0::2]), list(row[1::2])
    if not text or len(times) != len(text) + 1 or min(times) < tb or max(text) >= tokenizer.eot:
        return None
    return text, np.array([tokenizer.timestamp_s(t) for t in times]), ended


def timed_row_words(tokenizer: WhisperTokenizer, row: Sequence[int]) -> TimedWords | None:
    """Words with times (s from the window's start) of a timed row; None if the row has no times. A row of
    just end-of-text is a final the decoder ended with no words."""
    if list(row) == [tokenizer.eot]:
        return TimedWords([], True)
    timed = timed_row(tokenizer, row)
    if timed is None:
        return None
    text, starts, ended = timed
    return TimedWords(to_words(timed_words(tokenizer, text, starts, None, None)), ended)


@dataclass(frozen=True)
class TimedWords:
    """A final's words as the engine aligned them."""

    words: list[Word]
    ended: bool
    """The decoder ended the text itself (False: its token budget did, which a decoding loop runs into)."""


def _merge_punctuation(words: list[TokenWord]) -> list[TokenWord]:
    """Attach opening punctuation to the next word and closing punctuation to the previous one."""
    merged: list[TokenWord] = []
    pending: TokenWord | None = None
    for w in words:
        if pending is not None:
            w = TokenWord(pending.text + w.text, pending.tokens + w.tokens, w.start_s, w.end_s, w.probability)
            pending = None
        stripped = w.text.strip()
        if stripped and all(c in PREPEND_PUNCTUATION for c in stripped) and w.text.startswith(" "):
            pending = w
        elif merged and stripped and all(c in APPEND_PUNCTUATION for c in stripped) and not w.text.startswith(" "):
            prev = merged[-1]
            merged[-1] = TokenWord(prev.text + w.text, prev.tokens + w.tokens, prev.start_s, prev.end_s,
                                   prev.probability)
        else:
            merged.append(w)
    if pending is not None:
        merged.append(pending)
    return merged


def _clip_long_words(words: list[TokenWord]) -> list[TokenWord]:
    """Attention often smears the word before a pause over the pause: cap durations at 2x the median word
    duration (capped at 0.7 s) for words around sentence ends and at the segment edges, or at 2x the median
    duration per token times the word's tokens where that is longer: a spelled string that is one word of
    many tokens ("GFTU1332.", 3.5 s of letters) keeps its length instead of ending seconds early."""
    spoken = [(w.end_s - w.start_s, _n_spoken(w)) for w in words]
    per_word = np.array([d for d, _ in spoken if d > 0])
    per_token = np.array([d / n for d, n in spoken if d > 0])
    if not len(per_word):
        return words
    word_s, token_s = min(0.7, float(np.median(per_word))), min(0.7, float(np.median(per_token)))
    out = list(words)
    for k, w in enumerate(out):
        max_s = 2 * max(word_s, token_s * spoken[k][1])
        sentence_end = w.text.strip()[-1:] in ".。!！?？"
        if w.end_s - w.start_s > max_s and (sentence_end or k == len(out) - 1):
            out[k] = TokenWord(w.text, w.tokens, w.start_s, w.start_s + max_s, w.probability)
        elif w.end_s - w.start_s > max_s and k == 0:
            out[k] = TokenWord(w.text, w.tokens, max(0.0, w.end_s - max_s), w.end_s, w.probability)
    return out


def _n_spoken(word: TokenWord) -> int:
    """Tokens of a word that are spoken: all but a trailing punctuation mark merged into it."""
    n = len(word.tokens)
    return max(1, n - 1) if word.text.strip()[-1:] in APPEND_PUNCTUATION and n > 1 else max(1, n)


def to_words(words: Sequence[TokenWord], offset_s: float = 0.0) -> list[Word]:
    return [Word(w.text, w.start_s + offset_s, w.end_s + offset_s, w.probability) for w in words]
