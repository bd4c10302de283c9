"""Slow clients against the real `notifier api` process (gunicorn, one worker
of 8 threads here): connections that dribble their headers or their body do
not keep others from being served, and are cut off at their deadline."""

import socket
import threading
import time

import pytest
import requests

from notifier.cli.redis_server import free_port
from tests.support.processes import Role, wait_http_ok, write_config
from tests.support.raw_http import read_until_closed

SLOW = 12  # more connections than the worker has threads (8)
HEADER_SECONDS = 2
BODY_SECONDS = 2


@pytest.fixture(scope="module")
def api(redis_server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("slow")
    port = free_port()
    config = write_config(
        str(tmp / "notifier.conf"),
        redis_server.url,
        port=port,
        extra=f"[api]\nclient_header_timeout_seconds = {HEADER_SECONDS}\n"
        f"client_body_timeout_seconds = {BODY_SECONDS}\n",
    )
    with Role("api", config, log_path=str(tmp / "api.log")):
        wait_http_ok(f"http://127.0.0.1:{port}/v2/ping")
        yield port


class Dribbler:
    """Connections that send a request one header byte at a time."""

    def __init__(self, port, count, interval=0.2):
        self.sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
        self.interval = interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        for sock in self.sockets:
            sock.sendall(b"GET /v2/ping HTTP/1.1\r\nHost: x\r\n")
        while not self.stop.wait(self.interval):
            for sock in self.sockets:
                try:
                    sock.sendall(b"X")
                except OSError:
                    pass  # cut off by the server: what is expected

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        for sock in self.sockets:
            sock.close()


def closed_by_server(sock, timeout=30):
    """Read until the server closes the connection; return what it sent."""
    sock.settimeout(timeout)
    return read_until_closed(sock)


def test_ping_answers_while_connections_dribble_their_headers(api):
    with Dribbler(api, SLOW) as slow:
        time.sleep(0.5)  # every slow connection has sent part of its head
        response = requests.get(f"http://127.0.0.1:{api}/v2/ping", timeout=10)
        assert response.status_code == 204
        assert not slow.stop.is_set()


def test_a_connection_whose_headers_take_too_long_is_closed(api):
    with Dribbler(api, 2) as slow:
        for sock in slow.sockets:
            # closed without an answer once the header deadline passes (a
            # server without one would keep reading: the recv times out)
            assert closed_by_server(sock) == b""


def test_a_body_that_takes_too_long_is_answered_408(api):
    sock = socket.create_connection(("127.0.0.1", api))
    sock.sendall(
        b"POST /v2/queues/q/messages HTTP/1.1\r\nHost: x\r\nX-Project-ID: p\r\n"
        b"Client-ID: 3f8c7a52-4d7e-4a53-9c1d-2b6a1e0f9a11\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        b'{"messages": ['
    )
    answer = closed_by_server(sock)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408")
    assert b'"field": "body"' in answer or b'"field":"body"' in answer


def test_a_silent_connection_holds_no_thread(api):
    # connections that send nothing wait in the event loop, not in threads
    silent = [socket.create_connection(("127.0.0.1", api)) for _ in range(SLOW)]
    try:
        response = requests.get(f"http://127.0.0.1:{api}/v2/ping", timeout=10)
        assert response.status_code == 204
        assert closed_by_server(silent[0]) == b""
    finally:
        for sock in silent:
            sock.close()
