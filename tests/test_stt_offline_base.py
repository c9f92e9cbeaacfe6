"""The multilingual base model: language detection, forced language, translate task, special ids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from rtaudio.errors import ConfigError, ModelNotFetchedError
from rtaudio.stt.decoding import DecodeOptions
from rtaudio.stt.recognizer import WhisperRecognizer
from rtaudio.stt.textnorm import normalize_english

GREEDY = DecodeOptions(beam_size=1, temperatures=(0.0,))


@pytest.fixture(scope="module")
def base() -> WhisperRecognizer:
    try:
        return WhisperRecognizer.load("whisper-base")
    except ModelNotFetchedError as e:
        pytest.skip(f"{e}")


@pytest.fixture(scope="module")
def jfk(speech_dir: Path) -> np.ndarray:
    return sf.read(speech_dir / "jfk_inaugural_ask_not.flac", dtype="float32")[0]


def test_multilingual_special_tokens(base: WhisperRecognizer) -> None:
    tok = base.tokenizer
    assert tok.multilingual and base.backend.info.dims.n_vocab == 51865
    assert (tok.eot, tok.sot, tok.no_timestamps) == (50257, 50258, 50363)
    assert tok.sot_sequence("en", "transcribe") == [50258, 50259, 50359]
    assert tok.sot_sequence("de", "translate") == [50258, tok.language_ids["de"], 50358]
    assert len(tok.language_ids) >= 99
    with pytest.raises(ConfigError, match="unknown language"):
        tok.sot_sequence("xx", "transcribe")


def test_detects_english_and_transcribes(base: WhisperRecognizer, jfk: np.ndarray) -> None:
    cross = base.backend.encode(base.features(jfk))
    probs = base.decoder.detect_language(cross)
    assert next(iter(probs)) == "en" and probs["en"] > 0.5
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-3)
    result = base.transcribe_window(jfk, options=GREEDY)
    assert result.language == "en"
    assert "ask not what your country can do for you" in normalize_english(result.text)


def test_forced_language_and_translate(base: WhisperRecognizer, jfk: np.ndarray) -> None:
    french = base.transcribe_window(jfk, options=DecodeOptions(language="fr", beam_size=1, temperatures=(0.0,)))
    assert french.language == "fr"
    english_words = set(normalize_english("ask not what your country can do for you").split())
    assert len(english_words & set(normalize_english(french.text).split())) < len(english_words)
    translated = base.transcribe_window(jfk, options=DecodeOptions(language="fr", task="translate", beam_size=1,
                                                                   temperatures=(0.0,)))
    assert "country" in translated.text.lower()  # translate = into English, whatever the source language
