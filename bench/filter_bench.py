"""Benchmark filter-policy compilation and evaluation on one core.

Builds 10,000 subscriptions with mixed policies (exact, prefix, numeric
ranges, anything-but, exists, cidr, $or, body scope), compiles them, then
evaluates one message against all of them a few times and prints
evaluations per second. Run: ``.venv/bin/python bench/filter_bench.py``.
"""

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from notifier.core import filtering  # noqa: E402

TARGET_PER_SECOND = 200_000
EVENTS = [
    f"{noun}.{verb}"
    for noun in ("order", "invoice", "user", "cart", "ship")
    for verb in ("created", "updated", "deleted", "failed", "paid")
]
REGIONS = ["eu-west-1", "eu-central-1", "us-east-1", "us-west-2", "ap-south-1"]
COUNTRIES = ["NL", "BE", "DE", "FR", "US", "IN"]


def _policy_makers(rng):
    """Return (weight, scope, make_policy) for each kind of subscription."""
    return [
        (4, "MessageAttributes", lambda: {"event": rng.sample(EVENTS, 3)}),
        (
            2,
            "MessageAttributes",
            lambda: {
                "event": [{"prefix": rng.choice(EVENTS)[:4]}],
                "region": rng.sample(REGIONS, 2),
            },
        ),
        (
            2,
            "MessageAttributes",
            lambda: {"price": [{"numeric": [">", rng.randint(0, 50), "<=", rng.randint(51, 500)]}]},
        ),
        (
            1,
            "MessageAttributes",
            lambda: {
                "region": [{"anything-but": rng.sample(REGIONS, 2)}],
                "event": [{"suffix": ".paid"}, "order.created"],
            },
        ),
        (
            1,
            "MessageAttributes",
            lambda: {"customer": [{"exists": True}], "vip": [{"exists": False}]},
        ),
        (
            1,
            "MessageAttributes",
            lambda: {
                "source_ip": [{"cidr": f"10.{rng.randint(0, 7)}.0.0/16"}, {"cidr": "2001:db8::/32"}]
            },
        ),
        (
            1,
            "MessageAttributes",
            lambda: {
                "$or": [
                    {"event": rng.sample(EVENTS, 2)},
                    {
                        "price": [{"numeric": [">", rng.randint(10, 100)]}],
                        "tags": [{"equals-ignore-case": "URGENT"}],
                    },
                ]
            },
        ),
        (
            2,
            "MessageBody",
            lambda: {
                "order": {
                    "total": [{"numeric": [">=", rng.randint(0, 80)]}],
                    "country": rng.sample(COUNTRIES, 2),
                    "items": {"sku": [{"prefix": rng.choice("abc")}]},
                }
            },
        ),
    ]


def build_subscriptions(count, seed):
    """Return ``count`` (policy, scope) pairs drawn with a fixed seed."""
    rng = random.Random(seed)
    makers = _policy_makers(rng)
    weights = [weight for weight, _, _ in makers]
    chosen = rng.choices(makers, weights=weights, k=count)
    return [(make(), scope) for _, scope, make in chosen]


def message():
    """Return (attributes, body) of the message every subscription is checked against."""

    def string(value):
        return {"DataType": "String", "StringValue": value}

    attributes = {
        "event": string("order.created"),
        "region": string("eu-west-1"),
        "price": {"DataType": "Number", "StringValue": "42.5"},
        "customer": string("c-1001"),
        "source_ip": string("10.3.4.5"),
        "tags": {"DataType": "String.Array", "StringValue": json.dumps(["new", "urgent"])},
    }
    body = {
        "order": {
            "total": 42.5,
            "country": "NL",
            "items": [{"sku": "a-1", "qty": 2}, {"sku": "b-7", "qty": 1}],
        }
    }
    return attributes, json.dumps(body)


def time_compile(subscriptions):
    start = time.perf_counter()
    matchers = [filtering.compile_policy(policy, scope) for policy, scope in subscriptions]
    return matchers, time.perf_counter() - start


def time_evaluation(matchers, attributes, body, rounds):
    """Return (best evaluations/s, matches), preparing the message once per round."""
    best, matched = 0.0, 0
    for _ in range(rounds):
        start = time.perf_counter()
        prepared = filtering.prepare_message(attributes, body)
        matched = sum(1 for m in matchers if m.matches_prepared(prepared))
        best = max(best, len(matchers) / (time.perf_counter() - start))
    return best, matched


def time_unprepared(matchers, attributes, body):
    """Evaluations/s when every call re-reads the raw message (the slow path)."""
    start = time.perf_counter()
    for matcher in matchers:
        matcher.matches(attributes, body)
    return len(matchers) / (time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscriptions", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    subscriptions = build_subscriptions(args.subscriptions, args.seed)
    matchers, compile_seconds = time_compile(subscriptions)
    attributes, body = message()
    rate, matched = time_evaluation(matchers, attributes, body, args.rounds)
    slow_rate = time_unprepared(matchers, attributes, body)

    print(f"subscriptions:       {len(matchers):,}")
    print(
        f"compile:             {compile_seconds:.3f} s "
        f"({compile_seconds / len(matchers) * 1e6:.1f} us/policy)"
    )
    print(f"matched:             {matched:,} of {len(matchers):,}")
    print(f"evaluations/s:       {rate:,.0f} (prepared message, best of {args.rounds})")
    print(f"evaluations/s raw:   {slow_rate:,.0f} (message re-flattened on every call)")
    verdict = "meets" if rate > TARGET_PER_SECOND else "MISSES"
    print(f"target:              {verdict} {TARGET_PER_SECOND:,}/s")
    return 0 if rate > TARGET_PER_SECOND else 1


if __name__ == "__main__":
    sys.exit(main())
