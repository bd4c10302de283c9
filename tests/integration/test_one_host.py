"""Several workers and API processes on one host, metrics settings left at
their defaults: no port clash (a taken port moves to the next, announced in
the log), no role deleting another's multiprocess files, no shared gunicorn
control socket. Real processes, real HTTP."""

import os
import re

import pytest
import requests

from notifier.cli.redis_server import free_port
from tests.support.processes import Role, wait_http_ok, write_config
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

ANNOUNCED = re.compile(r"worker metrics on http://127\.0\.0\.1:(\d+)/metrics")


def announced_port(log_path):
    try:
        with open(log_path, encoding="utf-8", errors="replace") as handle:
            found = ANNOUNCED.search(handle.read())
    except OSError:
        return None
    return int(found.group(1)) if found else None


def start_roles(tmp_path, redis_server, metrics_conf):
    """Two APIs and two workers with one config; return (roles, api ports, logs)."""
    roles, api_ports, worker_logs = [], [], []
    for n in (1, 2):
        port = free_port()
        config = write_config(
            str(tmp_path / f"api{n}.conf"),
            redis_server.url,
            port=port,
            extra=metrics_conf,
        )
        roles.append(Role("api", config, log_path=str(tmp_path / f"api{n}.log")).start())
        api_ports.append(port)
    config = write_config(str(tmp_path / "worker.conf"), redis_server.url, extra=metrics_conf)
    for n in (1, 2):
        log = str(tmp_path / f"worker{n}.log")
        roles.append(Role("worker", config, log_path=log).start())
        worker_logs.append(log)
    return roles, api_ports, worker_logs


@pytest.fixture
def private_home(tmp_path, monkeypatch):
    """The roles' HOME, where gunicorn would put its control socket."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    return home


# write_config turns worker metrics off (worker_port = 0) for the other
# tests; these put the default back, last value wins.
DEFAULT_METRICS = "[metrics]\nworker_port = 9102\n"


def test_two_workers_and_two_apis_on_one_host_all_serve_metrics(
    tmp_path, redis_server, private_home
):
    roles, api_ports, worker_logs = start_roles(tmp_path, redis_server, DEFAULT_METRICS)
    try:
        for port in api_ports:
            wait_http_ok(f"http://127.0.0.1:{port}/v2/ping")
        assert wait_until(lambda: all(announced_port(log) for log in worker_logs), 30)
        ports = [announced_port(log) for log in worker_logs]
        assert len(set(ports)) == 2  # each its own
        for port in ports:
            response = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
            assert response.status_code == 200
            assert "notifier_fanout_size_count" in response.text
        for port in api_ports:
            response = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
            assert response.status_code == 200
            assert "notifier_open_breakers" in response.text
        assert all(role.process.poll() is None for role in roles)
        assert not (private_home / ".gunicorn").exists()  # no control socket to share
    finally:
        for role in roles:
            role.stop()


def test_roles_sharing_a_multiprocess_dir_keep_their_own_files(
    tmp_path, redis_server, private_home
):
    shared = tmp_path / "prom"
    conf = DEFAULT_METRICS + f"multiprocess_dir = {shared}\n"
    roles, api_ports, worker_logs = start_roles(tmp_path, redis_server, conf)
    try:
        for port in api_ports:
            wait_http_ok(f"http://127.0.0.1:{port}/v2/ping")
        assert wait_until(lambda: all(announced_port(log) for log in worker_logs), 30)
        mine = {role.process.pid for role in roles}
        found = {int(name.rsplit("-", 1)[1]): name for name in os.listdir(shared)}
        assert set(found) == mine  # every process its directory, none deleted
        assert sorted(name.split("-", 1)[0] for name in found.values()) == [
            "api",
            "api",
            "worker",
            "worker",
        ]
        for port in api_ports:
            response = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
            assert response.status_code == 200
    finally:
        for role in roles:
            role.stop()
    assert wait_until(lambda: os.listdir(shared) == [], 10)  # removed at exit
