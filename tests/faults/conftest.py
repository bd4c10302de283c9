"""Fixtures of the fault-injection suite: every test gets its own redis-server
(append-only, in its tmp dir) so it can stop and restart it and so no state
(breakers, retries, queued tasks) leaks between scenarios."""

import pytest
import redis

from notifier.cli.redis_server import RedisServer
from tests.support.faults import FaultFleet

# The roles' settings that make faults observable within seconds: a killed
# worker's unacknowledged tasks come back after 6 s (not 300 s); two pool
# processes, each holding one task (prefetch 1); small tasks so the number
# of deliveries in flight at a crash, and so the duplicate bound, is small;
# breakers that cool off in a second.
FAULT_CONF = """visibility_timeout_seconds = 6
reconcile_after_seconds = 8
concurrency = 2
[notification]
deliveries_per_task = 5
[webhook]
breaker_cooloff_seconds = 1
breaker_max_cooloff_seconds = 2
"""
CONCURRENCY = 2
PREFETCH = 1
DELIVERIES_PER_TASK = 5


@pytest.fixture
def private_redis(tmp_path):
    server = RedisServer(directory=str(tmp_path / "redis"))
    server.start()
    yield server
    server.close()


@pytest.fixture
def redis_db(private_redis):
    client = redis.Redis.from_url(
        private_redis.url, decode_responses=True, socket_timeout=5, socket_connect_timeout=2
    )
    yield client
    client.close()


@pytest.fixture
def make_fleet(tmp_path, private_redis):
    fleets = []

    def make(extra_conf=FAULT_CONF):
        fleet = FaultFleet(tmp_path, private_redis.url, extra_conf)
        fleets.append(fleet)
        return fleet

    yield make
    for fleet in fleets:
        fleet.stop()
