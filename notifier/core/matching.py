"""Decide which subscriptions receive a message: pure, no I/O."""

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from notifier.core import filtering
from notifier.core.filtering import Matcher, Miss, PreparedMessage

#: Whether one subscription wants a message: (message tags, prepared message).
Wants = Callable[[list[str] | None, PreparedMessage], bool]
Message = dict[str, Any]
Subscription = dict[str, Any]


def accepts_everything(tags: list[str] | None, prepared: PreparedMessage) -> bool:
    return True


def _plan(subscription: Subscription) -> tuple[list[str] | None, Matcher | None] | None:
    """Return (tags, matcher or None) of a subscription, or None when it
    receives nothing (unconfirmed). A disabled subscription still matches:
    its deliveries are held until it is enabled again."""
    if not subscription.get("confirmed", True):
        return None
    options = subscription.get("options") or {}
    policy = options.get("filter_policy")
    matcher: Matcher | None = None
    if policy:
        matcher = filtering.compiled(
            filtering.canonical_json(policy),
            options.get("filter_policy_scope", filtering.ATTRIBUTES),
        )
    return options.get("filter_policies"), matcher


def subscription_filter(subscription: Subscription) -> Wants | None:
    """Return a predicate (message tags, prepared message) for one subscription,
    or None when it receives nothing (unconfirmed).

    Built once per subscription and fan-out page: the filter policy is
    compiled (and cached by its canonical JSON), so each (message,
    subscription) check is a few dictionary lookups.
    """
    plan = _plan(subscription)
    if plan is None:
        return None
    tags, matcher = plan
    if not tags and matcher is None:
        return accepts_everything

    def wants(message_tags: list[str] | None, prepared: PreparedMessage) -> bool:
        if not filtering.tags_match(tags, message_tags):
            return False
        return matcher is None or matcher.matches_prepared(prepared)

    return wants


def matching_pairs(
    messages: Sequence[Message], subscriptions: Sequence[Subscription]
) -> list[tuple[Message, Subscription]]:
    """Return (message, subscription) pairs that should be delivered."""
    return match_within(messages, subscriptions)[0]


def match_within(
    messages: Sequence[Message], subscriptions: Sequence[Subscription], budget: int | None = None
) -> tuple[list[tuple[Message, Subscription]], list[tuple[Message, Subscription, str]]]:
    """Return (pairs to deliver, skipped) for messages and subscriptions.

    Without a ``budget`` every filter policy is evaluated. With one (units,
    see ``filtering.Matcher.cost``) each evaluation is charged its worst case
    before it runs, the cheapest first, and those that would overrun what is
    left are not run: the pair fails closed (no delivery) and is returned in
    ``skipped`` as (message, subscription, reason). So an expensive policy
    is what gets skipped, not the cheap ones of other subscribers.
    """
    # Each message is flattened once (lazily) for every subscription's filter.
    prepared = [
        (
            m,
            m.get("filter_policies"),
            filtering.prepare_message(m.get("attributes") or {}, m.get("body")),
        )
        for m in messages
    ]
    # (cost, subscription index, message index, matcher)
    jobs: list[tuple[int, int, int, Matcher | None]] = []
    for s_index, subscription in enumerate(subscriptions):
        plan = _plan(subscription)
        if plan is None:
            continue
        tags, matcher = plan
        for m_index, (_, message_tags, view) in enumerate(prepared):
            if not filtering.tags_match(tags, message_tags):
                continue
            cost = 0 if matcher is None or budget is None else matcher.cost(view)
            jobs.append((cost, s_index, m_index, matcher))
    if budget is not None:
        jobs.sort(key=lambda job: job[0])
    left = 0 if budget is None else budget  # read only with a budget
    chosen: list[tuple[int, int]] = []
    skipped: list[tuple[Message, Subscription, str]] = []
    for cost, s_index, m_index, matcher in jobs:
        message, _, view = prepared[m_index]
        if budget is not None and cost > left:
            skipped.append(
                (
                    message,
                    subscriptions[s_index],
                    f"filter policy not evaluated: it may cost {cost} units and "
                    f"{left} of the fan-out's {budget} were left "
                    "([notification] filter_budget_per_fanout)",
                )
            )
            continue
        if budget is not None:
            left -= cost
        if matcher is None or matcher.matches_prepared(view):
            chosen.append((s_index, m_index))
    chosen.sort()
    pairs = [(prepared[m][0], subscriptions[s]) for s, m in chosen]
    return pairs, skipped


