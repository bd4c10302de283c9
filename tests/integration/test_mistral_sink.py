"""The trust sink (trust+http(s) subscribers) against a real Keystone and a
Mistral stand-in, through the real keystoneauth1 and python-mistralclient.

Keystone is the real one: the ``keystone`` package on SQLite, served on
127.0.0.1 (tests/support/keystone_server.py, ~12 s to start, once per
module). Mistral is a loopback stand-in of ``POST /v2/executions``
(tests/support/mistral_standin.py) that validates every token with that
Keystone and records the execution with the identity it ran under.

The keystone auth strategy: in production ``create_app`` wraps the app in
keystonemiddleware's auth_token, which validates the caller's token and sets
X-Identity-Status: Confirmed, X-User-ID, X-Project-ID and X-Roles, passing
X-Auth-Token on. The API tests here build the same app without that wrapper
and send those headers themselves, with a real token of the user alice from
this Keystone; the hook tests hand the hooks a RequestContext holding it.
"""

import datetime
import logging
import time

import falcon
import pytest
import requests
from falcon import testing

from notifier import errors
from notifier.api import errors as api_errors
from notifier.api.app import add_routes, create_app
from notifier.cli.redis_server import free_port
from notifier.core import payloads
from notifier.services.subscriptions import checked_fields
from notifier.sinks import Notification, RequestContext
from notifier.sinks.keystone import TokenCache, TrustToken
from notifier.sinks.trust import (
    TrustSink,
    keystone_for,
    mistral_params,
    public_form,
    split_subscriber,
)
from notifier.store.storage import Source
from tests.support.keystone_server import PASSWORDS, KeystoneServer
from tests.support.mistral_standin import MistralStandIn
from tests.support.processes import Role, write_config
from workers.app import CeleryDispatcher, create_celery

WORKFLOW_ID = "6f4b1b0e-5d0c-4a53-9b8e-0c2f1f6f4b1b"
TTL = 3600


@pytest.fixture(scope="module")
def mistral():
    with MistralStandIn(validate=None) as standin:
        yield standin


@pytest.fixture(scope="module")
def keystone(tmp_path_factory, mistral):
    with KeystoneServer(tmp_path_factory.mktemp("keystone")) as server:
        server.populate(mistral.url, f"http://127.0.0.1:{free_port()}/v2")
        mistral.validate = server.validate
        yield server


@pytest.fixture(autouse=True)
def fresh_mistral(mistral):
    mistral.reset()


def trustee_settings(keystone):
    return {
        "auth_url": keystone.url,
        "username": "notifier",
        "password": PASSWORDS["notifier"],
        "user_domain_id": "default",
        "project_name": "service",
        "project_domain_id": "default",
    }


@pytest.fixture
def trust_conf(conf, keystone):
    conf.set_override("auth_strategy", "keystone")
    for name, value in trustee_settings(keystone).items():
        conf.set_override(name, value, group="trustee")
    return conf


@pytest.fixture(scope="module")
def alice(keystone):
    token, body = keystone.token("alice", "demo")
    return RequestContext(
        project_id=body["project"]["id"],
        user_id=body["user"]["id"],
        auth_token=token,
        authenticated=True,
        roles=tuple(sorted(r["name"] for r in body["roles"])),
    )


def subscribe(conf, context, subscriber, options=None, ttl=TTL):
    """Do what POST .../subscriptions does with the sink; return the record."""
    fields = checked_fields({"subscriber": subscriber, "ttl": ttl, "options": options or {}}, conf)
    fields = TrustSink.prepare_subscription(fields, context, conf)
    return {
        "id": "sub-1",
        "source": ["p", "queues", "q"],
        "ttl": ttl,
        "subscriber": fields["subscriber"],
        "options": fields["options"],
        **fields.get("extra", {}),
    }


def notification(record, body, message_id="m1"):
    message = {
        "id": message_id,
        "body": body,
        "ttl": 300,
        "created": 1700000000.0,
        "source": record["source"],
    }
    return Notification(
        delivery_id=payloads.delivery_id(message_id, record["id"]),
        subscription=record,
        message=message,
        attempt=0,
        payload=payloads.notification_payload(message, "queues", "q"),
    )


