"""Integration tests of the HTTP API: falcon's test client against real Redis.

The app is built as production builds it (``create_app`` with a real Storage
and a real CeleryDispatcher), so a message POST really enqueues a fan-out task
on the Redis broker; no worker runs, so the task stays in its list for the
test to read.
"""

import base64
import json
import time
import uuid

import kombu.exceptions
import pytest
import redis
from falcon import testing
from redis.backoff import NoBackoff
from redis.retry import Retry

from notifier.api.app import create_app
from notifier.cli.redis_server import free_port
from notifier.store import keys
from notifier.store.storage import Source, Storage
from tests.support.expiry import assert_lives
from workers.app import FANOUT_QUEUE, FANOUT_TASK, CeleryDispatcher, PreparedTask, create_celery

CLIENT_ID = str(uuid.uuid4())
WITH_CLIENT = {"Client-ID": CLIENT_ID}
PATCH_TYPE = "application/openstack-messaging-v2.0-json-patch"


@pytest.fixture
def celery_app(conf):
    app = create_celery(conf)
    yield app
    app.close()


@pytest.fixture
def client(conf, storage, celery_app, project):
    app = create_app(conf, storage=storage, dispatcher=CeleryDispatcher(celery_app))
    return testing.TestClient(app, headers={"X-Project-ID": project})


@pytest.fixture
def other_client(client):
    return testing.TestClient(client.app, headers={"X-Project-ID": "other-project"})


def fanout_tasks(redis_client):
    """Return (task name, args) of the tasks waiting in the fan-out queue, oldest
    first (kombu LPUSHes and its consumers BRPOP)."""
    tasks = []
    for raw in reversed(redis_client.lrange(FANOUT_QUEUE, 0, -1)):
        envelope = json.loads(raw)
        assert envelope["properties"]["body_encoding"] == "base64"
        args, _kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
        tasks.append((envelope["headers"]["task"], args))
    return tasks


def post_messages(client, queue, *messages):
    result = client.simulate_post(
        f"/v2/queues/{queue}/messages", json={"messages": list(messages)}, headers=WITH_CLIENT
    )
    assert result.status_code == 201, result.text
    return [href.rsplit("/", 1)[1] for href in result.json["resources"]]


def subscribe(client, queue, subscriber, **fields):
    result = client.simulate_post(
        f"/v2/queues/{queue}/subscriptions", json={"subscriber": subscriber, **fields}
    )
    assert result.status_code == 201, result.text
    return result.json["subscription_id"]


def follow_pages(client, path, key, limit):
    """Follow ``links`` from the first page; return every item and page count."""
    items, pages = [], 0
    result = client.simulate_get(path, params={"limit": limit})
    while True:
        assert result.status_code == 200, result.text
        pages += 1
        items += result.json[key]
        if not result.json["links"]:
            return items, pages
        (link,) = result.json["links"]
        assert link["rel"] == "next"
        link_path, _, query = link["href"].partition("?")
        result = client.simulate_get(link_path, query_string=query)


def assert_error(result, status, field=None):
    assert result.status_code == status, result.text
    assert result.headers["content-type"].startswith("application/json")
    body = result.json
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["description"], str) and body["description"]
    if field is not None:
        assert body.get("field") == field, body


# --- home, ping, health ----------------------------------------------------------


def test_ping_answers_204_with_an_empty_body(client):
    result = client.simulate_get("/v2/ping")
    assert result.status_code == 204
    assert result.content == b""


def test_health_reports_storage_and_broker_reachable(client):
    result = client.simulate_get("/v2/health")
    assert result.status_code == 200
    assert result.json == {"storage_reachable": True, "broker_reachable": True}


def test_the_home_document_lists_every_resource(client):
    result = client.simulate_get("/v2")
    assert result.status_code == 200
    assert result.headers["content-type"].startswith("application/json-home")
    resources = json.loads(result.text)["resources"]
    assert {
        "rel/queues",
        "rel/queue",
        "rel/post_messages",
        "rel/message",
        "rel/subscriptions",
        "rel/subscription",
        "rel/ping",
        "rel/health",
    } <= set(resources)


@pytest.fixture
def unreachable_client(conf, celery_app, project):
    """An app whose storage is a Redis on a closed port (the broker is up)."""
    dead = redis.Redis(
        port=free_port(),
        decode_responses=True,
        socket_connect_timeout=1,
        retry=Retry(NoBackoff(), 0),
    )
    app = create_app(conf, storage=Storage(dead), dispatcher=CeleryDispatcher(celery_app))
    yield testing.TestClient(app, headers={"X-Project-ID": project})
    dead.close()


