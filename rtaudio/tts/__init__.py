"""Streaming speech synthesis: text -> normalized words -> espeak-ng phonemes -> Piper voice -> audio chunks.

`voice.PiperVoice` (shareable; `stream()` / `synthesize()`), `splitter.SentenceSplitter` for text that
arrives in pieces, `normalize.normalize_text`, `ssml` for a small SSML subset, `dub` for subtitles.
"""
