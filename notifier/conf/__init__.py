"""Every configuration option of notifier, registered in one place.

Each module of this package holds the options of one group or one feature
and exposes ``GROUP`` and ``OPTS`` (or ``GROUPS``, {group: opts}, for options
in several groups); ``MODULES`` lists them in registration order:

    default       [DEFAULT]: Redis, Sentinel, the broker, `notifier dev`, auth
    api           [api]: where the API listens, its public URL
    transport     [transport]: sizes, TTLs, page sizes, subscriber schemes
    notification  [notification]: webhook timeouts, fan-out, attempt logs
    worker        [worker]: the Celery pool, redelivery, heartbeats
    retry         [retry]: the default retry policy
    webhook       [webhook]: network policy, signing, endpoint protection
    email         [notification]: the e-mail sink
    trustee       [trustee]: Keystone trusts of trust+ subscribers
    metrics       [metrics]: Prometheus and logging
    confirmation  [notification], [signed_url], [confirmation_mac], [confirmation]
    limits        [notification], [quota], [api]: retention, quotas, deadlines
    console       [console]: the operator console

Option names follow OpenStack Zaqar's where the meaning is the same
(``[notification] smtp_mode``, ``[signed_url] secret_key``,
``[transport] default_subscription_ttl`` ...) so Zaqar config files carry over.
Units are part of the name where Zaqar did not fix the name already.
"""

import importlib
from collections.abc import Iterable
from typing import Any

from oslo_config import cfg

from notifier.conf.default import (
    broker_transport_options,
    broker_url,
    sentinel_addresses,
    sentinel_broker_url,
    sentinel_kwargs,
    sentinel_master,
)
from notifier.conf.retry import retry_defaults

__all__ = [
    "MODULES",
    "all_groups",
    "broker_transport_options",
    "broker_url",
    "list_opts",
    "load_conf",
    "register_opts",
    "retry_defaults",
    "sentinel_addresses",
    "sentinel_broker_url",
    "sentinel_kwargs",
    "sentinel_master",
]

MODULES = [
    "default",
    "api",
    "transport",
    "notification",
    "worker",
    "retry",
    "webhook",
    "email",
    "trustee",
    "metrics",
    "confirmation",
    "limits",
    "console",
]


def all_groups() -> dict[str | None, list[Any]]:
    """Return {group: [opts]} for every module of this package."""
    groups: dict[str | None, list[Any]] = {}
    for name in MODULES:
        module = importlib.import_module(f"notifier.conf.{name}")
        for group, opts in (getattr(module, "GROUPS", None) or {module.GROUP: module.OPTS}).items():
            groups.setdefault(group, []).extend(opts)
    return groups


def register_opts(conf: Any) -> None:
    """Register every option of notifier on ``conf``."""
    for group, opts in all_groups().items():
        conf.register_opts(opts, group=group)


def list_opts() -> list[tuple[str | None, list[Any]]]:
    """List options for oslo-config-generator (entry point ``oslo.config.opts``)."""
    return list(all_groups().items())


def load_conf(args: Iterable[str] = (), default_config_files: list[str] | None = None) -> Any:
    """Build a fresh ConfigOpts from command-line style ``args``."""
    conf = cfg.ConfigOpts()
    register_opts(conf)
    conf(list(args), project="notifier", default_config_files=default_config_files or [])
    return conf
