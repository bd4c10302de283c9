"""Tests for notifier.core.signing: Zaqar pre-signed URLs and Standard Webhooks."""

import base64
import datetime
import hashlib
import hmac
import json
import time

import pytest
from standardwebhooks import webhooks  # the library receivers use

from notifier.core import signing
from notifier.errors import AuthError, ValidationError

UTC = datetime.UTC
KEY = "k3y-that-must-never-leak"
NOW = datetime.datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
PATH = "/v2/queues/test_queue/messages"
PROJECT = "51be2c72393e457ebf0a22a668e10a64"

CONFIRM_PATH = "/v2/queues/test_queue/subscriptions/5760c9fb3990b42e8b7c20bd/confirm"
ZAQAR_VECTORS = [
    pytest.param(
        "test_key",
        [CONFIRM_PATH],
        ["PUT"],
        PROJECT,
        "2100-01-01T00:00:00",
        "b7027536241d066e4744b23834880960842e4535040fae5db404e6d526c04595",
        id="confirm-url",
    ),
    pytest.param(
        "s3cr3t",
        ["/v2/queues/fizbit/messages"],
        None,
        None,
        "2099-12-31T23:59:59",
        "697ab29e9eb51752d273349df59f6d722efca7e127cbfe06bde91d0be0a64e53",
        id="default-get",
    ),
]

WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
WEBHOOK_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
WEBHOOK_TS = 1614265330
WEBHOOK_BODY = '{"test": 2432232314}'
WEBHOOK_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def signed_request(**changes):
    """Return verify_signed_request kwargs for a valid GET, with changes."""
    share = signing.create_signed_url(
        KEY, [PATH], ["GET", "POST"], PROJECT, NOW + datetime.timedelta(hours=1), now=NOW
    )
    request = {
        "signature": share["signature"],
        "expires": share["expires"],
        "methods": ",".join(share["methods"]),
        "paths": ",".join(share["paths"]),
        "project": PROJECT,
        "request_method": "GET",
        "request_path": PATH,
        "now": NOW,
    }
    request.update(changes)
    return request


# ------------------------------------------------------------------ sign_url


@pytest.mark.parametrize("key,paths,methods,project,expires,expected", ZAQAR_VECTORS)
def test_sign_url_reproduces_zaqar_signatures(key, paths, methods, project, expires, expected):
    assert signing.sign_url(key, paths, methods, project, expires) == expected


@pytest.mark.parametrize(
    "expires",
    [
        datetime.datetime(2100, 1, 1, 0, 0, 0),
        datetime.datetime(2100, 1, 1, 0, 0, 0, tzinfo=UTC),
        datetime.datetime(
            2100, 1, 1, 2, 0, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=2))
        ),
        "2100-01-01T00:00:00Z",
        "2100-01-01T01:00:00+01:00",
        "2100-01-01T00:00:00.999",
    ],
)
def test_equivalent_expiry_forms_sign_like_zaqars_utc_text(expires):
    expected = ZAQAR_VECTORS[0].values[-1]
    assert signing.sign_url("test_key", [CONFIRM_PATH], ["PUT"], PROJECT, expires) == expected


def test_fields_are_joined_by_a_literal_backslash_n_not_a_newline():
    text = PATH + r"\nGET\nNone\n2100-01-01T00:00:00"
    assert "\n" not in text
    expected = hmac.new(KEY.encode(), text.encode(), hashlib.sha256)
    assert (
        signing.sign_url(KEY, [PATH], ["GET"], None, "2100-01-01T00:00:00") == expected.hexdigest()
    )


def test_paths_and_methods_are_signed_in_sorted_order():
    a = signing.sign_url(KEY, ["/v2/b", "/v2/a"], ["PUT", "GET"], None, "2100-01-01T00:00:00")
    b = signing.sign_url(KEY, ["/v2/a", "/v2/b"], ["GET", "PUT"], None, "2100-01-01T00:00:00")
    assert a == b


def test_a_missing_project_signs_as_the_text_none_like_zaqar():
    args = (KEY, [PATH], ["GET"])
    assert signing.sign_url(*args, None, "2100-01-01T00:00:00") == signing.sign_url(
        *args, "None", "2100-01-01T00:00:00"
    )


