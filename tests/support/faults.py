"""Helpers of the fault-injection suite (tests/faults).

A fault test runs the real roles (API, workers, schedulers) as processes on a
private redis-server, posts a known set of messages through the HTTP API to
real receivers, injects a fault, and then tallies what arrived: every
accepted (201) message must reach every matching subscriber; duplicates are
counted and must be true copies (same ``message_id``, same ``webhook-id``).
"""

import base64
import collections
import datetime
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from http.server import ThreadingHTTPServer

import requests

from notifier.cli.redis_server import free_port
from tests.support.processes import ROOT, Role, wait_http_ok, write_config
from tests.support.receiver import Received, Receiver
from tests.support.waiting import wait_until

CLIENT_ID = str(uuid.uuid4())
HTTP_TIMEOUT = 5


def report(scenario, text):
    """Print a measured figure (the suite is run with -s; figures are quoted)."""
    print(f"\n[faults] {scenario}: {text}", flush=True)


class FaultFleet:
    """API, workers and schedulers as processes; several of one role allowed."""

    def __init__(self, tmp_path, redis_url, extra_conf=""):
        self.port = free_port()
        self.dir = tmp_path
        self.config = write_config(
            str(tmp_path / "notifier.conf"), redis_url, port=self.port, extra=extra_conf
        )
        self.roles = []
        self.scripts = []  # processes of start_dying_* (Popen)
        self._counts = collections.Counter()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/v2"

    def log_path(self, name):
        return str(self.dir / f"{name}.log")

    def start(self, role, wait=True):
        """Start one more ``role`` process; return it (a Role)."""
        self._counts[role] += 1
        label = f"{role}{self._counts[role]}"
        process = Role(role, self.config, log_path=self.log_path(label)).start()
        self.roles.append(process)
        if wait and role == "api":
            wait_http_ok(self.url + "/ping")
        if wait and role == "worker":
            wait_worker_ready(process, self.log_path(label))
        return process

    def stop(self, timeout=10):
        """SIGTERM every live role at once, wait (bounded), then SIGKILL groups."""
        processes = [r.process for r in self.roles] + self.scripts
        live = [p for p in processes if p.poll() is None]
        for process in live:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in live:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for process in live:
            if process.poll() is None:  # stuck: its whole group goes
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait()

    def log_text(self, label):
        try:
            with open(self.log_path(label), encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""


def log_times(text, needle):
    """Epoch times of the log lines (logging's default asctime) holding ``needle``."""
    times = []
    for line in text.splitlines():
        if needle in line:
            try:
                stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
            except ValueError:
                continue
            times.append(stamp.timestamp())
    return times


def wait_worker_ready(role, log_path, timeout=30):
    """Wait for a Celery worker to log that it consumes (``ready.``)."""

    def ready():
        if role.process.poll() is not None:
            raise RuntimeError(f"worker exited with {role.process.returncode}")
        try:
            with open(log_path, encoding="utf-8", errors="replace") as handle:
                # a restarted worker appends to its own new log
                return " ready." in handle.read()
        except OSError:
            return False

    if not wait_until(ready, timeout, 0.05):
        raise RuntimeError("worker did not become ready")


def wait_exit(role, timeout):
    """Wait for a role's main process to exit; return seconds taken or None."""
    started = time.monotonic()
    try:
        role.process.wait(timeout)
    except subprocess.TimeoutExpired:
        return None
    return time.monotonic() - started


class FaultReceiver(Receiver):
    """A Receiver that also remembers the status it answered each request."""

    def _respond(self, path, headers, body):
        with self._arrived:
            received = Received(path, dict(headers), body, time.time())
            status, extra = 200, {}
            if path in self._scripts:
                statuses, extra = self._scripts[path]
                status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
            received.status = status
            self.requests.append(received)
            self._arrived.notify_all()
            return status, self._delays.get(path, 0), extra


def quiet(receiver):
    """Silence the tracebacks a receiver prints when a killed worker hangs up."""
    receiver.server.handle_error = lambda *args: None
    return receiver


def receiver_on_port(port):
    """A quiet FaultReceiver (not started) listening on a given port."""
    receiver = FaultReceiver()
    handler = receiver.server.RequestHandlerClass
    receiver.server.server_close()
    receiver.server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    receiver.server.daemon_threads = True
    receiver.thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    return quiet(receiver)


# A scheduler that SIGKILLs itself at a chosen point of moving due retries:
# ``after-lease`` (retries leased, nothing enqueued yet) or ``after-enqueue``
# (delivery tasks enqueued, leases not yet released). A random SIGKILL hits
# these windows rarely; this hits them every time.
DYING_SCHEDULER = r"""
import os, signal, sys
from notifier.store import storage
from workers import app

point, config = sys.argv[1], sys.argv[2]

def die():
    print("dying scheduler: SIGKILL", point, file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

if point == "after-lease":
    app.CeleryDispatcher.send_deliveries = lambda self, deliveries: die()
else:
    original = storage.Storage.release_retries
    def release(self, members):
        if members:
            die()
        original(self, members)
    storage.Storage.release_retries = release

from notifier.cli import main
main(["scheduler", "--config-file", config])
"""


# A worker whose main process SIGKILLs its whole process group (pool too)
# when it has taken its Nth task off the queue (BRPOP) and is about to record
# it as unacknowledged (kombu's Redis QoS.append): the window kombu's Redis
# transport leaves between the two.
DYING_WORKER = r"""
import os, signal, sys
from kombu.transport import redis as kombu_redis

nth, config = int(sys.argv[1]), sys.argv[2]
taken = [0]
original = kombu_redis.QoS.append

def append(self, message, delivery_tag):
    taken[0] += 1
    if taken[0] == nth:
        print("dying worker: SIGKILL before recording task", nth, file=sys.stderr,
              flush=True)
        os.killpg(os.getpgrp(), signal.SIGKILL)
    return original(self, message, delivery_tag)

kombu_redis.QoS.append = append
from notifier.cli import main
main(["worker", "--config-file", config])
"""


def _start_script(fleet, label, script, *args):
    log = open(fleet.log_path(label), "ab")
    process = subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args), fleet.config],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    fleet.scripts.append(process)
    return process


