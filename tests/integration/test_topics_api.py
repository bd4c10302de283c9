"""Integration tests of the topic routes: falcon's test client against real Redis.

Three projects: ``owner`` creates the topics, ``friend`` is the other project
a topic lets in, ``stranger`` is one it does not. Other projects address the
owner's topic with ``X-Topic-Owner``.
"""

import json
import uuid

import pytest
from falcon import testing

from notifier.api.app import create_app
from notifier.services.sources import delete_topic
from notifier.store import keys
from notifier.store.storage import Source
from tests.integration.test_api import assert_error, fanout_tasks
from workers.app import FANOUT_TASK, CeleryDispatcher, create_celery

CLIENT = {"Client-ID": str(uuid.uuid4())}
PATCH_TYPE = "application/openstack-messaging-v2.0-json-patch"
HOOK = "http://example.com/hook"


@pytest.fixture
def app(conf, storage):
    celery = create_celery(conf)
    yield create_app(conf, storage=storage, dispatcher=CeleryDispatcher(celery))
    celery.close()


@pytest.fixture
def owner(app, project):
    return testing.TestClient(app, headers={"X-Project-ID": project})


def visitor(app, project, owner_project, user=None):
    headers = {"X-Project-ID": project, "X-Topic-Owner": owner_project}
    if user:
        headers["X-User-ID"] = user
    return testing.TestClient(app, headers=headers)


@pytest.fixture
def friend(app, project):
    return visitor(app, "friend", project)


@pytest.fixture
def stranger(app, project):
    return visitor(app, "stranger", project)


def put_topic(client, name, metadata=None):
    result = client.simulate_put(f"/v2/topics/{name}", json=metadata)
    assert result.status_code in (201, 204), result.text
    return result


def post(client, topic, *messages):
    return client.simulate_post(
        f"/v2/topics/{topic}/messages",
        headers=CLIENT,
        json={"messages": list(messages or [{"body": 1}])},
    )


def subscribe(client, topic, subscriber=HOOK, **fields):
    return client.simulate_post(
        f"/v2/topics/{topic}/subscriptions", json={"subscriber": subscriber, **fields}
    )


def subscribed(client, topic, subscriber=HOOK, **fields):
    result = subscribe(client, topic, subscriber, **fields)
    assert result.status_code == 201, result.text
    return result.json["subscription_id"]


def patch(client, name, ops):
    return client.simulate_patch(
        f"/v2/topics/{name}", body=json.dumps(ops), headers={"Content-Type": PATCH_TYPE}
    )


FRIENDLY = {
    "_allowed_sending_projects": ["OWNER", "friend"],
    "_allowed_subscribe_projects": ["OWNER", "friend"],
}


def friendly(project):
    return {k: [project if p == "OWNER" else p for p in v] for k, v in FRIENDLY.items()}


# --- topic CRUD -------------------------------------------------------------------


def test_putting_a_topic_creates_it_then_replaces_its_metadata(owner):
    first = owner.simulate_put(
        "/v2/topics/alerts", json={"_allowed_subscribe_protocols": ["webhook"]}
    )
    assert first.status_code == 201
    assert first.headers["location"] == "/v2/topics/alerts"
    second = owner.simulate_put("/v2/topics/alerts", json={"colour": "red"})
    assert second.status_code == 204
    assert owner.simulate_get("/v2/topics/alerts").json == {"colour": "red"}


def test_a_topic_without_a_body_has_empty_metadata(owner):
    assert owner.simulate_put("/v2/topics/plain").status_code == 201
    assert owner.simulate_get("/v2/topics/plain").json == {}


def test_a_topic_is_not_a_queue(owner):
    put_topic(owner, "same")
    assert_error(owner.simulate_get("/v2/queues/same"), 404)
    owner.simulate_put("/v2/queues/q")
    assert_error(owner.simulate_get("/v2/topics/q"), 404)


def test_an_unknown_topic_is_404(owner):
    assert_error(owner.simulate_get("/v2/topics/nowhere"), 404)


