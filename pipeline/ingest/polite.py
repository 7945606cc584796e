"""A polite crawler over :func:`pipeline.ingest.http.fetch`: robots.txt, per-host limits, back-off.

One :class:`Crawler` serves one ingest run. Per host it reads robots.txt once (RFC 9309: a 4xx
answer allows everything, a 5xx or 429 disallows everything for the run) and honours its
``Crawl-delay`` for our product token; it keeps at most ``per_host_concurrency`` requests in
flight and spaces them by the larger of ``per_host_delay_s`` and the crawl delay; a 429 (or a
503 with ``Retry-After``) makes the host wait until then, so later URLs of that host in the run
end as ``rate_limited`` without a request. Clients are separate for outlets allowed private
addresses, so a pooled connection never crosses that line.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit
from urllib.robotparser import RobotFileParser

import httpx

from pipeline.ingest.http import Fetched, FetchError, fetch, make_client
from pipeline.settings import IngestSettings

logger = logging.getLogger(__name__)

# Robots answers that mean "no rules" (RFC 9309 2.3.1.3) and errors that mean "assume disallow".
_ROBOTS_ALLOW_ALL = frozenset({"not_html", "empty", "too_large", "decompressed_too_large"})
_ROBOTS_UNAVAILABLE = frozenset({"rate_limited"})


def crawl_delay(lines: list[str], token: str) -> float | None:
    """The ``Crawl-delay`` of the group for ``token`` (else ``*``), fractions allowed.

    urllib.robotparser reads only whole seconds; the group matching is the same as its own
    (the first group naming a part of our token, else the ``*`` group).
    """
    groups: list[tuple[list[str], float | None]] = []
    agents: list[str] = []
    delay: float | None = None
    in_rules = False
    for raw in lines:
        key, sep, value = raw.split("#", 1)[0].partition(":")
        if not sep:
            continue
        key, value = key.strip().lower(), value.strip()
        if key == "user-agent":
            if in_rules:
                groups.append((agents, delay))
                agents, delay, in_rules = [], None, False
            agents.append(value.lower())
        elif key in ("allow", "disallow", "crawl-delay"):
            in_rules = True
            if key == "crawl-delay":
                try:
                    delay = float(value)
                except ValueError:
                    delay = None
    groups.append((agents, delay))
    token = token.lower()
    for names, seconds in groups:
        if any(name != "*" and name in token for name in names):
            return seconds
    for names, seconds in groups:
        if "*" in names:
            return seconds
    return None


class HostGate:
    """Per-host concurrency, spacing between requests, and back-off until a given time."""

    def __init__(self, concurrency: int, min_interval_s: float) -> None:
        self._concurrency = max(1, concurrency)
        self._min_interval = max(0.0, min_interval_s)
        self._lock = threading.Lock()
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._next: dict[str, float] = {}
        self._last: dict[str, float] = {}
        self._delay: dict[str, float] = {}
        self._until: dict[str, datetime] = {}

    @contextmanager
    def slot(self, host: str) -> Iterator[None]:
        with self._lock:
            sem = self._slots.setdefault(host, threading.BoundedSemaphore(self._concurrency))
        with sem:
            yield

    def space(self, request: httpx.Request) -> None:
        """Request hook: wait until this host's next request may start."""
        host = request.url.host
        with self._lock:
            interval = max(self._min_interval, self._delay.get(host, 0.0))
            now = time.monotonic()
            start = max(now, self._next.get(host, now))
            self._next[host] = start + interval
            self._last[host] = start
        if start > now:
            time.sleep(start - now)

    def set_delay(self, host: str, seconds: float) -> None:
        """A host's own delay (robots.txt Crawl-delay), counted from its last request."""
        with self._lock:
            self._delay[host] = seconds
            if host in self._last:
                self._next[host] = max(self._next[host], self._last[host] + seconds)

    def back_off(self, host: str, until: datetime) -> None:
        with self._lock:
            self._until[host] = max(until, self._until.get(host, until))

    def blocked_until(self, host: str) -> datetime | None:
        with self._lock:
            until = self._until.get(host)
        return until if until is not None and until > datetime.now(UTC) else None


