"""Tenant isolation of attempts, dead letters and topic subscriptions (issue
16, items 4, 9 and 12): the API as production builds it against real Redis,
deliveries run by the real DeliveryService to a real HTTP receiver.

Projects: ``alpha`` and ``beta`` own queues; on topics ``owner`` owns the
topic, ``friend`` and ``other`` subscribe to it from their own projects.
"""

import uuid

import pytest
from falcon import testing

from notifier.api.app import create_app
from notifier.delivery.service import DeliveryService
from notifier.store import keys
from tests.integration.test_api import assert_error
from tests.support.dispatch import MemoryDispatcher

CLIENT = {"Client-ID": str(uuid.uuid4())}
NO_RETRIES = {
    "retries_with_no_delay": 0,
    "minimum_delay_retries": 0,
    "backoff_retries": 0,
    "maximum_delay_retries": 0,
}


@pytest.fixture
def dispatcher():
    return MemoryDispatcher()


@pytest.fixture
def app(conf, storage, dispatcher):
    return create_app(conf, storage=storage, dispatcher=dispatcher)


@pytest.fixture
def deliver(conf, storage, dispatcher):
    service = DeliveryService(conf, storage, dispatcher)
    return lambda: dispatcher.run(service)


def client(app, project, topic_owner=None):
    headers = {"X-Project-ID": project}
    if topic_owner:
        headers["X-Topic-Owner"] = topic_owner
    return testing.TestClient(app, headers=headers)


def created(result):
    assert result.status_code == 201, result.text
    return result


def post(client_, path, body="hello"):
    result = created(
        client_.simulate_post(
            path + "/messages", json={"messages": [{"body": body, "ttl": 300}]}, headers=CLIENT
        )
    )
    return result.json["resources"][0].rsplit("/", 1)[1]


def subscribe(client_, path, subscriber, **options):
    result = client_.simulate_post(
        path + "/subscriptions", json={"subscriber": subscriber, "options": options}
    )
    return created(result).json["subscription_id"]


# --- item 4: a message's attempts ----------------------------------------------------


def test_another_project_cannot_read_a_messages_attempts(app, deliver, receiver, redis_client):
    alpha, beta = client(app, "alpha"), client(app, "beta")
    subscribe(alpha, "/v2/queues/q", receiver.url + "/alpha")
    message_id = post(alpha, "/v2/queues/q")
    deliver()
    path = f"/v2/queues/q/messages/{message_id}/attempts"
    [attempt] = alpha.simulate_get(path).json["attempts"]
    assert (attempt["outcome"], attempt["response_body"]) == ("delivered", "ok")

    # beta names the same queue name in its own project, or any queue: 404.
    assert_error(beta.simulate_get(path), 404)
    assert_error(beta.simulate_get(f"/v2/queues/other/messages/{message_id}/attempts"), 404)
    # The message's own project, but another of its queues: 404 too.
    assert_error(alpha.simulate_get(f"/v2/queues/other/messages/{message_id}/attempts"), 404)

    # Once the message is gone (TTL, topic message delivered) its attempts
    # still belong to its source only.
    redis_client.delete(keys.message(message_id))
    assert len(alpha.simulate_get(path).json["attempts"]) == 1
    assert_error(beta.simulate_get(path), 404)


def test_a_topic_messages_attempts_are_the_owners_and_others_replies_are_hidden(
    app, deliver, receiver, project
):
    owner = client(app, project)
    friend = client(app, "friend", topic_owner=project)
    stranger = client(app, "stranger")  # owns a topic of the same name
    for who in (owner, stranger):
        assert who.simulate_put("/v2/topics/t").status_code in (201, 204)
    mine = subscribe(owner, "/v2/topics/t", receiver.url + "/owner")
    theirs = subscribe(friend, "/v2/topics/t", receiver.url + "/friend")
    message_id = post(owner, "/v2/topics/t")
    deliver()
    path = f"/v2/topics/t/messages/{message_id}/attempts"

    attempts = {a["subscription_id"]: a for a in owner.simulate_get(path).json["attempts"]}
    assert set(attempts) == {mine, theirs}
    assert attempts[mine]["response_body"] == "ok"
    assert attempts[theirs]["outcome"] == "delivered"
    assert "response_body" not in attempts[theirs]
    # The topic message was deleted once delivered; its log is still scoped.
    assert_error(stranger.simulate_get(path), 404)
    assert_error(friend.simulate_get(path), 403)  # only the owner reads messages


@pytest.mark.parametrize(
    "method, suffix, body",
    [
        ("GET", "", None),
        ("GET", "/attempts", None),
        ("GET", "/dead-letters", None),
        ("POST", "/replay", {"since": 0}),
        ("POST", "/enable", None),
        ("POST", "/secret/rotate", None),
        ("PATCH", "", {"ttl": 600}),
        ("DELETE", "", None),
    ],
)
def test_another_project_reaches_no_subscription_route_of_a_queue(
    app, deliver, receiver, method, suffix, body
):
    alpha, beta = client(app, "alpha"), client(app, "beta")
    receiver.script("/gone", [400])
    subscription_id = subscribe(
        alpha, "/v2/queues/q", receiver.url + "/gone", _retry_policy=NO_RETRIES
    )
    post(alpha, "/v2/queues/q")
    deliver()
    path = f"/v2/queues/q/subscriptions/{subscription_id}"
    assert alpha.simulate_get(path + "/dead-letters").json["dead_letters"]

    result = beta.simulate_request(method, path + suffix, json=body)
    if method == "DELETE":
        assert result.status_code == 204  # idempotent, and deletes nothing
    else:
        assert_error(result, 404)
    assert alpha.simulate_get(path).json["ttl"] != 600
    assert len(alpha.simulate_get(path + "/dead-letters").json["dead_letters"]) == 1


