"""A loopback stand-in of Mistral's v2 executions API that records what it gets.

Implements only ``POST /v2/executions``, as python-mistralclient calls it:
the body's ``input`` and ``params`` arrive as JSON strings; the answer is 201
with the new execution. Each request's token is checked with ``validate``
(a callable returning Keystone's token document, or None for a bad token ->
401), and the token's user and project are recorded with the body, so tests
see whose identity the execution ran under. ``script([...])`` makes the next
requests answer other statuses (the last one repeats).
"""

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Execution:
    def __init__(self, body, token_info):
        self.body = body
        self.input = json.loads(body["input"]) if "input" in body else None
        self.params = json.loads(body["params"]) if "params" in body else None
        self.user_id = token_info["user"]["id"]
        self.project_id = token_info["project"]["id"]
        self.roles = sorted(r["name"] for r in token_info["roles"])
        self.trust = token_info.get("OS-TRUST:trust")


class MistralStandIn:
    def __init__(self, validate):
        self.validate = validate
        self.executions = []
        self.rejected = []
        self._statuses = []
        self._lock = threading.Condition()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, answer = standin._answer(self.path, self.headers, body)
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}/v2"

    def reset(self):
        with self._lock:
            self.executions.clear()
            self.rejected.clear()
            self._statuses = []

    def script(self, statuses):
        with self._lock:
            self._statuses = list(statuses)

    def _answer(self, path, headers, raw):
        if path != "/v2/executions":
            return 404, {"faultstring": f"No route {path}"}
        token_info = self.validate(headers.get("X-Auth-Token"))
        with self._lock:
            if token_info is None:
                self.rejected.append(raw)
                return 401, {"faultstring": "The request you have made requires authentication."}
            status = (
                self._statuses.pop(0)
                if len(self._statuses) > 1
                else self._statuses[0]
                if self._statuses
                else 201
            )
            if status != 201:
                return status, {"faultstring": f"scripted {status}"}
            body = json.loads(raw)
            self.executions.append(Execution(body, token_info))
            self._lock.notify_all()
        return 201, {
            "id": str(uuid.uuid4()),
            "state": "RUNNING",
            "workflow_id": body.get("workflow_id"),
            "workflow_name": body.get("workflow_name"),
            "input": body.get("input", "{}"),
            "params": body.get("params", "{}"),
        }

    def wait_for(self, count, timeout=30):
        with self._lock:
            self._lock.wait_for(lambda: len(self.executions) >= count, timeout)
            return list(self.executions)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
