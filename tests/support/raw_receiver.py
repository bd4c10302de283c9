"""A raw-socket HTTP/1.1 receiver that counts the requests of each connection.

It parses what arrives the way a strict server does: a request line, header
lines up to an empty line, then exactly ``Content-Length`` bytes of body (or
chunks), and then whatever follows on the same connection as the next
request. A sender that smuggles a second request inside its body (a forged
``Content-Length`` or ``Transfer-Encoding``) shows up here as two requests on
one connection. Every request is answered ``200`` with keep-alive.
"""

import socket
import threading


class RawRequest:
    def __init__(self, connection, method, target, headers, body):
        self.connection = connection  # the number of the connection it came on
        self.method = method
        self.target = target
        self.headers = headers  # [(name, value)] in arrival order, every copy kept
        self.body = body

    def header_values(self, name):
        return [v for n, v in self.headers if n.lower() == name.lower()]


class RawReceiver:
    def __init__(self):
        self.requests = []
        self._lock = threading.Condition()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._connections = 0
        self._closing = False
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._open = {}  # accepted connection -> the thread serving it

    @property
    def url(self):
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def __enter__(self):
        self._accepting.start()
        return self

    def __exit__(self, *exc):
        # close() alone leaves the accepting thread blocked in accept() on
        # the old descriptor number; once a later listener reuses that
        # number, the stale thread accepts that listener's connections and
        # answers them 200 "ok" (seen as a later test's receiver missing
        # deliveries the worker recorded as delivered). shutdown() wakes the
        # blocked accept() on Linux, and the joins make sure no thread of
        # this receiver outlives it.
        self._closing = True
        shut(self._sock)
        self._accepting.join(timeout=5)
        self._sock.close()
        with self._lock:
            serving = dict(self._open)
        for conn, thread in serving.items():
            shut(conn)
            thread.join(timeout=5)
        threads = [self._accepting, *serving.values()]
        assert not any(t.is_alive() for t in threads), "a raw receiver thread did not stop"

    def per_connection(self):
        """Return {connection number: requests parsed on it}."""
        with self._lock:
            counts = {}
            for request in self.requests:
                counts[request.connection] = counts.get(request.connection, 0) + 1
            return counts

    def wait_for(self, count, timeout):
        with self._lock:
            self._lock.wait_for(lambda: len(self.requests) >= count, timeout)
            return list(self.requests)

    def _accept(self):
        while not self._closing:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self._connections += 1
            serving = threading.Thread(
                target=self._serve, args=(conn, self._connections), daemon=True
            )
            with self._lock:
                self._open[conn] = serving
            serving.start()

    def _serve(self, conn, number):
        reader = conn.makefile("rb")
        try:
            while True:
                request = _read_request(reader, number)
                if request is None:
                    return
                with self._lock:
                    self.requests.append(request)
                    self._lock.notify_all()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        except (OSError, ValueError):
            return
        finally:
            with self._lock:
                self._open.pop(conn, None)
            reader.close()
            conn.close()


def shut(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed, or the peer went first


def _read_request(reader, number):
    line = reader.readline(65536)
    while line in (b"\r\n", b"\n"):  # stray line ends between requests
        line = reader.readline(65536)
    if not line:
        return None
    method, target, _ = line.decode("latin-1").split(" ", 2)
    headers = []
    while True:
        line = reader.readline(65536)
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers.append((name.strip(), value.strip()))
    fields = {n.lower(): v for n, v in headers}
    if "chunked" in fields.get("transfer-encoding", "").lower():
        body = b""
        while True:
            size = int(reader.readline(1024).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                reader.readline(1024)
                break
            body += reader.read(size)
            reader.readline(1024)
    else:
        body = reader.read(int(fields.get("content-length", "0") or 0))
    return RawRequest(number, method, target, headers, body)
