"""Prometheus metrics of the API and the workers.

Counters and histograms live in the process that observes them; with
several processes per role (gunicorn workers, Celery's prefork pool)
prometheus_client's multiprocess mode aggregates them: the CLI points
``PROMETHEUS_MULTIPROC_DIR`` at ``[metrics] multiprocess_dir`` before any
process forks. Gauges of shared state (task queue depth, pending retries,
open breakers) are read from Redis when scraped, so any API replica reports
the fleet's values.

Names (all prefixed ``notifier_``):

    deliveries_total{sink,outcome}          delivered, failed, dead_lettered,
                                             held, expired
    delivery_duration_seconds{sink}         one sink call
    delivery_latency_seconds{sink}          message posted -> delivered
    fanout_size                              deliveries made by one fan-out page
    messages_posted_total{kind}              messages accepted by the API
    redis_errors_total{component}            Redis unreachable or failing
    breaker_opened_total                     circuit breakers opened
    subscriptions_disabled_total             subscriptions disabled
    task_queue_depth{queue}                  tasks waiting (scrape time)
    scheduled_retries                        retries waiting in Redis (scrape time)
    open_breakers                            endpoints whose breaker is open (scrape time)
"""

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

from notifier.core import schemes

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)

DELIVERIES = Counter(
    "notifier_deliveries", "Delivery attempts by sink and outcome.", ["sink", "outcome"]
)
DELIVERY_DURATION = Histogram(
    "notifier_delivery_duration_seconds",
    "Time one sink call took.",
    ["sink"],
    buckets=LATENCY_BUCKETS,
)
DELIVERY_LATENCY = Histogram(
    "notifier_delivery_latency_seconds",
    "From message post to successful delivery.",
    ["sink"],
    buckets=LATENCY_BUCKETS,
)
FANOUT_SIZE = Histogram(
    "notifier_fanout_size",
    "Deliveries made by one fan-out page.",
    buckets=(0, 1, 5, 10, 50, 100, 500, 1000, 5000),
)
MESSAGES_POSTED = Counter("notifier_messages_posted", "Messages accepted by the API.", ["kind"])
REDIS_ERRORS = Counter("notifier_redis_errors", "Redis unreachable or failing.", ["component"])
BREAKERS_OPENED = Counter("notifier_breaker_opened", "Circuit breakers opened.")
SUBSCRIPTIONS_DISABLED = Counter(
    "notifier_subscriptions_disabled", "Subscriptions disabled after failing."
)


def sink_label(subscriber):
    scheme = subscriber.split(":", 1)[0].lower()
    return schemes.kind(scheme) or scheme


def observe_results(results, now):
    """Count a batch's outcomes: (delivery, message, subscription, attempt).

    Aggregated per batch: one counter update per (sink, outcome) and one
    label lookup per sink, not one of each per delivery (in multiprocess
    mode every update writes the process's shared file under a lock).
    """
    counts = {}
    durations = {}
    latencies = {}
    for _, message, subscription, attempt in results:
        sink = sink_label(subscription["subscriber"])
        outcome = attempt["outcome"]
        counts[sink, outcome] = counts.get((sink, outcome), 0) + 1
        durations.setdefault(sink, []).append(attempt.get("duration_ms", 0) / 1000.0)
        if outcome == "delivered":
            latencies.setdefault(sink, []).append(max(0.0, now - message["created"]))
    for (sink, outcome), count in counts.items():
        DELIVERIES.labels(sink, outcome).inc(count)
    for metric, values_by_sink in ((DELIVERY_DURATION, durations), (DELIVERY_LATENCY, latencies)):
        for sink, values in values_by_sink.items():
            child = metric.labels(sink)
            for value in values:
                child.observe(value)


class SharedStateCollector:
    """Gauges read from Redis at scrape time."""

    def __init__(self, storage, queue_names):
        self.storage = storage
        self.queue_names = queue_names

    def collect(self):
        depth = GaugeMetricFamily(
            "notifier_task_queue_depth", "Tasks waiting on the broker.", labels=["queue"]
        )
        retries = GaugeMetricFamily("notifier_scheduled_retries", "Retries waiting in Redis.")
        breakers = GaugeMetricFamily(
            "notifier_open_breakers", "Endpoints whose circuit breaker is open."
        )
        try:
            state = self.storage.shared_state(self.queue_names)
        except Exception:  # Redis down: report no shared gauges, count the error
            REDIS_ERRORS.labels("metrics").inc()
            return
        for name, count in state["queues"].items():
            depth.add_metric([name], count)
        retries.add_metric([], state["retries"])
        breakers.add_metric([], state["open_breakers"])
        yield from (depth, retries, breakers)
