"""prometheus_client's multiprocess directory of an API or worker process."""

import atexit
import os
import shutil
import socket
import tempfile
from typing import Any


def prepare_metrics_dir(conf: Any, role: str) -> None:
    """Point prometheus_client's multiprocess mode at a fresh directory of
    this process's own, removed when it exits.

    Under ``[metrics] multiprocess_dir`` that is ``ROLE-HOST-PID``: several
    roles (or several workers) sharing the setting never delete each other's
    files; directories left by dead processes of this host are removed.
    Must run before prometheus_client is imported: it reads the variable then.
    """
    base = conf.metrics.multiprocess_dir
    if base:
        host = socket.gethostname().replace("-", "_")
        os.makedirs(base, exist_ok=True)
        for name in os.listdir(base):
            parts = name.rsplit("-", 2)
            if len(parts) == 3 and parts[1] == host and parts[2].isdigit():
                if not _alive(int(parts[2])):
                    shutil.rmtree(os.path.join(base, name), ignore_errors=True)
        directory = os.path.join(base, f"{role}-{host}-{os.getpid()}")
        shutil.rmtree(directory, ignore_errors=True)  # stale files of a dead run
        os.makedirs(directory)
    else:
        directory = tempfile.mkdtemp(prefix=f"notifier-metrics-{role}-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    owner = os.getpid()

    def remove() -> None:
        if os.getpid() == owner:  # not in a forked pool or gunicorn worker
            shutil.rmtree(directory, ignore_errors=True)

    atexit.register(remove)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
