"""notifier benchmarks (issue 4): one command, its own processes, bounded.

    .venv/bin/python bench/run.py [--scenario fanout|latency|ingest|isolation|backlog|all]
                                  [--workers N] [--layout pool|split] [--quick]
                                  [--json PATH] [--profile DIR]

Starts a private redis-server, the fast HTTP sink (bench/sink.py), `notifier
api` (gunicorn), the workers and `notifier scheduler` on 127.0.0.1; measures
the reference limit (N raw ``requests.Session`` keep-alive POST loops against
the same sink, N = --workers); runs the scenarios through the real HTTP API;
prints every figure with its ratio to the reference; stops everything.

Workers: ``--layout pool`` (default) runs one ``notifier worker --concurrency
N`` (one consumer process feeding N prefork pool processes: how `notifier dev`
and a one-host deployment run it); ``--layout split`` runs N ``notifier
worker --concurrency 1`` (one consumer per pool process, like
``docker compose --scale worker=N``).
"""

import argparse
import contextlib
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from bench import load, redis_trace, zaqar_ref  # noqa: E402
from bench.fleet import Fleet  # noqa: E402
from bench.report import fmt  # noqa: E402
from notifier.store import keys  # noqa: E402

SCENARIOS = ["fanout", "latency", "ingest", "isolation", "backlog", "memory"]
# The memory scenario shows Redis memory plateau under a steady load, so what
# expires must expire within the run: 60 s message TTLs (Zaqar's minimum),
# 60 s per-message attempt logs, and a 60 s done-flag horizon.
MEMORY_SETTINGS = [
    ("notification", "attempt_log_ttl_seconds", "60"),
    ("worker", "visibility_timeout_seconds", "30"),
    ("worker", "reconcile_after_seconds", "30"),
]
MB = 1024 * 1024

FULL = {
    "fanout": [(2000, 5), (20000, 5), (200, 50), (20, 500)],
    "fanout_batch": 10,
    "latency_rate": 500,
    "latency_fast_rate": 3000,
    "latency_subs": 5,
    "latency_seconds": 20,
    "ingest_seconds": 5,
    "ingest_clients": 4,
    "ingest_connections": 2,
    "isolation": (2000, 10),
    "isolation_timeout": 90,
    "backlog": 100_000,
    "memory_rate": 500,
    "memory_seconds": 150,
    "memory_ttl": 60,
    "ref_seconds": 5,
    "zaqar": (2000, 5),
    "timeout": 180,
}
QUICK = {
    "fanout": [(10, 5), (2, 50), (1, 100)],
    "fanout_batch": 10,
    "latency_rate": 100,
    "latency_fast_rate": 200,
    "latency_subs": 5,
    "latency_seconds": 1,
    "ingest_seconds": 0.5,
    "ingest_clients": 2,
    "ingest_connections": 1,
    "isolation": (10, 10),
    "isolation_timeout": 3,
    "backlog": 1_000,
    "memory_rate": 100,
    "memory_seconds": 2,
    "memory_ttl": 60,
    "ref_seconds": 0.5,
    "zaqar": (10, 5),
    "timeout": 20,
}

TARGETS = {
    "fanout_ratio": 0.70,  # of the raw requests.Session keep-alive limit
    "fanout_absolute": 3000.0,  # 6 x Zaqar's ~500/s on 2,000 x 5
    "latency_p99_ms": 100.0,  # at a steady 500 deliveries/s
    "latency_fast_p99_ms": 250.0,  # at a steady 3,000 deliveries/s (issue 21)
    "fanout_httpclient_ratio": 0.40,  # 20,000 x 5 vs the http.client limit, same run
    "fanout_zaqar_ratio": 6.0,  # 20,000 x 5 vs Zaqar's NotifierDriver, same run
    "worker_cpu_ms": 0.16,  # per delivery, 20,000 x 5
    "redis_commands": 4.0,  # per delivery, 20,000 x 5
    "redis_cpu_ms": 0.015,  # per delivery, 20,000 x 5
    "ingest_posts": 2000.0,  # single-message posts/s
    "ingest_messages": 10000.0,  # messages/s in 10-message posts
    "isolation_ratio": 0.90,
    "backlog_rss_mb": 50.0,
}


def percentile(values, q):
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(q / 100.0 * len(ordered) + 0.5)) - 1))
    return ordered[index]


def spawn_pool(processes):
    return ProcessPoolExecutor(
        max_workers=processes, mp_context=multiprocessing.get_context("spawn")
    )


def ratio(value, reference):
    if not reference or value is None or value != value:
        return "n/a"
    return f"{value / reference:.2f}x"


