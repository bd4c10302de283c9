"""E-mail for ``mailto:`` subscribers: parse, check, render and build.

Pure: no smtplib, no sockets. The sink (``notifier/sinks/email.py``) sends
what ``build_email`` returns.

A subscriber is an RFC 6068 URI, ``mailto:a@example.com,b@example.com?
subject=Alarm&cc=c@example.com&bcc=d@example.com&body=Intro``: the path and
``to`` fields are recipients, every part percent-decoded as UTF-8 (``+`` is a
plus sign, not a space). ``body`` becomes an introductory paragraph above the
rendered notification. Other header fields are refused, so a typo is a 400
rather than a silently ignored field. Options ``subject``, ``from``, ``cc``
and ``bcc`` add to the URI: cc and bcc lists are merged, and the URI's
subject wins over the option's, as in Zaqar.

Every address and header text is checked when the subscription is created:
no control characters (CR/LF header injection), no quoted local parts, no
leading ``-`` (it would read as an option to a sendmail command).
"""

import copy
import dataclasses
import datetime
import email.policy
import email.utils
import json
import re
import unicodedata
from collections.abc import Mapping
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import jinja2

from notifier import resources
from notifier.errors import ValidationError

MAILTO_FIELDS = ("to", "cc", "bcc", "subject", "body")
MAX_RECIPIENTS = 50
MAX_SUBJECT_CHARS = 500
MAX_INTRO_CHARS = 2000
TEMPLATE_NAMES = ("notification", "subscription_confirmation", "unsubscribe_confirmation")
CONFIRMATION_TEMPLATES = {
    "subscription": "subscription_confirmation",
    "unsubscribe": "unsubscribe_confirmation",
}

# Bodies are always 7-bit (quoted-printable or base64) so any relay takes
# them; only SMTPUTF8 addresses need 8-bit headers.
_BUILD_POLICY = email.policy.default.clone(cte_type="7bit")
_ATEXT = "A-Za-z0-9!#$%&'*+/=?^_`{|}~\\-\u0080-\U0010ffff"
_LOCAL_PART = re.compile(f"[{_ATEXT}]+(\\.[{_ATEXT}]+)*")
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_MAILBOX = re.compile(r"(?P<name>[^<>]*)<(?P<addr>[^<>]+)>\s*")
_FORBIDDEN_CATEGORIES = {"Cc", "Cs", "Zl", "Zp"}


@dataclasses.dataclass(frozen=True)
class EmailTarget:
    """Who gets a subscription's e-mail and how it is headed."""

    to: tuple[str, ...]
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    subject: str | None = None
    sender: str | None = None  # the `from` option, "Name <addr>" or addr
    intro: str | None = None  # the URI's body field


@dataclasses.dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str | None = None
    sender: str | None = None


@dataclasses.dataclass(frozen=True)
class OutgoingEmail:
    """A built message and its envelope; ``smtputf8`` if an address is not ASCII."""

    sender: str
    recipients: tuple[str, ...]
    message: EmailMessage
    bcc: tuple[str, ...] = ()
    smtputf8: bool = False

    def as_bytes(self, linesep: str = "\r\n", include_bcc: bool = False) -> bytes:
        """Serialize; ``include_bcc`` for ``sendmail -t``, which removes it."""
        message = self.message
        if include_bcc and self.bcc:
            message = copy.deepcopy(message)
            message["Bcc"] = [_address(a) for a in self.bcc]
        policy = email.policy.SMTPUTF8 if self.smtputf8 else email.policy.SMTP
        return message.as_bytes(policy=policy.clone(linesep=linesep))


# -- checking -----------------------------------------------------------------


def check_text(value: object, field: str, max_chars: int, multiline: bool = False) -> str:
    """Return ``value`` if it is a string safe to put in a header (or body)."""
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be a string.", field=field)
    if len(value) > max_chars:
        raise ValidationError(f"{field} is longer than {max_chars} characters.", field=field)
    allowed = "\r\n\t" if multiline else ""
    for char in value:
        if char not in allowed and unicodedata.category(char) in _FORBIDDEN_CATEGORIES:
            raise ValidationError(
                f"{field} contains the control character U+{ord(char):04X}.", field=field
            )
    return value


def check_address(value: str, field: str) -> str:
    """Return an addr-spec with its domain IDNA-encoded, or raise."""
    check_text(value, field, 254)
    local, at, domain = value.strip().rpartition("@")
    if (
        not at
        or not _LOCAL_PART.fullmatch(local)
        or local.startswith("-")
        or len(local.encode()) > 64
        or any(unicodedata.category(c)[0] in "ZC" for c in local)
    ):
        raise ValidationError(f"{field}: {value!r} is not an e-mail address.", field=field)
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        domain = ""
    if not all(_LABEL.fullmatch(label) for label in domain.split(".")):
        raise ValidationError(f"{field}: {value!r} has an invalid domain.", field=field)
    return f"{local}@{domain}"


