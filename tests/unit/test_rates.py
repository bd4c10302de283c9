"""The last hour's delivery and failure rates and their chart, shared by the
console and the portal (``notifier.core.rates``)."""

from notifier.core.rates import BUCKETS, add_rates, rate_chart, rates

NOW = 10_000.0


def attempt(age, outcome):
    return {"at": NOW - age, "outcome": outcome}


def test_rates_count_the_last_hour_in_five_minute_buckets():
    result = rates(
        [
            attempt(10, "delivered"),
            attempt(20, "failed"),
            attempt(400, "dead_lettered"),
            attempt(3599, "delivered"),
            attempt(3600, "delivered"),  # an hour ago: out
            attempt(-5, "delivered"),  # the future (clock skew): out
            attempt(30, "disabled"),  # an event, not an attempt
        ],
        NOW,
    )

    assert (result["delivered"], result["failed"], result["failure_rate"]) == (2, 2, 50.0)
    assert len(result["buckets"]) == BUCKETS
    assert result["buckets"][-1] == {"delivered": 1, "failed": 1}
    assert result["buckets"][-2] == {"delivered": 0, "failed": 1}
    assert result["buckets"][0] == {"delivered": 1, "failed": 0}


def test_a_500_then_a_200_is_one_failure_and_one_delivery_at_50_percent():
    result = rates([attempt(2, "delivered"), attempt(3, "failed")], NOW)

    assert (result["delivered"], result["failed"], result["failure_rate"]) == (1, 1, 50.0)


def test_rates_add_up():
    one = rates([attempt(10, "delivered")], NOW)
    two = rates([attempt(10, "failed"), attempt(10, "failed")], NOW)

    total = add_rates(one, two)

    assert (total["delivered"], total["failed"]) == (1, 2)
    assert total["failure_rate"] == 66.7
    assert total["buckets"][-1] == {"delivered": 1, "failed": 2}
    assert rates([], NOW)["failure_rate"] == 0.0


def test_the_chart_stacks_failures_on_deliveries_scaled_to_the_busiest_bucket():
    buckets = [{"delivered": 0, "failed": 0}] * 10 + [
        {"delivered": 1, "failed": 1},
        {"delivered": 2, "failed": 0},
    ]

    chart = rate_chart(buckets, width=120, height=50)

    assert (chart["width"], chart["height"], len(chart["bars"])) == (120, 50, 12)
    mixed, full = chart["bars"][-2], chart["bars"][-1]
    assert full["delivered_height"] == 40.0 and full["failed_height"] == 0.0
    assert mixed["delivered_height"] == mixed["failed_height"] == 20.0
    assert mixed["failed_y"] + mixed["failed_height"] == mixed["delivered_y"]
    assert mixed["title"] == "1 delivered, 1 failed"
    assert chart["bars"][0]["delivered_height"] == 0.0


def test_an_empty_hour_draws_flat_bars():
    chart = rate_chart(rates([], NOW)["buckets"])

    assert all(bar["delivered_height"] == bar["failed_height"] == 0 for bar in chart["bars"])
