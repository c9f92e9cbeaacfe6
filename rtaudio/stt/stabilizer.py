"""Caption stabilization: which words of a changing hypothesis may be shown as settled.

`LocalAgreement` (LocalAgreement-n, as in whisper_streaming's HypothesisBuffer) commits the longest
prefix of the uncommitted tail on which the last n hypotheses agree. Committed words are never
retracted: later hypotheses are aligned to them and only what follows is compared. All times are
seconds of stream time carried in `rtaudio.frames.Word`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from difflib import SequenceMatcher

from rtaudio.errors import ConfigError
from rtaudio.frames import Word

_STRIP = re.compile(r"[^\w']+")


def normalize_word(text: str) -> str:
    """The comparison key of a word: lower case without punctuation ("Hello," == "hello")."""
    return _STRIP.sub("", text.lower()).strip("'")


def _keys(words: Sequence[Word]) -> list[str]:
    return [normalize_word(w.text) for w in words]


def align_prefix(committed: Sequence[str], hypothesis: Sequence[Word], committed_end_s: float | None = None) -> int:
    """Index in `hypothesis` where the words after `committed` begin.

    Global alignment of all of `committed` (normalized keys) against a prefix of the hypothesis
    (match +2, a hypothesis word that extends the committed one +1, substitution -1, gap -1), so a
    hypothesis that re-spells, drops, adds or completes a word inside the committed part still
    splits at the right place. Ties go to the split whose last word ends closest to `committed_end_s`.
    """
    c, h = len(committed), len(hypothesis)
    if c == 0:
        return 0
    keys = _keys(hypothesis)
    prev = [-j for j in range(h + 1)]  # score of committed[:0] against hyp[:j]: j gaps
    for i in range(1, c + 1):
        cur = [-i] + [0] * h
        for j in range(1, h + 1):
            a, b = committed[i - 1], keys[j - 1]
            diag = prev[j - 1] + (2 if a == b else 1 if a and b.startswith(a) else -1)
            cur[j] = max(diag, prev[j] - 1, cur[j - 1] - 1)
        prev = cur
    best = max(prev)
    candidates = [j for j in range(h + 1) if prev[j] == best]
    if committed_end_s is None or len(candidates) == 1:
        return candidates[0]
    end_s = committed_end_s

    def distance(j: int) -> float:
        return abs(hypothesis[j - 1].end_s - end_s) if j > 0 else end_s

    return min(candidates, key=distance)


def merge_attached(words: Sequence[Word]) -> tuple[list[Word], list[int]]:
    """Words as displayed: a word without a leading space is joined to the one before ("527" "-66" ->
    "527-66"). Returns the merged words and, for each, the index in `words` just after it."""
    merged: list[Word] = []
    ends: list[int] = []
    for i, w in enumerate(words):
        if merged and not w.text.startswith(" ") and not merged[-1].text.endswith(" "):
            m = merged[-1]
            merged[-1] = Word(m.text + w.text, m.start_s, w.end_s, min(m.probability, w.probability))
            ends[-1] = i + 1
        else:
            merged.append(w)
            ends.append(i + 1)
    return merged, ends


_KEY_CHAR = re.compile(r"[\w']")


def _after_key_chars(text: str, n: int) -> str:
    """`text` after its first `n` key characters (letters, digits, apostrophes: what `normalize_word` keeps)."""
    seen = 0
    for i, ch in enumerate(text):
        if seen == n:
            return text[i:]
        seen += bool(_KEY_CHAR.match(ch))
    return ""


def extension(committed: Word, heard: Word) -> Word | None:
    """What `heard` adds to a committed word it extends ("71624" -> "7162446714", "ecclesia" ->
    "ecclesiastical", "D.A" -> "D-A-J-N-H", compared without punctuation): a word without a leading
    space that attaches to it, or None."""
    a, b = normalize_word(committed.text), heard.text.strip()
    kb = normalize_word(b)
    if not a or len(kb) <= len(a) or not kb.startswith(a):
        return None
    return Word(_after_key_chars(b, len(a)), heard.start_s, heard.end_s, heard.probability)


def split_by_characters(committed: Sequence[str], heard: Sequence[Word]) -> tuple[int, Word | None] | None:
    """Where the committed text ends in a hypothesis that breaks it into other words ("71624" heard as
    "7 1 6 2 4 4 6", "D-A" as "D A J"): compared as one string of key characters. Returns the index
    of the first heard word after it and the rest of a word it ends inside (or None), or None when
    the hypothesis does not start with the committed text."""
    target = "".join(committed)
    done = 0
    for i, w in enumerate(heard):
        key = normalize_word(w.text)
        left = len(target) - done
        if len(key) <= left:
            if target[done: done + len(key)] != key:
                return None
            done += len(key)
            if done == len(target):
                return i + 1, None
        else:
            if not key.startswith(target[done:]):
                return None
            rest = _after_key_chars(w.text.strip(), left)
            return i + 1, Word(rest, w.start_s, w.end_s, w.probability)
    return None


def leak_length(anchor: Sequence[str], keys: Sequence[str], min_words: int = 4, min_ratio: float = 0.75) -> int:
    """How many leading `keys` re-transcribe the end of `anchor` (the already final words just before
    the window): the longest prefix of at least `min_words` that matches a suffix of the anchor of
    about its length with a similarity of `min_ratio`; 0 if none."""
    for m in range(min(len(keys), len(anchor) + 3), min_words - 1, -1):
        for n in (m, m - 1, m + 1, m - 2, m + 2):
            if min_words <= n <= len(anchor) and SequenceMatcher(None, anchor[-n:], keys[:m]).ratio() >= min_ratio:
                return m
    return 0


def _common_prefix(seqs: Sequence[Sequence[str]]) -> int:
    n = min(len(s) for s in seqs)
    for i in range(n):
        if any(s[i] != seqs[0][i] for s in seqs):
            return i
    return n


def repetition_start(words: Sequence[Word], max_ngram: int = 12, anywhere: bool = False) -> int | None:
    """Where a decoding loop begins: index of the first surplus copy of an n-gram repeated in a row.

    Returns None when there is no loop. A loop is a run of copies of one n-gram that lasts until the
    hypothesis ends (the token budget or the window cut it, maybe mid-copy, maybe with a stray last
    word: "Fail better Fail better ... Better"). One word may occur twice in a row ("no, no"); longer
    n-grams, and numbers or spelled strings of three or more characters, only once: "5-2-1-60-55.
    5-2-1-60-55" is one string said once and read twice by a decoder that found no way out. Repeats
    followed by other words ("words words words and ...") are speech, not a loop, unless `anywhere` (for
    a hypothesis known to be degenerate, e.g. one that hit its token budget): then the first surplus
    repeat anywhere counts.
    """
    keys = _keys(words)
    for start in range(len(keys)):
        for n in range(1, min(max_ngram, (len(keys) - start) // 2) + 1):
            gram = keys[start: start + n]
            allowed = 2 if n == 1 and not is_code(words[start].text, gram[0]) else 1
            reps = 1
            while keys[start + reps * n: start + (reps + 1) * n] == gram:
                reps += 1
            rest = keys[start + reps * n:]
            # to the end: nothing, a partial copy (its last word maybe cut short: "471 471 4"), or
            # (after many copies) a stray word may follow
            to_end = _is_partial_copy(rest, gram) or (reps > allowed + 1 and len(rest) < n)
            if reps > allowed and (anywhere or to_end):
                return start + allowed * n
    # a phrase read again from its start until the (padded) window ran out: "the modern approach ...
    # of address the modern approach will also"; at least 4 words, the copy a third of the phrase or more
    for start in range(len(keys)):
        for n in range(4, min(40, len(keys) - start - 4) + 1):
            if keys[start + n] != keys[start]:  # a copy of 4 or more words starts with the phrase's first
                continue
            rest = keys[start + n:]
            if len(rest) >= max(4, n // 3) and _is_partial_copy(rest, keys[start: start + n]):
                return start + n
    return None


def is_code(text: str, key: str) -> bool:
    """A number or spelled string ("5-2-1-60-55", "1928", "A-L-M") of three or more characters."""
    return len(key) >= 3 and any(c.isdigit() or c == "-" for c in text)


def _is_partial_copy(rest: Sequence[str], gram: Sequence[str]) -> bool:
    """`rest` is the start of `gram`, its last word maybe cut short."""
    if len(rest) > len(gram):
        return False
    if list(rest) == list(gram[: len(rest)]):
        return True
    return bool(rest) and list(rest[:-1]) == list(gram[: len(rest) - 1]) and gram[len(rest) - 1].startswith(rest[-1])


class LocalAgreement:
    """LocalAgreement-n over word hypotheses of one growing audio window (a segment).

    `insert(hyp)` aligns the hypothesis to the words committed so far, compares its tail with the
    tails of the previous n-1 hypotheses and commits their common prefix. `pop_committed()` hands the
    committed words over (when the window is trimmed) while keeping the agreement history;
    `finish(hyp)` closes the segment, committing the tail of the last hypothesis.
    """

    def __init__(self, agreement_n: int = 2, overlap_window_s: float = 0.6, max_overlap_words: int = 3,
                 anchor_words: int = 16) -> None:
        if agreement_n < 1:
            raise ConfigError(f"agreement_n must be >= 1, got {agreement_n}")
        self.agreement_n = agreement_n
        self.overlap_window_s = overlap_window_s
        self.max_overlap_words = max_overlap_words
        self.anchor_words = anchor_words
        self.reset()

    def reset(self, anchor: Sequence[Word] = ()) -> None:
        """Forget everything (a new speech segment). `anchor`: the words finalized just before the new
        window's audio, whose echo at the window start is dropped (as after `pop_committed`)."""
        self._committed: list[Word] = []
        self._anchor: list[Word] = list(anchor)[-self.anchor_words:]  # echo candidates
        self._tails: list[list[str]] = []  # keys of recent uncommitted tails, oldest first
        self._tail: list[Word] = []

    @property
    def committed(self) -> tuple[Word, ...]:
        """Words committed since the segment started or since the last `pop_committed`."""
        return tuple(self._committed)

    @property
    def tail(self) -> tuple[Word, ...]:
        """The unstable words of the latest hypothesis, after the committed ones."""
        return tuple(self._tail)

    def _split_tail(self, hypothesis: Sequence[Word]) -> list[Word]:
        if self._committed:
            # align displayed words on both sides, so "527" + "-66" matches "527-66"
            shown, _ = merge_attached(self._committed)
            heard, ends = merge_attached(hypothesis)
            shown_keys = _keys(shown)
            k = align_prefix(shown_keys, heard, shown[-1].end_s)
            grown = extension(shown[-1], heard[k - 1]) if k else None
            if not grown and (not k or normalize_word(heard[k - 1].text) != shown_keys[-1]):
                split = split_by_characters(shown_keys, heard)  # the same characters, other word breaks
                if split is not None:
                    k, grown = split
            tail = list(hypothesis[ends[k - 1]:]) if k else list(hypothesis)
            if k and not grown and heard[k - 1].end_s > shown[-1].end_s + self.overlap_window_s / 2:
                # the split fell inside a spelled run that goes on past the committed words ("Y" of
                # "W-L-F-X-Y-7-0-6-9"): its later pieces are new, not the committed word again
                first = ends[k - 2] if k > 1 else 0
                late = [w for w in hypothesis[first + 1: ends[k - 1]] if w.start_s + w.end_s > 2 * shown[-1].end_s]
                tail = late + tail
            return [grown, *tail] if grown else tail
        tail = list(hypothesis)
        if self._anchor and tail:
            # The audio just before the window is final (anchor words); it may be transcribed again:
            # a whole stretch of it (context heard again), or the tail of the last word (a cut).
            anchor_keys, keys = _keys(self._anchor), _keys(tail)
            leaked = leak_length(anchor_keys, keys)
            if leaked:
                return tail[leaked:]
            limit = self._anchor[-1].end_s + self.overlap_window_s
            for n in range(min(self.max_overlap_words, len(anchor_keys), len(keys)), 0, -1):
                if anchor_keys[-n:] == keys[:n] and tail[n - 1].end_s <= limit:
                    return tail[n:]
            grown = extension(merge_attached(self._anchor)[0][-1], tail[0])
            if grown is not None and tail[0].start_s <= limit:  # the cut fell inside a word
                return [grown, *tail[1:]]
        return tail

    def insert(self, hypothesis: Sequence[Word], allow_commit: bool = True,
               commit_before_s: float | None = None) -> list[Word]:
        """Feed the hypothesis for the whole window; returns the words newly committed (maybe none).

        `allow_commit=False` records the hypothesis for later agreement without committing (a window
        still too short to be trusted). Words ending after `commit_before_s` are not committed yet: a
        word at the very end of the window may be cut off ("ecclesia|stical") in every pass."""
        tail = self._split_tail(hypothesis)
        keys = _keys(tail)
        self._tails.append(keys)
        self._tails = self._tails[-self.agreement_n:]
        self._tail = tail
        if len(self._tails) < self.agreement_n or not allow_commit:
            return []
        k = _common_prefix(self._tails)
        if commit_before_s is not None:
            while k > 0 and tail[k - 1].end_s > commit_before_s:
                k -= 1
        if k == 0:
            return []
        new = tail[:k]
        self._committed.extend(new)
        self._tail = tail[k:]
        self._tails = [t[k:] for t in self._tails]
        return new

    def commit(self, n: int) -> list[Word]:
        """Commit the first `n` tail words without agreement (a window that must be cut); agreement
        restarts from the remaining tail."""
        new = self._tail[:n]
        self._committed.extend(new)
        self._tail = self._tail[n:]
        self._tails = [_keys(self._tail)]
        return new

    def pop_committed(self) -> list[Word]:
        """Hand over the committed words (they become final) and keep agreeing on the rest."""
        out = self._committed
        if out:
            self._anchor = out[-self.anchor_words:]
        self._committed = []
        return out

    def finish(self, hypothesis: Sequence[Word] | None) -> list[Word]:
        """Close the segment: committed words plus the tail of `hypothesis` (None: nothing new heard)."""
        words = list(self._committed)
        if hypothesis:
            words.extend(self._split_tail(hypothesis))
        self.reset()
        return words
