"""Pieces of decoding without a model: DTW kernel vs reference, filters, timestamp grammar, sampling,
and the tokenizer's special ids (from the real tokenizer.json files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from rtaudio.errors import ConfigError, ModelNotFetchedError
from rtaudio.modelstore import model_dir
from rtaudio.stt.alignment import dtw, dtw_reference, median_filter
from rtaudio.stt.decoding import _sample_rows, compression_ratio, has_repetition_loop, trim_loop
from rtaudio.stt.logit_filters import SuppressBlank, SuppressTokens, TimestampRules, log_softmax, logsumexp
from rtaudio.stt.tokenizer import WhisperTokenizer


@pytest.fixture(scope="module")
def tok() -> WhisperTokenizer:
    try:
        folder = model_dir("whisper-tiny.en")
    except ModelNotFetchedError as e:
        pytest.skip(f"{e}")
    return WhisperTokenizer.from_file(folder / "tokenizer.json", 51864)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 12), st.integers(1, 30)),
              elements=st.floats(-3, 3, allow_nan=False)))
def test_dtw_kernel_equals_reference(x: np.ndarray) -> None:
    a, b = dtw(x), dtw_reference(x)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    # a monotonic path from (0, 0) to the end, one step at a time
    assert (a[0][0], a[1][0]) == (0, 0) and (a[0][-1], a[1][-1]) == (x.shape[0] - 1, x.shape[1] - 1)
    steps = np.stack([np.diff(a[0]), np.diff(a[1])], axis=1)
    assert ((steps >= 0) & (steps <= 1)).all() and (steps.sum(axis=1) >= 1).all()


def test_dtw_follows_a_cheap_diagonal() -> None:
    x = np.ones((3, 9))
    x[0, 0:3] = x[1, 3:6] = x[2, 6:9] = -1.0  # token k owns frames 3k..3k+2
    rows, cols = dtw(x)
    jumps = cols[np.pad(np.diff(rows), (1, 0), constant_values=1).astype(bool)]
    assert list(jumps) == [0, 3, 6]


def test_median_filter_matches_scipy() -> None:
    from scipy.ndimage import median_filter as scipy_median

    x = np.random.default_rng(1).standard_normal((2, 3, 40))
    want = scipy_median(x, size=(1, 1, 7), mode="mirror")  # numpy "reflect" (edge not repeated)
    np.testing.assert_allclose(median_filter(x, 7), want)


def test_logsumexp_and_log_softmax() -> None:
    x = np.random.default_rng(2).standard_normal((3, 50)).astype(np.float32) * 10
    x[1, :10] = -np.inf
    want = np.log(np.exp(x.astype(np.float64)).sum(axis=1))
    np.testing.assert_allclose(logsumexp(x), want, rtol=1e-5)
    np.testing.assert_allclose(np.exp(log_softmax(x)).sum(axis=1), 1.0, rtol=1e-5)
    assert np.isneginf(logsumexp(np.full((1, 4), -np.inf, np.float32)))[0]


def test_sampling_follows_the_distribution() -> None:
    logits = np.log(np.array([[0.7, 0.2, 0.1, 0.0]] * 4000, np.float32) + 1e-12)
    draws = _sample_rows(logits, 1.0, np.random.default_rng(0))
    freq = np.bincount(draws, minlength=4) / len(draws)
    np.testing.assert_allclose(freq, [0.7, 0.2, 0.1, 0.0], atol=0.03)
    cold = _sample_rows(logits[:200], 0.05, np.random.default_rng(0))
    assert (cold == 0).all()


def test_repetition_loop_detector() -> None:
    phrase = [11, 12, 13, 14]
    assert has_repetition_loop([1, 2, *phrase, *phrase, *phrase[:-1], 99])  # last repeat cut short
    assert has_repetition_loop([*phrase * 5])
    assert not has_repetition_loop([*phrase, *phrase])  # said twice: can be real speech
    assert not has_repetition_loop([7, 8, 7, 8, 7, 8])  # "no, no, no": too short to call a loop
    assert not has_repetition_loop(list(range(200)))


def test_trim_loop_keeps_real_repeats_and_cuts_runaways() -> None:
    assert trim_loop([1, 2, *[5] * 40]) == [1, 2, 5, 5, 5, 5]  # "word word word word word ..."
    assert trim_loop([1, 5, 5, 5, 5, 2]) == [1, 5, 5, 5, 5, 2]  # four times can be real speech
    assert trim_loop([1, *[2, 3, 4] * 6, 9]) == [1, 2, 3, 4, 2, 3, 4]
    assert trim_loop(list(range(50))) == list(range(50))


def test_compression_ratio_flags_loops() -> None:
    assert compression_ratio("start " * 40) > 2.4
    assert compression_ratio("And so my fellow Americans, ask not what your country can do for you.") < 2.4


def test_tokenizer_special_ids(tok: WhisperTokenizer) -> None:
    assert (tok.eot, tok.sot, tok.no_timestamps, tok.timestamp_begin) == (50256, 50257, 50362, 50363)
    assert not tok.multilingual and tok.sot_sequence("en", "transcribe") == [tok.sot]
    with pytest.raises(ConfigError):
        tok.sot_sequence("de", "transcribe")
    ids = tok.encode(" Hello world")
    assert tok.decode([tok.sot, *ids, tok.timestamp(1.0), tok.eot]) == " Hello world"
    assert tok.timestamp_s(tok.timestamp(1.24)) == pytest.approx(1.24)
    words, groups = tok.split_words(tok.encode(" Mr. O'Neil's cat, 4.5 kg!"))
    assert "".join(words) == " Mr. O'Neil's cat, 4.5 kg!"
    assert sum(len(g) for g in groups) == len(tok.encode(" Mr. O'Neil's cat, 4.5 kg!"))


def test_timestamp_rules(tok: WhisperTokenizer) -> None:
    rules = TimestampRules(tok, max_initial_timestamp_s=1.0, max_timestamp_s=10.0)
    tb, v = tok.timestamp_begin, 51864
    text = tok.encode(" hi")[0]

    def run(seq: list[int]) -> np.ndarray:
        logits = np.zeros((1, v), np.float32)
        logits[0, tb:] = -20.0  # text likelier than any timestamp: the mass rule stays out of it
        rules.apply(logits, [seq])
        return np.isfinite(logits[0])

    first = run([])
    assert not first[:tb].any() and first[tb] and first[tok.timestamp(1.0)] and not first[tok.timestamp(1.02)]
    after_open = run([tb, text, tok.timestamp(2.0)])  # a lone timestamp: another timestamp or the end
    assert not after_open[:tok.eot].any() and after_open[tok.eot] and after_open[tok.timestamp(2.0)]
    assert not after_open[tok.timestamp(1.98)]  # never earlier
    after_pair = run([tb, text, tok.timestamp(2.0), tok.timestamp(2.0)])  # a closed pair: text next
    assert not after_pair[tb:].any() and after_pair[text]
    mid = run([tb, text])
    assert not mid[tb] and mid[tok.timestamp(10.0)] and not mid[tok.timestamp(10.02)]  # window end
    assert not mid[tok.no_timestamps]


def test_timestamp_forced_when_its_mass_wins(tok: WhisperTokenizer) -> None:
    rules = TimestampRules(tok, None, 30.0)
    logits = np.full((1, 51864), -5.0, np.float32)
    logits[0, 100] = 2.0  # best text token: p ~ e^2
    logits[0, tok.timestamp_begin:] = -1.0  # 1501 timestamps: total mass ~ 1501 e^-1 > e^2
    rules.apply(logits, [[tok.timestamp_begin, 100]])
    assert np.isneginf(logits[0, 100])


def test_suppression_filters() -> None:
    logits = np.zeros((2, 10), np.float32)
    SuppressTokens([3, 5]).apply(logits, [[], []])
    assert np.isneginf(logits[:, [3, 5]]).all() and np.isfinite(logits[:, 4]).all()
    blank = SuppressBlank([1])
    logits = np.zeros((1, 10), np.float32)
    blank.apply(logits, [[7]])
    assert np.isfinite(logits).all()  # only at the first sampled position
    blank.apply(logits, [[]])
    assert np.isneginf(logits[0, 1])


def test_model_folder_layout(tok: WhisperTokenizer) -> None:
    folder = Path(model_dir("whisper-tiny.en"))
    for name in ("encoder.onnx", "encoder.int8.onnx", "decoder.onnx", "decoder.int8.onnx", "whisper.json",
                 "tokenizer.json"):
        assert (folder / name).stat().st_size > 1000, name
