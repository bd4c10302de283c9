"""Start and watch the processes of a benchmark run: redis-server, the sink,
`notifier api`, `notifier worker` (one or several) and `notifier scheduler`.

Everything listens on 127.0.0.1 on free ports, logs into a temporary
directory, and is stopped (process group by process group, by pid) when the
fleet closes.
"""

import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

import psutil
import redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from notifier.cli.redis_server import RedisServer, free_port  # noqa: E402
from notifier.store import keys  # noqa: E402

BROKER_QUEUES = ("notifier.fanout", "notifier.deliver")


class Proc:
    """One child process in its own session (so its pool children can be
    signalled with it), output to a log file."""

    def __init__(self, name, args, log_path, env=None):
        self.name = name
        self.args = args
        self.log_path = log_path
        self.env = env
        self.process = None

    def start(self):
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            self.args,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=self.env,
        )
        log.close()
        return self

    @property
    def pid(self):
        return self.process.pid

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def tree(self):
        """psutil.Process objects of this process and its descendants."""
        try:
            root = psutil.Process(self.process.pid)
            return [root] + root.children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def stop(self, timeout=15):
        if not self.alive():
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        try:  # the role and anything it forked (a worker's pool children)
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            pass


def tree_usage(procs):
    """Return {pid: (cpu seconds, rss bytes)} over the trees of ``procs``."""
    usage = {}
    for proc in procs:
        for p in proc.tree():
            try:
                with p.oneshot():
                    times = p.cpu_times()
                    usage[p.pid] = (times.user + times.system, p.memory_info().rss)
            except psutil.NoSuchProcess:
                pass
    return usage


class Monitor:
    """Sample RSS of process groups in the background; CPU by snapshots.

    ``groups`` maps a name ("worker", "api", ...) to a callable returning the
    Procs of that group (a callable, because workers may be restarted).
    """

    def __init__(self, groups, interval=0.2):
        self.groups = groups
        self.interval = interval
        self._peaks = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def close(self):
        self._stop.set()
        self._thread.join(5)

    def _run(self):
        while not self._stop.wait(self.interval):
            for name, procs in self.groups.items():
                try:
                    rss = sum(r for _, r in tree_usage(procs()).values())
                except Exception:  # a process went away mid-sample
                    continue
                with self._lock:
                    if rss > self._peaks.get(name, 0):
                        self._peaks[name] = rss

    def reset_peaks(self):
        with self._lock:
            self._peaks = {}

    def peaks(self):
        with self._lock:
            return dict(self._peaks)

    def snapshot(self):
        """{group: {pid: (cpu, rss)}}, to diff with cpu_between().

        Two extra groups measure noise: ``_system`` (busy CPU seconds of the
        whole machine) and ``_bench`` (this process and everything it
        started); their difference is what other processes used.
        """
        snap = {name: tree_usage(procs()) for name, procs in self.groups.items()}
        times = psutil.cpu_times()
        busy = sum(times) - times.idle - getattr(times, "iowait", 0.0)
        snap["_system"] = {0: (busy, 0)}
        snap["_bench"] = tree_usage([_Wrapped(psutil.Process(os.getpid()))])
        snap["_wall"] = {0: (time.monotonic(), 0)}
        return snap

    @staticmethod
    def foreign(cpu):
        """(CPU seconds used by processes outside the bench, share of the
        machine's cores over the interval) from a cpu_between() result."""
        other = max(0.0, cpu.get("_system", 0.0) - cpu.get("_bench", 0.0))
        wall = cpu.get("_wall", 0.0)
        return other, (other / (wall * (os.cpu_count() or 1)) if wall > 0 else 0.0)

    @staticmethod
    def cpu_between(before, after):
        """CPU seconds per group between two snapshots (new pids count from 0)."""
        spent = {}
        for name, now in after.items():
            then = before.get(name, {})
            spent[name] = sum(cpu - then.get(pid, (0, 0))[0] for pid, (cpu, _) in now.items())
        return spent

    @staticmethod
    def rss(snapshot, name):
        return sum(r for _, r in snapshot.get(name, {}).values())


