"""Subscription confirmation and pre-signed URLs through the API: falcon's test
client on the app ``create_app`` builds, real Redis, and the in-memory
dispatcher run by the test, so confirmations really reach a real receiver
through the real webhook sink."""

import datetime
import subprocess
import sys
import time
import uuid

import pytest
from falcon import testing

from notifier.api import confirm_drivers
from notifier.api.app import create_app
from notifier.core import signing
from notifier.core.confirmation import (
    NONCE_FIELD,
    ConfirmationConfigError,
    confirmation_payload,
    headers_of,
)
from notifier.delivery.service import DeliveryService
from notifier.store.storage import Source
from tests.support.dispatch import MemoryDispatcher

KEY = "integration-signing-key"
PUBLIC = "http://notifier.test"
WITH_CLIENT = {"Client-ID": str(uuid.uuid4())}


@pytest.fixture
def confirm_conf(conf):
    conf.set_override("require_confirmation", True, group="notification")
    conf.set_override("secret_key", KEY, group="signed_url")
    conf.set_override("public_url", PUBLIC, group="api")
    return conf


@pytest.fixture
def dispatcher():
    return MemoryDispatcher()


@pytest.fixture
def service(confirm_conf, storage, dispatcher):
    return DeliveryService(confirm_conf, storage, dispatcher)


@pytest.fixture
def app(confirm_conf, storage, dispatcher):
    return create_app(confirm_conf, storage=storage, dispatcher=dispatcher)


@pytest.fixture
def client(app, project):
    return testing.TestClient(app, headers={"X-Project-ID": project})


@pytest.fixture
def anonymous(app):
    return testing.TestClient(app)


def subscribe(client, subscriber, queue="orders", status=201, **fields):
    result = client.simulate_post(
        f"/v2/queues/{queue}/subscriptions", json={"subscriber": subscriber, **fields}
    )
    assert result.status_code == status, result.text
    return result


def queued_confirmations(dispatcher, storage):
    """Payloads of the control messages waiting in the dispatcher."""
    ids = [d["message_id"] for name, args in dispatcher.tasks if name == "deliver" for d in args[0]]
    messages = storage.get_control_messages(ids)
    return [messages[i]["payload"] for i in ids if i in messages]


def put_confirm(client, payload, body=None, headers=None, path=None):
    return client.simulate_put(
        path or payload["URL-Paths"],
        json={"confirmed": True} if body is None else body,
        headers=dict(headers_of(payload), **(headers or {})),
    )


def post_message(client, queue="orders", body=None):
    result = client.simulate_post(
        f"/v2/queues/{queue}/messages",
        headers=WITH_CLIENT,
        json={"messages": [{"ttl": 300, "body": body or {}}]},
    )
    assert result.status_code == 201, result.text


def confirmed(client, subscription_id, queue="orders"):
    result = client.simulate_get(f"/v2/queues/{queue}/subscriptions/{subscription_id}")
    return result.json["confirmed"]


# -- the webhook flow ------------------------------------------------------------


def test_a_webhook_confirms_with_the_signed_put_and_only_then_receives(
    client, anonymous, dispatcher, service, receiver, project
):
    created = subscribe(client, receiver.url + "/hook").json
    subscription_id = created["subscription_id"]
    assert created["secret"].startswith("whsec_")
    assert confirmed(client, subscription_id) is False
    post_message(client, body={"before": True})
    dispatcher.run(service)

    [request] = receiver.received("/hook")  # the confirmation, nothing else
    payload = request.json()
    assert payload["Message_Type"] == "SubscriptionConfirmation"
    assert payload["X-Project-ID"] == project
    assert payload["SubscribeURL"] == PUBLIC + payload["URL-Paths"]
    signing.verify_signed_request(
        KEY,
        signature=payload["URL-Signature"],
        expires=payload["URL-Expires"],
        methods=payload["URL-Methods"],
        paths=payload["URL-Paths"],
        project=project,
        request_method="PUT",
        request_path=f"/v2/queues/orders/subscriptions/{subscription_id}/confirm/"
        + payload["URL-Paths"].rsplit("/", 1)[1],
    )
    # The last segment is the nonce of this confirmation, stored on the subscription.
    nonce = payload["URL-Paths"].rsplit("/", 1)[1]
    assert len(nonce) == 32

    # No project header of its own, no token: the signed headers are all it takes.
    result = put_confirm(anonymous, payload, payload["SubscribeBody"])
    assert result.status_code == 204, result.text
    assert result.headers["Access-Control-Allow-Origin"] == "*"
    assert confirmed(client, subscription_id) is True
    post_message(client, body={"after": True})
    dispatcher.run(service)
    bodies = [r.json() for r in receiver.received("/hook")]
    assert [b.get("body") for b in bodies[1:]] == [{"after": True}]


