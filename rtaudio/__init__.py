"""rtaudio: a streaming real-time audio engine for live speech.

The runtime path uses numpy, numba and onnxruntime only; torch is used by `models/` for export.
"""

from rtaudio.frames import AudioBlock, Caption, Stability, Word

__version__ = "0.1.0"
__all__ = ["AudioBlock", "Caption", "Stability", "Word", "__version__"]
