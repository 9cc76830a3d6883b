"""Python client of the ArchCast HTTP API: ``Client`` (sync) and ``AsyncClient`` (asyncio), with architecture helpers.

    from archcast.client import Client, nb201
    cell = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    with Client("http://127.0.0.1:8000") as client:
        results = client.predict([nb201(cell)], targets=["cifar10_test_acc"])
        results[0]["predictions"]["cifar10_test_acc"]["value"]

Lists longer than ``max_batch`` go out as several requests (results keep the input order). Connection errors and
502/503/504 are retried with exponential backoff and jitter (a server's Retry-After is honoured up to ``max_backoff``);
other errors raise ``ArchCastError`` with the server's error code at once. ``api_key`` is sent as
``Authorization: Bearer <key>`` for a gateway in front of the service (the service itself has no authentication).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"
RETRY_STATUSES = frozenset({502, 503, 504})
_INDEX = re.compile(r"^architectures\.(\d+)")

Architecture = dict[str, Any]
RetryHook = Callable[[int, str, float], None]  # (attempt that failed, 1-based; why; seconds until the next)


class ArchCastError(Exception):
    """An error answer of the service: HTTP ``status``, the stable error ``code`` and its ``message``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class ArchCastConnectionError(ArchCastError):
    """The service could not be reached (after every retry); ``status`` is 0."""

    def __init__(self, message: str) -> None:
        super().__init__(0, "connection_failed", message)


# --- architecture helpers ------------------------------------------------------------------------------------------


def nb201(arch: str) -> Architecture:
    """A NAS-Bench-201 cell by arch string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``."""
    return {"space": "nb201", "arch": arch}


def nb201_index(index: int) -> Architecture:
    """A NAS-Bench-201 cell by official index 0..15624 (the server needs the NB201 table)."""
    return {"space": "nb201", "index": int(index)}


def nb101(matrix: Sequence[Sequence[int]], ops: Sequence[str]) -> Architecture:
    """A NAS-Bench-101 cell: upper-triangular 0/1 adjacency (<= 7x7) and one op per node."""
    return {"space": "nb101", "matrix": [[int(v) for v in row] for row in matrix], "ops": list(ops)}


def darts(normal: Sequence[Sequence[Any]], reduce: Sequence[Sequence[Any]]) -> Architecture:
    """A DARTS genotype: 8 ``(op, input_state)`` pairs for each of the normal and reduction cells."""
    return {
        "space": "darts",
        "normal": [[op, int(state)] for op, state in normal],
        "reduce": [[op, int(state)] for op, state in reduce],
    }


def graph(nodes: Sequence[str | Mapping[str, Any]], edges: Sequence[Sequence[int]]) -> Architecture:
    """Any DAG: node ops (names or ``{"op", "attrs"}``) and ``[src, dst]`` edges, in any node order."""
    return {
        "space": "graph",
        "nodes": [n if isinstance(n, str) else dict(n) for n in nodes],
        "edges": [[int(s), int(d)] for s, d in edges],
    }


def fbnet(layers: str | Sequence[str] | Sequence[int]) -> Architecture:
    """An FBNet-space network: 22 layer choices (``k3_e1`` ... ``skip``), space-separated, as names, or codes 0..8."""
    return {"space": "fbnet", "layers": layers if isinstance(layers, str) else list(layers)}


def ofa(ks: Sequence[int], e: Sequence[int], d: Sequence[int], r: int) -> Architecture:
    """An OFA MobileNetV3 network: 20 kernel sizes, 20 expansion ratios, 5 stage depths, input resolution."""
    return {"space": "ofa", "ks": [int(k) for k in ks], "e": [int(x) for x in e], "d": [int(x) for x in d], "r": int(r)}


