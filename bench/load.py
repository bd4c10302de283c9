"""Load generators of the benchmarks: API posters and the raw-client reference.

Every loop here is bounded by a count or a deadline. Functions run in the
benchmark process (threads) or in spawned client processes; those used in
processes are module-level so they can be pickled.
"""

import http.client
import json
import os
import re
import shutil
import subprocess
import threading
import time
import uuid

HEADERS = {
    "Content-Type": "application/json",
    "X-Project-ID": "bench",
    "Client-ID": str(uuid.UUID("3381af92-2b9e-11e3-b191-71861300734c")),
}


def message_body(seq, t):
    """The body of a benchmark message: ``seq`` and the post time ``t``."""
    return {"event": "order.created", "seq": seq, "t": t}


def reference_payload():
    """A request body shaped like the notifications the workers send."""
    return json.dumps(
        {
            "body": message_body(1, time.time()),
            "ttl": 3600,
            "Message_Type": "Notification",
            "queue_name": "bench",
            "message_id": uuid.uuid4().hex,
            "timestamp": "2026-01-01T00:00:00.000Z",
        }
    ).encode()


class ApiClient:
    """One keep-alive connection to the API (http.client: cheap per request,
    so the load generator takes as little of the machine as it can)."""

    def __init__(self, api_url, timeout=30):
        rest = api_url.split("://", 1)[1]
        hostport, _, base = rest.partition("/")
        host, _, port = hostport.partition(":")
        self.host, self.port, self.base = host, int(port), "/" + base
        self.timeout = timeout
        self.conn = None

    def request(self, method, path, document=None):
        body = None if document is None else json.dumps(document).encode()
        for attempt in (1, 2):  # the server may close an idle keep-alive
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, self.base + path, body=body, headers=HEADERS)
                response = self.conn.getresponse()
                data = response.read()
                if response.will_close:
                    self.close()
                return response.status, data
            except (http.client.HTTPException, OSError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def post_messages(self, queue, bodies, ttl=3600):
        document = {"messages": [{"ttl": ttl, "body": b} for b in bodies]}
        return self.request("POST", f"/queues/{queue}/messages", document)

    def subscribe(self, queue, subscriber, ttl=86400):
        status, data = self.request(
            "POST",
            f"/queues/{queue}/subscriptions",
            {"subscriber": subscriber, "ttl": ttl, "options": {}},
        )
        if status != 201:
            raise RuntimeError(f"subscribe {subscriber}: {status} {data[:200]!r}")
        return json.loads(data)["subscription_id"]

    def unsubscribe(self, queue, subscription_id):
        return self.request("DELETE", f"/queues/{queue}/subscriptions/{subscription_id}")

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def post_burst(api_url, queue, count, batch, threads=4, first_seq=0):
    """Post ``count`` messages, ``batch`` per request, from ``threads`` keep-alive
    clients; each message body carries its post time. Return a dict with the
    posting window and how many messages were accepted."""
    batches = [
        list(range(first_seq + s, first_seq + min(s + batch, count)))
        for s in range(0, count, batch)
    ]
    lock = threading.Lock()
    result = {"accepted": 0, "failed": 0}

    def run(part):
        client = ApiClient(api_url)
        try:
            for seqs in part:
                t = time.time()
                status, _ = client.post_messages(queue, [message_body(s, t) for s in seqs])
                with lock:
                    if status == 201:
                        result["accepted"] += len(seqs)
                    else:
                        result["failed"] += len(seqs)
        finally:
            client.close()

    workers = [threading.Thread(target=run, args=(batches[i::threads],)) for i in range(threads)]
    result["start"] = time.time()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    result["end"] = time.time()
    return result


def post_paced(api_url, queue, rate, duration, threads=4, deadline_slack=10, ttl=3600):
    """Post single messages at ``rate``/s for ``duration`` s (seq 0..N-1),
    spread over ``threads`` keep-alive clients. Return accepted count and the
    achieved window."""
    total = int(rate * duration)
    start = time.time() + 0.2
    lock = threading.Lock()
    result = {"accepted": 0, "failed": 0, "late_ms": []}
    hard_stop = start + duration + deadline_slack

    def run(index):
        client = ApiClient(api_url)
        try:
            for seq in range(index, total, threads):
                due = start + seq / rate
                pause = due - time.time()
                if pause > 0:
                    time.sleep(pause)
                now = time.time()
                if now > hard_stop:
                    break
                status, _ = client.post_messages(queue, [message_body(seq, now)], ttl)
                with lock:
                    result["late_ms"].append((now - due) * 1000)
                    if status == 201:
                        result["accepted"] += 1
                    else:
                        result["failed"] += 1
        finally:
            client.close()

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    result["start"], result["end"] = start, time.time()
    result["expected"] = total
    return result


# -- in client processes --------------------------------------------------


def ingest_client(api_url, queue, batch, start_at, duration, connections):
    """Closed-loop poster: ``connections`` threads, each a keep-alive client,
    posting ``batch`` messages per request from ``start_at`` for ``duration``
    s. Returns counts and this process's CPU seconds."""
    lock = threading.Lock()
    result = {"posts": 0, "messages": 0, "errors": 0, "latencies": []}
    end_at = start_at + duration

    def run():
        client = ApiClient(api_url)
        seq = 0
        try:
            while time.time() < start_at:
                time.sleep(0.001)
            while True:
                t = time.time()
                if t >= end_at:
                    break
                try:
                    status, _ = client.post_messages(
                        queue, [message_body(seq + i, t) for i in range(batch)]
                    )
                except OSError:
                    status = 0
                took = time.time() - t
                seq += batch
                with lock:
                    if status == 201:
                        result["posts"] += 1
                        result["messages"] += batch
                        result["latencies"].append(took)
                    else:
                        result["errors"] += 1
        finally:
            client.close()

    threads = [threading.Thread(target=run) for _ in range(connections)]
    for thread in threads:
        thread.start()
    while time.time() < start_at:
        time.sleep(0.001)
    cpu0 = time.process_time()
    for thread in threads:
        thread.join()
    result["cpu"] = time.process_time() - cpu0
    return result


def timed_posts(post, start_at, duration, max_requests):
    """Call ``post`` back to back from ``start_at`` for ``duration`` seconds
    (or ``max_requests`` calls). Returns requests done, their round-trip
    times, CPU seconds spent in the loop, and this process's RSS."""
    import psutil

    latencies = []
    while time.time() < start_at:
        time.sleep(0.001)
    cpu0 = time.process_time()
    started = time.perf_counter()
    end_at = started + duration
    done = 0
    while done < max_requests:
        t0 = time.perf_counter()
        if t0 >= end_at:
            break
        post()
        latencies.append(time.perf_counter() - t0)
        done += 1
    return {
        "requests": done,
        "elapsed": time.perf_counter() - started,
        "cpu": time.process_time() - cpu0,
        "latencies": latencies,
        "rss": psutil.Process(os.getpid()).memory_info().rss,
        "errors": 0,
    }


def reference_loop(url, start_at, duration, max_requests=200_000):
    """The reference limit: a raw ``requests.Session`` keep-alive POST loop to
    the sink (the shape of ``timed_posts``)."""
    import requests

    session = requests.Session()
    body = reference_payload()
    headers = {"Content-Type": "application/json", "User-Agent": "notifier-bench/1"}

    def post():
        _ = session.post(url, data=body, headers=headers).content

    post()  # connect outside the window
    try:
        return timed_posts(post, start_at, duration, max_requests)
    finally:
        session.close()


def httpclient_loop(url, start_at, duration, max_requests=400_000):
    """The stdlib's limit: a raw ``http.client`` keep-alive POST loop to the
    sink (one per core). Same return shape as ``reference_loop``."""
    rest = url.split("://", 1)[1]
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.partition(":")
    path = "/" + path
    conn = http.client.HTTPConnection(host, int(port or 80), timeout=30)
    body = reference_payload()
    headers = {"Content-Type": "application/json", "User-Agent": "notifier-bench/1"}

    def post():
        conn.request("POST", path, body=body, headers=headers)
        conn.getresponse().read()

    post()  # connect outside the window
    try:
        return timed_posts(post, start_at, duration, max_requests)
    finally:
        conn.close()


# -- wrk: a C load generator, for ingest --------------------------------------

WRK_SCRIPT = """wrk.method = "POST"
wrk.body = [[%s]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Project-ID"] = "%s"
wrk.headers["Client-ID"] = "%s"
"""
UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def wrk_available():
    return shutil.which("wrk") is not None


def wrk_ingest(api_url, queue, batch, duration, connections, threads=2, workdir="/tmp"):
    """Post ``batch``-message posts with wrk (keep-alive, ``connections`` open
    at once) for ``duration`` s. wrk is written in C: at 2,000 posts/s a
    Python client would take a third of this machine's CPU away from what it
    measures. Returns counts, latency percentiles and wrk's CPU seconds."""
    document = {"messages": [{"ttl": 3600, "body": message_body(i, 0.0)} for i in range(batch)]}
    script = os.path.join(workdir, f"wrk-{os.getpid()}-{batch}.lua")
    with open(script, "w") as f:
        f.write(WRK_SCRIPT % (json.dumps(document), HEADERS["X-Project-ID"], HEADERS["Client-ID"]))
    url = f"{api_url}/queues/{queue}/messages"
    seconds = max(1, round(duration))  # wrk takes whole seconds
    proc = subprocess.Popen(
        [
            "wrk",
            f"-t{threads}",
            f"-c{max(connections, threads)}",
            f"-d{seconds}s",
            "--latency",
            "--timeout",
            "30s",
            "-s",
            script,
            url,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    os.unlink(script)
    if status != 0:
        raise RuntimeError(f"wrk failed: {output}")
    return dict(parse_wrk(output, batch, usage.ru_utime + usage.ru_stime), seconds=seconds)


def parse_wrk(output, batch, cpu):
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = int(non_2xx.group(1)) if non_2xx else 0
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), "
        r"timeout (\d+)",
        output,
    )
    if sockets:
        errors += sum(int(x) for x in sockets.groups())
    percentiles = {
        int(q): float(v) * UNITS_MS[unit]
        for q, v, unit in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.M)
    }
    posts = max(0, requests - errors)
    return {
        "posts": posts,
        "messages": posts * batch,
        "errors": errors,
        "percentiles_ms": percentiles,
        "cpu": cpu,
    }
