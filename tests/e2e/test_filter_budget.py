"""The fan-out's filter budget through a real worker (issue 16, item 7): an
expensive policy is skipped with a recorded reason, the cheap ones of the same
fan-out are delivered."""

import pytest
import requests

from tests.e2e.conftest import Fleet
from tests.e2e.test_pipeline import headers, post, subscribe
from tests.support.waiting import wait_until

BUDGET = 1000


@pytest.fixture(scope="module")
def budget_fleet(redis_server, tmp_path_factory):
    running = Fleet(
        tmp_path_factory.mktemp("budget"),
        redis_server.url,
        extra_conf=f"[notification]\nfilter_budget_per_fanout = {BUDGET}\n",
    )
    running.start("api", "worker")
    yield running
    running.stop()


def attempts(fleet, project, path):
    return requests.get(f"{fleet.url}{path}", headers=headers(project), timeout=5).json()[
        "attempts"
    ]


def test_an_evaluation_over_the_budget_is_skipped_with_its_reason(budget_fleet, receiver, project):
    fleet = budget_fleet
    ips = [f"11.0.{i // 256}.{i % 256}" for i in range(900)]  # the networks match none
    costly = subscribe(
        fleet,
        project,
        "budget",
        receiver.url + "/costly",
        filter_policy={"ips": [{"cidr": f"10.{i}.0.0/16"} for i in range(149)] + ["11.0.0.1"]},
        filter_policy_scope="MessageBody",
    )
    cheap = subscribe(
        fleet,
        project,
        "budget",
        receiver.url + "/cheap",
        filter_policy={"kind": ["alarm"]},
        filter_policy_scope="MessageBody",
    )
    plain = subscribe(fleet, project, "budget", receiver.url + "/plain")
    [message_id] = post(
        fleet, project, "budget", [{"ttl": 120, "body": {"kind": "alarm", "ips": ips}}]
    )

    receiver.wait_for(1, "/cheap", timeout=30)
    receiver.wait_for(1, "/plain", timeout=30)
    logged = wait_until(
        lambda: attempts(fleet, project, f"/queues/budget/subscriptions/{costly}/attempts")
    )
    [skipped] = logged
    assert (skipped["outcome"], skipped["error"], skipped["message_id"]) == (
        "skipped",
        "filter_budget",
        message_id,
    )
    assert f"of the fan-out's {BUDGET}" in skipped["detail"]
    # Fails closed: the policy would have matched ("11.0.0.1"), nothing was sent.
    receiver.wait_for(1, "/costly", timeout=2)
    assert receiver.received("/costly") == []
    by_subscription = {
        a["subscription_id"]: a["outcome"]
        for a in attempts(fleet, project, f"/queues/budget/messages/{message_id}/attempts")
    }
    assert by_subscription == {costly: "skipped", cheap: "delivered", plain: "delivered"}