@pytest.mark.parametrize(
    "expires", [None, "tomorrow", "4102444800", "2100-01-01", "2100-13-01T00:00:00"]
)
def test_sign_url_refuses_an_expiry_it_cannot_read(expires):
    with pytest.raises(ValueError, match="expires must be a datetime or a string"):
        signing.sign_url(KEY, [PATH], ["GET"], None, expires)


@pytest.mark.parametrize("key", ["", b"", None])
def test_sign_url_refuses_an_empty_key(key):
    with pytest.raises(ValueError, match="the signing key is empty"):
        signing.sign_url(key, [PATH], ["GET"], None, "2100-01-01T00:00:00")


# --------------------------------------------------------- create_signed_url


def test_create_signed_url_returns_zaqars_share_response_shape():
    share = signing.create_signed_url(
        "test_key", [CONFIRM_PATH], ["PUT"], PROJECT, "2100-01-01T00:00:00Z", now=NOW
    )
    assert share == {
        "signature": ZAQAR_VECTORS[0].values[-1],
        "expires": "2100-01-01T00:00:00",
        "project": PROJECT,
        "paths": [CONFIRM_PATH],
        "methods": ["PUT"],
    }


def test_create_signed_url_defaults_to_get_for_one_day():
    share = signing.create_signed_url(KEY, [PATH], now=NOW)
    assert share["methods"] == ["GET"]
    assert share["project"] is None
    assert share["expires"] == "2030-01-02T12:00:00"


def test_create_signed_url_sorts_and_deduplicates_paths_and_methods():
    share = signing.create_signed_url(
        KEY, ["/v2/queues/b", "/v2/queues/a", "/v2/queues/b"], ["POST", "GET", "POST"], now=NOW
    )
    assert share["paths"] == ["/v2/queues/a", "/v2/queues/b"]
    assert share["methods"] == ["GET", "POST"]


@pytest.mark.parametrize(
    "field,changes",
    [
        ("paths", {"paths": []}),
        ("paths", {"paths": PATH}),
        ("paths", {"paths": ["/v1/queues/q"]}),
        ("paths", {"paths": ["v2/queues/q"]}),
        ("paths", {"paths": ["/v2/queues/q/"]}),
        ("paths", {"paths": ["/v2/queues//q"]}),
        ("paths", {"paths": ["/v2/queues/../q"]}),
        ("paths", {"paths": ["/v2/queues/%2e%2e/q"]}),
        ("paths", {"paths": ["/v2/queues/a,/v2/queues/b"]}),
        ("paths", {"paths": [42]}),
        ("methods", {"methods": ["GET", "TRACE"]}),
        ("methods", {"methods": ["get"]}),
        ("methods", {"methods": "GET"}),
        ("project", {"project": "None"}),
        ("project", {"project": ""}),
        ("project", {"project": "p\\nq"}),
        ("expires", {"expires_at": NOW}),
        ("expires", {"expires_at": NOW - datetime.timedelta(seconds=1)}),
        ("expires", {"expires_at": "2030-01-01T12:00:00Z"}),
        ("expires", {"expires_at": "4102444800"}),
        ("expires", {"expires_at": "soon"}),
    ],
)
def test_create_signed_url_names_the_field_it_rejects(field, changes):
    args = {
        "key": KEY,
        "paths": [PATH],
        "methods": ["GET"],
        "project": PROJECT,
        "expires_at": None,
        "now": NOW,
        **changes,
    }
    with pytest.raises(ValidationError) as caught:
        signing.create_signed_url(**args)
    assert caught.value.field == field


# ----------------------------------------------------- verify_signed_request


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({}, id="header-strings"),
        pytest.param({"methods": ["POST", "GET"], "paths": [PATH]}, id="lists"),
        pytest.param({"methods": " GET , POST "}, id="spaces-in-methods"),
        pytest.param({"request_method": "POST"}, id="second-method"),
        pytest.param({"expires": "2030-01-01T13:00:00Z"}, id="expires-with-z"),
        pytest.param({"expires": "2030-01-01T14:00:00+01:00"}, id="offset"),
        pytest.param(
            {"now": NOW + datetime.timedelta(minutes=59, seconds=59)}, id="one-second-left"
        ),
        pytest.param({"now": NOW.replace(tzinfo=None)}, id="naive-now-is-utc"),
    ],
)
def test_a_signed_request_within_its_grant_is_allowed(changes):
    assert signing.verify_signed_request(KEY, **signed_request(**changes)) is None


