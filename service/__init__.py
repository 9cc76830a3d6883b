"""ArchCast prediction service: a FastAPI app that serves the shipped ONNX predictors.

Build the app with ``service.app.create_app(Settings(...))`` or run it with ``python -m service``.
The service depends on onnxruntime and numpy only (never torch).
"""
