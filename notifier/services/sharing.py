"""Pre-signed URLs (Zaqar's ``share``): a source's messages or subscriptions
for whoever holds the URL."""

from typing import Any

from notifier import errors
from notifier.core import signing, validation
from notifier.store.storage import Source

SHARE_KEYS = {"methods", "paths", "expires"}
#: What a share may grant, relative to the source (Zaqar's list, less claims,
#: which this service does not serve).
SHARE_PATHS = ("messages", "subscriptions")


def share(key: str, source: Source, document: Any) -> dict[str, Any]:
    """Return a pre-signed URL (Zaqar's response fields) for the share
    request ``document`` ({"methods", "paths", "expires"}, all optional)."""
    validation.obj(document, "body")
    unknown = set(document) - SHARE_KEYS
    if unknown:
        raise errors.ValidationError(
            f"Unknown field(s): {', '.join(sorted(unknown))}; a share request "
            "has methods, paths and expires.",
            field=sorted(unknown)[0],
        )
    paths = document.get("paths") or ["messages"]
    if not isinstance(paths, list) or any(p not in SHARE_PATHS for p in paths):
        raise errors.ValidationError(
            f"paths must be a list of: {', '.join(SHARE_PATHS)}.", field="paths"
        )
    methods = document.get("methods")
    if methods is not None and (
        not isinstance(methods, list) or not all(isinstance(m, str) for m in methods)
    ):
        raise errors.ValidationError("methods must be a list of HTTP methods.", field="methods")
    base = f"/v2/{source.kind}/{source.name}/"
    signed: dict[str, Any] = signing.create_signed_url(
        key,
        [base + p for p in paths],
        methods,
        project=source.project,
        expires_at=document.get("expires"),
    )
    return signed
