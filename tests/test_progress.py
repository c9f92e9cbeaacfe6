from __future__ import annotations

import io

from rtaudio.progress import Progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_plain_lines_not_a_redrawn_bar() -> None:
    log = io.StringIO()
    with Progress("transcribing", 1000, stream=log) as bar:
        for _ in range(1000):
            bar.update(1)
    text = log.getvalue()
    lines = text.splitlines()
    assert "\r" not in text and 1 <= len(lines) <= 3, lines  # the start and the end, not 1000 redraws
    assert lines[-1].startswith("transcribing") and "100.0%" in lines[-1]


def test_a_terminal_gets_the_bar_redrawn_in_place() -> None:
    term = _Terminal()
    with Progress("transcribing", 10, stream=term, min_interval_s=0.0) as bar:
        for _ in range(10):
            bar.update(1)
    text = term.getvalue()
    assert text.count("\r") >= 10 and text.endswith("\n") and text.count("\n") == 1
