"""Storage and the Celery broker find Redis through a real Sentinel
(``sentinel_hosts``), and storage follows the master through a failover."""

import json

import pytest
import redis

from notifier import conf as conf_module
from notifier import errors
from notifier.cli.redis_server import RedisServer, free_port
from notifier.store import keys
from notifier.store.storage import Source, Storage
from tests.support.sentinel import MASTER_NAME, RedisSentinel
from tests.support.waiting import wait_until
from workers.app import DELIVER_QUEUE, DELIVER_TASK, CeleryDispatcher, create_celery

pytestmark = pytest.mark.timeout(60)

DB = 2
SOURCE = Source("p", "queues", "q")
META_KEY = keys.source_metadata(Source("p", "queues", "q"))


def start_redis(password=None, replica_of=None):
    """Start a redis-server; with ``replica_of`` (a port), as its replica."""
    server = RedisServer().start()
    client = redis.Redis(port=server.port, decode_responses=True)
    client.config_set("repl-diskless-sync-delay", 0)  # replicas sync at once
    if password:
        client.config_set("masterauth", password)
        client.config_set("requirepass", password)
        client = redis.Redis(port=server.port, password=password, decode_responses=True)
    if replica_of:
        client.replicaof("127.0.0.1", replica_of)
        linked = wait_until(
            lambda: client.info("replication").get("master_link_status") == "up", 10
        )
        assert linked, "replica did not sync with its master"
    server.client = client
    server.password = password
    return server


def in_db(server):
    """A client of ``server``'s database DB, the one redis_url names."""
    return redis.Redis(port=server.port, db=DB, password=server.password, decode_responses=True)


def sentinel_conf(sentinel, master_password=None, sentinel_password=None):
    """Notifier's config through ``sentinel``. redis_url names a port nothing
    listens on: only its password and database number may be used."""
    conf = conf_module.load_conf([])
    auth = f":{master_password}@" if master_password else ""
    conf.set_override("redis_url", f"redis://{auth}127.0.0.1:{free_port()}/{DB}")
    # A sentinel that is down comes first: it is skipped.
    conf.set_override("sentinel_hosts", [f"127.0.0.1:{free_port()}", sentinel.address])
    conf.set_override("sentinel_master", MASTER_NAME)
    conf.set_override("sentinel_password", sentinel_password)
    conf.set_override("sentinel_socket_timeout_seconds", 1.0)
    return conf


@pytest.fixture(params=[False, True], ids=["no passwords", "passwords"])
def through_sentinel(request):
    """(conf, master) with a master and a sentinel, with or without passwords."""
    master_password = "master-secret" if request.param else None
    sentinel_password = "sentinel-secret" if request.param else None
    master = start_redis(master_password)
    try:
        with RedisSentinel(
            master.port, auth_pass=master_password, password=sentinel_password
        ) as sentinel:
            conf = sentinel_conf(sentinel, master_password, sentinel_password)
            yield conf, master
    finally:
        master.close()


def test_storage_writes_and_reads_the_master_the_sentinel_names(through_sentinel):
    conf, master = through_sentinel
    storage = Storage.from_conf(conf)

    assert storage.put_source(SOURCE, {"color": "blue"}) is True  # new

    assert storage.get_source_metadata(SOURCE) == {"color": "blue"}
    assert in_db(master).exists(META_KEY)  # redis_url's database number applies
    storage.redis.close()


def test_celery_publishes_to_and_consumes_from_the_master_through_sentinel(through_sentinel):
    conf, master = through_sentinel
    app = create_celery(conf)
    assert CeleryDispatcher(app).ping() is True

    app.send_task(DELIVER_TASK, args=[[]])

    assert in_db(master).llen(DELIVER_QUEUE) == 1
    with app.connection_for_read() as connection:
        queue = connection.SimpleQueue(DELIVER_QUEUE)
        message = queue.get(timeout=5)
        assert message.headers["task"] == DELIVER_TASK
        message.ack()
        queue.close()
    assert in_db(master).llen(DELIVER_QUEUE) == 0


def test_storage_and_celery_follow_the_master_when_it_dies_and_sentinel_fails_over():
    master = start_redis()
    replica = start_redis(replica_of=master.port)
    try:
        # Started after the replica synced, so its first look at the master
        # already lists the replica.
        with RedisSentinel(master.port) as sentinel:
            assert wait_until(lambda: _healthy_replicas(sentinel), 10, 0.05), (
                "the sentinel never saw the replica"
            )
            conf = sentinel_conf(sentinel)
            storage, app = Storage.from_conf(conf), create_celery(conf)
            storage.put_source(SOURCE, {"before": True})
            app.send_task(DELIVER_TASK, args=[["before"]])
            assert wait_until(lambda: in_db(replica).llen(DELIVER_QUEUE) == 1, 5, 0.05)

            master.stop(kill=True)

            assert wait_until(lambda: sentinel.master_port_now() == replica.port, 15, 0.05), (
                "the sentinel did not promote the replica"
            )
            # Calls fail until the sentinel names the new master, then reach it.
            assert wait_until(
                lambda: _try(lambda: storage.put_source(SOURCE, {"after": True}) is not None),
                10,
                0.05,
            )
            app.send_task(DELIVER_TASK, args=[["after"]])

            assert storage.get_source_metadata(SOURCE) == {"after": True}
            assert json.loads(in_db(replica).get(META_KEY)) == {"after": True}
            assert in_db(replica).llen(DELIVER_QUEUE) == 2
            storage.redis.close()
    finally:
        replica.close()
        master.close()


def _healthy_replicas(sentinel):
    return [
        r
        for r in sentinel.client().sentinel_slaves(MASTER_NAME)
        if r["flags"] == "slave" and r["master-link-status"] == "ok"
    ]


def _try(call):
    try:
        return call()
    except errors.UnavailableError:  # the store's word for a Redis ConnectionError
        return False
