"""create_app(runtime): routers, error handlers and the lifespan. The only wiring."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import Depends, FastAPI, Request, Response

from casefold import __version__
from casefold.access import Permission
from casefold.api import alerts as alerts_api
from casefold.api import cases as cases_api
from casefold.api import enrichment as enrichment_api
from casefold.api import errors
from casefold.api import metrics as metrics_api
from casefold.api import outbox as outbox_api
from casefold.api import response as response_api
from casefold.api import runs as runs_api
from casefold.api import webhooks as webhooks_api
from casefold.api.auth import require
from casefold.api.fastpath import IntakeFastPath, Receive, Scope, Send
from casefold.api.responses import json_response
from casefold.runtime import Runtime, tune_gc
from casefold.sources.wazuh import parse_wazuh_alert
from casefold.web import site as web_site


class CasefoldApp(FastAPI):
    """FastAPI with the intake fast path in front of its whole stack.

    Added as a middleware, the fast path sat inside FastAPI's own layers (error, telemetry and
    body-limit middlewares, each wrapping `send` or `receive`): a tenth of the event loop's time
    per single-alert request."""

    fast_path: IntakeFastPath | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.fast_path is None:
            await super().__call__(scope, receive, send)
        else:
            await self.fast_path(scope, receive, send)


def create_app(runtime: Runtime, *, manage_runtime: bool = False, role: str = "all") -> FastAPI:
    """Build the ASGI app. With `manage_runtime`, the app starts and stops the runtime itself,
    running the loops of `role` ("all", or "api" for HTTP and intake only)."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if manage_runtime:
            runtime.start(role=role)
            runtime.bootstrap_admin_token()
            tune_gc()
        try:
            yield
        finally:
            if manage_runtime:
                runtime.stop()

    app = CasefoldApp(
        title="Casefold",
        version=__version__,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    errors.install(app)
    app.include_router(alerts_api.router)
    app.include_router(cases_api.router)
    app.include_router(runs_api.router)
    app.include_router(enrichment_api.router)
    app.include_router(outbox_api.router)
    app.include_router(response_api.router)
    app.include_router(webhooks_api.router)
    app.include_router(metrics_api.router)
    web_site.install(app)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> Response:
        return json_response({"status": "ok", "version": __version__})

    @app.get(
        "/api/v1/openapi.json",
        dependencies=[Depends(require(Permission.READ))],
        include_in_schema=False,
    )
    def openapi(request: Request) -> Response:
        return json_response(request.app.openapi())

    # Outermost: answers the hot intake route before FastAPI's stack when it safely can, and
    # hands everything else to it.
    app.fast_path = IntakeFastPath(
        partial(FastAPI.__call__, app),
        runtime=runtime,
        parsers={"/api/v1/alerts/wazuh": parse_wazuh_alert},
    )
    return app
