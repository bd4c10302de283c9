"""A real Redis Sentinel on 127.0.0.1 watching a real master, for the tests."""

import subprocess
import tempfile
from pathlib import Path

import redis

from notifier.cli.redis_server import find_redis_server, free_port, stop_process
from tests.support.waiting import wait_until

MASTER_NAME = "mymaster"


class RedisSentinel:
    """``redis-server --sentinel`` monitoring ``master_port`` as ``MASTER_NAME``.

    Quorum 1 and short timeouts, so a ``SENTINEL FAILOVER`` takes a second or
    two. ``auth_pass`` is the master's password, ``password`` the sentinel's.
    """

    def __init__(self, master_port, auth_pass=None, password=None):
        self.port = free_port()
        self.master_port = master_port
        self.auth_pass = auth_pass
        self.password = password
        self._tmp = tempfile.TemporaryDirectory(prefix="notifier-sentinel-")
        self.process = None

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def client(self):
        return redis.Redis(
            port=self.port, password=self.password, decode_responses=True, socket_timeout=2
        )

    def start(self, timeout=10):
        config = Path(self._tmp.name) / "sentinel.conf"
        lines = [
            f"port {self.port}",
            "bind 127.0.0.1",
            "protected-mode no",
            f"dir {self._tmp.name}",
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master_port} 1",
            f"sentinel down-after-milliseconds {MASTER_NAME} 1000",
            f"sentinel failover-timeout {MASTER_NAME} 5000",
            f"sentinel parallel-syncs {MASTER_NAME} 1",
        ]
        if self.auth_pass:
            lines.append(f"sentinel auth-pass {MASTER_NAME} {self.auth_pass}")
        if self.password:
            lines.append(f"requirepass {self.password}")
        config.write_text("\n".join(lines) + "\n")
        self.process = subprocess.Popen(
            [find_redis_server(), str(config), "--sentinel", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = self.client()
        if not wait_until(lambda: self._master_known(client), timeout, 0.05):
            self.close()
            raise RuntimeError("redis sentinel did not start in time")
        return self

    def _master_known(self, client):
        if self.process.poll() is not None:
            raise RuntimeError(f"redis sentinel exited with {self.process.returncode}")
        try:
            return client.sentinel_get_master_addr_by_name(MASTER_NAME) is not None
        except redis.exceptions.RedisError:
            return False

    def master_port_now(self):
        """Return the port of the master the sentinel names at the moment."""
        return int(self.client().sentinel_get_master_addr_by_name(MASTER_NAME)[1])

    def close(self):
        stop_process(self.process)
        self._tmp.cleanup()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
