"""Zaqar's notifier as a same-run reference.

zaqar (from the package index) is installed by the bench, on first use, into
a side virtualenv under the user's cache directory
(``$XDG_CACHE_HOME/notifier-bench/zaqar-VERSION``, or ``--zaqar-venv``); it is
never a dependency of the project. ``bench/zaqar_driver.py`` runs inside it.
"""

import json
import os
import subprocess
import sys

ZAQAR_VERSION = "23.0.1"
THREADS = 10  # Zaqar's [notification] max_notifier_workers default
HERE = os.path.dirname(os.path.abspath(__file__))


class Unavailable(RuntimeError):
    """The side virtualenv could not be made."""


def venv_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "notifier-bench", f"zaqar-{ZAQAR_VERSION}")


def _has_zaqar(python):
    probe = subprocess.run(
        [python, "-c", "import zaqar.notification.notifier"],
        capture_output=True,
        timeout=120,
    )
    return probe.returncode == 0


def ensure_venv(directory=None):
    """Return the side virtualenv's python, creating it (and installing
    zaqar) on first use. Raise Unavailable when that fails."""
    directory = directory or venv_dir()
    python = os.path.join(directory, "bin", "python")
    if os.path.exists(python) and _has_zaqar(python):
        return python
    print(f"  (first use: installing zaqar {ZAQAR_VERSION} into {directory}; a few minutes)")
    try:
        if not os.path.exists(python):
            subprocess.run([sys.executable, "-m", "venv", directory], check=True, timeout=300)
        subprocess.run(
            [python, "-m", "pip", "install", "-q", f"zaqar=={ZAQAR_VERSION}"],
            check=True,
            timeout=1800,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise Unavailable(f"installing zaqar {ZAQAR_VERSION} failed: {exc}") from exc
    if not _has_zaqar(python):
        raise Unavailable(f"zaqar {ZAQAR_VERSION} does not import in {directory}")
    return python


def run(python, subscribers, count, batch=10, threads=THREADS, timeout=600):
    """Drive Zaqar's NotifierDriver: ``count`` messages (``batch`` per post)
    to ``subscribers`` (webhook URLs). Return {start, end, cpu}."""
    spec = {"subscribers": subscribers, "count": count, "batch": batch, "threads": threads}
    done = subprocess.run(
        [python, os.path.join(HERE, "zaqar_driver.py")],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise Unavailable(f"zaqar driver failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
