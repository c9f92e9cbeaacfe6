"""Which words of a reference a caption shows, for the partial-latency figures of the streaming benches.

Words are compared by key (`rtaudio.stt.stabilizer.normalize_word`: lower case, no punctuation) and
aligned in order. A stretch written with other word breaks counts as shown too: "x h b a c" shows the
offline pass's "XH BAC", "rub out" shows "rubout", "2 2 9 3" shows "2293". Without this a spelled string
counted as shown only when a caption happened to break it where the offline pass did (often only the
final), which made AN4's spelled letters most of the latency tail. A digit and its word are one word
("three" shows "3"). Other spellings ("bye" for "by", "nor" for "no I") count as not shown: they are
recognition differences, not display ones.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from rtaudio.tts.numbers import cardinal

DIGITS = {cardinal(i): str(i) for i in range(10)}


def shown_words(caption: Sequence[str], reference: Sequence[str]) -> list[int]:
    """Indexes into `reference` (word keys) that `caption` (word keys) shows, in order."""
    caption = [DIGITS.get(k, k) for k in caption]
    reference = [DIGITS.get(k, k) for k in reference]
    sm = difflib.SequenceMatcher(None, caption, reference, autojunk=False)
    out: list[int] = []
    for op, a1, a2, b1, b2 in sm.get_opcodes():
        if op == "equal":
            out.extend(range(b1, b2))
        elif op == "replace":  # the same characters with other breaks, as far as they go
            chars, at = "".join(caption[a1:a2]), 0
            for k in range(b1, b2):
                if not reference[k] or not chars.startswith(reference[k], at):
                    break
                at += len(reference[k])
                out.append(k)
    return out
