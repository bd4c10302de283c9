"""Drive `notifier dev` (or `./scripts/dev`) as a user does: start, wait for the ready line, Ctrl-C."""

import json
import os
import queue
import re
import signal
import subprocess
import threading
import time
import uuid

import psutil
import requests

from tests.support.waiting import wait_until

READY = re.compile(r"notifier is running: API at (?P<api>http://\S+/v2) \(Redis (?P<redis>\S+)\)")
CLIENT_ID = str(uuid.UUID(int=1))


class DevProcess:
    """A `notifier dev` command whose output is read line by line."""

    def __init__(self, argv, cwd=None, env=None):
        self.process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self.lines = []
        self._queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.api = None
        self.redis_url = None

    def _read(self):
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            self._queue.put(line)
        self._queue.put(None)

    def output(self):
        return "\n".join(self.lines)

    def wait_ready(self, timeout=300):
        """Return True once the ready line is printed, False if the command ends first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                return False
            found = READY.search(line)
            if found:
                self.api, self.redis_url = found["api"], found["redis"]
                return True
        raise AssertionError(f"no ready line after {timeout} s:\n{self.output()}")

    def wait_exit(self, timeout=120):
        """Return the exit status once the command ended and its output is read."""
        code = self.process.wait(timeout)
        self._reader.join(10)
        return code

    def descendants(self):
        """Every process started under this command, alive now."""
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def interrupt(self, timeout=120):
        """Ctrl-C, as a terminal sends it; return the exit status."""
        self.process.send_signal(signal.SIGINT)
        return self.wait_exit(timeout)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *_):
        if exc_type is not None:  # a failed test leaves nothing running
            self.kill()

    def stop_with_ctrl_c(self):
        """Ctrl-C: assert it exits 0 and every process it started is gone."""
        everything = self.descendants()
        assert self.interrupt() == 0, self.output()
        assert wait_until(lambda: none_alive(everything), timeout=10), [
            p.pid for p in everything if p.is_running()
        ]

    def kill(self):
        for child in self.descendants():
            child.kill()
        self.process.kill()
        self.process.wait()

    # -- the API, as a user calls it ---------------------------------------------------------

    def call(self, method, path, project="demo", body=None, expect=(200, 201, 204)):
        response = requests.request(
            method,
            self.api + path,
            headers={"X-Project-ID": project, "Client-ID": CLIENT_ID},
            data=None if body is None else json.dumps(body),
            timeout=30,
        )
        assert response.status_code in expect, (response.status_code, response.text)
        return response


def none_alive(processes):
    """True if none of ``processes`` (psutil.Process) still runs (zombies count as gone)."""
    for proc in processes:
        try:
            if proc.status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            continue
    return True


def env_without(*names):
    return {k: v for k, v in os.environ.items() if k not in names}
