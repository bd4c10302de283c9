"""E-mail sink: deliver to ``mailto:`` subscribers over SMTP or a sendmail command.

``[notification] smtp_mode = self_local`` sends with smtplib; each worker
process keeps one SMTP connection open across messages, checks it with NOOP
after ``smtp_noop_after_idle_seconds`` idle, and reconnects once when a
reused connection turns out to be closed. ``third_part`` pipes the message
to ``smtp_command`` (``/usr/sbin/sendmail -t -oi``).

Failures: SMTP 4xx replies, timeouts and connection errors are transient;
5xx replies, every recipient refused, failed logins, an untrusted
certificate, a missing command are permanent. When some recipients are
refused and others accepted the delivery counts as done (a retry would send
the accepted ones a copy again); the refusals are in the attempt's response.

Confirmation e-mails (issue 7): a notification whose payload's
``Message_Type`` is ``SubscriptionConfirmation`` or ``UnsubscribeConfirmation``
is rendered with the confirmation templates; its payload must carry
``confirmation_link`` and may carry ``PortalURL`` (shown as the portal link).

smtplib's debug output stays off: it would print the AUTH exchange.
"""

import logging
import shlex
import smtplib
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import jinja2

from notifier import errors
from notifier.core import confirmation, emails
from notifier.sinks import DeliveryReport, Notification

LOG = logging.getLogger(__name__)

DEFAULT_PORTS = {"none": 25, "starttls": 587, "tls": 465}
CONFIRMATION_KINDS = {
    "SubscriptionConfirmation": "subscription",
    "UnsubscribeConfirmation": "unsubscribe",
}
# sysexits.h codes that no retry will cure: usage, data, no input, no such
# user or host, permission, configuration.
PERMANENT_EXIT_CODES = {64, 65, 66, 67, 68, 77, 78}
DETAIL_CHARS = 500
#: Refused recipients: address -> (SMTP code, reply).
Refusals = dict[str, tuple[int, bytes]]


class EmailSink:
    """Render a notification with jinja2 templates and send it as e-mail."""

    @classmethod
    def validate(
        cls,
        subscriber: str,
        options: Mapping[str, Any],
        conf: Any,
        resolver: Callable[..., Any] | None = None,
    ) -> None:
        emails.email_target(subscriber, options)

    def __init__(self, conf: Any) -> None:
        self.conf = conf.notification
        try:
            self.templates = emails.EmailTemplates(self.conf.email_template_dir)
            self.templates.check()
            emails.check_mailbox(self.conf.smtp_from, "smtp_from")
            self.transport: SMTPTransport | CommandTransport = (
                SMTPTransport(self.conf)
                if self.conf.smtp_mode == "self_local"
                else CommandTransport(self.conf)
            )
        except (ValueError, OSError, jinja2.TemplateError, errors.ValidationError) as exc:
            raise errors.PermanentDeliveryError(
                f"E-mail sink misconfigured: {exc}", kind="config"
            ) from exc

    def deliver(self, notification: Notification) -> DeliveryReport:
        return self.transport.send(self.compose(notification))

    def compose(self, notification: Notification) -> emails.OutgoingEmail:
        """Return the OutgoingEmail of one notification."""
        subscription = notification.subscription
        target = emails.email_target(subscription["subscriber"], subscription.get("options") or {})
        message_type: Any = notification.payload.get("Message_Type")
        kind = CONFIRMATION_KINDS.get(message_type)
        try:
            if kind:
                rendered = self._render_confirmation(kind, notification)
                # The service's own mail, to the subscriber alone: no cc,
                # bcc, subject or sender from the subscription.
                target = emails.EmailTarget(to=target.to)
            else:
                context = emails.notification_context(notification.payload, subscription, target)
                rendered = self.templates.render("notification", context)
        except (jinja2.TemplateError, ValueError, KeyError) as exc:
            raise errors.PermanentDeliveryError(
                f"E-mail template failed: {exc!r}", kind="template"
            ) from exc
        try:
            return emails.build_email(
                target, rendered, self.conf.smtp_from, notification.delivery_id, time.time()
            )
        except errors.ValidationError as exc:
            raise errors.PermanentDeliveryError(str(exc), kind="config") from exc

    def _render_confirmation(self, kind: str, notification: Notification) -> emails.RenderedEmail:
        project, source_kind, name = notification.subscription["source"]
        link = notification.payload.get("confirmation_link")
        if not link:
            raise errors.PermanentDeliveryError(
                "A confirmation payload needs a confirmation_link.", kind="template"
            )
        context = {
            "source_kind": "topic" if source_kind == "topics" else "queue",
            "source_name": name,
            "project": project,
            "confirmation_link": link,
            "portal_link": notification.payload.get(confirmation.PORTAL_URL_FIELD),
        }
        option = f"{emails.CONFIRMATION_TEMPLATES[kind]}_email_template"
        zaqar = getattr(self.conf, option)
        return emails.render_confirmation_email(kind, context, self.templates, zaqar)


