"""Threat intel over the API: provider status, on-demand lookups, re-enriching a case."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from casefold.access import Permission
from casefold.api.auth import require
from casefold.api.params import case_id_from_ref
from casefold.api.responses import json_response
from casefold.cases import queries
from casefold.connectors.http import ProviderError
from casefold.enrichment.auto import mark_for_enrichment
from casefold.enrichment.service import detect_kind
from casefold.errors import ConflictError, UpstreamError

router = APIRouter(prefix="/api/v1")


class LookupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: str = Field(min_length=1, max_length=40)
    value: str = Field(min_length=1, max_length=2048)
    kind: Literal["ip", "hash", "domain", "url"] | None = None


@router.get("/enrichment", dependencies=[Depends(require(Permission.READ))])
def enrichment_status(request: Request) -> Response:
    """Which providers are configured (and why not), their budgets, cache and call counts."""
    runtime = request.app.state.runtime
    enricher = runtime.enricher
    providers: dict[str, Any] = {}
    for name in sorted({*enricher.providers, *enricher.missing}):
        entry: dict[str, Any] = {"configured": name in enricher.providers}
        if name in enricher.missing:
            entry["reason"] = enricher.missing[name]
        if name in enricher.providers:
            entry["kinds"] = sorted(enricher.providers[name].kinds)
            entry["budget"] = enricher.budgets.status(name)
            entry["calls"] = enricher.calls.get(name, 0)
        providers[name] = entry
    return json_response(
        {
            "providers": providers,
            "auto_enrich": runtime.auto_enrich.providers,
            "cache": {"hits": enricher.cache.hits, "misses": enricher.cache.misses},
        }
    )


@router.post("/enrichment/lookup")
def lookup(
    request: Request,
    body: LookupIn,
    _: Annotated[Any, Depends(require(Permission.WRITE_CASES))],
) -> Response:
    """Look one value up now (cached and within budget, like a playbook's lookup)."""
    enricher = request.app.state.runtime.enricher
    try:
        outcome = enricher.lookup(body.provider, body.kind or detect_kind(body.value), body.value)
    except ProviderError as exc:
        raise UpstreamError(str(exc)) from None
    return json_response(outcome.to_dict())


@router.post("/cases/{ref}/enrich", status_code=202)
def enrich_case(
    request: Request,
    ref: str,
    _: Annotated[Any, Depends(require(Permission.WRITE_CASES))],
) -> Response:
    """Have the case's observables looked up again by the automatic enrichment."""
    case_id = case_id_from_ref(ref)
    runtime = request.app.state.runtime
    if not runtime.auto_enrich.providers:
        raise ConflictError("automatic enrichment is off: auto_enrich names no configured provider")
    with runtime.engine.connect() as conn:
        queries.get_case(conn, case_id)  # 404 for an unknown case
    count = runtime.writer.run(lambda conn: mark_for_enrichment(conn, case_id))
    runtime.auto_enrich.rewind()
    return json_response(
        {"case": ref, "observables": count, "providers": runtime.auto_enrich.providers}, 202
    )
