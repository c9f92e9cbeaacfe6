"""Ring buffer: model-based properties, both overrun policies, and a two-thread stress test."""

from __future__ import annotations

import sys
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtaudio.errors import AudioError, ConfigError
from rtaudio.ring import OverrunPolicy, RingBuffer


def _ramp(start: int, n: int) -> np.ndarray:
    return np.arange(start, start + n, dtype=np.float32)


@settings(max_examples=60, deadline=None)
@given(capacity=st.integers(1, 64),
       ops=st.lists(st.tuples(st.booleans(), st.integers(0, 80)), max_size=60),
       drop_oldest=st.booleans())
def test_matches_a_simple_model(capacity: int, ops: list[tuple[bool, int]], drop_oldest: bool) -> None:
    """Single-threaded: the ring behaves like a bounded queue of (index, value) with the policy."""
    policy = OverrunPolicy.DROP_OLDEST if drop_oldest else OverrunPolicy.REJECT_NEWEST
    ring = RingBuffer(capacity, policy=policy)
    model: list[int] = []  # stream indices held
    next_value, lost = 0, 0
    for is_write, n in ops:
        if is_write:
            accepted = ring.write(_ramp(next_value, n))
            new = list(range(next_value, next_value + n))
            next_value += n
            if drop_oldest:
                model += new
                assert accepted == n
                excess = max(0, len(model) - capacity)
                lost += excess
                model = model[excess:]
            else:
                fit = min(n, capacity - len(model))
                assert accepted == fit
                model += new[:fit]
                lost += n - fit
                next_value = next_value - n + fit  # rejected samples are never written
        else:
            samples, start = ring.read(n)
            got = model[:n]
            model = model[len(got):]
            assert samples.tolist() == [float(v) for v in got]
            if got:
                assert start == got[0]  # the running index is the stream position
            assert ring.available() == len(model)
    assert ring.overrun_samples == lost


def test_wrap_around_and_positions() -> None:
    ring = RingBuffer(8)
    assert ring.write(_ramp(0, 6)) == 6
    assert ring.read(4)[1] == 0
    assert ring.write(_ramp(6, 6)) == 6  # wraps: slots 6, 7, 0..3
    samples, start = ring.read(100)
    assert start == 4 and samples.tolist() == list(range(4, 12))
    assert ring.read_position == ring.write_position == 12


def test_reject_newest_counts_overruns() -> None:
    ring = RingBuffer(4, policy=OverrunPolicy.REJECT_NEWEST)
    assert ring.write(_ramp(0, 3)) == 3
    assert ring.write(_ramp(3, 3)) == 1
    assert (ring.overruns, ring.overrun_samples) == (1, 2)
    assert ring.read(10)[0].tolist() == [0, 1, 2, 3]


def test_drop_oldest_keeps_newest_and_reports_gap() -> None:
    ring = RingBuffer(4, policy=OverrunPolicy.DROP_OLDEST)
    ring.write(_ramp(0, 3))
    ring.write(_ramp(3, 3))
    samples, start = ring.read(10)
    assert start == 2 and samples.tolist() == [2, 3, 4, 5]
    assert ring.overrun_samples == 2
    ring.write(_ramp(6, 10))  # one write larger than the ring
    samples, start = ring.read(10)
    assert start == 12 and samples.tolist() == [12, 13, 14, 15]


def test_padded_read_counts_underruns() -> None:
    ring = RingBuffer(16)
    ring.write(_ramp(1, 3))
    out = np.full(5, 9.0, np.float32)
    assert ring.read_into(out, pad=True) == (3, 0)
    assert out.tolist() == [1, 2, 3, 0, 0]
    assert (ring.underruns, ring.underrun_samples) == (1, 2)


def test_multichannel() -> None:
    ring = RingBuffer(5, channels=2)
    frames = np.stack([_ramp(0, 4), -_ramp(0, 4)], axis=1)
    ring.write(frames)
    ring.read(3)
    ring.write(frames)
    samples, start = ring.read(10)
    assert start == 3 and samples.shape == (5, 2)
    assert samples[:, 0].tolist() == [3, 0, 1, 2, 3] and samples[:, 1].tolist() == [-3, 0, -1, -2, -3]
    with pytest.raises(AudioError, match="channel"):
        ring.write(np.zeros(4, np.float32))


def test_bad_config() -> None:
    with pytest.raises(ConfigError):
        RingBuffer(0)


@pytest.mark.parametrize("policy", list(OverrunPolicy))
def test_two_threads_lose_and_duplicate_nothing(policy: OverrunPolicy) -> None:
    """Producer and consumer race on a small ring (numpy releases the GIL inside copies > 500 samples).

    REJECT_NEWEST: the producer retries what did not fit, so the consumer must see 0..N-1 exactly.
    DROP_OLDEST: every delivered sample must equal its stream index (no torn or duplicated data)
    and delivered + dropped must equal N.
    """
    total, capacity = 300_000, 1024
    ring = RingBuffer(capacity, policy=policy)
    received: list[np.ndarray] = []
    starts: list[int] = []
    done = threading.Event()
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            rng = np.random.default_rng(1)
            pos = 0
            while pos < total:
                n = min(int(rng.integers(1, 700)), total - pos)
                pos += ring.write(_ramp(pos, n))
                time.sleep(0)  # hand the GIL over, like a callback returning to PortAudio
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)
        finally:
            done.set()

    def consume() -> None:
        rng = np.random.default_rng(2)
        out = np.empty(700, np.float32)
        while True:
            finished = done.is_set()
            n, start = ring.read_into(out[: int(rng.integers(1, 700))])
            if n:
                received.append(out[:n].copy())
                starts.append(start)
            elif finished:
                return
            else:
                time.sleep(0)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        threads = [threading.Thread(target=produce), threading.Thread(target=consume)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        sys.setswitchinterval(old)
    assert not errors and not any(t.is_alive() for t in threads)
    assert len(received) > 50  # the threads really interleaved
    got = np.concatenate(received)
    for chunk, start in zip(received, starts, strict=True):
        np.testing.assert_array_equal(chunk, _ramp(start, chunk.size))  # each read is intact
    assert np.all(np.diff(got) > 0)  # strictly increasing: nothing duplicated or reordered
    if policy is OverrunPolicy.REJECT_NEWEST:
        np.testing.assert_array_equal(got, _ramp(0, total))
    else:
        assert got.size + ring.overrun_samples == total
        assert got[-1] == total - 1
