"""The webhooks' HTTP/1.1 client: keep-alive connections to vetted addresses.

One POST is one ``sendall`` of head and body, then ``recv`` until the
response is parsed by httptools (llhttp, the parser of Node.js and
uvicorn). urllib3 cost ~0.11 ms of CPU per POST beyond the socket calls
themselves (pool bookkeeping, ``Timeout`` objects, ``http.client``'s
e-mail header parser), more than all the rest of a delivery; what a
webhook needs of HTTP is small: a POST of bytes, a status, ``Retry-After``
and at most ``body_cap`` bytes of the answer.

SSRF defence: the host name is resolved once per connection, every address
is checked against ``notifier.core.netpolicy``, and the socket is opened to
a vetted address itself, so a DNS answer that changes between check and
connect (rebinding) cannot slip through. TLS still verifies the certificate
against the host name. Redirects are not this module's business: a 3xx is
an answer like any other.

Timeouts: connecting takes at most ``connect``; the whole exchange (connect,
send, the answer's head) at most ``total``, and each wait for the head at
most ``read``. The body is read until ``total`` is up, then cut: the status
is the answer.
"""

import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import certifi
import httptools

from notifier.core import netpolicy

#: ``socket.getaddrinfo``'s signature.
Resolver = Callable[..., Any]

#: The most a response head (status line and headers) may take.
MAX_HEAD_BYTES = 64 * 1024
#: Endpoints whose idle connections a client keeps (then it forgets them all).
MAX_ENDPOINTS = 2048
_RECV_SIZE = 65536
_DEFAULT_PORTS = {"http": 80, "https": 443}


class TransportError(Exception):
    """A POST got no answer: ``kind`` says why ("connection", "timeout",
    "forbidden_address")."""

    kind = "connection"


class ForbiddenAddressError(TransportError):
    """Every address of the host is one webhooks may not reach."""

    kind = "forbidden_address"


class ConnectFailed(TransportError):
    """No connection could be opened (refused, unreachable, no such host)."""


class TimedOut(TransportError):
    """Connecting or waiting for the answer took too long."""

    kind = "timeout"


class Target(NamedTuple):
    """Where a POST goes: scheme, host (as in the URL), port, request target."""

    scheme: str
    host: str
    port: int | None
    path: str


class Response(NamedTuple):
    """An answer: ``body`` is None when it could not be read (the connection
    broke after the head); ``cut`` when it was longer than the cap or slower
    than the time left."""

    status: int
    headers: dict[str, str]  # lower-case names; the last of a repeated one
    body: bytes | None
    cut: bool = False


