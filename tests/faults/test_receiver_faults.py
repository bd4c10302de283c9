"""A subscriber down (connection refused) for a while, then back: every
message is delivered as its retry policy says, and a healthy subscriber of
the same queue is not held up meanwhile."""

import collections
import time

import pytest

from notifier import errors
from notifier.cli.redis_server import free_port
from notifier.conf import load_conf
from notifier.core import payloads
from notifier.core.retry import RetryPolicy
from notifier.sinks import Notification
from notifier.sinks.webhook import WebhookSink
from tests.support.faults import (
    Api,
    FaultReceiver,
    Tally,
    quiet,
    receiver_on_port,
    report,
    wait_until,
)

pytestmark = pytest.mark.slow  # real processes, several seconds each

POLICY = {
    "retries_with_no_delay": 1,
    "minimum_delay_retries": 2,
    "minimum_delay": 1,
    "maximum_delay": 3,
    "backoff_retries": 3,
    "maximum_delay_retries": 5,
    "retry_backoff_function": "linear",
}
DOWN_SECONDS = 4
DOWN_PATHS = ("/d1", "/d2")


def attempts_by_message(api, queue, subscription_id):
    by_message = collections.defaultdict(list)
    for record in reversed(api.attempts(queue, subscription_id)):
        if record.get("message_id"):
            by_message[record["message_id"]].append(record)
    return by_message


def test_a_subscriber_down_then_back_gets_everything_per_the_retry_policy(make_fleet):
    fleet = make_fleet()
    fleet.start("api")
    fleet.start("scheduler")
    fleet.start("worker")
    port = free_port()  # nothing listens there yet: connections are refused
    down_url = f"http://127.0.0.1:{port}"
    with quiet(FaultReceiver()) as healthy:
        api = Api(fleet.url)
        subscriptions = {
            p: api.subscribe("outage", down_url + p, _retry_policy=POLICY) for p in DOWN_PATHS
        }
        subscriptions["/ok"] = api.subscribe("outage", healthy.url + "/ok")
        posted = []
        started = time.time()
        for n in range(10):
            posted += api.post_ok("outage", [{"ttl": 600, "body": [n, k]} for k in range(2)])

        # The healthy subscriber gets everything while the other is down.
        assert len(healthy.wait_for(len(posted), "/ok", timeout=20)) == len(posted)
        healthy_after = max(r.at for r in healthy.received()) - started

        def refused_attempts():
            return sum(
                1
                for p in DOWN_PATHS
                for records in attempts_by_message(api, "outage", subscriptions[p]).values()
                for r in records
                if r["outcome"] == "failed"
            )

        assert wait_until(refused_attempts, 10)
        time.sleep(max(0.0, DOWN_SECONDS - (time.time() - started)))
        with receiver_on_port(port) as back:
            up_at = time.time()
            tally = Tally(
                [back, healthy],
                {(p, m) for p in DOWN_PATHS + ("/ok",) for m in posted},
                subscriptions,
            )
            tally.wait_complete(30)
            complete_after = time.time() - up_at
            back.wait_for(len(back.received()) + 1, timeout=1.5)
            duplicates = tally.check(max_duplicates=0)

        policy = RetryPolicy.from_dict(POLICY, RetryPolicy())
        retries, refused = [], 0
        for path in DOWN_PATHS:
            log = attempts_by_message(api, "outage", subscriptions[path])
            assert set(log) == set(posted)
            for message_id, records in log.items():
                numbers = [r["attempt"] for r in records]
                assert numbers == list(range(len(records))), (message_id, numbers)
                assert records[-1]["outcome"] == "delivered", records[-1]
                for record in records[:-1]:
                    assert record["outcome"] == "failed", record
                    # refused, not timed out: see the test below
                    assert record.get("error") == "connection", record
                    assert "refused" in record.get("detail", ""), record
                    refused += 1
                # each retry no earlier than the policy allows (deferrals by
                # the endpoint's breaker only add time)
                for before, after in zip(records, records[1:]):
                    delay = policy.delay_after_failure(after["attempt"])
                    assert delay is not None, "retried beyond the policy"
                    assert after["at"] - before["at"] >= delay - 0.05, (before, after)
                retries.append(len(records) - 1)
        report(
            "receiver down",
            f"{len(posted)} messages x 3 subscribers; the "
            f"healthy one had all {healthy_after:.1f} s after the first POST; "
            f"the refused one was down {up_at - started:.1f} s, {refused} refused "
            f"attempts, {min(retries)}-{max(retries)} retries per delivery "
            f"(policy allows {sum(1 for n in range(1, 200) if policy.delay_after_failure(n) is not None)}); "
            f"everything delivered {complete_after:.1f} s after it came back; "
            f"{duplicates} duplicates",
        )
        api.close()


def test_a_refused_connection_is_recorded_as_a_connection_error():
    conf = load_conf([])
    conf.set_override("allowed_networks", ["127.0.0.1/32"], group="webhook")
    conf.set_override("webhook_connect_timeout_seconds", 2, group="notification")
    message = {
        "id": "m1",
        "body": 1,
        "ttl": 60,
        "created": time.time(),
        "source": ["p", "queues", "q"],
    }
    subscription = {"id": "s1", "subscriber": f"http://127.0.0.1:{free_port()}/x", "options": {}}
    notification = Notification(
        delivery_id="msg_m1_s1",
        subscription=subscription,
        message=message,
        payload=payloads.notification_payload(message, "queues", "q"),
        attempt=0,
    )
    with pytest.raises(errors.TransientDeliveryError) as failure:
        WebhookSink(conf).deliver(notification)
    # refused at once, not reported as the connect timeout (2 s) running out
    assert failure.value.kind == "connection"
    assert "refused" in str(failure.value)
    assert "timed out" not in str(failure.value)
