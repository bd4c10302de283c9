"""Request helpers shared by the resources: body reading, scoping, paging."""

from notifier.core import validation
from notifier.errors import ValidationError
from notifier.sinks import RequestContext
from notifier.store.storage import Source


def read_json(req, limit):
    """Read and parse the JSON body, refusing more than ``limit`` bytes."""
    if req.content_length is not None and req.content_length > limit:
        raise ValidationError(f"The request body is larger than {limit} bytes.", field="body")
    stream = req.stream if req.content_length is None and is_chunked(req) else req.bounded_stream
    try:
        raw = stream.read(limit + 1)  # the server decodes chunks
    except TimeoutError:
        raise  # a body too slow to arrive: 408 (api.errors.RequestTimeout)
    except Exception as exc:  # noqa: BLE001 - whatever the server raises for it
        # A malformed chunked body (a bad chunk size, a missing CRLF) or a
        # client gone mid-body: the request's fault, never a 500 or a 503.
        raise ValidationError(
            "The request body could not be read: malformed chunked encoding or a "
            f"truncated body ({type(exc).__name__}).",
            field="body",
        ) from exc
    if len(raw) > limit:
        raise ValidationError(f"The request body is larger than {limit} bytes.", field="body")
    return validation.parse_json(raw)


def is_chunked(req):
    return "chunked" in (req.get_header("Transfer-Encoding") or "").lower()


def has_body(req):
    """True if the request says it carries a body (a length or chunks)."""
    return bool(req.content_length) or is_chunked(req)


def project(req):
    return validation.project_id(req.get_header("X-Project-ID"))


def source(req, kind, name):
    singular = kind[:-1]
    return Source(project(req), kind, validation.source_name(name, singular))


def next_link(req, items, limit, marker):
    """Return Zaqar's ``links`` list: a next link when the page was full."""
    if len(items) < limit or not items:
        return []
    return [{"rel": "next", "href": f"{req.path}?marker={marker}&limit={limit}"}]


def age(now, created):
    return max(0, int(now - created))


def context(req):
    """Return who is asking, from the headers auth middleware sets."""
    roles = tuple(r.strip() for r in (req.get_header("X-Roles") or "").split(",") if r.strip())
    return RequestContext(
        project_id=project(req),
        user_id=req.get_header("X-User-ID"),
        auth_token=req.get_header("X-Auth-Token"),
        roles=roles,
        authenticated=req.get_header("X-Identity-Status") == "Confirmed",
    )