def as_architecture(item: Mapping[str, Any] | str) -> Architecture:
    """An architecture dict as the API takes it; a bare string is an NB201 arch string."""
    if isinstance(item, str):
        return nb201(item)
    if isinstance(item, Mapping):
        return dict(item)
    raise TypeError(f"an architecture is a dict or an NB201 arch string, not {type(item).__name__}")


# --- what both clients share ---------------------------------------------------------------------------------------


class _Config:
    def __init__(
        self,
        base_url: str,
        timeout: float,
        retries: int,
        api_key: str | None,
        max_batch: int,
        backoff: float,
        max_backoff: float,
        on_retry: RetryHook | None,
    ) -> None:
        if retries < 0 or max_batch < 1:
            raise ValueError("retries must be >= 0 and max_batch >= 1")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.api_key = api_key
        self.max_batch = max_batch
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.on_retry = on_retry

    def http_options(self) -> dict[str, Any]:
        headers = {"accept": "application/json", "user-agent": "archcast-client"}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        return {"base_url": self.base_url, "timeout": httpx.Timeout(self.timeout), "headers": headers}

    def chunks(self, architectures: Sequence[Mapping[str, Any] | str]) -> list[tuple[int, list[Architecture]]]:
        items = [as_architecture(a) for a in architectures]
        return [(start, items[start : start + self.max_batch]) for start in range(0, len(items), self.max_batch)]

    def delay(self, attempt: int, response: httpx.Response | None) -> float:
        """Seconds before retry ``attempt + 1``: backoff * 2**attempt with jitter, or the server's Retry-After."""
        base = min(self.max_backoff, self.backoff * 2**attempt)
        wait = base / 2 + random.uniform(0, base / 2)
        retry_after = response.headers.get("retry-after") if response is not None else None
        if retry_after is not None:
            with contextlib.suppress(ValueError):
                wait = max(wait, min(self.max_backoff, float(retry_after)))
        return wait

    def retry_or_raise(self, attempt: int, method: str, path: str, outcome: httpx.Response | httpx.TransportError) -> float:
        """The wait before retrying this failed attempt; raises when it must not (or can no longer) be retried."""
        if isinstance(outcome, httpx.TransportError):
            reason = f"{type(outcome).__name__}: {outcome}"
            if attempt >= self.retries:
                raise ArchCastConnectionError(
                    f"{method} {self.base_url}{path} failed after {attempt + 1} attempt(s): {reason}"
                ) from outcome
            wait = self.delay(attempt, None)
        else:
            reason = f"HTTP {outcome.status_code}"
            wait = self.delay(attempt, outcome)
        if self.on_retry is not None:
            self.on_retry(attempt + 1, reason, wait)
        return wait

    def retryable(self, response: httpx.Response, attempt: int) -> bool:
        return response.status_code in RETRY_STATUSES and attempt < self.retries


def _payload(chunk: list[Architecture], targets: Sequence[str] | None, predictor: str | None) -> dict[str, Any]:
    return {"architectures": chunk, "targets": list(targets) if targets is not None else None, "predictor": predictor}


def _checked(response: httpx.Response, offset: int = 0) -> Any:
    """The JSON body of a success; an error answer raises ArchCastError (indices shifted by the chunk ``offset``)."""
    if response.status_code < 400:
        return response.json()
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        code, message = "http_error", response.text[:500] or response.reason_phrase
    if offset:
        message = _INDEX.sub(lambda m: f"architectures.{int(m.group(1)) + offset}", message)
    raise ArchCastError(response.status_code, code, message)


def _model_bytes(model: bytes | str | Path, weight_free: bool) -> bytes:
    """The model's bytes; a weight-free copy (``model.onnx_weights``) when asked: same answer, a fraction of the upload."""
    data = model if isinstance(model, bytes) else Path(model).read_bytes()
    if not weight_free:
        return data
    from google.protobuf.message import DecodeError

    from model.onnx_weights import weight_free as strip

    try:
        return strip(data)
    except (DecodeError, ValueError):  # not an ONNX model: sent as it is, and the service names the problem
        return data


