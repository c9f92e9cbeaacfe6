"""Decode one audio window: prompt prefill, language detection, greedy / sampling / beam search.

The searches run the decoder step for all hypotheses of a window as one batch; the cross-attention
K/V of the window (batch 1) broadcast over it, and the self-attention cache is reordered when beams
are reordered.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rtaudio.errors import ConfigError
from rtaudio.stt.logit_filters import (
    LogitFilter,
    SuppressBlank,
    SuppressTokens,
    TimestampRules,
    log_softmax,
    logsumexp,
)
from rtaudio.stt.onnx_whisper import WhisperBackend, empty_cache
from rtaudio.stt.tokenizer import TASKS, WhisperTokenizer

MAX_TOKENS_PER_S = 15.0  # fast speech is ~4 words/s ~ 6 tokens/s, plus timestamp tokens
MIN_TOKENS = 16
LOOP_MIN_TOKENS = 3  # shorter repeats ("no, no, no", "words words words") are normal speech


@dataclass(frozen=True)
class DecodeOptions:
    """How to decode a window. Defaults follow Whisper's (and faster-whisper's) transcribe."""

    task: str = "transcribe"
    """"transcribe" or "translate" (to English; multilingual models only)."""
    language: str | None = None
    """ISO code such as "en"; None detects it (multilingual) or means English (".en" models)."""
    beam_size: int = 5
    """1 = greedy. Used at temperature 0; sampling temperatures draw `best_of` candidates."""
    best_of: int = 5
    patience: float = 1.0
    length_penalty: float | None = None
    """None ranks finished beams by mean log-probability; else by sum / ((5 + n) / 6) ** penalty."""
    temperatures: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    """Tried in order while a result looks like a repetition loop or is too improbable."""
    compression_ratio_threshold: float | None = 2.4
    """Text that gzip compresses more than this is a repetition loop: retry hotter."""
    repetition_fallback: bool = True
    """A phrase of 3+ tokens said 3 times running (the last time maybe cut short) is a decoding loop,
    typically where a window ends in mid-speech, too short for the compression ratio to notice:
    retry hotter."""
    logprob_threshold: float | None = -1.0
    """Mean token log-probability below this: retry hotter."""
    no_speech_threshold: float | None = 0.6
    """P(<|nocaptions|>) above this (with a mean log-probability below `logprob_threshold`) = silence."""
    no_speech_only_threshold: float | None = 0.85
    """P(<|nocaptions|>) above this = silence whatever the text's probability: Whisper's confident
    "You" / "Thank you." on noise and hum. None = Whisper's rule alone."""
    timestamps: bool = True
    """Predict segment timestamp tokens (needed for long-form seeking and segment times)."""
    max_initial_timestamp_s: float | None = 1.0
    word_timestamps: bool = False
    """Per-word times from cross-attention alignment heads + DTW."""
    suppress_blank: bool = True
    suppress_ids: tuple[int, ...] | None = None
    """None = the model's list of non-speech symbols."""
    hotwords: str | None = None
    """Words to favour, given as a prompt prefix (used when no other prompt is set)."""
    max_new_tokens: int | None = None
    """Cap on sampled tokens; None = half the text context (224)."""
    condition_on_previous_text: bool = True
    """Long-form: prompt each window with the previous window's text."""
    prompt_reset_on_temperature: float = 0.5
    """Long-form: drop the carried prompt after a window decoded above this temperature."""
    seed: int = 0
    """Random generator seed for temperature sampling (reproducible fallback)."""

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.beam_size < 1 or self.best_of < 1:
            raise ConfigError("beam_size and best_of must be >= 1")
        if self.patience <= 0:
            raise ConfigError("patience must be > 0")
        if not self.temperatures or any(t < 0 for t in self.temperatures):
            raise ConfigError("temperatures must be a non-empty tuple of values >= 0")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ConfigError("max_new_tokens must be >= 1")


@dataclass(frozen=True)
class Hypothesis:
    """One decoded token sequence of a window (sampled tokens only: no prompt, no end token)."""

    tokens: tuple[int, ...]
    token_logprobs: tuple[float, ...]
    sum_logprob: float
    text: str
    avg_logprob: float
    compression_ratio: float
    temperature: float
    no_speech_prob: float
    language: str | None
    language_probs: dict[str, float] = field(default_factory=dict)


