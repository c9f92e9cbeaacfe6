"""Voice activity models in PyTorch, with weights read from the packaged ONNX files."""
