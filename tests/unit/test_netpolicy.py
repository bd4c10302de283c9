"""Which addresses webhooks may reach, and refusal at subscription time."""

import ipaddress

import pytest

from notifier import errors
from notifier.conf import load_conf
from notifier.core import netpolicy
from notifier.services.subscriptions import checked_fields
from tests.support.resolver import FakeResolver

RESOLVER = FakeResolver(
    {
        "localhost": ["127.0.0.1", "::1"],
        "public.example": ["93.184.215.14"],
        "split.example": ["93.184.215.14", "10.0.0.7"],
        "metadata.example": ["169.254.169.254"],
    }
)


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.255.255.254",
        "2130706433",
        "0x7f000001",
        "0177.0.0.1",
        "127.1",
        "169.254.169.254",
        "0.0.0.0",
        "10.0.0.1",
        "172.16.0.1",
        "192.168.1.1",
        "100.64.0.1",
        "198.18.0.1",
        "192.0.2.1",
        "198.51.100.1",
        "203.0.113.1",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "fe80::1",
        "fc00::1",
        "fd12:3456::1",
        "2002:7f00:1::1",
        "64:ff9b::a9fe:a9fe",
        "ff02::1",
        "2001:db8::1",
    ],
)
def test_non_public_addresses_are_refused_by_default(host):
    address = netpolicy.host_literal(host)
    assert address is not None
    assert netpolicy.refusal_reason(address) is not None


@pytest.mark.parametrize("host", ["8.8.8.8", "93.184.216.34", "2606:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed(host):
    assert netpolicy.is_allowed(netpolicy.host_literal(host))


@pytest.mark.parametrize("host", ["example.com", "localhost", "host-1.internal", ""])
def test_host_names_are_not_taken_for_literals(host):
    assert netpolicy.host_literal(host) is None


def test_an_allowed_network_lets_its_addresses_through_and_no_others():
    allowed = netpolicy.parse_networks(["127.0.0.1/32"])
    assert netpolicy.is_allowed("127.0.0.1", allowed)
    assert netpolicy.is_allowed("::ffff:127.0.0.1", allowed)
    assert not netpolicy.is_allowed("127.0.0.2", allowed)
    assert not netpolicy.is_allowed("10.0.0.1", allowed)


def test_a_bad_network_in_config_is_named():
    with pytest.raises(ValueError, match="nope"):
        netpolicy.parse_networks(["nope"])


@pytest.fixture
def conf():
    return load_conf([])


@pytest.mark.parametrize(
    "subscriber",
    [
        "http://127.0.0.1:8080/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://0.0.0.0/",
        "http://2130706433/",
        "http://[::ffff:127.0.0.1]/",
        "https://10.1.2.3/",
        "http://[fd00::1]:9000/",
        "http://localhost:9/",
        "http://split.example/",
        "https://metadata.example/latest/",
    ],
)
def test_a_subscription_to_a_forbidden_address_is_a_400(conf, subscriber):
    with pytest.raises(errors.ValidationError) as caught:
        checked_fields({"subscriber": subscriber}, conf, RESOLVER)
    assert caught.value.field == "subscriber"
    assert "allowed_networks" in caught.value.description


def test_a_host_name_is_judged_by_every_address_it_resolves_to(conf):
    resolver = FakeResolver(RESOLVER.table)
    fields = checked_fields({"subscriber": "http://public.example/"}, conf, resolver)
    assert fields["subscriber"] == "http://public.example/"
    with pytest.raises(errors.ValidationError, match="private address"):
        checked_fields({"subscriber": "http://split.example/"}, conf, resolver)
    assert resolver.asked == ["public.example", "split.example"]


def test_a_name_that_does_not_resolve_yet_is_accepted_and_left_to_delivery(conf):
    resolver = FakeResolver({})
    fields = checked_fields({"subscriber": "http://later.example/"}, conf, resolver)
    assert fields["subscriber"] == "http://later.example/"
    assert resolver.asked == ["later.example"]


def test_loopback_subscriptions_are_accepted_once_allowed_in_config(conf):
    conf.set_override("allowed_networks", ["127.0.0.0/8"], group="webhook")
    fields = checked_fields({"subscriber": "http://127.0.0.1:8080/"}, conf)
    assert fields["subscriber"] == "http://127.0.0.1:8080/"


def test_host_literal_returns_ipaddress_objects():
    assert netpolicy.host_literal("[::1]") == ipaddress.ip_address("::1")
