"""Polling helper shared by the tests that wait on other processes."""

import time


def wait_until(predicate, timeout=30, interval=0.1):
    """Poll ``predicate`` until it is truthy or ``timeout`` passes; return it."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)