def test_health_is_503_json_when_storage_is_unreachable(unreachable_client):
    result = unreachable_client.simulate_get("/v2/health")
    assert result.status_code == 503
    assert result.json == {"storage_reachable": False, "broker_reachable": True}


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("GET", "/v2/queues", None),
        ("PUT", "/v2/queues/q", {"a": 1}),
        ("GET", "/v2/queues/q", None),
        ("POST", "/v2/queues/q/messages", {"messages": [{"body": 1}]}),
        ("POST", "/v2/queues/q/subscriptions", {"subscriber": "http://example.com/"}),
    ],
)
def test_requests_are_503_json_when_storage_is_unreachable(unreachable_client, method, path, body):
    result = unreachable_client.simulate_request(method, path, json=body, headers=WITH_CLIENT)
    assert_error(result, 503)
    assert result.headers["retry-after"] == "1"


class BrokenDispatcher:
    """A broker that is down while storage is up (a separate broker Redis)."""

    def prepare_fanout(self, source, message_ids):
        return PreparedTask(FANOUT_TASK, [list(source), list(message_ids), None])

    def send_prepared(self, task):
        raise kombu.exceptions.OperationalError("broker down")

    def ping(self):
        return False


def listen(storage, project, queue):
    """Subscribe someone: a queue with no subscriptions gets no fan-out."""
    storage.create_subscription(
        Source(project, "queues", queue), "http://127.0.0.1:9/", 3600, {}, confirmed=True
    )


def test_messages_are_taken_back_when_the_fanout_cannot_be_enqueued(
    conf, storage, redis_client, project
):
    listen(storage, project, "q")
    app = create_app(conf, storage=storage, dispatcher=BrokenDispatcher())
    client = testing.TestClient(app, headers={"X-Project-ID": project})
    result = client.simulate_post(
        "/v2/queues/q/messages", json={"messages": [{"body": 1}]}, headers=WITH_CLIENT
    )
    assert_error(result, 503)
    assert redis_client.keys(keys.message("*")) == []


# --- project scoping ----------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/v2/queues"),
        ("PUT", "/v2/queues/q"),
        ("GET", "/v2/queues/q"),
        ("PATCH", "/v2/queues/q"),
        ("DELETE", "/v2/queues/q"),
        ("POST", "/v2/queues/q/messages"),
        ("GET", "/v2/queues/q/messages/abc"),
        ("GET", "/v2/queues/q/subscriptions"),
        ("POST", "/v2/queues/q/subscriptions"),
        ("GET", "/v2/queues/q/subscriptions/abc"),
        ("PATCH", "/v2/queues/q/subscriptions/abc"),
        ("DELETE", "/v2/queues/q/subscriptions/abc"),
    ],
)
def test_a_request_without_x_project_id_is_400(client, method, path):
    anonymous = testing.TestClient(client.app)
    result = anonymous.simulate_request(method, path, headers=WITH_CLIENT)
    assert_error(result, 400, field="X-Project-ID")


@pytest.mark.parametrize("project_id", ["a:b", "a b", "é", "x" * 257])
def test_a_malformed_x_project_id_is_400(client, project_id):
    result = client.simulate_get("/v2/queues", headers={"X-Project-ID": project_id})
    assert_error(result, 400, field="X-Project-ID")


def test_projects_do_not_see_each_others_queues_messages_or_subscriptions(client, other_client):
    (message_id,) = post_messages(client, "shared", {"body": "mine"})
    subscription_id = subscribe(client, "shared", "http://example.com/hook")

    assert other_client.simulate_get("/v2/queues").json["queues"] == []
    assert other_client.simulate_get("/v2/queues/shared").status_code == 404
    assert (
        other_client.simulate_get(
            f"/v2/queues/shared/messages/{message_id}", headers=WITH_CLIENT
        ).status_code
        == 404
    )
    assert (
        other_client.simulate_get(f"/v2/queues/shared/subscriptions/{subscription_id}").status_code
        == 404
    )
    assert other_client.simulate_get("/v2/queues/shared/subscriptions").json["subscriptions"] == []
    # The other project may use the same subscriber on its own queue of that name.
    subscribe(other_client, "shared", "http://example.com/hook")
    # Its deletes and patches never reach the first project's subscription.
    assert (
        other_client.simulate_delete(
            f"/v2/queues/shared/subscriptions/{subscription_id}"
        ).status_code
        == 204
    )
    assert (
        other_client.simulate_patch(
            f"/v2/queues/shared/subscriptions/{subscription_id}", json={"ttl": 600}
        ).status_code
        == 404
    )
    mine = client.simulate_get(f"/v2/queues/shared/subscriptions/{subscription_id}")
    assert mine.status_code == 200
    assert mine.json["ttl"] == 3600


# --- queues ---------------------------------------------------------------------


def test_putting_a_queue_creates_it_then_replaces_its_metadata(client):
    first = client.simulate_put("/v2/queues/orders", json={"colour": "red"})
    assert first.status_code == 201
    assert first.headers["location"] == "/v2/queues/orders"
    second = client.simulate_put("/v2/queues/orders", json={"size": 2})
    assert second.status_code == 204
    assert client.simulate_get("/v2/queues/orders").json == {"size": 2}


