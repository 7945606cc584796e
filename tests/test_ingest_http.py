"""Bounded fetching against a local server: sizes, redirects, timeouts, status codes."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from pipeline.ingest.http import FetchError, fetch, make_client
from pipeline.settings import IngestSettings
from tests.fixtures.ingest.server import Route, Served, serve

BODY = b"<html><body><p>hello</p></body></html>"


@pytest.fixture()
def site() -> Iterator[Served]:
    routes = {
        "/ok": Route(BODY, headers={"Content-Type": "text/html; charset=utf-8", "ETag": '"v1"'}),
        "/cond": Route(
            BODY,
            headers={"ETag": '"v1"', "Last-Modified": "Tue, 04 Mar 2025 10:00:00 GMT"},
            conditional=True,
        ),
        "/big": Route(b"x" * 5000, headers={"Content-Type": "text/html"}),
        "/big-stream": Route(b"x" * 5000, headers={"Content-Type": "text/html"}, no_length=True),
        "/empty": Route(b"", headers={"Content-Type": "text/html"}),
        "/gone": Route(b"gone", status=410),
        "/error": Route(b"oops", status=500),
        "/slow": Route(BODY, delay_s=2.0),
        "/to-ok": Route(status=302, headers={"Location": "/ok"}),
        "/to-ftp": Route(status=301, headers={"Location": "ftp://127.0.0.1/file"}),
        "/to-file": Route(status=302, headers={"Location": "file:///etc/passwd"}),
        "/to-js": Route(status=307, headers={"Location": "javascript:alert(1)"}),
        "/loop": Route(status=302, headers={"Location": "/loop"}),
    }
    with serve(routes) as served:
        yield served


@pytest.fixture()
def client() -> Iterator[httpx.Client]:
    with make_client(
        IngestSettings(connect_timeout_s=1.0, read_timeout_s=0.5, max_redirects=3),
        allow_private=True,  # the fixture server is on 127.0.0.1
    ) as c:
        yield c


def reason_of(client: httpx.Client, url: str, max_bytes: int = 1000) -> FetchError:
    with pytest.raises(FetchError) as info:
        fetch(client, url, max_bytes=max_bytes)
    return info.value


def test_ok(site: Served, client: httpx.Client) -> None:
    got = fetch(client, site.url("/ok"), max_bytes=1000)
    assert got.status == 200 and got.content == BODY and not got.not_modified
    assert got.content_type == "text/html; charset=utf-8"
    assert got.etag == '"v1"'
    assert site.requests[-1][1]["user-agent"].startswith("Parallax/")


def test_redirect_followed(site: Served, client: httpx.Client) -> None:
    got = fetch(client, site.url("/to-ok"), max_bytes=1000)
    assert got.url == site.url("/to-ok") and got.final_url == site.url("/ok")
    assert got.content == BODY


def test_conditional_get(site: Served, client: httpx.Client) -> None:
    first = fetch(client, site.url("/cond"), max_bytes=1000)
    assert first.etag == '"v1"' and first.last_modified
    again = fetch(
        client,
        site.url("/cond"),
        max_bytes=1000,
        etag=first.etag,
        last_modified=first.last_modified,
    )
    assert again.not_modified and again.status == 304 and again.content == b""
    assert site.requests[-1][1]["if-none-match"] == '"v1"'
    assert site.requests[-1][1]["if-modified-since"] == first.last_modified


@pytest.mark.parametrize("path", ["/big", "/big-stream"])
def test_too_large(site: Served, client: httpx.Client, path: str) -> None:
    assert reason_of(client, site.url(path)).reason == "too_large"


@pytest.mark.parametrize(
    ("path", "code"), [("/gone", "410"), ("/error", "500"), ("/missing", "404")]
)
def test_http_status(site: Served, client: httpx.Client, path: str, code: str) -> None:
    error = reason_of(client, site.url(path))
    assert error.reason == "http_status" and code in error.detail


def test_empty(site: Served, client: httpx.Client) -> None:
    assert reason_of(client, site.url("/empty")).reason == "empty"


@pytest.mark.parametrize("path", ["/to-ftp", "/to-file", "/to-js"])
def test_redirect_to_other_scheme_refused(site: Served, client: httpx.Client, path: str) -> None:
    error = reason_of(client, site.url(path))
    assert error.reason == "scheme_not_allowed"
    assert "redirect" in error.detail


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.com/x", "javascript:alert(1)"]
)
def test_scheme_not_allowed(client: httpx.Client, url: str) -> None:
    assert reason_of(client, url).reason == "scheme_not_allowed"


def test_redirect_loop(site: Served, client: httpx.Client) -> None:
    assert reason_of(client, site.url("/loop")).reason == "too_many_redirects"
    assert len(site.requests) == 4  # the first request and max_redirects=3 more


def test_timeout(site: Served, client: httpx.Client) -> None:
    started = time.monotonic()
    assert reason_of(client, site.url("/slow")).reason in {"timeout", "deadline"}
    assert time.monotonic() - started < 1.5


def test_connect_error(client: httpx.Client) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert reason_of(client, f"http://127.0.0.1:{port}/").reason == "connect_error"


def test_per_host_delay(site: Served) -> None:
    with make_client(IngestSettings(per_host_delay_s=0.3), allow_private=True) as slow:
        started = time.monotonic()
        for _ in range(3):
            fetch(slow, site.url("/ok"), max_bytes=1000)
        assert time.monotonic() - started >= 0.6