def test_posting_the_same_subscriber_again_resends_until_confirmed_then_409(
    client, anonymous, dispatcher, storage
):
    first = subscribe(client, "http://127.0.0.1:9/again").json
    again = subscribe(client, "http://127.0.0.1:9/again").json
    assert again == {"subscription_id": first["subscription_id"]}  # no secret again
    sent = queued_confirmations(dispatcher, storage)
    assert len(sent) == 2
    assert {p["subscription_id"] for p in sent} == {first["subscription_id"]}
    assert put_confirm(anonymous, sent[-1]).status_code == 204
    subscribe(client, "http://127.0.0.1:9/again", status=409)


def test_unsubscribing_sends_an_unsubscribe_confirmation_and_stops_delivery(
    client, anonymous, dispatcher, service, receiver
):
    subscription_id = subscribe(client, receiver.url + "/bye").json["subscription_id"]
    dispatcher.run(service)
    payload = receiver.received("/bye")[0].json()
    assert put_confirm(anonymous, payload).status_code == 204
    result = put_confirm(anonymous, payload, payload["UnsubscribeBody"])
    assert result.status_code == 204
    assert confirmed(client, subscription_id) is False
    post_message(client)
    dispatcher.run(service)
    types = [r.json()["Message_Type"] for r in receiver.received("/bye")]
    assert types == ["SubscriptionConfirmation", "UnsubscribeConfirmation"]
    goodbye = receiver.received("/bye")[1].json()
    # Saying "false" again changes nothing and sends nothing (no reply loops).
    assert put_confirm(anonymous, goodbye, {"confirmed": False}).status_code == 204
    dispatcher.run(service)
    assert len(receiver.received("/bye")) == 2
    # The UnsubscribeConfirmation superseded the first link; its own URL
    # subscribes again.
    assert put_confirm(anonymous, payload).status_code == 403
    assert put_confirm(anonymous, goodbye).status_code == 204
    assert confirmed(client, subscription_id) is True


def test_a_confirmation_is_retried_like_any_delivery(client, dispatcher, service, receiver):
    receiver.script("/flaky", [503, 200])
    subscribe(client, receiver.url + "/flaky")
    dispatcher.run(service)
    arrived = receiver.received("/flaky")
    assert [r.json()["Message_Type"] for r in arrived] == ["SubscriptionConfirmation"] * 2


def test_pointing_a_confirmed_subscription_elsewhere_needs_a_new_confirmation(
    client, anonymous, dispatcher, storage
):
    subscription_id = subscribe(client, "http://127.0.0.1:9/a").json["subscription_id"]
    assert put_confirm(anonymous, queued_confirmations(dispatcher, storage)[0]).status_code == 204
    result = client.simulate_patch(
        f"/v2/queues/orders/subscriptions/{subscription_id}",
        json={"subscriber": "http://127.0.0.1:9/b"},
    )
    assert result.status_code == 204, result.text
    assert confirmed(client, subscription_id) is False
    assert len(queued_confirmations(dispatcher, storage)) == 2
    # changing anything else keeps the confirmation state as it is
    assert (
        client.simulate_patch(
            f"/v2/queues/orders/subscriptions/{subscription_id}", json={"ttl": 7200}
        ).status_code
        == 204
    )
    assert len(queued_confirmations(dispatcher, storage)) == 2


