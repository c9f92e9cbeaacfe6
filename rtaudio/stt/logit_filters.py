"""Rules applied to next-token logits before choosing: suppressions and Whisper's timestamp grammar.

Each filter edits `logits` (B, V) float32 in place given the tokens sampled so far (one list per
row, without the prompt / start sequence). Whisper's timestamp grammar: timestamps come in pairs
(end of one segment, start of the next) except at the very end, never decrease, the first token
is a timestamp no later than `max_initial_timestamp`, and a timestamp is forced whenever the total
probability of timestamps beats every single text token.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from rtaudio.stt.tokenizer import WhisperTokenizer

NEG_INF = -np.inf


class LogitFilter(Protocol):
    def apply(self, logits: np.ndarray, sampled: Sequence[Sequence[int]]) -> None: ...


def logsumexp(x: np.ndarray) -> np.ndarray:
    """Row-wise log(sum(exp(x))) of (B, V) -> (B,) float32: the log-softmax normaliser, so a token's
    log-probability is `x[k, t] - logsumexp(x)[k]` without materialising a (B, V) log-softmax."""
    m = np.max(x, axis=-1)
    m = np.where(np.isfinite(m), m, np.float32(0.0))
    with np.errstate(divide="ignore"):  # an all -inf row gives -inf
        return m + np.log(np.sum(np.exp(x - m[:, None]), axis=-1))


def log_softmax(x: np.ndarray) -> np.ndarray:
    """Row-wise log softmax (rows of -inf stay -inf)."""
    return x - logsumexp(x)[:, None]


class SuppressTokens:
    """Never emit the given ids (non-speech symbols and control tokens)."""

    def __init__(self, ids: Sequence[int]) -> None:
        self.ids = np.array(sorted(set(ids)), dtype=np.int64)

    def apply(self, logits: np.ndarray, sampled: Sequence[Sequence[int]]) -> None:
        logits[:, self.ids] = NEG_INF


class SuppressBlank:
    """At the first sampled position, forbid a lone space and end-of-text (an empty transcript)."""

    def __init__(self, ids: Sequence[int]) -> None:
        self.ids = np.array(sorted(set(ids)), dtype=np.int64)

    def apply(self, logits: np.ndarray, sampled: Sequence[Sequence[int]]) -> None:
        if sampled and len(sampled[0]) == 0:
            logits[:, self.ids] = NEG_INF


class TimestampRules:
    """Whisper's timestamp grammar, plus: no timestamp beyond `max_timestamp_s` (the window length)."""

    def __init__(self, tokenizer: WhisperTokenizer, max_initial_timestamp_s: float | None,
                 max_timestamp_s: float) -> None:
        self.tok = tokenizer
        self.max_initial = None if max_initial_timestamp_s is None else tokenizer.timestamp(max_initial_timestamp_s)
        self.last_allowed = tokenizer.timestamp(max_timestamp_s)

    def apply(self, logits: np.ndarray, sampled: Sequence[Sequence[int]]) -> None:
        tb, eot = self.tok.timestamp_begin, self.tok.eot
        logits[:, self.tok.no_timestamps] = NEG_INF
        logits[:, self.last_allowed + 1:] = NEG_INF
        for k, seq in enumerate(sampled):
            last_ts = len(seq) >= 1 and seq[-1] >= tb
            penultimate_ts = len(seq) < 2 or seq[-2] >= tb
            if last_ts:
                if penultimate_ts:  # a pair closed: text (or end) must follow
                    logits[k, tb:] = NEG_INF
                else:  # a single timestamp opens a pair: timestamp or end must follow
                    logits[k, :eot] = NEG_INF
            stamps = [t for t in seq if t >= tb]
            if stamps:
                # a closing timestamp may repeat the opening one; otherwise strictly increase
                floor = stamps[-1] if last_ts and not penultimate_ts else stamps[-1] + 1
                logits[k, tb:floor] = NEG_INF
            if len(seq) == 0:
                logits[k, :tb] = NEG_INF
                if self.max_initial is not None:
                    logits[k, self.max_initial + 1:] = NEG_INF
        # P(any timestamp) > P(best text token): the softmax normaliser cancels on both sides
        ts_mass = logsumexp(logits[:, tb:])
        best_text = np.max(logits[:, :tb], axis=-1)
        logits[ts_mass > best_text, :tb] = NEG_INF
