"""Sign and verify Zaqar pre-signed URLs and Standard Webhooks payloads.

Pure functions over plain data: no I/O; the clock comes in as ``now``.

Zaqar pre-signed URLs (byte-compatible with ``zaqar.common.urls``) carry the
hex HMAC-SHA256 of ``<paths>\\n<methods>\\n<project>\\n<expires>``: each
``\\n`` is a literal backslash and ``n``, paths and methods are sorted and
comma-joined, a missing project is ``None``, expires is UTC
``%Y-%m-%dT%H:%M:%S``. Zaqar searched the request path with each signed path
as a regular expression; here it must equal one of them exactly.

Standard Webhooks (https://www.standardwebhooks.com/) sign
``<msg_id>.<timestamp>.<body>`` with HMAC-SHA256 under the base64-decoded
part of a ``whsec_`` secret and send ``v1,<base64 digest>``; during secret
rotation the header carries several signatures separated by spaces.
"""

import base64
import binascii
import datetime
import hashlib
import hmac
import re
import secrets as _secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from notifier.errors import AuthError, ValidationError

EXPIRES_FORMAT = "%Y-%m-%dT%H:%M:%S"
DEFAULT_TTL = datetime.timedelta(days=1)
ALLOWED_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"})
SIGNED_HEADERS = {
    "signature": "url-signature",
    "expires": "url-expires",
    "methods": "url-methods",
    "paths": "url-paths",
    "project": "x-project-id",
}
WEBHOOK_SECRET_PREFIX = "whsec_"
WEBHOOK_SECRET_BYTES = 32

# What Zaqar's parse_isotime accepts in practice; rejects bare integers.
_EXPIRES_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})?")
# Unreserved characters only: no percent-encoding, commas or dot segments.
_PLAIN_PATH_RE = re.compile(r"/v2(?:/(?!\.\.?(?:/|$))[A-Za-z0-9_~.-]+)+")
_UNSAFE_PATH_RE = re.compile(r"[%\\\x00-\x20\x7f]")
# A backslash could shift text between the fields of the signed text.
_UNSAFE_PROJECT_RE = re.compile(r"[\\\x00-\x1f\x7f]")


# ---------------------------------------------------------------- Zaqar URLs


def sign_url(
    key: str | bytes,
    paths: str | Iterable[Any],
    methods: str | Iterable[Any] | None = None,
    project: str | None = None,
    expires: datetime.datetime | str | None = None,
) -> str:
    """Return Zaqar's hex HMAC-SHA256 signature of a pre-signed URL."""
    expires_at = _parse_expires(expires)
    if expires_at is None:
        raise ValueError("expires must be a datetime or a string like 2100-01-01T00:00:00")
    # Zaqar joins the fields with a literal backslash-n, not a newline.
    text = r"\n".join(
        [
            ",".join(sorted(_as_list(paths))),
            ",".join(sorted(_as_list(methods) or ["GET"])),
            str(project),
            expires_at.strftime(EXPIRES_FORMAT),
        ]
    )
    return hmac.new(_key_bytes(key), text.encode("utf-8"), hashlib.sha256).hexdigest()


def create_signed_url(
    key: str | bytes,
    paths: Any,
    methods: Any = None,
    project: Any = None,
    expires_at: datetime.datetime | str | None = None,
    now: datetime.datetime | None = None,
) -> dict[str, Any]:
    """Validate a share request and return Zaqar's share response body."""
    moment = _utc_naive(now)
    paths = _validated_paths(paths)
    methods = _validated_methods(methods)
    if project is not None and (
        not isinstance(project, str)
        or project in ("", "None")
        or _UNSAFE_PROJECT_RE.search(project)
    ):
        raise ValidationError(
            "project must be a non-empty string other than 'None', "
            "without backslashes or control characters",
            field="project",
        )
    expiry = _parse_expires(moment + DEFAULT_TTL if expires_at is None else expires_at)
    if expiry is None:
        raise ValidationError(
            "expires must be a date and time like 2100-01-01T00:00:00Z", field="expires"
        )
    if expiry <= moment:
        raise ValidationError("expires must be in the future", field="expires")
    return {
        "signature": sign_url(key, paths, methods, project, expiry),
        "expires": expiry.strftime(EXPIRES_FORMAT),
        "project": project,
        "paths": paths,
        "methods": methods,
    }


