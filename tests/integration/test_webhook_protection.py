"""Signatures, SSRF at connect time, breakers, 410, enable: one process,
real Redis, the real webhook sink and a real HTTP receiver."""

import socket
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from notifier import errors
from notifier.delivery.service import DeliveryService
from notifier.sinks import Notification, SinkRegistry
from notifier.sinks.webhook import WebhookSink, rotate_secret
from notifier.store.storage import Source
from tests.support.dispatch import MemoryDispatcher

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def dispatcher():
    return MemoryDispatcher()


@pytest.fixture
def service(conf, storage, dispatcher):
    conf.set_override("breaker_failure_threshold", 3, group="webhook")
    conf.set_override("breaker_cooloff_seconds", 2, group="webhook")
    return DeliveryService(conf, storage, dispatcher)


def subscribe(storage, url, secrets=None, **options):
    source = Source("p", "queues", "q")
    extra = {"secrets": secrets} if secrets else None
    _, subscription_id = storage.create_subscription(
        source, url, 3600, options, confirmed=True, extra=extra
    )
    return source, subscription_id


def post(storage, dispatcher, source, count=1):
    ids = storage.post_messages(source, [{"body": {"n": n}, "ttl": 300} for n in range(count)])
    dispatcher.send_fanout(source, ids)
    return ids


def notification(subscription, body=None):
    message = {
        "id": "m1",
        "body": body or {"a": 1},
        "ttl": 60,
        "created": time.time(),
        "source": ["p", "queues", "q"],
    }
    return Notification(
        delivery_id="msg_m1_s1",
        subscription=subscription,
        message=message,
        payload={"body": message["body"]},
        attempt=0,
    )


def test_a_receiver_verifies_each_delivery_with_the_standardwebhooks_library(
    service, storage, dispatcher, receiver
):
    source, subscription_id = subscribe(
        storage, receiver.url + "/signed", secrets=[{"secret": SECRET, "expires": None}]
    )
    post(storage, dispatcher, source, 3)
    dispatcher.run(service)

    arrived = receiver.received("/signed")
    assert len(arrived) == 3
    for request in arrived:
        verified = Webhook(SECRET).verify(request.body, request.headers)
        assert verified == request.json()
        assert request.headers["webhook-id"] == (f"msg_{verified['message_id']}_{subscription_id}")


def test_the_webhook_id_is_stable_across_retries(service, storage, dispatcher, receiver):
    receiver.script("/flaky", [500, 200])
    source, subscription_id = subscribe(
        storage, receiver.url + "/flaky", secrets=[{"secret": SECRET, "expires": None}]
    )
    [message_id] = post(storage, dispatcher, source)
    dispatcher.run(service)  # first attempt fails, an immediate retry is queued
    arrived = receiver.received("/flaky")
    assert len(arrived) == 2
    assert {r.headers["webhook-id"] for r in arrived} == {f"msg_{message_id}_{subscription_id}"}


