"""Post -> claim -> delete cycles on one queue (issue 19): Zaqar's consumer
side under load.

One producer process posts messages (10 per request) as fast as the API
takes them, capped at ``--max-backlog`` free messages; ``--consumers``
processes (4 by default) each loop: claim up to 10 (``POST .../claims``),
then delete each claimed message with its claim id (``DELETE
.../messages/{id}?claim_id=``, as python-zaqarclient's ``message.delete()``
does), or all of them in one ``DELETE ?ids=`` with ``--delete ids``. Every
client keeps one HTTP/1.1 connection (``http.client``).

Prints messages/s completed (deleted after a claim), claim latency
percentiles, and where the machine's CPU went (API, Redis, the clients), all
measured in this run. The seed's per-queue target: >= 2,000 messages/s.

    .venv/bin/python bench/consumers.py --seconds 20
"""

import argparse
import http.client
import json
import multiprocessing
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.fleet import Fleet, tree_usage  # noqa: E402


def api_cpu_seconds(fleet):
    return sum(cpu for cpu, _ in tree_usage([fleet.api]).values())


HEADERS = {
    "Content-Type": "application/json",
    "X-Project-ID": "bench",
}
QUEUE = "/v2/queues/work"


def client_headers(n):
    return dict(HEADERS, **{"Client-ID": f"00000000-0000-4000-8000-{n:012d}"})


def request(conn, method, path, body=None, headers=None):
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    return response.status, data


def producer(port, stop_at, max_backlog, counts):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    headers = client_headers(0)
    body = json.dumps({"messages": [{"body": {"n": n}, "ttl": 600} for n in range(10)]})
    posted = 0
    while time.time() < stop_at:
        status, data = request(conn, "GET", QUEUE + "/stats", headers=headers)
        if status == 200 and json.loads(data)["messages"]["free"] >= max_backlog:
            time.sleep(0.002)
            continue
        for _ in range(10):
            status, _ = request(conn, "POST", QUEUE + "/messages", body, headers)
            if status == 201:
                posted += 10
    counts.put(("posted", posted, []))


def consumer(index, port, stop_at, delete_mode, counts):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    headers = client_headers(index + 1)
    claim_body = json.dumps({"ttl": 60, "grace": 60})
    done, latencies = 0, []
    while time.time() < stop_at:
        started = time.perf_counter()
        status, data = request(conn, "POST", QUEUE + "/claims?limit=10", claim_body, headers)
        latencies.append(time.perf_counter() - started)
        if status == 204:
            time.sleep(0.002)
            continue
        claimed = json.loads(data)["messages"]
        if delete_mode == "ids":
            ids = ",".join(m["id"] for m in claimed)
            status, _ = request(conn, "DELETE", f"{QUEUE}/messages?ids={ids}", None, headers)
            done += len(claimed) if status == 204 else 0
        else:
            for message in claimed:  # href carries ?claim_id=
                status, _ = request(conn, "DELETE", message["href"], None, headers)
                done += status == 204
    counts.put(("deleted", done, latencies))


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def run(args):
    fleet = Fleet(workers=1, api_workers=args.api_workers, quick=True).start()
    try:
        port = fleet.api_port
        stop_at = time.time() + args.seconds
        counts = multiprocessing.Queue()
        procs = [
            multiprocessing.Process(target=producer, args=(port, stop_at, args.max_backlog, counts))
        ] + [
            multiprocessing.Process(target=consumer, args=(i, port, stop_at, args.delete, counts))
            for i in range(args.consumers)
        ]
        before = api_cpu_seconds(fleet), fleet_redis_cpu(fleet), os.times()
        started = time.monotonic()
        for proc in procs:
            proc.start()
        results = [counts.get() for _ in procs]
        for proc in procs:
            proc.join()
        elapsed = time.monotonic() - started
        after = api_cpu_seconds(fleet), fleet_redis_cpu(fleet), os.times()
    finally:
        fleet.close()
    deleted = sum(n for kind, n, _ in results if kind == "deleted")
    posted = sum(n for kind, n, _ in results if kind == "posted")
    latencies = [x for _, _, values in results for x in values]
    api_cpu = after[0] - before[0]
    redis_cpu = after[1] - before[1]
    clients_cpu = (after[2].children_user + after[2].children_system) - (
        before[2].children_user + before[2].children_system
    )
    print(
        f"consumers {args.consumers}, delete by {args.delete}, {args.seconds} s, "
        f"API workers {args.api_workers}, cores {os.cpu_count()}"
    )
    print(f"posted {posted}, claimed and deleted {deleted}: {deleted / elapsed:,.0f} messages/s")
    print(
        "claim latency ms: p50 {:.1f}  p95 {:.1f}  p99 {:.1f}  ({} claims)".format(
            *(1000 * percentile(latencies, q) for q in (0.5, 0.95, 0.99)), len(latencies)
        )
    )
    print(
        f"CPU seconds: API {api_cpu:.1f}, Redis {redis_cpu:.1f}, clients {clients_cpu:.1f} "
        f"(of {elapsed * os.cpu_count():.0f} available)"
    )


def fleet_redis_cpu(fleet):
    import psutil

    times = psutil.Process(fleet.redis_server.process.pid).cpu_times()
    return times.user + times.system


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--consumers", type=int, default=4)
    parser.add_argument("--api-workers", type=int, default=4)
    parser.add_argument("--max-backlog", type=int, default=2000)
    parser.add_argument("--delete", choices=["claim_id", "ids"], default="claim_id")
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
