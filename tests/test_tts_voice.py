"""The streaming Piper voice on the real piper-joe model: chunking, determinism, controls, errors."""

from __future__ import annotations

import numpy as np
import pytest

from rtaudio.errors import ConfigError, ModelError, TextError, ToolMissingError, UnknownModelError
from rtaudio.tts.config import ChunkSchedule, SynthesisConfig
from rtaudio.tts.voice import PiperVoice

EXACT = SynthesisConfig(noise_scale=0.0, noise_w=0.0)
CLICK_SPIKINESS = 10.0  # real HiFi-GAN output never exceeds ~8.5 on this measure


@pytest.fixture(scope="module")
def voice() -> PiperVoice:
    try:
        return PiperVoice.load("piper-joe")
    except (ModelError, ToolMissingError) as e:
        pytest.skip(f"voice unavailable: {e} (run `rtaudio models fetch piper-joe`, apt-get install espeak-ng)")


def spikiness(x: np.ndarray, rate_hz: int = 22050, window_ms: float = 5.0) -> np.ndarray:
    """|second difference| over its RMS in the surrounding +-5 ms (the 7 samples around it excluded).

    A click - a step or impulse - is broadband and instantaneous, so it stands out of its
    neighbourhood in the second difference; speech, however loud or hissy, does not.
    """
    d2 = np.diff(x.astype(np.float64), 2)
    half = int(rate_hz * window_ms / 1000)
    e = d2**2
    c = np.cumsum(np.pad(e, (half + 1, half)))
    around = c[2 * half + 1:] - c[:-2 * half - 1] - np.convolve(e, np.ones(7), "same")
    rms = np.sqrt(np.maximum(around, 0.0) / (2 * half + 1 - 7))
    return np.abs(d2) / (rms + 1e-4)


def snr_db(ref: np.ndarray, x: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / max(np.sum((ref - x).astype(np.float64) ** 2),
                                                                           1e-30)))


