"""Options of the e-mail sink (``mailto:`` subscribers), in ``[notification]``.

Zaqar's names are kept (``smtp_mode``, ``smtp_host``, ``smtp_port``,
``smtp_user_name``, ``smtp_user_password``, ``smtp_command`` and the two
``*_confirmation_email_template`` dicts) so Zaqar config files carry over.

``smtp_mode`` defaults to ``self_local`` where Zaqar defaulted to
``third_part``: the container image has no sendmail, a missing sendmail
fails every e-mail, and smtplib gives per-recipient SMTP replies that tell a
retryable failure (4xx) from a permanent one (5xx), which a sendmail exit
status mostly cannot.
"""

from oslo_config import cfg

GROUP = "notification"

_ZAQAR_TEMPLATE_HELP = (
    "Zaqar's plain-text {what} e-mail: a dict with keys topic (the subject), "
    "body (str.format text, {{0}} queue or topic name, {{1}} project, {{2}} "
    "link) and sender. Unset (the default): the jinja2 templates "
    "{name}.subject.txt/.txt/.html are used instead."
)

OPTS = [
    cfg.StrOpt(
        "smtp_mode",
        default="self_local",
        choices=[
            ("self_local", "send with Python's smtplib to smtp_host"),
            ("third_part", "pipe each message to smtp_command"),
        ],
        help="How e-mail is sent. Zaqar defaulted to third_part; "
        "self_local is the default here because the container "
        "image has no sendmail and SMTP replies tell a retryable "
        "failure from a permanent one.",
    ),
    cfg.HostAddressOpt("smtp_host", default="localhost", help="SMTP server (self_local)."),
    cfg.PortOpt(
        "smtp_port",
        default=None,
        help="SMTP server port. Default: 25 with smtp_security=none, "
        "587 with starttls, 465 with tls.",
    ),
    cfg.StrOpt(
        "smtp_security",
        default="none",
        choices=[
            ("none", "plain SMTP, for a local relay"),
            ("starttls", "upgrade with STARTTLS; fail if the server does not offer it"),
            ("tls", "implicit TLS from the first byte (SMTPS)"),
        ],
        help="Transport security of the SMTP connection.",
    ),
    cfg.StrOpt(
        "smtp_ca_file",
        default=None,
        help="PEM file of CA certificates trusted for the SMTP "
        "server's certificate. Default: the system's.",
    ),
    cfg.BoolOpt(
        "smtp_verify",
        default=True,
        help="Verify the SMTP server's certificate and host name. "
        "Turn off only for a relay you reach over a trusted "
        "network.",
    ),
    cfg.StrOpt(
        "smtp_user_name",
        default=None,
        help="Log in to the SMTP server as this user; no login if unset.",
    ),
    cfg.StrOpt(
        "smtp_user_password",
        default=None,
        secret=True,
        help="Password of smtp_user_name. Never logged.",
    ),
    cfg.BoolOpt(
        "smtp_allow_plaintext_auth",
        default=False,
        help="Let smtp_user_name log in over a connection without "
        "TLS (smtp_security = none), which sends the password in "
        "clear. Off: such a configuration fails every e-mail with "
        "a config error and the password is never sent. On: "
        "allowed, with a warning logged once per process (for a "
        "relay on the same host or a trusted network).",
    ),
    cfg.IntOpt(
        "smtp_timeout_seconds",
        default=10,
        min=1,
        help="Timeout of each SMTP network operation, and of one smtp_command run.",
    ),
    cfg.IntOpt(
        "smtp_noop_after_idle_seconds",
        default=30,
        min=0,
        help="A worker keeps one SMTP connection open across "
        "messages; after this long idle it checks it with NOOP "
        "before use and reconnects if it is gone.",
    ),
    cfg.StrOpt(
        "smtp_from",
        default="notifier@localhost",
        help="Envelope sender and default From of every e-mail. A "
        "subscription's `from` option changes the From header "
        "only; this address then appears as Sender.",
    ),
    cfg.StrOpt(
        "smtp_command",
        default="/usr/sbin/sendmail -t -oi",
        help="Command run for each e-mail in third_part mode, the "
        "message on its standard input. With -t the recipients "
        "are read from the headers (Bcc included, which sendmail "
        "removes); without it they are appended as arguments.",
    ),
    cfg.StrOpt(
        "email_template_dir",
        default=None,
        help="Directory of jinja2 e-mail templates overriding the "
        "packaged ones file by file (notification.txt, "
        "notification.html, notification.subject.txt, "
        "subscription_confirmation.*, unsubscribe_confirmation.*).",
    ),
    cfg.DictOpt(
        "subscription_confirmation_email_template",
        default=None,
        help=_ZAQAR_TEMPLATE_HELP.format(
            what="subscription confirmation", name="subscription_confirmation"
        ),
    ),
    cfg.DictOpt(
        "unsubscribe_confirmation_email_template",
        default=None,
        help=_ZAQAR_TEMPLATE_HELP.format(
            what="unsubscribe confirmation", name="unsubscribe_confirmation"
        ),
    ),
]
