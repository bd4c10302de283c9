"""A malformed chunked body is the client's fault (issue 16, item 13): a 400
JSON naming ``body`` from the real server (gunicorn), never a 500 or a 503."""

import json
import uuid

import pytest

from tests.integration.test_bad_input import api_process  # noqa: F401 - a fixture
from tests.support.raw_http import send_raw

CLIENT_ID = str(uuid.uuid4()).encode()


def exchange(port, data):
    """Send raw bytes; return (status, head, body)."""
    status, received = send_raw(port, data)
    head, _, body = received.partition(b"\r\n\r\n")
    return status, head, body


@pytest.mark.parametrize(
    "chunks",
    [
        b"zz\r\n{}\r\n0\r\n\r\n",  # a chunk size that is not hex
        b"2\r\n{}XX0\r\n\r\n",  # a chunk without its CRLF
        b"-2\r\n{}\r\n0\r\n\r\n",  # a negative size
    ],
)
@pytest.mark.parametrize(
    "request_line, extra",
    [
        (b"POST /v2/queues/q/messages", b"Client-ID: " + CLIENT_ID + b"\r\n"),
        (b"PUT /v2/queues/q", b""),
        (b"POST /v2/queues/q/subscriptions", b""),
    ],
)
def test_a_malformed_chunked_body_is_a_400_naming_the_body(
    api_process,  # noqa: F811
    chunks,
    request_line,
    extra,
):
    status, head, body = exchange(
        api_process,
        request_line
        + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Project-ID: p\r\n"
        + extra
        + b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n" + chunks,
    )
    assert status == 400, body[:500]
    assert b"application/json" in head.lower()
    document = json.loads(body)
    assert document["field"] == "body"
    assert "chunked" in document["description"]
