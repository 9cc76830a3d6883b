"""ASGI middleware that refuses request bodies over a byte limit with 413 ``body_too_large``.

The declared Content-Length is checked first; the body is then read and counted (chunked uploads have none)
before the app sees it, so an over-long body never reaches JSON parsing.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import send_error


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_body_bytes: int, path_limits: dict[str, tuple[int, str]] | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.path_limits = path_limits or {}  # path -> (limit, setting name) for routes with their own limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit, setting = self.path_limits.get(scope.get("path", ""), (self.max_body_bytes, "ARCHCAST_MAX_BODY_BYTES"))
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(send, f"request body of {int(declared)} bytes", limit, setting)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._refuse(send, f"request body of more than {limit} bytes", limit, setting)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send, what: str, limit: int, setting: str) -> None:
        text = f"{what} exceeds the limit of {limit} bytes ({setting})"
        await send_error(send, 413, "body_too_large", text, [(b"connection", b"close")])
