"""OpenAI-style HTTP audio endpoints.

POST /v1/audio/speech          JSON {input, voice, response_format: wav|pcm, stream_format: audio|sse}
                               -> audio streamed as it is synthesized (chunked transfer encoding);
                               `pcm` is 24 kHz 16-bit mono like OpenAI's, `wav` is a streaming WAV at
                               the voice's rate (sizes set to 0xFFFFFFFF since they are unknown).
POST /v1/audio/transcriptions  multipart/form-data {file, model, language, prompt, response_format:
                               json|text|srt|vtt|verbose_json, timestamp_granularities[]}
Errors come back as {"error": {"message", "type", "code"}} with our stable codes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rtaudio.dsp.resample import Resampler
from rtaudio.errors import ConfigError, RtAudioError, TextError, UnknownModelError, UnsupportedFormatError
from rtaudio.server.config import Encoding, ServerLimits
from rtaudio.server.engine import ModelHub, WorkerPools
from rtaudio.server.http import (
    HttpRequest,
    HttpResponse,
    encode_chunk,
    error_response,
    json_response,
    parse_multipart,
)
from rtaudio.server.metrics import ServerMetrics
from rtaudio.server.wire import encode_pcm

OPENAI_PCM_RATE_HZ = 24000
OPENAI_VOICES = {"alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse"}
SPEECH_FORMATS = {"wav": "audio/wav", "pcm": "audio/pcm"}
TRANSCRIPT_FORMATS = {"json", "text", "srt", "vtt", "verbose_json"}


def streaming_wav_header(rate_hz: int) -> bytes:
    """A 16-bit mono WAV header whose sizes are 0xFFFFFFFF: the length is not known while streaming."""
    return (b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE" + b"fmt " +
            struct.pack("<IHHIIHH", 16, 1, 1, rate_hz, rate_hz * 2, 2, 16) + b"data" + struct.pack("<I", 0xFFFFFFFF))


def _http_status(error: RtAudioError) -> int:
    return 404 if isinstance(error, UnknownModelError) else 400


def _next(it: Iterator[np.ndarray]) -> np.ndarray | None:
    return next(it, None)


class OpenAIAudioEndpoints:
    def __init__(self, hub: ModelHub, pools: WorkerPools, metrics: ServerMetrics, limits: ServerLimits) -> None:
        self.hub, self.pools, self.metrics, self.limits = hub, pools, metrics, limits
        self.routes = {"/v1/audio/speech": self.speech, "/v1/audio/transcriptions": self.transcriptions}

    async def handle(self, req: HttpRequest, writer: asyncio.StreamWriter) -> int:
        """Serve one request; returns the HTTP status sent."""
        try:
            return await self.routes[req.path](req, writer)
        except RtAudioError as e:
            self.metrics.errors.inc(1, e.code)
            response = error_response(_http_status(e), e.code, str(e))
        writer.write(response.serialize())
        await writer.drain()
        return response.status

    # -- speech --------------------------------------------------------------------------------------
    def _speech_request(self, req: HttpRequest) -> tuple[str, str, str, str, float]:
        body = req.json()
        if not isinstance(body, dict):
            raise ConfigError("body must be a JSON object")
        text = body.get("input")
        if not isinstance(text, str) or not text.strip():
            raise TextError('"input" must be a non-empty string')
        if len(text) > self.limits.max_tts_chars:
            raise TextError(f'"input" longer than {self.limits.max_tts_chars} characters')
        voice = body.get("voice") or self.hub.config.voices[0]
        if voice in OPENAI_VOICES:
            voice = self.hub.config.voices[0]
        self.hub.check_voice(str(voice))
        fmt = body.get("response_format", "wav")
        if fmt not in SPEECH_FORMATS:
            raise UnsupportedFormatError(f"response_format {fmt!r} is not supported; use one of {sorted(SPEECH_FORMATS)}")
        stream_format = body.get("stream_format", "audio")
        if stream_format not in ("audio", "sse"):
            raise ConfigError("stream_format must be 'audio' or 'sse'")
        speed = body.get("speed", 1.0)
        if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not 0.25 <= speed <= 4.0:
            raise ConfigError('"speed" must be a number in [0.25, 4]')
        return text, str(voice), fmt, stream_format, float(speed)

    async def speech(self, req: HttpRequest, writer: asyncio.StreamWriter) -> int:
        from rtaudio.tts.config import SynthesisConfig

        text, voice_name, fmt, stream_format, speed = self._speech_request(req)
        voice = await self.pools.run_tts(self.hub.voice, voice_name)
        out_rate = OPENAI_PCM_RATE_HZ if fmt == "pcm" else voice.sample_rate
        resampler = Resampler(voice.sample_rate, out_rate) if out_rate != voice.sample_rate else None
        it = await self.pools.run_tts(voice.stream, text, SynthesisConfig(speed=speed))
        first = await self.pools.run_tts(_next, it)  # errors in the text surface before the 200 goes out
        sse = stream_format == "sse"
        content_type = "text/event-stream" if sse else SPEECH_FORMATS[fmt]
        writer.write(HttpResponse(200, content_type=content_type).head(chunked=True))
        samples = 0

        async def send(data: bytes) -> None:
            if sse:
                event = {"type": "speech.audio.delta", "audio": base64.b64encode(data).decode()}
                data = f"data: {json.dumps(event)}\n\n".encode()
            writer.write(encode_chunk(data))
            await writer.drain()

        if fmt == "wav" and not sse:
            writer.write(encode_chunk(streaming_wav_header(out_rate)))
        chunk = first
        try:
            while True:
                last = chunk is None
                if last:
                    chunk = resampler.flush() if resampler is not None else None
                elif resampler is not None and chunk is not None:
                    chunk = resampler.push(chunk)
                if chunk is not None and len(chunk):
                    samples += len(chunk)
                    await send(encode_pcm(chunk, Encoding.PCM_S16LE))
                if last:
                    break
                chunk = await self.pools.run_tts(_next, it)
        except Exception as e:  # the 200 is out: end the stream abruptly so the client sees it is cut
            self.metrics.errors.inc(1, getattr(e, "code", "internal_error"))
            writer.transport.abort()
            return 200
        if sse:
            done = {"type": "speech.audio.done", "usage": {"input_tokens": len(text.split()), "output_tokens": 0,
                                                             "total_tokens": len(text.split())}}
            writer.write(encode_chunk(f"data: {json.dumps(done)}\n\n".encode()))
        writer.write(encode_chunk(b""))
        await writer.drain()
        self.metrics.tts_seconds.inc(samples / out_rate)
        return 200

    # -- transcriptions ------------------------------------------------------------------------------
    async def transcriptions(self, req: HttpRequest, writer: asyncio.StreamWriter) -> int:
        form = parse_multipart(req.body, req.headers.get("content-type", ""))
        field = {k: v[0].text for k, v in form.items() if k != "file"}
        files = form.get("file")
        if not files or not files[0].data:
            raise ConfigError('multipart field "file" (the audio) is required')
        fmt = field.get("response_format", "json")
        if fmt not in TRANSCRIPT_FORMATS:
            raise UnsupportedFormatError(f"response_format {fmt!r} not supported; use one of {sorted(TRANSCRIPT_FORMATS)}")
        if field.get("stream", "false").lower() == "true":
            raise ConfigError("stream=true is not supported here; use the /v1/realtime or /v1/stream websocket")
        model = field.get("model", "")
        model = model if model in self.hub.config.models else self.hub.default_model
        granularities = [p.text for p in form.get("timestamp_granularities[]", [])]
        words = "word" in granularities or fmt in ("srt", "vtt", "verbose_json")
        started = asyncio.get_running_loop().time()
        transcript, duration_s = await self.pools.run_decode(
            self._transcribe, files[0].data, files[0].filename or "audio", model, field.get("language") or None,
            field.get("prompt") or None, words)
        self.metrics.latency.observe(asyncio.get_running_loop().time() - started, "http_transcription")
        self.metrics.audio_seconds.inc(duration_s)
        response = self._render(transcript, fmt, duration_s, "word" in granularities)
        writer.write(response.serialize())
        await writer.drain()
        return response.status

    def _transcribe(self, data: bytes, filename: str, model: str, language: str | None, prompt: str | None,
                    words: bool) -> tuple[Any, float]:
        """Worker thread: transcribe the upload (any format rtaudio.io.files reads) offline, long-form."""
        from rtaudio.stt.decoding import DecodeOptions
        from rtaudio.stt.transcribe import transcribe_file

        suffix = Path(filename).suffix[:10] or ".bin"
        fd, tmp = tempfile.mkstemp(prefix="rtaudio-upload-", suffix=suffix)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            options = DecodeOptions(language=language, word_timestamps=words)
            transcript = transcribe_file(self.hub.recognizer(model), tmp, options=options, prompt=prompt)
        finally:
            os.unlink(tmp)
        return transcript, transcript.duration_s

    def _render(self, transcript: Any, fmt: str, duration_s: float, word_list: bool) -> HttpResponse:
        text = transcript.text
        if fmt == "json":
            return json_response({"text": text, "usage": {"type": "duration", "seconds": round(duration_s, 3)}})
        if fmt == "text":
            return HttpResponse(200, (text + "\n").encode(), "text/plain; charset=utf-8")
        if fmt in ("srt", "vtt"):
            from rtaudio.stt.subtitles import build_cues, to_srt, to_vtt

            cues = build_cues(transcript.segments)
            body = to_srt(cues) if fmt == "srt" else to_vtt(cues)
            return HttpResponse(200, body.encode(), "text/vtt; charset=utf-8" if fmt == "vtt" else
                                "application/x-subrip; charset=utf-8")
        segments = [{"id": i, "seek": 0, "start": round(s.start_s, 3), "end": round(s.end_s, 3), "text": s.text,
                     "tokens": list(s.tokens), "temperature": s.temperature, "avg_logprob": s.avg_logprob,
                     "compression_ratio": s.compression_ratio, "no_speech_prob": s.no_speech_prob}
                    for i, s in enumerate(transcript.segments)]
        verbose: dict[str, Any] = {"task": "transcribe", "language": transcript.language or "en",
                                "duration": round(duration_s, 3), "text": text, "segments": segments}
        if word_list:
            verbose["words"] = [{"word": w.text.strip(), "start": round(w.start_s, 3), "end": round(w.end_s, 3)}
                             for w in transcript.words]
        return json_response(verbose)
