"""Structured logging: one `key=value` line per event, quiet (warnings only) by default."""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = getattr(record, "fields", {})
        parts = [f"level={record.levelname.lower()}", f"logger={record.name}", f"msg={json.dumps(record.getMessage())}"]
        parts += [f"{k}={json.dumps(v, default=str)}" for k, v in fields.items()]
        if record.exc_info:
            parts.append(f"exc={json.dumps(self.formatException(record.exc_info))}")
        return " ".join(parts)


def setup_logging(verbosity: int = 0) -> None:
    """0: warnings, 1: info, 2+: debug; `RTAUDIO_LOG=info` (or debug) raises it in every process, child
    processes such as `serve`'s engine process included. Logs go to stderr so stdout stays for results."""
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    named = logging.getLevelName(os.environ.get("RTAUDIO_LOG", "").upper())
    if isinstance(named, int):
        level = min(level, named)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger("rtaudio")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name if name.startswith("rtaudio") else f"rtaudio.{name}")


def log_event(logger: logging.Logger, level: int, msg: str, **fields: Any) -> None:
    """Log `msg` with structured `fields`, e.g. log_event(log, logging.INFO, "session", id=3)."""
    if logger.isEnabledFor(level):
        logger.log(level, msg, extra={"fields": fields})
