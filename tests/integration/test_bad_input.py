"""Bad input is a clear 4xx with the JSON error body, never a 5xx or a hang.

Oversized bodies (declared and chunked), deep nesting, huge headers, invalid
UTF-8, unknown fields, out-of-range TTLs and the wrong PATCH media type,
through falcon's test client on real Redis; the header limits of the real
server (gunicorn, which the test client bypasses) through one `notifier api`
process and raw sockets.

Known bugs this found are marked ``xfail(strict=True)``: they fail loudly
once fixed, so the mark goes with the fix.
"""

import io
import json
import uuid

import pytest
from falcon import testing

from notifier.api.app import create_app
from notifier.cli.redis_server import free_port
from tests.support.processes import Role, wait_http_ok, write_config
from tests.support.raw_http import send_raw
from workers.app import CeleryDispatcher, create_celery

CLIENT = {"Client-ID": str(uuid.uuid4())}
PATCH_TYPE = "application/openstack-messaging-v2.0-json-patch"
KIB = 1024


@pytest.fixture
def celery_app(conf):
    app = create_celery(conf)
    yield app
    app.close()


@pytest.fixture
def client(conf, storage, celery_app, project):
    conf.set_override("secret_key", "k" * 32, group="signed_url")
    app = create_app(conf, storage=storage, dispatcher=CeleryDispatcher(celery_app))
    return testing.TestClient(app, headers={"X-Project-ID": project})


def assert_error(result, status=400, field=None):
    """A clear 4xx: the status, JSON, and a title and description that say why."""
    assert result.status_code == status, (result.status_code, result.text)
    assert result.headers["content-type"].startswith("application/json"), result.headers
    body = result.json
    assert set(body) <= {"title", "description", "field"}, body
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["description"], str) and body["description"]
    if field is not None:
        assert body.get("field") == field, body
    return body


def raw_request(client, method, path, body=b"", headers=(), content_length="auto"):
    """Send exactly ``body`` with exactly these headers; ``content_length``
    None sends no Content-Length (a chunked request as a WSGI server passes it
    on), an int declares that length whatever the body is."""
    env = testing.create_environ(
        path=path, method=method, headers={"X-Project-ID": "p-bad-input", **dict(headers)}
    )
    env["wsgi.input"] = io.BytesIO(body)
    env.pop("CONTENT_LENGTH", None)
    if content_length == "auto":
        env["CONTENT_LENGTH"] = str(len(body))
    elif content_length is not None:
        env["CONTENT_LENGTH"] = str(content_length)
    else:
        env["HTTP_TRANSFER_ENCODING"] = "chunked"
        env["wsgi.input_terminated"] = True
    if body or content_length is not None:
        env.setdefault("CONTENT_TYPE", "application/json")
    start_response = testing.StartResponseMock()
    iterable = client.app(env, start_response)
    return testing.Result(iterable, start_response.status, start_response.headers)


def messages(*bodies, **fields):
    return {"messages": [{"body": b, "ttl": 300, **fields} for b in bodies]}


# --- oversized bodies -----------------------------------------------------------


def test_a_messages_post_over_the_size_limit_is_refused(client):
    body = messages("x" * (300 * KIB))
    result = client.simulate_post("/v2/queues/q/messages", json=body, headers=CLIENT)
    text = assert_error(result, 400, "body")["description"]
    assert "262144" in text


def test_a_declared_length_over_the_limit_is_refused_before_reading(client):
    # The body is never read: a client cannot make the API wait for 1 GiB.
    result = raw_request(
        client, "POST", "/v2/queues/q/messages", body=b"{}", headers=CLIENT, content_length=1 << 30
    )
    assert_error(result, 400, "body")


@pytest.mark.parametrize(
    "method, path",
    [
        ("POST", "/v2/queues/q/subscriptions"),
        ("PUT", "/v2/queues/q"),
        ("PUT", "/v2/topics/t"),
    ],
)
def test_other_bodies_over_64_kib_are_refused(client, method, path):
    body = json.dumps({"padding": "x" * (70 * KIB)})
    result = client.simulate_request(
        method, path, body=body, headers={"Content-Type": "application/json"}
    )
    assert_error(result, 400, "body")


def test_a_chunked_messages_post_without_length_is_a_clear_4xx(client):
    body = json.dumps(messages("x" * (300 * KIB))).encode()
    result = raw_request(
        client, "POST", "/v2/queues/q/messages", body=body, headers=CLIENT, content_length=None
    )
    assert_error(result, 400, "body")  # the size limit holds without a declared length


def test_a_chunked_put_is_not_silently_ignored(client):
    body = json.dumps({"_default_message_ttl": -5}).encode()
    result = raw_request(client, "PUT", "/v2/queues/chunked", body=body, content_length=None)
    assert_error(result, 400, "_default_message_ttl")  # the body was read and checked


