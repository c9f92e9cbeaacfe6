"""Caption files written while a stream runs: the rolling text file (atomic) and growing SRT/VTT (valid
after every cue); then `rtaudio caption` on a real recording writing all of them and sending finals to a
loopback OBS, locally and through its in-process server (`--serve`)."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_obs import PASSWORD, FakeObs

from rtaudio.cli import main
from rtaudio.frames import Caption, Stability
from rtaudio.server.client import caption_from_json
from rtaudio.stt.caption_files import (
    CueFormat,
    GrowingCueFile,
    RollingCaption,
    RollingCaptionConfig,
    RollingTextFile,
    wrap_greedy,
)
from rtaudio.stt.live_captions import cues_from_captions
from rtaudio.stt.subtitles import Cue, to_srt, to_vtt
from rtaudio.stt.textnorm import normalize_english

TIME = r"(\d\d):(\d\d):(\d\d)[.,](\d\d\d)"


def cap(text: str, final: bool) -> Caption:
    return Caption(text, 0, 16000, Stability.FINAL if final else Stability.PARTIAL)


def parse_cues(text: str, fmt: CueFormat) -> list[Cue]:
    """A strict reader: the whole file must be well-formed cues (header for VTT, numbered for SRT)."""
    if fmt is CueFormat.VTT:
        assert text.startswith("WEBVTT\n\n"), text[:20]
        text = text[len("WEBVTT\n\n"):]
    cues: list[Cue] = []
    for i, block in enumerate(b for b in text.split("\n\n") if b.strip()):
        lines = block.strip("\n").split("\n")
        if fmt is CueFormat.SRT:
            assert lines.pop(0) == str(i + 1)
        m = re.fullmatch(f"{TIME} --> {TIME}", lines[0])
        assert m, lines[0]
        t = [int(x) for x in m.groups()]
        start = t[0] * 3600 + t[1] * 60 + t[2] + t[3] / 1000
        end = t[4] * 3600 + t[5] * 60 + t[6] + t[7] / 1000
        assert 1 <= len(lines[1:]) <= 2 and all(lines[1:])
        cues.append(Cue(start, end, "\n".join(lines[1:])))
    assert text == "" or text.endswith("\n")
    return cues


def test_wrap_greedy_fills_lines_in_order() -> None:
    assert wrap_greedy("the quick brown fox jumps over".split(), 10) == ["the quick", "brown fox", "jumps over"]
    assert wrap_greedy(["supercalifragilistic", "a"], 10) == ["supercalifragilistic", "a"]
    assert wrap_greedy([], 10) == []


def test_rolling_caption_shows_last_lines_with_the_partial() -> None:
    rc = RollingCaption(RollingCaptionConfig(max_lines=2, max_line_chars=12))
    assert rc.push(cap("hello there", final=False)) and rc.text == "hello there"
    assert not rc.push(cap("hello there", final=False))  # nothing changed: no rewrite
    assert rc.push(cap("hello there friends", final=True)) and rc.text == "hello there\nfriends"
    rc.push(cap("how are you", final=False))
    assert rc.text == "friends how\nare you"  # the oldest line scrolled away
    rc.push(cap("how are we", final=True))
    assert rc.text == "friends how\nare we"


def test_rolling_text_file_is_replaced_atomically(tmp_path: Path) -> None:
    path = tmp_path / "caption.txt"
    f = RollingTextFile(path)
    assert path.read_text() == ""
    f.push(cap("first words", final=False))
    written = {path.read_text()}
    seen: list[str] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            seen.append(path.read_text())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(400):
            f.push(cap(" ".join(f"word{i}-{k}" for k in range(i % 9 + 1)), final=i % 7 == 0))
            written.add(path.read_text())
    finally:
        stop.set()
        reader.join()
    assert len(seen) > 20
    torn = [s for s in seen if s not in written]
    assert not torn, torn[:3]  # never empty, never half a caption
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("fmt", list(CueFormat))
def test_growing_cue_file_is_valid_after_every_cue(tmp_path: Path, fmt: CueFormat) -> None:
    path = tmp_path / f"live.{fmt.value}"
    cues = [Cue(0.5, 1.8, "And so, my fellow Americans,"), Cue(2.0, 4.25, "ask not what your country\ncan do for you,"),
            Cue(3700.0, 3702.5, "an hour later")]
    f = GrowingCueFile(path, fmt)
    assert parse_cues(path.read_text(), fmt) == []
    for k, cue in enumerate(cues, 1):
        f.append(cue)
        text = path.read_text()  # read by another handle while the writer is still open
        assert parse_cues(text, fmt) == cues[:k]
        assert text == (to_vtt(cues[:k]) if fmt is CueFormat.VTT else to_srt(cues[:k]))
    f.close()


@pytest.fixture
def fake_obs() -> Iterator[FakeObs]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    obs = FakeObs()
    asyncio.run_coroutine_threadsafe(obs.start(), loop).result(10)
    try:
        yield obs
    finally:
        asyncio.run_coroutine_threadsafe(obs.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def _same_cues(got: list[Cue], want: list[Cue]) -> None:
    assert [c.text for c in got] == [c.text for c in want]
    # the JSON events round times to the ms, so cues rebuilt from them may differ by a ms
    assert all(abs(g.start_s - w.start_s) <= 0.002 and abs(g.end_s - w.end_s) <= 0.002 for g, w in zip(got, want, strict=True))


def _check_outputs(out: str, tmp_path: Path, obs: FakeObs, expected_words: str) -> None:
    captions = [caption_from_json(e) for e in map(json.loads, out.splitlines()) if e["type"] == "caption"]
    finals = [c for c in captions if c.is_final]
    assert finals, out[-500:]
    cues = cues_from_captions(finals)  # what the whole stream's finals make, cue by cue
    assert cues
    _same_cues(parse_cues((tmp_path / "live.srt").read_text(), CueFormat.SRT), cues)
    _same_cues(parse_cues((tmp_path / "live.vtt").read_text(), CueFormat.VTT), cues)
    rolling = RollingCaption()
    for c in captions:
        rolling.push(c)
    assert (tmp_path / "caption.txt").read_text() == rolling.text + "\n"
    assert obs.captions == [c.text.strip() for c in finals if c.text.strip()]  # each final once, in order
    heard = set(normalize_english(" ".join(c.text for c in finals)).split())
    assert set(expected_words.split()) <= heard, heard


def _outputs_args(tmp_path: Path, obs: FakeObs) -> list[str]:
    return ["--fast", "--json-events", "--srt", str(tmp_path / "live.srt"), "--vtt", str(tmp_path / "live.vtt"),
            "--text-file", str(tmp_path / "caption.txt"), "--obs", f"ws://127.0.0.1:{obs.port}",
            "--obs-password", PASSWORD]


@pytest.mark.slow
def test_caption_command_writes_files_and_sends_finals_to_obs(
        speech_dir: Path, tmp_path: Path, fake_obs: FakeObs, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["caption", str(speech_dir / "jfk_inaugural_ask_not.flac"), *_outputs_args(tmp_path, fake_obs)])
    assert rc == 0
    _check_outputs(capsys.readouterr().out, tmp_path, fake_obs, "your country")


@pytest.mark.slow
def test_caption_command_serve_publishes_through_its_server(
        speech_dir: Path, tmp_path: Path, fake_obs: FakeObs, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["caption", str(speech_dir / "ljspeech_LJ001-0020.flac"), "--serve", "127.0.0.1:0",
               "--channel", "studio", *_outputs_args(tmp_path, fake_obs)])
    assert rc == 0
    out, err = capsys.readouterr()
    assert re.search(r"OBS Browser Source URL: http://127\.0\.0\.1:\d+/overlay\?channel=studio", err), err
    _check_outputs(out, tmp_path, fake_obs, "middle ages")
