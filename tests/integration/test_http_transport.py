"""The webhooks' HTTP client (notifier/sinks/http_transport.py) against real
sockets on 127.0.0.1: scripted raw servers that answer as odd receivers do,
and a real TLS server with a certificate of its own."""

import socket
import ssl
import subprocess
import threading
import time

import pytest

from notifier.core import netpolicy
from notifier.sinks import http_transport
from notifier.sinks.http_transport import HttpClient, Target
from tests.support.raw_receiver import shut

LOOPBACK = netpolicy.parse_networks(["127.0.0.1/32"])
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def read_request(conn):
    """Read one request (head and Content-Length body); None at EOF."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        body += chunk
    return head, body


class ScriptedServer:
    """Accepts connections and runs ``script(conn, number)`` on each, in a
    thread; counts connections and keeps the requests' heads."""

    def __init__(self, script):
        self.script = script
        self.connections = 0
        self.heads = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._threads = []
        self._conns = []
        self._closing = False
        self._accepting = threading.Thread(target=self._accept, daemon=True)

    def target(self, path="/hook"):
        return Target("http", "127.0.0.1", self.port, path)

    def __enter__(self):
        self._accepting.start()
        return self

    def __exit__(self, *exc):
        self._closing = True
        shut(self.listener)
        self._accepting.join(5)
        self.listener.close()
        for conn in self._conns:
            shut(conn)
        for thread in self._threads:
            thread.join(5)

    def serve_requests(self, conn, answer):
        """Answer every request on ``conn`` with ``answer``."""
        while True:
            request = read_request(conn)
            if request is None:
                return
            self.heads.append(request[0])
            conn.sendall(answer)

    def _accept(self):
        while not self._closing:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            self._conns.append(conn)
            thread = threading.Thread(target=self._run, args=(conn, self.connections), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _run(self, conn, number):
        try:
            self.script(self, conn, number)
        except OSError:
            pass
        finally:
            conn.close()


def client(**overrides):
    settings = dict(
        connect_timeout=2,
        read_timeout=1,
        total_timeout=3,
        pool_maxsize=4,
        allowed_networks=LOOPBACK,
        body_cap=1024,
    )
    settings.update(overrides)
    return HttpClient(**settings)


def keep_answering(answer=OK):
    return lambda server, conn, _: server.serve_requests(conn, answer)


def test_posts_to_one_endpoint_share_one_kept_alive_connection():
    with ScriptedServer(keep_answering()) as server:
        http = client()
        for _ in range(5):
            response = http.post(server.target(), [("Content-Type", "application/json")], b"{}")
            assert (response.status, response.body, response.cut) == (200, b"ok", False)
        assert server.connections == 1 and len(server.heads) == 5
        assert http.idle_count() == 1


def test_the_request_head_is_what_a_strict_server_reads():
    with ScriptedServer(keep_answering()) as server:
        client().post(server.target("/a/b?c=d"), [("X-One", "1"), ("webhook-id", "m")], b"xyz")
    head = server.heads[0].decode()
    assert head.split("\r\n") == [
        "POST /a/b?c=d HTTP/1.1",
        f"Host: 127.0.0.1:{server.port}",
        "X-One: 1",
        "webhook-id: m",
        "Content-Length: 3",
    ]


@pytest.mark.parametrize(
    "target, host",
    [
        (Target("http", "example.com", None, "/"), "example.com"),
        (Target("http", "example.com", 80, "/"), "example.com"),
        (Target("https", "example.com", 443, "/"), "example.com"),
        (Target("https", "example.com", 80, "/"), "example.com:80"),
        (Target("http", "[::1]", 8080, "/"), "[::1]:8080"),
        (Target("http", "::1", None, "/"), "[::1]"),
    ],
)
def test_the_host_header_names_the_port_only_when_not_the_schemes(target, host):
    assert http_transport.host_header(target) == host


def test_an_idle_connection_the_receiver_closed_is_not_reused():
    def answer_once_then_close(server, conn, number):
        request = read_request(conn)
        server.heads.append(request[0])
        conn.sendall(OK)  # keep-alive claimed, then the receiver's idle timeout

    with ScriptedServer(answer_once_then_close) as server:
        http = client()
        assert http.post(server.target(), [], b"1").status == 200
        time.sleep(0.2)  # the receiver has closed its end meanwhile
        assert http.post(server.target(), [], b"2").status == 200
    assert server.connections == 2


def test_a_chunked_answer_after_an_interim_one_is_read_whole():
    answer = (
        b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
        b"HTTP/1.1 503 Busy\r\nRetry-After: 7\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4\r\nbusy\r\n3\r\n...\r\n0\r\n\r\n"
    )
    with ScriptedServer(keep_answering(answer)) as server:
        http = client()
        response = http.post(server.target(), [], b"{}")
        assert response.status == 503 and response.body == b"busy..."
        assert response.headers == {"retry-after": "7", "transfer-encoding": "chunked"}
        assert http.post(server.target(), [], b"{}").status == 503
    assert server.connections == 1  # a chunked answer keeps the connection


def answer_then_close(answer):
    """A script: read one request, send ``answer``, close the sending side."""

    def script(server, conn, number):
        read_request(conn)
        conn.sendall(answer)
        conn.shutdown(socket.SHUT_WR)

    return script


def test_an_answer_ended_by_closing_is_read_and_its_connection_dropped():
    with ScriptedServer(answer_then_close(b"HTTP/1.1 200 OK\r\n\r\nall of it")) as server:
        http = client()
        response = http.post(server.target(), [], b"{}")
        assert (response.status, response.body) == (200, b"all of it")
        assert http.idle_count() == 0


def test_an_answer_cut_short_of_its_length_has_no_body():
    short = b"HTTP/1.1 500 Oops\r\nContent-Length: 100\r\n\r\nonly this"
    with ScriptedServer(answer_then_close(short)) as server:
        response = client().post(server.target(), [], b"{}")
    assert (response.status, response.body) == (500, None)


def test_a_body_over_the_cap_is_cut_and_the_connection_dropped():
    big = b"x" * 5000
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(big), big)
    with ScriptedServer(keep_answering(answer)) as server:
        http = client(body_cap=1024)
        response = http.post(server.target(), [], b"{}")
        assert response.status == 200 and response.body == b"x" * 1024 and response.cut
        assert http.idle_count() == 0