def test_the_topic_list_pages_by_marker_and_limit(owner):
    names = [f"t{i}" for i in range(5)]
    for name in reversed(names):
        put_topic(owner, name)
    first = owner.simulate_get("/v2/topics", params={"limit": 2})
    assert first.json == {
        "topics": [
            {"name": "t0", "href": "/v2/topics/t0"},
            {"name": "t1", "href": "/v2/topics/t1"},
        ],
        "links": [{"rel": "next", "href": "/v2/topics?marker=t1&limit=2"}],
    }
    last = owner.simulate_get("/v2/topics", params={"marker": "t3", "limit": 2})
    assert last.json["topics"] == [{"name": "t4", "href": "/v2/topics/t4"}]
    assert last.json["links"] == []
    detailed = owner.simulate_get("/v2/topics", params={"detailed": "true", "limit": 1})
    assert detailed.json["topics"] == [{"name": "t0", "href": "/v2/topics/t0", "metadata": {}}]


def test_a_project_lists_only_its_own_topics(owner, app):
    put_topic(owner, "mine")
    other = testing.TestClient(app, headers={"X-Project-ID": "friend"})
    assert other.simulate_get("/v2/topics").json == {"topics": [], "links": []}


def test_patching_a_topic_changes_its_permissions(owner, friend, project):
    put_topic(owner, "p", {"colour": "red"})
    assert_error(post(friend, "p"), 403)
    result = patch(
        owner,
        "p",
        [
            {
                "op": "add",
                "path": "/metadata/_allowed_sending_projects",
                "value": [project, "friend"],
            },
            {"op": "remove", "path": "/metadata/colour"},
        ],
    )
    assert result.status_code == 200, result.text
    assert result.json == {"_allowed_sending_projects": [project, "friend"]}
    assert post(friend, "p").status_code == 201


def test_patching_accepts_the_specs_spelling_without_underscore(owner):
    put_topic(owner, "p", {"_allowed_sending_projects": ["a"]})
    result = patch(
        owner,
        "p",
        [{"op": "replace", "path": "/metadata/allowed_sending_projects", "value": ["b"]}],
    )
    assert result.status_code == 200, result.text
    assert owner.simulate_get("/v2/topics/p").json == {"_allowed_sending_projects": ["b"]}


@pytest.mark.parametrize(
    "ops, field",
    [
        (
            [{"op": "add", "path": "/metadata/_allowed_subscribe_protocols", "value": ["sms"]}],
            "_allowed_subscribe_protocols",
        ),
        (
            [{"op": "add", "path": "/metadata/_allowed_sending_users", "value": "u"}],
            "_allowed_sending_users",
        ),
        ([{"op": "add", "path": "/metadata/_allowed_senders", "value": []}], "_allowed_senders"),
        (
            [{"op": "add", "path": "/metadata/_retry_policy", "value": {"bogus": 1}}],
            "_retry_policy.bogus",
        ),
        ([{"op": "replace", "path": "/metadata/missing", "value": 1}], "body[0].path"),
        ([], "body"),
    ],
)
def test_a_bad_topic_patch_is_400_and_changes_nothing(owner, ops, field):
    put_topic(owner, "p", {"a": 1})
    assert_error(patch(owner, "p", ops), 400, field=field)
    assert owner.simulate_get("/v2/topics/p").json == {"a": 1}


def test_a_topic_patch_needs_zaqars_media_type_and_a_known_topic(owner):
    put_topic(owner, "p")
    result = owner.simulate_patch(
        "/v2/topics/p", json=[{"op": "add", "path": "/metadata/a", "value": 1}]
    )
    assert_error(result, 415)
    assert_error(patch(owner, "nowhere", [{"op": "add", "path": "/metadata/a", "value": 1}]), 404)


@pytest.mark.parametrize(
    "metadata, field",
    [
        ({"_allowed_subscribe_protocols": ["email", "pigeon"]}, "_allowed_subscribe_protocols"),
        ({"_allowed_sending_projects": "p1"}, "_allowed_sending_projects"),
        ({"_allowed_subscribe_users": [42]}, "_allowed_subscribe_users"),
        ({"_allowed_subscribe_project": ["typo"]}, "_allowed_subscribe_project"),
        ({"_retry_policy": {"minimum_delay": -1}}, "_retry_policy.minimum_delay"),
        ([1], "metadata"),
    ],
)
def test_bad_topic_metadata_is_400_naming_the_attribute(owner, metadata, field):
    assert_error(owner.simulate_put("/v2/topics/bad", json=metadata), 400, field=field)
    assert_error(owner.simulate_get("/v2/topics/bad"), 404)


@pytest.mark.parametrize("name", ["bad.name", "x" * 65, "%C3%A9"])
def test_a_bad_topic_name_is_400(owner, name):
    assert_error(owner.simulate_put(f"/v2/topics/{name}"), 400, field="topic_name")


