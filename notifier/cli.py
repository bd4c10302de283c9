"""The `notifier` command: run the whole service (`dev`) or one role of it.

notifier dev        Redis, API, worker and scheduler in the foreground
notifier api        the HTTP API under gunicorn
notifier worker     a Celery worker (fan-out and delivery)
notifier scheduler  moves due retries onto the task queue
notifier healthcheck {api,worker,scheduler}
                    exit 0 if that role on this host is alive (for
                    container health checks; cheap: no broadcast)
"""

import argparse
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

from notifier import conf as conf_module

LOG = logging.getLogger("notifier")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="notifier", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    roles = parser.add_subparsers(dest="role", required=True)
    for name, helptext in (
        ("dev", "run everything locally until Ctrl-C"),
        ("api", "serve the HTTP API"),
        ("worker", "run a Celery worker"),
        ("scheduler", "move due retries onto the task queue"),
    ):
        role = roles.add_parser(name, help=helptext)
        role.add_argument(
            "--config-file", action="append", default=[], help="oslo.config file; may be repeated"
        )
        if name in ("dev", "api"):
            role.add_argument("--host", help="address to listen on")
            role.add_argument("--port", type=int, help="port to listen on")
        if name in ("dev", "worker"):
            role.add_argument(
                "--concurrency",
                type=int,
                help="worker pool size (default: twice the cores for prefork)",
            )
    check = roles.add_parser("healthcheck", help="exit 0 if a role is alive")
    check.add_argument("target", choices=["api", "worker", "scheduler"])
    check.add_argument("--config-file", action="append", default=[])
    return parser


def run_healthcheck(conf, target):
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
    from notifier.heartbeat import is_fresh

    path = conf.worker.heartbeat_file
    if target == "scheduler":
        path = conf.worker.scheduler_heartbeat_file
    return 0 if path and is_fresh(path, conf.worker.heartbeat_max_age_seconds) else 1


def load(args):
    conf_args = []
    for path in args.config_file:
        conf_args += ["--config-file", path]
    conf = conf_module.load_conf(conf_args)
    if getattr(args, "host", None):
        conf.set_override("bind_host", args.host, group="api")
    if getattr(args, "port", None):
        conf.set_override("bind_port", args.port, group="api")
    if getattr(args, "concurrency", None):
        conf.set_override("concurrency", args.concurrency, group="worker")
    return conf


def run_api(conf):
    from gunicorn.app.base import BaseApplication

    from notifier.api import server
    from notifier.api.app import create_app

    class Server(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"{conf.api.bind_host}:{conf.api.bind_port}")
            self.cfg.set("workers", conf.api.workers)
            self.cfg.set("worker_class", server.worker_class(conf))  # gthread, with deadlines
            self.cfg.set("threads", 8)
            self.cfg.set("accesslog", None)
            self.cfg.set("graceful_timeout", 20)

        def load(self):
            return create_app(conf)

    Server().run()


def run_worker(conf):
    from workers.app import DELIVER_QUEUE, FANOUT_QUEUE, add_heartbeat, create_celery
    from workers.tasks import register_tasks

    app = create_celery(conf)
    register_tasks(app, conf)
    if conf.worker.heartbeat_file:
        add_heartbeat(app, conf.worker.heartbeat_file)
    if conf.metrics.worker_port:
        from prometheus_client import CollectorRegistry, multiprocess, start_http_server

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        try:
            start_http_server(
                conf.metrics.worker_port, addr=conf.metrics.worker_host, registry=registry
            )
        except OSError as exc:  # e.g. a second worker on this host: run without
            LOG.warning(
                "worker metrics server not started on port %s: %s", conf.metrics.worker_port, exc
            )
    quiet_task_logs()
    argv = [
        "worker",
        "--loglevel",
        "INFO",
        "-Q",
        f"{FANOUT_QUEUE},{DELIVER_QUEUE}",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    argv += ["--pool", conf.worker.pool]
    argv += ["--concurrency", str(worker_concurrency(conf))]
    app.worker_main(argv)


def worker_concurrency(conf):
    """The pool size: ``[worker] concurrency``, or twice the cores for
    prefork (a process waiting on a slow endpoint uses no CPU, so spare ones
    keep the cores busy; measured in bench/RESULTS.md), 16 threads."""
    if conf.worker.concurrency:
        return conf.worker.concurrency
    return 16 if conf.worker.pool == "threads" else 2 * (os.cpu_count() or 1)


def quiet_task_logs():
    """Celery logs every task received and run, with its arguments, at INFO
    (~200 bytes per delivery): keep those two loggers at WARNING, in the
    consumer and in every pool process. Startup lines ("ready.") stay."""
    from celery import signals

    def quiet(**_):
        for name in ("celery.app.trace", "celery.worker.strategy"):
            logging.getLogger(name).setLevel(logging.WARNING)

    signals.worker_init.connect(quiet, weak=False)
    signals.worker_process_init.connect(quiet, weak=False)


def run_scheduler(conf, stop_event=None, poll_seconds=0.1):
    from notifier.heartbeat import Heartbeat
    from notifier.service import DeliveryService
    from notifier.storage import Storage
    from workers.app import DELIVER_QUEUE, FANOUT_QUEUE, CeleryDispatcher, create_celery

    stop_event = stop_event or threading.Event()
    heartbeat = Heartbeat(conf.worker.scheduler_heartbeat_file)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop_event.set())
    storage = Storage.from_conf(conf)
    service = DeliveryService(conf, storage, CeleryDispatcher(create_celery(conf), storage))
    LOG.info("scheduler started")
    next_reconcile = 0.0
    while not stop_event.is_set():
        try:
            moved = service.move_due_retries()
            if time.monotonic() >= next_reconcile:
                next_reconcile = time.monotonic() + 5
                service.reconcile_tasks(
                    conf.worker.reconcile_after_seconds, [FANOUT_QUEUE, DELIVER_QUEUE]
                )
        except Exception:  # Redis restarting: keep going, say so
            from notifier.metrics import REDIS_ERRORS

            REDIS_ERRORS.labels("scheduler").inc()
            LOG.exception("moving due retries failed; retrying in 1 s")
            stop_event.wait(1.0)
            moved = 0
        heartbeat.beat()
        if not moved:
            stop_event.wait(poll_seconds)