def test_putting_a_queue_without_a_body_gives_it_empty_metadata(client):
    assert client.simulate_put("/v2/queues/plain").status_code == 201
    result = client.simulate_get("/v2/queues/plain")
    assert result.status_code == 200
    assert result.json == {}


def test_an_unknown_queue_is_404(client):
    assert_error(client.simulate_get("/v2/queues/nowhere"), 404)


def test_posting_a_message_creates_its_queue_lazily(client):
    post_messages(client, "lazy", {"body": 1})
    assert client.simulate_get("/v2/queues/lazy").json == {}
    names = [q["name"] for q in client.simulate_get("/v2/queues").json["queues"]]
    assert names == ["lazy"]


def test_subscribing_does_not_need_the_queue_to_exist(client):
    subscribe(client, "later", "http://example.com/")
    assert client.simulate_get("/v2/queues/later").status_code == 404


def test_deleting_a_queue_removes_it_and_its_messages_and_is_idempotent(client, redis_client):
    (message_id,) = post_messages(client, "gone", {"body": 1})
    for _ in range(2):
        assert client.simulate_delete("/v2/queues/gone").status_code == 204
    assert client.simulate_get("/v2/queues/gone").status_code == 404
    assert (
        client.simulate_get(
            f"/v2/queues/gone/messages/{message_id}", headers=WITH_CLIENT
        ).status_code
        == 404
    )
    assert not redis_client.exists(keys.message(message_id))


def test_the_queue_list_pages_by_marker_and_limit_with_next_links(client):
    names = [f"q{i:02d}" for i in range(7)]
    for name in reversed(names):
        assert client.simulate_put(f"/v2/queues/{name}").status_code == 201
    listed, pages = follow_pages(client, "/v2/queues", "queues", limit=3)
    assert [q["name"] for q in listed] == names
    assert [q["href"] for q in listed] == [f"/v2/queues/{n}" for n in names]
    assert pages == 3


def test_the_queue_list_starts_after_the_marker(client):
    for name in ("a", "b", "c"):
        client.simulate_put(f"/v2/queues/{name}")
    result = client.simulate_get("/v2/queues", params={"marker": "a", "limit": 1})
    assert [q["name"] for q in result.json["queues"]] == ["b"]
    assert result.json["links"] == [{"rel": "next", "href": "/v2/queues?marker=b&limit=1"}]


def test_a_detailed_queue_list_includes_metadata(client):
    client.simulate_put("/v2/queues/meta", json={"k": "v"})
    plain = client.simulate_get("/v2/queues").json["queues"]
    detailed = client.simulate_get("/v2/queues", params={"detailed": "true"}).json
    assert "metadata" not in plain[0]
    assert detailed["queues"][0]["metadata"] == {"k": "v"}


# --- queue PATCH ---------------------------------------------------------------------


def patch_queue(client, name, ops, content_type=PATCH_TYPE):
    return client.simulate_patch(
        f"/v2/queues/{name}", body=json.dumps(ops), headers={"Content-Type": content_type}
    )


def test_patching_a_queue_adds_replaces_and_removes_metadata_keys(client):
    client.simulate_put("/v2/queues/p", json={"keep": 1, "old": 2, "drop": 3})
    result = patch_queue(
        client,
        "p",
        [
            {"op": "add", "path": "/metadata/new", "value": [1]},
            {"op": "replace", "path": "/metadata/old", "value": "two"},
            {"op": "remove", "path": "/metadata/drop"},
        ],
    )
    assert result.status_code == 200, result.text
    expected = {"keep": 1, "old": "two", "new": [1]}
    assert result.json == expected
    assert client.simulate_get("/v2/queues/p").json == expected


def test_patching_a_queue_can_set_a_valid_retry_policy(client):
    client.simulate_put("/v2/queues/p")
    policy = {"minimum_delay": 1, "maximum_delay": 2}
    result = patch_queue(
        client, "p", [{"op": "add", "path": "/metadata/_retry_policy", "value": policy}]
    )
    assert result.status_code == 200
    assert client.simulate_get("/v2/queues/p").json == {"_retry_policy": policy}


@pytest.mark.parametrize("content_type", ["application/json", "application/json-patch+json", ""])
def test_patching_a_queue_needs_zaqars_json_patch_media_type(client, content_type):
    client.simulate_put("/v2/queues/p")
    result = patch_queue(
        client, "p", [{"op": "add", "path": "/metadata/a", "value": 1}], content_type=content_type
    )
    assert_error(result, 415)


def test_patching_an_unknown_queue_is_404(client):
    result = patch_queue(client, "nowhere", [{"op": "add", "path": "/metadata/a", "value": 1}])
    assert_error(result, 404)


