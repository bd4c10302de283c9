"""Retry schedules and failure classification for webhook delivery.

A pure module: plain data in, plain data out, no clock and no I/O. It
implements Zaqar's ``_retry_policy`` (specs: "Notification Delivery Policy",
"Support More Backoff Functions"); ``docs/retry-backoff.md`` explains the
phases, the four backoff curves and where they deviate from the specs.

A schedule is the list of delays, in seconds, before each retry that follows
the initial delivery attempt::

    immediate      pre-backoff       backoff                post-backoff
    0, 0, 0,  ->   MIN, MIN, MIN, -> MIN ... curve ... MAX, -> MAX, MAX, MAX
"""

import dataclasses
import datetime
import email.utils
import math
import re
from collections.abc import Callable
from typing import Any

from notifier.errors import ValidationError

#: Names accepted for ``retry_backoff_function``.
BACKOFF_FUNCTIONS = ("linear", "arithmetic", "geometric", "exponential")

#: Upper bound of each retry count (per phase); keeps a schedule finite and short.
MAX_RETRIES_PER_PHASE = 100

#: Upper bound of ``minimum_delay`` and ``maximum_delay``: one day.
MAX_DELAY_SECONDS = 86400

_COUNT_FIELDS = (
    "retries_with_no_delay",
    "minimum_delay_retries",
    "maximum_delay_retries",
    "backoff_retries",
)
_DELAY_FIELDS = ("minimum_delay", "maximum_delay")
_DELTA_SECONDS = re.compile(r"[+-]?[0-9]+")


def _linear(lo: float, hi: float, i: int, n: int) -> float:
    # Interval (MAX-MIN)/(N-1), not the spec's /N, so that retry N is at MAX.
    return lo + (hi - lo) * i / (n - 1)


def _arithmetic(lo: float, hi: float, i: int, n: int) -> float:
    # Spec: time_n = MIN + n(n-1)/2 * d, d = 2(MAX-MIN)/(N(N-1)), n = i + 1.
    return lo + (hi - lo) * i * (i + 1) / (n * (n - 1))


def _geometric(lo: float, hi: float, i: int, n: int) -> float:
    if lo == 0:
        # MAX/0 has no ratio: run the series from 1 to MAX+1, one second lower.
        return _geometric(1, hi + 1, i, n) - 1
    ratio: float = (hi / lo) ** (i / (n - 1))
    return lo * ratio


def _exponential(lo: float, hi: float, i: int, n: int) -> float:
    # The spec's p*k^n equals the geometric series, so use a distinct curve:
    # the excess over MIN grows by a factor of about e per retry.
    return lo + (hi - lo) * math.expm1(i) / math.expm1(n - 1)


_CURVES: dict[str, Callable[[float, float, int, int], float]] = {
    "linear": _linear,
    "arithmetic": _arithmetic,
    "geometric": _geometric,
    "exponential": _exponential,
}


def backoff_delays(
    function: str, minimum_delay: float, maximum_delay: float, count: int
) -> list[float]:
    """Return the backoff phase's ``count`` delays, from minimum to maximum.

    The first value is ``minimum_delay`` and the last ``maximum_delay``
    exactly; values in between come from the named curve, rounded to the
    millisecond, and never decrease. A phase of one retry is
    ``[maximum_delay]``: the backoff phase exists to reach the maximum.
    """
    curve = _CURVES.get(function)
    if curve is None:
        raise ValueError(f"unknown backoff function {function!r}")
    if count <= 0:
        return []
    if count == 1:
        return [float(maximum_delay)]
    middle = [round(curve(minimum_delay, maximum_delay, i, count), 3) for i in range(1, count - 1)]
    return [float(minimum_delay), *middle, float(maximum_delay)]


def _field(key: str) -> str:
    return f"_retry_policy.{key}"


