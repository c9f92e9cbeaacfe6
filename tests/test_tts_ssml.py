"""The SSML subset: breaks, say-as, sub, paragraphs; malformed input is a TextError."""

from __future__ import annotations

import pytest

from rtaudio.errors import TextError
from rtaudio.tts.ssml import Block, is_ssml, to_blocks


def test_plain_text_is_one_normalized_block() -> None:
    assert not is_ssml("Hello <b>there</b>")
    assert to_blocks("It costs $5.") == [Block("It costs five dollars.")]


def test_breaks_split_blocks() -> None:
    blocks = to_blocks('<speak>One.<break time="300ms"/>Two <break strength="strong"/> three'
                       '<break time="1.5s"/></speak>')
    assert blocks == [Block("One.", 300.0), Block("Two", 700.0), Block("three", 1500.0)]


def test_say_as_sub_and_paragraphs() -> None:
    ssml = ('<speak xmlns="http://www.w3.org/2001/10/synthesis"><p>Code <say-as interpret-as="characters">AB7'
            '</say-as>, call <say-as interpret-as="telephone">555-0142</say-as>.</p>'
            '<p><s>Room <say-as interpret-as="cardinal">12</say-as></s><s>the <say-as interpret-as="ordinal">3'
            '</say-as> <sub alias="World Wide Web Consortium">W3C</sub></s></p></speak>')
    assert to_blocks(ssml) == [
        Block("Code ay bee seven, call five five five, zero one four two.", 400.0),
        Block("Room twelve. the third World Wide Web Consortium.", 400.0)]


@pytest.mark.parametrize("bad", ["<speak>unclosed", "<speaker>wrong root</speaker>",
                                 '<speak><break time="soon"/></speak>', '<speak><break strength="huge"/></speak>'])
def test_bad_ssml(bad: str) -> None:
    with pytest.raises(TextError):
        to_blocks(bad)