def vetted_addresses(
    host: str, port: int, resolver: Resolver, allowed_networks: Sequence[netpolicy.Network]
) -> list[tuple[int, Any]]:
    """Resolve ``host`` and return the (family, sockaddr) pairs allowed."""
    try:
        infos = resolver(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ConnectFailed(f"cannot resolve {host}: {exc}") from exc
    allowed: list[tuple[int, Any, str | None]] = []
    refused: list[tuple[int, Any, str | None]] = []
    for family, _, _, _, sockaddr in infos:
        reason = netpolicy.refusal_reason(sockaddr[0], allowed_networks)
        (refused if reason else allowed).append((family, sockaddr, reason))
    if not allowed:
        reason = refused[0][2] if refused else "no address"
        raise ForbiddenAddressError(f"{host} resolves to {reason}, which webhooks may not reach")
    return [(family, sockaddr) for family, sockaddr, _ in allowed]


def host_header(target: Target) -> str:
    """The Host header of a target: the port only when not the scheme's."""
    host = target.host.strip("[]")
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal
    if target.port is None or target.port == _DEFAULT_PORTS.get(target.scheme):
        return host
    return f"{host}:{target.port}"


def request_head(target: Target, headers: Sequence[tuple[str, str]], length: int) -> bytes:
    """The head of a POST of ``length`` bytes. ``headers`` were checked by
    the caller (names are tokens, values printable ASCII)."""
    lines = [f"POST {target.path} HTTP/1.1", f"Host: {host_header(target)}"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class _Reader:
    """httptools' callbacks for one response: the final status's headers
    and body, interim (1xx) answers skipped."""

    def __init__(self, body_cap: int) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.body_cap = body_cap
        self.status = 0
        self.headers: dict[str, str] = {}
        self.chunks: list[bytes] = []
        self.size = 0
        self.head_done = False
        self.done = False
        self.keep_alive = False

    def feed(self, data: bytes) -> None:
        """Parse ``data``; whatever follows the final answer makes the
        connection unfit to carry another request."""
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if not self.done:
                raise
            self.keep_alive = False

    def on_message_begin(self) -> None:
        if self.done:  # a second answer nobody asked for
            self.keep_alive = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.done:
            self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        if self.done:
            return
        self.status = self.parser.get_status_code()
        self.head_done = self.status >= 200

    def on_body(self, body: bytes) -> None:
        if self.done:
            return
        if self.size <= self.body_cap:
            self.chunks.append(body)
        self.size += len(body)

    def on_message_complete(self) -> None:
        if self.done:
            return
        if self.status < 200:  # 100 Continue, 103 Early Hints: the answer follows
            self.headers = {}
            return
        self.done = True
        self.keep_alive = self.parser.should_keep_alive()

    def body(self) -> bytes:
        return b"".join(self.chunks)[: self.body_cap]


_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only


def _ack_at_once(sock: socket.socket) -> None:
    """Acknowledge what arrives at once, not up to 40 ms later (delayed ACK).

    A receiver that writes its answer's head and body in two writes with
    Nagle's algorithm on (Python's http.server, for one) holds the body back
    until the head is acknowledged: with delayed ACKs every such answer took
    40 ms more. The kernel clears the option by itself, so it is set before
    each read."""
    if _QUICKACK is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        except OSError:
            pass


def _receive(sock: socket.socket, timeout: float) -> bytes:
    """What arrives within ``timeout`` (b"" when the other side closed)."""
    sock.settimeout(timeout)
    _ack_at_once(sock)
    return sock.recv(_RECV_SIZE)


class _Connection:
    """One socket to one endpoint."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def dropped(self) -> bool:
        """Whether an idle connection was closed by the other side (or sent
        something unasked): reusing it would fail the next POST."""
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            return True
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        return bool(poller.poll(0))

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class HttpClient:
    """POST bytes to http(s) endpoints over kept-alive connections.

    Thread-safe: the batch's endpoint threads share one client; a connection
    is used by one POST at a time (taken from the idle ones or opened)."""

    def __init__(
        self,
        connect_timeout: float,
        read_timeout: float,
        total_timeout: float,
        pool_maxsize: int,
        allowed_networks: Sequence[netpolicy.Network],
        resolver: Resolver = socket.getaddrinfo,
        ssl_context: ssl.SSLContext | None = None,
        body_cap: int = 64 * 1024,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.total_timeout = total_timeout
        self.pool_maxsize = pool_maxsize
        self.allowed_networks = allowed_networks
        self.resolver = resolver
        self.body_cap = body_cap
        self._ssl_context = ssl_context
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._lock = threading.Lock()

    def post(self, target: Target, headers: Sequence[tuple[str, str]], body: bytes) -> Response:
        """POST ``body``; return the answer or raise a TransportError."""
        deadline = time.monotonic() + self.total_timeout
        key = (target.scheme, target.host, target.port or _DEFAULT_PORTS[target.scheme])
        connection = self._take(key) or self._connect(target, key[2])
        try:
            response, reusable = self._exchange(connection, target, headers, body, deadline)
        except BaseException:
            connection.close()
            raise
        if reusable:
            self._give_back(key, connection)
        else:
            connection.close()
        return response

    def close(self) -> None:
        """Close every idle connection."""
        with self._lock:
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()

    def idle_count(self) -> int:
        with self._lock:
            return sum(len(c) for c in self._idle.values())

    # -- connections ----------------------------------------------------------

    def _take(self, key: tuple[str, str, int]) -> _Connection | None:
        while True:
            with self._lock:
                idle = self._idle.get(key)
                if not idle:
                    return None
                connection = idle.pop()
            if not connection.dropped():
                return connection
            connection.close()

    def _give_back(self, key: tuple[str, str, int], connection: _Connection) -> None:
        with self._lock:
            if key not in self._idle and len(self._idle) >= MAX_ENDPOINTS:
                forgotten = [c for idle in self._idle.values() for c in idle]
                self._idle = {}
            else:
                forgotten = []
            idle = self._idle.setdefault(key, [])
            if len(idle) < self.pool_maxsize:
                idle.append(connection)
                connection = None  # type: ignore[assignment]
        for old in forgotten:
            old.close()
        if connection is not None:
            connection.close()

    def _connect(self, target: Target, port: int) -> _Connection:
        host = target.host.strip("[]")
        error: OSError | None = None
        for family, sockaddr in vetted_addresses(
            host.rstrip("."), port, self.resolver, self.allowed_networks
        ):
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.settimeout(self.connect_timeout)
                sock.connect(sockaddr)
                if target.scheme == "https":
                    sock = self._tls().wrap_socket(sock, server_hostname=host)
                return _Connection(sock)
            except TimeoutError as exc:
                sock.close()
                raise TimedOut(f"connect to {target.host} timed out") from exc
            except ssl.SSLError as exc:
                sock.close()
                raise ConnectFailed(f"TLS with {target.host} failed: {exc}") from exc
            except OSError as exc:
                sock.close()
                error = exc
        raise ConnectFailed(f"cannot connect to {target.host}: {error}")

    def _tls(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context(cafile=certifi.where())
        return self._ssl_context

    # -- one exchange ---------------------------------------------------------

    def _exchange(
        self,
        connection: _Connection,
        target: Target,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        deadline: float,
    ) -> tuple[Response, bool]:
        """Send the request and read its answer; return it and whether the
        connection may carry another."""
        sock = connection.sock
        reader = _Reader(self.body_cap)
        try:
            sock.settimeout(self._wait(deadline))
            sock.sendall(request_head(target, headers, len(body)) + body)
        except TimeoutError as exc:
            raise TimedOut(f"sending to {target.host} timed out") from exc
        except OSError as exc:
            # The receiver may have answered (and closed) before taking the
            # whole body, as a 413 does: read that answer if there is one.
            if not self._read_head(sock, reader, deadline, target, sent_error=exc):
                raise ConnectFailed(f"connection to {target.host} broken: {exc}") from exc
        else:
            self._read_head(sock, reader, deadline, target)
        return self._read_body(sock, reader, deadline)

    def _wait(self, deadline: float) -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimedOut("no time left for the answer")
        return min(self.read_timeout, left)

    def _read_head(
        self,
        sock: socket.socket,
        reader: _Reader,
        deadline: float,
        target: Target,
        sent_error: OSError | None = None,
    ) -> bool:
        """Read until the head of the final answer is parsed. With
        ``sent_error`` (sending failed), return False instead of raising when
        no answer can be read."""
        received = 0
        while not reader.head_done:
            try:
                data = _receive(sock, self._wait(deadline))
            except (TimeoutError, TimedOut) as exc:
                if sent_error is not None:
                    return False
                raise TimedOut(f"no answer from {target.host} in time") from exc
            except OSError as exc:
                if sent_error is not None:
                    return False
                raise ConnectFailed(f"connection to {target.host} broken: {exc}") from exc
            if not data:
                if sent_error is not None:
                    return False
                raise ConnectFailed(f"{target.host} closed the connection without an answer")
            received += len(data)
            try:
                reader.feed(data)
            except httptools.HttpParserError as exc:
                raise ConnectFailed(f"{target.host} sent no valid HTTP answer: {exc}") from exc
            if not reader.head_done and received > MAX_HEAD_BYTES:
                raise ConnectFailed(
                    f"{target.host} sent an answer head over {MAX_HEAD_BYTES} bytes"
                )
        return True

    def _read_body(
        self, sock: socket.socket, reader: _Reader, deadline: float
    ) -> tuple[Response, bool]:
        """Read the body (what the head's parse left) up to the cap and the
        deadline."""
        while not reader.done:
            if reader.size > self.body_cap:
                return Response(reader.status, reader.headers, reader.body(), cut=True), False
            left = deadline - time.monotonic()
            if left <= 0:
                return Response(reader.status, reader.headers, reader.body(), cut=True), False
            try:
                data = _receive(sock, min(self.read_timeout, left))
            except TimeoutError:
                return Response(reader.status, reader.headers, reader.body(), cut=True), False
            except OSError:
                return Response(reader.status, reader.headers, None), False
            if not data:
                # A body that ends with the connection (no length given) is
                # complete; one cut short of its length or chunks is not read.
                length = reader.headers.get("content-length")
                chunked = "chunked" in reader.headers.get("transfer-encoding", "").lower()
                whole = None if (length is not None or chunked) else reader.body()
                return Response(reader.status, reader.headers, whole), False
            try:
                reader.feed(data)
            except httptools.HttpParserError:
                return Response(reader.status, reader.headers, None), False
        if reader.size > self.body_cap:
            return Response(reader.status, reader.headers, reader.body(), cut=True), False
        return Response(reader.status, reader.headers, reader.body()), reader.keep_alive
