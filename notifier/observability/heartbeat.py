"""Heartbeat files: a cheap liveness signal for container health checks
(`celery inspect ping` costs ~0.45 s and a broadcast per probe)."""

import os
import time


class Heartbeat:
    """Touch a file at most every ``interval_seconds``; no-op without a path."""

    def __init__(self, path, interval_seconds=5.0):
        self.path = path
        self.interval = interval_seconds
        self._last = 0.0

    def beat(self):
        if not self.path:
            return
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        self._last = now
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        with open(self.path, "a"):
            os.utime(self.path, None)


def is_fresh(path, max_age_seconds):
    try:
        return time.time() - os.path.getmtime(path) < max_age_seconds
    except OSError:
        return False
