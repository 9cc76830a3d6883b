"""``GET /metrics``: the service's Prometheus metrics in the text exposition format (see ``service.metrics``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from service.metrics import exposition

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response, summary="Prometheus metrics (text format)")
def metrics(request: Request) -> Response:
    body, content_type = exposition(request.app.state.metrics, request.headers.get("accept", ""))
    return Response(body, media_type=content_type)
