"""Zaqar's delayed queues and dead-letter queues through python-zaqarclient,
with real API, worker and scheduler processes: a delayed message is hidden
from listing, claims and pop, and notified, only once its delay ends; a
message claimed more than ``_max_claim_count`` times moves to the
``_dead_letter_queue``; a notification that exhausted its retries is posted
there too, and that queue's own subscriber hears of it."""

import time

import pytest
import requests
from zaqarclient.queues.v2 import client as zaqar

from tests.e2e.conftest import Fleet
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow  # real processes; delays of a few seconds

CONF = (
    "[transport]\nmin_claim_ttl = 1\nmin_claim_grace = 0\n"
    "[webhook]\nallowed_networks = 127.0.0.1/32\n"
)
DELAY = 3
ONE_FAILURE = {  # a zero-retry policy: the first failure is the last
    "retries_with_no_delay": 0,
    "minimum_delay_retries": 0,
    "backoff_retries": 0,
    "maximum_delay_retries": 0,
}


@pytest.fixture(scope="module")
def fleet(redis_server, tmp_path_factory):
    running = Fleet(tmp_path_factory.mktemp("delay-dlq"), redis_server.url, CONF)
    running.start("api", "worker", "scheduler")
    yield running
    running.stop()


def connect(fleet, project):
    conf = {"auth_opts": {"backend": "noauth", "options": {"os_project_id": project}}}
    return zaqar.Client(fleet.url[: -len("/v2")], version=2, conf=conf)


def http(fleet, project, method, path, **kwargs):
    headers = {"X-Project-ID": project, "Client-ID": "3381af92-2b9e-11e3-b191-71861300734c"}
    return requests.request(method, fleet.url + path, headers=headers, timeout=10, **kwargs)


def subscribe(fleet, project, queue, subscriber, **options):
    response = http(
        fleet,
        project,
        "POST",
        f"/queues/{queue}/subscriptions",
        json={"subscriber": subscriber, "ttl": 3600, "options": options},
    )
    assert response.status_code == 201, response.text
    return response.json()["subscription_id"]


def bodies(messages):
    return [m.body for m in messages]


def test_a_delayed_message_is_hidden_until_its_delay_ends(fleet, project):
    queue = connect(fleet, project).queue("later")
    posted = time.time()
    queue.post([{"body": "delayed", "ttl": 300, "delay": DELAY}, {"body": "now", "ttl": 300}])

    assert bodies(queue.messages(echo=True)) == ["now"]
    assert bodies(queue.messages(echo=True, include_delayed=True)) == ["delayed", "now"]
    stats = queue.stats["messages"]
    assert (stats["free"], stats["delayed"], stats["claimed"], stats["total"]) == (1, 1, 0, 2)
    assert bodies(queue.claim(ttl=60, grace=0, limit=5)) == ["now"]
    assert bodies(queue.pop(5)) == []  # the free one is claimed, the other delayed

    assert wait_until(lambda: bodies(queue.pop(5)) == ["delayed"], timeout=DELAY + 10)
    assert time.time() - posted >= DELAY  # never early


def test_a_queues_default_delay_applies_to_messages_naming_none(fleet, project):
    queue = connect(fleet, project).queue("slow", force_create=True)
    queue.metadata(new_meta={"_default_message_delay": DELAY})
    queue.post([{"body": "default", "ttl": 300}, {"body": "own", "ttl": 300, "delay": 0}])
    assert bodies(queue.messages(echo=True)) == ["own"]
    assert wait_until(lambda: len(list(queue.messages(echo=True))) == 2, timeout=DELAY + 10)


def test_notifications_of_a_delayed_message_are_sent_when_it_is_due(fleet, receiver, project):
    subscribe(fleet, project, "reminders", receiver.url + "/remind")
    queue = connect(fleet, project).queue("reminders")
    posted = time.time()
    queue.post([{"body": "later", "ttl": 300, "delay": DELAY}, {"body": "at once", "ttl": 300}])

    first = receiver.wait_for(1, "/remind", timeout=10)
    assert [r.json()["body"] for r in first] == ["at once"]
    both = receiver.wait_for(2, "/remind", timeout=DELAY + 15)
    assert [r.json()["body"] for r in both] == ["at once", "later"]
    assert both[1].at - posted >= DELAY  # a lower bound only: never early


@pytest.mark.parametrize(
    "message, field",
    [
        ({"body": 1, "delay": 901}, "messages[0].delay"),
        ({"body": 1, "delay": -1}, "messages[0].delay"),
        ({"body": 1, "delay": "5"}, "messages[0].delay"),
    ],
)
def test_a_delay_out_of_range_is_refused(fleet, project, message, field):
    response = http(fleet, project, "POST", "/queues/q/messages", json={"messages": [message]})
    assert response.status_code == 400
    assert response.json()["field"] == field