def verify_signed_request(
    key: str | bytes,
    *,
    signature: object,
    expires: object,
    methods: str | Iterable[Any] | None,
    paths: str | Iterable[Any] | None,
    project: str | None,
    request_method: str,
    request_path: object,
    now: datetime.datetime | None = None,
) -> None:
    """Raise AuthError unless the request is allowed by its signed headers.

    ``methods`` and ``paths`` are header values (comma-separated) or lists.
    ``request_path`` is the path the router dispatches on, without a query.
    """
    if not signature or not isinstance(signature, str):
        raise AuthError("URL-Signature is missing")
    expires_at = _parse_expires(expires)
    if expires_at is None:
        raise AuthError("URL-Expires is missing or not a date and time like 2100-01-01T00:00:00")
    method_list, path_list = _as_list(methods), _as_list(paths)
    if not method_list:
        raise AuthError("URL-Methods is missing")
    if not path_list:
        raise AuthError("URL-Paths is missing")
    if project == "None":
        # Signs exactly like a missing project: refuse to conflate the two.
        raise AuthError(
            "X-Project-ID 'None' is ambiguous; omit the header for a URL signed without a project"
        )
    expected = sign_url(key, path_list, method_list, project, expires_at)
    if not hmac.compare_digest(expected.encode("utf-8"), signature.encode("utf-8")):
        raise AuthError("URL-Signature does not match the signed headers")
    if expires_at <= _utc_naive(now):
        raise AuthError("the pre-signed URL has expired")
    if request_method not in method_list:
        raise AuthError("the request method is not one of URL-Methods")
    _check_request_path(request_path)
    if request_path not in path_list:
        raise AuthError("the request path is not one of URL-Paths")


def parse_signed_headers(headers: Mapping[Any, Any]) -> dict[str, Any] | None:
    """Return the signed-URL fields of ``headers``, or None if unsigned."""
    lowered = {str(name).lower(): value for name, value in headers.items()}
    if not lowered.get(SIGNED_HEADERS["signature"]):
        return None
    return {field: lowered.get(name) for field, name in SIGNED_HEADERS.items()}


def _validated_paths(paths: Any) -> list[str]:
    if not isinstance(paths, (list, tuple)) or not paths:
        raise ValidationError("paths must be a non-empty list", field="paths")
    for path in paths:
        if not isinstance(path, str) or not _PLAIN_PATH_RE.fullmatch(path):
            raise ValidationError(
                "each path must start with /v2/ and contain only letters, "
                "digits, '_', '-', '~' and '.' between slashes",
                field="paths",
            )
    return sorted(set(paths))


def _validated_methods(methods: Any) -> list[str]:
    if methods is None or methods == []:
        return ["GET"]
    if not isinstance(methods, (list, tuple)) or any(m not in ALLOWED_METHODS for m in methods):
        raise ValidationError(
            "methods must be a list of: " + ", ".join(sorted(ALLOWED_METHODS)), field="methods"
        )
    return sorted(set(methods))


def _check_request_path(path: object) -> None:
    if not isinstance(path, str) or not path.startswith("/"):
        raise AuthError("the request path must start with '/'")
    if _UNSAFE_PATH_RE.search(path):
        raise AuthError(
            "the request path contains percent-encoding, backslashes, spaces or control characters"
        )
    if any(s in (".", "..") for s in path.split("/")):
        raise AuthError("the request path contains dot segments")


def _as_list(value: str | Iterable[Any] | None) -> list[str]:
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else value
    return [str(item).strip() for item in items if str(item).strip()]


