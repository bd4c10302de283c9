"""Explain spends fan-out's filter budget as fan-out does, and agrees with it."""

import pytest

from notifier.core import filtering, matching


def sub(sid, policy=None):
    options = {"filter_policy": policy} if policy else {}
    return {"id": sid, "confirmed": True, "options": options}


SUBSCRIPTIONS = [
    sub("all"),
    sub("cheap", {"k": ["v1"]}),
    sub("costly", {"k": [{"prefix": "v"}, {"anything-but": ["x"]}, "v3"]}),
    sub("miss", {"other": ["x"]}),
]
MESSAGE = {"id": "m", "attributes": {"k": [f"v{i}" for i in range(20)]}, "body": {}}


@pytest.mark.parametrize("budget", [0, 1, 5, 30, 70, 10_000])
def test_explain_within_a_budget_agrees_with_fan_out(budget):
    prepared = filtering.prepare_message(MESSAGE["attributes"], MESSAGE["body"])
    pairs, skipped = matching.match_within([MESSAGE], SUBSCRIPTIONS, budget)

    verdicts = matching.explain_within(SUBSCRIPTIONS, None, prepared, budget)

    delivered = {s["id"] for _, s in pairs}
    not_run = {s["id"] for _, s, _ in skipped}
    for subscription, verdict in zip(SUBSCRIPTIONS, verdicts, strict=True):
        assert verdict.matches == (subscription["id"] in delivered)
        assert (verdict.failed == "filter_budget") == (subscription["id"] in not_run)