def start_dying_scheduler(fleet, point):
    return _start_script(fleet, f"scheduler-dies-{point}", DYING_SCHEDULER, point)


def start_dying_worker(fleet, nth):
    return _start_script(fleet, "worker-dies", DYING_WORKER, nth)


# -- the API as a client sees it ------------------------------------------------


class Api:
    def __init__(self, base_url, project=None):
        self.base = base_url
        self.project = project or "p" + uuid.uuid4().hex[:8]
        self.session = requests.Session()

    def headers(self):
        return {"Client-ID": CLIENT_ID, "X-Project-ID": self.project}

    def request(self, method, path, **kwargs):
        kwargs.setdefault("timeout", HTTP_TIMEOUT)
        return self.session.request(method, self.base + path, headers=self.headers(), **kwargs)

    def subscribe(self, queue, subscriber, **options):
        response = self.request(
            "POST",
            f"/queues/{queue}/subscriptions",
            json={"subscriber": subscriber, "ttl": 3600, "options": options},
        )
        assert response.status_code == 201, response.text
        return response.json()["subscription_id"]

    def post(self, queue, messages):
        """POST messages; return the response (the caller judges it)."""
        return self.request("POST", f"/queues/{queue}/messages", json={"messages": messages})

    def post_ok(self, queue, messages):
        response = self.post(queue, messages)
        assert response.status_code == 201, response.text
        return ids_of(response)

    def attempts(self, queue, subscription_id, limit=1000):
        response = self.request(
            "GET",
            f"/queues/{queue}/subscriptions/{subscription_id}/attempts",
            params={"limit": limit},
        )
        assert response.status_code == 200, response.text
        return response.json()["attempts"]

    def close(self):
        self.session.close()