def trust_of(keystone, context, record):
    trust_id, _ = split_subscriber(record["subscriber"])
    return keystone.call("GET", f"/OS-TRUST/trusts/{trust_id}", context.auth_token)["trust"]


def epoch(iso):
    return (
        datetime.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ")
        .replace(tzinfo=datetime.UTC)
        .timestamp()
    )


# -- pure helpers -------------------------------------------------------------


@pytest.mark.parametrize(
    "params, expected",
    [
        (None, {"env": {"notification": {"a": 1}, "notification_id": "m1"}}),
        (
            {"task_name": "t"},
            {"task_name": "t", "env": {"notification": {"a": 1}, "notification_id": "m1"}},
        ),
        (
            {"env": {"region": "r1", "notification": "stale"}},
            {"env": {"region": "r1", "notification": {"a": 1}, "notification_id": "m1"}},
        ),
    ],
)
def test_execution_params_override_only_the_two_notification_keys_of_env(params, expected):
    assert mistral_params(params, {"a": 1}, "m1") == expected


def test_a_cached_token_is_reused_until_the_margin_before_it_expires():
    now, fetched = [1000.0], []

    def fetch(trust_id):
        fetched.append(trust_id)
        return TrustToken(f"token{len(fetched)}", now[0] + 100)

    cache = TokenCache(fetch, margin_seconds=10, max_size=2, clock=lambda: now[0])
    assert cache.get("t") == (TrustToken("token1", 1100.0), True)
    now[0] = 1089.0
    assert cache.get("t") == (TrustToken("token1", 1100.0), False)
    now[0] = 1090.0
    assert cache.get("t") == (TrustToken("token2", 1190.0), True)
    cache.get("a")
    cache.get("b")  # the least recently used, "t", makes room
    assert cache.get("t")[1] is True
    assert fetched == ["t", "t", "a", "b", "t"]


@pytest.mark.parametrize(
    "stored, shown",
    [
        (
            "trust+https://abc123@mistral.example/v2/executions",
            "trust+https://mistral.example/v2/executions",
        ),
        ("trust+http://t@host:8989/hook?x=1", "trust+http://host:8989/hook?x=1"),
        ("https://user@host/hook", "https://user@host/hook"),
    ],
)
def test_the_public_form_of_a_subscriber_drops_only_a_trust_id(stored, shown):
    assert public_form(stored) == shown


# -- subscribing ----------------------------------------------------------------


def test_subscribing_creates_an_impersonating_trust_with_the_users_roles(
    trust_conf, keystone, alice
):
    before = time.time()
    record = subscribe(trust_conf, alice, "trust+http://mistral.example/v2/executions", ttl=7200)
    trust = trust_of(keystone, alice, record)

    assert trust["impersonation"] is True
    assert trust["trustor_user_id"] == alice.user_id
    assert trust["trustee_user_id"] == keystone.ids["notifier"]
    assert trust["project_id"] == alice.project_id
    assert sorted(r["name"] for r in trust["roles"]) == ["member", "reader"]
    margin = trust_conf.trustee.trust_expiry_margin_seconds
    assert before + 7200 + margin - 1 <= epoch(trust["expires_at"]) <= time.time() + 7200 + margin
    assert public_form(record["subscriber"]) == "trust+http://mistral.example/v2/executions"


def test_a_trust_without_expiry_is_made_when_there_is_no_ttl(trust_conf, keystone, alice):
    trust_id = keystone_for(trust_conf).create_trust(alice, None)
    trust = trust_of(keystone, alice, {"subscriber": f"trust+http://{trust_id}@h/"})
    assert trust["expires_at"] is None


def test_without_keystone_authentication_a_trust_subscriber_is_refused(trust_conf, alice):
    anonymous = RequestContext(project_id=alice.project_id)
    with pytest.raises(errors.ValidationError, match="Keystone authentication"):
        subscribe(trust_conf, anonymous, "trust+http://mistral.example/v2/executions")
    trust_conf.set_override("auth_strategy", "noauth")
    with pytest.raises(errors.ValidationError, match="auth_strategy = keystone"):
        subscribe(trust_conf, alice, "trust+http://mistral.example/v2/executions")


