"""Retention and quotas through the real API, worker and scheduler: what a
subscription leaves in Redis, how far a failing one can grow it, and what a
project's quota refuses (and does not refuse another project)."""

import pytest
import redis
import requests

from notifier.store import keys
from tests.e2e.conftest import Fleet
from tests.e2e.test_pipeline import headers, post, subscribe
from tests.support.waiting import wait_until

CAP = 5
MAX_SUBSCRIPTIONS = 4
MAX_BYTES = 40_000
LIMITS = (
    f"[notification]\nmax_dead_letters_per_subscription = {CAP}\n"
    f"[quota]\nmax_subscriptions_per_project = {MAX_SUBSCRIPTIONS}\n"
    f"max_stored_bytes_per_project = {MAX_BYTES}\n"
)
NO_RETRY = {
    "retries_with_no_delay": 0,
    "minimum_delay_retries": 0,
    "backoff_retries": 0,
    "maximum_delay_retries": 0,
}


@pytest.fixture(scope="module")
def fleet(redis_server, tmp_path_factory):
    running = Fleet(tmp_path_factory.mktemp("limits"), redis_server.url, LIMITS)
    running.start("api", "worker", "scheduler")
    yield running
    running.stop()


@pytest.fixture
def db(redis_server):
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    client.close()


def call(fleet, project, method, path, **kwargs):
    return requests.request(
        method, fleet.url + path, headers=headers(project), timeout=10, **kwargs
    )


def dead_lettered(db, subscription_id, count):
    """Wait until ``count`` deliveries of the subscription were dead-lettered."""
    return wait_until(
        lambda: (
            sum(
                '"outcome":"dead_lettered"' in a
                for a in db.lrange(keys.subscription_attempts(subscription_id), 0, -1)
            )
            >= count
        )
    )


def test_a_zero_retry_subscription_to_a_400_endpoint_keeps_at_most_the_cap(
    fleet, receiver, project, db
):
    receiver.script("/refuses", [400])
    subscription_id = subscribe(
        fleet, project, "cap", receiver.url + "/refuses", _retry_policy=NO_RETRY
    )
    ids = []
    for n in range(4):  # 4 x 5 = 20 messages, four times the cap
        ids += post(fleet, project, "cap", [{"ttl": 300, "body": f"m{n}-{i}"} for i in range(5)])

    assert dead_lettered(db, subscription_id, len(ids))
    assert db.zcard(keys.dead_letters(subscription_id)) == CAP
    letters = call(
        fleet, project, "GET", f"/queues/cap/subscriptions/{subscription_id}/dead-letters"
    ).json()["dead_letters"]
    assert {letter["message_id"] for letter in letters} <= set(ids)
    assert len(letters) == CAP


def test_deleting_a_subscription_leaves_none_of_its_keys(fleet, receiver, project, db):
    receiver.script("/refuses", [400])
    subscription_id = subscribe(
        fleet,
        project,
        "gone",
        receiver.url + "/refuses",
        _retry_policy=NO_RETRY,
        throttle_policy={"max_receives_per_second": 50},
    )
    post(fleet, project, "gone", [{"ttl": 300, "body": "x"}])
    assert dead_lettered(db, subscription_id, 1)
    assert db.exists(*keys.subscription_keys(subscription_id)) >= 3  # record, dead, attempts

    path = f"/queues/gone/subscriptions/{subscription_id}"
    assert call(fleet, project, "DELETE", path).status_code == 204

    assert db.exists(*keys.subscription_keys(subscription_id)) == 0


def test_deleting_a_queue_deletes_what_its_subscriptions_held(fleet, receiver, project, db):
    receiver.script("/refuses", [400])
    subscription_id = subscribe(
        fleet, project, "dropped", receiver.url + "/refuses", _retry_policy=NO_RETRY
    )
    post(fleet, project, "dropped", [{"ttl": 300, "body": "x"}])
    assert dead_lettered(db, subscription_id, 1)

    assert call(fleet, project, "DELETE", "/queues/dropped").status_code == 204

    record, *held = keys.subscription_keys(subscription_id)
    assert db.exists(record)  # queues are lazy: the subscription survives
    assert db.exists(*held) == 0


def test_deleting_a_topic_leaves_none_of_its_subscriptions_keys(fleet, receiver, project, db):
    receiver.script("/refuses", [400])
    assert call(fleet, project, "PUT", "/topics/news", json={}).status_code == 201
    response = call(
        fleet,
        project,
        "POST",
        "/topics/news/subscriptions",
        json={"subscriber": receiver.url + "/refuses", "options": {"_retry_policy": NO_RETRY}},
    )
    subscription_id = response.json()["subscription_id"]
    assert (
        call(
            fleet, project, "POST", "/topics/news/messages", json={"messages": [{"body": 1}]}
        ).status_code
        == 201
    )
    assert dead_lettered(db, subscription_id, 1)

    assert call(fleet, project, "DELETE", "/topics/news").status_code == 204

    assert db.exists(*keys.subscription_keys(subscription_id)) == 0


def test_the_subscription_quota_refuses_the_next_one_of_that_project_only(fleet, receiver, project):
    created = [
        subscribe(fleet, project, "many", f"{receiver.url}/s{n}") for n in range(MAX_SUBSCRIPTIONS)
    ]
    refused = call(
        fleet,
        project,
        "POST",
        "/queues/many/subscriptions",
        json={"subscriber": receiver.url + "/one-more"},
    )
    assert refused.status_code == 403
    assert refused.json()["limit"] == "max_subscriptions_per_project"
    assert "max_subscriptions_per_project" in refused.json()["description"]

    subscribe(fleet, project + "-other", "many", receiver.url + "/one-more")  # tenant

    path = f"/queues/many/subscriptions/{created[0]}"
    assert call(fleet, project, "DELETE", path).status_code == 204
    subscribe(fleet, project, "many", receiver.url + "/one-more")


def test_the_byte_quota_refuses_the_next_post_of_that_project_only(fleet, project):
    body = "x" * 9000
    for _ in range(4):  # ~4 x 9.2 KB of the 40,000 bytes
        post(fleet, project, "big", [{"ttl": 300, "body": body}])
    refused = call(
        fleet, project, "POST", "/queues/big/messages", json={"messages": [{"body": body}]}
    )
    assert refused.status_code == 403
    assert refused.json()["limit"] == "max_stored_bytes_per_project"

    post(fleet, project + "-other", "big", [{"ttl": 300, "body": body}])  # tenant
    assert call(fleet, project, "DELETE", "/queues/big").status_code == 204
    post(fleet, project, "big", [{"ttl": 300, "body": body}])


def test_another_projects_dead_letters_do_not_fill_this_projects_quota(
    fleet, receiver, project, db
):
    receiver.script("/refuses", [400])
    noisy = project + "-noisy"
    subscription_id = subscribe(
        fleet, noisy, "noisy", receiver.url + "/refuses", _retry_policy=NO_RETRY
    )
    body = "x" * 9000
    for _ in range(3):  # with their dead letters, past the noisy project's quota
        post(fleet, noisy, "noisy", [{"ttl": 300, "body": body}])
    assert dead_lettered(db, subscription_id, 3)
    refused = call(
        fleet, noisy, "POST", "/queues/noisy/messages", json={"messages": [{"body": body}]}
    )
    assert refused.status_code == 403

    for _ in range(4):  # post() asserts each answers 201
        post(fleet, project, "quiet", [{"ttl": 300, "body": body}])
