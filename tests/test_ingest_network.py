"""Untrusted network input: the address guard, byte and time caps, politeness.

Servers are local (127.0.0.1, port 0). Public names and addresses come from a stand-in for
DNS and routing (tests/fixtures/ingest/internet.py); everything else is the real code path.
"""

from __future__ import annotations

import gzip
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest

from pipeline.ingest import ingest_outlets
from pipeline.ingest.http import FetchError, fetch, make_client, retry_at
from pipeline.ingest.netguard import BLOCKED_RANGES, is_public
from pipeline.ingest.outlets import load_outlets
from pipeline.ingest.stage import _PAGE_TYPES
from pipeline.records import FeedState, Outlet
from pipeline.settings import IngestSettings
from tests.fixtures.ingest.internet import FakeInternet, fake_internet
from tests.fixtures.ingest.server import Route, Served, serve

PUBLIC_IP = "93.184.216.34"  # the stand-in internet routes it to a local server
FAST = IngestSettings(
    connect_timeout_s=1.0,
    read_timeout_s=1.0,
    fetch_deadline_s=3.0,
    max_feed_bytes=200_000,
    max_page_bytes=200_000,
    min_text_chars=20,
)
PARA = "<p>" + "The council met on Tuesday and voted on the budget for the coming year. " * 4
PAGE = f"<html><head><title>T</title></head><body><article>{PARA}</p></article></body></html>"
HTML = {"Content-Type": "text/html; charset=utf-8"}


def page(n: int) -> bytes:
    """A distinct article page (identical texts would be deduplicated)."""
    return PAGE.replace("Tuesday", f"day {n}").encode()


RSS = {"Content-Type": "application/rss+xml"}


def rss(*links: str, title: str = "Item") -> bytes:
    items = "".join(
        f"<item><title>{title} {i}</title><link>{link}</link>"
        f"<description>Feed text of item {i}: {PARA[3:80]}</description></item>"
        for i, link in enumerate(links)
    )
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>F</title>'
        f"<link>http://x/</link><description>d</description>{items}</channel></rss>"
    ).encode()


def reason(client: httpx.Client, url: str, **kwargs: object) -> str:
    with pytest.raises(FetchError) as info:
        fetch(client, url, max_bytes=kwargs.pop("max_bytes", 100_000), **kwargs)  # type: ignore[arg-type]
    return info.value.reason


# ------------------------------------------------------------------ which addresses


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.254",
        "192.168.1.1",
        "169.254.169.254",
        "169.254.0.1",
        "100.64.0.1",
        "100.100.100.200",
        "0.0.0.0",
        "224.0.0.1",
        "239.255.255.250",
        "255.255.255.255",
        "::1",
        "::",
        "fc00::1",
        "fd12:3456::1",
        "fe80::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "2002:7f00:1::1",  # 6to4 around 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 around 169.254.169.254
    ],
)
def test_non_public_addresses_refused(address: str) -> None:
    assert not is_public(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111"])
def test_public_addresses_allowed(address: str) -> None:
    assert is_public(address)


def test_named_ranges_are_all_refused() -> None:
    import ipaddress

    for cidr in BLOCKED_RANGES:
        net = ipaddress.ip_network(cidr)
        assert not is_public(net[0]) and not is_public(net[-1]), cidr


# ------------------------------------------------------------------ the guard on fetches


@pytest.fixture()
def local() -> Iterator[Served]:
    routes = {
        "/ok": Route(PAGE.encode(), headers=HTML),
        "/to-metadata": Route(
            status=302, headers={"Location": "http://169.254.169.254/latest/meta-data/"}
        ),
        "/to-intranet": Route(status=301, headers={"Location": "http://intranet.example/admin"}),
        "/to-rebind": Route(status=302, headers={"Location": "http://rebind.example/ok"}),
    }
    with serve(routes) as served:
        yield served


@pytest.fixture()
def net(monkeypatch: pytest.MonkeyPatch, local: Served) -> Iterator[FakeInternet]:
    with fake_internet(monkeypatch) as internet:
        internet.route(PUBLIC_IP, local.base)
        internet.name("news.example", [PUBLIC_IP])
        internet.name("intranet.example", ["10.20.30.40"])
        internet.name("mixed.example", [PUBLIC_IP, "192.168.0.7"])
        yield internet


@pytest.fixture()
def public_client() -> Iterator[httpx.Client]:
    with make_client(FAST) as client:
        yield client


def test_public_name_fetched_through_checked_address(
    net: FakeInternet, local: Served, public_client: httpx.Client
) -> None:
    got = fetch(public_client, "http://news.example/ok", max_bytes=100_000)
    assert got.status == 200 and b"council" in got.content
    assert net.connects == [PUBLIC_IP]
    assert local.requests[-1][1]["host"] == "news.example"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/",
        "http://[::1]:9/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://2130706433:9/",  # 127.0.0.1 spelt as one number: the resolver reads it so
        "http://0x7f.0.0.1:9/",
        "http://127.1:9/",
        "http://intranet.example/",
        "http://mixed.example/",  # one private address among public ones is enough
        "http://localhost:9/",
    ],
)
def test_private_targets_refused_before_connecting(
    net: FakeInternet, public_client: httpx.Client, url: str
) -> None:
    assert reason(public_client, url) == "address_not_allowed"
    assert net.connects == []


