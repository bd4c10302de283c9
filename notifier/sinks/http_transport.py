"""urllib3 pools that connect only to vetted addresses (SSRF defence).

The host name is resolved once per connection, every address is checked
against ``notifier.core.netpolicy``, and the socket is opened to a vetted address
itself, so a DNS answer that changes between check and connect (rebinding)
cannot slip through. TLS still verifies the certificate against the host
name, because urllib3 keeps using ``self.host`` for SNI and verification.
"""

import socket

import certifi
import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from notifier.core import netpolicy


class ForbiddenAddressError(urllib3.exceptions.HTTPError):
    """Every address of the host is one webhooks may not reach."""


def vetted_addresses(host, port, resolver, allowed_networks):
    """Resolve ``host`` and return the (family, sockaddr) pairs allowed."""
    try:
        infos = resolver(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise NewConnectionError(None, f"cannot resolve {host}: {exc}") from exc
    allowed, refused = [], []
    for family, _, _, _, sockaddr in infos:
        reason = netpolicy.refusal_reason(sockaddr[0], allowed_networks)
        (refused if reason else allowed).append((family, sockaddr, reason))
    if not allowed:
        reason = refused[0][2] if refused else "no address"
        raise ForbiddenAddressError(f"{host} resolves to {reason}, which webhooks may not reach")
    return [(family, sockaddr) for family, sockaddr, _ in allowed]


def _connect_vetted(conn):
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


def build_pool_manager(timeout, pool_maxsize, allowed_networks, resolver=socket.getaddrinfo):
    """Return a PoolManager whose connections go only to vetted addresses."""

    class VettedHTTPConnection(HTTPConnection):
        def _new_conn(self):
            return _connect_vetted(self)

    class VettedHTTPSConnection(HTTPSConnection):
        def _new_conn(self):
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
