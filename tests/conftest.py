"""Fixtures that start real parts on 127.0.0.1 and stop them afterwards."""

import uuid

import pytest
import redis

from notifier import conf as conf_module
from notifier.cli.redis_server import RedisServer
from notifier.store.storage import Storage
from tests.support.receiver import Receiver

pytest_plugins = ["tests.support.ci_plugin"]


@pytest.fixture(scope="session")
def redis_server():
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_client(redis_server):
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    client.flushall()
    yield client
    client.flushall()
    client.close()


@pytest.fixture
def conf(redis_server):
    config = conf_module.load_conf([])
    config.set_override("redis_url", redis_server.url)
    config.set_override("webhook_connect_timeout_seconds", 2, group="notification")
    config.set_override("webhook_read_timeout_seconds", 2, group="notification")
    # The receivers of the tests listen on loopback, which webhooks may not
    # reach by default.
    config.set_override("allowed_networks", ["127.0.0.1/32"], group="webhook")
    yield config
    config.reset()


@pytest.fixture
def storage(conf, redis_client):
    return Storage.from_conf(conf)


@pytest.fixture
def receiver():
    with Receiver() as server:
        yield server


@pytest.fixture
def project():
    return "p" + uuid.uuid4().hex[:8]
