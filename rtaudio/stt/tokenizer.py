"""Whisper's byte-level BPE tokenizer with its special tokens, from a model's tokenizer.json.

English-only models (tiny.en: vocabulary 51864) and multilingual ones (base: 51865) place the
special tokens one id apart, so every id is looked up by name, never hard-coded. Timestamp tokens
follow `<|notimestamps|>`: id `timestamp_begin + i` means i * 0.02 s into the window.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

from tokenizers import Tokenizer

from rtaudio.errors import ConfigError, ModelError

TIME_PRECISION_S = 0.02
"""One timestamp token step: 2 encoder positions of 10 ms (hop 160 at 16 kHz, conv stride 2)."""

TASKS = ("transcribe", "translate")


class WhisperTokenizer:
    """Text <-> ids plus Whisper's control tokens (start of transcript, language, task, timestamps)."""

    def __init__(self, tokenizer: Tokenizer, n_vocab: int, multilingual: bool) -> None:
        self._tok = tokenizer
        self.n_vocab = n_vocab
        self.multilingual = multilingual
        self.eot = self._id("<|endoftext|>")
        self.sot = self._id("<|startoftranscript|>")
        self.translate = self._id("<|translate|>")
        self.transcribe = self._id("<|transcribe|>")
        self.sot_lm = self._id("<|startoflm|>")
        self.sot_prev = self._id("<|startofprev|>")
        self.no_speech = self._id("<|nocaptions|>")
        self.no_timestamps = self._id("<|notimestamps|>")
        self.timestamp_begin = self.no_timestamps + 1
        self.language_ids: dict[str, int] = {}
        for token_id in range(self.sot + 1, self.translate):
            token = self._tok.id_to_token(token_id)
            if token and token.startswith("<|") and token.endswith("|>"):
                self.language_ids[token[2:-2]] = token_id

    @classmethod
    def from_file(cls, path: Path, n_vocab: int) -> WhisperTokenizer:
        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as e:  # tokenizers raises a bare Exception on bad JSON
            raise ModelError(f"cannot read tokenizer {path}: {e}") from e
        # English-only vocabularies are one id shorter (no <|en|>-shift); 51865 means multilingual
        return cls(tok, n_vocab, multilingual=n_vocab >= 51865)

    def _id(self, token: str) -> int:
        token_id = self._tok.token_to_id(token)
        if token_id is None:
            raise ModelError(f"tokenizer has no special token {token}")
        return int(token_id)

    # -- text --------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=False).ids)

    def decode(self, tokens: Sequence[int]) -> str:
        """Text of the ordinary tokens (special and timestamp tokens are dropped)."""
        return str(self._tok.decode([t for t in tokens if t < self.eot], skip_special_tokens=False))

    def token_text(self, token: int) -> str:
        return self.decode([token])

    # -- control sequences -------------------------------------------------------------------
    def language_id(self, language: str) -> int:
        if language not in self.language_ids:
            raise ConfigError(f"unknown language {language!r}; known: {', '.join(sorted(self.language_ids))}")
        return self.language_ids[language]

    def sot_sequence(self, language: str | None, task: str) -> list[int]:
        """<|startoftranscript|> [<|lang|> <|task|>]: English-only models take no language or task."""
        if task not in TASKS:
            raise ConfigError(f"task must be one of {TASKS}, got {task!r}")
        if not self.multilingual:
            if task != "transcribe":
                raise ConfigError("this model is English-only: it cannot translate; use a multilingual model")
            if language not in (None, "en"):
                raise ConfigError(f"this model is English-only; it cannot transcribe language {language!r}")
            return [self.sot]
        lang = self.language_id(language or "en")
        return [self.sot, lang, self.translate if task == "translate" else self.transcribe]

    def timestamp(self, seconds: float) -> int:
        return self.timestamp_begin + round(seconds / TIME_PRECISION_S)

    def timestamp_s(self, token: int) -> float:
        return (token - self.timestamp_begin) * TIME_PRECISION_S

    # -- word splitting for word timestamps ---------------------------------------------------
    @cached_property
    def _punctuation(self) -> frozenset[str]:
        return frozenset(string.punctuation) | frozenset("¿¡«»“”‘’…—–")

    def split_words(self, tokens: Sequence[int], language: str | None = None,
                    ) -> tuple[list[str], list[list[int]]]:
        """Group ordinary tokens into words: a token opening with a space (or being punctuation)
        starts a new word; languages without spaces get one word per decodable unicode chunk."""
        units, unit_tokens = self._split_unicode(tokens)
        if language not in NO_SPACE_LANGUAGES:
            words: list[str] = []
            word_tokens: list[list[int]] = []
            for text, toks in zip(units, unit_tokens, strict=True):
                starts_word = text.startswith(" ") or text.strip() in self._punctuation or not words
                if starts_word:
                    words.append(text)
                    word_tokens.append(list(toks))
                else:
                    words[-1] += text
                    word_tokens[-1].extend(toks)
            return words, word_tokens
        return units, unit_tokens

    def _split_unicode(self, tokens: Sequence[int]) -> tuple[list[str], list[list[int]]]:
        """Cut the token list where the decoded text is valid UTF-8 (multi-byte characters span tokens)."""
        units: list[str] = []
        unit_tokens: list[list[int]] = []
        current: list[int] = []
        for t in tokens:
            if t >= self.eot:
                continue
            current.append(t)
            text = self.decode(current)
            if "\ufffd" not in text:
                units.append(text)
                unit_tokens.append(current)
                current = []
        return units, unit_tokens


NO_SPACE_LANGUAGES = frozenset({"zh", "ja", "th", "lo", "my", "yue"})