# --- deep nesting ----------------------------------------------------------------


@pytest.mark.parametrize("depth", [33, 1000, 100_000])
def test_deeply_nested_json_is_refused(client, depth):
    nested = "[" * depth + "]" * depth
    body = f'{{"messages": [{{"ttl": 300, "body": {nested}}}]}}'
    result = client.simulate_post(
        "/v2/queues/q/messages", body=body, headers={**CLIENT, "Content-Type": "application/json"}
    )
    assert_error(result, 400, "body")


def test_nesting_up_to_the_limit_is_accepted(client):
    # messages -> list -> message -> body: 3 levels, then 29 more.
    body = '{"messages": [{"ttl": 300, "body": %s}]}' % ("[" * 29 + "]" * 29)
    result = client.simulate_post(
        "/v2/queues/q/messages", body=body, headers={**CLIENT, "Content-Type": "application/json"}
    )
    assert result.status_code == 201, result.text


def test_deep_nesting_in_subscription_options_is_refused(client):
    body = '{"subscriber": "mailto:a@example.com", "options": {"x": %s}}' % (
        "[" * 1000 + "]" * 1000
    )
    result = client.simulate_post(
        "/v2/queues/q/subscriptions", body=body, headers={"Content-Type": "application/json"}
    )
    assert_error(result, 400, "body")


# --- huge headers (the test client has no header limits) ------------------------


@pytest.mark.parametrize("header", ["X-Project-ID", "Client-ID", "X-Topic-Owner"])
def test_a_64_kib_header_value_is_refused(client, header):
    path = "/v2/topics/t/messages" if header == "X-Topic-Owner" else "/v2/queues/q/messages"
    headers = {**CLIENT, header: "a" * (64 * KIB)}
    result = client.simulate_post(path, json=messages({"a": 1}), headers=headers)
    assert_error(result, 400, header)


def test_a_missing_project_is_refused(client):
    result = testing.TestClient(client.app).simulate_get("/v2/queues")
    assert_error(result, 400, "X-Project-ID")


# --- invalid UTF-8 and other undecodable text ------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b'{"messages": [{"ttl": 300, "body": "\xff\xfe"}]}',  # not UTF-8
        b'{"messages": [{"ttl": 300, "body": "\xc3"}]}',  # truncated sequence
        b'{"messages": [{"ttl": 300, "body": "\xed\xa0\x80"}]}',  # encoded surrogate
        b'{"messages": [{"ttl": 300, "body": "\\ud800"}]}',  # lone surrogate escape
        b'\xef\xbb\xbf{"messages": [{"ttl": 300, "body": 1}]}',  # BOM
        b'{"messages": [{"ttl": 300, "body": NaN}]}',
        b'{"messages": [{"ttl": 300, "body": 1e999}]}',
        b'{"messages": [{"ttl": 300, "body": 1}]',  # truncated JSON
        b"",
    ],
)
def test_undecodable_bodies_are_refused(client, raw):
    result = raw_request(client, "POST", "/v2/queues/q/messages", body=raw, headers=CLIENT)
    assert_error(result, 400, "body")


def test_invalid_utf8_in_the_path_is_a_4xx(client):
    result = client.simulate_get("/v2/queues/%FF%FE", headers=CLIENT)
    assert_error(result, 400, "queue_name")


def test_invalid_utf8_in_a_message_id_is_a_4xx(client):
    result = client.simulate_get("/v2/queues/q/messages/%ED%A0%80", headers=CLIENT)
    assert_error(result, 404)  # no such message: ids are hex


def test_a_non_ascii_project_header_is_refused(client):
    env_headers = {"X-Project-ID": "caf\xe9"}  # latin-1 on the wire
    result = client.simulate_get("/v2/queues", headers=env_headers)
    assert_error(result, 400, "X-Project-ID")


# --- unknown fields ---------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path, body, field",
    [
        (
            "POST",
            "/v2/queues/q/messages",
            {"messages": [{"body": 1, "ttl": 300}], "bogus": 1},
            "bogus",
        ),
        (
            "POST",
            "/v2/queues/q/messages",
            {"messages": [{"body": 1, "ttl": 300, "bogus": 1}]},
            "messages[0]",
        ),
        (
            "POST",
            "/v2/queues/q/subscriptions",
            {"subscriber": "mailto:a@example.com", "bogus": 1},
            "bogus",
        ),
        (
            "POST",
            "/v2/queues/q/subscriptions",
            {"subscriber": "mailto:a@example.com", "options": {"_retry_policy": {"bogus": 1}}},
            "_retry_policy.bogus",
        ),
        ("PUT", "/v2/queues/q", {"_retry_policy": {"retries": 3}}, "_retry_policy.retries"),
        ("PUT", "/v2/topics/t", {"_allowed_senders": ["p"]}, "_allowed_senders"),
        ("POST", "/v2/queues/q/share", {"bogus": 1}, "bogus"),
    ],
)
def test_unknown_fields_are_refused(client, method, path, body, field):
    result = client.simulate_request(method, path, json=body, headers=CLIENT)
    assert_error(result, 400, field)