# `notifier dev` is for local use: its webhooks may reach this machine.
DEV_NETWORKS = ["127.0.0.0/8", "::1/128"]


def run_dev(args, conf):
    """Start a private Redis and every role as child processes."""
    from notifier.redis_server import RedisServer

    with (
        RedisServer(appendfsync=conf.dev_redis_appendfsync) as server,
        tempfile.NamedTemporaryFile("w", suffix=".conf", prefix="notifier-dev-") as overrides,
    ):
        # The private server is not behind Sentinel, whatever the config says.
        overrides.write(
            f"[DEFAULT]\nredis_url = {server.url}\nsentinel_hosts =\n"
            f"[api]\nbind_host = {conf.api.bind_host}\n"
            f"bind_port = {conf.api.bind_port}\nworkers = 1\n"
            f"[webhook]\nallowed_networks = "
            f"{','.join(conf.webhook.allowed_networks + DEV_NETWORKS)}\n"
        )
        overrides.flush()
        files = []
        for path in args.config_file + [overrides.name]:
            files += ["--config-file", path]
        worker_args = ["worker"] + files
        if args.concurrency:
            worker_args += ["--concurrency", str(args.concurrency)]
        children = [
            _spawn(role_args) for role_args in (["api"] + files, worker_args, ["scheduler"] + files)
        ]
        print(
            f"notifier is running: API at http://{conf.api.bind_host}:"
            f"{conf.api.bind_port}/v2 (Redis {server.url}). Ctrl-C stops it.",
            flush=True,
        )
        _wait_for_interrupt(children)


def _spawn(role_args):
    return subprocess.Popen([sys.executable, "-m", "notifier.cli"] + role_args)


def _wait_for_interrupt(children):
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.is_set() and all(c.poll() is None for c in children):
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(20)
        except subprocess.TimeoutExpired:
            child.kill()


def prepare_metrics_dir(conf):
    """Point prometheus_client's multiprocess mode at a fresh directory.

    Must run before prometheus_client is imported: it reads the variable then.
    """
    import os
    import shutil

    directory = conf.metrics.multiprocess_dir or tempfile.mkdtemp(prefix="notifier-metrics-")
    shutil.rmtree(directory, ignore_errors=True)  # stale files of a dead run
    os.makedirs(directory, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory


def check_startup(conf):
    """Exit with a clear message if the configuration cannot work."""
    from notifier import confirm_drivers, confirmation

    try:
        confirmation.check_conf(conf)
        confirm_drivers.load_driver(conf)
    except confirmation.ConfirmationConfigError as exc:
        print(f"notifier: configuration error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)


def main(argv=None):
    args = build_parser().parse_args(argv)
    conf = load(args)
    from notifier.logs import setup_logging

    setup_logging(json_logs=conf.metrics.json_logs)
    logging.getLogger("notifier").setLevel(logging.INFO)
    if args.role in ("api", "worker"):
        prepare_metrics_dir(conf)
    if args.role == "healthcheck":
        sys.exit(run_healthcheck(conf, args.target))
    check_startup(conf)
    if args.role == "dev":
        run_dev(args, conf)
    elif args.role == "api":
        run_api(conf)
    elif args.role == "worker":
        run_worker(conf)
    else:
        run_scheduler(conf)


if __name__ == "__main__":
    main()