def render(voice: PiperVoice, text: str, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    cfg = SynthesisConfig(seed=seed)
    (utt,) = voice.utterances(text, cfg)
    z_p = voice.latents(utt.ids, cfg, np.random.default_rng(seed))
    return list(voice.vocoder.render(z_p)), voice.decode_whole(z_p)


@pytest.mark.parametrize("text", ["Please call me back when you get this message.",
                                  "She sells sea shells by the sea shore, surely, in the summer of nineteen ninety."])
def test_chunked_matches_whole_utterance_without_clicks(voice: PiperVoice, text: str) -> None:
    chunks, whole = render(voice, text, seed=3)
    x = np.concatenate(chunks)
    assert len(chunks) >= 3
    assert len(chunks[0]) == voice.vocoder.schedule.first_chunk_frames * voice.info.hop_length
    assert x.shape == whole.shape
    assert snr_db(whole, x) > 30.0
    joins = np.cumsum([len(c) for c in chunks])[:-1]
    spiky = spikiness(x)
    peak = np.abs(whole).max()
    for j in joins:
        around = slice(j - 128, j + 128)
        assert np.abs(x[around] - whole[around]).max() < peak * 10 ** (-40 / 20), f"join at {j}"
        assert spiky[j - 4:j + 3].max() < CLICK_SPIKINESS, f"click at join {j}"
    # the detector does see a real click: a 0.03 step inside speech (peak > 0.05), where hiss is least
    voiced = [j for j in range(512, len(x) - 512, 256) if np.abs(x[j - 256:j + 256]).max() > 0.05]
    quiet = min(voiced, key=lambda j: float(np.abs(np.diff(x[j - 256:j + 256], 2)).mean()))
    stepped = x.copy()
    stepped[quiet:] += 0.03
    assert spikiness(stepped)[quiet - 4:quiet + 3].max() > CLICK_SPIKINESS


def test_chunking_converges_to_exact_with_enough_context(voice: PiperVoice) -> None:
    from rtaudio.tts.vocoder import ChunkedVocoder

    wide = ChunkedVocoder(voice.vocoder.flow, voice.vocoder.decoder, voice.info.hop_length,
                          ChunkSchedule(decoder_context_frames=16, flow_context_frames=40, crossfade_samples=0))
    narrow = ChunkedVocoder(voice.vocoder.flow, voice.vocoder.decoder, voice.info.hop_length,
                            ChunkSchedule(decoder_context_frames=2, flow_context_frames=4, crossfade_samples=0))
    (utt,) = voice.utterances("The quick brown fox jumps over the lazy dog.", EXACT)
    z_p = voice.latents(utt.ids, EXACT, np.random.default_rng(0))
    whole = voice.decode_whole(z_p)
    assert snr_db(whole, np.concatenate(list(wide.render(z_p)))) > 80.0
    assert snr_db(whole, np.concatenate(list(narrow.render(z_p)))) < 25.0  # context is what makes it work


def test_seeded_and_zero_noise_are_repeatable(voice: PiperVoice) -> None:
    text = "Hello there."
    a = voice.synthesize(text, SynthesisConfig(seed=7))
    b = voice.synthesize(text, SynthesisConfig(seed=7))
    c = voice.synthesize(text, SynthesisConfig(seed=8))
    assert np.array_equal(a, b)
    assert not (a.shape == c.shape and np.array_equal(a, c))
    assert np.array_equal(voice.synthesize(text, EXACT), voice.synthesize(text, EXACT))


def test_speed_volume_and_sentence_pause(voice: PiperVoice) -> None:
    text = "One here. Two there."
    base = voice.synthesize(text, SynthesisConfig(noise_scale=0.0, noise_w=0.0, sentence_pause_ms=0))
    fast = voice.synthesize(text, SynthesisConfig(noise_scale=0.0, noise_w=0.0, sentence_pause_ms=0, speed=1.5))
    paused = voice.synthesize(text, SynthesisConfig(noise_scale=0.0, noise_w=0.0, sentence_pause_ms=500))
    quiet = voice.synthesize(text, SynthesisConfig(noise_scale=0.0, noise_w=0.0, sentence_pause_ms=0, volume=0.5))
    assert 0.55 < len(fast) / len(base) < 0.8
    assert len(paused) - len(base) == round(0.5 * voice.sample_rate)
    assert np.allclose(quiet, base * 0.5, atol=2e-3)  # base peaks stay under the limiter knee... mostly
    assert np.abs(base).max() <= 1.0


def test_ssml_breaks_and_say_as(voice: PiperVoice) -> None:
    utts = voice.utterances('<speak>Call <say-as interpret-as="digits">911</say-as> now.<break time="700ms"/>'
                            'Then wait.</speak>', SynthesisConfig(sentence_pause_ms=50))
    assert [u.pause_after_ms for u in utts] == [700.0, 0.0]
    spoken = "".join(utts[0].phonemes)
    assert "nˈaɪn" in spoken and "wˈʌn" in spoken


def test_first_chunk_is_small_and_early(voice: PiperVoice) -> None:
    stream = voice.stream("This is a fairly long sentence that keeps going for quite a few more words than usual.",
                          SynthesisConfig(seed=1))
    first = next(stream)
    assert len(first) == voice.vocoder.schedule.first_chunk_frames * voice.info.hop_length
    rest = list(stream)
    assert sum(len(c) for c in rest) > 10 * len(first)


@pytest.mark.parametrize("text", ["", "   ", "🍎 *** ..."])
def test_nothing_to_say_is_a_text_error(voice: PiperVoice, text: str) -> None:
    with pytest.raises(TextError):
        list(voice.stream(text))


def test_bad_input_errors(voice: PiperVoice) -> None:
    with pytest.raises(TextError, match="cannot speak"):
        voice.synthesize("Hello 世界")
    with pytest.raises(TextError, match="SSML"):
        voice.synthesize("<speak>unclosed <break time='1s'></speak>")
    with pytest.raises(UnknownModelError, match="unknown voice"):
        PiperVoice.load("no-such-voice")
    with pytest.raises(UnknownModelError, match="not a voice"):
        PiperVoice.load("whisper-tiny.en")
    with pytest.raises(ConfigError):
        SynthesisConfig(speed=0)
    with pytest.raises(ConfigError):
        ChunkSchedule(first_chunk_frames=0)


def test_speech_is_intelligible(voice: PiperVoice) -> None:
    """Round trip through our own recognizer: the words come back."""
    from rtaudio.dsp.resample import resample
    from rtaudio.stt.recognizer import WhisperRecognizer
    from rtaudio.stt.textnorm import normalize_english

    try:
        rec = WhisperRecognizer.load("whisper-tiny.en")
    except ModelError as e:
        pytest.skip(f"whisper-tiny.en not fetched: {e}")
    text = "The train to Boston leaves at 9:15 from platform 4."
    audio = resample(voice.synthesize(text, SynthesisConfig(seed=0)), voice.sample_rate, 16000)
    heard = normalize_english(rec.transcribe_window(audio).text).split()
    want = normalize_english(text).split()
    assert len(set(want) & set(heard)) >= len(want) - 2, heard


def test_long_first_sentence_starts_with_its_first_clause(voice: PiperVoice) -> None:
    text = ("Although the weather had been unpredictable for most of the week, the organizers decided to hold the "
            "outdoor concert anyway. Short one.")
    eager = voice.utterances(text, SynthesisConfig(sentence_pause_ms=100))
    whole = voice.utterances(text, SynthesisConfig(sentence_pause_ms=100, eager_first_clause_ids=0))
    assert len(whole) == 2 and len(eager) == 3
    assert "".join(eager[0].phonemes).endswith("wˈiːk, ") and eager[0].pause_after_ms == 0.0
    assert eager[0].phonemes + eager[1].phonemes == whole[0].phonemes
    assert eager[1].pause_after_ms == 100.0 and eager[2] == whole[1]
    assert voice.utterances("A short one, with a comma.")[0] == voice.utterances(
        "A short one, with a comma.", SynthesisConfig(eager_first_clause_ids=0))[0]
