"""A loopback webhook receiver for tests: verifies every signature, records every event."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SECRET = "webhook-secret-0123456789"


class Receiver:
    """A loopback HTTP server: ``/ok`` checks each signature and records the event;
    ``/fail`` answers 500 to everything (and counts the tries)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.bad_signatures = 0
        self.truncated = 0  # bodies cut short: the sender was killed mid-request
        self.failed_tries = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                body = self.rfile.read(length)
                if len(body) < length:  # not a request at all: its sender died sending it
                    receiver.truncated += 1
                    self.close_connection = True
                    return
                if self.path == "/fail":
                    receiver.failed_tries += 1
                    self.send_response(500)
                    self.end_headers()
                    return
                stamp = self.headers["X-Riverguard-Timestamp"]
                mac = hmac.new(SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256)
                given = self.headers["X-Riverguard-Signature"]
                if not hmac.compare_digest(given, "v1=" + mac.hexdigest()):
                    receiver.bad_signatures += 1
                    self.send_response(401)
                else:
                    receiver.events.append(json.loads(body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Receiver:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