@pytest.mark.parametrize(
    ("path", "refused"),
    [("/to-metadata", "169.254.169.254"), ("/to-intranet", "10.20.30.40")],
)
def test_every_redirect_hop_checked(
    net: FakeInternet, public_client: httpx.Client, path: str, refused: str
) -> None:
    with pytest.raises(FetchError) as info:
        fetch(public_client, f"http://news.example{path}", max_bytes=100_000)
    assert info.value.reason == "address_not_allowed" and refused in info.value.detail
    assert net.connects == [PUBLIC_IP]  # the first hop only


def test_dns_rebinding_cannot_win(net: FakeInternet, local: Served) -> None:
    """The name is resolved once per connection and the socket goes to the address checked.

    First answer public, every later one 127.0.0.1: the fetch reaches the public address (a
    second lookup at connect time would have gone to loopback), and a new connection that
    sees the private answer is refused."""
    net.name("rebind.example", [PUBLIC_IP], ["127.0.0.1"])
    with make_client(FAST) as client:
        got = fetch(client, "http://rebind.example/ok", max_bytes=100_000)
    assert got.status == 200
    assert net.lookups == ["rebind.example"] and net.connects == [PUBLIC_IP]
    with make_client(FAST) as client:
        assert reason(client, "http://rebind.example/ok") == "address_not_allowed"
    assert net.connects == [PUBLIC_IP]


def test_rebinding_on_a_redirect_hop(net: FakeInternet) -> None:
    net.name("rebind.example", ["127.0.0.1"])
    with make_client(FAST) as client:
        assert reason(client, "http://news.example/to-rebind") == "address_not_allowed"
    assert net.connects == [PUBLIC_IP]


def test_allow_private_client_reaches_loopback(local: Served) -> None:
    with make_client(FAST, allow_private=True) as client:
        assert fetch(client, local.url("/ok"), max_bytes=100_000).status == 200


# ------------------------------------------------------------------ byte and time caps


def _drip(body: bytes, every_s: float, headers: bool = False) -> Route:
    def write(handler: BaseHTTPRequestHandler) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n"
        if headers:
            for byte in head:
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
                time.sleep(every_s)
            return
        handler.wfile.write(head)
        for byte in body:
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            time.sleep(every_s)

    return Route(writer=write)


def _endless(handler: BaseHTTPRequestHandler) -> None:
    handler.wfile.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"4000\r\n" + b"x" * 0x4000 + b"\r\n"
    for _ in range(100_000):  # 1.6 GB unless the client hangs up
        handler.wfile.write(chunk)


def _huge_length(handler: BaseHTTPRequestHandler) -> None:
    handler.wfile.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 10737418240\r\n\r\nxx"
    )


BOMB = bytes(8_000_000)  # 8 MB of zeros, ~8 KB compressed, against a 1 MB cap