def test_an_email_subscription_must_have_one_recipient(client):
    result = subscribe(client, "mailto:a@example.com?cc=b@example.com", status=400)
    assert result.json["field"] == "subscriber"
    subscribe(client, "mailto:a@example.com", options={"bcc": ["c@example.com"]}, status=400)
    subscribe(client, "mailto:a@example.com")


def test_without_require_confirmation_subscriptions_start_confirmed(
    confirm_conf, client, dispatcher, storage
):
    confirm_conf.set_override("require_confirmation", False, group="notification")
    subscription_id = subscribe(client, "http://127.0.0.1:9/x").json["subscription_id"]
    assert confirmed(client, subscription_id) is True
    assert queued_confirmations(dispatcher, storage) == []


def test_a_topic_subscription_of_another_project_confirms_with_the_owners_url(
    app, dispatcher, storage
):
    owner = testing.TestClient(app, headers={"X-Project-ID": "owner"})
    assert owner.simulate_put("/v2/topics/alerts", json={}).status_code == 201
    guest = testing.TestClient(app, headers={"X-Project-ID": "guest", "X-Topic-Owner": "owner"})
    result = guest.simulate_post(
        "/v2/topics/alerts/subscriptions", json={"subscriber": "http://127.0.0.1:9/t"}
    )
    assert result.status_code == 201, result.text
    [payload] = queued_confirmations(dispatcher, storage)
    assert payload["X-Project-ID"] == "owner" and payload["topic_name"] == "alerts"
    # An owner header added to a signed request is ignored: it is the signed
    # project's topic or nothing.
    assert (
        put_confirm(
            testing.TestClient(app), payload, headers={"X-Topic-Owner": "guest"}
        ).status_code
        == 204
    )
    view = guest.simulate_get(f"/v2/topics/alerts/subscriptions/{result.json['subscription_id']}")
    assert view.json["confirmed"] is True


# -- refusals: 400/401/403/404, never 500 ---------------------------------------------


@pytest.fixture
def pending(client, dispatcher, storage):
    subscribe(client, "http://127.0.0.1:9/pending")
    return queued_confirmations(dispatcher, storage)[0]


def forged(payload, **changes):
    """The payload's headers re-signed with other fields (a valid signature)."""
    fields = {
        "paths": payload["URL-Paths"],
        "methods": payload["URL-Methods"],
        "project": payload["X-Project-ID"],
        "expires": payload["URL-Expires"],
    }
    fields.update(changes)
    key = fields.pop("key", KEY)
    return {
        "URL-Signature": signing.sign_url(
            key, fields["paths"], fields["methods"], fields["project"], fields["expires"]
        ),
        "URL-Paths": fields["paths"],
        "URL-Methods": fields["methods"],
        "X-Project-ID": fields["project"],
        "URL-Expires": fields["expires"],
    }


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda p: {"URL-Signature": "0" * 64}, id="tampered-signature"),
        pytest.param(lambda p: {"URL-Signature": p["URL-Signature"][:-1]}, id="truncated"),
        pytest.param(lambda p: {"URL-Expires": "2999-01-01T00:00:00"}, id="extended"),
        pytest.param(lambda p: {"X-Project-ID": "someone-else"}, id="wrong-project"),
        pytest.param(lambda p: {"URL-Methods": "PUT,DELETE"}, id="more-methods"),
        pytest.param(lambda p: forged(p, expires="2001-01-01T00:00:00"), id="expired"),
        pytest.param(lambda p: forged(p, key="another-key"), id="other-key"),
        pytest.param(lambda p: {"URL-Expires": "tomorrow"}, id="garbage-expires"),
        pytest.param(lambda p: {"URL-Paths": ""}, id="no-paths"),
        pytest.param(lambda p: {"URL-Signature": ""}, id="empty-signature"),
        pytest.param(lambda p: {"X-Project-ID": "None"}, id="project-None"),
    ],
)
def test_a_changed_header_is_refused_with_401(anonymous, pending, change):
    result = put_confirm(anonymous, pending, headers=change(pending))
    assert result.status_code == 401, result.text
    assert result.json["title"] == "Unauthorized" and result.json["description"]


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE", "PATCH"])
def test_the_confirm_url_allows_no_other_method(anonymous, pending, method):
    result = anonymous.simulate_request(
        method, pending["URL-Paths"], headers=headers_of(pending), json={}
    )
    assert result.status_code == 401


