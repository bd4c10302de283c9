"""`notifier dev`: a private Redis and every role as child processes."""

import argparse
import os
import secrets
import sys
import tempfile
from typing import Any

from notifier.cli import supervisor
from notifier.cli.redis_server import RedisServer
from notifier.core import links

#: The project of the console link the ready line prints.
DEV_PROJECT = "demo"

# `notifier dev` is for local use: its webhooks may reach this machine.
DEV_NETWORKS = ["127.0.0.0/8", "::1/128"]


def run_dev(args: argparse.Namespace, conf: Any) -> int:
    """Start a private Redis and every role as child processes; return the exit status."""
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
                "[console]\nenabled = true\n"
            )
            # Console links need a signing key: a fresh one unless configured.
            key = conf.signed_url.secret_key or secrets.token_urlsafe(32)
            if not conf.signed_url.secret_key:
                out.write(f"[signed_url]\nsecret_key = {key}\n")
        files: list[str] = []
        for path in args.config_file + [overrides]:
            files += ["--config-file", path]
        worker_args = ["worker"] + files
        if args.concurrency:
            worker_args += ["--concurrency", str(args.concurrency)]
        api_url = f"http://{local_host(conf.api.bind_host)}:{conf.api.bind_port}/v2"
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
        ready = (
            f"notifier is running: API at {api_url} (Redis {server.url}). Ctrl-C stops it.\n"
            f"Operator console (project {DEV_PROJECT}, 1 day): "
            f"{dev_console_url(key, api_url.removesuffix('/v2'))}"
        )
        status: int = supervisor.Supervisor(roles).run(ready, conf.dev_ready_timeout_seconds)
        return status


def dev_console_url(key: str, origin: str) -> str:
    """Return a day-long console link of the ``dev`` project."""
    link = links.sign_link(key, links.CONSOLE_PATH, links.CONSOLE, DEV_PROJECT, "1d")
    return f"{origin}{links.CONSOLE_PATH}?{link.query()}"


def local_host(bind_host: str) -> str:
    """The address to reach a server bound to ``bind_host`` from this host."""
    return "127.0.0.1" if bind_host in ("0.0.0.0", "::", "") else bind_host
