"""Confirmation payloads and links (notifier.core.confirmation) and drivers."""

import datetime
import hashlib
import hmac
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest

from notifier.api import confirm_drivers
from notifier.core import confirmation, signing
from notifier.errors import AuthError, ForbiddenError, ValidationError

KEY = "confirmation-key"
PROJECT = "51be2c72393e457ebf0a22a668e10a64"
SUB_ID = "5760c9fb3990b42e8b7c20bd"
NOW = datetime.datetime(2030, 1, 1, 12, 0, tzinfo=datetime.UTC).timestamp()
API = "https://notifier.example/"
PAGE = "https://notifier.example/v2/confirmation"
QUEUE = (PROJECT, "queues", "test_queue")
TOPIC = (PROJECT, "topics", "alerts")
ZAQAR_FIELDS = {
    "Message_Type",
    "Message",
    "URL-Signature",
    "URL-Methods",
    "URL-Paths",
    "X-Project-ID",
    "URL-Expires",
    "SubscribeBody",
    "UnsubscribeBody",
    "queue_name",
}


def payload(message_type=confirmation.SUBSCRIPTION, source=QUEUE, **changes):
    args = dict(
        key=KEY,
        source=source,
        subscription_id=SUB_ID,
        api_url=API,
        page=PAGE,
        now=NOW,
        ttl_seconds=3600,
    )
    args.update(changes)
    return confirmation.confirmation_payload(message_type, **args)


def verify(body, method="PUT", path=None, key=KEY, now=None, **changes):
    fields = {
        "signature": body["URL-Signature"],
        "expires": body["URL-Expires"],
        "methods": body["URL-Methods"],
        "paths": body["URL-Paths"],
        "project": body["X-Project-ID"],
    }
    fields.update(changes)
    signing.verify_signed_request(
        key,
        **fields,
        request_method=method,
        request_path=path or body["URL-Paths"],
        now=now or datetime.datetime(2030, 1, 1, 12, 30),
    )


def link_params(body):
    return {k: v[0] for k, v in parse_qs(urlsplit(body["confirmation_link"]).query).items()}


# -------------------------------------------------------------------- payloads


def test_a_subscription_confirmation_has_zaqars_fields_and_a_ready_url():
    body = payload()
    assert ZAQAR_FIELDS <= set(body)
    path = f"/v2/queues/test_queue/subscriptions/{SUB_ID}/confirm"
    assert body["Message_Type"] == "SubscriptionConfirmation"
    assert body["Message"] == "You have chosen to subscribe to the queue: test_queue"
    assert (body["URL-Methods"], body["URL-Paths"]) == ("PUT", path)
    assert body["X-Project-ID"] == PROJECT
    assert body["URL-Expires"] == "2030-01-01T13:00:00"
    assert body["SubscribeURL"] == body["WSGISubscribeURL"] == "https://notifier.example" + path
    assert body["SubscribeBody"] == {"confirmed": True}
    assert body["UnsubscribeBody"] == {"confirmed": False}
    assert body["queue_name"] == "test_queue" and "topic_name" not in body
    assert body["subscription_id"] == SUB_ID
    verify(body)


def test_the_signature_is_zaqars_so_zaqar_vectors_reproduce():
    expires = datetime.datetime(2100, 1, 1, tzinfo=datetime.UTC).timestamp()
    fields = confirmation.signed_fields("test_key", QUEUE, SUB_ID, NOW, int(expires - NOW))
    assert fields["URL-Signature"] == (
        "b7027536241d066e4744b23834880960842e4535040fae5db404e6d526c04595"
    )
    assert fields["URL-Expires"] == "2100-01-01T00:00:00"


@pytest.mark.parametrize(
    "change",
    [
        {"method": "GET"},
        {"method": "POST"},
        {"path": "/v2/queues/test_queue/subscriptions/other/confirm"},
        {"path": f"/v2/queues/test_queue/subscriptions/{SUB_ID}"},
        {"key": "another-key"},
        {"project": "other-project"},
        {"expires": "2031-01-01T13:00:00"},
        {"signature": "0" * 64},
        {"now": datetime.datetime(2030, 1, 1, 13, 0, 1)},
    ],
)
def test_the_url_authorises_nothing_else(change):
    with pytest.raises(AuthError):
        verify(payload(), **change)


def test_an_unsubscribe_confirmation_says_how_to_resubscribe():
    body = payload(confirmation.UNSUBSCRIBE)
    assert body["Message_Type"] == "UnsubscribeConfirmation"
    assert body["Message"] == (
        "You have unsubscribed successfully to the queue: "
        "test_queue, you can resubscribe it by using "
        "confirmed=True."
    )
    verify(body)  # the same URL confirms again


