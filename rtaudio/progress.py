"""A small progress bar on stderr for long work (downloads, conversion, batch transcription).

Not a dependency on tqdm: the runtime stays lean. Silent when `enabled` is False. On a terminal the bar
is redrawn in place; into a log or a pipe it writes one plain line every `LOG_INTERVAL_S` instead (a
redrawn bar would be one endless line of carriage returns there).
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

LOG_INTERVAL_S = 10.0


class Progress:
    """Report `done/total` of a task; redraws at most every `min_interval_s`."""

    def __init__(self, label: str, total: float, unit: str = "", enabled: bool = True,
                 stream: TextIO | None = None, min_interval_s: float = 0.2) -> None:
        self.label = label
        self.total = max(total, 1e-9)
        self.unit = unit
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.min_interval_s = min_interval_s if self._tty else max(min_interval_s, LOG_INTERVAL_S)
        self.done = 0.0
        self._last = 0.0
        self._t0 = time.monotonic()

    def update(self, amount: float) -> None:
        self.set(self.done + amount)

    def set(self, done: float) -> None:
        self.done = min(done, self.total)
        now = time.monotonic()
        if self.enabled and (now - self._last >= self.min_interval_s or self.done >= self.total):
            self._last = now
            self._draw()

    def _draw(self) -> None:
        frac = self.done / self.total
        bar = "#" * int(frac * 30)
        elapsed = time.monotonic() - self._t0
        line = f"{self.label:<28} [{bar:<30}] {frac * 100:5.1f}% {elapsed:6.1f}s"
        self.stream.write(f"\r{line}" if self._tty else f"{line}\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            if self.done < self.total or self._tty:
                self.set(self.total)
            if self._tty:
                self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
