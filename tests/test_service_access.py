"""Access and records: API keys (off by default; health and metrics configurable apart), request IDs on every answer and
in error bodies, JSON log lines without request bodies, and refusal to start on missing or corrupt predictors."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.app import StartupRefused, create_app
from service.logs import JsonFormatter, RequestIdFilter, configure_logging
from service.settings import Settings

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
BODY = {"architectures": [{"space": "nb201", "arch": ARCH}]}
SECRET = "s3cret-key"


def test_keys_are_off_by_default(client: TestClient) -> None:
    assert client.post("/v1/predict", json=BODY).status_code == 200


@pytest.mark.parametrize(
    ("headers", "status", "needle"),
    [
        ({}, 401, "missing API key"),
        ({"x-api-key": "wrong"}, 401, "invalid API key"),
        ({"authorization": "Bearer wrong"}, 401, "invalid API key"),
        ({"authorization": f"Basic {SECRET}"}, 401, "missing API key"),
        ({"x-api-key": SECRET}, 200, None),
        ({"authorization": f"Bearer {SECRET}"}, 200, None),
        ({"x-api-key": "other-key"}, 200, None),
    ],
)
def test_api_keys(make_client, headers: dict[str, str], status: int, needle: str | None) -> None:
    client = make_client(api_keys=[SECRET, "other-key"])
    response = client.post("/v1/predict", json=BODY, headers=headers)
    assert response.status_code == status, response.text
    if needle:
        assert response.json()["error"]["code"] == "unauthorized" and needle in response.json()["error"]["message"]
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert client.get("/v1/predictors", headers=headers).status_code == (200 if status == 200 else 401)


def test_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHCAST_API_KEYS", f" {SECRET} ,second,")
    assert Settings().api_keys == [SECRET, "second"]
    monkeypatch.setenv("ARCHCAST_API_KEYS", "has space")
    with pytest.raises(ValueError, match="without spaces"):
        Settings()


@pytest.mark.parametrize(("for_health", "for_metrics"), [(False, False), (True, False), (False, True), (True, True)])
def test_health_and_metrics_keys_are_configured_apart(make_client, for_health: bool, for_metrics: bool) -> None:
    client = make_client(api_keys=[SECRET], api_keys_for_health=for_health, api_keys_for_metrics=for_metrics)
    for path, protected in [("/healthz", for_health), ("/readyz", for_health), ("/metrics", for_metrics)]:
        assert client.get(path).status_code == (401 if protected else 200), path
        assert client.get(path, headers={"x-api-key": SECRET}).status_code == 200, path


def test_unauthorised_upload_is_refused_before_its_body_is_read(make_client) -> None:
    client = make_client(api_keys=[SECRET])
    sent: list[int] = []

    def body():
        for _ in range(100):
            sent.append(1)
            yield b"x" * 65536

    response = client.post("/v1/predict/onnx", content=body(), headers={"content-type": "application/octet-stream"})
    assert response.status_code == 401
    assert len(sent) <= 1  # the refusal came before the upload was consumed


def test_request_id_is_echoed_or_made(client: TestClient) -> None:
    given = client.post("/v1/predict", json=BODY, headers={"x-request-id": "ci-run-42.step:7"})
    assert given.headers["x-request-id"] == "ci-run-42.step:7"
    made = client.post("/v1/predict", json=BODY)
    other = client.post("/v1/predict", json=BODY)
    assert len(made.headers["x-request-id"]) == 32 and made.headers["x-request-id"] != other.headers["x-request-id"]
    hostile = client.get("/healthz", headers={"x-request-id": "bad id\twith spaces" + "x" * 200})
    assert hostile.headers["x-request-id"].isalnum() and len(hostile.headers["x-request-id"]) == 32


def test_error_bodies_and_refusals_carry_the_request_id(make_client) -> None:
    client = make_client(api_keys=[SECRET], max_body_bytes=100)
    refused = client.post("/v1/predict", json=BODY, headers={"x-request-id": "r1"})
    assert refused.status_code == 401 and refused.json()["error"]["request_id"] == "r1"
    too_big = client.post("/v1/predict", content=b"x" * 200, headers={"x-request-id": "r2", "x-api-key": SECRET})
    assert too_big.status_code == 413 and too_big.json()["error"]["request_id"] == "r2"
    assert too_big.headers["x-request-id"] == "r2"
    headers = {"x-request-id": "r3", "x-api-key": SECRET}
    bad = client.post("/v1/predict", json={"architectures": [{"space": "nope"}]}, headers=headers)
    assert bad.status_code == 422 and bad.json()["error"]["request_id"] == "r3"


def test_json_logs_name_the_request_and_never_hold_its_body(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    marker = "|nor_conv_1x1~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    with caplog.at_level(logging.INFO, logger="archcast"):
        body = {"architectures": [{"space": "nb201", "arch": marker}]}
        client.post("/v1/predict", json=body, headers={"x-request-id": "log-1"})
    formatter = JsonFormatter()
    stamp = RequestIdFilter()
    lines = []
    for record in caplog.records:
        stamp.filter(record)
        lines.append(json.loads(formatter.format(record)))
    access = [line for line in lines if line["logger"] == "archcast.access"]
    assert access, lines
    line = access[-1]
    assert line["request_id"] == "log-1" and line["method"] == "POST" and line["path"] == "/v1/predict"
    assert line["status"] == 200 and line["duration_ms"] > 0 and line["level"] == "info" and line["time"].endswith("Z")
    assert all(marker not in json.dumps(entry) for entry in lines)


def test_configure_logging_keeps_other_handlers() -> None:
    root = logging.getLogger()
    before = [h for h in root.handlers if h.get_name() != "archcast"]
    level = root.level
    try:
        configure_logging("info", "json")
        configure_logging("warning", "text")
        ours = [h for h in root.handlers if h.get_name() == "archcast"]
        assert len(ours) == 1 and [h for h in root.handlers if h.get_name() != "archcast"] == before
    finally:
        for handler in [h for h in root.handlers if h.get_name() == "archcast"]:
            root.removeHandler(handler)
        root.setLevel(level)


def copy_predictors(source: Path, target: Path) -> Path:
    for path in source.iterdir():
        shutil.copy(path, target / path.name)
    return target


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (lambda d: (d / "toy-darts.onnx").write_bytes(b"\x08\x07 not an onnx file"), "toy-darts"),
        (lambda d: (d / "toy-darts.onnx").unlink(), "toy-darts"),
        (lambda d: (d / "toy-cell.card.json").write_text("{not json"), "cannot read predictor cards"),
        (lambda d: [p.unlink() for p in d.iterdir()], "no predictor cards"),
    ],
    ids=["corrupt-onnx", "missing-onnx", "corrupt-card", "empty-dir"],
)
def test_refuses_to_start_on_a_broken_predictor(
    toy_predictors, tmp_path: Path, damage: Callable[[Path], object], needle: str
) -> None:
    directory = copy_predictors(toy_predictors[0], tmp_path)
    damage(directory)
    app = create_app(Settings(predictor_dir=directory, providers="cpu"))
    with pytest.raises(StartupRefused, match="refusing to start") as refused, TestClient(app):
        pass
    assert needle in str(refused.value) and "ARCHCAST_STRICT_STARTUP" in str(refused.value)


def test_readyz_is_false_until_the_predictors_are_loaded(toy_predictors) -> None:
    app = create_app(Settings(predictor_dir=toy_predictors[0], providers="cpu"))
    before = TestClient(app).get("/readyz")  # no lifespan: nothing loaded
    assert before.status_code == 503 and before.json()["ready"] is False
    with TestClient(app) as client:
        assert client.get("/readyz").status_code == 200


def test_the_server_process_exits_with_the_reason(toy_predictors, tmp_path: Path) -> None:
    directory = copy_predictors(toy_predictors[0], tmp_path)
    (directory / "toy-cell.onnx").write_bytes(b"garbage")
    env = {**os.environ, "ARCHCAST_PREDICTOR_DIR": str(directory), "ARCHCAST_PROVIDERS": "cpu", "ARCHCAST_PORT": "0"}
    result = subprocess.run(
        [sys.executable, "-m", "service"], env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    critical = [line for line in lines if line["level"] == "critical"]
    assert critical and "refusing to start" in critical[0]["message"] and "toy-cell" in critical[0]["message"]
