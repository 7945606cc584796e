"""Fetch feeds and pages over HTTP with bounded time, size and redirects, to public addresses.

Everything a server can do wrong (hang, drip, send gigabytes or a compression bomb, redirect to
``file:``, ``javascript:`` or an address inside our network, answer 500 or 429) ends as a
:class:`FetchError` with a short reason code, so the caller can record a Reject and go on with
the rest of the batch. Where a fetch may connect is decided in :mod:`pipeline.ingest.netguard`.
"""

from __future__ import annotations

import functools
import logging
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from pipeline.ingest.netguard import (
    AddressNotAllowed,
    DeadlineExceeded,
    GuardedBackend,
    Resolver,
    deadline,
    time_left,
)
from pipeline.settings import IngestSettings

logger = logging.getLogger(__name__)

_ALLOWED_SCHEMES = ("http", "https")
_REDIRECT_CODES = (301, 302, 303, 307, 308)
_ENCODINGS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class FetchError(Exception):
    """A fetch that gave no usable body. ``reason`` is a short code, ``detail`` says more.

    Reasons: scheme_not_allowed, address_not_allowed, http_status, rate_limited (429, or 503
    with Retry-After; ``retry_at`` says until when), too_large (declared or received bytes),
    decompressed_too_large (gzip/deflate bomb), bad_encoding, timeout (one read), deadline
    (the whole fetch's wall-clock cap), connect_error, empty, too_many_redirects, not_html (a
    content type outside ``accept``), http_error (any other transport or protocol failure).
    """

    def __init__(
        self,
        reason: str,
        detail: str = "",
        *,
        retry_at: datetime | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.retry_at = retry_at
        self.status = status  # the HTTP status, for http_status and rate_limited


@dataclass(frozen=True)
class Fetched:
    url: str  # the URL asked for
    final_url: str  # after redirects
    status: int
    content_type: str | None
    content: bytes  # empty when not_modified
    etag: str | None
    last_modified: str | None
    not_modified: bool = False  # 304 answer to a conditional GET


def _host_throttle(delay_s: float) -> Callable[[httpx.Request], None]:
    """A request hook that spaces requests to one host at least ``delay_s`` apart.

    The state lives in the closure, that is in the client that owns the hook, not in the module.
    """
    last: dict[str, float] = {}
    lock = threading.Lock()

    def throttle(request: httpx.Request) -> None:
        host = request.url.host
        with lock:
            now = time.monotonic()
            wait = last.get(host, -1e9) + delay_s - now
            last[host] = now + max(wait, 0.0)
        if wait > 0:
            time.sleep(wait)

    return throttle


def _refuse_unsafe_redirect(response: httpx.Response) -> None:
    """Response hook: a redirect to a non-http(s) URL is refused before httpx builds it.

    httpx prepares the next request of a redirect even when not following it, and fails with a
    bare ``InvalidURL`` on targets such as ``javascript:``; checking here gives a clear reason.
    """
    location = response.headers.get("location")
    if response.status_code in _REDIRECT_CODES and location is not None:
        source = str(response.request.url)
        _check_scheme(urljoin(source, location.strip()), context=f"redirect from {source} to")


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One verifying context for every client (loading the CA bundle costs ~0.2 s each time)."""
    return httpx.create_ssl_context(trust_env=False)


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport over a :class:`GuardedBackend` (pinned, checked addresses; deadline).

    httpx takes no network backend argument, so the pool is built here, as httpx builds it
    for a transport without proxy; the tests of this module fail if a new httpx changes that.
    """

    def __init__(self, backend: GuardedBackend, *, max_connections: int = 20) -> None:
        # not super().__init__(): it would build a second pool (and SSL context) to throw away
        self._pool = httpcore.ConnectionPool(
            ssl_context=_ssl_context(),
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=5.0,
            network_backend=backend,
        )


def make_client(
    settings: IngestSettings,
    *,
    allow_private: bool = False,
    resolver: Resolver | None = None,
    request_hooks: Sequence[Callable[[httpx.Request], None]] = (),
) -> httpx.Client:
    """An httpx client with the timeouts, user agent, redirect limit and address guard of settings.

    ``allow_private`` lets it reach loopback and private networks: only for outlets marked
    ``allow_private = true``. Proxies from the environment are ignored (``trust_env=False``):
    through a proxy the guard would check the proxy's address, not the target's.
    """
    hooks: dict[str, list[Callable[..., object]]] = {
        "request": list(request_hooks),
        "response": [_refuse_unsafe_redirect],
    }
    if settings.per_host_delay_s > 0 and not request_hooks:
        hooks["request"].append(_host_throttle(settings.per_host_delay_s))
    backend = GuardedBackend(allow_private=allow_private, resolver=resolver)
    return httpx.Client(
        timeout=httpx.Timeout(
            settings.read_timeout_s,
            connect=settings.connect_timeout_s,
            pool=settings.connect_timeout_s,
        ),
        headers={
            "User-Agent": settings.user_agent_header,
            "Accept-Encoding": "gzip, deflate",
        },
        follow_redirects=True,
        max_redirects=settings.max_redirects,
        event_hooks=hooks,
        transport=GuardedTransport(backend),
        trust_env=False,
    )


def _check_scheme(url: str, *, context: str) -> None:
    scheme = urlsplit(url).scheme.lower()
    if scheme not in _ALLOWED_SCHEMES:
        raise FetchError("scheme_not_allowed", f"{context} {url!r}")


def _decoded(chunks: Iterator[bytes], encoding: str, max_bytes: int, url: str) -> Iterator[bytes]:
    """Raw body chunks decoded with at most ``max_bytes`` of output (no gzip/deflate bombs)."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        yield from chunks
        return
    if encoding not in _ENCODINGS:
        raise FetchError("bad_encoding", f"Content-Encoding {encoding!r} not supported ({url})")
    wbits = _ENCODINGS[encoding]
    decoder = zlib.decompressobj(wbits)
    first = True
    size = 0
    for chunk in chunks:
        try:
            out = decoder.decompress(chunk, max_bytes - size + 1)
        except zlib.error as exc:
            if not (first and wbits == zlib.MAX_WBITS):
                raise FetchError("bad_encoding", f"{encoding} body: {exc} ({url})") from exc
            wbits = -zlib.MAX_WBITS  # "deflate" sent raw, without the zlib header
            decoder = zlib.decompressobj(wbits)
            out = decoder.decompress(chunk, max_bytes - size + 1)
        first = False
        size += len(out)
        if size > max_bytes:
            raise FetchError(
                "decompressed_too_large", f"{encoding} body inflates past {max_bytes} bytes ({url})"
            )
        yield out
    try:
        rest = decoder.flush()
    except zlib.error as exc:
        raise FetchError("bad_encoding", f"{encoding} body: {exc} ({url})") from exc
    if size + len(rest) > max_bytes:
        raise FetchError(
            "decompressed_too_large", f"{encoding} body inflates past {max_bytes} bytes ({url})"
        )
    yield rest


def _read_capped(response: httpx.Response, max_bytes: int, url: str) -> bytes:
    declared = response.headers.get("content-length", "").strip()
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchError("too_large", f"Content-Length {declared} > {max_bytes} bytes for {url}")
    if "," in response.headers.get("content-encoding", ""):
        raise FetchError("bad_encoding", f"stacked Content-Encoding for {url}")

    def raw() -> Iterator[bytes]:
        size = 0
        for chunk in response.iter_raw():
            size += len(chunk)
            if size > max_bytes:
                raise FetchError("too_large", f"body exceeds {max_bytes} bytes for {url}")
            yield chunk

    parts = list(_decoded(raw(), response.headers.get("content-encoding", ""), max_bytes, url))
    return b"".join(parts)


def retry_at(value: str | None, now: datetime | None = None) -> datetime | None:
    """When a ``Retry-After`` header (seconds or an HTTP date) allows the next request."""
    if not value:
        return None
    now = now or datetime.now(UTC)
    value = value.strip()
    if value.isdigit():
        return now + timedelta(seconds=int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(when.astimezone(UTC), now)


def _status_error(resp: httpx.Response, url: str) -> FetchError:
    code = resp.status_code
    header = resp.headers.get("retry-after")
    if code == 429 or (code == 503 and header):
        when = retry_at(header)
        detail = f"HTTP {code} for {url}" + (
            f"; retry after {when:%Y-%m-%dT%H:%M:%SZ}" if when else ""
        )
        return FetchError("rate_limited", detail, retry_at=when, status=code)
    return FetchError("http_status", f"HTTP {code} for {url}", status=code)


def _content_type_ok(content_type: str | None, accept: Sequence[str] | None) -> bool:
    if not accept or not content_type:
        return True
    lowered = content_type.lower()
    return any(t in lowered for t in accept)


def fetch(
    client: httpx.Client,
    url: str,
    *,
    max_bytes: int,
    etag: str | None = None,
    last_modified: str | None = None,
    total_timeout_s: float | None = None,
    accept: Sequence[str] | None = None,
) -> Fetched:
    """GET ``url`` following http(s) redirects only, streaming at most ``max_bytes`` of body.

    ``etag``/``last_modified`` make a conditional GET; a 304 gives ``not_modified=True``.
    ``total_timeout_s`` bounds the whole exchange, redirects included (a server trickling bytes
    never times out a read); by default four read timeouts. With a client from
    :func:`make_client`, every connection (each redirect hop's) goes only to checked addresses.
    ``accept``: substrings
    of the content types wanted; another type ends as ``not_html`` before the body is read.
    """
    _check_scheme(url, context="URL")
    headers: dict[str, str] = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    read_timeout = client.timeout.read or 15.0
    limit = total_timeout_s or 4 * read_timeout
    current = url
    with deadline(limit):
        for _hop in range(client.max_redirects + 1):
            try:
                with client.stream("GET", current, headers=headers, follow_redirects=False) as resp:
                    if resp.status_code in _REDIRECT_CODES and "location" in resp.headers:
                        target = urljoin(current, resp.headers["location"].strip())
                        context = f"redirect from {current} to"
                        _check_scheme(target, context=context)
                        logger.debug("redirect %s -> %s", current, target)
                        current = target
                        continue
                    if resp.status_code == 304:
                        return Fetched(
                            url=url,
                            final_url=current,
                            status=304,
                            content_type=resp.headers.get("content-type"),
                            content=b"",
                            etag=resp.headers.get("etag", etag),
                            last_modified=resp.headers.get("last-modified", last_modified),
                            not_modified=True,
                        )
                    if resp.status_code >= 400 or resp.status_code < 200:
                        raise _status_error(resp, current)
                    ctype = resp.headers.get("content-type")
                    if not _content_type_ok(ctype, accept):
                        raise FetchError("not_html", f"Content-Type {ctype!r} for {current}")
                    content = _read_capped(resp, max_bytes, current)
                    if not content.strip():
                        raise FetchError(
                            "empty", f"empty body (HTTP {resp.status_code}) for {current}"
                        )
                    return Fetched(
                        url=url,
                        final_url=current,
                        status=resp.status_code,
                        content_type=ctype,
                        content=content,
                        etag=resp.headers.get("etag"),
                        last_modified=resp.headers.get("last-modified"),
                    )
            except AddressNotAllowed as exc:
                raise FetchError("address_not_allowed", f"{exc} ({current})") from exc
            except DeadlineExceeded as exc:
                raise FetchError("deadline", f"more than {limit:g}s for {current}") from exc
            except httpx.TimeoutException as exc:
                left = time_left()
                if left is not None and left <= 0.05:
                    raise FetchError("deadline", f"more than {limit:g}s for {current}") from exc
                raise FetchError("timeout", f"{type(exc).__name__} for {current}") from exc
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                raise FetchError("connect_error", f"{exc} ({current})") from exc
            except httpx.UnsupportedProtocol as exc:
                raise FetchError("scheme_not_allowed", f"{exc} ({current})") from exc
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                raise FetchError("http_error", f"{type(exc).__name__}: {exc} ({current})") from exc
    raise FetchError("too_many_redirects", f"more than {client.max_redirects} redirects from {url}")
