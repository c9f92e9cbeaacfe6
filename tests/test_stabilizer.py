"""LocalAgreement on scripted hypothesis sequences: commits, no retraction, nothing lost at boundaries."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtaudio.errors import ConfigError
from rtaudio.frames import Word
from rtaudio.stt.stabilizer import LocalAgreement, align_prefix, normalize_word, repetition_start


def W(text: str, start: float = 0.0, step: float = 0.3) -> list[Word]:
    """Words of `text` as Whisper spells them (leading space), each `step` seconds long from `start`."""
    return [Word(" " + t, start + i * step, start + (i + 1) * step) for i, t in enumerate(text.split())]


def texts(words: tuple[Word, ...] | list[Word]) -> str:
    return "".join(w.text for w in words).strip()


def test_normalize_word() -> None:
    assert normalize_word(" Hello,") == "hello"
    assert normalize_word("don't!") == "don't"
    assert normalize_word("'quoted'") == "quoted"


def test_local_agreement_2_commits_common_prefix() -> None:
    la = LocalAgreement(2)
    assert la.insert(W("the quick")) == []
    assert texts(la.tail) == "the quick"
    assert texts(la.insert(W("the quick brow"))) == "the quick"
    assert texts(la.insert(W("the quick brown fox"))) == ""  # "brow" vs "brown": nothing new agrees
    assert texts(la.insert(W("The quick brown fox jumps"))) == "brown fox"
    assert texts(la.committed) == "the quick brown fox"
    assert texts(la.tail) == "jumps"


def test_punctuation_and_case_do_not_block_agreement() -> None:
    la = LocalAgreement(2)
    la.insert(W("Hello world"))
    assert texts(la.insert(W("hello, World. How"))) == "hello, World."


def test_agreement_n_3_needs_three() -> None:
    la = LocalAgreement(3)
    assert la.insert(W("a b")) == [] and la.insert(W("a b c")) == []
    assert texts(la.insert(W("a b c d"))) == "a b"


def test_committed_is_never_retracted_when_hypothesis_changes_its_past() -> None:
    la = LocalAgreement(2)
    la.insert(W("I scream for"))
    la.insert(W("I scream for ice"))
    assert texts(la.committed) == "I scream for"
    # the model changes its mind about committed words; they stay, the new tail is aligned after them
    assert texts(la.insert(W("Ice cream for ice cream"))) == "ice"
    assert texts(la.committed) == "I scream for ice"
    assert texts(la.tail) == "cream"


def test_align_prefix_handles_insertions_and_repeats() -> None:
    hyp = W("so the the cat sat on the mat")
    assert align_prefix(["the", "cat"], hyp) == 4
    assert align_prefix([], hyp) == 0
    assert align_prefix(["the"], W("the the")) == 1  # a repeated word is new, not an echo
    assert align_prefix(["a", "b"], W("a x b c")) == 3
    # equal scores: the split closest in time to the end of the committed words wins
    assert align_prefix(["x"], W("y z"), committed_end_s=0.3) == 1
    assert align_prefix(["x"], W("y z"), committed_end_s=0.01) == 0


def test_pop_committed_keeps_history_and_drops_echo_after_cut() -> None:
    la = LocalAgreement(2)
    la.insert(W("we choose to go"))
    la.insert(W("we choose to go to the"))
    popped = la.pop_committed()
    assert texts(popped) == "we choose to go" and la.committed == ()
    # the trimmed window starts at 1.2 s; the model hears the tail of "go" again
    assert texts(la.insert(W("go to the moon", start=1.2))) == "to the"
    assert texts(la.tail) == "moon"
    final = la.finish(W("to the moon.", start=1.2))
    assert texts(final) == "to the moon."


def test_finish_without_hypothesis_keeps_committed() -> None:
    la = LocalAgreement(2)
    la.insert(W("one two three"))
    la.insert(W("one two four"))
    assert texts(la.finish(None)) == "one two"
    assert la.committed == () and la.tail == ()


def test_finish_with_shorter_hypothesis_loses_nothing_committed() -> None:
    la = LocalAgreement(2)
    la.insert(W("alpha beta gamma delta"))
    la.insert(W("alpha beta gamma delta epsilon"))
    assert texts(la.finish(W("alpha beta"))) == "alpha beta gamma delta"


def test_finish_keeps_the_rest_of_a_spelled_run_that_goes_past_the_committed_words() -> None:
    """Committed "about W L F X Y"; the final pass spells it as one run "W-L-F-X-Y-7-0-6-9.": its digits
    after the committed "Y" are new words, not dropped with the part that matches the committed text."""
    la = LocalAgreement(2)
    for _ in range(2):
        la.insert(W("about W L F X Y", 0.2, 0.7))
    assert texts(la.committed) == "about W L F X Y"
    letters = [Word(t, 0.9 + 0.7 * i, 1.6 + 0.7 * i) for i, t in enumerate([" W", "-L", "-F", "-X", "-Y"])]
    digits = [Word(t, 4.4 + 0.4 * i, 4.8 + 0.4 * i) for i, t in enumerate(["-7", "-0", "-6", "-9."])]
    final = la.finish([Word(" Rub", 0.2, 0.6), Word(" out", 0.6, 0.9), *letters, *digits])
    assert texts(final) == "about W L F X Y-7-0-6-9."
    la.insert(W("alpha beta", 0.0))
    la.insert(W("alpha beta", 0.0))
    assert texts(la.finish([Word(" alpha", 0.0, 0.3), Word(" beta", 0.3, 0.6)])) == "alpha beta"  # a plain word: no change


def test_repetition_start() -> None:
    assert repetition_start(W("no no")) is None
    assert repetition_start(W("6 4 4")) is None
    assert repetition_start(W("5-2-1-60-55. 5-2-1-60-55")) == 1  # a number read twice: a loop
    assert repetition_start(W("1928 1928")) == 1
    assert repetition_start(W("we said no no no")) == 4
    assert repetition_start(W("and the the the the")) == 3
    assert repetition_start(W("ask not. Ask not.")) == 2
    loop = W("and so my fellow Americans. And so my fellow Americans. And so my fellow")
    assert repetition_start(loop) == 5
    assert repetition_start(W("Fail better Fail better Fail better Better")) == 2
    assert repetition_start(W("try again fail again fail better")) is None
    # repeats followed by other words are speech, not a loop
    assert repetition_start(W("some more words words words words and that")) is None
    assert repetition_start(W("Fail again Fail again Fail Fail Fail"), anywhere=True) == 2
    assert repetition_start(W("a b c")) is None
    # a sentence read again from the start until the (padded) window ran out
    again = W("the modern approach will also be reflected in the terms of address the modern approach will also")
    assert repetition_start(again) == 12
    assert repetition_start(W("rubout 471 471 471 471 4")) == 2, "the last copy cut short mid-word"
    assert repetition_start(W("we will fight and we will win")) is None, "a short echo of the start is speech"
    assert repetition_start([]) is None


def test_bad_agreement_n() -> None:
    with pytest.raises(ConfigError):
        LocalAgreement(0)


VOCAB = "the a cat dog sat ran on under mat rug quickly slowly and then it was".split()


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_agree=st.integers(1, 3), cuts=st.booleans())
def test_random_hypothesis_sequences_never_retract_or_lose(seed: int, n_agree: int, cuts: bool) -> None:
    """A noisy recognizer re-transcribes a growing window; it sometimes flips earlier words and
    garbles the last ones. Whatever it does, shown committed text only grows, and the final
    text of each segment starts with everything committed in it."""
    rng = random.Random(seed)
    truth = [rng.choice(VOCAB) for _ in range(rng.randint(3, 25))]
    la = LocalAgreement(n_agree)
    shown = ""  # all committed text, in order, across cuts
    finals = ""
    heard = 0
    window_start = 0
    while heard < len(truth):
        heard = min(len(truth), heard + rng.randint(0, 2))
        hyp = list(truth[window_start:heard])
        for i in range(len(hyp)):
            if rng.random() < 0.1:
                hyp[i] = rng.choice(VOCAB)
        if hyp and rng.random() < 0.3:
            hyp[-1] = hyp[-1][:2]
        words = W(" ".join(hyp), start=window_start * 0.3)
        before = "".join(w.text for w in la.committed)
        new = la.insert(words)
        after = "".join(w.text for w in la.committed)
        assert after == before + "".join(w.text for w in new)  # committed text only grows, by appending
        shown += "".join(w.text for w in new)
        if cuts and len(la.committed) > 4 and rng.random() < 0.3:
            finals += "".join(w.text for w in la.pop_committed())
            window_start = max(window_start, heard - len(la.tail))
    final = "".join(w.text for w in la.finish(W(" ".join(truth[window_start:]), start=window_start * 0.3)))
    assert (finals + final).startswith(shown), "committed text lost at a boundary or retracted at the end"


def test_committed_word_that_keeps_growing_is_extended_not_duplicated() -> None:
    """Whisper writes spoken digits as one growing word: "71624" is committed, then "7162446714"."""
    la = LocalAgreement(2)
    la.insert([Word(" 71624", 0.0, 1.4)])
    assert texts(la.insert([Word(" 71624", 0.0, 1.4)])) == "71624"
    grown = la.insert([Word(" 7162446", 0.0, 1.4)])
    assert grown == [] and [w.text for w in la.tail] == ["46"]
    la.insert([Word(" 7162446714", 0.0, 1.4)])
    final = la.finish([Word(" 7162446714", 0.0, 1.4), Word(" enter", 1.5, 1.8)])
    assert "".join(w.text for w in final) == " 7162446714 enter"


def test_truncated_committed_word_completed_at_the_end() -> None:
    la = LocalAgreement(2)
    la.insert([Word(" Ho", 0.0, 0.3)])
    la.insert([Word(" Ho", 0.0, 0.3)])
    assert texts(la.finish([Word(" Houser", 0.0, 0.6)])) == "Houser"
    la.insert(W("521"))
    la.insert(W("521"))
    assert texts(la.finish(W("5216055"))) == "5216055"


def test_attached_words_align_with_merged_spelling() -> None:
    la = LocalAgreement(2)
    la.insert([Word(" 527", 0.0, 1.0), Word("-66", 1.0, 1.7), Word(" and", 1.8, 2.0)])
    la.insert([Word(" 527", 0.0, 1.0), Word("-66", 1.0, 1.7), Word(" and", 1.8, 2.0)])
    assert "".join(w.text for w in la.committed) == " 527-66 and"
    la.insert([Word(" 527-66", 0.0, 1.7), Word(" and", 1.8, 2.0), Word(" more", 2.0, 2.4)])
    assert [w.text for w in la.tail] == [" more"]


def test_context_heard_again_is_dropped() -> None:
    """After an endpoint the next window hears the end of the last final again (context audio)."""
    prev = W("the morn approach will also be reflecting the terms of address")
    la = LocalAgreement(2)
    la.reset(anchor=prev)
    again = W("the more in approach we will also be reflecting the terms of address and more", start=3.0)
    la.insert(again)
    assert texts(la.tail) == "and more"
    # a cut inside a word: the rest of the word attaches
    la.reset(anchor=W("the Neplu"))
    la.insert([Word(" Neplu-ultra", 0.5, 1.0), Word(" of", 1.0, 1.2)])
    assert [w.text for w in la.tail] == ["-ultra", " of"]
    # a new sentence that merely starts like the old one is kept
    la.reset(anchor=prev)
    la.insert(W("the terms are new", start=3.0))
    assert texts(la.tail) == "the terms are new"


def test_committed_letters_grow_under_another_spelling() -> None:
    """Spelled letters: "D.A" committed, then Whisper writes "D-A-J-N-H": the new letters are kept."""
    la = LocalAgreement(2)
    la.insert([Word(" D.A.", 0.0, 1.0)])
    la.insert([Word(" D.A", 0.0, 1.0)])
    assert texts(la.committed) == "D.A"
    la.insert([Word(" D-A-J-N-H", 0.0, 2.0), Word(" 96", 2.0, 2.5)])
    assert [w.text for w in la.tail] == ["-J-N-H", " 96"]
    assert texts(la.finish([Word(" D-A-J-N-H", 0.0, 2.0), Word(" 96.", 2.0, 2.5)])) == "D.A-J-N-H 96."


def test_committed_digits_heard_again_with_other_word_breaks() -> None:
    """"71624" committed, then the same digits come one per word: nothing is shown twice or lost."""
    la = LocalAgreement(2)
    la.insert([Word(" 71624", 0.0, 1.4)])
    la.insert([Word(" 71624", 0.0, 1.4)])
    hyp = [Word(" " + d, 0.2 * i, 0.2 * (i + 1)) for i, d in enumerate("7162446")]
    la.insert(hyp)
    assert texts(la.tail) == "4 6"
    final = la.finish([Word(" 716", 0.0, 0.6), Word(" 2446714", 0.6, 2.0)])
    assert texts(final) == "71624" + "46714"