@pytest.mark.parametrize(
    "path",
    [
        lambda p: p["URL-Paths"].rsplit("/", 1)[0],  # the subscription
        lambda p: p["URL-Paths"].replace("/orders/", "/other/"),  # another queue
        lambda p: p["URL-Paths"] + "/extra",
        lambda p: p["URL-Paths"] + "/",
        lambda p: "/v2/queues/orders/messages",
        lambda p: p["URL-Paths"].replace("/confirm", "/../confirm"),
    ],
)
def test_the_confirm_url_allows_no_other_path(anonymous, pending, path):
    result = put_confirm(anonymous, pending, path=path(pending))
    assert result.status_code == 401, result.text


def test_confirming_needs_a_signed_request_even_from_the_owner(client, pending):
    result = client.simulate_put(pending["URL-Paths"], json={"confirmed": True})
    assert result.status_code == 401
    assert "signed headers" in result.json["description"]


@pytest.mark.parametrize(
    "body,field",
    [
        ({}, "confirmed"),
        ({"confirmed": "yes"}, "confirmed"),
        ({"confirmed": True, "extra": 1}, "extra"),
        ({"confirmed": True, "extra_spec": [1]}, "extra_spec"),
        ([True], "body"),
    ],
)
def test_a_bad_confirm_body_is_a_400(anonymous, pending, body, field):
    result = put_confirm(anonymous, pending, body)
    assert result.status_code == 400
    assert result.json["field"] == field


def test_a_signed_confirm_of_a_deleted_subscription_is_a_404(client, anonymous, pending):
    subscription_id = pending["subscription_id"]
    client.simulate_delete(f"/v2/queues/orders/subscriptions/{subscription_id}")
    assert put_confirm(anonymous, pending).status_code == 404


def test_a_signature_is_refused_when_signing_is_off(confirm_conf, storage, pending):
    confirm_conf.set_override("require_confirmation", False, group="notification")
    confirm_conf.set_override("secret_key", None, group="signed_url")
    app = create_app(confirm_conf, storage=storage, dispatcher=MemoryDispatcher())
    result = put_confirm(testing.TestClient(app), pending)
    assert result.status_code == 401
    assert "secret_key" in result.json["description"]


def test_requiring_confirmation_without_a_key_refuses_to_build_the_app(confirm_conf, storage):
    confirm_conf.set_override("secret_key", None, group="signed_url")
    with pytest.raises(ConfirmationConfigError, match="secret_key"):
        create_app(confirm_conf, storage=storage, dispatcher=MemoryDispatcher())


# -- extra_spec and the mac driver ---------------------------------------------------