def check_mailbox(value: str, field: str) -> tuple[str, str]:
    """Return (display name, addr-spec) of ``addr`` or ``Name <addr>``."""
    check_text(value, field, 320)
    match = _MAILBOX.fullmatch(value)
    if match is None:
        return "", check_address(value, field)
    name = match["name"].strip().strip('"').strip()
    return name, check_address(match["addr"], field)


def _address_list(value: Any, field: str) -> list[str]:
    if value in (None, "", {}):
        return []
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list):
        raise ValidationError(f"{field} must be an address or a list of them.", field=field)
    return [check_address(item, field) for item in items]


# -- mailto URIs ---------------------------------------------------------------


def parse_mailto(uri: str) -> dict[str, list[str]]:
    """Split a mailto URI into ``{field: [decoded values]}`` (MAILTO_FIELDS)."""
    scheme, _, rest = uri.partition(":")
    if scheme.lower() != "mailto":
        raise ValidationError("subscriber is not a mailto: URI.", field="subscriber")
    if "#" in rest:
        raise ValidationError("A mailto: URI has no fragment; write # as %23.", field="subscriber")
    path, _, query = rest.partition("?")
    fields: dict[str, list[str]] = {name: [] for name in MAILTO_FIELDS}
    pairs = [("to", path)] if path else []
    pairs += [pair.partition("=")[::2] for pair in query.split("&") if pair]
    for name, value in pairs:
        name = _decode(name).lower()
        if name not in fields:
            raise ValidationError(
                f"mailto: field {name!r} is not supported (use {', '.join(MAILTO_FIELDS)}).",
                field="subscriber",
            )
        fields[name].append(_decode(value))
    return fields


def _decode(text: str) -> str:
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError as exc:
        raise ValidationError(
            "subscriber has percent-encoded bytes that are not UTF-8.", field="subscriber"
        ) from exc


def _single(values: list[str], name: str, field: str) -> str | None:
    if len(values) > 1:
        raise ValidationError(f"mailto: field {name!r} appears twice.", field=field)
    return values[0] if values else None


def email_target(subscriber: str, options: Mapping[str, Any]) -> EmailTarget:
    """Check a mailto subscriber and its options; return its EmailTarget."""
    fields = parse_mailto(subscriber)
    to = [a for value in fields["to"] for a in _address_list(value, "subscriber")]
    if not to:
        raise ValidationError("The mailto: URI names no recipient.", field="subscriber")
    cc = [a for value in fields["cc"] for a in _address_list(value, "subscriber")]
    bcc = [a for value in fields["bcc"] for a in _address_list(value, "subscriber")]
    cc += _address_list(options.get("cc"), "options.cc")
    bcc += _address_list(options.get("bcc"), "options.bcc")
    if len(set(to + cc + bcc)) > MAX_RECIPIENTS:
        raise ValidationError(
            f"At most {MAX_RECIPIENTS} recipients per subscription.", field="subscriber"
        )
    subject = _single(fields["subject"], "subject", "subscriber")
    if subject is not None:
        check_text(subject, "subscriber", MAX_SUBJECT_CHARS)
    if options.get("subject") is not None:
        check_text(options["subject"], "options.subject", MAX_SUBJECT_CHARS)
        subject = subject or options["subject"]
    intro = _single(fields["body"], "body", "subscriber")
    if intro is not None:
        check_text(intro, "subscriber", MAX_INTRO_CHARS, multiline=True)
    sender = options.get("from")
    if sender is not None:
        check_mailbox(sender, "options.from")
    return EmailTarget(
        to=_unique(to),
        cc=_unique(cc),
        bcc=_unique(bcc),
        subject=subject or None,
        sender=sender,
        intro=intro or None,
    )


def _unique(items: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


# -- templates -------------------------------------------------------------------


def load_packaged_template(name: str) -> str | None:
    """Return the source of the shipped ``templates/email/<name>``, or None."""
    return resources.read_packaged("email", name)


class EmailTemplates:
    """jinja2 templates: a deployer's directory first, then the packaged one.

    HTML templates are autoescaped. Templates come from files only; user text
    (subjects, bodies) is passed as variables, never rendered as a template.
    """

    def __init__(self, override_dir: str | Path | None = None) -> None:
        loaders: list[jinja2.BaseLoader] = [jinja2.FunctionLoader(load_packaged_template)]
        if override_dir:
            if not Path(override_dir).is_dir():
                raise ValueError(f"email_template_dir {override_dir} is not a directory")
            loaders.insert(0, jinja2.FileSystemLoader(str(override_dir)))
        self.env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            autoescape=jinja2.select_autoescape(["html"], default=False),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )

    def check(self) -> None:
        """Load every template now, so a missing or broken one fails early."""
        for name in TEMPLATE_NAMES:
            for suffix in (".subject.txt", ".txt", ".html"):
                self.env.get_template(name + suffix)

    def render(self, name: str, context: Mapping[str, Any]) -> RenderedEmail:
        subject = self.env.get_template(f"{name}.subject.txt").render(context)
        return RenderedEmail(
            subject=" ".join(subject.split()),
            text=self.env.get_template(f"{name}.txt").render(context),
            html=self.env.get_template(f"{name}.html").render(context),
        )