def has_repetition_loop(tokens: Sequence[int], min_tokens: int = LOOP_MIN_TOKENS, max_tokens: int = 24) -> bool:
    """True if some span of `min_tokens`..`max_tokens` tokens occurs twice in a row and then a third
    time (all but its last token: a loop often ends with "." where the repeats had ",")."""
    seq = list(tokens)
    n = len(seq)
    for k in range(min_tokens, min(max_tokens, n // 3 + 1) + 1):
        for i in range(n - 3 * k + 2):
            first = seq[i: i + k]
            if seq[i + k: i + 2 * k] == first and seq[i + 2 * k: i + 3 * k - 1] == first[:-1]:
                return True
    return False


def trim_loop(tokens: Sequence[int], copies: tuple[int, int, int] = (4, 3, 2), max_tokens: int = 24) -> list[int]:
    """Cut the first repetition loop: where a span of k tokens comes back to back more than
    `copies[min(k, 3) - 1]` times, keep that many copies and drop everything after (a loop runs to
    the end of the window). "word word word word" survives; a fifth "word" starts the cut."""
    seq = list(tokens)
    n = len(seq)
    for i in range(n):
        for k in range(1, max_tokens + 1):
            keep = copies[min(k, 3) - 1]
            if i + (keep + 1) * k > n:
                break
            span = seq[i: i + k]
            if all(seq[i + j * k: i + (j + 1) * k] == span for j in range(1, keep + 1)):
                return seq[: i + keep * k]
    return seq


def compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def _sample_rows(logits: np.ndarray, temperature: float, rng: np.random.Generator) -> np.ndarray:
    """One token per row from softmax(logits / temperature), by inverse CDF (vectorised)."""
    x = logits / np.float32(temperature)
    p = np.exp(x - np.max(x, axis=-1, keepdims=True))
    cdf = np.cumsum(p, axis=-1)
    u = rng.random(len(cdf)) * cdf[:, -1]
    return np.minimum((cdf < u[:, None]).sum(axis=-1), logits.shape[-1] - 1)


@dataclass
class _Beam:
    tokens: list[int]
    logprobs: list[float]
    score: float


class WindowDecoder:
    """Decodes one window's cross K/V into a Hypothesis, with temperature fallback."""

    def __init__(self, backend: WhisperBackend, tokenizer: WhisperTokenizer) -> None:
        self.backend = backend
        self.tok = tokenizer
        info = backend.info
        self.dims = info.dims
        self.default_suppress = tuple(info.suppress_ids)
        self.blank_ids = tuple(info.suppress_ids_begin) or (tokenizer.encode(" ")[0], tokenizer.eot)

    # -- public ------------------------------------------------------------------------------
    def detect_language(self, cross: list[np.ndarray]) -> dict[str, float]:
        """P(language) from the logits after <|startoftranscript|> (multilingual models)."""
        if not self.tok.multilingual:
            return {"en": 1.0}
        logits, _, _ = self.backend.step(np.array([[self.tok.sot]], np.int64), empty_cache(self.dims, 1), cross)
        codes = list(self.tok.language_ids)
        ids = np.array([self.tok.language_ids[c] for c in codes])
        p = np.exp(log_softmax(logits[0, ids][None])[0])
        return dict(sorted(zip(codes, p.tolist(), strict=True), key=lambda kv: -kv[1]))

    def decode(self, cross: list[np.ndarray], options: DecodeOptions, prompt_tokens: Sequence[int] = (),
               window_s: float = 30.0, content_s: float = 30.0) -> Hypothesis:
        """Decode with temperature fallback; `prompt_tokens` are previous text (no special tokens).
        `window_s` is the encoded length (timestamps stop there), `content_s` the audio in it (it
        caps the tokens at MAX_TOKENS_PER_S, which bounds the cost of a repetition loop)."""
        language, language_probs = options.language, {}
        if language is None and self.tok.multilingual:
            language_probs = self.detect_language(cross)
            language = next(iter(language_probs))
        elif language is None:
            language = "en"
        tried: list[Hypothesis] = []
        for i, temperature in enumerate(options.temperatures):
            result = self._decode_at(cross, options, prompt_tokens, window_s, content_s, language, temperature,
                                     np.random.default_rng(options.seed + i))
            if not self._needs_fallback(result, options):
                return dataclasses.replace(result, language_probs=language_probs)
            tried.append(result)
        # every temperature failed: the likeliest result that is not a loop, else the likeliest, cut short
        sane = [h for h in tried if not self._is_loop(h, options)]
        best = max(sane or tried, key=lambda h: h.avg_logprob)
        if not sane:
            best = self._trimmed(best)
        return dataclasses.replace(best, language_probs=language_probs)

    def _trimmed(self, h: Hypothesis) -> Hypothesis:
        """The hypothesis with its repetition loop cut (see `trim_loop`)."""
        tokens = trim_loop(h.tokens)
        logprobs = h.token_logprobs[: len(tokens)]
        text = self.tok.decode(tokens).strip()
        return dataclasses.replace(h, tokens=tuple(tokens), token_logprobs=logprobs, sum_logprob=sum(logprobs),
                                   text=text, avg_logprob=sum(logprobs) / (len(tokens) + 1),
                                   compression_ratio=compression_ratio(text))

    def initial_tokens(self, options: DecodeOptions, prompt_tokens: Sequence[int],
                       language: str | None) -> tuple[list[int], list[int]]:
        """(prefix ending at <|startoftranscript|>, the rest of the start sequence)."""
        prefix: list[int] = []
        prompt = list(prompt_tokens)
        if options.hotwords and not prompt:
            prompt = self.tok.encode(" " + options.hotwords.strip())
        if prompt:
            prefix = [self.tok.sot_prev, *prompt[-(self.dims.n_text_ctx // 2 - 1):]]
        sot_seq = self.tok.sot_sequence(language, options.task)
        rest = sot_seq[1:] + ([] if options.timestamps else [self.tok.no_timestamps])
        return prefix + sot_seq[:1], rest

    # -- internals ---------------------------------------------------------------------------
    def _needs_fallback(self, h: Hypothesis, options: DecodeOptions) -> bool:
        improbable = options.logprob_threshold is not None and h.avg_logprob < options.logprob_threshold
        silent = (options.no_speech_threshold is not None and h.no_speech_prob > options.no_speech_threshold
                  and improbable)  # silence: a low probability is expected, nothing to retry
        return (improbable or self._is_loop(h, options)) and not silent

    def _is_loop(self, h: Hypothesis, options: DecodeOptions) -> bool:
        if options.compression_ratio_threshold is not None and h.compression_ratio > options.compression_ratio_threshold:
            return True
        return options.repetition_fallback and has_repetition_loop([t for t in h.tokens if t < self.tok.eot])

    def _filters(self, options: DecodeOptions, window_s: float) -> list[LogitFilter]:
        t = self.tok
        suppress = set(self.default_suppress if options.suppress_ids is None else options.suppress_ids)
        suppress |= {t.sot, t.sot_prev, t.sot_lm, t.translate, t.transcribe, t.no_speech}
        suppress |= set(t.language_ids.values())
        if not options.timestamps:
            suppress |= set(range(t.timestamp_begin, self.dims.n_vocab))
        filters: list[LogitFilter] = [SuppressTokens(sorted(suppress))]
        if options.suppress_blank:
            filters.insert(0, SuppressBlank(self.blank_ids))
        if options.timestamps:
            filters.append(TimestampRules(t, options.max_initial_timestamp_s, min(window_s, 30.0)))
        return filters

    def _decode_at(self, cross: list[np.ndarray], options: DecodeOptions, prompt_tokens: Sequence[int],
                   window_s: float, content_s: float, language: str | None, temperature: float,
                   rng: np.random.Generator) -> Hypothesis:
        prefix, rest = self.initial_tokens(options, prompt_tokens, language)
        logits, cache, _ = self.backend.step(np.array([prefix], np.int64), empty_cache(self.dims, 1), cross)
        no_speech_prob = float(np.exp(log_softmax(logits[:1])[0, self.tok.no_speech]))
        if rest:
            logits, cache, _ = self.backend.step(np.array([rest], np.int64), cache, cross)
        n_ctx_left = self.dims.n_text_ctx - len(prefix) - len(rest)
        max_new = min(options.max_new_tokens or self.dims.n_text_ctx // 2, n_ctx_left,
                      MIN_TOKENS + math.ceil(MAX_TOKENS_PER_S * content_s))
        filters = self._filters(options, window_s)
        if temperature == 0 and options.beam_size > 1:
            beams = self._beam_search(logits, cache, cross, filters, max_new, options)
        else:
            n = 1 if temperature == 0 else options.best_of
            beams = self._sample(logits, cache, cross, filters, max_new, temperature, n, rng)
        best = max(beams, key=lambda b: self._rank(b, options.length_penalty))
        text = self.tok.decode(best.tokens).strip()
        return Hypothesis(
            tokens=tuple(best.tokens), token_logprobs=tuple(best.logprobs), sum_logprob=best.score, text=text,
            avg_logprob=best.score / (len(best.tokens) + 1), compression_ratio=compression_ratio(text),
            temperature=temperature, no_speech_prob=no_speech_prob, language=language,
        )

    @staticmethod
    def _rank(beam: _Beam, length_penalty: float | None) -> float:
        n = max(1, len(beam.tokens))  # sampled tokens, end token excluded (as Whisper's ranker)
        penalty = n if length_penalty is None else ((5 + n) / 6) ** length_penalty
        return beam.score / penalty

    def _sample(self, logits: np.ndarray, cache: list[np.ndarray], cross: list[np.ndarray],
                filters: list[LogitFilter], max_new: int, temperature: float, n: int,
                rng: np.random.Generator) -> list[_Beam]:
        """Greedy (temperature 0) or `n` independent samples, batched."""
        cache = [np.repeat(c, n, axis=0) for c in cache]
        logits = np.repeat(logits, n, axis=0)
        beams = [_Beam([], [], 0.0) for _ in range(n)]
        done = np.zeros(n, bool)
        for _ in range(max_new):
            for f in filters:
                f.apply(logits, [b.tokens for b in beams])
            lse = logsumexp(logits)
            if temperature == 0:
                chosen = np.argmax(logits, axis=-1)
            else:
                chosen = _sample_rows(logits, temperature, rng)
            for k, b in enumerate(beams):
                if done[k]:
                    continue
                token = int(chosen[k])
                lp = float(logits[k, token] - lse[k])
                b.score += lp
                if token == self.tok.eot:
                    done[k] = True
                else:
                    b.tokens.append(token)
                    b.logprobs.append(lp)
            if done.all():
                break
            last = np.array([[b.tokens[-1] if b.tokens else self.tok.eot] for b in beams], np.int64)
            logits, cache, _ = self.backend.step(last, cache, cross)
        return beams

    def _beam_search(self, logits: np.ndarray, cache: list[np.ndarray], cross: list[np.ndarray],
                     filters: list[LogitFilter], max_new: int, options: DecodeOptions) -> list[_Beam]:
        size = options.beam_size
        max_finished = max(1, round(size * options.patience))
        beams = [_Beam([], [], 0.0)]
        finished: list[_Beam] = []
        for _ in range(max_new):
            for f in filters:
                f.apply(logits, [b.tokens for b in beams])
            lse = logsumexp(logits)
            candidates: list[tuple[float, int, int, float]] = []
            for k, b in enumerate(beams):
                top = np.argpartition(-logits[k], size)[: size + 1]
                lps = logits[k, top] - lse[k]
                candidates += [(b.score + float(lp), k, int(t), float(lp)) for t, lp in zip(top, lps, strict=True)]
            candidates.sort(key=lambda c: -c[0])
            new_beams: list[_Beam] = []
            sources: list[int] = []
            for score, k, token, lp in candidates:
                if token == self.tok.eot:
                    if len(finished) < max_finished:
                        finished.append(_Beam(beams[k].tokens, beams[k].logprobs, score))
                    continue
                new_beams.append(_Beam(beams[k].tokens + [token], beams[k].logprobs + [lp], score))
                sources.append(k)
                if len(new_beams) == size:
                    break
            if len(finished) >= max_finished or not new_beams:
                break
            beams = new_beams
            idx = np.array(sources)
            cache = [c[idx] for c in cache]
            last = np.array([[b.tokens[-1]] for b in beams], np.int64)
            logits, cache, _ = self.backend.step(last, cache, cross)
        return finished or beams
