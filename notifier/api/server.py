"""The API's HTTP server: gunicorn's threaded worker, made safe from slow clients.

gunicorn's ``gthread`` worker gives a connection to a thread as soon as a byte
arrives, and the thread then reads the rest of the request with no deadline:
16 connections dribbling their headers held every thread of the 2 x 8 and
``/v2/ping`` timed out (issue 16). gunicorn's ``timeout`` does not help (the
worker's main loop stays alive), nor does ``keepalive`` (idle connections
only). This worker

- reads a request's head (line and headers) in its event loop, without a
  thread, and gives a thread only a connection whose head is in: a slowloris
  costs a file descriptor, not a thread;
- closes a connection whose head takes longer than
  ``[api] client_header_timeout_seconds`` (from its accept, or from the next
  byte on a kept-alive connection);
- bounds reading the body by ``[api] client_body_timeout_seconds`` (408 after
  it, see ``notifier.api.errors``) and each response write by the same time.

A client dribbling a body still holds a thread, for at most the body timeout;
in front of untrusted clients run a buffering proxy (the nginx of
docker-compose.yml), which reads whole requests before they reach the API.
"""

import errno
import selectors
import time
from functools import partial

from gunicorn.http.errors import NoMoreData
from gunicorn.workers.gthread import TConn, ThreadWorker

from notifier.api.errors import RequestTimeout

HEAD_END = b"\r\n\r\n"
#: A head this long goes to the parser unfinished; gunicorn's limits
#: (limit_request_line, limit_request_fields...) then refuse it.
MAX_HEAD_BYTES = 64 * 1024


class HeadTimeout(NoMoreData):
    """The request head took too long: the connection is closed without an
    answer (gunicorn treats it as a client that went away, logged at DEBUG)."""


class DeadlineSocket:
    """A client socket whose reads end at ``deadline`` (monotonic seconds)."""

    def __init__(self, sock, send_seconds):
        self._sock = sock
        self.deadline = None
        self.reading_head = True
        self.send_seconds = send_seconds

    def __getattr__(self, name):
        return getattr(self._sock, name)

    def fileno(self):
        return self._sock.fileno()

    def recv(self, size, *flags):
        if self.deadline is None:
            return self._sock.recv(size, *flags)
        remaining = self.deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise TimeoutError("deadline passed")
            self._sock.settimeout(remaining)
            return self._sock.recv(size, *flags)
        except TimeoutError as exc:
            if self.reading_head:
                raise HeadTimeout() from exc
            raise RequestTimeout() from exc

    def sendall(self, data, *flags):
        self._sock.settimeout(self.send_seconds)
        try:
            return self._sock.sendall(data, *flags)
        except TimeoutError as exc:
            # gunicorn drops a broken pipe quietly, as it should a client
            # that does not read its answer.
            raise BrokenPipeError(errno.EPIPE, "the client did not read the response") from exc


class SlowClientWorker(ThreadWorker):
    """gthread with request deadlines (module docstring)."""

    header_timeout_seconds = 10.0
    body_timeout_seconds = 60.0

    def accept(self, listener):
        try:
            client_sock, client_addr = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = TConn(self.cfg, client_sock, client_addr, listener.getsockname())
        conn.sock = DeadlineSocket(client_sock, self.body_timeout_seconds)
        self._await_head(conn)

    def on_client_socket_readable(self, conn, client):
        """A kept-alive connection: its next request is coming."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._await_head(conn)

    def _await_head(self, conn):
        # pending_conns stays sorted by timeout: every entry gets the same
        # delay, so gunicorn's murder_pending closes the late ones.
        conn.head = b""
        conn.timeout = time.monotonic() + self.header_timeout_seconds
        self.pending_conns.append(conn)
        self.poller.register(
            conn.sock, selectors.EVENT_READ, partial(self.on_pending_socket_readable, conn)
        )

    def on_pending_socket_readable(self, conn, client):
        """Read what arrived of a head; hand the connection to a thread when
        the head is complete (or too long, or the client went away)."""
        try:
            data = conn.sock.recv(8192)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        conn.head += data
        complete = HEAD_END in conn.head[-(len(data) + len(HEAD_END)) :]
        if data and not complete and len(conn.head) < MAX_HEAD_BYTES:
            return
        self.poller.unregister(client)
        self.pending_conns.remove(conn)
        if not conn.head:
            self.nr_conns -= 1
            conn.close()
            return
        conn.data_ready = True
        self.enqueue_req(conn)

    def handle(self, conn):
        """Serve one request (in a thread), its head already read."""
        head, conn.head = getattr(conn, "head", b""), b""
        conn.sock.setblocking(True)
        conn.init()
        if head:
            conn.parser.unreader.unread(head)
        # The head is in, unless it came pipelined behind the last request.
        conn.sock.reading_head = True
        conn.sock.deadline = time.monotonic() + self.header_timeout_seconds
        try:
            return super().handle(conn)
        finally:
            conn.sock.deadline = None

    def handle_request(self, req, conn):
        conn.sock.reading_head = False
        conn.sock.deadline = time.monotonic() + self.body_timeout_seconds
        return super().handle_request(req, conn)


def worker_class(conf):
    """Return the gunicorn worker class, with ``[api]``'s deadlines."""
    return type(
        "SlowClientWorker",
        (SlowClientWorker,),
        {
            "header_timeout_seconds": conf.api.client_header_timeout_seconds,
            "body_timeout_seconds": conf.api.client_body_timeout_seconds,
        },
    )
