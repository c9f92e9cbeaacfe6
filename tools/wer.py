"""Word error rate of transcripts against a manifest, per file group and pooled.

    .venv/bin/python tools/wer.py HYPOTHESES.tsv [--manifest M.tsv] [--json OUT.json]
    .venv/bin/python tools/wer.py --model tiny.en [--manifest M.tsv]     # transcribe, then score

HYPOTHESES.tsv has lines `file<TAB>text`. The manifest (default ../shared/speech/dev/manifest.tsv or
$RTAUDIO_SPEECH_DIR/dev/manifest.tsv) has columns file, duration_s, transcript, ...
Groups are file-name prefixes (an4_, ljspeech_, long_, mfa_, librispeech_, vctk_, libritts_, and
jfk_/beckett_ together as "quotes"). Texts are normalised with rtaudio.stt.textnorm.normalize_english.
Pooled WER = all errors / all reference words (long files weigh by their word count).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import jiwer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rtaudio.stt.textnorm import normalize_english  # noqa: E402

GROUPS = (("long_", "long"), ("an4_", "an4"), ("ljspeech_", "ljspeech"), ("mfa_", "mfa"),
          ("librispeech_", "librispeech"), ("vctk_", "vctk"), ("libritts_", "libritts"),
          ("jfk_", "quotes"), ("beckett_", "quotes"))


@dataclass(frozen=True)
class Utterance:
    file: str
    duration_s: float
    transcript: str


def speech_dir() -> Path:
    return Path(os.environ.get("RTAUDIO_SPEECH_DIR", REPO.parent / "shared" / "speech"))


def read_manifest(path: Path) -> list[Utterance]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    header = rows[0]
    i_file, i_dur, i_text = header.index("file"), header.index("duration_s"), header.index("transcript")
    return [Utterance(r[i_file], float(r[i_dur]), r[i_text]) for r in rows[1:] if r]


def group_of(file: str) -> str:
    for prefix, name in GROUPS:
        if file.startswith(prefix):
            return name
    return "other"


@dataclass(frozen=True)
class GroupScore:
    files: int
    words: int
    errors: int
    audio_s: float

    @property
    def wer(self) -> float:
        return self.errors / self.words if self.words else 0.0


def _errors(ref: str, hyp: str) -> tuple[int, int]:
    """(substitutions + deletions + insertions, reference words) after normalisation."""
    ref_n, hyp_n = normalize_english(ref), normalize_english(hyp)
    n_ref = len(ref_n.split())
    if not n_ref:
        return len(hyp_n.split()), 0
    if not hyp_n:
        return n_ref, n_ref
    out = jiwer.process_words(ref_n, hyp_n)
    return out.substitutions + out.deletions + out.insertions, n_ref


def score(utterances: Sequence[Utterance], hypotheses: Mapping[str, str]) -> dict[str, GroupScore]:
    """Per group and "pooled"; a file without a hypothesis counts as all deletions."""
    acc: dict[str, list[float]] = {}
    for u in utterances:
        errors, words = _errors(u.transcript, hypotheses.get(u.file, ""))
        for name in (group_of(u.file), "pooled"):
            a = acc.setdefault(name, [0, 0, 0, 0.0])
            a[0] += 1
            a[1] += words
            a[2] += errors
            a[3] += u.duration_s
    return {k: GroupScore(int(v[0]), int(v[1]), int(v[2]), v[3]) for k, v in acc.items()}


def format_table(scores: Mapping[str, Mapping[str, GroupScore]]) -> str:
    """Rows = groups, columns = systems (WER in percent)."""
    systems = list(scores)
    groups = sorted({g for s in scores.values() for g in s}, key=lambda g: (g == "pooled", g))
    lines = [f"{'group':<12} {'files':>5} {'words':>6} " + " ".join(f"{s:>16}" for s in systems)]
    for g in groups:
        first = next(s[g] for s in scores.values() if g in s)
        cells = " ".join(f"{scores[s][g].wer * 100:15.2f}%" if g in scores[s] else f"{'-':>16}" for s in systems)
        lines.append(f"{g:<12} {first.files:>5} {first.words:>6} {cells}")
    return "\n".join(lines)


def as_json(scores: Mapping[str, GroupScore]) -> dict[str, dict[str, float]]:
    return {g: {"wer": s.wer, "errors": s.errors, "words": s.words, "files": s.files, "audio_s": s.audio_s}
            for g, s in scores.items()}


def _transcribe_all(model: str, utterances: Sequence[Utterance], folder: Path) -> dict[str, str]:
    from rtaudio.io.files import read_audio
    from rtaudio.stt.recognizer import WhisperRecognizer

    recognizer = WhisperRecognizer.load(model)
    out = {}
    for u in utterances:
        audio, _ = read_audio(folder / u.file, target_rate_hz=16000)
        out[u.file] = recognizer.transcribe(audio).text
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("hypotheses", nargs="?", type=Path, help="TSV file<TAB>text")
    p.add_argument("--manifest", type=Path, default=speech_dir() / "dev" / "manifest.tsv")
    p.add_argument("--model", help="transcribe the manifest's files with this rtaudio model instead")
    p.add_argument("--json", type=Path, help="write the scores here")
    p.add_argument("--subset", action="store_true",
                   help="score only the files that have a hypothesis (default: missing files count as deleted)")
    args = p.parse_args(argv)
    utterances = read_manifest(args.manifest)
    if args.model:
        hyps = _transcribe_all(args.model, utterances, args.manifest.parent)
        name = args.model
    elif args.hypotheses:
        with open(args.hypotheses, newline="", encoding="utf-8") as f:
            hyps = {r[0]: (r[1] if len(r) > 1 else "") for r in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)}
        name = args.hypotheses.stem
    else:
        p.error("give a hypotheses file or --model")
    if args.subset:
        utterances = [u for u in utterances if u.file in hyps]
    scores = score(utterances, hyps)
    print(format_table({name: scores}))
    if args.json:
        args.json.write_text(json.dumps(as_json(scores), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
