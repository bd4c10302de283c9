"""The fleet as a user meets it: API, worker and scheduler as separate processes."""

import pytest

from notifier.cli.redis_server import free_port
from tests.support.processes import Role, wait_http_ok, write_config


class Fleet:
    def __init__(self, tmp_path, redis_url, extra_conf=""):
        self.port = free_port()
        self.config = write_config(
            str(tmp_path / "notifier.conf"), redis_url, port=self.port, extra=extra_conf
        )
        self.logs = tmp_path
        self.roles = {}

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/v2"

    def start(self, *names):
        for name in names:
            self.roles[name] = Role(
                name, self.config, log_path=str(self.logs / f"{name}.log")
            ).start()
        if "api" in names:
            wait_http_ok(self.url + "/ping")
        return self

    def stop(self):
        for role in self.roles.values():
            role.stop()


@pytest.fixture(scope="module")
def fleet(redis_server, tmp_path_factory):
    running = Fleet(tmp_path_factory.mktemp("fleet"), redis_server.url)
    running.start("api", "worker", "scheduler")
    yield running
    running.stop()
