"""Read a page request's signed link: verified, or refused with AuthError."""

from notifier.core import links
from notifier.errors import ValidationError

MAX_FORM_BYTES = 64 * 1024


def verified(req, key, path, scope):
    """Return the link a request carries in its query, if it grants ``scope`` on ``path``."""
    return links.verify_link(
        key,
        path,
        scope,
        req.get_param("project"),
        req.get_param("expires"),
        req.get_param("signature"),
    )


def form(req, key, link):
    """Return a POSTed form after checking its CSRF token."""
    if req.content_length is not None and req.content_length > MAX_FORM_BYTES:
        raise ValidationError("The form is too large.", field="body")
    media = req.get_media(default_when_empty={}) if req.content_length else {}
    fields = media if isinstance(media, dict) else {}
    if not links.csrf_valid(key, link, fields.get("csrf")):
        raise ValidationError(
            "The form's CSRF token is missing or wrong; reload the page.", field="csrf"
        )
    return fields