def _onnx_request(
    model: bytes | str | Path,
    batch: int,
    resolution: int,
    predictor: str | None,
    device: str | None,
    sequence_length: int,
    weight_free: bool,
    breakdown: bool = False,
    past_length: int = 128,
) -> tuple[bytes, dict[str, Any]]:
    data = _model_bytes(model, weight_free)
    given: dict[str, Any] = {
        "batch": batch,
        "resolution": resolution,
        "sequence_length": sequence_length,
        "past_length": past_length,
    }
    if breakdown:
        given["breakdown"] = "true"
    return data, {k: v for k, v in {**given, "predictor": predictor, "device": device}.items() if v is not None}


def _calibration_payload(
    device: str, measurements: Sequence[tuple[Mapping[str, Any] | str, float]], base: str | None, method: str
) -> dict[str, Any]:
    return {
        "device": device,
        "measurements": [{"architecture": as_architecture(a), "latency_ms": float(ms)} for a, ms in measurements],
        "base": base,
        "method": method,
    }


def onnx_calibration_form(
    device: str, measurements: str | Path, base: str | None, method: str, weight_free: bool = True
) -> tuple[dict[str, str], list[tuple[str, tuple[str, bytes]]]]:
    """The multipart form of ``POST /v1/calibrate/onnx``: each model the measurement lines name is uploaded once under
    a unique name (weight-free unless ``weight_free`` is false), and the lines are rewritten to name it; other lines
    go as they are (the service reports them by line number). A model file that cannot be read raises ``OSError``."""
    path = Path(measurements)
    lines, names = [], {}  # names: resolved model path -> upload name
    for raw in path.read_text().splitlines():
        try:
            record = json.loads(raw) if raw.strip() and not raw.strip().startswith("#") else None
        except json.JSONDecodeError:
            record = None
        if isinstance(record, dict) and isinstance(record.get("onnx"), str):
            model = (path.parent / record["onnx"]).resolve()
            if model not in names:
                taken = set(names.values())
                names[model] = model.name if model.name not in taken else f"{len(names)}-{model.name}"
            raw = json.dumps({**record, "onnx": names[model]})
        lines.append(raw)
    files = [("models", (name, _model_bytes(model, weight_free))) for model, name in names.items()]
    fields = {"device": device, "method": method, "measurements": "\n".join(lines) + "\n"}
    if base is not None:
        fields["base"] = base
    return fields, files


def _merge(bodies: list[dict[str, Any]]) -> dict[str, Any]:
    if not bodies:
        return {"predictor": None, "version": None, "answered_by": [], "results": []}
    return {
        "predictor": bodies[0]["predictor"],
        "version": bodies[0]["version"],
        "answered_by": bodies[0].get("answered_by", []),  # absent from servers before 2026-12-06
        "results": [result for body in bodies for result in body["results"]],
    }


# --- the clients -------------------------------------------------------------------------------------------------