def test_the_mac_driver_checks_the_code_in_extra_spec(confirm_conf, storage, project):
    confirm_conf.set_override("confirmation_driver", "mac", group="notification")
    confirm_conf.set_override("secret_key", "mac-key", group="confirmation_mac")
    dispatcher = MemoryDispatcher()
    app = create_app(confirm_conf, storage=storage, dispatcher=dispatcher)
    subscription_id = subscribe(
        testing.TestClient(app, headers={"X-Project-ID": project}), "http://127.0.0.1:9/mac"
    ).json["subscription_id"]
    [payload] = queued_confirmations(dispatcher, storage)
    anonymous = testing.TestClient(app)
    missing = put_confirm(anonymous, payload)
    assert missing.status_code == 400
    assert missing.json["field"] == "extra_spec.message_authentication_code"
    wrong = put_confirm(
        anonymous,
        payload,
        {"confirmed": True, "extra_spec": {"message_authentication_code": "0" * 64}},
    )
    assert wrong.status_code == 403
    code = confirm_drivers.message_authentication_code("mac-key", subscription_id)
    right = put_confirm(
        anonymous, payload, {"confirmed": True, "extra_spec": {"message_authentication_code": code}}
    )
    assert right.status_code == 204, right.text


# -- share ---------------------------------------------------------------------------------


def test_share_returns_a_url_that_verifies_and_works(client, anonymous, project):
    result = client.simulate_post(
        "/v2/queues/shared/share",
        json={"methods": ["GET", "POST"], "paths": ["messages"], "expires": "2099-01-01T00:00:00Z"},
    )
    assert result.status_code == 201, result.text
    share = result.json
    assert share["paths"] == ["/v2/queues/shared/messages"]
    assert share["methods"] == ["GET", "POST"] and share["project"] == project
    assert share["expires"] == "2099-01-01T00:00:00"
    for method in ("GET", "POST"):
        signing.verify_signed_request(
            KEY,
            signature=share["signature"],
            expires=share["expires"],
            methods=",".join(share["methods"]),
            paths=",".join(share["paths"]),
            project=project,
            request_method=method,
            request_path="/v2/queues/shared/messages",
        )
    signed = {
        "URL-Signature": share["signature"],
        "URL-Expires": share["expires"],
        "URL-Methods": "GET,POST",
        "URL-Paths": share["paths"][0],
        "X-Project-ID": project,
        **WITH_CLIENT,
    }
    posted = anonymous.simulate_post(
        "/v2/queues/shared/messages", headers=signed, json={"messages": [{"body": 1, "ttl": 60}]}
    )
    assert posted.status_code == 201, posted.text
    elsewhere = anonymous.simulate_post(
        "/v2/queues/other/messages", headers=signed, json={"messages": [{"body": 1, "ttl": 60}]}
    )
    assert elsewhere.status_code == 401
    sharing = anonymous.simulate_post("/v2/queues/shared/share", headers=signed, json={})
    assert sharing.status_code == 401


def test_share_defaults_to_get_on_messages_for_a_day(client):
    def utc_now():
        return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)

    before = utc_now().replace(microsecond=0)  # "expires" has whole seconds
    share = client.simulate_post("/v2/queues/shared/share").json
    after = utc_now()
    assert share["methods"] == ["GET"]
    assert share["paths"] == ["/v2/queues/shared/messages"]
    expires = datetime.datetime.fromisoformat(share["expires"])
    day = datetime.timedelta(days=1)
    assert before + day <= expires <= after + day


@pytest.mark.parametrize(
    "body,field",
    [
        ({"paths": ["claims"]}, "paths"),
        ({"paths": ["../messages"]}, "paths"),
        ({"paths": "messages"}, "paths"),
        ({"methods": ["BREW"]}, "methods"),
        ({"methods": [{}]}, "methods"),
        ({"methods": "GET"}, "methods"),
        ({"paths": [{}]}, "paths"),
        ({"expires": {}}, "expires"),
        ({"expires": "2001-01-01T00:00:00"}, "expires"),
        ({"expires": 5}, "expires"),
        ({"ttl": 5}, "ttl"),
    ],
)
def test_a_bad_share_request_is_a_400(client, body, field):
    result = client.simulate_post("/v2/queues/shared/share", json=body)
    assert result.status_code == 400, result.text
    assert result.json["field"] == field


