"""`notifier dev` tells the truth: ready only when every role is, loud and non-zero when one dies.

Each test runs the real command (a private Redis, gunicorn, a Celery worker,
the scheduler) and acts on it as a user or the kernel would: Ctrl-C, a
SIGKILL, a typo in the configuration.
"""

import os
import signal
import socket
import subprocess
import sys

import psutil
import pytest
import requests

from notifier.cli.redis_server import free_port
from tests.support.dev import DevProcess, none_alive
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


def dev(tmp_path, *extra_args, conf_text=""):
    conf = tmp_path / "extra.conf"
    conf.write_text(conf_text)
    argv = [sys.executable, "-m", "notifier.cli", "dev", "--port", str(free_port())]
    argv += ["--concurrency", "1", "--config-file", str(conf), *extra_args]
    return DevProcess(argv, cwd=tmp_path)


def role_process(proc, role):
    """The top process of one role (`python -m notifier.cli <role>`)."""
    for child in proc.descendants():
        try:
            cmdline = child.cmdline()
        except psutil.NoSuchProcess:
            continue
        if cmdline[2:4] == ["notifier.cli", role]:
            return child
    raise AssertionError(f"no {role} process under notifier dev")


def test_the_ready_line_comes_after_every_role_is_ready_and_ctrl_c_exits_0_leaving_nothing(
    tmp_path, receiver
):
    proc = dev(tmp_path)
    try:
        assert proc.wait_ready(), proc.output()
        # Ready means ready: the API answers and both heartbeat files exist.
        assert requests.get(proc.api + "/health", timeout=5).status_code == 200
        roles = {role: role_process(proc, role) for role in ("api", "worker", "scheduler")}
        workdir = next(
            arg.rsplit("/", 1)[0] for arg in roles["api"].cmdline() if arg.endswith("dev.conf")
        )
        assert sorted(os.listdir(workdir)) == [
            "dev.conf",
            "scheduler.heartbeat",
            "worker.heartbeat",
        ]
        # And it delivers.
        proc.call(
            "POST",
            "/queues/q/subscriptions",
            body={"subscriber": receiver.url + "/dev", "ttl": 3600, "options": {}},
        )
        proc.call("POST", "/queues/q/messages", body={"messages": [{"ttl": 60, "body": 1}]})
        assert receiver.wait_for(1, "/dev")
        # redis-server, api (+ its worker), worker (+ pool), scheduler
        assert len(proc.descendants()) >= 4
        proc.stop_with_ctrl_c()
    except BaseException:
        proc.kill()
        raise
    assert not os.path.exists(workdir)


def test_a_role_killed_after_start_is_named_its_last_lines_shown_the_rest_stopped_and_exit_is_1(
    tmp_path,
):
    proc = dev(tmp_path)
    try:
        assert proc.wait_ready(), proc.output()
        everything = proc.descendants()
        role_process(proc, "worker").send_signal(signal.SIGKILL)
        code = proc.wait_exit(timeout=90)
    except BaseException:
        proc.kill()
        raise
    assert code == 1, proc.output()
    output = proc.output()
    assert "notifier dev: the worker exited with status -9; stopping the other roles." in output
    assert "--- last lines of the worker ---" in output
    assert wait_until(lambda: none_alive(everything), timeout=10)


def test_a_role_that_cannot_start_means_no_ready_line_and_a_non_zero_exit_naming_it(tmp_path):
    # A typo only the worker reads: the API and the scheduler would start fine.
    proc = dev(tmp_path, conf_text="[worker]\npool = prefrok\n")
    try:
        assert proc.wait_ready() is False
        code = proc.wait_exit(timeout=90)
    except BaseException:
        proc.kill()
        raise
    output = proc.output()
    assert code == 1, output
    assert "notifier dev: the worker exited with status 1 before it was ready" in output
    assert "prefrok" in output.split("--- last lines of the worker ---", 1)[1]
    assert "notifier is running" not in output


def test_ctrl_c_before_ready_still_exits_0_and_stops_everything(tmp_path):
    proc = dev(tmp_path)
    try:
        assert wait_until(lambda: len(proc.descendants()) >= 3, timeout=60)
        everything = proc.descendants()
        code = proc.interrupt()
    except BaseException:
        proc.kill()
        raise
    assert code == 0, proc.output()
    assert wait_until(lambda: none_alive(everything), timeout=10)


@pytest.mark.parametrize(
    ("role", "conf_text"),
    [
        ("worker", "[worker]\npool = prefrok\n"),
        ("scheduler", "[DEFAULT]\nredis_url = rediss-typo://127.0.0.1:1/0\n"),
        ("api", "[api]\nbind_port = {busy}\n"),
    ],
)
def test_a_role_that_cannot_start_exits_non_zero_as_a_container_would(tmp_path, role, conf_text):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        conf = tmp_path / "role.conf"
        conf.write_text(conf_text.format(busy=busy.getsockname()[1]))
        result = subprocess.run(
            [sys.executable, "-m", "notifier.cli", role, "--config-file", str(conf)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode != 0, result.stdout + result.stderr
