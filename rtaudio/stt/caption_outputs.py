"""Where a live caption stream goes besides the screen: growing SRT/VTT files, the rolling text file, OBS.

`CaptionOutputs.push` takes every caption (partial or final) as it comes, from a local recognizer or from
a server session alike; `close` settles the last cue and waits briefly for OBS to take the last caption.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

from rtaudio.frames import Caption
from rtaudio.log import get_logger
from rtaudio.obs import ObsCaptionSender, ObsConfig
from rtaudio.stt.caption_files import GrowingCueFile, RollingTextFile
from rtaudio.stt.live_captions import LiveCaptionConfig, LiveCueBuilder

log = get_logger("rtaudio.captions")


class ObsThread:
    """An `ObsCaptionSender` on its own event-loop thread, so a synchronous caption loop can feed it."""

    def __init__(self, config: ObsConfig) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="rtaudio-obs", daemon=True)
        self._thread.start()
        self.sender = asyncio.run_coroutine_threadsafe(self._start(config), self._loop).result(10)
        self.submitted = 0

    @staticmethod
    async def _start(config: ObsConfig) -> ObsCaptionSender:
        sender = ObsCaptionSender(config)
        sender.start()
        return sender

    def submit(self, text: str) -> None:
        """Queue a final caption (thread-safe, never blocks)."""
        if text.strip():
            self.submitted += 1
            self._loop.call_soon_threadsafe(self.sender.submit, text)

    def close(self, timeout_s: float = 3.0) -> None:
        """Give OBS up to `timeout_s` to take what is queued, then disconnect."""
        deadline = time.monotonic() + timeout_s
        while len(self.sender.sent) < self.submitted and not self.sender.auth_failed and time.monotonic() < deadline:
            time.sleep(0.02)
        if len(self.sender.sent) < self.submitted:
            log.warning("OBS did not take %d caption(s)", self.submitted - len(self.sender.sent))
        asyncio.run_coroutine_threadsafe(self.sender.stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


class CaptionOutputs:
    """Captions in; cues (live-captioning timing rules) to cue files, finals to OBS, the current caption
    to the rolling text file."""

    def __init__(self, cue_files: Sequence[GrowingCueFile] = (), text_file: RollingTextFile | None = None,
                 obs: ObsThread | None = None, live: LiveCaptionConfig | None = None) -> None:
        self.cue_files, self.text_file, self.obs = list(cue_files), text_file, obs
        self.cues = LiveCueBuilder(live)
        self.closed = False

    def push(self, caption: Caption) -> None:
        if self.text_file is not None:
            self.text_file.push(caption)
        if not caption.is_final:
            return
        if self.obs is not None:
            self.obs.submit(caption.text)
        for cue in self.cues.push(caption):
            for f in self.cue_files:
                f.append(cue)

    def close(self) -> None:
        """End of stream: the last cue, then close the files and OBS (idempotent)."""
        if self.closed:
            return
        self.closed = True
        for cue in self.cues.flush():
            for f in self.cue_files:
                f.append(cue)
        for f in self.cue_files:
            f.close()
        if self.obs is not None:
            self.obs.close()