def test_a_rejected_queue_patch_leaves_the_metadata_unchanged(client):
    client.simulate_put("/v2/queues/p", json={"a": 1})
    result = patch_queue(
        client,
        "p",
        [
            {"op": "add", "path": "/metadata/b", "value": 2},
            {"op": "add", "path": "/metadata/_retry_policy", "value": {"minimum_delay": -1}},
        ],
    )
    assert_error(result, 400, field="_retry_policy.minimum_delay")
    assert client.simulate_get("/v2/queues/p").json == {"a": 1}


# --- messages -------------------------------------------------------------------------


def test_posting_messages_stores_them_and_enqueues_one_fanout_naming_them(
    client, storage, redis_client, project
):
    listen(storage, project, "orders")
    result = client.simulate_post(
        "/v2/queues/orders/messages",
        headers=WITH_CLIENT,
        json={"messages": [{"body": {"n": 1}, "ttl": 300}, {"body": "two"}]},
    )
    assert result.status_code == 201
    hrefs = result.json["resources"]
    assert len(hrefs) == 2
    assert all(h.startswith("/v2/queues/orders/messages/") for h in hrefs)
    ids = [h.rsplit("/", 1)[1] for h in hrefs]
    assert result.headers["location"] == f"/v2/queues/orders/messages?ids={','.join(ids)}"
    assert fanout_tasks(redis_client) == [(FANOUT_TASK, [[project, "queues", "orders"], ids, None])]


def test_each_post_enqueues_its_own_fanout(client, storage, redis_client, project):
    listen(storage, project, "q")
    first = post_messages(client, "q", {"body": 1})
    second = post_messages(client, "q", {"body": 2})
    assert [args[1] for _, args in fanout_tasks(redis_client)] == [first, second]


def test_a_posted_message_reads_back_with_its_body_and_ttl(client):
    (message_id,) = post_messages(client, "q", {"body": {"deep": [1, None]}, "ttl": 120})
    result = client.simulate_get(f"/v2/queues/q/messages/{message_id}", headers=WITH_CLIENT)
    assert result.status_code == 200
    assert result.json == {
        "id": message_id,
        "href": f"/v2/queues/q/messages/{message_id}",
        "ttl": 120,
        "age": 0,
        "body": {"deep": [1, None]},
    }


@pytest.mark.parametrize(
    "queue_metadata, message, expected_ttl",
    [
        ({}, {"body": 1, "ttl": 120}, 120),
        ({}, {"body": 1}, 3600),
        ({"_default_message_ttl": 600}, {"body": 1}, 600),
        ({"_default_message_ttl": 600}, {"body": 1, "ttl": 90}, 90),
    ],
)
def test_messages_are_stored_with_a_redis_ttl(
    client, redis_client, queue_metadata, message, expected_ttl
):
    client.simulate_put("/v2/queues/q", json=queue_metadata)
    before = time.time()
    (message_id,) = post_messages(client, "q", message)
    assert_lives(redis_client, keys.message(message_id), expected_ttl, before, time.time())


def test_a_message_is_not_found_in_another_queue_of_the_project(client):
    (message_id,) = post_messages(client, "here", {"body": 1})
    result = client.simulate_get(f"/v2/queues/there/messages/{message_id}", headers=WITH_CLIENT)
    assert_error(result, 404)


def test_an_unknown_message_is_404(client):
    result = client.simulate_get(f"/v2/queues/q/messages/{uuid.uuid4().hex}", headers=WITH_CLIENT)
    assert_error(result, 404)


@pytest.mark.parametrize("method", ["POST", "GET"])
@pytest.mark.parametrize(
    "headers", [{}, {"Client-ID": "not-a-uuid"}], ids=["missing", "not a uuid"]
)
def test_message_requests_need_a_uuid_client_id(client, redis_client, method, headers):
    path = "/v2/queues/q/messages" + ("/abc" if method == "GET" else "")
    result = client.simulate_request(
        method, path, headers=headers, json={"messages": [{"body": 1}]}
    )
    assert_error(result, 400, field="Client-ID")
    # nothing written (no fan-out either; a queue without subscribers has
    # none even for a good post, so that alone would show nothing)
    assert redis_client.keys(keys.PREFIX + "*") == []
    assert fanout_tasks(redis_client) == []


# --- subscriptions -----------------------------------------------------------------------


def test_creating_a_subscription_returns_its_id_and_it_reads_back(client):
    result = client.simulate_post(
        "/v2/queues/q/subscriptions",
        json={
            "subscriber": "http://example.com/hook",
            "ttl": 600,
            "options": {"post_data": '{"m": "$zaqar_message$"}'},
        },
    )
    assert result.status_code == 201
    subscription_id = result.json["subscription_id"]
    assert result.json["secret"].startswith("whsec_")  # shown once, here
    assert result.headers["location"] == f"/v2/queues/q/subscriptions/{subscription_id}"
    record = client.simulate_get(f"/v2/queues/q/subscriptions/{subscription_id}").json
    assert record == {
        "id": subscription_id,
        "source": "q",
        "subscriber": "http://example.com/hook",
        "ttl": 600,
        "age": 0,
        "options": {"post_data": '{"m": "$zaqar_message$"}'},
        "confirmed": True,
        "disabled": False,
    }


