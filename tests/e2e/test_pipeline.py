"""End to end: subscribe over HTTP, post messages, receive webhooks."""

import uuid

import requests

CLIENT = {"Client-ID": str(uuid.uuid4())}


def headers(project):
    return dict(CLIENT, **{"X-Project-ID": project})


def subscribe(fleet, project, queue, subscriber, **options):
    response = requests.post(
        f"{fleet.url}/queues/{queue}/subscriptions",
        json={"subscriber": subscriber, "ttl": 3600, "options": options},
        headers=headers(project),
        timeout=5,
    )
    assert response.status_code == 201, response.text
    return response.json()["subscription_id"]


def post(fleet, project, queue, messages):
    response = requests.post(
        f"{fleet.url}/queues/{queue}/messages",
        json={"messages": messages},
        headers=headers(project),
        timeout=5,
    )
    assert response.status_code == 201, response.text
    return [href.rsplit("/", 1)[1] for href in response.json()["resources"]]


def test_a_hundred_posted_messages_arrive_as_exactly_a_hundred_webhooks(fleet, receiver, project):
    subscribe(fleet, project, "orders", receiver.url + "/orders")
    posted = []
    for start in range(0, 100, 10):
        posted += post(
            fleet,
            project,
            "orders",
            [{"ttl": 300, "body": {"n": n}} for n in range(start, start + 10)],
        )

    arrived = receiver.wait_for(100, "/orders", timeout=60)
    receiver.wait_for(101, "/orders", timeout=1)  # give a duplicate time to show

    bodies = [r.json() for r in receiver.received("/orders")]
    assert len(bodies) == 100
    assert sorted(b["message_id"] for b in bodies) == sorted(posted)
    assert sorted(b["body"]["n"] for b in bodies) == list(range(100))
    for body in bodies:
        assert body["Message_Type"] == "Notification"
        assert body["queue_name"] == "orders"
        assert body["ttl"] == 300
        assert body["timestamp"].endswith("Z")
    assert all(r.headers["Content-Type"] == "application/json" for r in arrived)


def test_every_subscriber_of_a_queue_gets_each_message_once(fleet, receiver, project):
    for name in ("a", "b", "c"):
        subscribe(fleet, project, "fan", f"{receiver.url}/{name}")
    post(fleet, project, "fan", [{"ttl": 120, "body": "hello"}])

    for name in ("a", "b", "c"):
        assert len(receiver.wait_for(1, f"/{name}", timeout=30)) == 1
    receiver.wait_for(4, timeout=1)
    assert len(receiver.received()) == 3


def test_zaqar_post_data_and_post_headers_options_shape_the_request(fleet, receiver, project):
    subscribe(
        fleet,
        project,
        "shaped",
        receiver.url + "/shaped",
        post_data='{"wrapped": "$zaqar_message$", "kind": "alarm"}',
        post_headers={"X-Token": "abc"},
    )
    post(fleet, project, "shaped", [{"ttl": 120, "body": {"level": 3}}])

    [request] = receiver.wait_for(1, "/shaped", timeout=30)
    document = request.json()
    assert document["kind"] == "alarm"
    assert document["wrapped"]["body"] == {"level": 3}
    assert request.headers["X-Token"] == "abc"


def test_messages_of_other_queues_and_projects_do_not_reach_a_subscriber(fleet, receiver, project):
    subscribe(fleet, project, "mine", receiver.url + "/mine")
    # Subscribers of the other queue and of the other project's "mine": the
    # posts there are fanned out and delivered, just not to /mine.
    subscribe(fleet, project, "other", receiver.url + "/other")
    subscribe(fleet, project + "x", "mine", receiver.url + "/x-mine")
    post(fleet, project, "other", [{"ttl": 120, "body": 1}])
    post(fleet, project + "x", "mine", [{"ttl": 120, "body": 2}])
    post(fleet, project, "mine", [{"ttl": 120, "body": 3}])

    for path, body in (("/other", 1), ("/x-mine", 2), ("/mine", 3)):
        [request] = receiver.wait_for(1, path, timeout=30)
        assert request.json()["body"] == body, path
    receiver.wait_for(4, timeout=2)  # give a stray delivery time to show
    assert sorted((r.path, r.json()["body"]) for r in receiver.received()) == [
        ("/mine", 3),
        ("/other", 1),
        ("/x-mine", 2),
    ]


def test_a_failing_subscriber_is_retried_until_it_succeeds(fleet, receiver, project):
    receiver.script("/flaky", [500, 503, 200])
    subscribe(
        fleet,
        project,
        "retry",
        receiver.url + "/flaky",
        _retry_policy={
            "retries_with_no_delay": 1,
            "minimum_delay_retries": 1,
            "minimum_delay": 1,
            "maximum_delay": 1,
            "backoff_retries": 0,
            "maximum_delay_retries": 0,
        },
    )
    post(fleet, project, "retry", [{"ttl": 120, "body": "again"}])

    arrived = receiver.wait_for(3, "/flaky", timeout=30)
    assert len(arrived) == 3
    assert len({r.json()["message_id"] for r in arrived}) == 1
    # the second retry waited for the scheduler (minimum_delay 1 s)
    assert arrived[2].at - arrived[1].at >= 0.9