class Crawler:
    """Fetch URLs politely for one run; ``client`` (optional) replaces the guarded clients."""

    def __init__(self, settings: IngestSettings, *, client: httpx.Client | None = None) -> None:
        self.settings = settings
        self.gate = HostGate(settings.per_host_concurrency, settings.per_host_delay_s)
        self.token = settings.user_agent.split("/", 1)[0].strip() or "*"
        self._given = client
        self._clients: dict[bool, httpx.Client] = {}
        self._robots: dict[tuple[str, bool], RobotFileParser | FetchError] = {}
        self._lock = threading.Lock()
        self._robots_locks: dict[tuple[str, bool], threading.Lock] = {}

    def client(self, allow_private: bool) -> httpx.Client:
        if self._given is not None:
            return self._given
        with self._lock:
            if allow_private not in self._clients:
                self._clients[allow_private] = make_client(
                    self.settings, allow_private=allow_private, request_hooks=[self.gate.space]
                )
            return self._clients[allow_private]

    def close(self) -> None:
        for c in self._clients.values():
            c.close()
        self._clients.clear()

    def __enter__(self) -> Crawler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def clamp_retry(self, when: datetime | None) -> datetime:
        """A Retry-After time within [now, now + max_retry_after_s]; the default when None."""
        now = datetime.now(UTC)
        if when is None:
            return now + timedelta(seconds=self.settings.default_retry_after_s)
        return min(max(when, now), now + timedelta(seconds=self.settings.max_retry_after_s))

    def _robots_for(self, url: str, allow_private: bool) -> RobotFileParser | FetchError:
        parts = urlsplit(url)
        origin = f"{parts.scheme.lower()}://{parts.netloc.lower()}"
        key = (origin, allow_private)
        with self._lock:
            if key in self._robots:
                return self._robots[key]
            lock = self._robots_locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._robots:
                self._robots[key] = self._read_robots(origin, allow_private)
            return self._robots[key]

    def _read_robots(self, origin: str, allow_private: bool) -> RobotFileParser | FetchError:
        parser = RobotFileParser(origin + "/robots.txt")
        try:
            got = fetch(
                self.client(allow_private),
                origin + "/robots.txt",
                max_bytes=self.settings.max_robots_bytes,
                total_timeout_s=min(self.settings.fetch_deadline_s, 30.0),
            )
        except FetchError as exc:
            if exc.reason in _ROBOTS_ALLOW_ALL or (
                exc.reason == "http_status" and exc.status is not None and exc.status < 500
            ):
                parser.parse([])  # no rules: everything allowed
                return parser
            if exc.reason in _ROBOTS_UNAVAILABLE or exc.reason == "http_status":
                logger.warning("%s/robots.txt unavailable (%s): not crawling it", origin, exc)
                return FetchError("robots_unavailable", f"{origin}/robots.txt: {exc}")
            logger.warning("%s/robots.txt not fetched (%s)", origin, exc)
            return exc  # the host is unreachable or refused: its URLs fail the same way
        lines = got.content.decode("utf-8", "replace").splitlines()
        parser.parse(lines)
        delay = crawl_delay(lines, self.token)
        if delay is not None and delay > 0:
            seconds = min(delay, self.settings.max_crawl_delay_s)
            self.gate.set_delay(urlsplit(origin).hostname or "", seconds)
            logger.info("%s: robots.txt Crawl-delay %.1fs", origin, seconds)
        return parser

    def check_robots(self, url: str, allow_private: bool) -> None:
        """Raise ``robots_disallowed`` (or the host's robots failure) unless ``url`` may be fetched."""
        if not self.settings.respect_robots:
            return
        robots = self._robots_for(url, allow_private)
        if isinstance(robots, FetchError):
            raise FetchError(robots.reason, robots.detail, retry_at=robots.retry_at)
        if not robots.can_fetch(self.token, url):
            raise FetchError("robots_disallowed", f"robots.txt disallows {url} for {self.token}")

    def get(
        self,
        url: str,
        *,
        allow_private: bool,
        max_bytes: int,
        etag: str | None = None,
        last_modified: str | None = None,
        accept: Sequence[str] | None = None,
    ) -> Fetched:
        """Fetch ``url`` within robots.txt, the host's limits and any back-off it asked for."""
        host = (urlsplit(url).hostname or "").lower()
        until = self.gate.blocked_until(host)
        if until is not None:
            raise FetchError(
                "rate_limited",
                f"{host} asked to wait until {until:%Y-%m-%dT%H:%M:%SZ}",
                retry_at=until,
            )
        self.check_robots(url, allow_private)
        with self.gate.slot(host):
            try:
                return fetch(
                    self.client(allow_private),
                    url,
                    max_bytes=max_bytes,
                    etag=etag,
                    last_modified=last_modified,
                    total_timeout_s=self.settings.fetch_deadline_s,
                    accept=accept,
                )
            except FetchError as exc:
                if exc.reason != "rate_limited":
                    raise
                when = self.clamp_retry(exc.retry_at)
                self.gate.back_off(host, when)
                logger.warning("%s: rate limited, not asked again before %s", host, when)
                raise FetchError(exc.reason, exc.detail, retry_at=when) from exc
