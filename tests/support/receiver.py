"""A real threaded HTTP server that records webhook POSTs.

Responses are scripted per path: ``receiver.script("/flaky", [500, 500, 200])``
answers 500 twice then 200 (the last status repeats); ``receiver.echo(path)``
answers with the request's own body, as echo endpoints do. PUTs are recorded
like POSTs, and CORS preflights (OPTIONS) too, answered as a permissive
server would: a browser would go on to send its request.
"""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Received:
    def __init__(self, path, headers, body, at, method="POST"):
        self.path = path
        self.headers = headers
        self.body = body
        self.at = at
        self.method = method

    def json(self):
        return json.loads(self.body)


class Receiver:
    def __init__(self):
        self.requests = []
        self._scripts = {}
        self._delays = {}
        self._echo = set()
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                if len(body) < length:
                    # The sender went away mid-request (a worker's task was
                    # cancelled): like any server, drop the partial request.
                    self.close_connection = True
                    return
                method = {} if self.command == "POST" else {"method": self.command}
                status, delay, extra = receiver._respond(self.path, self.headers, body, **method)
                if delay:
                    time.sleep(delay)
                payload = body if self.path in receiver._echo else b"ok"
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_PUT = do_POST

            def do_OPTIONS(self):
                receiver._respond(self.path, self.headers, b"", method="OPTIONS")
                self.send_response(204)
                self.send_header("Access-Control-Allow-Origin", "*")
                self.send_header("Access-Control-Allow-Methods", "PUT, POST")
                self.send_header("Access-Control-Allow-Headers", "*")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def script(self, path, statuses, headers=None):
        with self._lock:
            self._scripts[path] = [list(statuses), headers or {}]

    def echo(self, path):
        with self._lock:
            self._echo.add(path)

    def delay(self, path, seconds):
        with self._lock:
            self._delays[path] = seconds

    def _respond(self, path, headers, body, method="POST"):
        with self._arrived:
            self.requests.append(Received(path, dict(headers), body, time.time(), method))
            self._arrived.notify_all()
            status, extra = 200, {}
            if path in self._scripts:
                statuses, extra = self._scripts[path]
                status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
            return status, self._delays.get(path, 0), extra

    def received(self, path=None):
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    def wait_for(self, count, path=None, timeout=30):
        """Wait until ``count`` requests (to ``path``) arrived; return them."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                found = [r for r in self.requests if path is None or r.path == path]
                if len(found) >= count or time.monotonic() > deadline:
                    return found
                self._arrived.wait(min(0.5, max(0.01, deadline - time.monotonic())))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