def notification_context(
    payload: Mapping[str, Any], subscription: Mapping[str, Any], target: EmailTarget
) -> dict[str, Any]:
    """Return the variables of the notification templates."""
    project, kind, name = subscription["source"]
    body = payload.get("body")
    # backslashreplace: a lone surrogate (JSON "\ud800") stays escaped
    body_json = (
        json.dumps(body, indent=2, ensure_ascii=False)
        .encode("utf-8", "backslashreplace")
        .decode("utf-8")
    )
    return {
        "source_kind": "topic" if kind == "topics" else "queue",
        "source_name": name,
        "project": project,
        "body": body,
        "body_json": body_json,
        "message_id": payload.get("message_id"),
        "ttl": payload.get("ttl"),
        "timestamp": payload.get("timestamp"),
        "intro": target.intro,
        "recipients": target.to,
    }


def render_confirmation_email(
    kind: str,
    context: Mapping[str, Any],
    templates: EmailTemplates | None = None,
    zaqar_template: Mapping[str, Any] | None = None,
) -> RenderedEmail:
    """Render a ``subscription`` or ``unsubscribe`` confirmation e-mail.

    ``context``: ``source_kind`` (queue/topic), ``source_name``, ``project``,
    ``confirmation_link`` (for an unsubscribe: the link to subscribe again),
    optionally ``portal_link`` (the subscription's portal).
    ``zaqar_template``: Zaqar's {topic, body, sender} dict; it replaces the
    jinja2 templates with a plain-text e-mail when set (Zaqar's three
    placeholders: no portal link).
    """
    if kind not in CONFIRMATION_TEMPLATES:
        raise ValueError(f"kind must be one of {sorted(CONFIRMATION_TEMPLATES)}")
    context = {"source_kind": "queue", "portal_link": None, **context}
    if zaqar_template:
        try:
            text = zaqar_template.get("body", "").format(
                context["source_name"], context["project"], context["confirmation_link"]
            )
        except (IndexError, KeyError, ValueError) as exc:
            raise ValueError(f"Zaqar {kind} e-mail template body: {exc!r}") from exc
        return RenderedEmail(
            subject=zaqar_template.get("topic", ""), text=text, sender=zaqar_template.get("sender")
        )
    templates = templates or EmailTemplates()
    return templates.render(CONFIRMATION_TEMPLATES[kind], context)


# -- building --------------------------------------------------------------------


def build_email(
    target: EmailTarget, rendered: RenderedEmail, smtp_from: str, delivery_id: str, now: float
) -> OutgoingEmail:
    """Return the OutgoingEmail of a rendered e-mail for ``target``.

    The envelope sender is always ``smtp_from``; a different From (the
    subscription's ``from`` option) gets ``smtp_from`` as Sender. The
    Message-ID derives from ``delivery_id``, so retries carry the same one.
    """
    envelope_name, envelope = check_mailbox(smtp_from, "smtp_from")
    from_name, from_addr = check_mailbox(target.sender or rendered.sender or smtp_from, "from")
    message = EmailMessage(policy=_BUILD_POLICY)
    message["From"] = _address(from_addr, from_name)
    if from_addr != envelope:
        message["Sender"] = _address(envelope, envelope_name)
    message["To"] = [_address(a) for a in target.to]
    if target.cc:
        message["Cc"] = [_address(a) for a in target.cc]
    message["Subject"] = target.subject or rendered.subject
    message["Date"] = email.utils.format_datetime(
        datetime.datetime.fromtimestamp(now, datetime.UTC)
    )
    message["Message-ID"] = _message_id(delivery_id, envelope)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies
    message.set_content(rendered.text)
    if rendered.html is not None:
        message.add_alternative(rendered.html, subtype="html")
    recipients = _unique(target.to + target.cc + target.bcc)
    return OutgoingEmail(
        sender=envelope,
        recipients=recipients,
        message=message,
        bcc=target.bcc,
        smtputf8=not all(a.isascii() for a in (envelope, from_addr, *recipients)),
    )


def _address(addr_spec: str, display_name: str = "") -> Address:
    local, _, domain = addr_spec.rpartition("@")
    return Address(display_name=display_name, username=local, domain=domain)


def _message_id(delivery_id: str | None, envelope: str) -> str:
    token = re.sub(r"[^A-Za-z0-9._-]", "-", delivery_id or "")
    domain = envelope.rpartition("@")[2]
    return f"<{token}@{domain}>" if token else email.utils.make_msgid(domain=domain)


def classify_smtp_code(code: int | None) -> str:
    """Return ``"transient"`` (4xx, or no code) or ``"permanent"`` (5xx)."""
    return "permanent" if 500 <= (code or 0) <= 599 else "transient"
