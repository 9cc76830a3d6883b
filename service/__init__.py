"""ArchCast prediction service: a FastAPI app that serves the shipped ONNX predictors.

Build the app with ``service.app.create_app(Settings(...))`` or run it with ``python -m service``.
The service runs on onnxruntime and numpy (never torch); predictions are cached in-process or in Redis
(``ARCHCAST_REDIS_URL``) and ``GET /metrics`` exports Prometheus metrics.
"""
