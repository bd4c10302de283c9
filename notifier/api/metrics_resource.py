"""GET /metrics: Prometheus text format, for the API's processes and the fleet."""

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)

from notifier.observability.metrics import SharedStateCollector


class Metrics:
    def __init__(self, storage, queue_names):
        self.shared = CollectorRegistry(auto_describe=False)
        self.shared.register(SharedStateCollector(storage, queue_names))

    def on_get(self, req, resp):
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            local = CollectorRegistry()
            multiprocess.MultiProcessCollector(local)
        else:
            local = REGISTRY
        resp.content_type = CONTENT_TYPE_LATEST
        resp.data = generate_latest(local) + generate_latest(self.shared)
