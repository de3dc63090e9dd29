"""A do-nothing ASGI app: the latency floor of this machine, measured beside Casefold.

Served by the same uvicorn, driven by the same client at the same rate; whatever latency it shows
comes from the machine (scheduling, the client, the loopback), not from Casefold.
"""

from __future__ import annotations

from typing import Any

_BODY = b'{"accepted":1,"duplicates":0,"rejected":0,"results":[{"index":0,"id":1}]}'


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send(
        {
            "type": "http.response.start",
            "status": 202,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(_BODY)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": _BODY})
