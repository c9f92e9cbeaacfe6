"""Chunked flow + HiFi-GAN decoding of VITS latents, so audio streams out before the utterance is done.

Both networks are stacks of local convolutions, so a window of latent frames with enough context on
each side reproduces the whole-utterance output for its centre. The flow runs ahead of the decoder
in blocks; the decoder runs on growing chunks; joins are blended with a short raised-cosine fade
taken from the previous chunk's right context.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from rtaudio.tts.config import ChunkSchedule

Flow = Callable[[np.ndarray], np.ndarray]
"""z_p (1, C, n) float32 -> z (1, C, n) float32."""
Decoder = Callable[[np.ndarray], np.ndarray]
"""z (1, C, n) float32 -> audio (n * hop,) float32."""


def _fade_in(n: int) -> np.ndarray:
    return (0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)).astype(np.float32)


class ChunkedVocoder:
    """Latents -> audio chunks in order; stateless between calls, so one instance serves many streams."""

    def __init__(self, flow: Flow, decoder: Decoder, hop_samples: int, schedule: ChunkSchedule | None = None) -> None:
        self.flow = flow
        self.decoder = decoder
        self.hop = hop_samples
        self.schedule = schedule or ChunkSchedule()

    def render(self, z_p: np.ndarray) -> Iterator[np.ndarray]:
        """Yield float32 chunks covering `z_p.shape[2] * hop` samples in order."""
        s = self.schedule
        hop, n_frames = self.hop, z_p.shape[2]
        z = np.empty_like(z_p)
        z_ready = 0
        start, size = 0, s.first_chunk_frames
        tail: np.ndarray | None = None
        while start < n_frames:
            end = min(n_frames, start + size)
            need = min(n_frames, end + s.decoder_context_frames)
            if need > z_ready:
                # run ahead by up to the next chunk's size: not at all for the first chunk (latency),
                # little while chunks are small (the audio buffered is small too), fully later
                ahead = 0 if z_ready == 0 else min(s.flow_lookahead_frames, 2 * size)
                target = min(n_frames, need + ahead)
                lo, hi = max(0, z_ready - s.flow_context_frames), min(n_frames, target + s.flow_context_frames)
                out = self.flow(np.ascontiguousarray(z_p[:, :, lo:hi]))
                z[:, :, z_ready:target] = out[:, :, z_ready - lo:target - lo]
                z_ready = target
            lo = max(0, start - s.decoder_context_frames)
            audio = self.decoder(np.ascontiguousarray(z[:, :, lo:need]))
            chunk = audio[(start - lo) * hop:(end - lo) * hop].copy()
            if tail is not None and len(tail):
                n = min(len(tail), len(chunk))
                w = _fade_in(n)
                chunk[:n] = tail[:n] * (1.0 - w) + chunk[:n] * w
            tail = audio[(end - lo) * hop:(end - lo) * hop + s.crossfade_samples] if end < n_frames else None
            yield chunk
            start, size = end, min(s.max_chunk_frames, size * 2)