def test_unknown_fields_in_a_subscription_patch_and_replay_are_refused(client):
    created = client.simulate_post(
        "/v2/queues/q/subscriptions", json={"subscriber": "mailto:a@example.com"}
    )
    assert created.status_code == 201, created.text
    base = f"/v2/queues/q/subscriptions/{created.json['subscription_id']}"
    assert_error(client.simulate_patch(base, json={"ttl": 600, "bogus": 1}), 400, "bogus")
    assert_error(
        client.simulate_post(base + "/replay", json={"since": 0, "bogus": 1}), 400, "bogus"
    )


# --- TTLs --------------------------------------------------------------------------

BAD_TTLS = [
    -1,
    0,
    59,
    1209601,
    10**30,
    2**63,
    -(2**63),
    1.5,
    300.0,
    True,
    "300",
    None,
    [300],
    {"ttl": 300},
]


@pytest.mark.parametrize("ttl", BAD_TTLS, ids=repr)
def test_bad_message_ttls_are_refused(client, ttl):
    body = {"messages": [{"body": 1, "ttl": ttl}]}
    result = client.simulate_post("/v2/queues/q/messages", json=body, headers=CLIENT)
    assert_error(result, 400, "messages[0].ttl")


@pytest.mark.parametrize("ttl", [-1, 0, 59, 315360001, 10**30, 1.5, True, "3600"], ids=repr)
def test_bad_subscription_ttls_are_refused(client, ttl):
    body = {"subscriber": "mailto:a@example.com", "ttl": ttl}
    result = client.simulate_post("/v2/queues/q/subscriptions", json=body)
    assert_error(result, 400, "ttl")


@pytest.mark.parametrize("ttl", [-60, 0, 10**20], ids=repr)
def test_bad_default_message_ttls_are_refused(client, ttl):
    result = client.simulate_put("/v2/queues/q", json={"_default_message_ttl": ttl})
    assert_error(result, 400, "_default_message_ttl")


def test_a_ttl_with_thousands_of_digits_is_refused(client):
    # Past Python's int-from-text limit (4300 digits): still a clean 400.
    body = '{"messages": [{"body": 1, "ttl": %s}]}' % ("9" * 5000)
    result = client.simulate_post(
        "/v2/queues/q/messages", body=body, headers={**CLIENT, "Content-Type": "application/json"}
    )
    assert_error(result, 400)


# --- media types and methods -------------------------------------------------------


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", None])
def test_patch_with_the_wrong_content_type_is_415(client, content_type):
    assert client.simulate_put("/v2/queues/q").status_code == 201
    ops = [{"op": "add", "path": "/metadata/a", "value": 1}]
    headers = {"Content-Type": content_type} if content_type else {}
    result = client.simulate_patch("/v2/queues/q", body=json.dumps(ops), headers=headers)
    body = assert_error(result, 415)
    assert PATCH_TYPE in body["description"]


def test_an_unsupported_method_is_a_json_405(client):
    result = client.simulate_request("TRACE", "/v2/queues/q")
    assert_error(result, 405)


def test_an_unknown_route_is_a_json_404(client):
    assert_error(client.simulate_get("/v2/nothing-here"), 404)


# --- bugs the fuzz run found (see tests/integration/test_openapi.py) -------------


def test_share_with_an_unhashable_method_is_a_400(client):
    # Found by the fuzz run: was a 500 (TypeError in signing._validated_methods).
    result = client.simulate_post("/v2/queues/q/share", json={"methods": [{}]})
    assert_error(result, 400, "methods")


def test_share_with_an_out_of_range_expiry_is_a_400(client):
    result = client.simulate_post(
        "/v2/queues/q/share", json={"expires": "9999-12-31T23:59:59-01:00"}
    )
    assert_error(result, 400, "expires")


def test_a_signed_request_with_an_out_of_range_expiry_is_a_401(client):
    result = client.simulate_put(
        f"/v2/queues/q/subscriptions/{uuid.uuid4().hex}/confirm",
        json={"confirmed": True},
        headers={
            "URL-Signature": "0" * 64,
            "URL-Expires": "9999-12-31T23:59:59-01:00",
            "URL-Methods": "PUT",
            "URL-Paths": "/v2/queues/q/subscriptions",
        },
    )
    assert_error(result, 401)


