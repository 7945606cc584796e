"""Where a fetch may connect, and for how long: the guard against server-side request forgery.

A URL in a feed, a redirect or a page is chosen by whoever runs that server, so it may point
at this machine (127.0.0.1, ::1), the local network (10/8, 192.168/16, fc00::/7, ...) or a
cloud metadata service (169.254.169.254). Checking the URL's host before the request is not
enough: the name can resolve to a public address for the check and to a private one for the
connection (DNS rebinding). So the check lives in the network backend itself: the host is
resolved once, *every* address of the answer is checked, and the socket connects to a checked
address; nothing resolves the name a second time. A pooled connection is reused only for the
same origin by the same client, and an outlet allowed private addresses gets a client of its own.

The same backend enforces the wall-clock deadline of a fetch: every connect, TLS handshake,
read and write gets at most the time left before the deadline set by :func:`deadline`, so a
server that drips one byte a second (in the headers or the body) ends at the deadline.
"""

from __future__ import annotations

import contextvars
import ipaddress
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import httpcore

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> the addresses it resolves to, as strings. Tests substitute DNS here.
Resolver = Callable[[str, int], list[str]]

# Named for the README and the error detail; the check itself is `not is_global` (which covers
# these and every other special-purpose range: 100.64/10, 192.0.0/24, 198.18/15, ...) plus
# multicast and the IPv4 addresses embedded in IPv6 forms (mapped, 6to4, Teredo, NAT64).
BLOCKED_RANGES = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "parallax_fetch_deadline", default=None
)
_RESOLVER_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="parallax-dns")


class AddressNotAllowed(Exception):
    """The host is, or resolves to, an address a public outlet may not reach."""

    def __init__(self, host: str, address: str) -> None:
        super().__init__(f"{host} resolves to {address}, a non-public address")
        self.host = host
        self.address = address


class DeadlineExceeded(Exception):
    """The fetch's wall-clock deadline passed (connect, TLS, headers or body)."""


def _embedded_v4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    found: list[ipaddress.IPv4Address] = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    if ip in _NAT64:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def is_public(address: str | IPAddress) -> bool:
    """True for a globally routable unicast address (IPv4 forms inside IPv6 checked too)."""
    try:
        ip = ipaddress.ip_address(str(address).split("%", 1)[0])
    except ValueError:
        return False
    if not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_unspecified:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        return all(is_public(v4) for v4 in _embedded_v4(ip))
    return True


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (IPv4 and IPv6), in the order the system gives."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: dict[str, None] = {}
    for _family, _type, _proto, _canon, sockaddr in infos:
        seen.setdefault(str(sockaddr[0]), None)
    return list(seen)


def literal_address(host: str) -> IPAddress | None:
    """The address when ``host`` is an IP literal (``[::1]`` included), else None."""
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def url_host_refused(url: str) -> str | None:
    """Without resolving: why ``url`` certainly points inside (an IP literal or ``localhost``)."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    literal = literal_address(host)
    if literal is not None:
        return None if is_public(literal) else f"{host} is a non-public address"
    if host == "localhost" or host.endswith(".localhost"):
        return f"{host} names this machine"
    return None


def time_left() -> float | None:
    """Seconds before the current fetch's deadline (None when no deadline is set)."""
    end = _DEADLINE.get()
    return None if end is None else end - time.monotonic()


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Bound every network operation inside the block to ``seconds`` of wall-clock time."""
    token = _DEADLINE.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def _bounded(timeout: float | None) -> float | None:
    left = time_left()
    if left is None:
        return timeout
    if left <= 0:
        raise DeadlineExceeded("the fetch's total time limit passed")
    return left if timeout is None else min(timeout, left)


class DeadlineStream(httpcore.NetworkStream):
    """A network stream whose every operation ends by the fetch's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _bounded(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _bounded(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        # The certificate is checked against the URL's host name, not the pinned address.
        inner = self._inner.start_tls(ssl_context, server_hostname, _bounded(timeout))
        return DeadlineStream(inner)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class GuardedBackend(httpcore.NetworkBackend):
    """Resolve once, check every address (unless ``allow_private``), connect to a checked one."""

    def __init__(self, *, allow_private: bool = False, resolver: Resolver | None = None) -> None:
        self.allow_private = allow_private
        self._resolver = resolver or system_resolver
        self._sync = httpcore.SyncBackend()

    def resolve(self, host: str, port: int, timeout: float | None) -> list[str]:
        """The checked addresses of ``host``; raises AddressNotAllowed or DeadlineExceeded."""
        literal = literal_address(host)
        if literal is not None:
            addresses = [str(literal)]
        else:
            # getaddrinfo cannot be interrupted: wait for it only as long as the fetch may last.
            future = _RESOLVER_POOL.submit(self._resolver, host, port)
            try:
                addresses = future.result(timeout=_bounded(timeout))
            except FutureTimeout as exc:
                raise httpcore.ConnectTimeout(f"resolving {host} timed out") from exc
            except OSError as exc:
                raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        if not addresses:
            raise httpcore.ConnectError(f"{host} resolves to no address")
        if not self.allow_private:
            for address in addresses:
                if not is_public(address):
                    raise AddressNotAllowed(host, address)
        return addresses

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = self.resolve(host, port, timeout)
        last: Exception | None = None
        for address in addresses:  # the pinned, checked addresses: no second resolution
            try:
                stream = self._sync.connect_tcp(
                    address,
                    port,
                    timeout=_bounded(timeout),
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
                continue
            return DeadlineStream(stream)
        assert last is not None
        raise last

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not fetched")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)
