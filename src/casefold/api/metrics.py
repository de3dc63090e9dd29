"""GET /metrics: the runtime's Prometheus metrics, behind a token like every other read.

Kept out of the OpenAPI schema: it is a scrape target, not part of the JSON API. A scraper
without a token uses the separate listener (`metrics_port`) instead.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from casefold.access import Permission
from casefold.api.auth import require

router = APIRouter()


@router.get("/metrics", dependencies=[Depends(require(Permission.READ))], include_in_schema=False)
async def metrics(request: Request) -> Response:
    exporter = request.app.state.runtime.metrics
    # Collecting may query the store: off the event loop, so intake is never held up by a scrape.
    body, content_type = await run_in_threadpool(exporter.render, request.headers.get("accept"))
    return Response(body, media_type=content_type)
