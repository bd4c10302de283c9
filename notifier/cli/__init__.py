"""The `notifier` command: run the whole service (`dev`) or one role of it.

notifier dev        Redis, API, worker and scheduler in the foreground
notifier api        the HTTP API under gunicorn
notifier worker     a Celery worker (fan-out and delivery)
notifier scheduler  moves due retries onto the task queue
notifier healthcheck {api,worker,scheduler}
                    exit 0 if that role on this host is alive (for
                    container health checks; cheap: no broadcast)
notifier console-link --project P [--expires 1h]
                    print a pre-signed link to project P's operator
                    console (needs [signed_url] secret_key)

This package is the composition root: it alone wires ``workers`` (the Celery
dispatcher) into the API and the scheduler. One module per role; each is
imported only when its role runs.
"""

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from notifier import conf as conf_module


def build_parser() -> argparse.ArgumentParser:
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
    link = roles.add_parser("console-link", help="print a pre-signed operator console link")
    link.add_argument("--project", required=True, help="the project the console shows")
    link.add_argument(
        "--expires",
        default="1h",
        help="a duration (30m, 1h, 7d), seconds, or a UTC date and time (default: 1h)",
    )
    link.add_argument("--config-file", action="append", default=[])
    return parser


def load(args: argparse.Namespace) -> Any:
    """Return the configuration: the files, then the command line's overrides."""
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


def check_startup(conf: Any) -> None:
    """Exit with a clear message if the configuration cannot work."""
    from notifier.api import confirm_drivers
    from notifier.core import confirmation

    try:
        confirmation.check_conf(conf)
        confirm_drivers.load_driver(conf)
    except confirmation.ConfirmationConfigError as exc:
        print(f"notifier: configuration error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    conf = load(args)
    if args.role == "console-link":
        from notifier.cli.console_link import run_console_link

        sys.exit(run_console_link(conf, args.project, args.expires))
    from notifier.observability.logs import setup_logging

    setup_logging(json_logs=conf.metrics.json_logs)
    logging.getLogger("notifier").setLevel(logging.INFO)
    if args.role in ("api", "worker"):
        from notifier.cli.metrics_dir import prepare_metrics_dir

        prepare_metrics_dir(conf, args.role)
    if args.role == "healthcheck":
        from notifier.cli.healthcheck import run_healthcheck

        sys.exit(run_healthcheck(conf, args.target))
    check_startup(conf)
    if args.role == "dev":
        from notifier.cli.dev import run_dev

        sys.exit(run_dev(args, conf))
    elif args.role == "api":
        from notifier.cli.api import run_api

        run_api(conf)
    elif args.role == "worker":
        from notifier.cli.worker import run_worker

        run_worker(conf)
    else:
        from notifier.cli.scheduler import run_scheduler

        run_scheduler(conf)


if __name__ == "__main__":
    main()
