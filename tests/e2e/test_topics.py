"""End to end: a topic with webhook and e-mail subscribers from two projects.

The owner project lets one other project (``friend``) subscribe and publish;
a third project (``stranger``) is refused. The fleet here is the conftest's,
configured to send e-mail to an aiosmtpd server on loopback.
"""

import uuid

import pytest
import requests

from tests.e2e.conftest import Fleet
from tests.support.smtp import SMTPServer
from tests.support.waiting import wait_until

CLIENT = {"Client-ID": str(uuid.uuid4())}


@pytest.fixture(scope="module")
def smtp():
    with SMTPServer() as server:
        yield server


@pytest.fixture(scope="module")
def fleet(redis_server, smtp, tmp_path_factory):
    running = Fleet(
        tmp_path_factory.mktemp("fleet"), redis_server.url, extra_conf=smtp.config_text()
    )
    running.start("api", "worker", "scheduler")
    yield running
    running.stop()


def headers(project, owner=None):
    found = dict(CLIENT, **{"X-Project-ID": project})
    if owner:
        found["X-Topic-Owner"] = owner
    return found


def call(method, fleet, path, project, owner=None, **kwargs):
    return requests.request(
        method, f"{fleet.url}{path}", timeout=5, headers=headers(project, owner), **kwargs
    )


def subscribe(fleet, project, topic, subscriber, owner=None):
    return call(
        "POST",
        fleet,
        f"/topics/{topic}/subscriptions",
        project,
        owner,
        json={"subscriber": subscriber, "ttl": 3600},
    )


def test_subscribers_of_two_projects_receive_a_topic_message(fleet, receiver, smtp, project):
    friend, stranger = project + "-friend", project + "-stranger"
    created = call(
        "PUT",
        fleet,
        "/topics/orders",
        project,
        json={
            "_allowed_subscribe_projects": [project, friend],
            "_allowed_sending_projects": [project, friend],
        },
    )
    assert created.status_code == 201, created.text

    for who, owner, subscriber in [
        (project, None, receiver.url + "/owner"),
        (friend, project, receiver.url + "/friend"),
        (friend, project, "mailto:friend@example.com"),
    ]:
        response = subscribe(fleet, who, "orders", subscriber, owner)
        assert response.status_code == 201, response.text
    refused = subscribe(fleet, stranger, "orders", receiver.url + "/stranger", project)
    assert refused.status_code == 403, refused.text

    posted = call(
        "POST",
        fleet,
        "/topics/orders/messages",
        project,
        json={"messages": [{"ttl": 300, "body": {"order": 42}}]},
    )
    assert posted.status_code == 201, posted.text
    message_id = posted.json()["resources"][0].rsplit("/", 1)[1]

    for path in ("/owner", "/friend"):
        [request] = receiver.wait_for(1, path, timeout=30)
        payload = request.json()
        assert payload["topic_name"] == "orders"
        assert payload["body"] == {"order": 42}
        assert payload["message_id"] == message_id
    [mail] = smtp.wait_for(1, timeout=30)
    assert mail.rcpt_tos == ["friend@example.com"]
    assert "orders" in mail.message["Subject"]
    assert message_id in mail.content.decode()

    # The other project publishes too: everyone receives that as well.
    again = call(
        "POST",
        fleet,
        "/topics/orders/messages",
        friend,
        project,
        json={"messages": [{"ttl": 300, "body": "from friend"}]},
    )
    assert again.status_code == 201, again.text
    for path in ("/owner", "/friend"):
        assert len(receiver.wait_for(2, path, timeout=30)) == 2
    assert len(smtp.wait_for(2, timeout=30)) == 2
    assert receiver.received("/stranger") == []


def test_a_deleted_topic_delivers_nothing_more(fleet, receiver, project):
    assert call("PUT", fleet, "/topics/short", project).status_code == 201
    old = subscribe(fleet, project, "short", receiver.url + "/short")
    assert old.status_code == 201, old.text
    old_id = old.json()["subscription_id"]
    assert call("DELETE", fleet, "/topics/short", project).status_code == 204

    assert (
        call(
            "POST", fleet, "/topics/short/messages", project, json={"messages": [{"body": 1}]}
        ).status_code
        == 404
    )
    assert call("PUT", fleet, "/topics/short", project).status_code == 201
    assert call("GET", fleet, f"/topics/short/subscriptions/{old_id}", project).status_code == 404
    # A subscriber of the new topic: the post below is fanned out and
    # delivered, so the old subscriber's silence is not just a slow fleet.
    new = subscribe(fleet, project, "short", receiver.url + "/witness")
    assert new.status_code == 201, new.text
    new_id = new.json()["subscription_id"]
    posted = call(
        "POST", fleet, "/topics/short/messages", project, json={"messages": [{"body": 2}]}
    )
    assert posted.status_code == 201, posted.text
    message_id = posted.json()["resources"][0].rsplit("/", 1)[1]

    [witnessed] = receiver.wait_for(1, "/witness", timeout=30)
    assert witnessed.json()["message_id"] == message_id
    # Every subscription the fan-out matched is in the message's attempt log,
    # written once the deliveries of the fan-out ran: only the new one.
    attempts_path = f"/topics/short/messages/{message_id}/attempts"

    def logged():
        response = call("GET", fleet, attempts_path, project)
        assert response.status_code == 200, response.text
        return response.json()["attempts"]

    attempts = wait_until(logged)
    assert [(a["subscription_id"], a["outcome"]) for a in attempts] == [(new_id, "delivered")]
    assert receiver.received("/short") == []