TAMPERED = [
    # the signature itself
    ("signature", {"signature": None}, "URL-Signature is missing"),
    ("signature", {"signature": ""}, "URL-Signature is missing"),
    ("signature", {"signature": "0" * 64}, "does not match"),
    ("signature", {"signature": "upper"}, "does not match"),
    ("signature", {"signature": "truncated"}, "does not match"),
    ("signature", {"signature": "non-ascii"}, "does not match"),
    # each signed field changed
    ("methods", {"methods": "GET,POST,DELETE"}, "does not match"),
    ("methods", {"methods": "GET"}, "does not match"),
    ("methods", {"methods": "get,post"}, "does not match"),
    ("methods", {"methods": None}, "URL-Methods is missing"),
    ("paths", {"paths": PATH + ",/v2/queues/other/messages"}, "does not match"),
    (
        "paths",
        {"paths": "/v2/queues/other/messages", "request_path": "/v2/queues/other/messages"},
        "does not match",
    ),
    ("paths", {"paths": ""}, "URL-Paths is missing"),
    ("project", {"project": "another-project"}, "does not match"),
    ("project", {"project": PROJECT.upper()}, "does not match"),
    ("project", {"project": None}, "does not match"),
    ("project", {"project": ""}, "does not match"),
    ("project", {"project": "None"}, "ambiguous"),
    ("expires", {"expires": "2030-01-01T13:00:01"}, "does not match"),
    ("expires", {"expires": "2100-01-01T00:00:00"}, "does not match"),
    ("expires", {"expires": None}, "URL-Expires is missing"),
    ("expires", {"expires": "tomorrow"}, "URL-Expires is missing"),
    ("expires", {"expires": "1893502800"}, "URL-Expires is missing"),
    ("expires", {"expires": "2030-01-01 13:00:00"}, "URL-Expires is missing"),
    ("expires", {"expires": "2030-02-30T13:00:00"}, "URL-Expires is missing"),
    # time
    ("now", {"now": NOW + datetime.timedelta(hours=1, seconds=1)}, "expired"),
    ("now", {"now": NOW + datetime.timedelta(hours=1)}, "expired"),
    # the request outside the grant
    ("method", {"request_method": "DELETE"}, "request method"),
    ("method", {"request_method": "get"}, "request method"),
    ("method", {"request_method": None}, "request method"),
    ("path", {"request_path": "/v2/queues/test_queue"}, "request path"),
    ("path", {"request_path": PATH + "/x"}, "request path"),
    ("path", {"request_path": PATH + "/"}, "request path"),
    ("path", {"request_path": "/evil" + PATH}, "request path"),
    ("path", {"request_path": PATH + "?limit=10"}, "request path"),
    ("path", {"request_path": "/v2/queues/Test_queue/messages"}, "request path"),
    ("path", {"request_path": "/V2/queues/test_queue/messages"}, "request path"),
    ("path", {"request_path": "/v2/queues/test_queue//messages"}, "request path"),
    ("path", {"request_path": "/v2/queues/x/../test_queue/messages"}, "dot segments"),
    ("path", {"request_path": "/v2/queues/test_queue/./messages"}, "dot segments"),
    ("path", {"request_path": PATH + "/.."}, "dot segments"),
    ("path", {"request_path": "/v2/queues/x/%2e%2e/test_queue/messages"}, "percent-encoding"),
    ("path", {"request_path": "/v2/queues/x/%2E./test_queue/messages"}, "percent-encoding"),
    ("path", {"request_path": "/v2/queues/test_queue%2Fmessages"}, "percent-encoding"),
    ("path", {"request_path": "/v2/queues/test_queue%2fmessages"}, "percent-encoding"),
    ("path", {"request_path": "/v2/queues/test_queue/%6Dessages"}, "percent-encoding"),
    ("path", {"request_path": "/v2/queues/test_queue\\messages"}, "backslashes"),
    ("path", {"request_path": PATH + "\x00"}, "control characters"),
    ("path", {"request_path": "v2/queues/test_queue/messages"}, "must start with"),
    ("path", {"request_path": None}, "must start with"),
]


