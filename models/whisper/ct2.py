"""Read CTranslate2's `model.bin` without depending on ctranslate2.

Layout (little-endian), as written by ctranslate2's `ModelSpec.save` (binary version 6):

    u32 binary_version | str spec_name | u32 spec_revision | u32 n_variables
    n_variables x ( str name | u8 rank | rank x u32 dim | u8 dtype_id | u32 n_bytes | n_bytes data )
    u32 n_aliases | n_aliases x ( str alias | str target )

where `str` is a u16 length (including a trailing NUL) followed by the UTF-8 bytes and the NUL.
A model may be shipped split into parts (`model.bin.part1`, `.part2`, ...) that concatenate to it.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

DTYPES: dict[int, type[np.generic]] = {
    0: np.float32,
    1: np.int8,
    2: np.int16,
    3: np.int32,
    4: np.float16,
}
"""CTranslate2 DataType ids. (5, bfloat16, is not handled: numpy has no bfloat16.)"""

SUPPORTED_VERSIONS = (5, 6)


class Ct2FormatError(ValueError):
    """The file is not a CTranslate2 model.bin this reader understands."""


@dataclass(frozen=True)
class Ct2Model:
    spec_name: str
    revision: int
    variables: dict[str, np.ndarray]
    """Variable name -> array (aliases resolved to the same array object)."""

    def scalar(self, name: str) -> int:
        return int(self.variables[name].reshape(()))


class _Reader:
    """Sequential reads over the concatenation of several files (a split model.bin)."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self._paths = list(paths)
        self._files: list[BinaryIO] = []
        self._index = 0

    def __enter__(self) -> _Reader:
        self._files = [open(p, "rb") for p in self._paths]  # noqa: SIM115 - closed in __exit__
        return self

    def __exit__(self, *exc: object) -> None:
        for f in self._files:
            f.close()

    def read(self, n: int) -> bytes:
        chunks = []
        while n > 0 and self._index < len(self._files):
            data = self._files[self._index].read(n)
            if len(data) < n:
                self._index += 1
            chunks.append(data)
            n -= len(data)
        if n > 0:
            raise Ct2FormatError(f"unexpected end of file in {', '.join(map(str, self._paths))}")
        return b"".join(chunks)

    def unpack(self, fmt: str) -> tuple[int, ...]:
        return struct.unpack("<" + fmt, self.read(struct.calcsize("<" + fmt)))

    def string(self) -> str:
        (n,) = self.unpack("H")
        return self.read(n)[:-1].decode("utf-8")


def read_ct2_model(paths: Path | Sequence[Path]) -> Ct2Model:
    """Parse a model.bin (or its parts, in order) into numpy arrays (dtype as stored, e.g. float16)."""
    parts = [paths] if isinstance(paths, Path) else list(paths)
    with _Reader(parts) as r:
        (version,) = r.unpack("I")
        if version not in SUPPORTED_VERSIONS:
            raise Ct2FormatError(f"unsupported CTranslate2 binary version {version}")
        spec_name = r.string()
        (revision,) = r.unpack("I")
        (n_vars,) = r.unpack("I")
        variables: dict[str, np.ndarray] = {}
        for _ in range(n_vars):
            name = r.string()
            (rank,) = r.unpack("B")
            shape = r.unpack("I" * rank) if rank else ()
            (dtype_id,) = r.unpack("B")
            (n_bytes,) = r.unpack("I")
            if dtype_id not in DTYPES:
                raise Ct2FormatError(f"variable {name!r} has unsupported dtype id {dtype_id}")
            array = np.frombuffer(r.read(n_bytes), dtype=DTYPES[dtype_id])
            if array.size != int(np.prod(shape)):
                raise Ct2FormatError(f"variable {name!r}: {n_bytes} bytes do not fit shape {shape}")
            variables[name] = array.reshape(shape)
        (n_aliases,) = r.unpack("I")
        for _ in range(n_aliases):
            alias, target = r.string(), r.string()
            variables[alias] = variables[target]
    return Ct2Model(spec_name, revision, variables)


def model_bin_parts(raw_dir: Path) -> list[Path]:
    """`raw_dir/model.bin`, or its `model.bin.partN` pieces in numeric order."""
    whole = raw_dir / "model.bin"
    if whole.is_file():
        return [whole]
    parts = sorted(raw_dir.glob("model.bin.part*"), key=lambda p: int(p.suffix.removeprefix(".part") or 0))
    if not parts:
        raise FileNotFoundError(f"no model.bin or model.bin.part* in {raw_dir}")
    return parts


def faster_whisper_folder(raw_dir: Path, out_dir: Path) -> Path:
    """A folder CTranslate2 / faster-whisper can load from the model store's raw files (for comparisons
    in tests and benchmarks): links to model.bin (parts joined), config.json, tokenizer.json, plus
    the vocabulary.txt that the store does not keep, rebuilt from tokenizer.json (ids in order, then
    the timestamp tokens <|0.00|> .. <|30.00|>)."""
    from tokenizers import Tokenizer

    out_dir.mkdir(parents=True, exist_ok=True)
    parts = model_bin_parts(raw_dir)
    target = out_dir / "model.bin"
    if not target.exists():
        if len(parts) == 1:
            target.symlink_to(parts[0].resolve())
        else:
            with open(target, "wb") as dst:
                for part in parts:
                    dst.write(part.read_bytes())
    for name in ("config.json", "tokenizer.json"):
        if not (out_dir / name).exists():
            (out_dir / name).symlink_to((raw_dir / name).resolve())
    vocab = Tokenizer.from_file(str(raw_dir / "tokenizer.json")).get_vocab(with_added_tokens=True)
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    n_vocab = read_ct2_model(parts).variables["decoder/embeddings/weight"].shape[0]
    tokens += [f"<|{i * 0.02:.2f}|>" for i in range(n_vocab - len(tokens))]
    (out_dir / "vocabulary.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return out_dir