@pytest.mark.parametrize(
    "metadata, field",
    [
        ({"_default_message_delay": 901}, "_default_message_delay"),
        ({"_max_claim_count": 0}, "_max_claim_count"),
        ({"_dead_letter_queue": "no spaces"}, "_dead_letter_queue"),
        ({"_dead_letter_queue_messages_ttl": 10}, "_dead_letter_queue_messages_ttl"),
    ],
)
def test_bad_delay_and_dead_letter_metadata_is_refused(fleet, project, metadata, field):
    response = http(fleet, project, "PUT", "/queues/q", json=metadata)
    assert response.status_code == 400
    assert response.json()["field"] == field


def test_a_message_claimed_too_often_moves_to_the_dead_letter_queue(fleet, project):
    client = connect(fleet, project)
    queue = client.queue("work", force_create=True)
    queue.metadata(
        new_meta={
            "_max_claim_count": 2,
            "_dead_letter_queue": "work-dead",
            "_dead_letter_queue_messages_ttl": 120,
        }
    )
    queue.post([{"body": "poison", "ttl": 3600}])
    for _ in range(2):  # two consumers fail on it and release their claims
        claim = queue.claim(ttl=60, grace=0, limit=1)
        assert bodies(claim) == ["poison"]
        claim.delete()

    assert bodies(queue.claim(ttl=60, grace=0, limit=1)) == []  # moved, not claimed
    assert bodies(queue.messages(echo=True, include_claimed=True)) == []
    dead = client.queue("work-dead")
    moved = list(dead.messages(echo=True))
    assert bodies(moved) == ["poison"]
    assert moved[0].ttl == 120  # _dead_letter_queue_messages_ttl
    assert bodies(dead.claim(ttl=60, grace=0, limit=1)) == ["poison"]  # drained by claims


def test_without_a_dead_letter_queue_the_claim_count_is_no_limit(fleet, project):
    queue = connect(fleet, project).queue("nolimit", force_create=True)
    queue.metadata(new_meta={"_max_claim_count": 1})
    queue.post([{"body": "again", "ttl": 300}])
    for _ in range(3):
        claim = queue.claim(ttl=60, grace=0, limit=1)
        assert bodies(claim) == ["again"]
        claim.delete()


def test_an_exhausted_notification_is_posted_to_the_dead_letter_queue(fleet, receiver, project):
    receiver.script("/down", [500])
    client = connect(fleet, project)
    client.queue("orders", force_create=True).metadata(
        new_meta={"_dead_letter_queue": "orders-dead"}
    )
    failing = subscribe(fleet, project, "orders", receiver.url + "/down", _retry_policy=ONE_FAILURE)
    subscribe(fleet, project, "orders-dead", receiver.url + "/ops")

    client.queue("orders").post([{"body": {"order": 7}, "ttl": 300}])

    (notice,) = receiver.wait_for(1, "/ops", timeout=30)
    body = notice.json()["body"]
    assert body["event"] == "DeliveryExhausted"
    assert body["subscription_id"] == failing
    assert body["source"] == {"kind": "queues", "name": "orders"}
    assert body["message"]["body"] == {"order": 7}
    assert body["last_attempt"]["status"] == 500
    assert notice.json()["queue_name"] == "orders-dead"
    drained = list(client.queue("orders-dead").claim(ttl=60, grace=0, limit=5))
    assert [m.body["message"]["body"] for m in drained] == [{"order": 7}]
    # the dead letter is kept as before, besides the notice
    letters = http(fleet, project, "GET", f"/queues/orders/subscriptions/{failing}/dead-letters")
    assert len(letters.json()["dead_letters"]) == 1


def test_a_dead_letter_queue_names_a_queue_of_the_same_project_only(fleet, receiver, project):
    receiver.script("/gone", [500])
    other = project + "b"
    client = connect(fleet, project)
    client.queue("mine", force_create=True).metadata(new_meta={"_dead_letter_queue": "shared-name"})
    subscribe(fleet, project, "mine", receiver.url + "/gone", _retry_policy=ONE_FAILURE)
    subscribe(fleet, other, "shared-name", receiver.url + "/other-project")
    subscribe(fleet, project, "shared-name", receiver.url + "/own-project")

    client.queue("mine").post([{"body": "secret", "ttl": 300}])

    receiver.wait_for(1, "/own-project", timeout=30)
    assert receiver.received("/other-project") == []
    assert list(connect(fleet, other).queue("shared-name").messages(echo=True)) == []


def test_a_notice_is_not_posted_again_when_its_own_delivery_fails(fleet, receiver, project):
    receiver.script("/loop", [500])
    client = connect(fleet, project)
    # A queue that is its own dead-letter queue: one notice, not a loop.
    client.queue("self", force_create=True).metadata(new_meta={"_dead_letter_queue": "self"})
    subscribe(fleet, project, "self", receiver.url + "/loop", _retry_policy=ONE_FAILURE)
    client.queue("self").post([{"body": "first", "ttl": 300}])

    receiver.wait_for(2, "/loop", timeout=30)  # the message, then its notice
    time.sleep(2)
    assert len(receiver.received("/loop")) == 2
    listed = list(client.queue("self").messages(echo=True))
    assert len(listed) == 2  # the message and one notice
