"""Request forgery through options (issue 16, item 5), through the running
fleet and a raw-socket receiver that counts the requests of each connection."""

import datetime

import pytest
import requests
from standardwebhooks.webhooks import Webhook

from notifier.store.storage import Source, Storage
from tests.e2e.test_pipeline import headers, post
from tests.support.raw_receiver import RawReceiver
from tests.support.waiting import wait_until

# A body that is a whole second request if the first one's framing is forged.
SMUGGLED = (
    '{"m": "$zaqar_message$"}\r\n\r\n'
    "POST /smuggled HTTP/1.1\r\nHost: victim\r\nContent-Length: 0\r\n\r\n"
)
FORGED_SIGNATURE = "v1,Zm9yZ2VkIHNpZ25hdHVyZSBmb3JnZWQgc2lnbmF0dXJl"


@pytest.fixture
def raw_receiver():
    with RawReceiver() as server:
        yield server


def create(fleet, project, queue, subscriber, **options):
    return requests.post(
        f"{fleet.url}/queues/{queue}/subscriptions",
        json={"subscriber": subscriber, "options": options},
        headers=headers(project),
        timeout=5,
    )


def attempts(fleet, project, queue, subscription_id):
    return requests.get(
        f"{fleet.url}/queues/{queue}/subscriptions/{subscription_id}/attempts",
        headers=headers(project),
        timeout=5,
    ).json()["attempts"]


def test_a_hostile_post_data_is_one_request_per_delivery(fleet, raw_receiver, project):
    created = create(fleet, project, "smuggle", raw_receiver.url + "/hook", post_data=SMUGGLED)
    assert created.status_code == 201, created.text
    secret = created.json()["secret"]
    post(fleet, project, "smuggle", [{"ttl": 120, "body": {"n": n}} for n in range(3)])

    arrived = raw_receiver.wait_for(3, timeout=30)
    raw_receiver.wait_for(4, timeout=2)  # give a smuggled request time to show
    assert [r.target for r in raw_receiver.requests] == ["/hook"] * 3
    assert sum(raw_receiver.per_connection().values()) == 3
    for request in arrived:
        assert request.body.decode().endswith("Content-Length: 0\r\n\r\n")
        [signature] = request.header_values("webhook-signature")
        [message_id] = request.header_values("webhook-id")
        [timestamp] = request.header_values("webhook-timestamp")
        expected = Webhook(secret).sign(
            message_id,
            datetime.datetime.fromtimestamp(int(timestamp), datetime.UTC),
            request.body.decode(),
        )
        assert signature == expected


@pytest.mark.parametrize(
    "name, value",
    [
        ("Content-Length", "0"),
        ("Transfer-Encoding", "chunked"),
        ("Host", "victim"),
        ("Connection", "close"),
        ("webhook-signature", FORGED_SIGNATURE),
        ("X-Note", "a\r\nContent-Length: 0"),
    ],
)
def test_forging_headers_is_a_400_naming_post_headers(fleet, raw_receiver, project, name, value):
    response = create(fleet, project, "forge", raw_receiver.url + "/x", post_headers={name: value})
    assert response.status_code == 400, response.text
    assert response.json()["field"] == "options.post_headers"


@pytest.mark.parametrize(
    "forged",
    [
        {"Content-Length": "0"},
        {"Webhook-Signature": FORGED_SIGNATURE},
    ],
)
def test_a_stored_subscription_with_forged_headers_sends_nothing(
    fleet, raw_receiver, project, conf, forged
):
    """A subscription stored before the check (written straight into Redis)
    fails for good instead of smuggling a request or a signature."""
    storage = Storage.from_conf(conf)
    source = Source(project, "queues", "legacy")
    _, subscription_id = storage.create_subscription(
        source,
        raw_receiver.url + "/legacy",
        3600,
        {"post_data": SMUGGLED, "post_headers": forged},
        confirmed=True,
        extra={"secrets": [{"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "expires": None}]},
    )
    post(fleet, project, "legacy", [{"ttl": 120, "body": 1}])

    logged = wait_until(lambda: attempts(fleet, project, "legacy", subscription_id))
    assert [(a["outcome"], a.get("error")) for a in logged] == [
        ("dead_lettered", "invalid_options")
    ]
    assert raw_receiver.requests == []
