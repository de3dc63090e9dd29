"""A tiny real HTTP server on 127.0.0.1 answering JSON, counting requests per path.

Every request is answered with `{"method", "path", "query", "json", "n"}` (n: how many requests
that path has had, this one included). `statuses[path]` sets the status code of a path (default
200), or a list of codes used one per request (the last one stays), so a test can make a step
fail and later succeed.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class EchoServer:
    def __init__(self) -> None:
        self.statuses: dict[str, int | list[int]] = {}
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the server first"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def calls(self, path: str) -> int:
        with self._lock:
            return sum(1 for r in self.requests if r["path"] == path)

    def start(self) -> EchoServer:
        echo = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                try:
                    payload = json.loads(body) if body else None
                except ValueError:
                    payload = body.decode("utf-8", "replace")
                with echo._lock:
                    record = {
                        "method": self.command,
                        "path": parts.path,
                        "query": {k: v[-1] for k, v in parse_qs(parts.query).items()},
                        "json": payload,
                        "headers": dict(self.headers.items()),
                    }
                    echo.requests.append(record)
                    n = sum(1 for r in echo.requests if r["path"] == parts.path)
                    status = echo.statuses.get(parts.path, 200)
                    if isinstance(status, list):  # one status per request; the last one stays
                        status = status.pop(0) if len(status) > 1 else status[0]
                answer = {k: record[k] for k in ("method", "path", "query", "json")}
                data = json.dumps({**answer, "n": n}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep the test output clean

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="http-echo", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
