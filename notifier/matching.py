"""Decide which subscriptions receive a message: pure, no I/O."""

from notifier import filtering


def accepts_everything(tags, prepared):
    return True


def subscription_filter(subscription):
    """Return a predicate (message tags, prepared message) for one subscription,
    or None when it receives nothing (unconfirmed). A disabled subscription
    still matches: its deliveries are held until it is enabled again.

    Built once per subscription and fan-out page: the filter policy is
    compiled (and cached by its canonical JSON), so each (message,
    subscription) check is a few dictionary lookups.
    """
    if not subscription.get("confirmed", True):
        return None
    options = subscription.get("options") or {}
    tags = options.get("filter_policies")
    policy = options.get("filter_policy")
    matcher = None
    if policy:
        matcher = filtering.compiled(
            filtering.canonical_json(policy),
            options.get("filter_policy_scope", filtering.ATTRIBUTES),
        )
    if not tags and matcher is None:
        return accepts_everything

    def wants(message_tags, prepared):
        if not filtering.tags_match(tags, message_tags):
            return False
        return matcher is None or matcher.matches_prepared(prepared)

    return wants


def matching_pairs(messages, subscriptions):
    """Return (message, subscription) pairs that should be delivered."""
    # Each message is flattened once (lazily) for every subscription's filter.
    prepared = [
        (
            m,
            m.get("filter_policies"),
            filtering.prepare_message(m.get("attributes") or {}, m.get("body")),
        )
        for m in messages
    ]
    pairs = []
    for subscription in subscriptions:
        wants = subscription_filter(subscription)
        if wants is None:
            continue
        pairs.extend(
            (message, subscription) for message, tags, view in prepared if wants(tags, view)
        )
    return pairs