class SMTPTransport:
    """One reused SMTP connection (per sink, so per worker process)."""

    def __init__(self, conf: Any, clock: Callable[[], float] = time.monotonic) -> None:
        check_plaintext_auth(conf)
        self.conf = conf
        self.port: int = conf.smtp_port or DEFAULT_PORTS[conf.smtp_security]
        self.context = self._tls_context() if conf.smtp_security != "none" else None
        self.clock = clock
        self._smtp: smtplib.SMTP | None = None
        self._last_used = 0.0
        self._lock = threading.Lock()

    def send(self, mail: emails.OutgoingEmail) -> DeliveryReport:
        with self._lock:
            try:
                refused, (code, reply) = self._send(mail)
            except (smtplib.SMTPException, OSError) as exc:
                raise translate_smtp_error(exc) from exc
            finally:
                self._last_used = self.clock()
        text = f"{code} {_text(reply)}"
        if refused:
            text += "; refused: " + _refusals(refused)
        return DeliveryReport(status=code, response_body=text)

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            _quit(smtp)

    def _send(self, mail: emails.OutgoingEmail) -> tuple[Refusals, tuple[int, bytes]]:
        smtp, reused = self._connection()
        try:
            return transaction(smtp, mail)
        except (smtplib.SMTPResponseException, smtplib.SMTPRecipientsRefused):
            raise  # the server answered: the connection is still good
        except (smtplib.SMTPServerDisconnected, ConnectionError):
            self.close()
            if not reused:
                raise
        except (smtplib.SMTPException, OSError):
            self.close()
            raise
        LOG.info(
            "SMTP connection to %s:%s was closed; reconnecting", self.conf.smtp_host, self.port
        )
        return transaction(self._connection()[0], mail)

    def _connection(self) -> tuple[smtplib.SMTP, bool]:
        idle = self.clock() - self._last_used
        if (
            self._smtp is not None
            and idle >= self.conf.smtp_noop_after_idle_seconds
            and not _answers_noop(self._smtp)
        ):
            self.close()
        if self._smtp is None:
            self._smtp = self._open()
            return self._smtp, False
        return self._smtp, True

    def _open(self) -> smtplib.SMTP:
        conf = self.conf
        factory: type[smtplib.SMTP] = (
            smtplib.SMTP_SSL if conf.smtp_security == "tls" else smtplib.SMTP
        )
        kwargs: dict[str, Any] = {"context": self.context} if conf.smtp_security == "tls" else {}
        smtp = factory(conf.smtp_host, self.port, timeout=conf.smtp_timeout_seconds, **kwargs)
        try:
            smtp.set_debuglevel(0)
            smtp.ehlo_or_helo_if_needed()
            if conf.smtp_security == "starttls":
                smtp.starttls(context=self.context)
                smtp.ehlo_or_helo_if_needed()
            if conf.smtp_user_name:
                smtp.login(conf.smtp_user_name, conf.smtp_user_password or "")
        except BaseException:
            _quit(smtp)
            raise
        LOG.debug("SMTP connection to %s:%s open", conf.smtp_host, self.port)
        return smtp

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.conf.smtp_ca_file)
        if not self.conf.smtp_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


_warned_plaintext_auth = False


def check_plaintext_auth(conf: Any) -> None:
    """Refuse an SMTP login without TLS unless smtp_allow_plaintext_auth says
    so; then warn once per process (naming the user, never the password)."""
    global _warned_plaintext_auth
    if not conf.smtp_user_name or conf.smtp_security != "none":
        return
    if not conf.smtp_allow_plaintext_auth:
        raise ValueError(
            "smtp_user_name is set with smtp_security = none: the password "
            "would cross the network in clear. Use smtp_security = starttls or "
            "tls, or set smtp_allow_plaintext_auth = true for a trusted relay."
        )
    if not _warned_plaintext_auth:
        _warned_plaintext_auth = True
        LOG.warning(
            "SMTP login of user %r to %s without TLS (smtp_security = none, "
            "smtp_allow_plaintext_auth = true): the password crosses the network in clear",
            conf.smtp_user_name,
            conf.smtp_host,
        )