def test_a_subscription_expires_with_its_ttl(client, redis_client):
    before = time.time()
    subscription_id = subscribe(client, "q", "http://example.com/", ttl=60)
    assert_lives(redis_client, keys.subscription(subscription_id), 60, before, time.time())


def test_the_same_subscriber_twice_on_a_queue_is_409(client):
    subscribe(client, "q", "http://example.com/hook")
    result = client.simulate_post(
        "/v2/queues/q/subscriptions", json={"subscriber": "http://example.com/hook"}
    )
    assert_error(result, 409, field="subscriber")
    # The same subscriber on another queue is a different subscription.
    subscribe(client, "other", "http://example.com/hook")


def test_the_subscription_list_pages_with_next_links(client):
    ids = sorted(subscribe(client, "q", f"http://example.com/{i}") for i in range(5))
    listed, pages = follow_pages(client, "/v2/queues/q/subscriptions", "subscriptions", limit=2)
    assert [s["id"] for s in listed] == ids
    assert pages == 3
    assert {s["source"] for s in listed} == {"q"}


def test_the_subscription_list_of_a_queue_without_any_is_empty(client):
    result = client.simulate_get("/v2/queues/q/subscriptions")
    assert result.json == {"subscriptions": [], "links": []}


def test_a_page_shortened_by_expired_subscriptions_still_links_to_the_next(client, redis_client):
    ids = sorted(subscribe(client, "q", f"http://example.com/{i}") for i in range(3))
    redis_client.delete(keys.subscription(ids[0]))  # what Redis does at its TTL
    listed, _ = follow_pages(client, "/v2/queues/q/subscriptions", "subscriptions", limit=2)
    assert [s["id"] for s in listed] == ids[1:]


def test_patching_a_subscription_changes_its_ttl_and_options(client, redis_client):
    subscription_id = subscribe(client, "q", "http://example.com/", ttl=3600)
    path = f"/v2/queues/q/subscriptions/{subscription_id}"
    before = time.time()
    result = client.simulate_patch(path, json={"ttl": 120, "options": {"a": 1}})
    after = time.time()
    assert result.status_code == 204, result.text
    record = client.simulate_get(path).json
    assert (record["ttl"], record["options"]) == (120, {"a": 1})
    assert record["subscriber"] == "http://example.com/"
    key = keys.subscription(subscription_id)
    assert_lives(redis_client, key, 120, before, after, truncated=True)


def test_patching_only_options_keeps_the_ttl(client, redis_client):
    before = time.time()
    subscription_id = subscribe(client, "q", "http://example.com/", ttl=600)
    path = f"/v2/queues/q/subscriptions/{subscription_id}"
    assert client.simulate_patch(path, json={"options": {"b": 2}}).status_code == 204
    after = time.time()
    assert client.simulate_get(path).json["ttl"] == 600
    key = keys.subscription(subscription_id)
    assert_lives(redis_client, key, 600, before, after, truncated=True)  # from creation


def test_patching_a_subscriber_frees_the_old_one_and_takes_the_new(client):
    subscription_id = subscribe(client, "q", "http://example.com/old")
    path = f"/v2/queues/q/subscriptions/{subscription_id}"
    result = client.simulate_patch(path, json={"subscriber": "https://example.com/new"})
    assert result.status_code == 204
    assert client.simulate_get(path).json["subscriber"] == "https://example.com/new"
    subscribe(client, "q", "http://example.com/old")
    conflict = client.simulate_post(
        "/v2/queues/q/subscriptions", json={"subscriber": "https://example.com/new"}
    )
    assert_error(conflict, 409, field="subscriber")


def test_patching_to_a_subscriber_another_subscription_has_is_409(client):
    subscribe(client, "q", "http://example.com/taken")
    subscription_id = subscribe(client, "q", "http://example.com/mine")
    path = f"/v2/queues/q/subscriptions/{subscription_id}"
    result = client.simulate_patch(path, json={"subscriber": "http://example.com/taken"})
    assert_error(result, 409, field="subscriber")
    assert client.simulate_get(path).json["subscriber"] == "http://example.com/mine"


def test_patching_a_subscription_to_its_own_subscriber_is_fine(client):
    subscription_id = subscribe(client, "q", "http://example.com/same")
    result = client.simulate_patch(
        f"/v2/queues/q/subscriptions/{subscription_id}",
        json={"subscriber": "http://example.com/same"},
    )
    assert result.status_code == 204