# --- item 9: a topic subscription belongs to its subscriber's project ---------------


def test_the_topic_owner_sees_no_tokens_and_changes_no_subscription_of_another_project(
    app, deliver, receiver, project
):
    owner = client(app, project)
    friend = client(app, "friend", topic_owner=project)
    assert owner.simulate_put("/v2/topics/t").status_code == 201
    receiver.script("/friend", [400])
    token_options = {
        "post_headers": {"Authorization": "Bearer friend-token"},
        "post_data": '{"token": "friend-data-token", "m": "$zaqar_message$"}',
        "_retry_policy": NO_RETRIES,
    }
    theirs = subscribe(friend, "/v2/topics/t", receiver.url + "/friend", **token_options)
    post(owner, "/v2/topics/t")
    deliver()
    path = f"/v2/topics/t/subscriptions/{theirs}"

    seen_by_owner = [owner.simulate_get(path).json] + [
        s
        for s in owner.simulate_get("/v2/topics/t/subscriptions").json["subscriptions"]
        if s["id"] == theirs
    ]
    for view in seen_by_owner:
        assert view["options"]["post_headers"] == {"Authorization": "<hidden>"}
        assert view["options"]["post_data"] == "<hidden>"
        assert "friend-token" not in str(view) and "friend-data-token" not in str(view)
    assert friend.simulate_get(path).json["options"]["post_headers"] == {
        "Authorization": "Bearer friend-token"
    }

    # What the friend's endpoint answered is the friend's to read.
    [attempt] = owner.simulate_get(path + "/attempts").json["attempts"]
    assert attempt["outcome"] == "dead_lettered" and "response_body" not in attempt
    [letter] = owner.simulate_get(path + "/dead-letters").json["dead_letters"]
    assert "response_body" not in letter["last"]
    assert all("response_body" not in a for a in letter["history"])
    [attempt] = friend.simulate_get(path + "/attempts").json["attempts"]
    assert attempt["response_body"] == "ok"
    # the log's entry leaves them out; the API adds them back
    assert attempt["subscription_id"] == theirs and attempt["source"] == [project, "topics", "t"]

    assert_error(owner.simulate_post(path + "/secret/rotate"), 403)
    assert_error(owner.simulate_patch(path, json={"subscriber": receiver.url + "/owner"}), 403)
    assert_error(owner.simulate_patch(path, json={"options": {}}), 403)
    assert friend.simulate_get(path).json["subscriber"] == receiver.url + "/friend"
    assert created(friend.simulate_post(path + "/secret/rotate")).json["secret"]
    # The owner may still take a subscription off its topic.
    assert owner.simulate_delete(path).status_code == 204
    assert_error(friend.simulate_get(path), 404)


# --- item 12: no squatting a subscriber URL on a topic ------------------------------


def test_a_project_cannot_squat_another_projects_subscriber_on_a_topic(app, project, receiver):
    owner = client(app, project)
    squatter = client(app, "squatter", topic_owner=project)
    rightful = client(app, "rightful", topic_owner=project)
    assert owner.simulate_put("/v2/topics/t").status_code == 201
    url = receiver.url + "/rightful"
    squatted = subscribe(squatter, "/v2/topics/t", url)

    taken = subscribe(rightful, "/v2/topics/t", url)
    assert taken != squatted
    assert_error(
        rightful.simulate_post("/v2/topics/t/subscriptions", json={"subscriber": url}), 409
    )
    # Deleting or repointing one project's subscription leaves the other's.
    other = subscribe(rightful, "/v2/topics/t", receiver.url + "/other")
    result = rightful.simulate_patch(
        f"/v2/topics/t/subscriptions/{other}", json={"subscriber": url}
    )
    assert_error(result, 409, field="subscriber")
    assert squatter.simulate_delete(f"/v2/topics/t/subscriptions/{squatted}").status_code == 204
    assert rightful.simulate_get(f"/v2/topics/t/subscriptions/{taken}").status_code == 200
    assert_error(
        rightful.simulate_post("/v2/topics/t/subscriptions", json={"subscriber": url}), 409
    )
    # A squatter repointing to the URL takes nothing either.
    moved = subscribe(squatter, "/v2/topics/t", receiver.url + "/elsewhere")
    path = f"/v2/topics/t/subscriptions/{moved}"
    assert squatter.simulate_patch(path, json={"subscriber": url}).status_code == 204
    assert subscribe(squatter, "/v2/topics/t", receiver.url + "/elsewhere")
    assert rightful.simulate_get(f"/v2/topics/t/subscriptions/{taken}").json["subscriber"] == url
