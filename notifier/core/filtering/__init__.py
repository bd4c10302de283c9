"""Subscription filtering: Zaqar tag lists and SNS-style filter policies.

* tags (Zaqar ``filter_policies``): plain string lists, see :func:`tags_match`
  (``tags``);
* filter policies (``options.filter_policy``): AWS SNS-compatible JSON policies
  on the message attributes or the JSON body, see :func:`matches`.

The package, one module per concept:

    tags       Zaqar tag lists: match and validate
    operators  the SNS operators (prefix, numeric, cidr ...), the values they
               compare and the errors they raise
    compiler   validate and compile a policy in one walk into a check function
    messages   a message flattened once (PreparedMessage) for many policies
    policy     the entry points and the compiled Matcher, with its cost and
               ``explain`` (the first failing key, for the console's Explain)

A policy is validated and compiled in one walk into a :class:`Matcher` (hash
sets for exact values, one predicate per operator family); a message is
flattened once into a :class:`PreparedMessage` and checked against many
matchers. In a flattened message strings stay ``str``, numbers become
``float`` and JSON true/false/null become ``TRUE``/``FALSE``/``NULL``, so
that ``True != 1`` and ``"5" != 5`` as in SNS. Pure: stdlib only, no I/O.
"""

from notifier.core.filtering.compiler import (
    ATTRIBUTES,
    BODY,
    MAX_COMBINATIONS,
    MAX_KEYS,
    MAX_POLICY_BYTES,
    SCOPES,
    Miss,
    canonical_json,
)
from notifier.core.filtering.messages import MAX_VALUES_PER_KEY, PreparedMessage, prepare_message
from notifier.core.filtering.policy import (
    Matcher,
    compile_policy,
    compiled,
    matches,
    validate_policy,
)
from notifier.core.filtering.tags import MAX_TAG_LENGTH, MAX_TAGS, tags_match, validate_tags

__all__ = [
    "ATTRIBUTES",
    "BODY",
    "MAX_COMBINATIONS",
    "MAX_KEYS",
    "MAX_POLICY_BYTES",
    "MAX_TAGS",
    "MAX_TAG_LENGTH",
    "MAX_VALUES_PER_KEY",
    "SCOPES",
    "Matcher",
    "Miss",
    "PreparedMessage",
    "canonical_json",
    "compile_policy",
    "compiled",
    "matches",
    "prepare_message",
    "tags_match",
    "validate_policy",
    "validate_tags",
]