def test_a_request_without_x_project_id_is_400(app):
    anonymous = testing.TestClient(app, headers={"X-Topic-Owner": "someone"})
    assert_error(anonymous.simulate_get("/v2/topics/t"), 400, field="X-Project-ID")


@pytest.mark.parametrize("value", ["a:b", "a b", ""])
def test_a_malformed_x_topic_owner_is_400(app, value):
    client = visitor(app, "friend", value)
    assert_error(client.simulate_get("/v2/topics/t/subscriptions"), 400, field="X-Topic-Owner")


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/v2/topics"),
        ("PUT", "/v2/topics/t"),
        ("GET", "/v2/topics/t"),
        ("PATCH", "/v2/topics/t"),
        ("DELETE", "/v2/topics/t"),
        ("GET", "/v2/topics/t/messages/abc"),
        ("GET", "/v2/topics/t/messages/abc/attempts"),
    ],
)
def test_only_the_owner_project_manages_a_topic(owner, friend, project, method, path):
    put_topic(owner, "t", friendly(project))
    result = friend.simulate_request(method, path, headers=CLIENT, json=[])
    assert_error(result, 403)
    assert owner.simulate_get("/v2/topics/t").json == friendly(project)


# --- deleting ---------------------------------------------------------------------


def test_deleting_a_topic_removes_metadata_messages_and_every_subscription(
    owner, friend, project, redis_client
):
    put_topic(owner, "gone", friendly(project))
    message_id = post(owner, "gone").json["resources"][0].rsplit("/", 1)[1]
    ids = [subscribed(owner, "gone", HOOK + "/owner"), subscribed(friend, "gone", HOOK + "/friend")]
    for _ in range(2):
        assert owner.simulate_delete("/v2/topics/gone").status_code == 204
    assert_error(owner.simulate_get("/v2/topics/gone"), 404)
    assert not redis_client.exists(keys.message(message_id))
    assert not any(redis_client.exists(keys.subscription(i)) for i in ids)
    assert redis_client.keys(keys.PREFIX + "*:" + Source(project, "topics", "gone").path) == []
    # Recreated, the topic starts without subscriptions.
    put_topic(owner, "gone")
    assert owner.simulate_get("/v2/topics/gone/subscriptions").json["subscriptions"] == []


def test_deleting_a_topic_releases_every_subscription_page_by_page(
    owner, friend, project, conf, storage, redis_client
):
    put_topic(owner, "many")
    ids = [subscribed(owner, "many", f"{HOOK}/{n}") for n in range(6)]
    ids.append(subscribed(friend, "many", HOOK + "/friend"))
    released = []
    delete_topic(
        storage,
        Source(project, "topics", "many"),
        conf,
        page_size=2,
        release=lambda record, _conf: released.append(record["id"]),
    )
    assert sorted(released) == sorted(ids)
    assert not any(redis_client.exists(keys.subscription(i)) for i in ids)
    assert redis_client.keys(keys.PREFIX + "*:" + Source(project, "topics", "many").path) == []


# --- messages ---------------------------------------------------------------------


def test_posting_to_a_topic_stores_messages_and_enqueues_a_fanout(owner, redis_client, project):
    put_topic(owner, "news")
    result = post(owner, "news", {"body": {"n": 1}, "ttl": 300}, {"body": "two"})
    assert result.status_code == 201, result.text
    hrefs = result.json["resources"]
    assert all(h.startswith("/v2/topics/news/messages/") for h in hrefs)
    ids = [h.rsplit("/", 1)[1] for h in hrefs]
    assert result.headers["location"] == f"/v2/topics/news/messages?ids={','.join(ids)}"
    assert fanout_tasks(redis_client) == [(FANOUT_TASK, [[project, "topics", "news"], ids, None])]


def test_the_owner_reads_a_topic_message_and_its_attempts(owner):
    put_topic(owner, "news")
    href = post(owner, "news", {"body": "hi", "ttl": 120}).json["resources"][0]
    message = owner.simulate_get(href, headers=CLIENT)
    assert message.status_code == 200
    assert (message.json["href"], message.json["body"], message.json["ttl"]) == (href, "hi", 120)
    attempts = owner.simulate_get(href + "/attempts")
    assert attempts.json == {"attempts": []}
    assert_error(
        owner.simulate_get(f"/v2/topics/news/messages/{uuid.uuid4().hex}", headers=CLIENT), 404
    )


