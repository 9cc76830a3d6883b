"""ASGI middleware counting and timing HTTP requests by route template, method and status code.

Labels stay bounded: the route is the template of the matched route (``/v1/predict``), never the raw path, and
``unmatched`` when no route matches; methods outside the standard ones are counted as ``other``.
"""

from __future__ import annotations

import re
import time

from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.metrics import ServiceMetrics

UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
CLIENT_CLOSED = 499  # status label of a request whose client left before any response (nginx's convention)


class HTTPMetrics:
    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics
        self._templates: list[tuple[re.Pattern[str], str]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status: int | None = None

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        except Exception:
            status = status or 500  # rendered by the app's outermost error handler
            raise
        finally:
            route = self.route_template(scope)
            method = scope["method"] if scope["method"] in METHODS else "other"
            metrics = self.metrics
            metrics.child(metrics.http_requests, route, method, str(status or CLIENT_CLOSED)).inc()
            metrics.child(metrics.http_duration, route, method).observe(time.perf_counter() - start)

    def route_template(self, scope: Scope) -> str:
        """Path template of the route the router chose; for a request refused before routing (413 from the body limit),
        the API path template its path matches; else ``unmatched``."""
        route = scope.get("route")
        if route is not None and isinstance(getattr(route, "path", None), str):
            return route.path
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):]
        for pattern, template in self._api_templates(scope.get("app")):
            if pattern.match(path):
                return template
        return UNMATCHED

    def _api_templates(self, app: object) -> list[tuple[re.Pattern[str], str]]:
        """(regex, template) of each path of the app's OpenAPI schema, computed once."""
        if self._templates is None:
            openapi = getattr(app, "openapi", None)
            paths = openapi().get("paths", {}) if callable(openapi) else {}
            self._templates = [(compile_path(template)[0], template) for template in paths]
        return self._templates
