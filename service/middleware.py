"""ASGI middleware that refuses request bodies over a byte limit with 413 ``body_too_large``.

The declared Content-Length is checked first. The body then streams through to the app, counted chunk by chunk
(chunked uploads declare no length): the chunk that crosses the limit raises ``BodyTooLarge`` inside whatever is
reading the body (JSON parsing, the multipart parser, ``request.body()``), which the app renders as the 413. Nothing
is buffered here, so an upload costs the server only what the route itself keeps of it.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
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
            await refuse(send, limit_message(f"request body of {int(declared)} bytes", limit, setting))
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit_message(f"request body of more than {limit} bytes", limit, setting))
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge as exc:  # reached here only where no app handler rendered it
            if started:
                raise
            await refuse(send, exc.detail)
        except ClientDisconnect:  # the client left mid-body: nobody to answer, and no server error to report
            if started:
                raise


async def refuse(send: Send, message: str) -> None:
    """The 413 straight from the middleware, closing the connection (the rest of the body is never read)."""
    await send_error(send, 413, "body_too_large", message, [(b"connection", b"close")])


class BodyTooLarge(HTTPException):
    """Raised while the body is read, at the chunk that crosses the limit; an HTTP 413 so that FastAPI's body parsing
    passes it on (it turns other exceptions into a 400) and the app's handler renders it with ``Connection: close``."""

    def __init__(self, message: str) -> None:
        super().__init__(413, message, headers={"connection": "close"})


def limit_message(what: str, limit: int, setting: str) -> str:
    return f"{what} exceeds the limit of {limit} bytes ({setting})"
