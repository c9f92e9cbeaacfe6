"""Shared fixtures: where the real speech lives, and skips with reasons when it does not."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SPEECH_DIR = Path(os.environ.get("RTAUDIO_SPEECH_DIR", REPO.parent / "shared" / "speech"))


@pytest.fixture(scope="session")
def speech_dir() -> Path:
    dev = SPEECH_DIR / "dev"
    if not (dev / "manifest.tsv").exists():
        pytest.skip(f"real speech not found at {dev} (set RTAUDIO_SPEECH_DIR)")
    return dev


@pytest.fixture(scope="session")
def speech_manifest(speech_dir: Path) -> dict[str, str]:
    """file name -> reference transcript."""
    with open(speech_dir / "manifest.tsv", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return {r[0]: r[2] for r in rows[1:]}


@pytest.fixture(scope="session")
def reliability_server():  # type: ignore[no-untyped-def]
    """One real server with tight limits and an engine fault hook, shared by the fuzz, fault and security tests."""
    from reliability_support import FaultyHub, reliability_config

    from rtaudio.clock import SystemClock
    from rtaudio.server.background import BackgroundServer

    config = reliability_config()
    with BackgroundServer(config, hub=FaultyHub(config, SystemClock())) as srv:
        yield srv