@pytest.mark.parametrize(
    "patch, field",
    [
        ({}, "body"),
        ([], "body"),
        ({"ttl": 59}, "ttl"),
        ({"ttl": "120"}, "ttl"),
        ({"subscriber": "ftp://example.com/"}, "subscriber"),
        ({"subscriber": None}, "subscriber"),
        ({"options": []}, "options"),
        ({"options": {"_retry_policy": {"maximum_delay": -1}}}, "_retry_policy.maximum_delay"),
        ({"confirmed": False}, "confirmed"),
    ],
)
def test_an_invalid_subscription_patch_is_400_and_changes_nothing(client, patch, field):
    subscription_id = subscribe(client, "q", "http://example.com/", ttl=600)
    path = f"/v2/queues/q/subscriptions/{subscription_id}"
    assert_error(client.simulate_patch(path, json=patch), 400, field=field)
    record = client.simulate_get(path).json
    assert (record["subscriber"], record["ttl"], record["options"]) == (
        "http://example.com/",
        600,
        {},
    )


def test_patching_an_unknown_subscription_is_404(client):
    result = client.simulate_patch(
        f"/v2/queues/q/subscriptions/{uuid.uuid4().hex}", json={"ttl": 120}
    )
    assert_error(result, 404)


def test_an_unknown_subscription_is_404(client):
    assert_error(client.simulate_get(f"/v2/queues/q/subscriptions/{uuid.uuid4().hex}"), 404)


def test_a_subscription_is_not_found_under_another_queue(client):
    subscription_id = subscribe(client, "here", "http://example.com/")
    assert_error(client.simulate_get(f"/v2/queues/there/subscriptions/{subscription_id}"), 404)


def test_deleting_a_subscription_is_idempotent_and_frees_its_subscriber(client):
    subscription_id = subscribe(client, "q", "http://example.com/")
    path = f"/v2/queues/q/subscriptions/{subscription_id}"
    for _ in range(2):
        result = client.simulate_delete(path)
        assert result.status_code == 204
        assert result.content == b""
    assert client.simulate_get(path).status_code == 404
    assert client.simulate_get("/v2/queues/q/subscriptions").json["subscriptions"] == []
    subscribe(client, "q", "http://example.com/")


# --- bad input: always a 400 naming the field, never a 500 ------------------------------

NESTED_1000 = "[" * 1000 + "]" * 1000
NESTED_40 = '{"messages": [{"body": ' + "[" * 40 + "]" * 40 + "}]}"
MESSAGES = "/v2/queues/q/messages"
SUBSCRIPTIONS = "/v2/queues/q/subscriptions"


def row(method, path, body, field, id, marks=()):
    return pytest.param(method, path, body, field, id=id, marks=marks)


def message_row(message, field, id, marks=()):
    return row("POST", MESSAGES, {"messages": [message]}, field, id, marks)


def subscription_row(document, field, id, marks=()):
    return row("POST", SUBSCRIPTIONS, document, field, id, marks)


def retry_row(method, path, wrap, policy, field, id):
    return row(method, path, wrap(policy), field, id)


def in_metadata(policy):
    return {"_retry_policy": policy}


def in_options(policy):
    return {"subscriber": "http://example.com/", "options": {"_retry_policy": policy}}


BAD_RETRY_POLICIES = [
    ("not an object", "fast", "_retry_policy"),
    ("unknown key", {"bogus": 1}, "_retry_policy.bogus"),
    ("negative delay", {"minimum_delay": -1}, "_retry_policy.minimum_delay"),
    ("delay as string", {"minimum_delay": "5"}, "_retry_policy.minimum_delay"),
    ("max below min", {"minimum_delay": 9, "maximum_delay": 3}, "_retry_policy.maximum_delay"),
    (
        "unknown backoff",
        {"retry_backoff_function": "cubic"},
        "_retry_policy.retry_backoff_function",
    ),
    ("too many retries", {"backoff_retries": 101}, "_retry_policy.backoff_retries"),
    (
        "override flag not bool",
        {"ignore_subscription_override": 1},
        "_retry_policy.ignore_subscription_override",
    ),
]

