"""The body-size limit streams: the app reads chunks as they arrive, and a body crossing its route's limit midway
(no Content-Length to refuse it up front) is a 413 naming the setting, whichever parser was reading it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from onnx_fixtures import conv_net
from starlette.types import Message, Receive, Scope, Send
from test_service_onnx import network_predictor_dir  # noqa: F401 - the real exported ensemble fixture

from service.app import create_app
from service.middleware import BodySizeLimit
from service.settings import Settings

BOUNDARY = "archcast-test-boundary"


def chunked(data: bytes, size: int = 16_384) -> Iterator[bytes]:
    """A body sent without Content-Length (chunked transfer), so only counting can catch it."""
    for start in range(0, len(data), size):
        yield data[start:start + size]


def multipart(fields: dict[str, str], files: list[tuple[str, str, bytes]]) -> bytes:
    parts = [f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()]
    for name, filename, data in files:
        head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
        parts.append(head.encode() + b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n")
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


MULTIPART = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}


@pytest.fixture
def small_limits(network_predictor_dir: Path) -> Iterator[TestClient]:  # noqa: F811 - the imported fixture
    settings = Settings(
        predictor_dir=network_predictor_dir,
        providers="cpu",
        max_onnx_bytes=100_000,
        max_calibration_upload_bytes=150_000,
    )
    with TestClient(create_app(settings)) as client:
        yield client


def assert_413(response, setting: str) -> None:
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["code"] == "body_too_large" and setting in error["message"], error
    assert response.headers["connection"] == "close"


def test_streamed_uploads_over_the_limit_are_413_for_every_parser(small_limits: TestClient) -> None:
    model = conv_net().SerializeToString()
    assert len(model) < 100_000
    padded = b"\0" * 120_000  # over ARCHCAST_MAX_ONNX_BYTES, under the calibration limit
    raw = small_limits.post("/v1/predict/onnx", content=chunked(padded), headers={"content-type": "application/octet-stream"})
    assert_413(raw, "ARCHCAST_MAX_ONNX_BYTES")
    form = multipart({}, [("file", "m.onnx", padded)])
    # the multipart parser was reading when the limit was crossed: still the 413, not a 400 invalid_multipart
    assert_413(small_limits.post("/v1/predict/onnx", content=chunked(form), headers=MULTIPART), "ARCHCAST_MAX_ONNX_BYTES")
    lines = "".join(json.dumps({"onnx": "m.onnx", "latency_ms": 5.0 + i, "resolution": 32 + 8 * i}) + "\n" for i in range(5))
    calibration = multipart({"device": "d", "measurements": lines}, [("models", "m.onnx", b"\0" * 160_000)])
    answer = small_limits.post("/v1/calibrate/onnx", content=chunked(calibration), headers=MULTIPART)
    assert_413(answer, "ARCHCAST_MAX_CALIBRATION_UPLOAD_BYTES")
    # the same streamed forms under the limits are served
    url = "/v1/predict/onnx?resolution=32"
    ok = small_limits.post(url, content=chunked(multipart({}, [("file", "m.onnx", model)])), headers=MULTIPART)
    assert ok.status_code == 200 and ok.json()["latency_ms"]["value"] > 0, ok.text
    ok = small_limits.post(url, content=chunked(model), headers={"content-type": "application/octet-stream"})
    assert ok.status_code == 200, ok.text


def test_the_app_reads_each_chunk_before_the_next_arrives() -> None:
    """Nothing is held back: the app has the first chunk while the client has not yet sent the second."""
    events: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            events.append(f"app got {len(message['body'])}")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    chunks = [b"a" * 10, b"b" * 20, b"c" * 30]

    async def receive() -> Message:
        index = len([e for e in events if e.startswith("sent")])
        events.append(f"sent {len(chunks[index])}")
        return {"type": "http.request", "body": chunks[index], "more_body": index < len(chunks) - 1}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/x", "headers": []}
    asyncio.run(BodySizeLimit(app, max_body_bytes=100)(scope, receive, send))
    assert events == ["sent 10", "app got 10", "sent 20", "app got 20", "sent 30", "app got 30"]
    assert sent[0]["status"] == 200

    events.clear()
    sent.clear()
    asyncio.run(BodySizeLimit(app, max_body_bytes=25)(scope, receive, send))  # crossed by the second chunk
    assert events == ["sent 10", "app got 10", "sent 20"]
    assert sent[0]["status"] == 413 and (b"connection", b"close") in sent[0]["headers"]
    assert b"ARCHCAST_MAX_BODY_BYTES" in sent[1]["body"]


def test_a_client_leaving_mid_body_is_not_a_server_error() -> None:
    """A route reading the body sees the disconnect; the middleware ends the request quietly, as before streaming."""
    from starlette.requests import Request

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await Request(scope, receive).body()  # raises ClientDisconnect at the disconnect
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    messages = iter([{"type": "http.request", "body": b"a" * 10, "more_body": True}, {"type": "http.disconnect"}])

    async def receive() -> Message:
        return next(messages)

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/x", "headers": []}
    asyncio.run(BodySizeLimit(app, max_body_bytes=100)(scope, receive, send))  # no exception escapes
    assert sent == []
