"""Fetch feeds and pages over HTTP with bounded time, size and redirects.

Everything a server can do wrong (hang, send gigabytes, redirect to ``file:`` or ``javascript:``,
answer 500) ends as a :class:`FetchError` with a short reason code, so the caller can record a
Reject and go on with the rest of the batch.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

from pipeline.settings import IngestSettings

logger = logging.getLogger(__name__)

_ALLOWED_SCHEMES = ("http", "https")
_REDIRECT_CODES = (301, 302, 303, 307, 308)


class FetchError(Exception):
    """A fetch that gave no usable body. ``reason`` is a short code, ``detail`` says more.

    Reasons: scheme_not_allowed, http_status, too_large, timeout, connect_error, empty,
    too_many_redirects, http_error (any other transport or protocol failure).
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


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


def make_client(settings: IngestSettings) -> httpx.Client:
    """An httpx client with the timeouts, user agent, redirect limit and politeness of settings."""
    hooks: dict[str, list[Callable[..., object]]] = {
        "request": [],
        "response": [_refuse_unsafe_redirect],
    }
    if settings.per_host_delay_s > 0:
        hooks["request"].append(_host_throttle(settings.per_host_delay_s))
    return httpx.Client(
        timeout=httpx.Timeout(
            settings.read_timeout_s,
            connect=settings.connect_timeout_s,
            pool=settings.connect_timeout_s,
        ),
        headers={
            "User-Agent": settings.user_agent,
            "Accept-Encoding": "gzip, deflate",
        },
        follow_redirects=True,
        max_redirects=settings.max_redirects,
        event_hooks=hooks,
    )


def _check_scheme(url: str, *, context: str) -> None:
    scheme = urlsplit(url).scheme.lower()
    if scheme not in _ALLOWED_SCHEMES:
        raise FetchError("scheme_not_allowed", f"{context} {url!r}")


def _read_capped(response: httpx.Response, max_bytes: int, url: str, deadline: float) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchError("too_large", f"Content-Length {declared} > {max_bytes} bytes for {url}")
    chunks: list[bytes] = []
    size = 0
    # iter_bytes decompresses, so the cap applies to what we would keep (no gzip bombs).
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise FetchError("too_large", f"body exceeds {max_bytes} bytes for {url}")
        if time.monotonic() > deadline:
            raise FetchError("timeout", f"body not received within the total time limit for {url}")
        chunks.append(chunk)
    return b"".join(chunks)


def fetch(
    client: httpx.Client,
    url: str,
    *,
    max_bytes: int,
    etag: str | None = None,
    last_modified: str | None = None,
    total_timeout_s: float | None = None,
) -> Fetched:
    """GET ``url`` following http(s) redirects only, streaming at most ``max_bytes`` of body.

    ``etag``/``last_modified`` make a conditional GET; a 304 gives ``not_modified=True``.
    ``total_timeout_s`` bounds the whole exchange (a server trickling bytes never times out a
    read); by default four read timeouts.
    """
    _check_scheme(url, context="URL")
    headers: dict[str, str] = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    read_timeout = client.timeout.read or 15.0
    deadline = time.monotonic() + (total_timeout_s or 4 * read_timeout)
    current = url
    for _hop in range(client.max_redirects + 1):
        try:
            with client.stream("GET", current, headers=headers, follow_redirects=False) as resp:
                if resp.status_code in _REDIRECT_CODES and "location" in resp.headers:
                    target = urljoin(current, resp.headers["location"].strip())
                    _check_scheme(target, context=f"redirect from {current} to")
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
                    raise FetchError("http_status", f"HTTP {resp.status_code} for {current}")
                content = _read_capped(resp, max_bytes, current, deadline)
                if not content.strip():
                    raise FetchError("empty", f"empty body (HTTP {resp.status_code}) for {current}")
                return Fetched(
                    url=url,
                    final_url=current,
                    status=resp.status_code,
                    content_type=resp.headers.get("content-type"),
                    content=content,
                    etag=resp.headers.get("etag"),
                    last_modified=resp.headers.get("last-modified"),
                )
        except httpx.TimeoutException as exc:
            raise FetchError("timeout", f"{type(exc).__name__} for {current}") from exc
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise FetchError("connect_error", f"{exc} ({current})") from exc
        except httpx.UnsupportedProtocol as exc:
            raise FetchError("scheme_not_allowed", f"{exc} ({current})") from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise FetchError("http_error", f"{type(exc).__name__}: {exc} ({current})") from exc
    raise FetchError("too_many_redirects", f"more than {client.max_redirects} redirects from {url}")
