"""Unit tests of the Sentinel options: addresses, kombu's broker URL and
transport options (notifier.conf), and the storage client they configure
(built, never connected)."""

import kombu
import pytest

from notifier.conf import (
    broker_transport_options,
    broker_url,
    load_conf,
    sentinel_addresses,
    sentinel_broker_url,
)
from notifier.store.redis_client import redis_client


@pytest.fixture
def conf():
    config = load_conf([])
    yield config
    config.reset()


def sentinels(conf, hosts=("s1:26379", "s2:26380"), master="mymaster", **overrides):
    conf.set_override("sentinel_hosts", list(hosts))
    conf.set_override("sentinel_master", master)
    for name, value in overrides.items():
        conf.set_override(name, value)
    return conf


@pytest.mark.parametrize(
    "hosts, addresses",
    [
        (["s1:26380"], [("s1", 26380)]),
        (["s1"], [("s1", 26379)]),
        ([" 10.0.0.1:1 ", "s2:2"], [("10.0.0.1", 1), ("s2", 2)]),
        (["[::1]:5000"], [("::1", 5000)]),
    ],
)
def test_sentinel_hosts_are_host_port_pairs_with_the_sentinel_port_by_default(hosts, addresses):
    assert sentinel_addresses(hosts) == addresses


@pytest.mark.parametrize("item", ["s1:port", "s1:1/x", "user@s1:1", ":26379", "s1:99999"])
def test_a_sentinel_host_that_is_not_host_port_is_refused(item):
    with pytest.raises(ValueError, match="sentinel_hosts"):
        sentinel_addresses([item])


@pytest.mark.parametrize(
    "url, addresses, expected",
    [
        (
            "redis://127.0.0.1:6379/0",
            [("s1", 26379), ("s2", 26380)],
            "sentinel://s1:26379/0;sentinel://s2:26380/0",
        ),
        ("redis://:secret@redis:6379/3", [("s1", 26379)], "sentinel://:secret@s1:26379/3"),
        (
            "redis://user:p%40ss@redis/5",
            [("s1", 1), ("s2", 2)],
            "sentinel://user:p%40ss@s1:1/5;sentinel://user:p%40ss@s2:2/5",
        ),
        ("redis://redis", [("s1", 26379)], "sentinel://s1:26379/0"),
        ("redis://redis:6379/", [("::1", 26379)], "sentinel://[::1]:26379/0"),
        (
            "redis://redis/1?health_check_interval=5",
            [("s1", 26379)],
            "sentinel://s1:26379/1?health_check_interval=5",
        ),
    ],
)
def test_the_broker_url_names_every_sentinel_with_the_credentials_and_db_of_the_redis_url(
    url, addresses, expected
):
    assert sentinel_broker_url(url, addresses) == expected


@pytest.mark.parametrize("url", ["rediss://redis:6379/0", "unix:///tmp/redis.sock"])
def test_sentinel_needs_a_plain_redis_url(url):
    with pytest.raises(ValueError, match="redis://"):
        sentinel_broker_url(url, [("s1", 26379)])


def test_without_sentinel_the_broker_is_broker_url_or_else_redis_url(conf):
    conf.set_override("redis_url", "redis://storage:6379/0")
    assert broker_url(conf) == "redis://storage:6379/0"
    assert broker_transport_options(conf) == {}
    conf.set_override("broker_url", "redis://broker:6379/1")
    assert broker_url(conf) == "redis://broker:6379/1"


def test_with_sentinel_the_broker_keeps_the_database_of_broker_url(conf):
    sentinels(conf, redis_url="redis://:pw@storage:6379/0", broker_url="redis://:pw@broker:6379/1")
    assert broker_url(conf) == "sentinel://:pw@s1:26379/1;sentinel://:pw@s2:26380/1"


def test_the_transport_options_name_the_master_and_keep_sentinel_calls_short(conf):
    sentinels(conf, sentinel_socket_timeout_seconds=0.5)
    assert broker_transport_options(conf) == {
        "master_name": "mymaster",
        "sentinel_kwargs": {"socket_timeout": 0.5, "socket_connect_timeout": 0.5, "retry": None},
    }


def test_the_sentinel_password_goes_to_the_sentinels_only(conf):
    sentinels(conf, sentinel_password="sentinel-pw", redis_url="redis://:master-pw@storage:6379/0")
    options = broker_transport_options(conf)
    assert options["sentinel_kwargs"]["password"] == "sentinel-pw"
    assert "sentinel-pw" not in broker_url(conf)


def test_sentinel_hosts_without_a_master_name_is_an_error(conf):
    sentinels(conf, master=None)
    with pytest.raises(ValueError, match="sentinel_master"):
        broker_transport_options(conf)


def test_kombu_reads_the_url_as_its_sentinel_transport_with_every_sentinel(conf):
    sentinels(conf, redis_url="redis://:pw@storage:6379/4")
    connection = kombu.Connection(
        broker_url(conf), transport_options=broker_transport_options(conf)
    )
    assert connection.transport_cls == "sentinel"
    assert (connection.hostname, connection.port) == ("s1", 26379)
    assert (connection.password, connection.virtual_host) == ("pw", "4")
    assert connection.alt == ["sentinel://:pw@s1:26379/4", "sentinel://:pw@s2:26380/4"]


def test_the_storage_client_through_sentinel_takes_db_and_password_from_redis_url(conf):
    sentinels(conf, redis_url="redis://:master-pw@ignored:1/3", sentinel_password="s-pw")
    client = redis_client(conf, decode_responses=True, socket_timeout=10)

    pool = client.connection_pool
    assert pool.service_name == "mymaster"
    assert {
        key: pool.connection_kwargs[key]
        for key in ("db", "password", "decode_responses", "socket_timeout")
    } == {"db": 3, "password": "master-pw", "decode_responses": True, "socket_timeout": 10}
    assert "host" not in pool.connection_kwargs
    asked = pool.sentinel_manager.sentinels
    assert [
        (s.connection_pool.connection_kwargs["host"], s.connection_pool.connection_kwargs["port"])
        for s in asked
    ] == [("s1", 26379), ("s2", 26380)]
    assert asked[0].connection_pool.connection_kwargs["password"] == "s-pw"


def test_the_storage_client_through_sentinel_refuses_tls_urls(conf):
    sentinels(conf, redis_url="rediss://redis:6379/0")
    with pytest.raises(ValueError, match="redis://"):
        redis_client(conf)