class Fleet:
    """Redis, sink, API, workers and scheduler for one benchmark run."""

    def __init__(
        self,
        workers=2,
        layout="pool",
        api_workers=2,
        quick=False,
        read_timeout=None,
        keep_logs=False,
        endpoints="distinct",
        max_subscribers=1000,
        settings=(),
    ):
        self.workers = workers
        self.layout = layout
        self.api_workers = api_workers
        self.quick = quick
        self.read_timeout = read_timeout or (2 if quick else 10)
        self.keep_logs = keep_logs
        self.endpoints = endpoints
        self.max_subscribers = max_subscribers
        self.settings = list(settings)  # ("section", "option", "value")
        self.tmp = tempfile.mkdtemp(prefix="notifier-bench-")
        self.redis_server = None
        self.sink = None
        self.api = None
        self.worker_procs = []
        self.scheduler = None
        self.api_port = free_port()
        self.sink_port = free_port()
        self.config = os.path.join(self.tmp, "notifier.conf")
        self.monitor = None

    # -- lifecycle --------------------------------------------------------

    def start(self):
        self.redis_server = RedisServer(directory=os.path.join(self.tmp, "redis"))
        self.redis_server.start()
        self.redis = redis.Redis.from_url(self.redis_server.url, decode_responses=True)
        self._write_config()
        endpoints = self.max_subscribers if self.endpoints == "distinct" else 0
        self.sink = Proc(
            "sink",
            [
                sys.executable,
                os.path.join(ROOT, "bench", "sink.py"),
                "--port",
                str(self.sink_port),
                "--endpoints",
                str(endpoints),
            ],
            self._log("sink"),
        ).start()
        self.api = self._role("api").start()
        self.start_workers()
        self.scheduler = self._role("scheduler").start()
        self._wait(lambda: self._get(self.sink_port, "/_stats") is not None, "sink")
        self._wait(lambda: self._get(self.api_port, "/v2/ping", raw=True) is not None, "API")
        self.monitor = Monitor(
            {
                "worker": lambda: list(self.worker_procs),
                "api": lambda: [self.api],
                "scheduler": lambda: [self.scheduler],
                "redis": lambda: [_Wrapped(self.redis_server.process)],
                "sink": lambda: [self.sink],
            }
        ).start()
        return self

    def start_workers(self):
        self.worker_procs = []
        if self.layout == "pool":
            plan = [(self.workers, "worker")]
        else:  # "split": N workers of one pool process each
            plan = [(1, f"worker{i}") for i in range(self.workers)]
        pool = next((v for g, o, v in self.settings if (g, o) == ("worker", "pool")), "prefork")
        threads = pool != "prefork"
        for concurrency, name in plan:
            if threads:  # one threads worker per process: its own thread count
                concurrency = 16
            beat = os.path.join(self.tmp, f"{name}.beat")
            extra = os.path.join(self.tmp, f"{name}.conf")
            with open(extra, "w") as handle:
                handle.write(f"[worker]\nheartbeat_file = {beat}\n")
            if os.path.exists(beat):
                os.unlink(beat)
            proc = self._role(
                "worker", "--config-file", extra, "--concurrency", str(concurrency), name=name
            ).start()
            proc.beat = beat
            self.worker_procs.append(proc)
        for proc in self.worker_procs:
            self._wait(lambda p=proc: os.path.exists(p.beat), proc.name, timeout=60)
            # the pool children exist once the consumer runs (threads: none)
            if not threads:
                self._wait(lambda p=proc: len(p.tree()) > 1, proc.name + " pool", timeout=30)

    def stop_workers(self, timeout=3):
        for proc in self.worker_procs:
            proc.stop(timeout)

    def restart_workers(self):
        self.stop_workers()
        self.start_workers()

    def close(self):
        if self.monitor:
            self.monitor.close()
        for proc in [self.scheduler, *self.worker_procs, self.api, self.sink]:
            if proc is not None:
                proc.stop(10)
        if self.redis_server:
            self.redis_server.close()
        if not self.keep_logs:
            import shutil

            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc):
        self.close()

    # -- helpers ----------------------------------------------------------

    @property
    def api_url(self):
        return f"http://127.0.0.1:{self.api_port}/v2"

    def sink_url(self, mode, run, sub, index=None):
        """The subscriber URL of ``sub``: with distinct endpoints, subscriber
        ``index`` gets its own loopback address (its own host:port)."""
        host = "127.0.0.1"
        if index is not None and self.endpoints == "distinct":
            from bench.sink import endpoint_host

            host = endpoint_host(index % self.max_subscribers)
        return f"http://{host}:{self.sink_port}/{mode}/{run}/{sub}"

    def sink_get(self, path):
        return self._get(self.sink_port, path)

    def broker_backlog(self):
        """Tasks waiting in the broker plus tasks delivered but not acked."""
        pipe = self.redis.pipeline()
        for name in BROKER_QUEUES:
            pipe.llen(name)
        pipe.hlen("unacked")
        return sum(pipe.execute())

    def wait_idle(self, timeout=60):
        """Wait until the broker holds no task, waiting or unacknowledged."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.broker_backlog() == 0:
                return True
            time.sleep(0.1)
        return False

    def purge(self):
        """Drop every queued/unacked task and pending retry (after isolation)."""
        names = list(BROKER_QUEUES) + [
            "unacked",
            "unacked_index",
            keys.retries(),
            keys.leased_retries(),
        ]
        # per-endpoint guard state: breakers, in-flight leases, probes
        for pattern in (
            keys.breaker("*"),
            keys.open_breakers(),
            keys.inflight("*"),
            keys.probe("*"),
        ):
            names += list(self.redis.scan_iter(match=pattern, count=1000))
        self.redis.delete(*names)

    def _write_config(self):
        with open(self.config, "w") as handle:
            handle.write(
                f"[DEFAULT]\nredis_url = {self.redis_server.url}\n"
                f"[api]\nbind_host = 127.0.0.1\nbind_port = {self.api_port}\n"
                f"workers = {self.api_workers}\n"
                f"[notification]\nwebhook_connect_timeout_seconds = 2\n"
                f"webhook_read_timeout_seconds = {self.read_timeout}\n"
                f"[webhook]\nallowed_networks = 127.0.0.0/8\n"
                f"[worker]\nscheduler_heartbeat_file = "
                f"{os.path.join(self.tmp, 'scheduler.beat')}\n"
            )
            # --set overrides: a later section header wins in oslo.config
            for section, option, value in self.settings:
                handle.write(f"[{section}]\n{option} = {value}\n")

    def _log(self, name):
        return os.path.join(self.tmp, f"{name}.log")

    def _role(self, role, *extra, name=None):
        args = [sys.executable, "-m", "notifier.cli", role, "--config-file", self.config, *extra]
        return Proc(name or role, args, self._log(name or role))

    @staticmethod
    def _wait(predicate, what, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise RuntimeError(f"{what} did not come up within {timeout} s")

    @staticmethod
    def _get(port, path, raw=False, timeout=30):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
            conn.request("GET", path)
            response = conn.getresponse()
            data = response.read()
            conn.close()
        except OSError:
            return None
        if raw:
            return response.status
        return json.loads(data)


class _Wrapped:
    """Give a Popen (redis-server) or a psutil.Process the tree() interface
    of Proc (the process alone, or with its descendants)."""

    def __init__(self, popen, children=None):
        self.popen = popen
        self.children = isinstance(popen, psutil.Process) if children is None else children

    def tree(self):
        try:
            root = psutil.Process(self.popen.pid)
            return [root] + (root.children(recursive=True) if self.children else [])
        except psutil.NoSuchProcess:
            return []