def test_a_subscriber_naming_its_own_trust_id_is_refused(trust_conf, alice):
    with pytest.raises(errors.ValidationError, match="user info"):
        subscribe(trust_conf, alice, "trust+http://stolen@mistral.example/v2/executions")


# -- delivering -----------------------------------------------------------------


def test_messages_start_executions_as_the_user_with_one_trust_token(
    trust_conf, keystone, mistral, alice
):
    options = {
        "workflow_id": WORKFLOW_ID,
        "input": {"size": 3},
        "params": {"task_name": "t1", "env": {"region": "r1"}},
    }
    record = subscribe(trust_conf, alice, f"trust+{mistral.url}/executions", options)
    sink = TrustSink(trust_conf)
    tokens_before = len(keystone.trust_token_requests())

    reports = [sink.deliver(notification(record, {"n": n}, f"m{n}")) for n in range(3)]

    assert [r.status for r in reports] == [201, 201, 201]
    assert len(keystone.trust_token_requests()) - tokens_before == 1
    executions = mistral.wait_for(3)
    for n, execution in enumerate(executions):
        assert execution.body["workflow_id"] == WORKFLOW_ID
        assert execution.input == {"size": 3}
        assert execution.params == {
            "task_name": "t1",
            "env": {"region": "r1", "notification": {"n": n}, "notification_id": f"m{n}"},
        }
        assert (execution.user_id, execution.project_id) == (alice.user_id, alice.project_id)
        assert execution.roles == ["member", "reader"]
        assert execution.trust["impersonation"] is True


def test_params_get_an_env_when_the_subscription_has_none(trust_conf, mistral, alice):
    record = subscribe(
        trust_conf, alice, f"trust+{mistral.url}/executions", {"workflow_id": "by-name"}
    )
    TrustSink(trust_conf).deliver(notification(record, "plain body", "m9"))

    [execution] = mistral.wait_for(1)
    assert execution.body["workflow_name"] == "by-name"
    assert execution.params == {"env": {"notification": "plain body", "notification_id": "m9"}}


def test_a_trust_url_that_is_not_mistral_gets_a_webhook_with_the_token(
    trust_conf, keystone, receiver, alice
):
    record = subscribe(trust_conf, alice, f"trust+{receiver.url}/hook")
    TrustSink(trust_conf).deliver(notification(record, {"n": 1}))

    [request] = receiver.wait_for(1, path="/hook")
    assert request.json()["body"] == {"n": 1}
    identity = keystone.validate(request.headers["X-Auth-Token"])
    assert (identity["user"]["id"], identity["project"]["id"]) == (alice.user_id, alice.project_id)


def test_a_revoked_cached_token_is_replaced_once(trust_conf, keystone, mistral, alice):
    record = subscribe(
        trust_conf, alice, f"trust+{mistral.url}/executions", {"workflow_id": WORKFLOW_ID}
    )
    sink = TrustSink(trust_conf)
    sink.deliver(notification(record, 1))
    trust_id, _ = split_subscriber(record["subscriber"])
    keystone.revoke(sink.keystone.trust_token(trust_id)[0].token)
    tokens_before = len(keystone.trust_token_requests())

    sink.deliver(notification(record, 2))

    assert len(mistral.rejected) == 1
    assert len(keystone.trust_token_requests()) - tokens_before == 1
    assert [e.params["env"]["notification"] for e in mistral.wait_for(2)] == [1, 2]


def test_a_deleted_trust_fails_permanently_with_a_clear_reason(trust_conf, mistral, alice):
    record = subscribe(
        trust_conf, alice, f"trust+{mistral.url}/executions", {"workflow_id": WORKFLOW_ID}
    )
    TrustSink.release_subscription(record, trust_conf)
    trust_id, _ = split_subscriber(record["subscriber"])

    with pytest.raises(errors.PermanentDeliveryError) as failure:
        TrustSink(trust_conf).deliver(notification(record, 1))

    assert failure.value.kind == "trust_invalid"
    assert "expired or was deleted" in str(failure.value)
    assert trust_id not in str(failure.value)
    assert mistral.executions == []