class Profiler:
    """py-spy record over a process tree while a scenario runs."""

    def __init__(self, directory, name, pids, rate=100, idle=False):
        self.idle = idle
        self.directory = directory
        self.name = name
        self.pids = pids
        self.rate = rate
        self.procs = []

    def __enter__(self):
        import shutil
        import subprocess

        spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
        if not os.path.exists(spy):
            print("  (py-spy not installed: no profile)")
            return self
        os.makedirs(self.directory, exist_ok=True)
        for pid in self.pids:
            out = os.path.join(self.directory, f"{self.name}-{pid}.txt")
            self.procs.append(
                subprocess.Popen(
                    [
                        spy,
                        "record",
                        "--pid",
                        str(pid),
                        "--subprocesses",
                        "--nonblocking",
                        *(["--idle"] if self.idle else []),
                        "--rate",
                        str(self.rate),
                        "--format",
                        "raw",
                        "--duration",
                        "600",
                        "--output",
                        out,
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        time.sleep(1.0)  # py-spy attaches
        return self

    def __exit__(self, *exc):
        for proc in self.procs:
            proc.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        for proc in self.procs:
            try:
                proc.wait(30)
            except Exception:
                proc.kill()
        if self.procs:
            print(
                f"  profile written to {self.directory}/{self.name}-*.txt "
                f"(summarise: .venv/bin/python bench/pyspy_summary.py FILE)"
            )


class Bench:
    def __init__(self, fleet, args):
        self.fleet = fleet
        self.args = args
        self.p = QUICK if args.quick else FULL
        self.results = {"reference": None, "scenarios": {}}
        self.run_id = uuid.uuid4().hex[:6]
        self.next_endpoint = 0  # every subscriber of a run gets its own endpoint
        self.ingest_with_wrk = args.ingest_client == "wrk" or (
            args.ingest_client == "auto" and load.wrk_available()
        )

    # -- helpers ----------------------------------------------------------

    def client(self):
        return load.ApiClient(self.fleet.api_url)

    def subscribe(self, queue, tag, modes):
        """Subscribe sink paths; with distinct endpoints each subscriber gets an
        address no other subscriber of this run had, so per-endpoint state
        (breakers, in-flight caps, connection pools) never leaks between
        scenarios."""
        client = self.client()
        out = []
        try:
            for i, mode in enumerate(modes):
                url = self.fleet.sink_url(mode, tag, f"s{i}", index=self.next_endpoint)
                self.next_endpoint += 1
                out.append((mode, client.subscribe(queue, url)))
            return out
        finally:
            client.close()

    def unsubscribe(self, queue, subscriptions):
        client = self.client()
        try:
            for _, subscription_id in subscriptions:
                client.unsubscribe(queue, subscription_id)
        finally:
            client.close()

    def sink_unique(self, tag, mode="ok"):
        stats = self.fleet.sink_get("/_stats") or {}
        return stats.get(tag, {}).get(mode, [0, 0])

    def wait_deliveries(self, tag, expected, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.sink_unique(tag)[1] >= expected:
                return True
            time.sleep(0.1)
        return False

    def ready(self):
        if not self.fleet.wait_idle(timeout=120):
            print("  warning: broker not idle after 120 s; purging")
            self.fleet.purge()

    def begin(self):
        self.fleet.monitor.reset_peaks()
        self.fleet.redis.config_resetstat()
        if self.args.redis_trace:
            redis_trace.start(self.fleet.redis)
        self._logs0 = self._worker_log_bytes()
        return self.fleet.monitor.snapshot()

    def _worker_log_bytes(self):
        return sum(
            os.path.getsize(p.log_path)
            for p in self.fleet.worker_procs
            if os.path.exists(p.log_path)
        )

    def redis_commands(self):
        """Calls per command since `begin`; their time inside Redis is kept in
        `self.redis_usec` (command execution only, not the I/O around it)."""
        stats = self.fleet.redis.info("commandstats")
        calls = {name.replace("cmdstat_", ""): value["calls"] for name, value in stats.items()}
        self.redis_usec = {
            name.replace("cmdstat_", ""): value["usec"] for name, value in stats.items()
        }
        stats = self.fleet.redis.info("stats")
        self.redis_io = {
            k: stats.get(k, 0)
            for k in (
                "total_reads_processed",
                "total_writes_processed",
                "total_net_input_bytes",
                "total_net_output_bytes",
            )
        }
        for counted in (calls, self.redis_usec):
            for ours in ("config", "config|resetstat", "info"):
                counted.pop(ours, None)
        return calls

    def measure(self, tag, before, post, expected, healthy_subs=None, arrived=True):
        """Collect the figures of one delivery scenario from the sink's records."""
        after = self.fleet.monitor.snapshot()
        peaks = self.fleet.monitor.peaks()
        cpu = self.fleet.monitor.cpu_between(before, after)
        commands = self.redis_commands()
        if self.args.redis_trace:
            redis_trace.stop(self.fleet.redis, self.args.redis_trace, tag)
        log_bytes = self._worker_log_bytes() - self._logs0
        dump = self.fleet.sink_get(f"/_dump?run={tag}") or {"records": []}
        if self.args.records:
            os.makedirs(self.args.records, exist_ok=True)
            with open(os.path.join(self.args.records, f"{tag}.json"), "w") as handle:
                json.dump(
                    {
                        "post_start": post["start"],
                        "post_end": post["end"],
                        "records": dump["records"],
                    },
                    handle,
                )
        first = {}
        requests_by_mode = {}
        for mode, sub, received, t, seq in dump["records"]:
            requests_by_mode[mode] = requests_by_mode.get(mode, 0) + 1
            if mode != "ok" or seq is None:
                continue
            key = (sub, seq)
            if key not in first or received < first[key][0]:
                first[key] = (received, t)
        delivered = len(first)
        latencies = [(r - t) * 1000 for r, t in first.values() if t is not None]
        last = max((r for r, _ in first.values()), default=None)
        window = (last - post["start"]) if last else None
        if not arrived and last is not None:
            window = max(window, time.time() - post["start"])
        rate = delivered / window if window else 0.0
        post_seconds = max(post["end"] - post["start"], 1e-9)
        result = {
            "tag": tag,
            "expected": expected,
            "delivered": delivered,
            "complete": delivered >= expected,
            "duplicates": requests_by_mode.get("ok", 0) - delivered,
            "requests_by_mode": requests_by_mode,
            "seconds": window,
            "deliveries_per_s": rate,
            "latency_ms": {q: percentile(latencies, q) for q in (50, 95, 99)},
            "api_messages_per_s": post["accepted"] / post_seconds,
            "posted": post["accepted"],
            "post_failures": post["failed"],
            "peak_rss_mb": {k: v / MB for k, v in peaks.items()},
            "cpu_seconds": cpu,
            "cpu_per_1k": {
                k: (v / delivered * 1000 if delivered else None)
                for k, v in cpu.items()
                if not k.startswith("_")
            },
            "redis_commands_per_delivery": {
                k: round(v / delivered, 3)
                for k, v in sorted(commands.items(), key=lambda kv: -kv[1])
                if delivered
            },
            "redis_command_usec_per_delivery": {
                k: round(v / delivered, 3)
                for k, v in sorted(self.redis_usec.items(), key=lambda kv: -kv[1])
                if delivered
            },
            "redis_io_per_delivery": {
                k: round(v / delivered, 3) for k, v in self.redis_io.items() if delivered
            },
            "worker_log_bytes_per_delivery": (log_bytes / delivered if delivered else None),
            "other_processes_cpu": self.fleet.monitor.foreign(cpu),
        }
        if healthy_subs:
            result["per_subscriber_per_s"] = rate / healthy_subs
        return result

    def print_delivery(self, result, label):
        ref = self.results["reference"]
        status = "" if result["complete"] else "  ** INCOMPLETE (timeout) **"
        print(
            f"\n== {label}: {result['delivered']:,}/{result['expected']:,} deliveries in "
            f"{fmt(result['seconds'], 2)} s, duplicates {result['duplicates']}{status}"
        )
        print(
            f"  deliveries/s            {fmt(result['deliveries_per_s']):>10}   "
            f"{ratio(result['deliveries_per_s'], ref['rate'])} of reference limit"
        )
        raw = self.results.get("httpclient") or {}
        zaqar = self.results.get("zaqar") or {}
        print(
            f"  deliveries/s ratios     {ratio(result['deliveries_per_s'], raw.get('rate'))} of "
            f"the http.client limit, {ratio(result['deliveries_per_s'], zaqar.get('rate'))} "
            f"of Zaqar (same run)"
        )
        lat = result["latency_ms"]
        print(
            f"  latency ms p50/p95/p99  {fmt(lat[50], 1)} / {fmt(lat[95], 1)} / "
            f"{fmt(lat[99], 1)}   {ratio(lat[50], ref['rtt_ms'][50])} / "
            f"{ratio(lat[95], ref['rtt_ms'][95])} / {ratio(lat[99], ref['rtt_ms'][99])}"
            f" of raw POST round trip"
        )
        print(
            f"  API messages/s          {fmt(result['api_messages_per_s']):>10}   "
            f"{ratio(result['api_messages_per_s'], ref['rate'])} of reference limit"
        )
        peak = result["peak_rss_mb"].get("worker")
        print(
            f"  peak worker RSS MB      {fmt(peak, 1):>10}   "
            f"{ratio(peak, ref['rss_mb'])} of reference processes' RSS"
        )
        cpu = result["cpu_per_1k"].get("worker")
        print(
            f"  CPU s / 1k deliveries   {fmt(cpu, 3):>10}   "
            f"{ratio(cpu, ref['cpu_per_1k'])} of reference loop "
            f"(api {fmt(result['cpu_per_1k'].get('api'), 3)}, redis "
            f"{fmt(result['cpu_per_1k'].get('redis'), 3)}, sink "
            f"{fmt(result['cpu_per_1k'].get('sink'), 3)}, scheduler "
            f"{fmt(result['cpu_per_1k'].get('scheduler'), 3)})"
        )
        top = list(result["redis_commands_per_delivery"].items())[:8]
        print("  redis cmds / delivery   " + ", ".join(f"{k} {v}" for k, v in top))
        usec = list(result["redis_command_usec_per_delivery"].items())[:5]
        io = result["redis_io_per_delivery"]
        print(
            f"  redis per delivery      {io['total_reads_processed']:.3f} reads (round trips), "
            f"{io['total_net_input_bytes']:,.0f} bytes in; command us "
            + ", ".join(f"{k} {v}" for k, v in usec)
            + " (a script's time includes its commands')"
        )
        print(f"  worker log bytes/deliv  {fmt(result['worker_log_bytes_per_delivery'], 0)}")
        self.print_noise(result["other_processes_cpu"])

    @staticmethod
    def print_noise(foreign):
        other, share = foreign
        print(
            f"  noise: processes outside the bench used {other:.1f} CPU-s "
            f"({share * 100:.0f}% of the machine) meanwhile"
        )

    def delivery_run(self, tag, modes, count, batch, timeout, profile=None):
        queue = tag
        subscriptions = self.subscribe(queue, tag, modes)
        healthy = modes.count("ok")
        expected = count * healthy
        self.ready()
        before = self.begin()
        prof = (
            Profiler(
                self.args.profile,
                profile,
                [p.pid for p in self.fleet.worker_procs],
                idle=self.args.profile_idle,
            )
            if profile and self.args.profile
            else None
        )
        if prof:
            prof.__enter__()
        try:
            post = load.post_burst(self.fleet.api_url, queue, count, batch, threads=4)
            arrived = self.wait_deliveries(tag, expected, timeout)
        finally:
            if prof:
                prof.__exit__(None, None, None)
        result = self.measure(tag, before, post, expected, healthy_subs=healthy, arrived=arrived)
        return result, subscriptions

    # -- reference ----------------------------------------------------------

    def reference(self):
        """The raw limits, measured against the same sink in this run: the
        ``requests.Session`` loops (one per worker process), the stdlib's
        ``http.client`` loops (one per core), and Zaqar's notifier driver."""
        n = self.args.workers
        ref = self._raw_limit(load.reference_loop, n, "ref")
        self.results["reference"] = ref
        print(
            f"\n== reference limit: {n} raw requests.Session keep-alive POST loop(s) "
            f"to the same sink, {ref['seconds']} s"
        )
        self._print_limit(ref, "reference POSTs/s")
        cores = os.cpu_count() or 1
        raw = self._raw_limit(load.httpclient_loop, cores, "raw")
        self.results["httpclient"] = raw
        print(
            f"\n== http.client limit: {cores} raw http.client keep-alive POST loop(s) "
            f"(one per core) to the same sink, {raw['seconds']} s"
        )
        self._print_limit(raw, "http.client POSTs/s")
        if self.args.zaqar != "off":
            self.results["zaqar"] = zaqar = self.zaqar_reference()
            if zaqar.get("rate"):
                print(
                    f"  = {ratio(zaqar['rate'], ref['rate'])} of the requests limit, "
                    f"{ratio(zaqar['rate'], raw['rate'])} of the http.client limit"
                )

    def _raw_limit(self, loop, n, prefix):
        seconds = self.p["ref_seconds"]
        tag = f"{prefix}{self.run_id}"
        with spawn_pool(n) as pool:
            start_at = time.time() + (1.5 if not self.args.quick else 1.0)
            before = self.fleet.monitor.snapshot()
            futures = [
                pool.submit(loop, self.fleet.sink_url("ref", tag, f"p{i}"), start_at, seconds)
                for i in range(n)
            ]
            parts = [f.result(timeout=seconds + 60) for f in futures]
            after = self.fleet.monitor.snapshot()
        done = sum(p["requests"] for p in parts)
        rate = sum(p["requests"] / p["elapsed"] for p in parts)
        latencies = [x * 1000 for p in parts for x in p["latencies"]]
        cpu = sum(p["cpu"] for p in parts)
        sink_cpu = self.fleet.monitor.cpu_between(before, after).get("sink", 0)
        return {
            "processes": n,
            "seconds": seconds,
            "requests": done,
            "rate": rate,
            "other_processes_cpu": self.fleet.monitor.foreign(
                self.fleet.monitor.cpu_between(before, after)
            ),
            "rtt_ms": {q: percentile(latencies, q) for q in (50, 95, 99)},
            "cpu_per_1k": cpu / done * 1000 if done else None,
            "sink_cpu_per_1k": sink_cpu / done * 1000 if done else None,
            "rss_mb": sum(p["rss"] for p in parts) / MB,
        }

    def _print_limit(self, ref, label):
        n = ref["processes"]
        print(f"  {label:<24}{fmt(ref['rate']):>10}   ({fmt(ref['rate'] / n)} per process)")
        print(
            f"  POST round trip ms p50/p95/p99  {fmt(ref['rtt_ms'][50], 2)} / "
            f"{fmt(ref['rtt_ms'][95], 2)} / {fmt(ref['rtt_ms'][99], 2)}"
        )
        print(
            f"  CPU s / 1k POSTs        {fmt(ref['cpu_per_1k'], 3):>10}   (client); sink "
            f"{fmt(ref['sink_cpu_per_1k'], 3)}"
        )
        print(f"  RSS MB (all loops)      {fmt(ref['rss_mb'], 1):>10}")
        self.print_noise(ref["other_processes_cpu"])

    def zaqar_reference(self):
        """Zaqar 23.0.1's NotifierDriver, in-process in a side virtualenv
        (bench/zaqar_ref.py), posting to this sink."""
        count, subs = self.p["zaqar"]
        tag = f"zaqar{self.run_id}"
        urls = [self.fleet.sink_url("ok", tag, f"s{i}", index=i) for i in range(subs)]
        print(
            f"\n== Zaqar reference: zaqar {zaqar_ref.ZAQAR_VERSION} NotifierDriver in-process "
            f"({zaqar_ref.THREADS} threads), {count:,} messages x {subs} webhook subscribers "
            f"to the same sink"
        )
        try:
            python = zaqar_ref.ensure_venv()
        except zaqar_ref.Unavailable as exc:
            print(f"  (no Zaqar reference: {exc})")
            return {"rate": None, "error": str(exc)}
        before = self.fleet.monitor.snapshot()
        run = zaqar_ref.run(python, urls, count, timeout=self.p["timeout"])
        after = self.fleet.monitor.snapshot()
        dump = self.fleet.sink_get(f"/_dump?run={tag}") or {"records": []}
        received = sorted(r[2] for r in dump["records"] if r[0] == "ok")
        unique = len({(r[1], r[4]) for r in dump["records"] if r[0] == "ok"})
        window = (received[-1] - run["start"]) if received else None
        rate = unique / window if window else 0.0
        result = {
            "version": zaqar_ref.ZAQAR_VERSION,
            "threads": zaqar_ref.THREADS,
            "expected": count * subs,
            "delivered": unique,
            "seconds": window,
            "rate": rate,
            "cpu_per_1k": run["cpu"] / unique * 1000 if unique else None,
            "other_processes_cpu": self.fleet.monitor.foreign(
                self.fleet.monitor.cpu_between(before, after)
            ),
        }
        print(
            f"  Zaqar deliveries/s      {fmt(rate):>10}   ({unique:,}/{count * subs:,} in "
            f"{fmt(window, 2)} s, CPU s / 1k {fmt(result['cpu_per_1k'], 3)})"
        )
        self.print_noise(result["other_processes_cpu"])
        return result

    # -- scenarios ----------------------------------------------------------

    def warm_up(self):
        tag = f"warm{self.run_id}"
        subscriptions = self.subscribe(tag, tag, ["ok", "ok"])
        count = 100 if not self.args.quick else 20
        load.post_burst(self.fleet.api_url, tag, count, 10, threads=2)
        if not self.wait_deliveries(tag, count * 2, 60):
            raise RuntimeError("warm-up deliveries did not arrive: is the worker running?")
        self.unsubscribe(tag, subscriptions)

    def fanout(self):
        out = []
        shapes = self.p["fanout"]
        if self.args.shapes:
            shapes = [
                tuple(int(x) for x in shape.split("x")) for shape in self.args.shapes.split(",")
            ]
        for index, (count, subs) in enumerate(shapes):
            tag = f"fanout-{count}x{subs}"
            result, _ = self.delivery_run(
                tag,
                ["ok"] * subs,
                count,
                self.p["fanout_batch"],
                self.p["timeout"],
                profile="worker-fanout" if index == 0 else None,
            )
            result["shape"] = [count, subs]
            self.print_delivery(
                result,
                f"fan-out {count:,} messages x {subs} webhook "
                f"subscribers ({self.p['fanout_batch']}-message posts)",
            )
            out.append(result)
        self.results["scenarios"]["fanout"] = out

    def latency(self):
        """Steady rates: the issue-4 500 deliveries/s, then 3,000/s (issue 21)."""
        result = self._steady(self.p["latency_rate"], "latency")
        result["fast"] = self._steady(self.p["latency_fast_rate"], "latency-fast")
        self.results["scenarios"]["latency"] = result

    def _steady(self, rate, tag):
        subs = self.p["latency_subs"]
        seconds = self.p["latency_seconds"]
        self.subscribe(tag, tag, ["ok"] * subs)
        self.ready()
        before = self.begin()
        memory, stop = [], threading.Event()

        def sample_memory():  # Redis memory must plateau under a steady load
            while not stop.wait(1.0):
                memory.append(self.fleet.redis.info("memory")["used_memory"] / 2**20)

        sampler = threading.Thread(target=sample_memory, daemon=True)
        sampler.start()
        # --profile: the fast rate's workers, API and this process (the poster)
        prof = (
            Profiler(
                self.args.profile,
                tag,
                [p.pid for p in self.fleet.worker_procs] + [self.fleet.api.pid, os.getpid()],
                idle=self.args.profile_idle,
            )
            if self.args.profile and tag == "latency-fast"
            else contextlib.nullcontext()
        )
        with prof:
            post = load.post_paced(self.fleet.api_url, tag, rate / subs, seconds, threads=4)
            expected = post["expected"] * subs
            arrived = self.wait_deliveries(tag, expected, self.p["timeout"])
        stop.set()
        sampler.join()
        result = self.measure(tag, before, post, expected, arrived=arrived)
        result["target_rate"] = rate
        result["redis_used_mb"] = memory
        result["post_lateness_ms_p99"] = percentile(post["late_ms"], 99)
        self.print_delivery(
            result,
            f"steady latency: {rate} deliveries/s ({rate / subs:g} "
            f"single-message posts/s x {subs} subscribers) for "
            f"{seconds} s",
        )
        print(
            f"  poster lateness p99 ms  {fmt(result['post_lateness_ms_p99'], 1):>10}"
            f"   (how far posts fell behind the schedule)"
        )
        if len(memory) >= 4:
            half = len(memory) // 2
            print(
                f"  redis used memory MB    first half max {max(memory[:half]):.1f}, "
                f"second half max {max(memory[half:]):.1f}, end {memory[-1]:.1f}"
            )
        return result

    def memory(self):
        """Redis memory under a steady load: it grows until what expires
        (messages, attempt logs, done flags) starts expiring, then plateaus."""
        rate, subs, seconds = self.p["memory_rate"], 5, self.p["memory_seconds"]
        ttl = self.p["memory_ttl"]
        tag = "memory"
        self.subscribe(tag, tag, ["ok"] * subs)
        self.ready()
        samples, stop = [], threading.Event()
        started = time.time()

        def sample():
            while not stop.wait(1.0):
                samples.append(
                    (
                        time.time() - started,
                        self.fleet.redis.info("memory")["used_memory"] / MB,
                        self.fleet.redis.dbsize(),
                    )
                )

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        post = load.post_paced(self.fleet.api_url, tag, rate / subs, seconds, threads=4, ttl=ttl)
        self.wait_deliveries(tag, post["expected"] * subs, self.p["timeout"])
        stop.set()
        sampler.join()
        arrived = self.sink_unique(tag)[1]
        result = {
            "rate": rate,
            "seconds": seconds,
            "message_ttl": ttl,
            "delivered": arrived,
            "expected": post["expected"] * subs,
            "samples": samples,
        }
        print(
            f"\n== memory: {rate} deliveries/s ({rate / subs:g} posts/s x {subs} "
            f"subscribers) for {seconds} s, message TTL {ttl} s; "
            f"{arrived:,}/{post['expected'] * subs:,} delivered"
        )
        for at, used, key_count in samples[:: max(1, len(samples) // 10)] + samples[-1:]:
            print(f"  t={at:6.0f} s   redis used memory {used:7.1f} MB   keys {key_count:>8,}")
        if seconds > 2 * ttl:
            # past the TTL (plus the 60 s attempt-log and done-flag horizon)
            settled = [s for s in samples if s[0] >= ttl + 20]
            half = len(settled) // 2
            early = max(s[1] for s in settled[:half])
            late = max(s[1] for s in settled[half:])
            result["plateau_growth"] = (late - early) / early
            print(
                f"  after t={ttl + 20} s: max {early:.1f} MB in the first half, "
                f"{late:.1f} MB in the second ({result['plateau_growth']:+.1%})"
            )
        self.results["scenarios"]["memory"] = result

    def _ingest_phase(self, pool, batch, paused):
        seconds = self.p["ingest_seconds"]
        clients = self.p["ingest_clients"]
        connections = self.p["ingest_connections"]
        queue = f"ingest-{batch}-{'paused' if paused else 'running'}"
        self.ready()
        if paused:
            for proc in self.fleet.worker_procs:
                for p in proc.tree():
                    p.send_signal(signal.SIGSTOP)
        try:
            if self.ingest_with_wrk:
                before = self.begin()
                part = load.wrk_ingest(
                    self.fleet.api_url,
                    queue,
                    batch,
                    seconds,
                    clients * connections,
                    workdir=self.fleet.tmp,
                )
                lat, seconds = part["percentiles_ms"], part["seconds"]
                parts = [dict(part, latencies=[])]
                latency = {50: lat.get(50), 90: lat.get(90), 99: lat.get(99)}
            else:
                start_at = time.time() + 0.5
                futures = [
                    pool.submit(
                        load.ingest_client,
                        self.fleet.api_url,
                        queue,
                        batch,
                        start_at,
                        seconds,
                        connections,
                    )
                    for _ in range(clients)
                ]
                while time.time() < start_at:
                    time.sleep(0.01)
                before = self.begin()
                parts = [f.result(timeout=seconds + 60) for f in futures]
                latencies = [x * 1000 for p in parts for x in p["latencies"]]
                latency = {q: percentile(latencies, q) for q in (50, 95, 99)}
            after = self.fleet.monitor.snapshot()
            commands = self.redis_commands()
        finally:
            if paused:
                self.fleet.purge()  # fan-outs to a queue with no subscriber
                for proc in self.fleet.worker_procs:
                    for p in proc.tree():
                        p.send_signal(signal.SIGCONT)
        peaks = self.fleet.monitor.peaks()
        posts = sum(p["posts"] for p in parts)
        messages = sum(p["messages"] for p in parts)
        cpu = self.fleet.monitor.cpu_between(before, after)
        client_cpu = sum(p["cpu"] for p in parts)
        return {
            "batch": batch,
            "workers_paused": paused,
            "clients": clients * connections,
            "client": "wrk" if self.ingest_with_wrk else "python http.client",
            "seconds": seconds,
            "posts": posts,
            "messages": messages,
            "errors": sum(p["errors"] for p in parts),
            "posts_per_s": posts / seconds,
            "messages_per_s": messages / seconds,
            "post_latency_ms": latency,
            "cpu_seconds": dict(cpu, clients=client_cpu),
            "cpu_per_1k_posts": {
                k: v / posts * 1000 if posts else None
                for k, v in dict(cpu, clients=client_cpu).items()
                if not k.startswith("_")
            },
            "peak_rss_mb": {k: v / MB for k, v in peaks.items()},
            "other_processes_cpu": self.fleet.monitor.foreign(cpu),
            "redis_commands_per_post": {
                k: round(v / posts, 2)
                for k, v in sorted(commands.items(), key=lambda kv: -kv[1])
                if posts
            },
        }

    def ingest(self):
        ref = self.results["reference"]
        out = []
        with spawn_pool(self.p["ingest_clients"]) as pool:
            list(pool.map(time.sleep, [0] * self.p["ingest_clients"]))  # spawn now
            for paused in (False, True):
                for batch in (1, 10):
                    out.append(self._ingest_report(pool, batch, paused, ref))
        self.results["scenarios"]["ingest"] = out

    def _ingest_report(self, pool, batch, paused, ref):
        profile = (
            Profiler(self.args.profile, "api-ingest", [self.fleet.api.pid])
            if self.args.profile and batch == 1 and not paused
            else None
        )
        if profile:
            profile.__enter__()
        try:
            result = self._ingest_phase(pool, batch, paused)
        finally:
            if profile:
                profile.__exit__(None, None, None)
        lat = result["post_latency_ms"]
        cpu = result["cpu_per_1k_posts"]
        print(
            f"\n== ingest: {batch}-message posts, {result['clients']} concurrent "
            f"keep-alive connections ({result['client']}), {result['seconds']} s, workers "
            f"{'paused (API alone)' if paused else 'running'}"
        )
        print(
            f"  posts accepted/s        {fmt(result['posts_per_s']):>10}   "
            f"{ratio(result['posts_per_s'], ref['rate'])} of reference limit"
            f"   (errors {result['errors']})"
        )
        print(
            f"  API messages/s          {fmt(result['messages_per_s']):>10}   "
            f"{ratio(result['messages_per_s'], ref['rate'])} of reference limit"
        )
        middle = 95 if 95 in lat else 90
        print(
            f"  post latency ms p50/p{middle}/p99  {fmt(lat[50], 1)} / "
            f"{fmt(lat[middle], 1)} / {fmt(lat[99], 1)}"
        )
        print(
            f"  CPU s / 1k posts        api {fmt(cpu.get('api'), 3)}, redis "
            f"{fmt(cpu.get('redis'), 3)}, worker {fmt(cpu.get('worker'), 3)}, "
            f"clients {fmt(cpu.get('clients'), 3)}"
        )
        top = list(result["redis_commands_per_post"].items())[:8]
        print("  redis cmds / post       " + ", ".join(f"{k} {v}" for k, v in top))
        self.print_noise(result["other_processes_cpu"])
        return result

    def isolation(self):
        count, batch = self.p["isolation"]
        baseline = None
        for previous in self.results["scenarios"].get("fanout", []):
            if previous["shape"] == [count, 5]:
                baseline = previous
        if baseline is None:
            tag = f"isolation-base{self.run_id}"
            baseline, _ = self.delivery_run(tag, ["ok"] * 5, count, batch, self.p["timeout"])
            self.print_delivery(baseline, f"isolation baseline: {count:,} x 5 healthy")
        tag = "isolation"
        modes = ["ok", "ok", "ok", "hang", "fail"]
        result, subscriptions = self.delivery_run(
            tag, modes, count, batch, self.p["isolation_timeout"]
        )
        result["baseline_per_subscriber_per_s"] = baseline["per_subscriber_per_s"]
        result["isolation_ratio"] = (
            result["per_subscriber_per_s"] / baseline["per_subscriber_per_s"]
        )
        result["read_timeout_seconds"] = self.fleet.read_timeout
        self.print_delivery(
            result,
            f"isolation: {count:,} messages x 5 subscribers (3 healthy, 1 hangs, 1 answers 500)",
        )
        print(
            f"  healthy/sub deliveries/s {fmt(result['per_subscriber_per_s'], 1):>9}   "
            f"{fmt(result['isolation_ratio'] * 100, 1)}% of all-healthy "
            f"({fmt(baseline['per_subscriber_per_s'], 1)}/s per subscriber); "
            f"webhook read timeout {self.fleet.read_timeout} s; requests seen: "
            f"{result['requests_by_mode']}"
        )
        self.results["scenarios"]["isolation"] = result
        # Hung deliveries and retries would pollute what follows: kill the
        # workers, drop their tasks and the retries, unsubscribe, restart.
        self.fleet.stop_workers(timeout=2)
        self.fleet.purge()
        self.unsubscribe(tag, subscriptions)
        self.fleet.start_workers()

    def backlog(self):
        from notifier.store.storage import Storage

        total = self.p["backlog"]
        count, subs = (200, 5) if not self.args.quick else (10, 5)
        # The same fan-out once before the backlog, so "before" is a warm worker.
        _, warm_subs = self.delivery_run(
            f"backlog-warm{self.run_id}", ["ok"] * subs, count, 10, self.p["timeout"]
        )
        self.unsubscribe(f"backlog-warm{self.run_id}", warm_subs)
        self.ready()
        settle = 0.3 if self.args.quick else 1.0
        time.sleep(settle)
        before = self.fleet.monitor.snapshot()
        redis_before = self.fleet.redis.info("memory")["used_memory"]
        storage = Storage(self.fleet.redis)
        due = time.time() + 10 * 365 * 86400
        started = time.perf_counter()
        for start in range(0, total, 10_000):
            storage.schedule_retries(
                [
                    (
                        due + i,
                        {
                            "message_id": uuid.uuid4().hex,
                            "subscription_id": uuid.uuid4().hex,
                            "attempt": 1,
                        },
                    )
                    for i in range(start, min(total, start + 10_000))
                ]
            )
        scheduled_in = time.perf_counter() - started
        pending = storage.pending_retry_count()
        # Exercise the workers and the scheduler with the backlog in place.
        probe, subscriptions = self.delivery_run(
            f"backlog-probe{self.run_id}", ["ok"] * subs, count, 10, self.p["timeout"]
        )
        time.sleep(2 * settle)  # a few scheduler polls over the backlog
        after = self.fleet.monitor.snapshot()
        redis_after = self.fleet.redis.info("memory")["used_memory"]
        mon = self.fleet.monitor
        result = {
            "pending_retries": pending,
            "scheduled_in_s": scheduled_in,
            "worker_rss_mb_before": mon.rss(before, "worker") / MB,
            "worker_rss_mb_after": mon.rss(after, "worker") / MB,
            "scheduler_rss_mb_before": mon.rss(before, "scheduler") / MB,
            "scheduler_rss_mb_after": mon.rss(after, "scheduler") / MB,
            "redis_used_mb_growth": (redis_after - redis_before) / MB,
            "probe_deliveries_per_s": probe["deliveries_per_s"],
            "probe_complete": probe["complete"],
        }
        result["worker_rss_growth_mb"] = (
            result["worker_rss_mb_after"] - result["worker_rss_mb_before"]
        )
        result["scheduler_rss_growth_mb"] = (
            result["scheduler_rss_mb_after"] - result["scheduler_rss_mb_before"]
        )
        self.results["scenarios"]["backlog"] = result
        ref = self.results["reference"]
        print(
            f"\n== retry backlog: {pending:,} pending retries (far-future due), "
            f"scheduled in {fmt(scheduled_in, 2)} s, then {count} x {subs} fan-out"
        )
        print(
            f"  worker RSS MB before/after   {fmt(result['worker_rss_mb_before'], 1)} / "
            f"{fmt(result['worker_rss_mb_after'], 1)}  growth "
            f"{fmt(result['worker_rss_growth_mb'], 1)} MB   "
            f"({ratio(result['worker_rss_mb_after'], ref['rss_mb'])} of reference RSS)"
        )
        print(
            f"  scheduler RSS MB before/after {fmt(result['scheduler_rss_mb_before'], 1)} / "
            f"{fmt(result['scheduler_rss_mb_after'], 1)}  growth "
            f"{fmt(result['scheduler_rss_growth_mb'], 1)} MB"
        )
        print(f"  redis used memory growth     {fmt(result['redis_used_mb_growth'], 1)} MB")
        print(
            f"  deliveries/s with backlog    {fmt(probe['deliveries_per_s'])}   "
            f"{ratio(probe['deliveries_per_s'], ref['rate'])} of reference limit"
        )
        self.fleet.redis.delete(keys.retries())
        self.unsubscribe(f"backlog-probe{self.run_id}", subscriptions)

    # -- summary ------------------------------------------------------------

    def verdicts(self):
        ref = self.results["reference"]
        s = self.results["scenarios"]
        rows = []

        def row(name, figure, target, met):
            rows.append({"target": name, "figure": figure, "goal": target, "met": bool(met)})

        for result in s.get("fanout", []):
            if result["shape"] == [2000, 5] or self.args.quick and result is s["fanout"][0]:
                r = result["deliveries_per_s"] / ref["rate"]
                row(
                    f"fan-out {result['tag']} vs raw keep-alive limit",
                    f"{r * 100:.0f}% ({fmt(result['deliveries_per_s'])}/s of {fmt(ref['rate'])}/s)",
                    ">= 70%",
                    r >= TARGETS["fanout_ratio"],
                )
            if result["shape"] == [20000, 5] or self.args.quick and result is s["fanout"][0]:
                raw = self.results.get("httpclient") or {}
                zaqar = self.results.get("zaqar") or {}
                if raw.get("rate"):
                    r = result["deliveries_per_s"] / raw["rate"]
                    row(
                        f"fan-out {result['tag']} vs http.client limit (same run)",
                        f"{r * 100:.0f}% ({fmt(result['deliveries_per_s'])}/s of "
                        f"{fmt(raw['rate'])}/s)",
                        ">= 40%",
                        r >= TARGETS["fanout_httpclient_ratio"],
                    )
                if zaqar.get("rate"):
                    r = result["deliveries_per_s"] / zaqar["rate"]
                    row(
                        f"fan-out {result['tag']} vs Zaqar (same run)",
                        f"{r:.2f}x ({fmt(result['deliveries_per_s'])}/s vs {fmt(zaqar['rate'])}/s)",
                        ">= 6x",
                        r >= TARGETS["fanout_zaqar_ratio"],
                    )
                cpu = (result["cpu_per_1k"] or {}).get("worker")
                if cpu is not None:
                    row(
                        f"fan-out {result['tag']} worker CPU-ms per delivery",
                        f"{cpu:.3f}",
                        "<= 0.16",
                        cpu <= TARGETS["worker_cpu_ms"],
                    )
                cmds = sum(result["redis_commands_per_delivery"].values())
                row(
                    f"fan-out {result['tag']} Redis commands per delivery",
                    f"{cmds:.2f}",
                    "<= 4",
                    cmds <= TARGETS["redis_commands"],
                )
                redis_cpu = result["cpu_per_1k"].get("redis")
                if redis_cpu is not None:
                    row(
                        f"fan-out {result['tag']} Redis CPU-ms per delivery",
                        f"{redis_cpu:.4f}",
                        "<= 0.015",
                        redis_cpu <= TARGETS["redis_cpu_ms"],
                    )
            if result["shape"] == [2000, 5] or self.args.quick and result is s["fanout"][0]:
                row(
                    f"fan-out {result['tag']} absolute",
                    f"{fmt(result['deliveries_per_s'])}/s "
                    f"({result['deliveries_per_s'] / 500:.1f}x Zaqar's ~500/s)",
                    ">= 3,000/s (6x)",
                    result["deliveries_per_s"] >= TARGETS["fanout_absolute"],
                )
        if "latency" in s:
            p99 = s["latency"]["latency_ms"][99]
            row(
                f"latency p99 at {s['latency']['target_rate']} deliveries/s",
                f"{fmt(p99, 1)} ms",
                "<= 100 ms",
                p99 <= TARGETS["latency_p99_ms"] and s["latency"]["complete"],
            )
            fast = s["latency"].get("fast")
            if fast:
                p99 = fast["latency_ms"][99]
                row(
                    f"latency p99 at {fast['target_rate']} deliveries/s",
                    f"{fmt(p99, 1)} ms",
                    "<= 250 ms",
                    p99 <= TARGETS["latency_fast_p99_ms"] and fast["complete"],
                )
        for phase in s.get("ingest", []):
            mode = "workers paused" if phase["workers_paused"] else "workers running"
            if phase["batch"] == 1:
                row(
                    f"ingest single-message posts ({mode})",
                    f"{fmt(phase['posts_per_s'])} posts/s",
                    ">= 2,000/s",
                    phase["posts_per_s"] >= TARGETS["ingest_posts"],
                )
            else:
                row(
                    f"ingest {phase['batch']}-message posts ({mode})",
                    f"{fmt(phase['messages_per_s'])} msgs/s",
                    ">= 10,000/s",
                    phase["messages_per_s"] >= TARGETS["ingest_messages"],
                )
        if "isolation" in s:
            r = s["isolation"]["isolation_ratio"]
            row(
                "isolation: healthy throughput vs all-healthy",
                f"{r * 100:.1f}%",
                ">= 90%",
                r >= TARGETS["isolation_ratio"],
            )
        if "backlog" in s:
            growth = s["backlog"]["worker_rss_growth_mb"]
            row(
                f"retry backlog ({s['backlog']['pending_retries']:,}): worker RSS growth",
                f"{fmt(growth, 1)} MB",
                "< 50 MB",
                growth < TARGETS["backlog_rss_mb"],
            )
        return rows

    def summary(self):
        rows = self.verdicts()
        self.results["targets"] = rows
        print(
            "\n== targets (issue 4) and issue 21"
            + (" -- QUICK run: sizes too small to judge" if self.args.quick else "")
        )
        for r in rows:
            print(
                f"  {'MET   ' if r['met'] else 'MISSED'}  {r['target']}: {r['figure']} "
                f"(goal {r['goal']})"
            )


def machine():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import hashlib
    import subprocess

    import psutil

    def git(*args):
        try:
            return subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=20
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return ""

    head = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    dirty = git(
        "status", "--porcelain", "--untracked-files=no", "--", "notifier", "workers"
    ).strip()
    if dirty:  # name the uncommitted state of the code under test
        digest = hashlib.sha1(git("diff", "HEAD", "--", "notifier", "workers").encode())
        head += f"+uncommitted({digest.hexdigest()[:8]})"
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "code": head,
        "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "python": sys.version.split()[0],
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def setting(text):
    name, sep, value = text.partition("=")
    section, dot, option = name.partition(".")
    if not sep or not dot or not section or not option:
        raise argparse.ArgumentTypeError(f"{text!r} is not SECTION.OPTION=VALUE")
    return section, option, value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenario", default="all", choices=SCENARIOS + ["all"])
    parser.add_argument(
        "--workers",
        type=int,
        default=2 * (os.cpu_count() or 1),
        help="worker (pool) processes; also the number of "
        "reference loops (default: twice the cores, as "
        "`notifier worker` runs)",
    )
    parser.add_argument(
        "--layout",
        choices=["pool", "split"],
        default="pool",
        help="pool: one worker with --concurrency N; split: N workers with --concurrency 1",
    )
    parser.add_argument(
        "--endpoints",
        choices=["distinct", "shared"],
        default="distinct",
        help="distinct: each subscriber is its own endpoint (its own "
        "loopback address on the sink); shared: every "
        "subscriber posts to one host:port",
    )
    parser.add_argument(
        "--api-workers", type=int, default=2, help="gunicorn worker processes of the API"
    )
    parser.add_argument(
        "--shapes",
        metavar="MxS,...",
        help="fan-out shapes, messages x subscribers (default 2000x5,200x50,20x500)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        type=setting,
        metavar="SECTION.OPTION=VALUE",
        help="extra notifier configuration for every role, e.g. "
        "notification.deliveries_per_task=50 (repeatable)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes: keeps the harness working (smoke test)"
    )
    parser.add_argument(
        "--ingest-client",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="ingest load generator: wrk (C; auto when on PATH, "
        "`apt-get install wrk`) or Python http.client processes",
    )
    parser.add_argument(
        "--zaqar",
        choices=["on", "off"],
        help="measure Zaqar's NotifierDriver in the same run (default: on, off with --quick); "
        "zaqar is installed on first use into a side virtualenv under ~/.cache/notifier-bench",
    )
    parser.add_argument("--json", help="also write every figure to this JSON file")
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="py-spy the worker tree during the first fan-out and "
        "the API during single-message ingest",
    )
    parser.add_argument(
        "--profile-idle",
        action="store_true",
        help="with --profile: also sample waiting threads (where wall time goes, not only CPU)",
    )
    parser.add_argument(
        "--records",
        metavar="DIR",
        help="write each delivery scenario's raw sink records "
        "[mode, sub, received, posted, seq] to DIR/TAG.json",
    )
    parser.add_argument(
        "--redis-trace",
        metavar="FILE",
        help="log every Redis command's time (SLOWLOG at 0 us: slows Redis down) during "
        "each delivery scenario; write where Redis's time goes, by command and script, "
        "to FILE (JSON, one entry per scenario)",
    )
    parser.add_argument(
        "--keep-logs",
        action="store_true",
        help="keep the temporary directory with every process's log",
    )
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.zaqar is None:
        args.zaqar = "off" if args.quick else "on"
    selected = SCENARIOS if args.scenario == "all" else [args.scenario]
    if "memory" in selected:
        args.set += [s for s in MEMORY_SETTINGS if not any(s[:2] == t[:2] for t in args.set)]
    info = machine()
    print(
        f"notifier bench: {' '.join(selected)}; {args.workers} worker process(es), "
        f"layout {args.layout}, {args.api_workers} API worker(s), "
        f"{args.endpoints} endpoints"
        + "".join(f", {a}.{b}={c}" for a, b, c in args.set)
        + (", QUICK" if args.quick else "")
    )
    print(
        f"machine: {info['nproc']} cores, {info['cpu_model']}, "
        f"{info['memory_gb']} GB, Python {info['python']}, load average "
        f"{' '.join(str(x) for x in info['loadavg_at_start'])}; code {info['code']}"
    )
    started = time.monotonic()
    with Fleet(
        workers=args.workers,
        layout=args.layout,
        api_workers=args.api_workers,
        quick=args.quick,
        keep_logs=args.keep_logs,
        endpoints=args.endpoints,
        settings=args.set,
    ) as fleet:
        if args.keep_logs:
            print(f"logs: {fleet.tmp}")
        bench = Bench(fleet, args)
        bench.results["machine"] = info
        bench.results["args"] = vars(args)
        bench.warm_up()
        bench.reference()
        for name in selected:
            began = time.monotonic()
            getattr(bench, name)()
            print(f"  ({name} took {time.monotonic() - began:.1f} s)")
        bench.summary()
    print(f"\ndone in {time.monotonic() - started:.0f} s")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(bench.results, handle, indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