class Client:
    """Synchronous client (httpx, one keep-alive connection pool); use it as a context manager or ``close()`` it."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        timeout: float = 30.0,
        retries: int = 3,
        api_key: str | None = None,
        *,
        max_batch: int = 4096,
        backoff: float = 0.1,
        max_backoff: float = 5.0,
        on_retry: RetryHook | None = None,
    ) -> None:
        self._config = _Config(base_url, timeout, retries, api_key, max_batch, backoff, max_backoff, on_retry)
        self._http = httpx.Client(**self._config.http_options())

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(
        self,
        method: str,
        path: str,
        payload: dict[str, Any] | None = None,
        offset: int = 0,
        content: bytes | None = None,
        params: dict[str, Any] | None = None,
        form: tuple[dict[str, str], list[tuple[str, tuple[str, bytes]]]] | None = None,
    ) -> Any:
        attempt = 0
        headers = {"content-type": "application/octet-stream"} if content is not None else None
        data, files = form if form is not None else (None, None)
        while True:
            try:
                response = self._http.request(
                    method, path, json=payload, content=content, params=params, headers=headers, data=data, files=files
                )
            except httpx.TransportError as exc:
                outcome: httpx.Response | httpx.TransportError = exc
            else:
                if not self._config.retryable(response, attempt):
                    return _checked(response, offset)
                outcome = response
            time.sleep(self._config.retry_or_raise(attempt, method, path, outcome))
            attempt += 1

    def predict_response(
        self, architectures: Sequence[Mapping[str, Any] | str], targets: Sequence[str] | None = None, predictor: str | None = None
    ) -> dict[str, Any]:
        """The ``POST /v1/predict`` body for every architecture (several requests merged when over ``max_batch``)."""
        bodies = [
            self._request("POST", "/v1/predict", _payload(chunk, targets, predictor), offset)
            for offset, chunk in self._config.chunks(architectures)
        ]
        return _merge(bodies)

    def predict(
        self, architectures: Sequence[Mapping[str, Any] | str], targets: Sequence[str] | None = None, predictor: str | None = None
    ) -> list[dict[str, Any]]:
        """One result ``{"key", "predictions": {target: {"value", "unit"}}}`` per architecture, in order."""
        return self.predict_response(architectures, targets, predictor)["results"]

    def predictors(self) -> list[dict[str, Any]]:
        """The loaded predictors with spaces, ops and targets (``GET /v1/predictors``)."""
        return self._request("GET", "/v1/predictors")["predictors"]

    def predict_onnx(
        self,
        model: bytes | str | Path,
        batch: int = 1,
        resolution: int = 224,
        predictor: str | None = None,
        device: str | None = None,
        sequence_length: int = 128,
        weight_free: bool = False,
        breakdown: bool = False,
        past_length: int = 128,
    ) -> dict[str, Any]:
        """Predicted latency (value, std in ms) and cost summary of a whole ONNX network (``POST /v1/predict/onnx``).

        ``weight_free=True`` uploads the model without its large float weights (``model.onnx_weights``): the same
        answer from a fraction of the bytes. ``breakdown=True`` adds where the predicted time goes. ``past_length``:
        the KV-cache length of a decoder export's symbolic ``past_sequence_length`` dimensions."""
        data, params = _onnx_request(
            model, batch, resolution, predictor, device, sequence_length, weight_free, breakdown, past_length
        )
        return self._request("POST", "/v1/predict/onnx", content=data, params=params)

    def calibrate(
        self,
        device: str,
        measurements: Sequence[tuple[Mapping[str, Any] | str, float]],
        base: str | None = None,
        method: str = "auto",
    ) -> dict[str, Any]:
        """Fit ``calibrated-<device>`` from (architecture, latency ms) pairs (``POST /v1/calibrate``); returns the fit."""
        return self._request("POST", "/v1/calibrate", _calibration_payload(device, measurements, base, method))

    def calibrate_onnx(
        self, device: str, measurements: str | Path, base: str | None = None, method: str = "auto", weight_free: bool = True
    ) -> dict[str, Any]:
        """Fit ``calibrated-<device>``, a whole-network predictor, from a JSON-lines file of measured ONNX models (as
        ``archcast measure`` writes it; paths relative to the file) by uploading them (``POST /v1/calibrate/onnx``;
        weight-free copies unless ``weight_free`` is false: the fit reads the graphs only)."""
        form = onnx_calibration_form(device, measurements, base, method, weight_free)
        return self._request("POST", "/v1/calibrate/onnx", form=form)

    def ready(self) -> bool:
        """Whether the service answers ``GET /readyz`` with ready (one attempt, no retries)."""
        try:
            response = self._http.get("/readyz")
        except httpx.TransportError:
            return False
        return response.status_code == 200 and bool(response.json().get("ready"))