def _parse_expires(value: object) -> datetime.datetime | None:
    """Return a datetime or ISO text as whole seconds of naive UTC, or None."""
    if isinstance(value, datetime.datetime):
        return _utc_naive(value).replace(microsecond=0)
    if not isinstance(value, str) or not _EXPIRES_RE.fullmatch(value):
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value)
        return _utc_naive(parsed).replace(microsecond=0)
    except (ValueError, OverflowError):  # e.g. 9999-12-31T23:59:59-01:00
        return None


def _utc_naive(moment: datetime.datetime | None = None) -> datetime.datetime:
    """Return ``moment`` (default now) in naive UTC; naive input is UTC."""
    if moment is None:
        return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(datetime.UTC).replace(tzinfo=None)


def _key_bytes(key: str | bytes) -> bytes:
    if not key:
        raise ValueError("the signing key is empty")
    return key if isinstance(key, bytes) else key.encode("utf-8")


# ---------------------------------------------------------- Standard Webhooks


def generate_webhook_secret() -> str:
    """Return a new random ``whsec_`` secret."""
    raw = _secrets.token_bytes(WEBHOOK_SECRET_BYTES)
    return WEBHOOK_SECRET_PREFIX + base64.b64encode(raw).decode("ascii")


def validate_webhook_secret(secret: str, field: str = "secret") -> str:
    """Return ``secret`` if it is ``whsec_`` + base64 of 16-64 bytes."""
    _decode_webhook_secret(secret, field)
    return secret


def sign_webhook(secret: str, msg_id: object, timestamp: object, body: str | bytes) -> str:
    """Return the ``v1,<base64>`` Standard Webhooks signature of one body."""
    key = _decode_webhook_secret(secret, "secret")
    if isinstance(body, str):
        body = body.encode("utf-8")
    signed = b"%s.%s.%s" % (
        str(msg_id).encode("utf-8"),
        _timestamp_text(timestamp).encode("ascii"),
        body,
    )
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def webhook_signature_header(
    secrets: str | Sequence[str], msg_id: object, timestamp: object, body: str | bytes
) -> str:
    """Return one signature per secret (current first), space-separated."""
    if isinstance(secrets, str):
        secrets = [secrets]
    if not secrets:
        raise ValidationError("at least one webhook secret is required", field="secret")
    return " ".join(sign_webhook(s, msg_id, timestamp, body) for s in secrets)


def webhook_headers(
    secrets: str | Sequence[str], msg_id: object, timestamp: object, body: str | bytes
) -> dict[str, str]:
    """Return the ``webhook-id``/``-timestamp``/``-signature`` headers."""
    return {
        "webhook-id": str(msg_id),
        "webhook-timestamp": _timestamp_text(timestamp),
        "webhook-signature": webhook_signature_header(secrets, msg_id, timestamp, body),
    }


def _decode_webhook_secret(secret: object, field: str) -> bytes:
    if not isinstance(secret, str) or not secret.startswith(WEBHOOK_SECRET_PREFIX):
        raise ValidationError("a webhook secret must start with 'whsec_'", field=field)
    encoded = secret[len(WEBHOOK_SECRET_PREFIX) :]
    try:
        raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError(
            "a webhook secret must be 'whsec_' followed by base64", field=field
        ) from None
    if not 16 <= len(raw) <= 64:
        raise ValidationError("a webhook secret must decode to 16-64 bytes", field=field)
    return raw


def _timestamp_text(timestamp: object) -> str:
    """Return integer Unix seconds as text, from an int, digits or datetime."""
    if isinstance(timestamp, datetime.datetime):
        utc = _utc_naive(timestamp).replace(tzinfo=datetime.UTC)
        return str(int(utc.timestamp()))
    text = str(timestamp)
    if isinstance(timestamp, bool) or not text.isdigit() or not text.isascii():
        raise ValidationError("timestamp must be whole Unix seconds", field="timestamp")
    return text
