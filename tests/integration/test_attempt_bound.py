"""One webhook attempt is bounded by connect + read timeout even when the
receiver trickles its answer: the body is read until then and the
connection cut, so a task's runtime stays bounded. A raw socket receiver
sends a 200 and then one body byte at a time, slower than ever finishing."""

import socket
import threading
import time

from notifier.sinks import Notification
from notifier.sinks.webhook import WebhookSink

BODY_LENGTH = 10_000


class TricklingReceiver:
    """Answers 200 with a long body, one byte per 0.2 s; counts bytes sent."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.sent = 0
        self.cut = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/trickle"

    def _serve(self):
        connection, _ = self.listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % BODY_LENGTH)
            try:
                for _ in range(BODY_LENGTH):
                    connection.sendall(b"x")
                    self.sent += 1
                    time.sleep(0.2)
            except OSError:  # the sender hung up
                self.cut.set()

    def close(self):
        self.listener.close()


def test_a_trickled_answer_is_cut_at_the_attempt_bound(conf):
    receiver = TricklingReceiver()
    message = {"id": "m1", "body": 1, "ttl": 60, "created": time.time()}
    message["source"] = ["p", "queues", "q"]
    notification = Notification(
        delivery_id="msg_m1_s1",
        subscription={"id": "s1", "subscriber": receiver.url, "options": {}},
        message=message,
        payload={"body": 1},
        attempt=0,
    )
    try:
        report = WebhookSink(conf).deliver(notification)
        assert report.status == 200  # the status was the answer
        # connect 2 s + read 2 s in the tests: about 20 bytes at 5 per second
        assert 0 < len(report.response_body) < BODY_LENGTH
        assert receiver.cut.wait(10), "the connection was not cut"
        assert receiver.sent < BODY_LENGTH
    finally:
        receiver.close()
