"""`rtaudio <command>`: one console script; each command lives in its subsystem's `commands` module.

A command module provides `HELP` (one line), `add_arguments(parser)` and `run(args) -> int`.
Modules are imported lazily so `rtaudio --help` stays fast and never loads a model.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from rtaudio.errors import RtAudioError
from rtaudio.log import setup_logging

COMMANDS: dict[str, str] = {
    "models": "rtaudio.modelstore.commands",
    "serve": "rtaudio.server.commands",
    "demo": "rtaudio.server.demo",
    "caption": "rtaudio.stt.caption_command",
    "transcribe": "rtaudio.stt.transcribe_command",
    "say": "rtaudio.tts.say_command",
    "dub": "rtaudio.tts.dub_command",
    "edit": "rtaudio.edit_command",
    "client": "rtaudio.server.client_command",
    "assistant": "rtaudio.assistant.commands",
    "bench": "rtaudio.stt.bench_command",
}


def _load(module_name: str):  # type: ignore[no-untyped-def]
    """Import a command module; None while that subsystem has not landed yet."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name == module_name:
            return None
        raise


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rtaudio", description="Streaming real-time audio engine for live speech.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name, module_name in COMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name, help=f"(run `rtaudio {name} --help`)", add_help=False)
            continue
        module = _load(module_name)
        if module is None:
            continue
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only=command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0 if command is None else 2
    try:
        return int(args._run(args) or 0)
    except RtAudioError as e:
        print(f"rtaudio: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