def test_an_expired_trust_fails_permanently(trust_conf, mistral, alice):
    trust_id = keystone_for(trust_conf).create_trust(alice, time.time() + 2)
    record = {
        "id": "s",
        "source": ["p", "queues", "q"],
        "options": {"workflow_id": WORKFLOW_ID},
        "subscriber": f"trust+{mistral.url}/executions",
    }
    record["subscriber"] = record["subscriber"].replace("://", f"://{trust_id}@")
    time.sleep(3)

    with pytest.raises(errors.PermanentDeliveryError) as failure:
        TrustSink(trust_conf).deliver(notification(record, 1))
    assert failure.value.kind == "trust_invalid"


@pytest.mark.parametrize(
    "status, error",
    [
        (400, errors.PermanentDeliveryError),
        (404, errors.PermanentDeliveryError),
        (503, errors.TransientDeliveryError),
        (429, errors.TransientDeliveryError),
    ],
)
def test_mistral_errors_are_classified_by_status(trust_conf, mistral, alice, status, error):
    record = subscribe(
        trust_conf, alice, f"trust+{mistral.url}/executions", {"workflow_id": WORKFLOW_ID}
    )
    mistral.script([status])
    with pytest.raises(error) as failure:
        TrustSink(trust_conf).deliver(notification(record, 1))
    assert failure.value.status == status


def test_an_unreachable_mistral_is_transient(trust_conf, mistral, alice):
    trust_conf.set_override("region_name", "RegionTwo", group="trustee")
    dead_url = keystone_for(trust_conf).workflow_url_for(alice.auth_token)
    record = subscribe(
        trust_conf, alice, f"trust+{dead_url}/executions", {"workflow_id": WORKFLOW_ID}
    )
    with pytest.raises(errors.TransientDeliveryError) as failure:
        TrustSink(trust_conf).deliver(notification(record, 1))
    assert failure.value.kind == "connection"


def test_an_unreachable_keystone_is_transient(trust_conf, mistral, alice):
    record = subscribe(
        trust_conf, alice, f"trust+{mistral.url}/executions", {"workflow_id": WORKFLOW_ID}
    )
    trust_conf.set_override("auth_url", f"http://127.0.0.1:{free_port()}/v3", group="trustee")
    with pytest.raises(errors.TransientDeliveryError) as failure:
        TrustSink(trust_conf).deliver(notification(record, 1))
    assert failure.value.kind == "keystone_unavailable"


def test_rejected_trustee_credentials_are_told_apart_from_a_dead_trust(trust_conf, mistral, alice):
    record = subscribe(
        trust_conf, alice, f"trust+{mistral.url}/executions", {"workflow_id": WORKFLOW_ID}
    )
    trust_conf.set_override("password", "wrong", group="trustee")
    with pytest.raises(errors.PermanentDeliveryError) as failure:
        TrustSink(trust_conf).deliver(notification(record, 1))
    assert failure.value.kind == "trustee_rejected"


def test_no_token_or_trust_id_reaches_the_logs(trust_conf, keystone, mistral, alice, caplog):
    """notifier's loggers at DEBUG, every logger at INFO. (At DEBUG,
    keystoneauth logs token response bodies, which name the trust, and urllib3
    logs request paths: keep those two at INFO in production.)"""
    caplog.set_level(logging.DEBUG, logger="notifier")
    caplog.set_level(logging.INFO)
    record = subscribe(
        trust_conf, alice, f"trust+{mistral.url}/executions", {"workflow_id": WORKFLOW_ID}
    )
    sink = TrustSink(trust_conf)
    sink.deliver(notification(record, 1))
    trust_id, _ = split_subscriber(record["subscriber"])
    token = sink.keystone.trust_token(trust_id)[0].token
    TrustSink.release_subscription(record, trust_conf)
    with pytest.raises(errors.PermanentDeliveryError) as failure:
        TrustSink(trust_conf).deliver(notification(record, 2))
    assert failure.value.kind == "trust_invalid"

    assert any(r.name.startswith("notifier") for r in caplog.records)
    for secret in (trust_id, token, alice.auth_token):
        assert secret not in caplog.text