def test_a_topic_confirmation_names_the_topic_and_is_signed_for_its_owner():
    body = payload(source=TOPIC)
    assert body["Message"] == "You have chosen to subscribe to the topic: alerts"
    assert body["topic_name"] == body["queue_name"] == "alerts"
    assert body["URL-Paths"] == f"/v2/topics/alerts/subscriptions/{SUB_ID}/confirm"
    assert body["X-Project-ID"] == PROJECT
    assert link_params(body)["Topic"] == "alerts"
    verify(body)


def test_the_confirmation_link_carries_zaqars_page_parameters():
    body = payload()
    link = body["confirmation_link"]
    assert link.startswith(PAGE + "?")
    assert link_params(body) == {
        "Signature": body["URL-Signature"],
        "Methods": "PUT",
        "Paths": body["URL-Paths"],
        "Project": PROJECT,
        "Expires": body["URL-Expires"],
        "Url": body["SubscribeURL"],
        "Queue": "test_queue",
    }


def test_a_page_url_with_a_query_gets_more_parameters_with_ampersand():
    body = payload(page="https://portal.example/confirm?lang=en")
    assert body["confirmation_link"].startswith("https://portal.example/confirm?lang=en&Signature=")


def test_only_the_two_confirmation_types_are_built():
    with pytest.raises(ValueError, match="message_type must be"):
        payload("Notification")


def test_headers_of_a_payload_are_the_five_signed_headers():
    body = payload()
    assert confirmation.headers_of(body) == {
        name: body[name]
        for name in ("URL-Signature", "URL-Expires", "URL-Methods", "URL-Paths", "X-Project-ID")
    }


# --------------------------------------------------------------- configuration


def fake_conf(
    require=False,
    key=None,
    public_url=None,
    external=None,
    host="127.0.0.1",
    port=8888,
    driver="noop",
    mac_key=None,
):
    return SimpleNamespace(
        notification=SimpleNamespace(
            require_confirmation=require,
            external_confirmation_url=external,
            confirmation_driver=driver,
        ),
        signed_url=SimpleNamespace(secret_key=key),
        api=SimpleNamespace(public_url=public_url, bind_host=host, bind_port=port),
        confirmation_mac=SimpleNamespace(secret_key=mac_key),
    )


def test_requiring_confirmation_without_a_secret_key_is_a_configuration_error():
    with pytest.raises(confirmation.ConfirmationConfigError, match="secret_key"):
        confirmation.check_conf(fake_conf(require=True))
    confirmation.check_conf(fake_conf(require=True, key="k"))
    confirmation.check_conf(fake_conf(require=False))


def test_links_use_public_url_or_the_bind_address():
    assert confirmation.base_url(fake_conf(public_url="https://n.example/")) == "https://n.example"
    assert confirmation.base_url(fake_conf(host="::1", port=9000)) == "http://[::1]:9000"
    assert confirmation.page_url(fake_conf()) == "http://127.0.0.1:8888/v2/confirmation"
    assert (
        confirmation.page_url(fake_conf(external="https://p.example/c.html"))
        == "https://p.example/c.html"
    )


def test_webhook_and_email_subscribers_confirm_trust_subscribers_do_not():
    for scheme in ("http", "https", "mailto"):
        assert confirmation.requires_confirmation(scheme)
    assert not confirmation.requires_confirmation("trust+http")

    class OptsOut:
        requires_confirmation = False

    assert not confirmation.requires_confirmation("http", OptsOut)


# --------------------------------------------------------------------- drivers


def subscription():
    return {"id": SUB_ID, "source": list(QUEUE), "subscriber": "http://x.example/"}


def test_the_noop_driver_accepts_everything():
    driver = confirm_drivers.load_driver(fake_conf())
    assert isinstance(driver, confirm_drivers.NoopDriver)
    assert driver.confirm(subscription(), True, None) is None
    assert driver.confirm(subscription(), True, {"anything": 1}) is None


def test_the_mac_code_is_hmac_sha256_of_the_subscription_id():
    expected = hmac.new(b"mac-key", SUB_ID.encode(), hashlib.sha256).hexdigest()
    assert confirm_drivers.message_authentication_code("mac-key", SUB_ID) == expected


def test_the_mac_driver_needs_the_right_code_to_confirm():
    driver = confirm_drivers.load_driver(fake_conf(driver="mac", mac_key="mac-key"))
    code = confirm_drivers.message_authentication_code("mac-key", SUB_ID)
    driver.confirm(subscription(), True, {"message_authentication_code": code})
    driver.confirm(subscription(), True, {"message_authentication_code": f" {code.upper()} "})
    with pytest.raises(ForbiddenError):
        driver.confirm(subscription(), True, {"message_authentication_code": "0" * 64})
    other = confirm_drivers.message_authentication_code("mac-key", "another-id")
    with pytest.raises(ForbiddenError):
        driver.confirm(subscription(), True, {"message_authentication_code": other})
    for extra_spec in (
        None,
        {},
        {"message_authentication_code": 5},
        {"message_authentication_code": ""},
    ):
        with pytest.raises(ValidationError) as caught:
            driver.confirm(subscription(), True, extra_spec)
        assert caught.value.field == "extra_spec.message_authentication_code"


