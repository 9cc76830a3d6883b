"""ArchCast architecture representation: graph IR, parsers, canonical keys, tokenizer, augmentation.

Depends on numpy (and onnx for whole networks) only; knows nothing of training or the service.
"""
