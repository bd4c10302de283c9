"""`notifier dev`: run every role as a child process and tell the truth about them.

The ready line is printed only once every role is ready: the API answers
``/v2/health`` with 200 and the worker and the scheduler have written their
heartbeat files. If a role exits, the supervisor names it, prints its last log
lines, stops the others and exits non-zero. Ctrl-C (SIGINT) or SIGTERM stops
everything and exits 0.

Each role runs in its own session, so a terminal's Ctrl-C reaches only the
supervisor, which then stops the roles in order; each role also gets SIGTERM
from the kernel if the supervisor itself dies (Linux), and each role's whole
process group (Celery's pool, gunicorn's workers) is killed if it lingers.
"""

from __future__ import annotations

import collections
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

LAST_LINES = 30
STOP_GRACE_SECONDS = 20.0
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a child before exec: get SIGTERM when the parent dies (Linux only)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the supervisor still stops roles
        pass


class Stop(Exception):
    """The user asked to stop (Ctrl-C or SIGTERM)."""


@dataclass
class Role:
    """One child process: its command, readiness check and recent output."""

    name: str
    argv: Sequence[str]
    is_ready: Callable[[], bool]
    lines: collections.deque[str] = field(
        default_factory=lambda: collections.deque(maxlen=LAST_LINES)
    )
    process: subprocess.Popen[bytes] | None = None

    def start(self, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            list(self.argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,
            env=env,
        )
        threading.Thread(target=self._pump, name=f"{self.name}-output", daemon=True).start()

    def _pump(self) -> None:
        """Echo the role's output with its name, keeping the last lines."""
        assert self.process is not None and self.process.stdout is not None
        for raw in iter(self.process.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.append(line)
            print(f"{self.name:9} | {line}", flush=True)

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def stop(self) -> None:
        """SIGTERM the role; kill its whole process group if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            pass
        try:  # the pool children of Celery, gunicorn's workers
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()


class Supervisor:
    """Start roles, wait until all are ready, then watch them."""

    def __init__(self, roles: Sequence[Role], poll_seconds: float = 0.2):
        self.roles = list(roles)
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()

    def run(self, ready_line: str, ready_timeout_seconds: float) -> int:
        """Return the exit status for `notifier dev`."""
        previous = {
            signum: signal.signal(signum, self._request_stop)
            for signum in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            for role in self.roles:
                role.start()
            if not self._wait_until_ready(ready_timeout_seconds):
                return 1
            print(ready_line, flush=True)
            return self._watch()
        except Stop:
            return 0
        finally:
            for role in reversed(self.roles):
                role.stop()
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _request_stop(self, *_: object) -> None:
        self._stop.set()

    def _check(self) -> Role | None:
        """Raise Stop if asked to; return a role that has exited, if any."""
        if self._stop.is_set():
            raise Stop
        return next((r for r in self.roles if r.exit_code() is not None), None)

    def _wait_until_ready(self, timeout_seconds: float) -> bool:
        deadline = time.monotonic() + timeout_seconds
        waiting = list(self.roles)
        while waiting:
            dead = self._check()
            if dead is not None:
                self._report_exit(dead, "before it was ready")
                return False
            waiting = [r for r in waiting if not r.is_ready()]
            if time.monotonic() > deadline:
                names = ", ".join(r.name for r in waiting)
                print(
                    f"notifier dev: not ready after {timeout_seconds:.0f} s: {names}",
                    file=sys.stderr,
                    flush=True,
                )
                for role in waiting:
                    self._print_last_lines(role)
                return False
            self._stop.wait(self.poll_seconds)
        return True

    def _watch(self) -> int:
        while True:
            dead = self._check()
            if dead is not None:
                self._report_exit(dead, "")
                return 1
            self._stop.wait(self.poll_seconds)

    def _report_exit(self, role: Role, when: str) -> None:
        # Let the output pump catch up with the role's last words.
        time.sleep(0.3)
        text = f"notifier dev: the {role.name} exited with status {role.exit_code()}"
        text += f" {when}" if when else ""
        print(f"{text}; stopping the other roles.", file=sys.stderr, flush=True)
        self._print_last_lines(role)

    @staticmethod
    def _print_last_lines(role: Role) -> None:
        print(f"--- last lines of the {role.name} ---", file=sys.stderr)
        for line in role.lines:
            print(f"    {line}", file=sys.stderr)
        print("---", file=sys.stderr, flush=True)


def http_ok(url: str) -> Callable[[], bool]:
    """A readiness check: GET ``url`` answers 200."""

    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    return check


def file_exists(path: str) -> Callable[[], bool]:
    """A readiness check: the heartbeat file at ``path`` has been written."""
    return lambda: os.path.exists(path)