def test_share_without_a_key_says_signing_is_off(confirm_conf, storage, project):
    confirm_conf.set_override("require_confirmation", False, group="notification")
    confirm_conf.set_override("secret_key", None, group="signed_url")
    app = create_app(confirm_conf, storage=storage, dispatcher=MemoryDispatcher())
    result = testing.TestClient(app, headers={"X-Project-ID": project}).simulate_post(
        "/v2/queues/shared/share"
    )
    assert result.status_code == 501


def test_only_the_owner_shares_a_topic(app):
    owner = testing.TestClient(app, headers={"X-Project-ID": "owner"})
    owner.simulate_put("/v2/topics/news", json={})
    guest = testing.TestClient(app, headers={"X-Project-ID": "guest", "X-Topic-Owner": "owner"})
    assert guest.simulate_post("/v2/topics/news/share").status_code == 403
    assert owner.simulate_post("/v2/topics/news/share").json["paths"] == [
        "/v2/topics/news/messages"
    ]


# -- the page, CORS, and keystone ------------------------------------------------------


def test_the_api_serves_the_confirmation_page_with_a_strict_policy(anonymous):
    result = anonymous.simulate_get("/v2/confirmation")
    assert result.status_code == 200
    assert result.headers["Content-Type"].startswith("text/html")
    assert "Confirm subscription" in result.text
    policy = result.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "'sha256-" in policy
    assert "unsafe-inline" not in policy
    assert result.headers["Referrer-Policy"] == "no-referrer"


def test_a_page_on_another_origin_may_call_the_confirm_route(anonymous, pending):
    result = anonymous.simulate_options(
        pending["URL-Paths"],
        headers={
            "Origin": "https://portal.example",
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "url-signature,content-type",
        },
    )
    assert result.status_code == 204
    assert result.headers["Access-Control-Allow-Origin"] == "*"
    assert "URL-Signature" in result.headers["Access-Control-Allow-Headers"]
    refused = put_confirm(anonymous, pending, headers={"URL-Signature": "0" * 64})
    assert refused.headers["Access-Control-Allow-Origin"] == "*"


def test_with_keystone_a_signed_request_needs_no_token(confirm_conf, storage):
    """The signed-header layer sits outside keystonemiddleware: no Keystone runs
    here at all, so only requests that never reach the middleware succeed."""
    from keystonemiddleware import auth_token

    for group, opts in auth_token.list_opts():
        confirm_conf.register_opts(opts, group=group)
    confirm_conf.set_override(
        "www_authenticate_uri", "http://127.0.0.1:9/identity", group="keystone_authtoken"
    )
    confirm_conf.set_override("auth_strategy", "keystone")
    dispatcher = MemoryDispatcher()
    app = create_app(confirm_conf, storage=storage, dispatcher=dispatcher)
    # falcon's test client needs a plain function to tell WSGI from ASGI
    client = testing.TestClient(lambda environ, start: app(environ, start))
    assert (
        client.simulate_get("/v2/queues", headers={"X-Project-ID": "p1"}).status_code == 401
    )  # keystonemiddleware
    assert client.simulate_get("/v2/confirmation").status_code == 200
    # A subscription made behind keystone (as the middleware would pass it on).
    inner = testing.TestClient(app.app, headers={"X-Project-ID": "p1"})
    subscription_id = subscribe(inner, "http://127.0.0.1:9/ks").json["subscription_id"]
    [payload] = queued_confirmations(dispatcher, storage)
    result = put_confirm(
        client, payload, headers={"X-Roles": "admin", "X-Identity-Status": "Confirmed"}
    )
    assert result.status_code == 204, result.text
    assert confirmed(inner, subscription_id) is True


