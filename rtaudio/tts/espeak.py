"""espeak-ng as a dynamically loaded library (ctypes), for text -> IPA phonemes.

espeak-ng is GPL-3, so rtaudio neither links nor copies it: `libespeak-ng.so.1` is opened at run
time: `$RTAUDIO_ESPEAK_LIB` (with `$RTAUDIO_ESPEAK_DATA`, the folder holding `espeak-ng-data`) if set,
else the system library (Debian/Ubuntu: `apt-get install espeak-ng`, which brings libespeak-ng1).
With Debian's library (1.51) the phonemes match piper-phonemize 1.1.0, which phonemized the voices'
training data; espeak-ng 1.52 differs slightly (e.g. "four" fˈɔːɹ instead of fˈoːɹ).
A library call takes ~1 ms per clause; starting the `espeak-ng` program costs ~20 ms per call and its
stdout cannot be read line by line, which would eat most of the first-audio budget.

espeak keeps global state, so one `EspeakLibrary` exists per process and calls are serialised.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading

from rtaudio.errors import ToolMissingError

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_PHONEMES_IPA = 0x02
_INSTALL_HINT = "install it with `apt-get install espeak-ng` (Debian/Ubuntu; macOS: `brew install espeak-ng`)"


def _candidates() -> list[tuple[str, str | None]]:
    """(library path, data parent folder or None for the library's default) in order of preference."""
    found: list[tuple[str, str | None]] = []
    if os.environ.get("RTAUDIO_ESPEAK_LIB"):
        found.append((os.environ["RTAUDIO_ESPEAK_LIB"], os.environ.get("RTAUDIO_ESPEAK_DATA")))
    system = ctypes.util.find_library("espeak-ng")
    if system:
        found.append((system, None))
    return found


class EspeakLibrary:
    """The loaded libespeak-ng; `phonemes(text, voice)` returns IPA for text without clause punctuation."""

    _instance: EspeakLibrary | None = None
    _instance_lock = threading.Lock()

    def __init__(self, lib_path: str, data_parent: str | None) -> None:
        try:
            lib = ctypes.CDLL(lib_path)
        except OSError as e:
            raise ToolMissingError(f"cannot load espeak-ng library {lib_path}: {e}; {_INSTALL_HINT}") from e
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0,
                                     data_parent.encode() if data_parent else None, _INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise ToolMissingError(f"espeak-ng ({lib_path}) could not find its data (espeak-ng-data); {_INSTALL_HINT}")
        self._lib = lib
        self.path = lib_path
        self._voice: str | None = None
        self._lock = threading.Lock()

    @classmethod
    def shared(cls) -> EspeakLibrary:
        """The process-wide instance, loaded on first use."""
        with cls._instance_lock:
            if cls._instance is None:
                candidates = _candidates()
                if not candidates:
                    raise ToolMissingError(f"espeak-ng is not installed; {_INSTALL_HINT}")
                cls._instance = cls(*candidates[0])
            return cls._instance

    def phonemes(self, text: str, voice: str) -> str:
        """IPA phonemes of `text` (UTF-8), pieces espeak splits internally joined by a space."""
        with self._lock:
            if voice != self._voice:
                if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
                    raise ToolMissingError(f"espeak-ng has no voice {voice!r}")
                self._voice = voice
            buf = ctypes.create_string_buffer(text.encode("utf-8"))
            ptr = ctypes.c_void_p(ctypes.addressof(buf))
            pieces = []
            while ptr.value:
                out = self._lib.espeak_TextToPhonemes(ctypes.byref(ptr), _CHARS_UTF8, _PHONEMES_IPA)
                if out:
                    pieces.append(out.decode("utf-8").strip())
            return " ".join(p for p in pieces if p)
