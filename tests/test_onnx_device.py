"""Where ONNX models run: the CPU here, a CUDA GPU only where onnxruntime-gpu and a driver are present."""

from __future__ import annotations

import onnxruntime as ort
import pytest

from rtaudio.errors import ConfigError, ModelNotFetchedError
from rtaudio.onnx_session import CUDA_PROVIDER, execution_providers, nvidia_driver_present
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
    with pytest.raises(ConfigError, match="onnxruntime-gpu"):
        WhisperRecognizer.load("whisper-tiny.en", RecognizerConfig(threads=1, device="cuda"))
