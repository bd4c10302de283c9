"""SNS filter policies: the public entry points and the compiled :class:`Matcher`.

A policy is validated and compiled in one walk (:mod:`.compiler`) into a
Matcher; a message is flattened once (:mod:`.messages`) and checked against
many matchers. A Matcher also prices its worst case (:meth:`Matcher.cost`),
so a fan-out can charge a budget before evaluating.
"""

import functools
import json
from typing import Any

from notifier.core.filtering.compiler import (
    ATTRIBUTES,
    BODY,
    Check,
    Miss,
    Part,
    canonical_json,
    compile_check,
    compile_parts,
    first_miss,
)
from notifier.core.filtering.messages import Key, PreparedMessage
from notifier.errors import ValidationError


def validate_policy(
    policy: Any, scope: str = ATTRIBUTES, field: str = "options.filter_policy"
) -> None:
    """Raise ValidationError unless ``policy`` is a valid SNS filter policy."""
    compile_check(policy, scope, field)


def compile_policy(policy: Any, scope: str = ATTRIBUTES) -> "Matcher":
    """Validate ``policy`` and compile it into a :class:`Matcher`."""
    check, parts = compile_parts(policy, scope, "options.filter_policy")
    terms = tuple(_cost_terms(policy, (), scope, [])) if check else ()
    return Matcher(scope, check, terms, parts)


@functools.lru_cache(maxsize=4096)
def compiled(policy_text: str | None, scope: str = ATTRIBUTES) -> "Matcher":
    """Compile a policy stored as JSON text; memoised on (text, scope).

    Store policies as :func:`canonical_json` so equal policies share an entry.
    """
    try:
        policy = json.loads(policy_text) if policy_text else None
    except ValueError as ex:
        raise ValidationError(
            f"Filter policy is not valid JSON: {ex}", field="options.filter_policy"
        ) from ex
    return compile_policy(policy, scope)


def matches(
    policy: Any,
    message_attributes: dict[str, Any] | None = None,
    body: Any = None,
    scope: str = ATTRIBUTES,
) -> bool:
    """Return True if the message passes ``policy`` (a dict, JSON text or None)."""
    if not policy:
        return True
    text = policy if isinstance(policy, str) else canonical_json(policy)
    return compiled(text, scope).matches(message_attributes, body)


class Matcher:
    """A compiled filter policy: evaluate it against many messages cheaply."""

    __slots__ = ("scope", "_check", "_body", "_terms", "_parts")

    def __init__(
        self,
        scope: str,
        check: Check | None,
        terms: tuple[tuple[Key, int], ...] = (),
        parts: tuple[Part, ...] = (),
    ) -> None:
        self.scope, self._check, self._body = scope, check, scope == BODY
        self._terms = terms  # (key, units per value of the key)
        self._parts = parts  # what ``_check`` is the conjunction of

    def explain(self, message: PreparedMessage) -> Miss | None:
        """Return why a prepared message fails this policy (the first failing
        key, checked by the same compiled checks and in the same order as
        :meth:`matches_prepared`), or None when it passes."""
        if self._check is None:
            return None
        view = message.body_view if self._body else message.attribute_view
        if view is None:
            return Miss(BODY)  # the body is not a JSON object
        if self._check(view):
            return None
        return first_miss(self._parts, view) or Miss("")

    def matches(self, message_attributes: dict[str, Any] | None = None, body: Any = None) -> bool:
        """Return True if the message passes this policy."""
        return self.matches_prepared(PreparedMessage(message_attributes, body))

    def matches_prepared(self, message: PreparedMessage) -> bool:
        """Return True if an already prepared message passes this policy."""
        if self._check is None:
            return True
        view = message.body_view if self._body else message.attribute_view
        return view is not None and self._check(view)

    def cost(self, message: PreparedMessage) -> int:
        """Return the most work (in units: one value checked by one operator
        family) evaluating this policy on a prepared message can take; cheap
        to compute, so a budget is charged before the work is done."""
        if self._check is None:
            return 0
        view = message.body_view if self._body else message.attribute_view
        if view is None:
            return 1
        return sum(1 + weight * len(view.get(key, ())) for key, weight in self._terms)


def _cost_terms(
    policy: dict[str, Any], path: tuple[str, ...], scope: str, terms: list[tuple[Key, int]]
) -> list[tuple[Key, int]]:
    """Append (key, units per value) for each leaf key of a valid policy;
    a key checked in several ``$or`` branches counts once per branch."""
    for key, value in policy.items():
        if key == "$or":
            for branch in value:
                _cost_terms(branch, path, scope, terms)
        elif isinstance(value, dict):
            _cost_terms(value, path + (key,), scope, terms)
        else:
            operators = {next(iter(r)) for r in value if isinstance(r, dict) and r} - {"exists"}
            terms.append((path + (key,) if scope == BODY else key, 1 + len(operators)))
    return terms
