"""Phonemes and phoneme ids must be what the Piper voice was trained on (espeak-ng via piper-phonemize).

The golden strings below are piper-phonemize 1.1.0's output (the phonemizer of Piper's training
recipe), recorded once; when piper-phonemize / piper-tts are installed as peers the whole sentence
list is compared live as well.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rtaudio.errors import ToolMissingError
from rtaudio.tts.normalize import normalize_text
from rtaudio.tts.phonemize import Clause, Phonemizer, phoneme_ids, split_clauses

SENTENCES = Path(__file__).parent / "data" / "tts_sentences.txt"

try:
    PHONEMIZER: Phonemizer | None = Phonemizer()
except ToolMissingError as e:  # pragma: no cover - depends on the machine
    PHONEMIZER, MISSING = None, str(e)
needs_espeak = pytest.mark.skipif(PHONEMIZER is None, reason="espeak-ng is not installed (apt-get install espeak-ng)")


def sentences() -> list[str]:
    return [line.strip() for line in SENTENCES.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")]


def test_split_clauses() -> None:
    assert split_clauses("Hello, world! How are you? The end") == [
        [Clause("Hello", ","), Clause("world", "!")], [Clause("How are you", "?")], [Clause("The end", "")]]
    assert split_clauses("Wait!? Yes; no: maybe, .") == [
        [Clause("Wait", "!")], [Clause("Yes", ";"), Clause("no", ":"), Clause("maybe", ".")]]
    assert split_clauses("  ") == []


@needs_espeak
@pytest.mark.parametrize(("text", "expected"), [
    ("Hello, world! How are you today? The end", ["həlˈoʊ, wˈɜːld!", "hˌaʊ ɑːɹ juː tədˈeɪ?", "ðɪ ˈɛnd"]),
    ("Four more floors; then: nothing.", ["fˈoːɹ mˈoːɹ flˈoːɹz; ðˈɛn: nˈʌθɪŋ."]),
    ("Doctor Lee paid five dollars and fifty cents on March fourth, twenty twenty-one at ten thirty AM.",
     ["dˈɑːktɚ lˈiː pˈeɪd fˈaɪv dˈɑːlɚz ænd fˈɪfti sˈɛnts ˌɔn mˈɑːɹtʃ fˈoːɹθ, twˈɛnti twˈɛntiwˈʌn æt tˈɛn "
      "θˈɜːɾi ˌeɪˈɛm."]),
])
def test_phonemes_match_piper_training_phonemizer(text: str, expected: list[str]) -> None:
    assert PHONEMIZER is not None
    assert ["".join(s) for s in PHONEMIZER.phonemize(text)] == expected


def test_phoneme_ids_convention() -> None:
    id_map = {"_": [0], "^": [1], "$": [2], " ": [3], "a": [14], "b": [15], ",": [8]}
    assert phoneme_ids(["a", " ", "b", ","], id_map) == [1, 0, 14, 0, 3, 0, 15, 0, 8, 0, 2]
    assert phoneme_ids(["a", "?", "b"], id_map) == [1, 0, 14, 0, 15, 0, 2]  # unknown symbol skipped


@needs_espeak
def test_all_sentences_match_piper_phonemize_peer() -> None:
    pp = pytest.importorskip("piper_phonemize", reason="peer piper-phonemize (GPL, tests only) not installed")
    assert PHONEMIZER is not None
    for raw in sentences():
        text = normalize_text(raw)
        assert PHONEMIZER.phonemize(text) == pp.phonemize_espeak(text, "en-us"), raw


@needs_espeak
def test_ids_match_piper_tts_peer(voice_json: dict) -> None:
    piper_ids = pytest.importorskip("piper.phoneme_ids", reason="peer piper-tts (GPL, tests only) not installed")
    assert PHONEMIZER is not None
    id_map = voice_json["phoneme_id_map"]
    for raw in sentences()[:40]:
        for phonemes in PHONEMIZER.phonemize(normalize_text(raw)):
            assert phoneme_ids(phonemes, id_map) == piper_ids.phonemes_to_ids(phonemes, id_map)


@pytest.fixture(scope="module")
def voice_json() -> dict:
    from rtaudio.errors import ModelError
    from rtaudio.modelstore import model_dir

    try:
        return json.loads((model_dir("piper-joe") / "voice.json").read_text(encoding="utf-8"))
    except ModelError as e:
        pytest.skip(f"piper-joe not fetched ({e}); run `rtaudio models fetch piper-joe`")