def test_after_rotation_both_secrets_verify_until_the_grace_period_ends(receiver, conf):
    sink = WebhookSink(conf)
    record = {
        "id": "s1",
        "subscriber": receiver.url + "/rot",
        "options": {},
        "secrets": [{"secret": SECRET, "expires": None}],
    }
    now = time.time()
    record["secrets"], new_secret = rotate_secret(record, 3600, now)
    sink.deliver(notification(record))
    [request] = receiver.received("/rot")
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    Webhook(SECRET).verify(request.body, request.headers)
    Webhook(new_secret).verify(request.body, request.headers)

    record["secrets"], newest = rotate_secret(record, 0, time.time())
    sink.deliver(notification(record))
    later = receiver.received("/rot")[-1]
    assert len(later.headers["webhook-signature"].split(" ")) == 1
    Webhook(newest).verify(later.body, later.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(later.body, later.headers)


def resolver_to(address):
    def resolve(host, port, type=0, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    return resolve


def test_a_host_name_resolving_to_a_forbidden_address_at_delivery_is_refused(conf, receiver):
    conf.set_override("allowed_networks", [], group="webhook")
    port = receiver.server.server_address[1]
    sink = WebhookSink(conf, resolver=resolver_to("127.0.0.1"))
    record = {"id": "s1", "subscriber": f"http://rebind.example:{port}/x", "options": {}}
    with pytest.raises(errors.PermanentDeliveryError) as caught:
        sink.deliver(notification(record))
    assert caught.value.kind == "forbidden_address"
    assert receiver.received() == []


def test_the_connection_goes_to_the_vetted_address_the_resolver_gave(conf, receiver):
    port = receiver.server.server_address[1]
    sink = WebhookSink(conf, resolver=resolver_to("127.0.0.1"))
    record = {"id": "s1", "subscriber": f"http://hooks.example:{port}/pinned", "options": {}}
    sink.deliver(notification(record))
    [request] = receiver.received("/pinned")
    assert request.headers["Host"] == f"hooks.example:{port}"


def test_redirects_are_failures_and_not_followed(conf, receiver):
    receiver.script("/moved", [302], headers={"Location": receiver.url + "/elsewhere"})
    sink = WebhookSink(conf)
    with pytest.raises(errors.DeliveryError) as caught:
        sink.deliver(
            notification({"id": "s", "subscriber": receiver.url + "/moved", "options": {}})
        )
    assert caught.value.status == 302
    assert receiver.received("/elsewhere") == []


def test_an_endpoint_that_keeps_failing_opens_its_breaker_and_holds_deliveries(
    service, storage, dispatcher, receiver
):
    receiver.script("/down", [500])
    source, subscription_id = subscribe(
        storage,
        receiver.url + "/down",
        _retry_policy={
            "retries_with_no_delay": 0,
            "minimum_delay_retries": 0,
            "backoff_retries": 0,
            "maximum_delay_retries": 5,
            "minimum_delay": 1,
            "maximum_delay": 1,
        },
    )
    post(storage, dispatcher, source, 6)
    dispatcher.run(service)

    # three failures open the breaker; the other deliveries wait, not attempted
    assert len(receiver.received("/down")) == 3
    assert storage.pending_retry_count() == 6
    state = service.admission.state.breaker(
        f"p:http://127.0.0.1:{receiver.server.server_address[1]}"
    )
    assert int(state["failures"]) == 3 and "open_until_ms" in state

    receiver.script("/down", [200])
    deadline = time.monotonic() + 15
    while len(receiver.received("/down")) < 9 and time.monotonic() < deadline:
        service.move_due_retries()
        dispatcher.run(service)
        time.sleep(0.2)
    assert len(receiver.received("/down")) == 9  # nothing lost: 3 failed + 6 sent
    assert (
        sorted(a["outcome"] for a in storage.subscription_attempts(subscription_id)).count(
            "delivered"
        )
        == 6
    )


def test_410_gone_disables_the_subscription_and_enabling_sends_what_was_held(
    service, storage, dispatcher, receiver
):
    receiver.script("/gone", [410, 200])
    source, subscription_id = subscribe(storage, receiver.url + "/gone")
    post(storage, dispatcher, source, 1)
    dispatcher.run(service)
    record = storage.get_subscription(source, subscription_id)
    assert record["disabled"] and "410" in record["disabled_reason"]
    events = storage.subscription_attempts(subscription_id)
    assert events[0]["outcome"] == "disabled"

    post(storage, dispatcher, source, 2)  # held while disabled
    dispatcher.run(service)
    assert len(receiver.received("/gone")) == 1
    assert service.admission.state.held_count(subscription_id) == 3

    assert service.enable(record) == 3
    dispatcher.run(service)
    assert len(receiver.received("/gone")) == 4
    assert not storage.get_subscription(source, subscription_id).get("disabled")


def test_sink_registry_builds_one_webhook_sink_per_process(conf):
    registry = SinkRegistry(conf)
    assert registry.for_subscriber("http://a/") is registry.for_subscriber("https://b/")


def test_an_endpoint_failing_past_the_window_gets_its_subscription_disabled(
    conf, storage, dispatcher, receiver
):
    receiver.script("/dying", [500])
    conf.set_override("disable_after_failing_seconds", 3600, group="webhook")
    clock = {"now": time.time()}
    service = DeliveryService(conf, storage, dispatcher, clock=lambda: clock["now"])
    source, subscription_id = subscribe(storage, receiver.url + "/dying")
    post(storage, dispatcher, source, 1)
    dispatcher.run(service)  # first failure: the window starts (Redis time)
    assert not storage.get_subscription(source, subscription_id).get("disabled")

    clock["now"] += 2 * 3600  # two hours later it still fails
    post(storage, dispatcher, source, 1)
    dispatcher.run(service)

    record = storage.get_subscription(source, subscription_id)
    assert record["disabled"] and "without a success" in record["disabled_reason"]
    # held, not lost: the failed delivery that disabled it is held, the first
    # message's retry still waits in the retry set (it is held when due)
    assert service.admission.state.held_count(subscription_id) == 1
    assert storage.pending_retry_count() == 1