def ids_of(response):
    return [href.rsplit("/", 1)[1] for href in response.json()["resources"]]


# -- what arrived ---------------------------------------------------------------


def header(request, name):
    for key, value in request.headers.items():
        if key.lower() == name:
            return value
    return None


class Tally:
    """Deliveries seen by receivers against what was expected.

    ``expected`` is a set of (path, message_id); ``subscriptions`` maps a
    path to its subscription id (for the expected ``webhook-id``). A request
    counts as a delivery when the receiver answered it 2xx (FaultReceiver
    records the status; a plain Receiver answers 200 unless scripted).
    """

    def __init__(self, receivers, expected, subscriptions):
        self.receivers = receivers
        self.expected = set(expected)
        self.subscriptions = subscriptions

    def posts(self, delivered_only=True):
        """{(path, message_id): [requests]}: every POST, or only 2xx-answered."""
        copies = collections.defaultdict(list)
        for receiver in self.receivers:
            for request in receiver.received():
                if request.path not in self.subscriptions:
                    continue
                if delivered_only and not 200 <= getattr(request, "status", 200) < 300:
                    continue
                copies[(request.path, request.json()["message_id"])].append(request)
        return copies

    def seen(self):
        return self.posts(delivered_only=True)

    def missing(self):
        return self.expected - set(self.seen())

    def complete(self):
        return not self.missing()

    def wait_complete(self, timeout):
        """Wait until every expected delivery arrived; return seconds waited."""
        started = time.monotonic()
        wait_until(self.complete, timeout, 0.1)
        return time.monotonic() - started

    def strangers(self):
        """{(path, message_id): [requests]} of deliveries nobody expected."""
        every = self.posts(delivered_only=False)
        return {key: found for key, found in every.items() if key not in self.expected}

    def check(self, max_duplicates=None, tolerate=None):
        """Assert nothing lost, no stranger (but those ``tolerate(request)``
        accepts), every copy the same delivery (message_id, webhook-id);
        return the number of duplicate deliveries."""
        copies = self.seen()
        missing = self.expected - set(copies)
        assert not missing, f"{len(missing)} of {len(self.expected)} deliveries lost"
        every = self.posts(delivered_only=False)
        strangers = [
            key
            for key, found in self.strangers().items()
            if not (tolerate and all(map(tolerate, found)))
        ]
        assert not strangers, f"unexpected deliveries: {sorted(strangers)[:5]}"
        for (path, message_id), requests_seen in every.items():
            wanted = f"msg_{message_id}_{self.subscriptions[path]}"
            ids = {header(r, "webhook-id") for r in requests_seen}
            assert ids == {wanted}, (path, message_id, ids)
            assert {r.json()["message_id"] for r in requests_seen} == {message_id}
        duplicates = sum(len(v) - 1 for v in copies.values())
        if max_duplicates is not None:
            assert duplicates <= max_duplicates, (
                f"{duplicates} duplicates, more than the bound {max_duplicates}"
            )
        return duplicates


def unacked_count(redis_client):
    """Tasks delivered to workers but not acknowledged (kombu's Redis QoS)."""
    return redis_client.hlen("unacked")


def unacked_message_ids(redis_client):
    """Message ids carried by unacknowledged tasks (kombu's ``unacked`` hash:
    [message, exchange, routing key]; the body is base64 Celery protocol 2)."""
    found = set()
    for raw in redis_client.hvals("unacked"):
        try:
            payload = json.loads(raw)[0]
            args = json.loads(base64.b64decode(payload["body"]))[0]
        except (ValueError, KeyError, IndexError, TypeError):
            continue
        name = payload.get("headers", {}).get("task")
        if name == "notifier.fanout":
            found.update(args[1])
        elif name == "notifier.deliver":
            found.update(d["message_id"] for d in args[0])
    return found