def _apply(changes):
    request = signed_request()
    good = request["signature"]
    forged = {"upper": good.upper(), "truncated": good[:-1], "non-ascii": good[:-1] + "\u00e9"}
    if changes.get("signature") in forged:
        changes = {"signature": forged[changes["signature"]]}
    request.update(changes)
    return request


@pytest.mark.parametrize(
    "field,changes,reason", TAMPERED, ids=[f"{t[0]}-{i}" for i, t in enumerate(TAMPERED)]
)
def test_a_request_outside_its_signed_grant_is_refused(field, changes, reason):
    with pytest.raises(AuthError, match=reason) as caught:
        signing.verify_signed_request(KEY, **_apply(changes))
    assert KEY not in str(caught.value)
    assert KEY not in caught.value.description


def test_a_url_signed_without_a_project_is_allowed_without_one():
    share = signing.create_signed_url(KEY, [PATH], now=NOW)
    request = {
        "signature": share["signature"],
        "expires": share["expires"],
        "methods": "GET",
        "paths": PATH,
        "request_method": "GET",
        "request_path": PATH,
        "now": NOW,
    }
    signing.verify_signed_request(KEY, project=None, **request)
    with pytest.raises(AuthError, match="ambiguous"):
        signing.verify_signed_request(KEY, project="None", **request)
    with pytest.raises(AuthError, match="does not match"):
        signing.verify_signed_request(KEY, project=PROJECT, **request)


def test_a_signature_made_with_another_key_is_refused():
    with pytest.raises(AuthError, match="does not match"):
        signing.verify_signed_request("other-key", **signed_request())


