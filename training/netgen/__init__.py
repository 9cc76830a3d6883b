"""Whole-network generator: random variants of real CNN and attention families, written in torch, exported to ONNX."""