BAD_INPUT = [
    # the body as a whole
    row("POST", MESSAGES, '{"messages": [', "body", "invalid JSON"),
    row("POST", MESSAGES, "", "body", "empty body"),
    row("POST", MESSAGES, '{"messages": [{"body": NaN}]}', "body", "NaN"),
    row("POST", MESSAGES, '{"messages": [{"body": -Infinity}]}', "body", "-Infinity"),
    row("POST", MESSAGES, b'{"messages": [{"body": "\xff"}]}', "body", "invalid UTF-8"),
    row("POST", MESSAGES, NESTED_1000, "body", "1000 nested lists"),
    row("POST", MESSAGES, NESTED_40, "body", "40 nested lists in a body"),
    row("POST", MESSAGES, '{"messages": [{"body": 1e999}]}', "body", "float overflow"),
    row(
        "POST",
        MESSAGES,
        '{"messages": [{"body": "\\ud800"}]}',
        "body",
        "lone surrogate in a message",
    ),
    row(
        "POST",
        MESSAGES,
        {"messages": [{"body": "x" * 262144}]},
        "body",
        "over max_messages_post_size",
    ),
    # messages
    row("POST", MESSAGES, {}, "messages", "no messages field"),
    row("POST", MESSAGES, {"messages": []}, "messages", "no messages"),
    row("POST", MESSAGES, {"messages": {"body": 1}}, "messages", "messages an object"),
    row(
        "POST",
        MESSAGES,
        {"messages": [{"body": i} for i in range(21)]},
        "messages",
        "too many messages",
    ),
    message_row(1, "messages[0]", "message not an object"),
    message_row({"ttl": 60}, "messages[0].body", "message without body"),
    message_row({"body": 1, "colour": "red"}, "messages[0]", "unknown message field"),
    message_row({"body": 1, "ttl": "60"}, "messages[0].ttl", "ttl as string"),
    message_row({"body": 1, "ttl": -60}, "messages[0].ttl", "negative ttl"),
    message_row({"body": 1, "ttl": 59}, "messages[0].ttl", "ttl below 60"),
    message_row({"body": 1, "ttl": 1209601}, "messages[0].ttl", "ttl too large"),
    message_row({"body": 1, "ttl": True}, "messages[0].ttl", "ttl as bool"),
    message_row({"body": 1, "ttl": 60.5}, "messages[0].ttl", "ttl as float"),
    message_row(
        {"body": 1, "filter_policies": "a"}, "messages[0].filter_policies", "tags not a list"
    ),
    message_row(
        {"body": 1, "attributes": {"a": {"DataType": "Blob", "StringValue": "x"}}},
        "messages[0].attributes.a.DataType",
        "bad attribute type",
    ),
    # queue names
    row("PUT", "/v2/queues/" + "q" * 65, None, "queue_name", "queue name too long"),
    row("PUT", "/v2/queues/bad.name", None, "queue_name", "dot in queue name"),
    row("PUT", "/v2/queues/bad%20name", None, "queue_name", "space in queue name"),
    row("PUT", "/v2/queues/%C3%A9t%C3%A9", None, "queue_name", "non-ASCII queue name"),
    row("PUT", "/v2/queues/q%0A", None, "queue_name", "trailing newline in queue name"),
    row(
        "POST",
        "/v2/queues/bad$name/messages",
        {"messages": [{"body": 1}]},
        "queue_name",
        "bad queue name on messages",
    ),
    row(
        "POST",
        "/v2/queues/bad$name/subscriptions",
        {"subscriber": "http://example.com/"},
        "queue_name",
        "bad queue name on subscriptions",
    ),
    # queue metadata
    row("PUT", "/v2/queues/q", "[1, 2]", "metadata", "metadata a list"),
    row("PUT", "/v2/queues/q", "{", "body", "metadata invalid JSON"),
    row("PUT", "/v2/queues/q", {"a": "x" * 65536}, "body", "metadata body too large"),
    row(
        "PUT",
        "/v2/queues/q",
        {"_default_message_ttl": "60"},
        "_default_message_ttl",
        "default message ttl as string",
    ),
    row(
        "PUT",
        "/v2/queues/q",
        {"_default_message_ttl": 30},
        "_default_message_ttl",
        "default message ttl too small",
    ),
    row("PUT", "/v2/queues/q", '{"a": "\\ud800"}', "body", "lone surrogate in metadata"),
    *[
        retry_row("PUT", "/v2/queues/q", in_metadata, policy, field, f"queue retry policy: {name}")
        for name, policy, field in BAD_RETRY_POLICIES
    ],
    # subscriptions
    subscription_row([], "body", "subscription body a list"),
    subscription_row({}, "subscriber", "subscriber missing"),
    subscription_row({"subscriber": 42}, "subscriber", "subscriber not a string"),
    subscription_row({"subscriber": ""}, "subscriber", "subscriber empty"),
    subscription_row({"subscriber": "ftp://example.com/"}, "subscriber", "ftp scheme"),
    subscription_row({"subscriber": "foo"}, "subscriber", "no scheme"),
    subscription_row({"subscriber": "gopher://example.com/"}, "subscriber", "scheme not enabled"),
    subscription_row({"subscriber": "http://"}, "subscriber", "http without host"),
    subscription_row({"subscriber": "https:///path"}, "subscriber", "https without host"),
    subscription_row(
        {"subscriber": "http://example.com:99999/"}, "subscriber", "port out of range"
    ),
    subscription_row({"subscriber": "http://example.com:port/"}, "subscriber", "port not a number"),
    subscription_row({"subscriber": "http://[::1/"}, "subscriber", "unclosed IPv6 host"),
    subscription_row(
        '{"subscriber": "http://example.com/\\ud800"}', "body", "lone surrogate in subscriber"
    ),
    subscription_row(
        {"subscriber": "http://example.com/", "ttl": 59}, "ttl", "subscription ttl below 60"
    ),
    subscription_row(
        {"subscriber": "http://example.com/", "ttl": "3600"}, "ttl", "subscription ttl as string"
    ),
    subscription_row(
        {"subscriber": "http://example.com/", "ttl": False}, "ttl", "subscription ttl as bool"
    ),
    subscription_row(
        {"subscriber": "http://example.com/", "ttl": 10 * 365 * 86400 + 1},
        "ttl",
        "subscription ttl too large",
    ),
    subscription_row(
        {"subscriber": "http://example.com/", "options": []}, "options", "options a list"
    ),
    subscription_row(
        {"subscriber": "http://example.com/", "options": "x"}, "options", "options a string"
    ),
    subscription_row(
        {"subscriber": "http://example.com/", "options": {"post_data": 1}},
        "options.post_data",
        "post_data not a string",
    ),
    subscription_row(
        {"subscriber": "http://example.com/", "options": {"post_headers": {"X-A": "b\r\nc"}}},
        "options.post_headers",
        "header injection",
    ),
    subscription_row(
        {"subscriber": "http://example.com/", "colour": "red"},
        "colour",
        "unknown subscription field",
    ),
    *[
        retry_row(
            "POST", SUBSCRIPTIONS, in_options, policy, field, f"subscription retry policy: {name}"
        )
        for name, policy, field in BAD_RETRY_POLICIES
    ],
    # paging
    row("GET", "/v2/queues?limit=0", None, "limit", "queue list limit 0"),
    row("GET", "/v2/queues?limit=21", None, "limit", "queue list limit over max"),
    row("GET", "/v2/queues?limit=ten", None, "limit", "queue list limit not a number"),
    row("GET", SUBSCRIPTIONS + "?limit=-1", None, "limit", "subscription list limit"),
]


