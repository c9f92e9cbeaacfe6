"""Model supply: pinned wheels, sha256 checks, damaged caches rebuilt, clear offline errors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from rtaudio.errors import ModelIntegrityError, ModelNotFetchedError, UnknownModelError
from rtaudio.modelstore import ModelCache, get_spec
from rtaudio.modelstore.cache import pip_download, wheelhouse_downloader

VAD = get_spec("silero-vad")


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real silero-vad wheel, downloaded once from the package index."""
    folder = tmp_path_factory.mktemp("wheels")
    return pip_download(VAD.sources[0], folder).parent


class CountingDownloader:
    def __init__(self, folder: Path) -> None:
        self.inner = wheelhouse_downloader(folder)
        self.calls = 0

    def __call__(self, source, dest):  # type: ignore[no-untyped-def]
        self.calls += 1
        return self.inner(source, dest)


def test_fetch_verifies_and_second_fetch_is_a_cache_hit(tmp_path: Path, wheelhouse: Path) -> None:
    dl = CountingDownloader(wheelhouse)
    cache = ModelCache(tmp_path, downloader=dl, show_progress=False)
    assert not cache.is_ready("vad")
    path = cache.fetch("vad")
    assert (path / "raw" / "silero_vad.onnx").stat().st_size > 1_000_000
    assert cache.problems("silero-vad", deep=True) == []
    cache.fetch("silero-vad")
    assert dl.calls == 1, "a valid cache must not download again"


def test_truncated_file_is_detected_and_rebuilt(tmp_path: Path, wheelhouse: Path) -> None:
    cache = ModelCache(tmp_path, downloader=wheelhouse_downloader(wheelhouse), show_progress=False)
    onnx = cache.fetch("silero-vad") / "raw" / "silero_vad.onnx"
    with open(onnx, "r+b") as f:
        f.truncate(1000)
    assert any("truncated" in p for p in cache.problems("silero-vad"))
    with pytest.raises(ModelNotFetchedError, match="rtaudio models fetch silero-vad"):
        cache.path("silero-vad")
    cache.fetch("silero-vad")
    assert onnx.stat().st_size > 1_000_000
    assert cache.problems("silero-vad", deep=True) == []


def test_corrupted_bytes_of_same_size_fail_deep_verify(tmp_path: Path, wheelhouse: Path) -> None:
    cache = ModelCache(tmp_path, downloader=wheelhouse_downloader(wheelhouse), show_progress=False)
    onnx = cache.fetch("silero-vad") / "raw" / "silero_vad.onnx"
    st = onnx.stat()
    with open(onnx, "r+b") as f:
        f.seek(5000)
        f.write(b"\x00" * 16)
    os.utime(onnx, ns=(st.st_atime_ns, st.st_mtime_ns))  # hide it from the quick check
    assert cache.problems("silero-vad") == []
    assert cache.problems("silero-vad", deep=True) == ["raw/silero_vad.onnx: sha256 mismatch"]


def test_wheel_with_wrong_hash_is_refused(tmp_path: Path, wheelhouse: Path) -> None:
    forged = tmp_path / "forged"
    forged.mkdir()
    real = next(wheelhouse.glob("*.whl"))
    with zipfile.ZipFile(real) as src, zipfile.ZipFile(forged / real.name, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            dst.writestr(item, data[:-1] + b"!" if item.filename.endswith(".onnx") else data)
    cache = ModelCache(tmp_path / "home", downloader=wheelhouse_downloader(forged), show_progress=False)
    with pytest.raises(ModelIntegrityError, match="does not match the pinned"):
        cache.fetch("silero-vad")
    assert not cache.is_ready("silero-vad")
    assert not list((tmp_path / "home" / "models").glob(".silero-vad-*")), "no half-built folder left behind"


def test_truncated_wheel_is_refused(tmp_path: Path, wheelhouse: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    real = next(wheelhouse.glob("*.whl"))
    (bad / real.name).write_bytes(real.read_bytes()[: real.stat().st_size // 2])
    cache = ModelCache(tmp_path / "home", downloader=wheelhouse_downloader(bad), show_progress=False)
    with pytest.raises(ModelIntegrityError):
        cache.fetch("silero-vad")


def test_offline_with_empty_cache_gives_one_clear_error(tmp_path: Path) -> None:
    env = dict(os.environ, RTAUDIO_HOME=str(tmp_path), PIP_INDEX_URL="http://127.0.0.1:9/simple",
               PIP_EXTRA_INDEX_URL="", PIP_FIND_LINKS="", PIP_NO_CACHE_DIR="1", PIP_RETRIES="0", PIP_TIMEOUT="2",
               PIP_CONSTRAINT="")
    proc = subprocess.run([sys.executable, "-m", "rtaudio.cli", "models", "fetch", "silero-vad"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "could not download silero-vad==6.2.3" in proc.stderr
    assert "pip download --no-deps silero-vad==6.2.3" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_model_names_the_known_ones() -> None:
    with pytest.raises(UnknownModelError, match="whisper-tiny.en"):
        get_spec("whisper-huge")


def test_models_list_and_path_cli(tmp_path: Path, wheelhouse: Path) -> None:
    env = dict(os.environ, RTAUDIO_HOME=str(tmp_path))
    run = lambda *a: subprocess.run([sys.executable, "-m", "rtaudio.cli", "models", *a],  # noqa: E731
                                    env=env, capture_output=True, text=True, timeout=120)
    assert run("fetch", "--from", str(wheelhouse), "silero-vad").returncode == 0
    listing = run("list").stdout
    assert "silero-vad==6.2.3" in listing and "ready" in listing
    path = run("path", "silero-vad")
    assert path.returncode == 0 and Path(path.stdout.strip()).is_dir()
    assert run("verify", "silero-vad").stdout.strip() == "silero-vad: ok"
    shutil.rmtree(tmp_path / "models")
    missing = run("path", "silero-vad")
    assert missing.returncode == 1 and "rtaudio models fetch silero-vad" in missing.stderr