def test_topic_messages_cannot_be_listed_or_claimed(owner):
    put_topic(owner, "news")
    assert owner.simulate_get("/v2/topics/news/messages", headers=CLIENT).status_code == 405
    assert owner.simulate_post("/v2/topics/news/claims", json={}, headers=CLIENT).status_code == 404


def test_posting_to_an_unknown_topic_is_404_and_creates_nothing(owner, redis_client):
    assert_error(post(owner, "nowhere"), 404)
    assert redis_client.keys(keys.message("*")) == []
    assert_error(owner.simulate_get("/v2/topics/nowhere"), 404)


def test_by_default_only_the_owner_project_publishes(owner, friend):
    put_topic(owner, "t")
    assert post(owner, "t").status_code == 201
    assert_error(post(friend, "t"), 403)


def test_an_allowed_project_publishes_into_the_owners_topic(
    owner, friend, stranger, project, redis_client
):
    put_topic(owner, "t", friendly(project))
    result = post(friend, "t")
    assert result.status_code == 201, result.text
    assert fanout_tasks(redis_client)[0][1][0] == [project, "topics", "t"]
    assert_error(post(stranger, "t"), 403)
    assert len(fanout_tasks(redis_client)) == 1


def test_an_allowed_user_publishes_whatever_its_project(app, owner, project):
    put_topic(owner, "t", {"_allowed_sending_users": ["alice"]})
    assert post(visitor(app, "elsewhere", project, user="alice"), "t").status_code == 201
    assert_error(post(visitor(app, "elsewhere", project, user="bob"), "t"), 403)
    assert_error(post(owner, "t"), 403)  # the owner is not listed


def test_a_forbidden_publish_explains_itself(owner, stranger):
    put_topic(owner, "t", {"_allowed_sending_projects": ["friend"]})
    body = post(stranger, "t").json
    assert "stranger" in body["description"]
    assert "_allowed_sending_projects" in body["description"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"ttl": 60}]}, "messages[0].body"),
    ],
)
def test_a_bad_topic_message_is_400(owner, redis_client, body, field):
    put_topic(owner, "t")
    result = owner.simulate_post("/v2/topics/t/messages", json=body, headers=CLIENT)
    assert_error(result, 400, field=field)
    assert fanout_tasks(redis_client) == []


def test_posting_to_a_topic_needs_a_client_id(owner):
    put_topic(owner, "t")
    result = owner.simulate_post("/v2/topics/t/messages", json={"messages": [{"body": 1}]})
    assert_error(result, 400, field="Client-ID")


# --- subscriptions ----------------------------------------------------------------


def test_any_project_subscribes_to_a_topic_by_default(owner, friend):
    put_topic(owner, "t")
    result = subscribe(friend, "t")
    assert result.status_code == 201, result.text
    subscription_id = result.json["subscription_id"]
    assert result.headers["location"] == f"/v2/topics/t/subscriptions/{subscription_id}"
    view = friend.simulate_get(f"/v2/topics/t/subscriptions/{subscription_id}").json
    assert (view["source"], view["subscriber"], view["project"]) == ("t", HOOK, "friend")


def test_subscribing_to_an_unknown_topic_is_404(owner, friend):
    assert_error(subscribe(owner, "nowhere"), 404)
    assert_error(subscribe(friend, "nowhere"), 404)


def test_a_project_not_listed_may_not_subscribe(owner, friend, stranger, project):
    put_topic(owner, "t", friendly(project))
    assert subscribe(friend, "t").status_code == 201
    result = subscribe(stranger, "t", HOOK + "/s")
    assert_error(result, 403)
    assert "_allowed_subscribe_projects" in result.json["description"]


def test_an_allowed_user_may_subscribe(app, owner, project):
    put_topic(owner, "t", {"_allowed_subscribe_users": ["alice"]})
    assert subscribe(visitor(app, "x", project, user="alice"), "t").status_code == 201
    assert_error(subscribe(visitor(app, "x", project, user="bob"), "t", HOOK + "/b"), 403)


def test_a_protocol_the_topic_does_not_allow_is_403(owner):
    put_topic(owner, "t", {"_allowed_subscribe_protocols": ["email", "trust"]})
    result = subscribe(owner, "t")
    assert_error(result, 403)
    assert "webhook" in result.json["description"]


def test_an_invalid_subscription_is_still_400(owner):
    put_topic(owner, "t")
    assert_error(subscribe(owner, "t", "ftp://example.com/"), 400, field="subscriber")
    assert_error(subscribe(owner, "t", HOOK, ttl=1), 400, field="ttl")


