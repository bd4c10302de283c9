"""Run notifier roles as real child processes for integration and e2e tests."""

import os
import signal as signals
import subprocess
import sys
import time

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def write_config(path, redis_url, port=8888, extra=""):
    with open(path, "w") as handle:
        handle.write(
            f"[DEFAULT]\nredis_url = {redis_url}\n"
            f"[api]\nbind_host = 127.0.0.1\nbind_port = {port}\nworkers = 1\n"
            f"[notification]\nwebhook_connect_timeout_seconds = 2\n"
            f"webhook_read_timeout_seconds = 2\n"
            f"[webhook]\nallowed_networks = 127.0.0.1/32\n"
            f"[metrics]\nworker_port = 0\n"
            f"[worker]\nunacked_restore_interval_seconds = 1\n{extra}"
        )
    return path


class Role:
    """One `notifier <role>` child process."""

    def __init__(self, role, config_file, *extra_args, log_path=None):
        self.args = [
            sys.executable,
            "-m",
            "notifier.cli",
            role,
            "--config-file",
            config_file,
            *extra_args,
        ]
        self.log_path = log_path
        self.process = None

    def start(self):
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            self.args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        return self

    def signal(self, signum):
        self.process.send_signal(signum)

    def kill_group(self, signum=signals.SIGKILL):
        """Signal the role and every child it forked (a worker's pool)."""
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass

    def stop(self, timeout=20):
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signals.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        self.kill_group()
        self.process.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def wait_http_ok(url, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")
