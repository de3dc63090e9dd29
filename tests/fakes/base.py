"""Plumbing shared by the fake provider servers: a real HTTP server on 127.0.0.1 in a thread.

A fake subclasses `FakeServer` and implements `handle(request) -> Reply`; the base serves it over
uvicorn (real sockets, real HTTP/1.1) and records every request in `requests`.

    class MyFake(FakeServer):
        name = "my-fake"
        def handle(self, req: FakeRequest) -> Reply:
            return Reply(200, {"ok": True})

    with MyFake() as fake:
        httpx.get(fake.url + "/x")
        assert fake.requests[0].path == "/x"
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Self

import orjson
import uvicorn


@dataclass(frozen=True)
class FakeRequest:
    method: str
    path: str
    query: str  # raw query string
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body) if self.body else None


@dataclass
class Reply:
    status: int
    body: Any = None  # JSON-encoded unless bytes or str
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    def encoded(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return orjson.dumps(self.body)


@dataclass(frozen=True)
class Recorded:
    request: FakeRequest
    status: int


class FakeServer:
    name = "fake"

    def __init__(self) -> None:
        self.url = ""
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    def handle(self, request: FakeRequest) -> Reply:  # pragma: no cover - overridden
        raise NotImplementedError

    def count(self, path_prefix: str = "", method: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for r in self.requests
                if r.request.path.startswith(path_prefix)
                and (method is None or r.request.method == method)
            )

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        request = FakeRequest(
            scope["method"],
            scope["path"],
            scope["query_string"].decode("latin-1"),
            {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]},
            b"".join(chunks),
        )
        # In a thread: a handler may block (to play a slow server) without stalling the others.
        reply = await asyncio.to_thread(self.handle, request)
        with self._lock:
            self.requests.append(Recorded(request, reply.status))
        content = reply.encoded()
        headers = [(b"content-length", str(len(content)).encode())]
        if content:
            headers.append((b"content-type", reply.content_type.encode()))
        headers += [(k.lower().encode(), v.encode()) for k, v in reply.headers.items()]
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    def start(self, timeout: float = 10.0) -> str:
        """Serve on a free 127.0.0.1 port in a background thread; return the base URL."""
        if self._server is not None:
            return self.url
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            self,
            host="127.0.0.1",
            port=port,
            lifespan="off",
            ws="none",
            http="h11",
            log_level="warning",
            access_log=False,
            server_header=False,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=self.name, daemon=True
        )
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                sock.close()
                raise RuntimeError(f"the {self.name} fake did not start")
            time.sleep(0.01)
        self._server, self._thread, self._socket = server, thread, sock
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