def test_the_same_subscriber_twice_on_a_topic_is_409_within_a_project(owner, friend):
    put_topic(owner, "t")
    subscribed(owner, "t")
    assert_error(subscribe(owner, "t"), 409, field="subscriber")
    # Unique per subscribing project: another project's subscription of the
    # same URL takes nothing from the first (see test_tenancy).
    subscribed(friend, "t")
    assert_error(subscribe(friend, "t"), 409, field="subscriber")


def test_the_owner_sees_every_subscription_others_only_their_own(owner, friend, stranger, project):
    put_topic(owner, "t")
    mine = subscribed(owner, "t", HOOK + "/owner")
    theirs = subscribed(friend, "t", HOOK + "/friend")

    listed = owner.simulate_get("/v2/topics/t/subscriptions").json["subscriptions"]
    assert {(s["id"], s["project"]) for s in listed} == {(mine, project), (theirs, "friend")}
    listed = friend.simulate_get("/v2/topics/t/subscriptions").json["subscriptions"]
    assert [s["id"] for s in listed] == [theirs]
    assert stranger.simulate_get("/v2/topics/t/subscriptions").json == {
        "subscriptions": [],
        "links": [],
    }

    assert owner.simulate_get(f"/v2/topics/t/subscriptions/{theirs}").status_code == 200
    assert_error(friend.simulate_get(f"/v2/topics/t/subscriptions/{mine}"), 404)
    assert_error(stranger.simulate_get(f"/v2/topics/t/subscriptions/{theirs}"), 404)


def test_hidden_subscriptions_still_leave_a_next_link(owner, friend):
    put_topic(owner, "t")
    for n in range(3):
        subscribed(owner, "t", f"{HOOK}/{n}")
    theirs = subscribed(friend, "t", HOOK + "/friend")
    seen, path, query = [], "/v2/topics/t/subscriptions", "limit=2"
    while True:
        page = friend.simulate_get(path, query_string=query).json
        seen += [s["id"] for s in page["subscriptions"]]
        if not page["links"]:
            break
        path, _, query = page["links"][0]["href"].partition("?")
    assert seen == [theirs]


def test_a_project_manages_only_its_own_topic_subscriptions(owner, friend):
    put_topic(owner, "t")
    mine = subscribed(owner, "t", HOOK + "/owner")
    theirs = subscribed(friend, "t", HOOK + "/friend")
    path = "/v2/topics/t/subscriptions/"

    assert_error(friend.simulate_patch(path + mine, json={"ttl": 600}), 404)
    assert friend.simulate_patch(path + theirs, json={"ttl": 600}).status_code == 204
    assert friend.simulate_get(path + theirs).json["ttl"] == 600
    # Deleting stays idempotent: someone else's subscription is "already gone".
    assert friend.simulate_delete(path + mine).status_code == 204
    assert owner.simulate_get(path + mine).status_code == 200
    # The owner manages every subscription of its topic.
    assert owner.simulate_delete(path + theirs).status_code == 204
    assert_error(friend.simulate_get(path + theirs), 404)


def test_repointing_a_subscription_to_a_disallowed_protocol_is_403(owner):
    put_topic(owner, "t", {"_allowed_subscribe_protocols": ["webhook"]})
    subscription_id = subscribed(owner, "t")
    path = f"/v2/topics/t/subscriptions/{subscription_id}"
    result = owner.simulate_patch(path, json={"subscriber": "mailto:ops@example.com"})
    assert_error(result, 403)
    assert owner.simulate_get(path).json["subscriber"] == HOOK
    assert owner.simulate_patch(path, json={"subscriber": HOOK + "/new"}).status_code == 204


@pytest.mark.parametrize(
    "method, suffix, body, status",
    [
        ("GET", "/attempts", None, 200),
        ("GET", "/dead-letters", None, 200),
        ("POST", "/replay", {"since": 0}, 202),
        ("POST", "/enable", None, 200),
    ],
)
def test_subscription_subresources_serve_only_who_sees_the_subscription(
    owner, friend, stranger, method, suffix, body, status
):
    put_topic(owner, "t")
    theirs = subscribed(friend, "t")
    path = f"/v2/topics/t/subscriptions/{theirs}{suffix}"
    for client in (friend, owner):
        assert client.simulate_request(method, path, json=body).status_code == status
    assert_error(stranger.simulate_request(method, path, json=body), 404)