# -- the API, with the headers keystonemiddleware sets ----------------------------


@pytest.fixture
def api(trust_conf, storage, alice):
    celery = create_celery(trust_conf)
    app = falcon.App()
    app.req_options.strip_url_path_trailing_slash = True
    api_errors.register(app)
    add_routes(app, trust_conf, storage, CeleryDispatcher(celery))
    yield testing.TestClient(
        app,
        headers={
            "X-Identity-Status": "Confirmed",
            "X-User-ID": alice.user_id,
            "X-Project-ID": alice.project_id,
            "X-Roles": ",".join(alice.roles),
            "X-Auth-Token": alice.auth_token,
        },
    )
    celery.close()


def test_the_api_stores_the_trust_id_but_never_shows_it(api, storage, keystone, mistral, alice):
    subscriber = f"trust+{mistral.url}/executions"
    created = api.simulate_post(
        "/v2/queues/jobs/subscriptions",
        json={"subscriber": subscriber, "ttl": 600, "options": {"workflow_id": WORKFLOW_ID}},
    )
    assert created.status_code == 201, created.text
    subscription_id = created.json["subscription_id"]
    record = storage.get_subscription(Source(alice.project_id, "queues", "jobs"), subscription_id)
    trust_id, _ = split_subscriber(record["subscriber"])

    shown = api.simulate_get(f"/v2/queues/jobs/subscriptions/{subscription_id}")
    listed = api.simulate_get("/v2/queues/jobs/subscriptions")
    assert shown.json["subscriber"] == subscriber
    assert trust_id and trust_id not in shown.text + listed.text
    assert trust_of(keystone, alice, record)["project_id"] == alice.project_id
    again = api.simulate_post("/v2/queues/jobs/subscriptions", json={"subscriber": subscriber})
    assert again.status_code == 409


def test_patching_the_ttl_replaces_the_trust_and_delete_removes_it(
    api, storage, keystone, mistral, alice
):
    path = "/v2/queues/renew/subscriptions"
    subscription_id = api.simulate_post(
        path, json={"subscriber": f"trust+{mistral.url}/executions", "ttl": 600}
    ).json["subscription_id"]
    source = Source(alice.project_id, "queues", "renew")
    first = storage.get_subscription(source, subscription_id)

    patched = api.simulate_patch(f"{path}/{subscription_id}", json={"ttl": 86400})
    assert patched.status_code == 204, patched.text
    second = storage.get_subscription(source, subscription_id)
    assert split_subscriber(second["subscriber"])[0] != split_subscriber(first["subscriber"])[0]
    assert epoch(trust_of(keystone, alice, second)["expires_at"]) > time.time() + 86000
    with pytest.raises(requests.HTTPError) as gone:
        trust_of(keystone, alice, first)
    assert gone.value.response.status_code == 404

    assert api.simulate_delete(f"{path}/{subscription_id}").status_code == 204
    with pytest.raises(requests.HTTPError) as gone:
        trust_of(keystone, alice, second)
    assert gone.value.response.status_code == 404


def test_the_subscriber_of_a_trust_subscription_cannot_be_patched(api, mistral, receiver):
    path = "/v2/queues/fixed/subscriptions"
    subscription_id = api.simulate_post(
        path, json={"subscriber": f"trust+{mistral.url}/executions"}
    ).json["subscription_id"]
    result = api.simulate_patch(
        f"{path}/{subscription_id}",
        json={"subscriber": f"trust+http://stolen@{receiver.url[7:]}/x"},
    )
    assert result.status_code == 400
    assert result.json["field"] == "subscriber"


def test_with_noauth_the_api_refuses_trust_subscribers_with_400(api, trust_conf):
    trust_conf.set_override("auth_strategy", "noauth")
    result = api.simulate_post(
        "/v2/queues/jobs/subscriptions",
        json={"subscriber": "trust+http://mistral.example/v2/executions"},
    )
    assert result.status_code == 400
    assert "auth_strategy = keystone" in result.json["description"]