def test_topic_patch_with_an_unhashable_path_is_a_400(client):
    # Found by the fuzz run: was a 500 (TypeError in topics.canonical_patch_paths).
    assert client.simulate_put("/v2/topics/t").status_code == 201
    result = client.simulate_patch(
        "/v2/topics/t",
        headers={"Content-Type": PATCH_TYPE},
        body=json.dumps([{"op": "add", "path": {}, "value": 1}]),
    )
    assert_error(result, 400, "body[0].path")


# --- the real server: one `notifier api` process, raw sockets ---------------------


@pytest.fixture(scope="module")
def api_process(redis_server, tmp_path_factory):
    directory = tmp_path_factory.mktemp("bad-input-api")
    port = free_port()
    # Pre-signed URLs on, so signed headers are parsed, not refused outright.
    config = write_config(
        str(directory / "notifier.conf"),
        redis_server.url,
        port=port,
        extra="[signed_url]\nsecret_key = " + "k" * 32 + "\n",
    )
    role = Role("api", config, log_path=str(directory / "api.log")).start()
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/v2/ping")
        yield port
    finally:
        role.stop()


def assert_refused_cleanly(status, expected):
    """The server answers ``expected``, or closes the connection before the
    client could read the answer (it may refuse while the client still sends)."""
    assert status in (None, expected), status


@pytest.mark.slow
def test_the_server_refuses_a_64_kib_header_line(api_process):
    status, _ = send_raw(
        api_process,
        (
            b"GET /v2/queues HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"X-Project-ID: " + b"a" * (64 * KIB) + b"\r\nConnection: close\r\n\r\n"
        ),
    )
    assert_refused_cleanly(status, 431)


@pytest.mark.slow
def test_the_server_refuses_a_64_kib_request_line(api_process):
    status, _ = send_raw(
        api_process,
        (
            b"GET /v2/queues?marker=" + b"a" * (64 * KIB) + b" HTTP/1.1\r\n"
            b"Host: 127.0.0.1\r\nX-Project-ID: p\r\nConnection: close\r\n\r\n"
        ),
    )
    assert_refused_cleanly(status, 414)


@pytest.mark.slow
def test_the_server_refuses_thousands_of_headers(api_process):
    headers = b"".join(b"X-Filler-%d: x\r\n" % i for i in range(2000))
    status, _ = send_raw(
        api_process,
        (
            b"GET /v2/queues HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Project-ID: p\r\n"
            + headers
            + b"Connection: close\r\n\r\n"
        ),
    )
    assert_refused_cleanly(status, 431)


@pytest.mark.slow
def test_the_server_answers_a_huge_declared_length_without_waiting(api_process):
    status, response = send_raw(
        api_process,
        (
            b"POST /v2/queues/q/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"X-Project-ID: p\r\nClient-ID: " + CLIENT["Client-ID"].encode() + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1073741824\r\n"
            b"Connection: close\r\n\r\n{}"
        ),
        timeout=10,
    )
    assert status == 400, response[:500]
    assert b"application/json" in response


@pytest.mark.slow
def test_the_server_refuses_a_chunked_oversized_body(api_process):
    payload = json.dumps(messages("x" * (300 * KIB))).encode()
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(payload[i : i + 8192]), payload[i : i + 8192])
        for i in range(0, len(payload), 8192)
    )
    status, response = send_raw(
        api_process,
        (
            b"POST /v2/queues/q/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"X-Project-ID: p\r\nClient-ID: " + CLIENT["Client-ID"].encode() + b"\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\n\r\n" + chunks + b"0\r\n\r\n"
        ),
    )
    assert status == 400, response[:500]
    assert b'"field": "body"' in response


@pytest.mark.slow
def test_the_server_answers_invalid_utf8_in_the_path_with_a_4xx(api_process):
    status, response = send_raw(
        api_process,
        (
            b"GET /v2/queues/\xff\xfe HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Project-ID: p\r\n"
            b"Connection: close\r\n\r\n"
        ),
    )
    assert status == 400, "a request line that is not UTF-8 deserves an answer"


@pytest.mark.slow
def test_the_server_answers_an_out_of_range_signed_expiry_without_a_5xx(api_process):
    path = f"/v2/queues/q/subscriptions/{uuid.uuid4().hex}/confirm".encode()
    status, response = send_raw(
        api_process,
        (
            b"PUT " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Project-ID: p\r\n"
            b"URL-Signature: " + b"0" * 64 + b"\r\nURL-Expires: 9999-12-31T23:59:59-01:00\r\n"
            b"URL-Methods: PUT\r\nURL-Paths: " + path + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: 17\r\n"
            b'Connection: close\r\n\r\n{"confirmed": 1}\n'
        ),
    )
    assert status == 401, response[:500]  # the signature is checked, the date parsed safely
    assert b"application/json" in response
