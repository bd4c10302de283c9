"""The test receivers themselves: a receiver a test has closed must leave no
thread behind that could serve a later test's connections."""

import http.client
import threading

from tests.support.raw_receiver import RawReceiver
from tests.support.receiver import Receiver


def post(url, path):
    connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=5)
    try:
        connection.request("POST", path, body=b"{}")
        return connection.getresponse().read()
    finally:
        connection.close()


def test_a_closed_raw_receiver_leaves_no_thread_and_steals_no_connection():
    before = set(threading.enumerate())
    for _ in range(4):
        with RawReceiver() as raw:
            # A keep-alive connection left open by the sender, as a worker's pool does.
            held = http.client.HTTPConnection(raw.url.removeprefix("http://"), timeout=5)
            held.request("POST", "/held", body=b"{}")
            assert held.getresponse().read() == b"ok"
            assert raw.wait_for(1, timeout=5)[0].target == "/held"
    left = [t.name for t in set(threading.enumerate()) - before if t.is_alive()]
    assert left == [], f"threads of closed raw receivers still run: {left}"
    held.close()

    # A later listener (likely on a reused descriptor number) gets every request.
    with Receiver() as later:
        for n in range(20):
            post(later.url, f"/later/{n}")
        assert len(later.received()) == 20