def transaction(
    smtp: smtplib.SMTP, mail: emails.OutgoingEmail
) -> tuple[Refusals, tuple[int, bytes]]:
    """Run MAIL, RCPT, DATA; return ({refused rcpt: (code, reply)}, data reply)."""
    data = mail.as_bytes()
    options: list[str] = []
    if mail.smtputf8:
        if not smtp.has_extn("smtputf8"):
            raise smtplib.SMTPNotSupportedError(
                "the SMTP server lacks SMTPUTF8, needed for a non-ASCII address"
            )
        options = ["SMTPUTF8"] + (["BODY=8BITMIME"] if smtp.has_extn("8bitmime") else [])
    code, reply = smtp.mail(mail.sender, options)
    if code != 250:
        _reset(smtp)
        raise smtplib.SMTPSenderRefused(code, reply, mail.sender)
    refused: Refusals = {}
    for recipient in mail.recipients:
        code, reply = smtp.rcpt(recipient)
        if code not in (250, 251):
            refused[recipient] = (code, reply)
    if len(refused) == len(mail.recipients):
        _reset(smtp)
        raise smtplib.SMTPRecipientsRefused(refused)
    try:
        code, reply = smtp.data(data)
    except smtplib.SMTPDataError:
        _reset(smtp)
        raise
    if code != 250:
        _reset(smtp)
        raise smtplib.SMTPDataError(code, reply)
    return refused, (code, reply)


def translate_smtp_error(exc: BaseException) -> errors.DeliveryError:
    """Return the DeliveryError for an smtplib or socket exception."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        transient = any(emails.classify_smtp_code(c) == "transient" for c in codes)
        return _error_class(transient)(
            f"Every recipient refused: {_refusals(exc.recipients)}",
            kind="smtp_recipients",
            status=max(codes),
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        transient = emails.classify_smtp_code(exc.smtp_code) == "transient"
        kind = "smtp_auth" if isinstance(exc, smtplib.SMTPAuthenticationError) else "smtp"
        return _error_class(transient)(
            f"SMTP {exc.smtp_code} {_text(exc.smtp_error)}", kind=kind, status=exc.smtp_code
        )
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return errors.PermanentDeliveryError(f"SMTP server: {exc}", kind="smtp_unsupported")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return errors.PermanentDeliveryError(
            f"SMTP server certificate not trusted: {exc.verify_message} (set "
            "[notification] smtp_ca_file)",
            kind="tls",
        )
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return errors.TransientDeliveryError(f"SMTP timed out: {exc}", kind="timeout")
    return errors.TransientDeliveryError(
        f"SMTP connection failed: {type(exc).__name__}: {exc}", kind="connection"
    )


class CommandTransport:
    """Pipe each message to ``smtp_command`` (a sendmail-compatible program)."""

    def __init__(self, conf: Any) -> None:
        self.argv = shlex.split(conf.smtp_command)
        if not self.argv:
            raise ValueError("smtp_command is empty")
        self.timeout: float = conf.smtp_timeout_seconds
        self.reads_headers = "-t" in self.argv[1:]

    def send(self, mail: emails.OutgoingEmail) -> DeliveryReport:
        argv = self.argv if self.reads_headers else self.argv + list(mail.recipients)
        data = mail.as_bytes(linesep="\n", include_bcc=self.reads_headers)
        try:
            done = subprocess.run(
                argv, input=data, capture_output=True, timeout=self.timeout, check=False
            )
        except OSError as exc:
            raise errors.PermanentDeliveryError(
                f"smtp_command {self.argv[0]!r} cannot run ({exc.strerror}): install "
                "a sendmail-compatible MTA or set [notification] smtp_mode = "
                "self_local",
                kind="sendmail_missing",
            ) from exc
        except subprocess.TimeoutExpired as exc:
            raise errors.TransientDeliveryError(
                f"smtp_command ran longer than {self.timeout} s", kind="timeout"
            ) from exc
        output = _text(done.stderr or done.stdout)[:DETAIL_CHARS]
        if done.returncode == 0:
            return DeliveryReport(response_body=output or None)
        transient = done.returncode not in PERMANENT_EXIT_CODES
        raise _error_class(transient)(
            f"smtp_command exited with status {done.returncode}: {output}", kind="sendmail_exit"
        )


def _error_class(transient: bool) -> type[errors.DeliveryError]:
    return errors.TransientDeliveryError if transient else errors.PermanentDeliveryError


def _answers_noop(smtp: smtplib.SMTP) -> bool:
    try:
        return smtp.noop()[0] == 250
    except (smtplib.SMTPException, OSError):
        return False


def _reset(smtp: smtplib.SMTP) -> None:
    try:
        smtp.rset()
    except (smtplib.SMTPException, OSError):
        pass


def _quit(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _refusals(refused: Mapping[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{rcpt}: {code} {_text(reply)}" for rcpt, (code, reply) in refused.items())
