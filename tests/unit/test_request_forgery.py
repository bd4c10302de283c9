"""One URL parser for validation, endpoint keys and connecting; post_headers
that cannot forge framing, hop-by-hop or signature headers (issue 16)."""

import random
from urllib.parse import urlsplit

import pytest

from notifier import errors
from notifier.conf import load_conf
from notifier.core import netpolicy
from notifier.delivery.admission import endpoint_of
from notifier.services.subscriptions import checked_fields
from notifier.sinks.webhook import WebhookSink, header_problem


@pytest.fixture(scope="module")
def conf():
    return load_conf([])


@pytest.fixture(scope="module")
def pools(conf):
    return WebhookSink(conf)


def connects_to(sink, url):
    """Return (scheme, host, port) the webhook sink's client connects to for
    ``url`` (``HttpClient._connect`` strips an IPv6 literal's brackets)."""
    target = sink._target(url)
    port = target.port or {"http": 80, "https": 443}[target.scheme]
    return target.scheme, target.host.strip("[]").lower(), port


@pytest.mark.parametrize(
    "url, target",
    [
        ("http://example.com/x", ("http", "example.com", 80)),
        ("HTTPS://Example.COM:8443/a?b=c#d", ("https", "example.com", 8443)),
        ("http://user:pw@example.com:81/", ("http", "example.com", 81)),
        ("http://[2606:2800:220:1::1]:8080/", ("http", "2606:2800:220:1::1", 8080)),
        ("http://93.184.216.34/", ("http", "93.184.216.34", 80)),
        ("http://example.com:/x", ("http", "example.com", 80)),
        ("http://example.com/a%20b", ("http", "example.com", 80)),
        ("http://a@b@example.com/", ("http", "example.com", 80)),
    ],
)
def test_an_accepted_url_names_the_host_and_port_the_sink_connects_to(pools, url, target):
    parsed = netpolicy.parse_http_url(url)
    assert tuple(parsed) == target
    assert tuple(parsed) == connects_to(pools, url)
    assert endpoint_of(url) == f"{target[0]}://{target[1]}:{target[2]}"


@pytest.mark.parametrize(
    "url",
    [
        "http://attacker:8080\\@victim-host/x",
        "http://victim-host\\@attacker/x",
        "http://example.com\\x/",
        "http://example.com /x",
        "http://example.com/x y",
        "http://example.com\t/x",
        "http://exa\nmple.com/",
        "http://example.com/\r\nHost: evil",
        "http://ex\x00ample.com/",
        "http://ex\x7fample.com/",
        "http://exämple.com/",
        "http://%65xample.com/",
        "http://[fe80::1%25eth0]/",
        "http://example.com:80:90/",
        "http://example.com:65536/",
        "http:///x",
        "ftp://example.com/",
        "",
    ],
)
def test_a_url_the_parsers_could_read_differently_is_refused(url):
    with pytest.raises(ValueError):
        netpolicy.parse_http_url(url)
    assert endpoint_of(url) is None


def test_the_backslash_form_is_a_400_naming_subscriber(conf):
    document = {"subscriber": "http://attacker:8080\\@93.184.216.34/x"}
    with pytest.raises(errors.ValidationError) as caught:
        checked_fields(document, conf)
    assert caught.value.field == "subscriber"


def test_random_urls_are_refused_or_read_alike_by_every_parser(pools):
    """Fuzz: whatever is accepted connects where validation and the endpoint
    key say; nothing accepted is read differently by urlsplit."""
    rng = random.Random(16)
    pieces = ["a", "b.c", "@", ":", "80", "\\", "/", "?", "#", "%", "[", "]", "::1", " ", "x.y"]
    accepted = 0
    for _ in range(5000):
        url = "http://" + "".join(rng.choice(pieces) for _ in range(rng.randint(1, 6)))
        try:
            target = netpolicy.parse_http_url(url)
        except ValueError:
            continue
        accepted += 1
        split = urlsplit(url)
        assert (split.hostname, split.port or 80) == (target.host, target.port), url
        assert tuple(target) == connects_to(pools, url), url
    assert accepted > 100  # the fuzz exercised the accepting path too


def test_trust_subscribers_key_their_target_endpoint():
    assert endpoint_of("trust+https://tid@example.com/x") == "https://example.com:443"
    assert netpolicy.parse_http_url("trust+http://t@example.com:81/", trust=True).port == 81
    with pytest.raises(ValueError):
        netpolicy.parse_http_url("trust+http://example.com/")  # trust not allowed here


# --- post_headers ------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "Host",
        "host",
        "Content-Length",
        "Transfer-Encoding",
        "Connection",
        "Keep-Alive",
        "TE",
        "Trailer",
        "Upgrade",
        "Expect",
        "Proxy-Authorization",
        "Proxy-Connection",
        "webhook-id",
        "Webhook-Timestamp",
        "WEBHOOK-SIGNATURE",
        "User-Agent",
    ],
)
def test_framing_hop_by_hop_and_service_headers_are_refused(conf, name):
    assert header_problem({name: "1"}) is not None
    document = {"subscriber": "http://93.184.216.34/", "options": {"post_headers": {name: "1"}}}
    with pytest.raises(errors.ValidationError) as caught:
        checked_fields(document, conf)
    assert caught.value.field == "options.post_headers"


@pytest.mark.parametrize(
    "headers",
    [
        {"X-A": "b\r\nHost: evil"},
        {"X-A": "b\nc"},
        {"X-A": "b\rc"},
        {"X-A": "b\x00"},
        {"X-A": "b\tc"},
        {"X-A": "b\x7f"},
        {"X-A": "é"},
        {"X-A\r\nHost": "b"},
        {"X A": "b"},
        {"X:A": "b"},
        {"": "b"},
        {"X-A": 1},
        {"X-A": "v" * 4097},
        {f"X-{n}": "v" for n in range(51)},
        ["X-A"],
    ],
)
def test_control_characters_and_bad_names_are_refused(headers):
    assert header_problem(headers) is not None


def test_ordinary_headers_and_content_type_are_accepted():
    ordinary = {"Authorization": "Bearer t", "X-Token": "a b", "Content-Type": "text/plain"}
    assert header_problem(ordinary) is None
    assert header_problem({"X-Auth-Token": "t"}) is None
    assert header_problem({"X-Auth-Token": "t"}, ("x-auth-token",)) is not None
