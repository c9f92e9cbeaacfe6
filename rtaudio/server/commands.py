"""`rtaudio serve`: the websocket + HTTP server on one port (127.0.0.1:8765 by default)."""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any

from rtaudio.server.config import AssistantServiceConfig, ServerConfig, ServerLimits
from rtaudio.server.engine import resolve_backend

HELP = "serve live captions and speech over websockets + HTTP (browser page at /)"


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by `serve` and `demo`."""
    d, lim = ServerConfig(), ServerLimits()
    parser.add_argument("--host", default=d.host, help=f"address to bind (default {d.host})")
    parser.add_argument("--port", type=int, default=d.port, help=f"TCP port, 0 for any (default {d.port})")
    parser.add_argument("--token", default=os.environ.get("RTAUDIO_TOKEN"),
                        help="require this token from clients (default: $RTAUDIO_TOKEN, else no auth)")
    parser.add_argument("--model", action="append", dest="models", metavar="NAME",
                        help=f"recognizer model to serve (repeatable; first is the default; default {d.models[0]})")
    parser.add_argument("--voice", action="append", dest="voices", metavar="NAME",
                        help=f"TTS voice to serve (repeatable; default {d.voices[0]})")
    parser.add_argument("--decode-workers", type=int, default=d.decode_workers,
                        help=f"recognizer worker threads (default {d.decode_workers})")
    parser.add_argument("--stt-backend", choices=["auto", "onnx", "batched"], default=d.stt_backend,
                        help="caption sessions: per-session ONNX passes on CPU threads, or one batch for all on "
                             "the PyTorch backend (a GPU); auto picks batched where PyTorch sees CUDA "
                             f"(default {d.stt_backend})")
    parser.add_argument("--batched-pack", metavar="DIR", default=None,
                        help="models for the batched backend from a folder packed by tools/gpu_pack.py "
                             "(a GPU host without network)")
    parser.add_argument("--max-sessions", type=int, default=lim.max_sessions,
                        help=f"concurrent websocket sessions (default {lim.max_sessions})")
    parser.add_argument("--idle-timeout", type=float, default=lim.idle_timeout_s, metavar="S",
                        help=f"close sessions silent for this long (default {lim.idle_timeout_s:g} s)")
    parser.add_argument("--allow-origin", action="append", dest="origins", metavar="URL",
                        help="a web page origin (https://example.org) allowed to use the server, besides its own "
                             "page; '*' allows any (repeatable)")
    parser.add_argument("--tls-cert", metavar="PEM", help="serve https/wss with this certificate chain")
    parser.add_argument("--tls-key", metavar="PEM", help="private key for --tls-cert")
    a = AssistantServiceConfig()
    parser.add_argument("--responder", choices=["echo", "openai"], default=a.responder,
                        help="who answers /v1/assistant sessions: echo (offline rules, default) or openai "
                             "(an OpenAI-compatible chat server: llama.cpp, Ollama, vLLM)")
    parser.add_argument("--llm-base-url", default=a.llm_base_url, metavar="URL",
                        help=f"chat server for --responder openai (default {a.llm_base_url})")
    parser.add_argument("--llm-model", default=a.llm_model, help=f"chat model name (default {a.llm_model})")
    parser.add_argument("--llm-api-key-env", default=a.llm_api_key_env, metavar="VAR",
                        help=f"environment variable with the chat server's API key (default {a.llm_api_key_env})")


def server_config(args: argparse.Namespace) -> ServerConfig:
    d = ServerConfig()
    limits = ServerLimits(max_sessions=args.max_sessions, idle_timeout_s=args.idle_timeout)
    return ServerConfig(host=args.host, port=args.port, token=args.token or None, tls_certfile=args.tls_cert,
                        tls_keyfile=args.tls_key, decode_workers=args.decode_workers, stt_backend=args.stt_backend,
                        # a GPU host fed a pack has no network: voices load on first use, not at start
                        batched_pack=args.batched_pack, preload_voice=not args.batched_pack,
                        models=tuple(args.models or d.models), voices=tuple(args.voices or d.voices), limits=limits,
                        allowed_origins=tuple(args.origins or ()), processes=getattr(args, "processes", 1),
                        shared_engine=not getattr(args, "engine_per_process", False),
                        assistant=AssistantServiceConfig(args.responder, args.llm_base_url, args.llm_model,
                                                         args.llm_api_key_env))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_server_arguments(parser)
    parser.add_argument("--processes", type=int, default=1, metavar="N",
                        help="server processes sharing the port, each with its own sessions (limits apply per "
                             "process); for more live sessions than one Python process can parse, e.g. the batched "
                             "backend on a GPU, where they share one engine process (default 1)")
    parser.add_argument("--engine-per-process", action="store_true",
                        help="with --processes and the batched backend: an engine in each process instead of one "
                             "engine process that batches every process's sessions together")


async def serve(config: ServerConfig, while_serving: Callable[[str], Coroutine[Any, Any, None]] | None = None,
                announce: bool = True) -> None:
    """Run the server until SIGINT/SIGTERM (or until `while_serving(url)` returns), then shut down
    gracefully: sessions get `shutdown_grace_s` to flush their final captions."""
    from rtaudio.server.app import Server

    server = Server(config)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread / not supported
            pass
    serving = asyncio.create_task(server.serve_forever())
    waiters: list[asyncio.Task[Any]] = [asyncio.create_task(stop.wait())]
    if while_serving is not None:
        waiters.append(asyncio.create_task(while_serving(server.url)))
    elif announce:
        print(f"rtaudio server on {server.url}  (page: {server.url}/, websocket: "
              f"{server.url.replace('http', 'ws', 1)}/v1/stream); Ctrl-C stops", file=sys.stderr, flush=True)
    try:
        done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()  # surface errors of while_serving
    finally:
        for task in waiters:
            task.cancel()
        await server.shutdown()
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)


def run(args: argparse.Namespace) -> int:
    config = server_config(args)
    spawn = multiprocessing.get_context("spawn")
    host = None
    if config.processes > 1 and config.shared_engine and resolve_backend(config.stt_backend) == "batched":
        config, host = _start_engine_host(config, spawn)
    others = [spawn.Process(target=_serve_quietly, args=(config,), daemon=True) for _ in range(config.processes - 1)]
    for p in others:
        p.start()
    try:
        asyncio.run(serve(config))
    finally:
        for p in others:  # SIGTERM: each flushes its sessions' finals, as this one did
            p.terminate()
        for p in others:
            p.join(config.shutdown_grace_s + 5.0)
            if p.is_alive():
                p.kill()
        if host is not None:  # after the front-ends: their last finals decode there
            host.terminate()
            host.join(5.0)
    return 0


def _start_engine_host(config: ServerConfig, spawn: Any) -> tuple[ServerConfig, Any]:
    """Start the one engine process of `--processes N` (batched backend) and wait until its models are loaded."""
    from rtaudio.stt.engine_host import EngineAddress, run_engine_host

    address = EngineAddress.fresh()
    ready = spawn.Event()
    host = spawn.Process(target=run_engine_host, name="rtaudio-engine", daemon=True,
                         args=(list(config.models), address, config.batched_pack, "auto", ready))
    host.start()
    while not ready.wait(0.5):
        if not host.is_alive():
            raise SystemExit(f"the engine process failed to start (exit code {host.exitcode}); see its log above")
    return replace(config, engine_address=address), host


def _serve_quietly(config: ServerConfig) -> None:
    """A further server process of `--processes` (the first one announces the address)."""
    asyncio.run(serve(config, announce=False))