def send(client, method, path, body):
    path, _, query = path.partition("?")
    kwargs = {"headers": WITH_CLIENT, "query_string": query}
    if isinstance(body, (str, bytes)):
        kwargs["body"] = body
        kwargs["headers"] = {**WITH_CLIENT, "Content-Type": "application/json"}
    elif body is not None:
        kwargs["json"] = body
    return client.simulate_request(method, path, **kwargs)


@pytest.mark.parametrize("method, path, body, field", BAD_INPUT)
def test_bad_input_is_a_400_naming_the_field(client, redis_client, method, path, body, field):
    result = send(client, method, path, body)
    assert_error(result, 400, field=field)
    assert redis_client.keys(keys.PREFIX + "*") == []  # nothing written
    assert fanout_tasks(redis_client) == []


BAD_PATCHES = [
    ({"op": "add", "path": "/metadata/a", "value": 1}, "body", "not a list"),
    ([], "body", "empty list"),
    (["add"], "body[0]", "op not an object"),
    ([{"op": "move", "path": "/metadata/a", "value": 1}], "body[0].op", "unknown op"),
    ([{"path": "/metadata/a", "value": 1}], "body[0].op", "op missing"),
    ([{"op": "add", "path": "/a", "value": 1}], "body[0].path", "path outside metadata"),
    ([{"op": "add", "path": "/metadata/", "value": 1}], "body[0].path", "empty key"),
    ([{"op": "add", "value": 1}], "body[0].path", "path missing"),
    ([{"op": "add", "path": "/metadata/a"}], "body[0].value", "value missing"),
    (
        [{"op": "remove", "path": "/metadata/a"}, {"op": "remove", "path": "/metadata/a"}],
        "body[1].path",
        "second remove of one key",
    ),
    (
        [{"op": "replace", "path": "/metadata/zz", "value": 1}],
        "body[0].path",
        "replace of a missing key",
    ),
    (
        [{"op": "add", "path": "/metadata/_retry_policy", "value": {"bogus": 1}}],
        "_retry_policy.bogus",
        "bad retry policy",
    ),
    (
        [{"op": "add", "path": "/metadata/_default_message_ttl", "value": True}],
        "_default_message_ttl",
        "bad default message ttl",
    ),
]


@pytest.mark.parametrize("ops, field", [pytest.param(o, f, id=i) for o, f, i in BAD_PATCHES])
def test_a_bad_queue_patch_is_a_400_naming_the_field(client, ops, field):
    client.simulate_put("/v2/queues/p", json={"a": 1})
    assert_error(patch_queue(client, "p", ops), 400, field=field)
    assert client.simulate_get("/v2/queues/p").json == {"a": 1}


@pytest.mark.parametrize(
    "body",
    ["{", "NaN", NESTED_1000, b"\xfe"],
    ids=["invalid JSON", "NaN", "deep nesting", "invalid UTF-8"],
)
def test_a_queue_patch_that_is_not_json_is_400(client, body):
    client.simulate_put("/v2/queues/p")
    result = client.simulate_patch("/v2/queues/p", body=body, headers={"Content-Type": PATCH_TYPE})
    assert_error(result, 400, field="body")