@pytest.fixture(scope="module")
def hostile() -> Iterator[Served]:
    routes = {
        "/gzip-bomb": Route(gzip.compress(BOMB, 6), headers={**HTML, "Content-Encoding": "gzip"}),
        "/deflate-bomb": Route(
            zlib.compress(BOMB, 6), headers={**HTML, "Content-Encoding": "deflate"}
        ),
        "/gzip-ok": Route(
            gzip.compress(PAGE.encode()), headers={**HTML, "Content-Encoding": "gzip"}
        ),
        "/raw-deflate": Route(
            zlib.compress(PAGE.encode())[2:-4], headers={**HTML, "Content-Encoding": "deflate"}
        ),
        "/brotli": Route(b"\x1b\x00", headers={**HTML, "Content-Encoding": "br"}),
        "/endless": Route(writer=_endless),
        "/drip-body": _drip(b"<html>" + b"x" * 100, 0.25),
        "/drip-headers": _drip(b"", 0.25, headers=True),
        "/10gb": Route(writer=_huge_length),
        "/binary": Route(b"\x89PNG" + bytes(500_000), headers={"Content-Type": "image/png"}),
        "/octets": Route(bytes(1000), headers={"Content-Type": "application/octet-stream"}),
    }
    with serve(routes) as served:
        yield served


@pytest.fixture()
def local_client() -> Iterator[httpx.Client]:
    with make_client(FAST, allow_private=True) as client:
        yield client


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/gzip-bomb", "decompressed_too_large"),
        ("/deflate-bomb", "decompressed_too_large"),
        ("/brotli", "bad_encoding"),
        ("/endless", "too_large"),
        ("/10gb", "too_large"),
    ],
)
def test_byte_caps(hostile: Served, local_client: httpx.Client, path: str, code: str) -> None:
    started = time.monotonic()
    assert reason(local_client, hostile.url(path), max_bytes=1_000_000) == code
    assert time.monotonic() - started < 5.0  # generous for busy CI; unbounded would be minutes


def test_compressed_bodies_decoded(hostile: Served, local_client: httpx.Client) -> None:
    for path in ("/gzip-ok", "/raw-deflate"):
        assert fetch(local_client, hostile.url(path), max_bytes=100_000).content == PAGE.encode()


@pytest.mark.parametrize("path", ["/drip-body", "/drip-headers"])
def test_wall_clock_deadline(hostile: Served, local_client: httpx.Client, path: str) -> None:
    """Each byte arrives well within the read timeout; the whole fetch may last 1 s (the whole
    response would take 15-25 s)."""
    started = time.monotonic()
    assert reason(local_client, hostile.url(path), total_timeout_s=1.0) == "deadline"
    assert time.monotonic() - started < 4.0  # 1 s plus slack for a busy machine


@pytest.mark.parametrize("path", ["/binary", "/octets"])
def test_binary_page_refused_unread(hostile: Served, local_client: httpx.Client, path: str) -> None:
    assert reason(local_client, hostile.url(path), max_bytes=1000, accept=_PAGE_TYPES) == "not_html"


# ------------------------------------------------------------------ the stage: items and outlets


def test_outlet_file_allow_private(tmp_path: Path) -> None:
    path = tmp_path / "outlets.toml"
    base = '[[outlet]]\nid = "a"\nname = "A"\nlang = "en"\nfeed_url = "http://x/f"\n'
    path.write_text(base + "allow_private = true\n" + base.replace('"a"', '"b"'))
    assert [o.allow_private for o in load_outlets(path)] == [True, False]
    path.write_text(base + 'allow_private = "yes"\n')
    with pytest.raises(ValueError, match="allow_private"):
        load_outlets(path)
    shipped = load_outlets(Path(__file__).parent.parent / "config" / "outlets.toml")
    assert shipped and all(o.allow_private for o in shipped)  # the bundled sample is local


