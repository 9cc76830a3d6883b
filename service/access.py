"""ASGI middleware for who may call and what gets recorded: request IDs with an access log line, and API keys.

``RequestContext`` takes the caller's ``X-Request-ID`` when it is a short token (else makes one), sets it for the
logs and error bodies of the request, returns it as a response header and logs one access line per request
(method, path, status, milliseconds, client; never the body). ``ApiKeyAuth`` refuses a request without a valid key
with 401 before its body is read; health and metrics routes are checked only when configured so.
"""

from __future__ import annotations

import hmac
import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import send_error
from service.logs import REQUEST_ID

REQUEST_ID_HEADER = "x-request-id"
_VALID_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
HEALTH_PATHS = frozenset({"/healthz", "/readyz"})
METRICS_PATHS = frozenset({"/metrics"})
access_log = logging.getLogger("archcast.access")


class RequestContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        request_id = given if _VALID_ID.fullmatch(given) else uuid.uuid4().hex
        token = REQUEST_ID.set(request_id)
        start = time.perf_counter()
        status: int | None = None

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (REQUEST_ID_HEADER.encode(), request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            client = scope.get("client")
            access_log.info(
                "%s %s %s", scope["method"], scope["path"], status or "-",
                extra={
                    "request_id": request_id, "method": scope["method"], "path": scope["path"], "status": status,
                    "duration_ms": round((time.perf_counter() - start) * 1000, 3),
                    "client": f"{client[0]}:{client[1]}" if client else None,
                },
            )
            REQUEST_ID.reset(token)


class ApiKeyAuth:
    """Accepts ``X-API-Key: KEY`` or ``Authorization: Bearer KEY`` for any of ``keys`` (compared in constant time)."""

    def __init__(self, app: ASGIApp, keys: list[str], protect_health: bool, protect_metrics: bool) -> None:
        self.app = app
        self.keys = [k.encode() for k in keys]
        self.public = (set() if protect_health else set(HEALTH_PATHS)) | (set() if protect_metrics else set(METRICS_PATHS))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys or scope["path"] in self.public:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        key = headers.get(b"x-api-key")
        if key is None:
            scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
            key = token.strip() if scheme.lower() == b"bearer" else None
        if key is None:
            await _refuse(send, "missing API key: send it as 'X-API-Key: KEY' or 'Authorization: Bearer KEY'")
            return
        if not any(hmac.compare_digest(key, known) for known in self.keys):
            await _refuse(send, "invalid API key")
            return
        await self.app(scope, receive, send)


async def _refuse(send: Send, message: str) -> None:
    await send_error(send, 401, "unauthorized", message, [(b"www-authenticate", b'Bearer realm="archcast"')])
