"""A native app's loopback redirect target (RFC 8252 §7.3): a real HTTP server on 127.0.0.1 and a free port.

It records every request that reaches `/callback` — its query and its headers — and answers as a desktop app
would ("you can close this window"), so a browser test sees where the authorization server sent the person and
what the browser told the app on the way (a Referer would leak the authorization page's URL).
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PAGE = b"<!doctype html><title>Signed in</title><p>You are signed in. You can close this window.</p>"


@dataclass(frozen=True)
class Arrival:
    query: dict[str, list[str]]
    headers: dict[str, str]

    def one(self, name: str) -> str:
        values = self.query.get(name, [])
        assert len(values) == 1, f"{name}: {values} in {self.query}"
        return values[0]


@dataclass
class LoopbackApp:
    port: int
    arrivals: list[Arrival] = field(default_factory=list)

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/callback"

    def last(self) -> Arrival:
        assert self.arrivals, "the browser never reached the app's callback"
        return self.arrivals[-1]


@contextmanager
def loopback_app() -> Iterator[LoopbackApp]:
    app: LoopbackApp | None = None

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if parts.path != "/callback":
                self.send_error(404)
                return
            assert app is not None
            app.arrivals.append(Arrival(parse_qs(parts.query), {k.lower(): v for k, v in self.headers.items()}))
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(PAGE)))
            self.end_headers()
            self.wfile.write(PAGE)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    app = LoopbackApp(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield app
    finally:
        server.shutdown()
        server.server_close()
