"""urllib3 pools that connect only to vetted addresses (SSRF defence).

The host name is resolved once per connection, every address is checked
against ``notifier.core.netpolicy``, and the socket is opened to a vetted address
itself, so a DNS answer that changes between check and connect (rebinding)
cannot slip through. TLS still verifies the certificate against the host
name, because urllib3 keeps using ``self.host`` for SNI and verification.
"""

import socket
from collections.abc import Callable, Sequence
from typing import Any

import certifi
import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from notifier.core import netpolicy

#: ``socket.getaddrinfo``'s signature.
Resolver = Callable[..., Any]


class ForbiddenAddressError(urllib3.exceptions.HTTPError):
    """Every address of the host is one webhooks may not reach."""


def vetted_addresses(
    host: str, port: int, resolver: Resolver, allowed_networks: Sequence[netpolicy.Network]
) -> list[tuple[int, Any]]:
    """Resolve ``host`` and return the (family, sockaddr) pairs allowed."""
    try:
        infos = resolver(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        # No connection object exists yet to name (urllib3 only stores it).
        raise NewConnectionError(None, f"cannot resolve {host}: {exc}") from exc  # type: ignore[arg-type]
    allowed: list[tuple[int, Any, str | None]] = []
    refused: list[tuple[int, Any, str | None]] = []
    for family, _, _, _, sockaddr in infos:
        reason = netpolicy.refusal_reason(sockaddr[0], allowed_networks)
        (refused if reason else allowed).append((family, sockaddr, reason))
    if not allowed:
        reason = refused[0][2] if refused else "no address"
        raise ForbiddenAddressError(f"{host} resolves to {reason}, which webhooks may not reach")
    return [(family, sockaddr) for family, sockaddr, _ in allowed]


def _connect_vetted(conn: Any) -> socket.socket:
    addresses = vetted_addresses(conn._dns_host, conn.port, conn.resolver, conn.allowed_networks)
    timeout = conn.timeout if isinstance(conn.timeout, (int, float)) else None
    error = None
    for family, sockaddr in addresses:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            for option in conn.socket_options or ():
                sock.setsockopt(*option)
            sock.settimeout(timeout)
            sock.connect(sockaddr)
            return sock
        except TimeoutError as exc:
            sock.close()
            raise ConnectTimeoutError(conn, f"connect to {conn.host} timed out") from exc
        except OSError as exc:
            sock.close()
            error = exc
    raise NewConnectionError(conn, f"cannot connect to {conn.host}: {error}")


class _OneSend:
    """Send a request's head and a bytes body in one ``send``.

    urllib3 sends the head (``endheaders``) and then the body in a second
    ``send``: two syscalls and, with TCP_NODELAY, two segments per webhook.
    Here the head is held back and sent with the body; whatever else (no
    body, a chunked or streamed body) goes out as urllib3 sends it.
    """

    _held: bytes | None = None
    _one_send: bool = False

    def request(  # type: ignore[no-untyped-def]
        self, method, url, body=None, headers=None, *, chunked=False, **kwargs
    ) -> None:
        self._one_send = isinstance(body, bytes) and bool(body) and not chunked
        self._held = None
        try:
            super().request(  # type: ignore[misc]
                method, url, body=body, headers=headers, chunked=chunked, **kwargs
            )
        except BaseException:
            self._held, self._one_send = None, False  # nothing half-sent
            raise
        held, self._held, self._one_send = self._held, None, False
        if held is not None:  # the body never came: send the head alone
            super().send(held)

    def send(self, data: Any) -> None:
        if self._one_send:
            if self._held is None:
                self._held = bytes(data)  # the head
                return
            data, self._held, self._one_send = self._held + data, None, False
        super().send(data)  # type: ignore[misc]


def build_pool_manager(
    timeout: urllib3.Timeout,
    pool_maxsize: int,
    allowed_networks: Sequence[netpolicy.Network],
    resolver: Resolver = socket.getaddrinfo,
) -> urllib3.PoolManager:
    """Return a PoolManager whose connections go only to vetted addresses."""

    class VettedHTTPConnection(_OneSend, HTTPConnection):
        resolver: Any
        allowed_networks: Sequence[netpolicy.Network]

        def _new_conn(self) -> socket.socket:
            return _connect_vetted(self)

    class VettedHTTPSConnection(_OneSend, HTTPSConnection):
        resolver: Any
        allowed_networks: Sequence[netpolicy.Network]

        def _new_conn(self) -> socket.socket:
            return _connect_vetted(self)

    for cls in (VettedHTTPConnection, VettedHTTPSConnection):
        cls.resolver = staticmethod(resolver)
        cls.allowed_networks = allowed_networks

    class VettedHTTPPool(HTTPConnectionPool):
        ConnectionCls = VettedHTTPConnection

    class VettedHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = VettedHTTPSConnection

    manager = urllib3.PoolManager(
        num_pools=2048,
        maxsize=pool_maxsize,
        block=False,
        timeout=timeout,
        retries=False,
        cert_reqs="CERT_REQUIRED",
        ca_certs=certifi.where(),
    )
    manager.pool_classes_by_scheme = {"http": VettedHTTPPool, "https": VettedHTTPSPool}
    return manager
