"""`notifier worker`: a Celery worker (fan-out and delivery)."""

import logging
import os
from typing import Any

LOG = logging.getLogger("notifier")

# A worker whose metrics port is taken (another worker on this host) tries the
# next ports, then any free one; the log says which it serves on.
METRICS_PORT_TRIES = 16


def run_worker(conf: Any) -> None:
    from workers.app import TASK_QUEUES, add_heartbeat, create_celery
    from workers.broker import survive_lost_broker_connections
    from workers.tasks import register_tasks

    survive_lost_broker_connections()
    app = create_celery(conf)
    register_tasks(app, conf)
    if conf.worker.heartbeat_file:
        add_heartbeat(app, conf.worker.heartbeat_file)
    if conf.metrics.worker_port:
        start_worker_metrics(conf)
    quiet_task_logs()
    argv = [
        "worker",
        "--loglevel",
        "INFO",
        "-Q",
        ",".join(TASK_QUEUES),
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    argv += ["--pool", conf.worker.pool]
    argv += ["--concurrency", str(worker_concurrency(conf))]
    app.worker_main(argv)


def start_worker_metrics(conf: Any) -> int | None:
    """Serve the worker's /metrics; return the port, or None if none could be bound."""
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    first: int = conf.metrics.worker_port
    ports = [p for p in range(first, first + METRICS_PORT_TRIES) if p <= 65535] + [0]
    error: OSError | None = None
    for port in ports:
        try:
            server, _ = start_http_server(port, addr=conf.metrics.worker_host, registry=registry)
        except OSError as exc:
            error = exc
            continue
        bound: int = server.server_port
        LOG.info("worker metrics on http://%s:%s/metrics", conf.metrics.worker_host, bound)
        return bound
    LOG.warning("worker metrics server not started: %s", error)
    return None


def worker_concurrency(conf: Any) -> int:
    """The pool size: ``[worker] concurrency``, or twice the cores for
    prefork (a process waiting on a slow endpoint uses no CPU, so spare ones
    keep the cores busy; measured in bench/RESULTS.md), 16 threads."""
    if conf.worker.concurrency:
        return int(conf.worker.concurrency)
    return 16 if conf.worker.pool == "threads" else 2 * (os.cpu_count() or 1)


def quiet_task_logs() -> None:
    """Celery logs every task received and run, with its arguments, at INFO
    (~200 bytes per delivery): keep those two loggers at WARNING, in the
    consumer and in every pool process. Startup lines ("ready.") stay."""
    from celery import signals

    def quiet(**_: Any) -> None:
        for name in ("celery.app.trace", "celery.worker.strategy"):
            logging.getLogger(name).setLevel(logging.WARNING)

    signals.worker_init.connect(quiet, weak=False)
    signals.worker_process_init.connect(quiet, weak=False)
