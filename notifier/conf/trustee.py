"""[trustee]: the service user trust+http(s) subscribers trust, via Keystone.

keystoneauth1's password-plugin and session options (``auth_url``,
``username``, ``password``, ``user_domain_name``, ``cafile``, ``timeout`` ...),
as in Zaqar's ``[trustee]`` group, then notifier's own. keystoneauth1 is the
optional ``mistral`` extra: without it only notifier's own are listed, and
trust+ subscribers are refused at creation.
"""

from typing import Any

from oslo_config import cfg

GROUP = "trustee"


def _keystoneauth_opts() -> list[Any]:
    try:
        from keystoneauth1 import loading
    except ImportError:
        return []
    opts = loading.get_auth_plugin_conf_options("password") + loading.get_session_conf_options()
    for opt in opts:
        opt.required = False  # only trust+ subscribers need them (auth_url)
    return opts


NOTIFIER_OPTS = [
    cfg.IntOpt(
        "trust_expiry_margin_seconds",
        default=300,
        min=0,
        help="A subscription's trust outlives the subscription by this "
        "much, so deliveries still running at its end succeed.",
    ),
    cfg.IntOpt(
        "token_expiry_margin_seconds",
        default=120,
        min=0,
        help="A cached trust-scoped token is replaced this long before it expires.",
    ),
    cfg.IntOpt(
        "token_cache_size",
        default=1024,
        min=1,
        help="Trust-scoped tokens cached per worker process.",
    ),
    cfg.StrOpt(
        "workflow_endpoint_interface",
        default="public",
        choices=["public", "internal", "admin"],
        help="Catalog interface of the workflowv2 (Mistral) endpoint a "
        "trust+ subscriber is compared with.",
    ),
    cfg.StrOpt("region_name", default=None, help="Catalog region of the workflowv2 endpoint."),
]

OPTS = _keystoneauth_opts() + NOTIFIER_OPTS
