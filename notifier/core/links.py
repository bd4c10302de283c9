"""Sign and verify the web pages' links: the subscriber portal and the console.

Pure functions over plain data; the clock comes in as ``now``.

A link is Zaqar's pre-signed URL signature (``notifier.core.signing``, the
``[signed_url] secret_key``) carried in the query string instead of headers:
``?project=P&expires=2100-01-01T00:00:00&signature=<hex>``. Its signed
"method" is ``PORTAL`` or ``CONSOLE``, which no HTTP request uses, and its
signed path is a page path (``/portal/...``, ``/console``), which no API route
serves: a link's fields sent as ``URL-Signature`` headers authorise no API
request, and an API share authorises no page.
"""

import datetime
import hashlib
import hmac
import re
from dataclasses import dataclass
from urllib.parse import urlencode

from notifier.core import signing
from notifier.errors import AuthError, ValidationError

PORTAL = "PORTAL"
CONSOLE = "CONSOLE"
CONSOLE_PATH = "/console"
#: The longest a link may live.
MAX_TTL = datetime.timedelta(days=90)
DEFAULT_TTL = datetime.timedelta(days=7)
_DURATION_RE = re.compile(r"(\d{1,9})([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Link:
    """The signed fields of a page link."""

    project: str
    expires: str
    signature: str

    def query(self) -> str:
        """Return the link's query string (without '?')."""
        return urlencode(
            {"project": self.project, "expires": self.expires, "signature": self.signature}
        )


def portal_path(kind: str, name: str, subscription_id: str) -> str:
    """Return the path of one subscription's portal."""
    return f"/portal/{kind}/{name}/{subscription_id}"


def portal_signed_path(kind: str, name: str, subscription_id: str, subscriber: str) -> str:
    """Return what a portal link signs: the page's path bound to the
    subscriber it was minted for. A link sent to one subscriber opens
    nothing once the owner points the subscription at another (as a
    confirmation link does not): the verifier signs with the stored one."""
    fingerprint = hashlib.sha256(subscriber.encode()).hexdigest()[:32]
    return f"{portal_path(kind, name, subscription_id)}#{fingerprint}"


def portal_url(
    key: str,
    base_url: str,
    source: tuple[str, str, str],
    subscription_id: str,
    subscriber: str,
    expires: object = None,
    now: datetime.datetime | None = None,
) -> str:
    """Return the portal URL of one subscription of ``source`` (project,
    kind, name), signed for the source's project and for ``subscriber``;
    ``base_url`` is the API's public URL. The API's portal route and
    confirmation messages both mint their links here."""
    project, kind, name = source
    signed = portal_signed_path(kind, name, subscription_id, subscriber)
    link = sign_link(key, signed, PORTAL, project, expires, now)
    return f"{base_url}{portal_path(kind, name, subscription_id)}?{link.query()}"


def sign_link(
    key: str,
    path: str,
    scope: str,
    project: str,
    expires: object = None,
    now: datetime.datetime | None = None,
) -> Link:
    """Return a link granting ``scope`` (PORTAL, CONSOLE) on ``path`` for ``project``.

    ``expires`` is a date and time (ISO text or datetime), a number of
    seconds from now, a duration like ``30m``, ``1h``, ``7d``, or None (7 days).
    """
    moment = _naive(now)
    expiry = expires_at(expires, moment)
    return Link(
        project, expiry.strftime(signing.EXPIRES_FORMAT), _sign(key, path, scope, project, expiry)
    )


def verify_link(
    key: str,
    path: str,
    scope: str,
    project: object,
    expires: object,
    signature: object,
    now: datetime.datetime | None = None,
) -> Link:
    """Return the link if it grants ``scope`` on ``path``, else raise AuthError."""
    if not key:
        raise AuthError("Links are disabled on this service ([signed_url] secret_key is not set).")
    if not isinstance(project, str) or not project or not isinstance(signature, str):
        raise AuthError("The link is incomplete: it needs project, expires and signature.")
    expiry = signing._parse_expires(expires)
    if expiry is None:
        raise AuthError("The link's expiry is not a date and time.")
    expected = _sign(key, path, scope, project, expiry)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise AuthError("The link was altered or is not for this page.")
    if expiry <= _naive(now):
        raise AuthError("The link has expired.")
    return Link(project, expiry.strftime(signing.EXPIRES_FORMAT), signature)


def csrf_token(key: str, link: Link) -> str:
    """Return the form token of a link's pages (derived: nothing is stored)."""
    text = f"csrf\n{link.signature}".encode()
    return hmac.new(key.encode(), text, hashlib.sha256).hexdigest()


def csrf_valid(key: str, link: Link, token: object) -> bool:
    """Return whether ``token`` is the form token of ``link``."""
    return isinstance(token, str) and hmac.compare_digest(
        csrf_token(key, link).encode(), token.encode()
    )


def expires_at(value: object, now: datetime.datetime) -> datetime.datetime:
    """Return when a link asked to expire at ``value`` expires (naive UTC),
    or raise ValidationError naming ``expires``."""
    if value is None:
        expiry = now + DEFAULT_TTL
    elif isinstance(value, int) and not isinstance(value, bool):
        expiry = now + datetime.timedelta(seconds=value)
    elif isinstance(value, str) and _DURATION_RE.fullmatch(value):
        match = _DURATION_RE.fullmatch(value)
        assert match is not None
        expiry = now + datetime.timedelta(seconds=int(match[1]) * _UNITS[match[2]])
    else:
        parsed = signing._parse_expires(value)
        if parsed is None:
            raise ValidationError(
                "expires must be a date and time like 2100-01-01T00:00:00Z, "
                "a number of seconds, or a duration like 30m, 1h, 7d",
                field="expires",
            )
        expiry = parsed
    expiry = expiry.replace(microsecond=0)
    if expiry <= now:
        raise ValidationError("expires must be in the future", field="expires")
    if expiry - now > MAX_TTL:
        raise ValidationError(
            f"expires must be within {MAX_TTL.days} days from now", field="expires"
        )
    return expiry


def _sign(key: str, path: str, scope: str, project: str, expiry: datetime.datetime) -> str:
    return signing.sign_url(key, [path], [scope], project, expiry)


def _naive(now: datetime.datetime | None) -> datetime.datetime:
    return signing._utc_naive(now)