def test_signatures_are_compared_with_compare_digest(monkeypatch):
    calls = []
    real = hmac.compare_digest

    def counting(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    signing.verify_signed_request(KEY, **signed_request())
    with pytest.raises(AuthError):
        signing.verify_signed_request(KEY, **signed_request(signature="0"))
    assert len(calls) == 2


def test_the_signature_is_checked_before_the_expiry_is_revealed():
    late = NOW + datetime.timedelta(days=2)
    with pytest.raises(AuthError, match="does not match"):
        signing.verify_signed_request(KEY, **signed_request(signature="0" * 64, now=late))


# ------------------------------------------------------ parse_signed_headers


def test_signed_headers_are_read_whatever_their_case():
    headers = {
        "URL-SIGNATURE": "abc",
        "url-expires": "2100-01-01T00:00:00",
        "Url-Methods": "GET,PUT",
        "URL-Paths": PATH,
        "X-PROJECT-ID": PROJECT,
        "Client-ID": "ignored",
    }
    assert signing.parse_signed_headers(headers) == {
        "signature": "abc",
        "expires": "2100-01-01T00:00:00",
        "methods": "GET,PUT",
        "paths": PATH,
        "project": PROJECT,
    }


def test_missing_signed_headers_come_back_as_none():
    assert signing.parse_signed_headers({"URL-Signature": "abc"}) == {
        "signature": "abc",
        "expires": None,
        "methods": None,
        "paths": None,
        "project": None,
    }


@pytest.mark.parametrize("headers", [{}, {"URL-Signature": ""}, {"X-Project-ID": PROJECT}])
def test_a_request_without_a_signature_is_not_a_signed_request(headers):
    assert signing.parse_signed_headers(headers) is None


def test_parsed_headers_round_trip_through_verification():
    share = signing.create_signed_url(
        KEY, [PATH, "/v2/queues/test_queue"], ["GET", "DELETE"], PROJECT, now=NOW
    )
    headers = {
        "URL-Signature": share["signature"],
        "URL-Expires": share["expires"],
        "URL-Methods": ",".join(share["methods"]),
        "URL-Paths": ",".join(share["paths"]),
        "X-Project-ID": share["project"],
    }
    fields = signing.parse_signed_headers(headers)
    for method, path in [("GET", PATH), ("DELETE", "/v2/queues/test_queue")]:
        signing.verify_signed_request(
            KEY, **fields, request_method=method, request_path=path, now=NOW
        )


# --------------------------------------------------------- Standard Webhooks


@pytest.mark.parametrize("body", [WEBHOOK_BODY, WEBHOOK_BODY.encode()])
@pytest.mark.parametrize(
    "timestamp",
    [
        WEBHOOK_TS,
        str(WEBHOOK_TS),
        datetime.datetime.fromtimestamp(WEBHOOK_TS, UTC),
        datetime.datetime.fromtimestamp(WEBHOOK_TS, UTC).replace(tzinfo=None),
    ],
)
def test_sign_webhook_reproduces_the_standard_webhooks_vector(body, timestamp):
    assert signing.sign_webhook(WEBHOOK_SECRET, WEBHOOK_ID, timestamp, body) == WEBHOOK_SIGNATURE


def test_the_rotation_header_carries_one_signature_per_secret():
    old = signing.generate_webhook_secret()
    header = signing.webhook_signature_header(
        [WEBHOOK_SECRET, old], WEBHOOK_ID, WEBHOOK_TS, WEBHOOK_BODY
    )
    assert header.split(" ") == [
        WEBHOOK_SIGNATURE,
        signing.sign_webhook(old, WEBHOOK_ID, WEBHOOK_TS, WEBHOOK_BODY),
    ]


def test_webhook_headers_name_the_message_time_and_signature():
    assert signing.webhook_headers([WEBHOOK_SECRET], WEBHOOK_ID, WEBHOOK_TS, WEBHOOK_BODY) == {
        "webhook-id": WEBHOOK_ID,
        "webhook-timestamp": str(WEBHOOK_TS),
        "webhook-signature": WEBHOOK_SIGNATURE,
    }


def test_webhook_headers_need_at_least_one_secret():
    with pytest.raises(ValidationError, match="at least one webhook secret") as caught:
        signing.webhook_headers([], WEBHOOK_ID, WEBHOOK_TS, WEBHOOK_BODY)
    assert caught.value.field == "secret"


@pytest.mark.parametrize("timestamp", ["-1", "1.5", "", "abc", True, "\u0661"])
def test_a_webhook_timestamp_must_be_whole_unix_seconds(timestamp):
    with pytest.raises(ValidationError) as caught:
        signing.sign_webhook(WEBHOOK_SECRET, WEBHOOK_ID, timestamp, "{}")
    assert caught.value.field == "timestamp"


def test_generated_webhook_secrets_are_valid_and_distinct():
    made = {signing.generate_webhook_secret() for _ in range(20)}
    assert len(made) == 20
    for secret in made:
        assert signing.validate_webhook_secret(secret) == secret
        raw = base64.b64decode(secret.removeprefix("whsec_"))
        assert 24 <= len(raw) <= 32


@pytest.mark.parametrize(
    "secret",
    [
        WEBHOOK_SECRET,
        "whsec_" + base64.b64encode(b"x" * 16).decode(),
        "whsec_" + base64.b64encode(b"x" * 64).decode(),
        "whsec_" + base64.b64encode(b"x" * 20).decode().rstrip("="),
    ],
)
def test_a_webhook_secret_of_sixteen_to_sixty_four_bytes_is_valid(secret):
    assert signing.validate_webhook_secret(secret, "secret") == secret


@pytest.mark.parametrize(
    "secret",
    [
        None,
        "",
        "whsec_",
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsec_not base64!",
        "whsec_" + base64.b64encode(b"x" * 15).decode(),
        "whsec_" + base64.b64encode(b"x" * 65).decode(),
    ],
)
def test_an_invalid_webhook_secret_is_refused_with_its_field(secret):
    with pytest.raises(ValidationError) as caught:
        signing.validate_webhook_secret(secret, "options.secret")
    assert caught.value.field == "options.secret"


# The reference implementation must accept what we send.


@pytest.mark.parametrize("body", [WEBHOOK_BODY, '{"msg": "caf\u00e9 \u2713"}'])
def test_the_standardwebhooks_library_verifies_our_signatures(body):
    old, new = signing.generate_webhook_secret(), WEBHOOK_SECRET
    headers = signing.webhook_headers([new, old], "msg_1", int(time.time()), body.encode("utf-8"))
    for secret in (new, old):
        assert webhooks.Webhook(secret).verify(body, headers) == json.loads(body)


def test_the_standardwebhooks_library_refuses_a_tampered_body():
    headers = signing.webhook_headers([WEBHOOK_SECRET], "msg_1", int(time.time()), WEBHOOK_BODY)
    with pytest.raises(webhooks.WebhookVerificationError):
        webhooks.Webhook(WEBHOOK_SECRET).verify('{"test": 1}', headers)