def test_the_mac_driver_lets_anyone_with_the_url_unsubscribe():
    driver = confirm_drivers.load_driver(fake_conf(driver="mac", mac_key="mac-key"))
    assert driver.confirm(subscription(), False, None) is None


@pytest.mark.parametrize(
    "conf,match",
    [
        (fake_conf(driver="mac"), "secret_key"),
        (fake_conf(driver="nonesuch"), "nonesuch"),
    ],
)
def test_a_driver_that_cannot_start_is_a_configuration_error(conf, match):
    with pytest.raises(confirmation.ConfirmationConfigError, match=match):
        confirm_drivers.load_driver(conf)


def test_the_shipped_drivers_are_entry_points():
    from importlib import metadata

    found = {e.name: e.load() for e in metadata.entry_points(group=confirm_drivers.GROUP)}
    assert found["noop"] is confirm_drivers.NoopDriver
    assert found["mac"] is confirm_drivers.MacDriver


# -- consent: nonces, rate subjects, the page's origin ---------------------------------


def test_a_nonce_is_part_of_the_signed_confirm_path():
    body = payload(nonce="ab" * 16)
    path = f"/v2/queues/test_queue/subscriptions/{SUB_ID}/confirm/{'ab' * 16}"
    assert body["URL-Paths"] == path
    assert body["SubscribeURL"] == API.rstrip("/") + path
    assert parse_qs(urlsplit(body["confirmation_link"]).query)["Paths"] == [path]
    signing.verify_signed_request(
        KEY,
        signature=body["URL-Signature"],
        expires=body["URL-Expires"],
        methods=body["URL-Methods"],
        paths=body["URL-Paths"],
        project=PROJECT,
        request_method="PUT",
        request_path=path,
        now=datetime.datetime(2030, 1, 1, 12, 1),
    )
    with pytest.raises(AuthError):  # the nonce cannot be swapped for another
        signing.verify_signed_request(
            KEY,
            signature=body["URL-Signature"],
            expires=body["URL-Expires"],
            methods=body["URL-Methods"],
            paths=path.replace("ab" * 16, "cd" * 16),
            project=PROJECT,
            request_method="PUT",
            request_path=path.replace("ab" * 16, "cd" * 16),
            now=datetime.datetime(2030, 1, 1, 12, 1),
        )


@pytest.mark.parametrize(
    "stored,given,current",
    [
        ({"confirmation_nonce": "n1"}, "n1", True),
        ({"confirmation_nonce": "n2"}, "n1", False),
        ({"confirmation_nonce": "n1"}, None, False),
        ({}, None, True),  # stored before links carried a nonce
        ({}, "n1", False),
    ],
)
def test_only_the_current_nonce_confirms(stored, given, current):
    assert confirmation.link_is_current(stored, given) is current


@pytest.mark.parametrize(
    "subscriber,subject",
    [
        ("HTTP://Hooks.Example:8080/a/B?x=1#frag", "p1\nhttp://hooks.example:8080"),
        ("https://hooks.example/a", "p1\nhttps://hooks.example"),
        ("https://hooks.example?x=1", "p1\nhttps://hooks.example"),
        ("https://user:pw@Hooks.Example/b", "p1\nhttps://hooks.example"),
        ("mailto:Ops@Example.com", "p1\nmailto:ops@example.com"),
        ("mailto:Ops@Example.com?subject=Hi", "p1\nmailto:ops@example.com"),
    ],
)
def test_the_rate_limit_counts_by_project_and_endpoint(subscriber, subject):
    assert confirmation.rate_subject("p1", subscriber) == subject


def test_projects_have_separate_confirmation_budgets():
    assert confirmation.rate_subject("p1", "https://h.example/") != confirmation.rate_subject(
        "p2", "https://h.example/"
    )


@pytest.mark.parametrize(
    "public_url,origin",
    [
        ("https://API.example.com/notifier/", "https://api.example.com"),
        ("http://10.0.0.5:8888", "http://10.0.0.5:8888"),
        (None, "http://127.0.0.1:8888"),
    ],
)
def test_the_api_origin_is_the_public_urls(public_url, origin):
    conf = SimpleNamespace(
        api=SimpleNamespace(public_url=public_url, bind_host="127.0.0.1", bind_port=8888)
    )
    assert confirmation.api_origin(conf) == origin


def test_a_portal_url_is_carried_as_portal_url_only_when_given():
    assert confirmation.PORTAL_URL_FIELD not in payload()

    body = payload(portal_url="https://notifier.example/portal/queues/q/s?x=1")

    assert body[confirmation.PORTAL_URL_FIELD] == "https://notifier.example/portal/queues/q/s?x=1"
    assert confirmation.PORTAL_URL_FIELD == "PortalURL"  # named like SubscribeURL
