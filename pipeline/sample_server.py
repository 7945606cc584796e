"""Serve the bundled sample outlets over HTTP on 127.0.0.1, so the real fetching code runs.

Sample feeds and pages are written against the base `http://127.0.0.1:8765`; when the server
runs on another port it rewrites that base in every body it serves. Pages are served without a
charset in Content-Type, as many legacy sites do, so encoding detection is exercised.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

log = logging.getLogger(__name__)

SAMPLE_BASE = "http://127.0.0.1:8765"
SAMPLE_PORT = 8765


def _content_type(path: Path, body: bytes) -> str:
    if path.suffix == ".xml":
        head = body[:2000]
        return "application/atom+xml" if b"<feed" in head else "application/rss+xml"
    if path.suffix in {".html", ".htm"}:
        return "text/html"
    return "application/octet-stream"


def _handler(root: Path, base: str) -> type[BaseHTTPRequestHandler]:
    root = root.resolve()
    placeholder = SAMPLE_BASE.encode()
    actual = base.encode()

    class Handler(BaseHTTPRequestHandler):
        def _resolve(self) -> Path | None:
            rel = self.path.split("?", 1)[0].split("#", 1)[0].lstrip("/")
            target = (root / rel).resolve()
            if root not in target.parents or not target.is_file():
                return None
            return target

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            target = self._resolve()
            if target is None:
                self.send_error(404, "Not Found")
                return
            body = target.read_bytes()
            if placeholder != actual:
                body = body.replace(placeholder, actual)
            self.send_response(200)
            self.send_header("Content-Type", _content_type(target, body))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            log.debug("sample server: " + format, *args)

    return Handler


@contextmanager
def serve_samples(root: Path, *, port: int = SAMPLE_PORT) -> Iterator[str]:
    """Serve `root` on 127.0.0.1; yields the base URL. Falls back to a free port when busy."""
    try:
        server = ThreadingHTTPServer(("127.0.0.1", port), BaseHTTPRequestHandler)
    except OSError:
        log.warning("port %d is busy; serving the sample on a free port", port)
        server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    server.RequestHandlerClass = _handler(root, base)
    thread = threading.Thread(target=server.serve_forever, name="sample-server", daemon=True)
    thread.start()
    try:
        yield base
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def rebase(url: str, base: str) -> str:
    """Point a sample URL at the server's actual base."""
    return base + url[len(SAMPLE_BASE) :] if url.startswith(SAMPLE_BASE) else url