class AsyncClient:
    """Asynchronous client (httpx.AsyncClient); use it as an async context manager or ``await aclose()``."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        timeout: float = 30.0,
        retries: int = 3,
        api_key: str | None = None,
        *,
        max_batch: int = 4096,
        backoff: float = 0.1,
        max_backoff: float = 5.0,
        on_retry: RetryHook | None = None,
    ) -> None:
        self._config = _Config(base_url, timeout, retries, api_key, max_batch, backoff, max_backoff, on_retry)
        self._http = httpx.AsyncClient(**self._config.http_options())

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        payload: dict[str, Any] | None = None,
        offset: int = 0,
        content: bytes | None = None,
        params: dict[str, Any] | None = None,
        form: tuple[dict[str, str], list[tuple[str, tuple[str, bytes]]]] | None = None,
    ) -> Any:
        attempt = 0
        headers = {"content-type": "application/octet-stream"} if content is not None else None
        data, files = form if form is not None else (None, None)
        while True:
            try:
                response = await self._http.request(
                    method, path, json=payload, content=content, params=params, headers=headers, data=data, files=files
                )
            except httpx.TransportError as exc:
                outcome: httpx.Response | httpx.TransportError = exc
            else:
                if not self._config.retryable(response, attempt):
                    return _checked(response, offset)
                outcome = response
            await asyncio.sleep(self._config.retry_or_raise(attempt, method, path, outcome))
            attempt += 1

    async def predict_response(
        self, architectures: Sequence[Mapping[str, Any] | str], targets: Sequence[str] | None = None, predictor: str | None = None
    ) -> dict[str, Any]:
        """The ``POST /v1/predict`` body for every architecture (several requests, in order, over ``max_batch``)."""
        bodies = [
            await self._request("POST", "/v1/predict", _payload(chunk, targets, predictor), offset)
            for offset, chunk in self._config.chunks(architectures)
        ]
        return _merge(bodies)

    async def predict(
        self, architectures: Sequence[Mapping[str, Any] | str], targets: Sequence[str] | None = None, predictor: str | None = None
    ) -> list[dict[str, Any]]:
        """One result ``{"key", "predictions": {target: {"value", "unit"}}}`` per architecture, in order."""
        return (await self.predict_response(architectures, targets, predictor))["results"]

    async def predictors(self) -> list[dict[str, Any]]:
        return (await self._request("GET", "/v1/predictors"))["predictors"]

    async def predict_onnx(
        self,
        model: bytes | str | Path,
        batch: int = 1,
        resolution: int = 224,
        predictor: str | None = None,
        device: str | None = None,
        sequence_length: int = 128,
        weight_free: bool = False,
        breakdown: bool = False,
        past_length: int = 128,
    ) -> dict[str, Any]:
        """``Client.predict_onnx``, awaited."""
        data, params = _onnx_request(
            model, batch, resolution, predictor, device, sequence_length, weight_free, breakdown, past_length
        )
        return await self._request("POST", "/v1/predict/onnx", content=data, params=params)

    async def calibrate(
        self,
        device: str,
        measurements: Sequence[tuple[Mapping[str, Any] | str, float]],
        base: str | None = None,
        method: str = "auto",
    ) -> dict[str, Any]:
        """``Client.calibrate``, awaited."""
        return await self._request("POST", "/v1/calibrate", _calibration_payload(device, measurements, base, method))

    async def calibrate_onnx(
        self, device: str, measurements: str | Path, base: str | None = None, method: str = "auto", weight_free: bool = True
    ) -> dict[str, Any]:
        """``Client.calibrate_onnx``, awaited (the files are read before the upload)."""
        form = onnx_calibration_form(device, measurements, base, method, weight_free)
        return await self._request("POST", "/v1/calibrate/onnx", form=form)

    async def ready(self) -> bool:
        try:
            response = await self._http.get("/readyz")
        except httpx.TransportError:
            return False
        return response.status_code == 200 and bool(response.json().get("ready"))
