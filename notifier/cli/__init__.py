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
    from notifier.observability.heartbeat import is_fresh

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
            # gunicorn >= 25.1 opens a control socket at one path per user
            # ($HOME/.gunicorn/gunicorn.ctl): a second API on the host would
            # take it over. notifier does not use it.
            if "control_socket_disable" in self.cfg.settings:
                self.cfg.set("control_socket_disable", True)

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
        start_worker_metrics(conf)
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


# A worker whose metrics port is taken (another worker on this host) tries the
# next ports, then any free one; the log says which it serves on.
METRICS_PORT_TRIES = 16


def start_worker_metrics(conf):
    """Serve the worker's /metrics; return the port, or None if none could be bound."""
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    first = conf.metrics.worker_port
    ports = [p for p in range(first, first + METRICS_PORT_TRIES) if p <= 65535] + [0]
    for port in ports:
        try:
            server, _ = start_http_server(port, addr=conf.metrics.worker_host, registry=registry)
        except OSError as exc:
            error = exc
            continue
        bound = server.server_port
        LOG.info("worker metrics on http://%s:%s/metrics", conf.metrics.worker_host, bound)
        return bound
    LOG.warning("worker metrics server not started: %s", error)
    return None


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
    from notifier.delivery.service import DeliveryService
    from notifier.observability.heartbeat import Heartbeat
    from notifier.store.storage import Storage
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
            from notifier.observability.metrics import REDIS_ERRORS

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
    """Start a private Redis and every role as child processes; return the exit status."""
    from notifier.cli import supervisor
    from notifier.cli.redis_server import RedisServer

    with (
        RedisServer(appendfsync=conf.dev_redis_appendfsync) as server,
        tempfile.TemporaryDirectory(prefix="notifier-dev-") as workdir,
    ):
        beats = {
            role: os.path.join(workdir, f"{role}.heartbeat") for role in ("worker", "scheduler")
        }
        overrides = os.path.join(workdir, "dev.conf")
        with open(overrides, "w", encoding="utf-8") as out:
            # The private server is not behind Sentinel, whatever the config says.
            out.write(
                f"[DEFAULT]\nredis_url = {server.url}\nsentinel_hosts =\n"
                f"[api]\nbind_host = {conf.api.bind_host}\n"
                f"bind_port = {conf.api.bind_port}\nworkers = 1\n"
                f"[worker]\nheartbeat_file = {beats['worker']}\n"
                f"scheduler_heartbeat_file = {beats['scheduler']}\n"
                f"[webhook]\nallowed_networks = "
                f"{','.join(conf.webhook.allowed_networks + DEV_NETWORKS)}\n"
            )
        files = []
        for path in args.config_file + [overrides]:
            files += ["--config-file", path]
        worker_args = ["worker"] + files
        if args.concurrency:
            worker_args += ["--concurrency", str(args.concurrency)]
        api_url = f"http://{_local_host(conf.api.bind_host)}:{conf.api.bind_port}/v2"
        command = [sys.executable, "-m", "notifier.cli"]
        roles = [
            supervisor.Role(
                "api", command + ["api"] + files, supervisor.http_ok(api_url + "/health")
            ),
            supervisor.Role(
                "worker", command + worker_args, supervisor.file_exists(beats["worker"])
            ),
            supervisor.Role(
                "scheduler",
                command + ["scheduler"] + files,
                supervisor.file_exists(beats["scheduler"]),
            ),
        ]
        ready = f"notifier is running: API at {api_url} (Redis {server.url}). Ctrl-C stops it."
        return supervisor.Supervisor(roles).run(ready, conf.dev_ready_timeout_seconds)


def _local_host(bind_host):
    """The address to reach a server bound to ``bind_host`` from this host."""
    return "127.0.0.1" if bind_host in ("0.0.0.0", "::", "") else bind_host


def prepare_metrics_dir(conf, role):
    """Point prometheus_client's multiprocess mode at a fresh directory of
    this process's own, removed when it exits.

    Under ``[metrics] multiprocess_dir`` that is ``ROLE-HOST-PID``: several
    roles (or several workers) sharing the setting never delete each other's
    files; directories left by dead processes of this host are removed.
    Must run before prometheus_client is imported: it reads the variable then.
    """
    import atexit
    import shutil
    import socket

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

    def remove():
        if os.getpid() == owner:  # not in a forked pool or gunicorn worker
            shutil.rmtree(directory, ignore_errors=True)

    atexit.register(remove)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_startup(conf):
    """Exit with a clear message if the configuration cannot work."""
    from notifier.api import confirm_drivers
    from notifier.core import confirmation

    try:
        confirmation.check_conf(conf)
        confirm_drivers.load_driver(conf)
    except confirmation.ConfirmationConfigError as exc:
        print(f"notifier: configuration error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)


def main(argv=None):
    args = build_parser().parse_args(argv)
    conf = load(args)
    from notifier.observability.logs import setup_logging

    setup_logging(json_logs=conf.metrics.json_logs)
    logging.getLogger("notifier").setLevel(logging.INFO)
    if args.role in ("api", "worker"):
        prepare_metrics_dir(conf, args.role)
    if args.role == "healthcheck":
        sys.exit(run_healthcheck(conf, args.target))
    check_startup(conf)
    if args.role == "dev":
        sys.exit(run_dev(args, conf))
    elif args.role == "api":
        run_api(conf)
    elif args.role == "worker":
        run_worker(conf)
    else:
        run_scheduler(conf)


if __name__ == "__main__":
    main()
