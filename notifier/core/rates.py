"""Delivery and failure rates over the last hour, and their bar chart.

Pure: attempt records and the clock in, plain data out. The console (per
source and per subscription) and the subscriber portal draw the same
numbers with the same chart (``templates/web/charts.html``).
"""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

HOUR = 3600.0
BUCKETS = 12  # five-minute bars over the last hour
#: Attempt outcomes that count as a failure (a retry, a dead letter, ...).
FAILURES = frozenset({"failed", "dead_lettered", "held", "expired"})

Rates = dict[str, Any]
Bucket = dict[str, int]


def rates(attempts: Iterable[Mapping[str, Any]], now: float) -> Rates:
    """Return the last hour's deliveries and failures of some attempts, in
    total and per five-minute bucket (oldest first)."""
    width = HOUR / BUCKETS
    buckets: list[Bucket] = [{"delivered": 0, "failed": 0} for _ in range(BUCKETS)]
    for attempt in attempts:
        age = now - float(attempt.get("at") or 0)
        if not 0 <= age < HOUR:
            continue
        outcome = attempt.get("outcome")
        slot = buckets[BUCKETS - 1 - int(age // width)]
        if outcome == "delivered":
            slot["delivered"] += 1
        elif outcome in FAILURES:
            slot["failed"] += 1
    return _totals(buckets)


def add_rates(total: Rates, more: Rates) -> Rates:
    """Return two :func:`rates` results added up."""
    return _totals(
        [
            {k: a[k] + b[k] for k in ("delivered", "failed")}
            for a, b in zip(total["buckets"], more["buckets"])
        ]
    )


def _totals(buckets: list[Bucket]) -> Rates:
    delivered = sum(b["delivered"] for b in buckets)
    failed = sum(b["failed"] for b in buckets)
    tried = delivered + failed
    return {
        "delivered": delivered,
        "failed": failed,
        "failure_rate": round(100.0 * failed / tried, 1) if tried else 0.0,
        "buckets": buckets,
    }


def rate_chart(buckets: Sequence[Bucket], width: int = 240, height: int = 40) -> dict[str, Any]:
    """Return the bars of a delivered / failed chart (stacked, one per bucket)."""
    tallest = max((b["delivered"] + b["failed"] for b in buckets), default=0) or 1
    step = width / max(len(buckets), 1)
    bars = []
    for index, bucket in enumerate(buckets):
        delivered = (height - 10) * bucket["delivered"] / tallest
        failed = (height - 10) * bucket["failed"] / tallest
        bars.append(
            {
                "x": round(index * step + 1, 1),
                "width": round(step - 2, 1),
                "delivered_y": round(height - delivered, 1),
                "delivered_height": round(delivered, 1),
                "failed_y": round(height - delivered - failed, 1),
                "failed_height": round(failed, 1),
                "title": f"{bucket['delivered']} delivered, {bucket['failed']} failed",
            }
        )
    return {"width": width, "height": height, "bars": bars}
