"""core.*: reshape, the lambda transforms, and core.http_request.

`python_lambda` is accepted for Tracecat compatibility but never reaches Python: it is parsed by
Casefold's own expression grammar (`casefold.expressions.compile_lambda`) and runs under the same
budgets as every expression.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import httpx
import orjson

from casefold.actions.context import ActionContext
from casefold.actions.registry import REGISTRY
from casefold.errors import InvalidInputError
from casefold.expressions import Lambda, compile_lambda

MAX_RESPONSE_BYTES = 5 * 1024 * 1024


@lru_cache(maxsize=512)
def _lambda(source: str) -> Lambda:
    return compile_lambda(source)


def _lambda_arg(args: dict[str, Any]) -> Lambda:
    source = args.get("python_lambda")
    if not isinstance(source, str):
        raise InvalidInputError(
            "python_lambda must be a string like \"lambda x: x['a']\"", field="python_lambda"
        )
    return _lambda(source)


@REGISTRY.action(
    "core.transform.reshape", kind="pure", required=("value",), aliases=("core.reshape",)
)
def reshape(args: dict[str, Any], ctx: ActionContext) -> Any:
    """Return `value` (its templates already rendered)."""
    return args["value"]


@REGISTRY.action("core.transform.map", kind="pure", required=("items", "python_lambda"))
def transform_map(args: dict[str, Any], ctx: ActionContext) -> list[Any]:
    """Apply a lambda to every item."""
    return _lambda_arg(args).map(args.get("items"))


@REGISTRY.action("core.transform.filter", kind="pure", required=("items", "python_lambda"))
def transform_filter(args: dict[str, Any], ctx: ActionContext) -> list[Any]:
    """Keep the items for which the lambda is truthy."""
    return _lambda_arg(args).filter(args.get("items"))


@REGISTRY.action("core.transform.apply", kind="pure", required=("value", "python_lambda"))
def transform_apply(args: dict[str, Any], ctx: ActionContext) -> Any:
    """Apply a lambda to one value."""
    return _lambda_arg(args)(args.get("value"))


_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}


@REGISTRY.action(
    "core.http_request",
    kind="network",
    required=("url",),
    optional=(
        "method",
        "headers",
        "params",
        "payload",
        "json",
        "form_data",
        "timeout",
        "follow_redirects",
        "ignore_status_codes",
        "verify_ssl",
    ),
)
def http_request(args: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """An HTTP request to an allowed (by default: public) address."""
    url = args.get("url")
    if not isinstance(url, str):
        raise InvalidInputError("url must be a string", field="url")
    method = str(args.get("method") or "GET").upper()
    if method not in _METHODS:
        raise InvalidInputError(
            f"method must be one of {', '.join(sorted(_METHODS))}", field="method"
        )
    body = args.get("json", args.get("payload"))
    request = {
        "method": method,
        "url": url,
        "headers": args.get("headers") or {},
        "params": args.get("params") or None,
    }
    if ctx.http_allow is not None:
        ctx.http_allow(url)  # SSRF guard, also in dry runs: the trace shows what would be refused
    if not ctx.makes_requests:
        ctx.http_trace.append({**request, "json": body, "sent": False})
        return {"status_code": None, "headers": {}, "data": None, "dry_run": True}
    client = ctx.http_client or httpx.Client()
    ctx.called_out = True
    # Redirects are not followed by default: a redirect to a private address would bypass the guard.
    response = client.request(
        method,
        url,
        headers=request["headers"],
        params=request["params"],
        json=body if body is not None and not args.get("form_data") else None,
        data=args.get("form_data"),
        timeout=float(args.get("timeout") or ctx.timeout),
        follow_redirects=False,
    )
    ctx.http_trace.append({**request, "status_code": response.status_code, "sent": True})
    content = response.content[:MAX_RESPONSE_BYTES]
    try:
        data: Any = orjson.loads(content) if content else None
    except orjson.JSONDecodeError:
        data = content.decode("utf-8", "replace")
    ignored = set(args.get("ignore_status_codes") or [])
    if response.status_code >= 400 and response.status_code not in ignored:
        raise HTTPStatusActionError(response.status_code, data)
    return {"status_code": response.status_code, "headers": dict(response.headers), "data": data}


class HTTPStatusActionError(Exception):
    """A response status of 400 or more; 5xx and 429 are worth retrying."""

    def __init__(self, status: int, data: Any) -> None:
        super().__init__(f"HTTP {status}: {str(data)[:200]}")
        self.status = status
        self.retryable = status >= 500 or status == 429