@pytest.mark.parametrize("role", ["api", "worker", "scheduler"])
def test_a_role_refuses_to_start_requiring_confirmation_without_a_key(tmp_path, role):
    config = tmp_path / "notifier.conf"
    config.write_text("[notification]\nrequire_confirmation = true\n")
    done = subprocess.run(
        [sys.executable, "-m", "notifier.cli", role, "--config-file", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "configuration error" in done.stderr and "secret_key" in done.stderr


# -- consent (issue 16) ------------------------------------------------------------------


def test_a_superseded_confirmation_still_queued_is_not_sent(
    client, anonymous, dispatcher, service, storage, receiver
):
    subscription_id = subscribe(client, receiver.url + "/twice").json["subscription_id"]
    subscribe(client, receiver.url + "/twice")  # sent again before the first went out
    first, second = queued_confirmations(dispatcher, storage)
    dispatcher.run(service)
    [request] = receiver.received("/twice")
    assert request.json()["URL-Paths"] == second["URL-Paths"] != first["URL-Paths"]
    attempts = client.simulate_get(
        f"/v2/queues/orders/subscriptions/{subscription_id}/attempts"
    ).json["attempts"]
    assert sorted(a["outcome"] for a in attempts) == ["delivered", "superseded"]
    assert all(a["message_id"] is None and a["control"] for a in attempts)
    assert put_confirm(anonymous, first).status_code == 403
    assert put_confirm(anonymous, second).status_code == 204


def test_a_link_without_a_nonce_confirms_only_a_subscription_stored_before_nonces(
    client, anonymous, storage, project
):
    """Upgrading keeps the links already sent working, until the subscriber changes."""
    subscription_id = subscribe(client, "http://127.0.0.1:9/legacy").json["subscription_id"]
    source = Source(project, "queues", "orders")
    storage.update_subscription(
        source, subscription_id, lambda r: {k: v for k, v in r.items() if k != NONCE_FIELD}
    )
    legacy = headers_of(
        confirmation_payload(
            "SubscriptionConfirmation",
            key=KEY,
            source=tuple(source),
            subscription_id=subscription_id,
            api_url=PUBLIC,
            page=PUBLIC + "/v2/confirmation",
            now=time.time(),
            ttl_seconds=3600,
        )
    )
    assert legacy["URL-Paths"].endswith("/confirm")
    assert put_confirm(anonymous, legacy).status_code == 204
    assert put_confirm(anonymous, legacy, {"confirmed": False}).status_code == 204
    result = client.simulate_patch(
        f"/v2/queues/orders/subscriptions/{subscription_id}",
        json={"subscriber": "http://127.0.0.1:9/victim"},
    )
    assert result.status_code == 204
    refused = put_confirm(anonymous, legacy)
    assert refused.status_code == 403 and refused.json["title"] == "Forbidden"
    assert confirmed(client, subscription_id) is False


def test_another_projects_link_confirms_nothing_here(app, dispatcher, storage):
    """Tenants: project B's valid link, pointed at project A's subscription of
    the same queue name, or carrying A's project header, is refused."""
    mine = testing.TestClient(app, headers={"X-Project-ID": "project-a"})
    theirs = testing.TestClient(app, headers={"X-Project-ID": "project-b"})
    a_id = subscribe(mine, "http://127.0.0.1:9/a").json["subscription_id"]
    subscribe(theirs, "http://127.0.0.1:9/b")
    a_link, b_link = queued_confirmations(dispatcher, storage)
    anonymous = testing.TestClient(app)
    a_path = a_link["URL-Paths"]
    assert put_confirm(anonymous, b_link, path=a_path).status_code == 401
    assert put_confirm(anonymous, b_link, headers={"X-Project-ID": "project-a"}).status_code == 401
    assert put_confirm(anonymous, a_link, headers={"X-Project-ID": "project-b"}).status_code == 401
    assert confirmed(mine, a_id) is False


def test_the_served_page_may_only_call_the_public_urls_origin(anonymous):
    page = anonymous.simulate_get("/v2/confirmation")
    assert '<meta name="notifier-api-origin" content="http://notifier.test">' in page.text
    policy = page.headers["Content-Security-Policy"]
    assert "connect-src http://notifier.test;" in policy
    assert "connect-src *" not in policy