def test_bytes_after_the_answer_make_the_connection_unfit_for_another():
    with ScriptedServer(keep_answering(OK + b"HTTP/1.1 200 OK\r\nContent-Le")) as server:
        http = client()
        assert http.post(server.target(), [], b"{}").body == b"ok"
        assert http.idle_count() == 0
        assert http.post(server.target(), [], b"{}").body == b"ok"
    assert server.connections == 2


@pytest.mark.parametrize(
    "answer",
    [b"SMTP ready\r\n\r\n", b"HTTP/1.1 abc OK\r\n\r\n", b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n"],
)
def test_an_answer_that_is_not_http_is_a_connection_failure(answer):
    with ScriptedServer(keep_answering(answer)) as server:
        with pytest.raises(http_transport.TransportError) as caught:
            client().post(server.target(), [], b"{}")
    assert caught.value.kind == "connection"


def test_an_endless_answer_head_is_refused():
    def endless_head(server, conn, number):
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        for n in range(20_000):
            conn.sendall(b"X-Filler-%d: %s\r\n" % (n, b"y" * 50))

    with ScriptedServer(endless_head) as server:
        with pytest.raises(http_transport.ConnectFailed, match="head over"):
            client().post(server.target(), [], b"{}")


def test_no_answer_within_the_read_timeout_is_a_timeout():
    def silent(server, conn, number):
        read_request(conn)
        time.sleep(3)

    with ScriptedServer(silent) as server:
        started = time.monotonic()
        with pytest.raises(http_transport.TimedOut):
            client(read_timeout=0.5, total_timeout=5).post(server.target(), [], b"{}")
        assert 0.4 < time.monotonic() - started < 2


def test_a_head_trickled_byte_by_byte_ends_at_the_total_timeout():
    def trickle(server, conn, number):
        read_request(conn)
        for byte in b"HTTP/1.1 200 OK\r\n" + b"X" * 1000:
            conn.sendall(bytes([byte]))
            time.sleep(0.05)

    with ScriptedServer(trickle) as server:
        started = time.monotonic()
        with pytest.raises(http_transport.TimedOut):
            client(read_timeout=1, total_timeout=1.0).post(server.target(), [], b"{}")
        assert time.monotonic() - started < 2


def test_an_answer_given_before_the_body_was_taken_is_read():
    def refuse_big(server, conn, number):
        conn.recv(1024)
        conn.sendall(b"HTTP/1.1 413 Too Large\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbig")
        time.sleep(0.2)
        conn.close()  # with most of the body unread: the sender gets a reset

    with ScriptedServer(refuse_big) as server:
        response = client().post(server.target(), [], b"x" * 20_000_000)
    assert (response.status, response.body) == (413, b"big")


def test_a_refused_connection_and_a_forbidden_address():
    port = socket.create_server(("127.0.0.1", 0))
    free = port.getsockname()[1]
    port.close()
    with pytest.raises(http_transport.ConnectFailed):
        client().post(Target("http", "127.0.0.1", free, "/"), [], b"{}")
    with pytest.raises(http_transport.ForbiddenAddressError) as caught:
        client().post(Target("http", "10.0.0.1", 80, "/"), [], b"{}")
    assert caught.value.kind == "forbidden_address"


def test_threads_posting_to_one_endpoint_each_get_a_connection():
    def slow(server, conn, number):
        while read_request(conn) is not None:
            time.sleep(0.05)
            conn.sendall(OK)

    with ScriptedServer(slow) as server:
        http = client(pool_maxsize=2)
        statuses = []
        threads = [
            threading.Thread(
                target=lambda: statuses.append(http.post(server.target(), [], b"{}").status)
            )
            for _ in range(6)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert statuses == [200] * 6
        assert server.connections == 6  # none shared at once
        assert http.idle_count() == 2  # no more kept than the pool size


# -- TLS ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for localhost and 127.0.0.1 (openssl)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost"]
        + ["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    return cert, key


def tls_server(certificate):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)

    def serve(server, conn, number):
        try:
            with context.wrap_socket(conn, server_side=True) as tls:
                server.serve_requests(tls, OK)
        except ssl.SSLError:
            pass  # the client refused the certificate

    return ScriptedServer(serve)


def test_https_verifies_the_certificate_and_keeps_the_connection(certificate):
    trusting = ssl.create_default_context(cafile=str(certificate[0]))
    with tls_server(certificate) as server:
        http = client(ssl_context=trusting)
        target = Target("https", "127.0.0.1", server.port, "/hook")
        assert http.post(target, [], b"{}").body == b"ok"
        assert http.post(target, [], b"{}").body == b"ok"
        assert server.connections == 1


def test_https_refuses_an_untrusted_certificate_or_another_hosts(certificate):
    trusting = ssl.create_default_context(cafile=str(certificate[0]))

    def localhost_is_127(host, port, **kwargs):
        return socket.getaddrinfo("127.0.0.1", port, **kwargs)

    with tls_server(certificate) as server:
        with pytest.raises(http_transport.ConnectFailed, match="TLS"):
            client().post(Target("https", "127.0.0.1", server.port, "/"), [], b"{}")
        # trusted, but issued to localhost/127.0.0.1, not this name
        impostor = client(ssl_context=trusting, resolver=localhost_is_127)
        with pytest.raises(http_transport.ConnectFailed, match="TLS"):
            impostor.post(Target("https", "hooks.example", server.port, "/"), [], b"{}")


def test_an_answer_written_in_two_parts_is_not_held_back_by_delayed_acks(receiver):
    """Python's http.server writes an answer's head and body apart, with
    Nagle's algorithm on: the body waits until the head is acknowledged. A
    client that delays its ACKs (Linux: at least 40 ms) made every such
    answer 40 ms late; this one acknowledges at once. Ten answers: a few ms,
    against 300+ ms when stalled (a bound far from both)."""
    target = Target("http", "127.0.0.1", int(receiver.url.rsplit(":", 1)[1]), "/two-writes")
    http = client()
    http.post(target, [], b"{}")  # connected
    started = time.monotonic()
    for _ in range(10):
        assert http.post(target, [], b"{}").body == b"ok"
    assert time.monotonic() - started < 0.2