def _check_int(key: str, value: object, upper: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(
            f"{key} must be an integer, not {type(value).__name__}", field=_field(key)
        )
    if not 0 <= value <= upper:
        raise ValidationError(
            f"{key} must be between 0 and {upper}, got {value}", field=_field(key)
        )


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """A validated retry policy; see the module docstring for the phases."""

    retries_with_no_delay: int = 3
    minimum_delay_retries: int = 3
    minimum_delay: int = 5
    maximum_delay: int = 30
    maximum_delay_retries: int = 3
    retry_backoff_function: str = "linear"
    ignore_subscription_override: bool = False
    backoff_retries: int = 10

    def __post_init__(self) -> None:
        for key in _COUNT_FIELDS:
            _check_int(key, getattr(self, key), MAX_RETRIES_PER_PHASE)
        for key in _DELAY_FIELDS:
            _check_int(key, getattr(self, key), MAX_DELAY_SECONDS)
        if self.maximum_delay < self.minimum_delay:
            raise ValidationError(
                f"maximum_delay ({self.maximum_delay}) must be greater than "
                f"or equal to minimum_delay ({self.minimum_delay})",
                field=_field("maximum_delay"),
            )
        if self.retry_backoff_function not in BACKOFF_FUNCTIONS:
            raise ValidationError(
                f"retry_backoff_function must be one of {', '.join(BACKOFF_FUNCTIONS)}",
                field=_field("retry_backoff_function"),
            )
        if not isinstance(self.ignore_subscription_override, bool):
            raise ValidationError(
                "ignore_subscription_override must be a boolean",
                field=_field("ignore_subscription_override"),
            )

    @classmethod
    def from_dict(cls, d: Any, defaults: "RetryPolicy | None" = None) -> "RetryPolicy":
        """Build a policy from a ``_retry_policy`` dict; missing keys take ``defaults``."""
        if not isinstance(d, dict):
            raise ValidationError("_retry_policy must be an object", field="_retry_policy")
        known = {f.name for f in dataclasses.fields(cls)}
        for key in d:
            if key not in known:
                raise ValidationError(
                    f"{key} is not a retry policy option; expected one of "
                    f"{', '.join(sorted(known))}",
                    field=_field(key),
                )
        return dataclasses.replace(defaults or cls(), **d)

    def to_dict(self) -> dict[str, Any]:
        """Return the policy as a ``_retry_policy`` dict."""
        return dataclasses.asdict(self)

    @property
    def total_retries(self) -> int:
        """Number of retries after the initial attempt, over all four phases."""
        return (
            self.retries_with_no_delay
            + self.minimum_delay_retries
            + self.backoff_retries
            + self.maximum_delay_retries
        )

    def delays(self) -> list[float]:
        """Return the delay in seconds before each retry, all phases in order."""
        return (
            [0.0] * self.retries_with_no_delay
            + [float(self.minimum_delay)] * self.minimum_delay_retries
            + backoff_delays(
                self.retry_backoff_function,
                self.minimum_delay,
                self.maximum_delay,
                self.backoff_retries,
            )
            + [float(self.maximum_delay)] * self.maximum_delay_retries
        )

    def next_delay(self, retry_number: int) -> float | None:
        """Return the delay before retry ``retry_number`` (1-based), None when exhausted."""
        if retry_number < 1:
            raise ValueError(f"retry_number starts at 1, got {retry_number}")
        schedule = self.delays()
        if retry_number > len(schedule):
            return None
        return schedule[retry_number - 1]

    def delay_after_failure(
        self, retry_number: int, retry_after: float | None = None
    ) -> float | None:
        """Return the policy delay, raised to ``retry_after`` seconds when given.

        None when the policy is exhausted: a Retry-After header never adds
        retries. The caller caps ``retry_after`` (see ``parse_retry_after``).
        """
        delay = self.next_delay(retry_number)
        if delay is None or retry_after is None:
            return delay
        return max(delay, float(retry_after))


def resolve_policy(
    queue_policy: Any, subscription_policy: Any, defaults: RetryPolicy | None = None
) -> RetryPolicy:
    """Pick the policy for one subscription from the queue's and its own.

    The subscription's policy wins unless the queue's sets
    ``ignore_subscription_override``; with neither, ``defaults`` applies.
    None and ``{}`` both mean "not set", as in Zaqar, which reads
    ``options.get('_retry_policy', {})``.
    """
    defaults = defaults or RetryPolicy()
    queue = RetryPolicy.from_dict(queue_policy, defaults) if queue_policy else None
    if queue is not None and queue.ignore_subscription_override:
        return queue
    if subscription_policy:
        return RetryPolicy.from_dict(subscription_policy, defaults)
    return queue or defaults


def classify_http_status(status: object) -> str:
    """Return ``"success"``, ``"transient"`` or ``"permanent"`` for an HTTP status.

    2xx succeeds. 5xx, 408, 429 and anything outside 200-599 (the spec's
    "failed delivery attempt") are transient. 3xx is transient too: redirects
    are not followed, 302/303/307 say the move is temporary, and a 301/308 is
    a receiver misconfiguration that may be fixed within the schedule. Every
    other 4xx is permanent.
    """
    if isinstance(status, bool) or not isinstance(status, int):
        raise TypeError(f"status must be an int, not {type(status).__name__}")
    if 200 <= status <= 299:
        return "success"
    if 400 <= status <= 499 and status not in (408, 429):
        return "permanent"
    return "transient"


def parse_retry_after(value: object, now_epoch_seconds: float, cap_seconds: float) -> float | None:
    """Return a Retry-After header's wait in seconds, clamped to [0, cap].

    ``value`` is delta-seconds or an HTTP-date (compared with
    ``now_epoch_seconds``); a negative number or a past date gives 0.
    Anything else, including None and the empty string, gives None.
    """
    if cap_seconds < 0:
        raise ValueError(f"cap_seconds must be >= 0, got {cap_seconds}")
    seconds = _retry_after_seconds(value, now_epoch_seconds)
    if seconds is None:
        return None
    return float(min(max(0.0, seconds), cap_seconds))


def _retry_after_seconds(value: object, now: float) -> float | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str):
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        return float(value)  # not int(): Python limits int() to 4300 digits
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        # "-0000" and zone-less dates come back naive; HTTP-dates are GMT.
        when = when.replace(tzinfo=datetime.UTC)
    return when.timestamp() - now
