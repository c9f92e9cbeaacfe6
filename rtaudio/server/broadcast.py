"""Caption broadcast: one session publishes its captions on a named channel, read-only viewers follow it.

A streamer's caption session (`rtaudio caption --mic --serve`, or any `/v1/stream` session whose config
names a `channel`) is the channel's one publisher; the OBS overlay pages are its subscribers. A viewer
that joins (or reconnects) mid-stream first gets the channel's recent finals and current partial, so
the overlay is never blank after a reload. Runs on the server's event loop; no I/O of its own.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from rtaudio.errors import ConfigError
from rtaudio.frames import Caption
from rtaudio.server.events import CaptionTiming

REPLAY_FINALS = 4  # finals replayed to a new viewer: enough to fill any overlay (it shows 1-4 lines)

TimedCaption = tuple[Caption, CaptionTiming]


class CaptionViewer(Protocol):
    """What the broadcast needs from a subscribed session."""

    def deliver_caption(self, caption: Caption, timing: CaptionTiming) -> None: ...


@dataclass
class _Channel:
    publisher: object | None = None
    viewers: list[CaptionViewer] = field(default_factory=list)
    finals: deque[TimedCaption] = field(default_factory=lambda: deque(maxlen=REPLAY_FINALS))
    partial: TimedCaption | None = None


class CaptionBroadcast:
    def __init__(self) -> None:
        self._channels: dict[str, _Channel] = {}

    def claim(self, name: str, publisher: object) -> None:
        """Make `publisher` the channel's only publisher; a second one is refused (ConfigError)."""
        channel = self._channels.setdefault(name, _Channel())
        if channel.publisher is not None and channel.publisher is not publisher:
            raise ConfigError(f"channel {name!r} already has a publisher")
        channel.publisher = publisher

    def subscribe(self, name: str, viewer: CaptionViewer) -> list[TimedCaption]:
        """Add a viewer; returns what it should be shown first (recent finals, then the current partial)."""
        channel = self._channels.setdefault(name, _Channel())
        if viewer not in channel.viewers:
            channel.viewers.append(viewer)
        return [*channel.finals, *([channel.partial] if channel.partial else [])]

    def publish(self, name: str, caption: Caption, timing: CaptionTiming) -> None:
        channel = self._channels.get(name)
        if channel is None:
            return
        if caption.is_final:
            channel.partial = None
            if caption.text.strip():
                channel.finals.append((caption, timing))
        else:
            channel.partial = (caption, timing)
        for viewer in list(channel.viewers):
            viewer.deliver_caption(caption, timing)

    def leave(self, member: object) -> None:
        """A session ended: it stops publishing (its dangling partial is dropped) and viewing."""
        for name, channel in list(self._channels.items()):
            if channel.publisher is member:
                channel.publisher, channel.partial = None, None
            channel.viewers = [v for v in channel.viewers if v is not member]
            if channel.publisher is None and not channel.viewers:
                del self._channels[name]

    def stats(self) -> dict[str, int]:
        """Viewers per channel (for /healthz)."""
        return {name: len(c.viewers) for name, c in self._channels.items()}
