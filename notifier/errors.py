"""The one error hierarchy of notifier.

    NotifierError                      anything the service raises on purpose
    ├── ValidationError      -> 400    bad input; names the offending field
    ├── AuthError            -> 401    missing or invalid credentials / signature
    ├── ForbiddenError       -> 403    authenticated but not allowed
    │   └── QuotaExceededError -> 403  a project's quota is used up; names it
    ├── NotFoundError        -> 404    unknown queue, message, subscription, topic
    ├── ConflictError        -> 409    e.g. the same subscriber twice
    ├── RateLimitedError     -> 429    too many of something; says when to retry
    ├── UnavailableError     -> 503    Redis or the broker cannot be reached
    └── DeliveryError                  raised by sinks, never reaches HTTP
        ├── TransientDeliveryError     worth retrying (5xx, timeouts, SMTP 4xx)
        └── PermanentDeliveryError     will never succeed (4xx, bad address)

Each class carries its HTTP status (``http_status``, the numbers above); the
API (``notifier.api.errors``) and the pages (``notifier.web``) answer with it.
"""


class NotifierError(Exception):
    """Base class of every error notifier raises on purpose."""

    title = "Error"
    http_status = 500

    def __init__(self, description: str = "", field: str | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.field = field


class ValidationError(NotifierError):
    title = "Invalid request"
    http_status = 400


class AuthError(NotifierError):
    title = "Unauthorized"
    http_status = 401


class ForbiddenError(NotifierError):
    title = "Forbidden"
    http_status = 403


class QuotaExceededError(ForbiddenError):
    """``limit`` is the name of the option that sets the quota."""

    title = "Quota exceeded"

    def __init__(self, description: str = "", limit: str | None = None) -> None:
        super().__init__(description)
        self.limit = limit


class NotFoundError(NotifierError):
    title = "Not found"
    http_status = 404


class ConflictError(NotifierError):
    title = "Conflict"
    http_status = 409


class RateLimitedError(NotifierError):
    """Too many requests of a kind; ``retry_after`` seconds until allowed."""

    title = "Too many requests"
    http_status = 429

    def __init__(
        self, description: str = "", field: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(description, field)
        self.retry_after = retry_after


class UnavailableError(NotifierError):
    """A backend cannot be reached; ``retry_after`` seconds until worth
    trying again; ``backend`` names it (``redis``: the store)."""

    title = "Service unavailable"
    http_status = 503

    def __init__(
        self, description: str = "", retry_after: float | None = None, backend: str | None = None
    ) -> None:
        super().__init__(description)
        self.retry_after = retry_after
        self.backend = backend


class DeliveryError(NotifierError):
    """A sink could not deliver one notification.

    ``kind`` is a short machine-readable reason recorded in the attempt log
    (``timeout``, ``connection``, ``http_status``, ``smtp``, ...); ``status``
    is the remote status code when there was one.
    """

    retryable = False

    def __init__(
        self,
        description: str = "",
        kind: str = "error",
        status: int | None = None,
        retry_after_seconds: float | None = None,
        response_body: str | None = None,
    ) -> None:
        super().__init__(description)
        self.kind = kind
        self.status = status
        self.retry_after_seconds = retry_after_seconds
        self.response_body = response_body


class TransientDeliveryError(DeliveryError):
    retryable = True


class PermanentDeliveryError(DeliveryError):
    retryable = False