def test_items_cannot_reach_inside(
    net: FakeInternet, local: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A public outlet's items pointing inside are refused (no page fetch, no fallback), with
    or without page fetching; its public items are kept."""
    local.routes["/feed.xml"] = Route(
        rss(
            "http://news.example/ok",
            f"{local.base}/ok",
            "http://169.254.169.254/latest/meta-data/iam",
            "http://intranet.example/story",
            "http://news.example/to-metadata",
        ),
        headers=RSS,
    )
    local.routes["/robots.txt"] = Route(
        b"User-agent: *\nAllow: /\n", headers={"Content-Type": "text/plain"}
    )
    outlets = [
        Outlet("pub", "Public", "en", "http://news.example/feed.xml"),
        Outlet("pub-feed", "Feed only", "en", "http://news.example/feed.xml", fetch_pages=False),
    ]
    for outlet in outlets:
        articles, result = ingest_outlets([outlet], FAST)
        refused = sorted(r.url for r in result.rejects if r.reason == "address_not_allowed")
        kept = {a.url for a in articles}
        assert "http://news.example/ok" in kept
        assert not kept & {f"{local.base}/ok", "http://169.254.169.254/latest/meta-data/iam"}
        expected = [f"{local.base}/ok", "http://169.254.169.254/latest/meta-data/iam"]
        if outlet.fetch_pages:  # names are checked when resolved, i.e. when fetched
            expected += ["http://intranet.example/story", "http://news.example/to-metadata"]
        assert refused == sorted(expected)
    assert "169.254.169.254" not in net.connects and "10.20.30.40" not in net.connects
    assert all(c == PUBLIC_IP for c in net.connects)


def test_private_feed_refused_unless_outlet_allows(local: Served) -> None:
    local.routes["/feed.xml"] = Route(rss(f"{local.base}/ok"), headers=RSS)
    url = local.url("/feed.xml")
    _, refused = ingest_outlets([Outlet("o", "O", "en", url)], FAST)
    assert [r.reason for r in refused.rejects] == ["address_not_allowed"]
    assert refused.feed_states[0].last_failure_reason == "address_not_allowed"
    articles, allowed = ingest_outlets([Outlet("o", "O", "en", url, allow_private=True)], FAST)
    assert [a.text_source for a in articles] == ["page"] and not allowed.rejects


# ------------------------------------------------------------------ politeness


def test_user_agent_names_a_contact(local: Served) -> None:
    settings = IngestSettings(contact_url="https://example.org/parallax-contact")
    with make_client(settings, allow_private=True) as client:
        fetch(client, local.url("/ok"), max_bytes=100_000)
    assert local.requests[-1][1]["user-agent"] == (
        "Parallax/0.1 (+https://example.org/parallax-contact)"
    )


def test_robots_txt_honoured_with_crawl_delay(local: Served) -> None:
    local.routes["/robots.txt"] = Route(
        b"User-agent: *\nDisallow: /\n\nUser-agent: parallax\nDisallow: /private/\n"
        b"Crawl-delay: 0.5\n",
        headers={"Content-Type": "text/plain"},
    )
    local.routes["/public/a"] = Route(page(1), headers=HTML)
    local.routes["/private/b"] = Route(page(2), headers=HTML)
    local.routes["/feed.xml"] = Route(
        rss(local.url("/public/a"), local.url("/private/b")), headers=RSS
    )
    outlet = Outlet("o", "O", "en", local.url("/feed.xml"), allow_private=True)
    articles, result = ingest_outlets([outlet], FAST)
    assert "/private/b" not in local.paths()
    assert local.paths().count("/robots.txt") == 1
    assert [r.reason for r in result.rejects] == ["page_robots_disallowed"]
    assert {a.text_source for a in articles} == {"page", "feed"}  # b kept from the feed text
    gaps = [b - a for a, b in zip(local.times, local.times[1:], strict=False)]
    # robots, feed, page: 0.5 s apart as sent; arrival times jitter a little on a busy machine
    assert len(gaps) == 2 and min(gaps) >= 0.4


@pytest.mark.parametrize(
    ("robots", "code"),
    [
        (Route(b"User-agent: *\nDisallow: /\n"), "feed_robots_disallowed"),
        (Route(b"busy", status=503), "feed_robots_unavailable"),
    ],
)
def test_robots_keep_us_off_the_feed(local: Served, robots: Route, code: str) -> None:
    local.routes["/robots.txt"] = robots
    local.routes["/feed.xml"] = Route(rss(local.url("/ok")), headers=RSS)
    outlet = Outlet("o", "O", "en", local.url("/feed.xml"), allow_private=True)
    articles, result = ingest_outlets([outlet], FAST)
    assert not articles and [r.reason for r in result.rejects] == [code]
    assert local.paths() == ["/robots.txt"]


def test_missing_robots_allows_everything(local: Served) -> None:
    local.routes["/feed.xml"] = Route(rss(local.url("/ok")), headers=RSS)
    outlet = Outlet("o", "O", "en", local.url("/feed.xml"), allow_private=True)
    articles, _ = ingest_outlets([outlet], FAST)
    assert len(articles) == 1 and local.paths() == ["/robots.txt", "/feed.xml", "/ok"]


def test_per_host_concurrency(local: Served) -> None:
    links = []
    for i in range(6):
        local.routes[f"/slow/{i}"] = Route(page(i), headers=HTML, delay_s=0.3)
        links.append(local.url(f"/slow/{i}"))
    local.routes["/feed.xml"] = Route(rss(*links), headers=RSS)
    outlet = Outlet("o", "O", "en", local.url("/feed.xml"), allow_private=True)
    settings = IngestSettings(**{**FAST.__dict__, "fetch_workers": 4, "per_host_concurrency": 2})
    started = time.monotonic()
    articles, _ = ingest_outlets([outlet], settings)
    assert len(articles) == 6
    assert local.in_flight[1] == 2  # in parallel, never more than the limit
    assert time.monotonic() - started >= 0.9  # 6 pages x 0.3 s over 2 slots
    assert [a.url for a in articles] == links  # in feed order, whatever order pages came in


def test_retry_after_defers_the_outlet(local: Served) -> None:
    local.routes["/feed.xml"] = Route(b"slow down", status=429, headers={"Retry-After": "120"})
    outlet = Outlet("o", "O", "en", local.url("/feed.xml"), allow_private=True)
    before = datetime.now(UTC)
    _, result = ingest_outlets([outlet], FAST)
    assert [r.reason for r in result.rejects] == ["feed_rate_limited"]
    (state,) = result.feed_states
    assert state.retry_after is not None
    assert before + timedelta(seconds=119) <= state.retry_after <= before + timedelta(seconds=125)
    asked = len(local.requests)
    _, again = ingest_outlets([outlet], FAST, feed_states={"o": state})
    assert again.counts["feeds_deferred"] == 1 and not again.rejects
    assert len(local.requests) == asked  # not asked again before the time it gave


def test_page_rate_limit_backs_off_the_host(local: Served) -> None:
    date = (datetime.now(UTC) + timedelta(minutes=5)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    local.routes["/busy/0"] = Route(b"busy", status=503, headers={"Retry-After": date})
    local.routes["/busy/1"] = Route(page(1), headers=HTML)
    local.routes["/feed.xml"] = Route(rss(local.url("/busy/0"), local.url("/busy/1")), headers=RSS)
    outlet = Outlet("o", "O", "en", local.url("/feed.xml"), allow_private=True)
    settings = IngestSettings(**{**FAST.__dict__, "fetch_workers": 1})
    articles, result = ingest_outlets([outlet], settings)
    assert [r.reason for r in result.rejects] == ["page_rate_limited"] * 2
    assert "/busy/1" not in local.paths()
    assert len(articles) == 2 and {a.text_source for a in articles} == {"feed"}


def test_retry_after_parsing() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert retry_at("30", now) == now + timedelta(seconds=30)
    assert retry_at("Thu, 01 Jan 2026 00:10:00 GMT", now) == now + timedelta(minutes=10)
    assert retry_at("Wed, 31 Dec 2025 00:00:00 GMT", now) == now  # in the past: now
    assert retry_at("soon", now) is None and retry_at(None, now) is None


def test_feed_state_record_defaults() -> None:
    state = FeedState("o", "http://x/f")
    assert state.items_seen == 0 and state.retry_after is None