def test_through_keystonemiddleware_the_users_token_is_all_it_takes(
    trust_conf, storage, keystone, mistral, alice
):
    """The production path: create_app wraps the app in the real auth_token
    middleware, which validates alice's token with Keystone."""
    from keystoneauth1 import loading
    from keystonemiddleware import auth_token

    group = "keystone_authtoken"
    for name, opts in auth_token.list_opts():
        trust_conf.register_opts(opts, group=name)
    trust_conf.register_opts(loading.get_auth_plugin_conf_options("password"), group)
    for name, value in dict(
        trustee_settings(keystone),
        auth_type="password",
        www_authenticate_uri=keystone.url,
        interface="public",
    ).items():
        trust_conf.set_override(name, value, group=group)
    celery = create_celery(trust_conf)
    app = create_app(trust_conf, storage, CeleryDispatcher(celery))
    # falcon's test client needs a plain function to sniff WSGI from ASGI
    client = testing.TestClient(lambda environ, start_response: app(environ, start_response))
    try:
        subscriber = f"trust+{mistral.url}/executions"
        created = client.simulate_post(
            "/v2/queues/mw/subscriptions",
            json={"subscriber": subscriber},
            headers={
                "X-Auth-Token": alice.auth_token,
                "X-Identity-Status": "Confirmed",
                "X-Roles": "admin",
            },
        )
        assert created.status_code == 201, created.text
        record = storage.get_subscription(
            Source(alice.project_id, "queues", "mw"), created.json["subscription_id"]
        )
        trust = trust_of(keystone, alice, record)
        # what alice really has, not the roles the request claimed
        assert sorted(r["name"] for r in trust["roles"]) == ["member", "reader"]
        anonymous = client.simulate_post(
            "/v2/queues/mw/subscriptions", json={"subscriber": subscriber}
        )
        assert anonymous.status_code == 401
    finally:
        celery.close()


# -- a real worker process ------------------------------------------------------------


def test_a_worker_starts_executions_and_logs_a_dead_trust_as_permanent(
    api, storage, keystone, mistral, alice, redis_server, tmp_path
):
    settings = "".join(f"{k} = {v}\n" for k, v in trustee_settings(keystone).items())
    config = write_config(
        str(tmp_path / "worker.conf"),
        redis_server.url,
        extra="concurrency = 1\n[trustee]\n" + settings,
    )
    path = "/v2/queues/work/subscriptions"
    subscription_id = api.simulate_post(
        path,
        json={
            "subscriber": f"trust+{mistral.url}/executions",
            "options": {"workflow_id": WORKFLOW_ID},
        },
    ).json["subscription_id"]
    tokens_before = len(keystone.trust_token_requests())

    def post(n):
        result = api.simulate_post(
            "/v2/queues/work/messages",
            headers={"Client-ID": "0b4b7d5e-1c5e-4f4e-9a1e-2f9e4f6a7b8c"},
            json={"messages": [{"body": {"n": n}, "ttl": 300}]},
        )
        assert result.status_code == 201, result.text

    log = tmp_path / "worker.log"
    with Role("worker", config, log_path=str(log)):
        for n in range(3):
            post(n)
        executions = mistral.wait_for(3)
        assert sorted(e.params["env"]["notification"]["n"] for e in executions) == [0, 1, 2]
        assert len(keystone.trust_token_requests()) - tokens_before == 1

        record = storage.get_subscription(
            Source(alice.project_id, "queues", "work"), subscription_id
        )
        trust_id, _ = split_subscriber(record["subscriber"])
        keystone.call("DELETE", f"/OS-TRUST/trusts/{trust_id}", alice.auth_token)
        post(3)
        deadline = time.monotonic() + 30
        attempts = []
        while time.monotonic() < deadline and not any(
            a.get("error") == "trust_invalid" for a in attempts
        ):
            time.sleep(0.2)
            attempts = api.simulate_get(f"{path}/{subscription_id}/attempts").json["attempts"]

    failed = next(a for a in attempts if a.get("error") == "trust_invalid")
    assert failed["permanent"] is True and failed["outcome"] == "dead_lettered"
    assert "expired or was deleted" in failed["detail"]
    assert len(mistral.executions) == 3
    text = log.read_text()
    assert trust_id not in text and alice.auth_token not in text
    assert "Traceback" not in text
