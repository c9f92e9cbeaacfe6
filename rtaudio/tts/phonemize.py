"""Normalized text -> per-sentence phonemes -> Piper phoneme ids, the way Piper voices were trained.

Piper's training data was phonemized with espeak-ng (IPA, voice en-us) clause by clause, each
clause followed by its punctuation: `, : ;` then a space, `. ! ?` ending the sentence. Phonemes are
split into Unicode code points (NFD, so stress marks and diacritics are separate symbols) and mapped
through the voice's `phoneme_id_map` as `^ _ p1 _ p2 _ ... pn _ $` (BOS, pad after each, EOS).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rtaudio.log import get_logger
from rtaudio.tts.espeak import EspeakLibrary

log = get_logger("tts.phonemize")

BOS, EOS, PAD = "^", "$", "_"
SENTENCE_END = ".!?"
CLAUSE_BREAK = ",;:"
_CLAUSE = re.compile(r"([^,.!?;:]*)([,.!?;:]+|$)")
_LANGUAGE_FLAG = re.compile(r"\([^)]*\)")  # espeak marks words of another language as (fr)...(en)


@dataclass(frozen=True)
class Clause:
    """A piece of a sentence up to its punctuation mark ("" for none)."""

    text: str
    punctuation: str


def split_clauses(text: str) -> list[list[Clause]]:
    """Sentences of clauses; a run of marks ('!?', '...') counts as its first mark."""
    sentences: list[list[Clause]] = []
    current: list[Clause] = []
    for m in _CLAUSE.finditer(text):
        body, marks = m.group(1).strip(), m.group(2)
        if not body and not marks:
            continue
        mark = marks[:1]
        if body:
            current.append(Clause(body, mark))
        elif current and mark in SENTENCE_END:
            current[-1] = Clause(current[-1].text, mark)  # "word, ." -> "word."
        if mark in SENTENCE_END and current:
            sentences.append(current)
            current = []
    if current:
        sentences.append(current)
    return sentences


class Phonemizer:
    """espeak-ng IPA phonemes in Piper's clause convention; thread-safe (espeak calls are serialised)."""

    def __init__(self, voice: str = "en-us", library: EspeakLibrary | None = None) -> None:
        self.voice = voice
        self.library = library or EspeakLibrary.shared()

    def clause_phonemes(self, clause: Clause) -> str:
        """Phoneme string of one clause with its punctuation (and the space after , : ;)."""
        phonemes = _LANGUAGE_FLAG.sub("", self.library.phonemes(clause.text, self.voice))
        if not phonemes:
            return ""
        tail = clause.punctuation + (" " if clause.punctuation and clause.punctuation in CLAUSE_BREAK else "")
        return phonemes + tail

    def phonemize(self, text: str) -> list[list[str]]:
        """Normalized text -> one list of phoneme symbols (NFD code points) per sentence."""
        out = []
        for sentence in split_clauses(text):
            joined = "".join(self.clause_phonemes(c) for c in sentence)
            if joined.strip():
                out.append(list(unicodedata.normalize("NFD", joined)))
        return out


def phoneme_ids(phonemes: Sequence[str], id_map: Mapping[str, Sequence[int]]) -> list[int]:
    """`^ _ p1 _ ... pn _ $` as ids; symbols missing from the voice's map are skipped (logged)."""
    ids = list(id_map[BOS]) + list(id_map[PAD])
    for p in phonemes:
        mapped = id_map.get(p)
        if mapped is None:
            log.debug("phoneme %r is not in the voice's map; skipped", p)
            continue
        ids.extend(mapped)
        ids.extend(id_map[PAD])
    ids.extend(id_map[EOS])
    return ids
