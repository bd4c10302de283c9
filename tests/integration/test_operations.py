"""Operability: /metrics, JSON logs, heartbeats and health checks."""

import json
import logging
import os
import time

import falcon.testing
import pytest

from notifier.api.app import create_app
from notifier.cli import main as cli_main
from notifier.delivery.service import DeliveryService
from notifier.observability.heartbeat import Heartbeat, is_fresh
from notifier.observability.logs import JsonFormatter
from notifier.store.storage import Source
from tests.support.dispatch import MemoryDispatcher
from workers.app import TASK_QUEUES


def test_metrics_count_deliveries_and_read_shared_gauges_from_redis(conf, storage, receiver):
    dispatcher = MemoryDispatcher()
    service = DeliveryService(conf, storage, dispatcher)
    source = Source("p", "queues", "m")
    storage.create_subscription(source, receiver.url + "/m", 3600, {}, confirmed=True)
    dispatcher.send_fanout(source, storage.post_messages(source, [{"body": 1, "ttl": 60}]))
    dispatcher.run(service)
    storage.schedule_retries(
        [(time.time() + 3600, {"message_id": "x", "subscription_id": "y", "attempt": 1})]
    )

    client = falcon.testing.TestClient(create_app(conf, storage, dispatcher, TASK_QUEUES))
    text = client.simulate_get("/metrics").text

    assert 'notifier_deliveries_total{outcome="delivered",sink="webhook"}' in text
    assert "notifier_delivery_latency_seconds_bucket" in text
    assert "notifier_scheduled_retries 1.0" in text
    assert 'notifier_task_queue_depth{queue="notifier.deliver"}' in text


def test_json_logs_carry_ids_as_fields():
    record = logging.LogRecord(
        "notifier.delivery.outcomes", logging.INFO, __file__, 1, "delivery %s", ("failed",), None
    )
    record.message_id, record.subscription_id = "m1", "s1"
    document = json.loads(JsonFormatter().format(record))
    assert document["message"] == "delivery failed"
    assert (document["message_id"], document["subscription_id"]) == ("m1", "s1")
    assert document["level"] == "INFO"


def test_a_heartbeat_is_fresh_until_it_stops(tmp_path):
    path = str(tmp_path / "beat")
    assert not is_fresh(path, 60)
    Heartbeat(path, interval_seconds=0).beat()
    assert is_fresh(path, 60)
    old = time.time() - 120
    os.utime(path, (old, old))
    assert not is_fresh(path, 60)


@pytest.mark.parametrize("fresh, code", [(True, 0), (False, 1)])
def test_the_worker_healthcheck_reads_the_heartbeat(tmp_path, fresh, code):
    path = tmp_path / "worker.alive"
    config = tmp_path / "n.conf"
    config.write_text(f"[worker]\nheartbeat_file = {path}\n")
    if fresh:
        Heartbeat(str(path), interval_seconds=0).beat()
    with pytest.raises(SystemExit) as exited:
        cli_main(["healthcheck", "worker", "--config-file", str(config)])
    assert exited.value.code == code