@dataclasses.dataclass(frozen=True)
class Verdict:
    """Whether fan-out gives one subscription a message, and why (not).

    ``matches``: fan-out matches it (a paused subscription still matches: its
    delivery is held); ``failed``: what did not match ("filter_policies" for
    the tags, a filter-policy key path, "$or", "MessageBody"), or None;
    ``reason``: one sentence for a person.
    """

    matches: bool
    reason: str
    failed: str | None = None
    miss: Miss | None = None


def explain(
    subscription: Subscription, message_tags: list[str] | None, prepared: PreparedMessage
) -> Verdict:
    """Return the :class:`Verdict` of one subscription for one message.

    It follows fan-out's own plan (:func:`_plan`: the same compiled,
    cached matcher), so it cannot disagree with :func:`match_within`
    (without a budget)."""
    plan = _plan(subscription)
    if plan is None:
        return Verdict(False, "unconfirmed: it receives nothing until it is confirmed")
    tags, matcher = plan
    if not filtering.tags_match(tags, message_tags):
        shown = ", ".join(message_tags or ()) or "none"
        return Verdict(
            False,
            f"tags: the message's tags ({shown}) share none of the subscription's "
            f"({', '.join(tags or ())})",
            "filter_policies",
        )
    miss = matcher.explain(prepared) if matcher is not None else None
    if miss is not None:
        return Verdict(False, describe_miss(miss), miss.label, miss)
    if subscription.get("disabled"):
        return Verdict(True, "matches, but the subscription is paused: the delivery is held")
    return Verdict(True, "matches")


def explain_within(
    subscriptions: Sequence[Subscription],
    message_tags: list[str] | None,
    prepared: PreparedMessage,
    budget: int,
) -> list[Verdict]:
    """Return the :class:`Verdict` of each subscription, charging filter
    work to ``budget`` as :func:`match_within` does (worst case before it
    runs, the cheapest first): one that would overrun it is not evaluated,
    and its verdict says so, as fan-out would skip its delivery."""
    costs = []
    for subscription in subscriptions:
        plan = _plan(subscription)
        matcher = plan[1] if plan else None
        tagged = plan is not None and filtering.tags_match(plan[0], message_tags)
        costs.append(matcher.cost(prepared) if matcher is not None and tagged else 0)
    verdicts: list[Verdict | None] = [None] * len(subscriptions)
    left = budget
    for index in sorted(range(len(subscriptions)), key=costs.__getitem__):
        if costs[index] > left:
            verdicts[index] = Verdict(
                False,
                f"filter policy not evaluated: it may cost {costs[index]} units and {left} "
                f"of the fan-out's {budget} were left ([notification] filter_budget_per_fanout)",
                "filter_budget",
            )
            continue
        left -= costs[index]
        verdicts[index] = explain(subscriptions[index], message_tags, prepared)
    return [v for v in verdicts if v is not None]


def describe_miss(miss: Miss) -> str:
    """Return a filter-policy miss as one sentence."""
    if miss.label == filtering.BODY:
        return "filter policy (MessageBody scope): the message body is not a JSON object"
    if miss.branches:
        each = "; ".join(describe_miss(branch) for branch in miss.branches)
        return f"filter policy {miss.label}: no branch matched ({each})"
    if miss.values is None:
        return f"filter policy key {miss.label!r}: the message has no such key"
    shown = ", ".join(_shown(value) for value in miss.values)
    return f"filter policy key {miss.label!r}: the message's value(s) {shown} do not match"


def _shown(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value) if isinstance(value, str) else str(value)
