"""A webhook receiver on loopback for the tests: a real HTTP server that keeps every POST
(headers and body) and answers 500 to the first ``failures`` of them, then 204."""

from __future__ import annotations

import base64
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# a Standard Webhooks secret: ``whsec_`` and the base64 of 32 bytes
SIGNING_SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()


class Receiver:
    """``with Receiver() as hooks``: ``hooks.url``, ``hooks.calls`` [(headers, body)]."""

    def __init__(self, failures: int = 0):
        self.calls: list[tuple[dict[str, str], bytes]] = []
        self.failures = failures
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.calls.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    failing = receiver.failures > 0
                    receiver.failures -= failing
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def __enter__(self) -> Receiver:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
