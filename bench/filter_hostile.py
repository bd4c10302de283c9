"""Benchmark hostile filter policies against a ~200 KB body (issue 16, item 7).

Each policy lists 150 values of one operator against a body whose one key
holds 14,000 values that match none of them (the worst case: every value is
checked). Prints per (message, subscription): milliseconds, the units
``Matcher.cost`` charges, and nanoseconds per unit, which is what
``[notification] filter_budget_per_fanout`` is calibrated from.
Run: ``.venv/bin/python bench/filter_hostile.py [--no-cap]`` (``--no-cap``:
every value is kept, to measure the operators alone).
"""

import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from notifier.core import filtering  # noqa: E402

VALUES = 14000


def hostile_cases(rng):
    ips = [
        ".".join(str(n) for n in (rng.randint(11, 223), *(rng.randint(0, 255) for _ in range(3))))
        for _ in range(VALUES)
    ]
    numbers = [rng.uniform(5000, 6000) for _ in range(VALUES)]
    words = [f"w{rng.randint(0, 10**8):08d}" for _ in range(VALUES)]
    return [
        (
            "cidr",
            {"ips": ips},
            {
                "ips": [
                    {"cidr": f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.0/24"}
                    for _ in range(150)
                ]
            },
        ),
        (
            "numeric",
            {"n": numbers},
            {"n": [{"numeric": [">", 10 * i, "<", 10 * i + 5]} for i in range(150)]},
        ),
        ("prefix", {"w": words}, {"w": [{"prefix": f"x{i:03d}"} for i in range(150)]}),
        ("anything-but", {"w": words}, {"w": [{"anything-but": words}] * 1}),
    ]


def measure(body, policy, repeat):
    matcher = filtering.compiled(filtering.canonical_json(policy), filtering.BODY)
    prepared = filtering.prepare_message(None, body)
    assert prepared.body_view  # flatten once, as a fan-out does per message
    started = time.perf_counter()
    for _ in range(repeat):
        matched = matcher.matches_prepared(prepared)
    seconds = (time.perf_counter() - started) / repeat
    cost = getattr(matcher, "cost", None)  # None: a tree from before the budget
    return seconds, cost(prepared) if cost else None, matched


def main():
    # The cap is read where messages are flattened (filtering.messages).
    capped = getattr(filtering, "messages", filtering)
    if "--no-cap" in sys.argv and hasattr(capped, "MAX_VALUES_PER_KEY"):
        capped.MAX_VALUES_PER_KEY = VALUES  # the operators alone
    rng = random.Random(16)
    print(f"cap: {getattr(capped, 'MAX_VALUES_PER_KEY', None)} values per key")
    for name, body, policy in hostile_cases(rng):
        if name == "anything-but":  # 14,000 exclusions would break the policy size cap
            policy = {"w": [{"anything-but": body["w"][:150]}]}
        size = len(json.dumps(body))
        seconds, units, matched = measure(body, policy, 20)
        per_unit = f"{seconds * 1e9 / units:6.1f} ns/unit" if units else "no units"
        print(
            f"{name:13} body {size / 1000:.0f} KB: {seconds * 1000:8.3f} ms per "
            f"(message, subscription), {units} units, {per_unit}, matched={matched}"
        )


if __name__ == "__main__":
    main()
