"""Options of the API process: where it listens and the URL clients reach it at."""

from oslo_config import cfg

GROUP = "api"

OPTS = [
    cfg.HostAddressOpt("bind_host", default="127.0.0.1", help="Address the API listens on."),
    cfg.PortOpt("bind_port", default=8888, help="Port the API listens on."),
    cfg.IntOpt("workers", default=2, min=1, help="Gunicorn worker processes for `notifier api`."),
    cfg.StrOpt(
        "public_url",
        default=None,
        help="Base URL clients reach the API at, used in links sent to "
        "subscribers. Defaults to http://bind_host:bind_port.",
    ),
]
