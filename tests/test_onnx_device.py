"""Where ONNX models run: the CPU here, a CUDA GPU only where onnxruntime-gpu and a driver are present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import soundfile as sf

from rtaudio.errors import ConfigError, ModelNotFetchedError
from rtaudio.onnx_session import CUDA_PROVIDER, execution_providers, nvidia_driver_present
from rtaudio.stt.decoding import DecodeOptions
from rtaudio.stt.onnx_whisper import OnnxWhisper
from rtaudio.stt.recognizer import RecognizerConfig, WhisperRecognizer

NO_CUDA = CUDA_PROVIDER not in ort.get_available_providers() or not nvidia_driver_present()


@pytest.mark.skipif(not NO_CUDA, reason="this machine has onnxruntime-gpu and a GPU")
def test_auto_runs_on_the_cpu_and_cuda_is_refused_clearly_without_onnxruntime_gpu() -> None:
    assert execution_providers("auto") == ["CPUExecutionProvider"]
    assert execution_providers("cpu") == ["CPUExecutionProvider"]
    with pytest.raises(ConfigError, match="onnxruntime-gpu"):
        execution_providers("cuda")


def test_an_unknown_device_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="device"):
        execution_providers("tpu")
    with pytest.raises(ConfigError, match="device"):
        RecognizerConfig(device="gpu0")


@pytest.mark.skipif(not NO_CUDA, reason="this machine has onnxruntime-gpu and a GPU")
def test_the_recognizer_runs_where_its_device_says() -> None:
    """The default ("auto") loads Whisper on the CPU here; "cuda" fails at load with the reason, not at the
    first window."""
    try:
        recognizer = WhisperRecognizer.load("whisper-tiny.en", RecognizerConfig(threads=1))
    except ModelNotFetchedError as e:
        pytest.skip(f"{e}")
    assert recognizer.backend._encoder.get_providers() == ["CPUExecutionProvider"]  # type: ignore[attr-defined]
    assert recognizer.backend.precision == "int8"  # type: ignore[attr-defined]  # "auto" on a CPU
    with pytest.raises(ConfigError, match="onnxruntime-gpu"):
        WhisperRecognizer.load("whisper-tiny.en", RecognizerConfig(threads=1, device="cuda"))


def test_cross_kv_kept_where_encoded_gives_the_same_transcript(speech_dir: Path) -> None:
    """On CUDA the encoder's cross K/V stay on the device for every decoder step (io binding). The same
    binding code, pointed at the CPU here, must give the same words and times as plain numpy feeds."""
    try:
        recognizer = WhisperRecognizer.load("whisper-tiny.en", RecognizerConfig(threads=1, device="cpu"))
    except ModelNotFetchedError as e:
        pytest.skip(f"{e}")
    audio = sf.read(speech_dir / "jfk_inaugural_ask_not.flac", dtype="float32")[0]
    options = DecodeOptions(word_timestamps=True)
    backend = recognizer.backend
    assert isinstance(backend, OnnxWhisper) and backend.cross_device is None  # no CUDA here
    plain = recognizer.transcribe(audio, options)
    backend.cross_device = "cpu"
    cross = backend.encode(recognizer.features(audio[:16000 * 5]))
    assert not isinstance(cross[0], np.ndarray)  # OrtValues, handed back to step as they are
    bound = recognizer.transcribe(audio, options)
    assert bound.text == plain.text and "ask not" in bound.text.lower()
    assert [(w.text, w.start_s, w.end_s) for w in bound.words] == [(w.text, w.start_s, w.end_s) for w in plain.words]
