"""The case queue: the analyst's home page."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from casefold.access import Permission
from casefold.cases.queries import list_cases
from casefold.web.deps import require_page, runtime_of
from casefold.web.render import page

router = APIRouter(include_in_schema=False)


@router.get("/", dependencies=[Depends(require_page(Permission.READ))])
async def queue(request: Request) -> Response:
    def recent() -> list[dict[str, Any]]:
        with runtime_of(request).engine.connect() as conn:
            return list_cases(conn, sort="-updated_at", limit=50).items

    return page(request, "cases.html", cases=await run_in_threadpool(recent))
