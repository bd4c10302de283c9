"""`notifier healthcheck ROLE`: exit 0 if that role on this host is alive."""

from typing import Any


def run_healthcheck(conf: Any, target: str) -> int:
    """Return 0 if ``target`` looks alive: /v2/health for the API, a fresh
    heartbeat file for the worker and the scheduler."""
    if target == "api":
        import urllib.request

        host = conf.api.bind_host if conf.api.bind_host not in ("0.0.0.0", "::") else "127.0.0.1"
        url = f"http://{host}:{conf.api.bind_port}/v2/health"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return 0 if response.status == 200 else 1
        except OSError:
            return 1
    from notifier.observability.heartbeat import is_fresh

    path = conf.worker.heartbeat_file
    if target == "scheduler":
        path = conf.worker.scheduler_heartbeat_file
    return 0 if path and is_fresh(path, conf.worker.heartbeat_max_age_seconds) else 1
