"""Validate and compile an SNS filter policy in one walk.

The result is one check function on a flattened message view (see
:mod:`notifier.core.filtering.messages`): hash sets for exact values, one
predicate per operator family, the cheapest checks first. AWS's limits (keys,
combinations, size) and error messages are kept.
"""

import dataclasses
import functools
import json
from collections.abc import Callable
from typing import Any

from notifier.core.filtering.messages import View
from notifier.core.filtering.operators import (
    BUILDERS,
    PolicyError,
    Predicate,
    fail,
    is_number,
    numeric_bounds,
    scalar,
)
from notifier.errors import ValidationError

ATTRIBUTES, BODY = "MessageAttributes", "MessageBody"
SCOPES = (ATTRIBUTES, BODY)
MAX_KEYS, MAX_COMBINATIONS, MAX_POLICY_BYTES = 5, 150, 256 * 1024

#: Whether a flattened message passes (part of) a policy.
Check = Callable[[View], bool]


@dataclasses.dataclass(frozen=True)
class Part:
    """One check of a compiled policy level: a key's check, or an ``$or``.

    A level's check is the conjunction of its parts' checks, in the order of
    ``parts`` (cheapest first); :func:`first_miss` walks the same parts, so
    what it reports is what made the compiled check false.
    """

    label: str  # the key path, dot-separated, or "$or"
    key: Any  # the view key the check reads (None for an "$or")
    check: Check
    branches: tuple[tuple["Part", ...], ...] = ()  # of an "$or"


@dataclasses.dataclass(frozen=True)
class Miss:
    """Why a message failed a policy: the first failing key (or ``$or``,
    with each branch's own miss) and the values the message has there."""

    label: str
    values: tuple[Any, ...] | None = None  # None: the key is not in the message
    branches: tuple["Miss", ...] = ()


def first_miss(parts: tuple[Part, ...], view: View) -> Miss | None:
    """Return the first part of a level ``view`` fails, or None if it passes all."""
    for part in parts:
        if part.check(view):
            continue
        if part.branches:
            misses = tuple(first_miss(branch, view) for branch in part.branches)
            return Miss(part.label, None, tuple(m for m in misses if m is not None))
        return Miss(part.label, view.get(part.key))
    return None


def canonical_json(policy: Any) -> str:
    """Return the canonical JSON text of ``policy`` (sorted keys, no spaces)."""
    return json.dumps(policy, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def compile_check(policy: Any, scope: str, field: str) -> Check | None:
    """Return the check function of ``policy`` (None: no filter) or raise
    ValidationError naming ``field``."""
    return compile_parts(policy, scope, field)[0]


def compile_parts(policy: Any, scope: str, field: str) -> tuple[Check | None, tuple[Part, ...]]:
    """Return the check function of ``policy`` (None: no filter) and the
    parts it is the conjunction of, or raise ValidationError naming ``field``."""
    if scope not in SCOPES:
        raise ValidationError(
            f"Invalid filter policy scope {scope!r}; use one of {', '.join(SCOPES)}",
            field="options.filter_policy_scope",
        )
    if policy is None:
        return None, ()
    if not isinstance(policy, dict):
        raise ValidationError("Filter policy must be a JSON object", field=field)
    try:
        parts = _ordered(_compile_level(policy, (), scope, []))
        _check_limits(policy)
    except PolicyError as err:
        raise ValidationError(err.describe(), field=field) from None
    return (_all_of(parts) if parts else None), parts


def _check_limits(policy: dict[str, Any]) -> None:
    if len(canonical_json(policy).encode()) > MAX_POLICY_BYTES:
        fail("Filter policy can not be larger than 256 KB")
    if _combinations(policy) > MAX_COMBINATIONS:
        fail("Filter policy is too complex")
    if _max_keys(policy) > MAX_KEYS:
        fail(f"Filter policy can not have more than {MAX_KEYS} keys")


def _combinations(policy: dict[str, Any]) -> int:
    """Multiply the value counts of the leaf keys; an ``$or`` adds its branches."""
    total = 1
    for key, value in policy.items():
        if key == "$or":
            total *= sum(_combinations(branch) for branch in value)
        else:
            total *= _combinations(value) if isinstance(value, dict) else len(value)
    return total


def _max_keys(policy: dict[str, Any]) -> int:
    """Count leaf keys; an ``$or`` counts as its largest branch."""
    count = 0
    for key, value in policy.items():
        if key == "$or":
            count += max(_max_keys(branch) for branch in value)
        else:
            count += _max_keys(value) if isinstance(value, dict) else 1
    return count


def _compile_level(
    policy: dict[str, Any], path: tuple[str, ...], scope: str, checks: list[tuple[int, Part]]
) -> list[tuple[int, Part]]:
    """Append a (cost, part) pair per key of one policy level to ``checks``."""
    for key, value in policy.items():
        key_path = path + (key,)
        if key == "$or":
            checks.append((10, _compile_or(value, path, scope)))
        elif isinstance(value, dict):
            if scope == ATTRIBUTES:
                raise PolicyError(
                    "Filter policy scope MessageAttributes does not support nested filter policy",
                    key_path,
                )
            if not value:
                raise PolicyError("Empty objects are not allowed", key_path)
            _compile_level(value, key_path, scope, checks)
        elif isinstance(value, list):
            view_key = key_path if scope == BODY else key
            cost, check = _compile_key(view_key, value, key_path)
            checks.append((cost, Part(".".join(key_path), view_key, check)))
        else:
            raise PolicyError(f'"{key}" must be an object or an array', key_path)
    return checks


def _compile_or(branches: Any, path: tuple[str, ...], scope: str) -> Part:
    if (
        not isinstance(branches, list)
        or len(branches) < 2
        or not all(isinstance(b, dict) and b for b in branches)
    ):
        raise PolicyError(
            '"$or" must be an array of at least two non-empty objects', path + ("$or",)
        )
    parts = tuple(_ordered(_compile_level(b, path, scope, [])) for b in branches)
    compiled_branches = tuple(_all_of(branch) for branch in parts)
    label = ".".join(path + ("$or",))
    return Part(label, None, functools.partial(_any_of, compiled_branches), parts)


def _any_of(branches: tuple[Check, ...], view: View) -> bool:
    for branch in branches:
        if branch(view):
            return True
    return False


def _ordered(checks: list[tuple[int, Part]]) -> tuple[Part, ...]:
    """Return a level's parts cheapest first (a stable sort: ties keep policy order)."""
    return tuple(part for _, part in sorted(checks, key=lambda pair: pair[0]))


def _all_of(parts: tuple[Part, ...]) -> Check:
    ordered = tuple(part.check for part in parts)
    if len(ordered) == 1:
        return ordered[0]

    def all_of(view: View) -> bool:
        for check in ordered:
            if not check(view):
                return False
        return True

    return all_of


def _compile_key(key: Any, rules: list[Any], path: tuple[str, ...]) -> tuple[int, Check]:
    """Return (cost, check) where check(view) tells whether ``key`` passes ``rules``."""
    try:
        if not rules:
            fail("Empty arrays are not allowed")
        groups = _group_rules(rules)
        exact = frozenset(scalar(v) for v in groups.pop("", ()))
        exists = set(groups.pop("exists", ()))
        predicates = tuple(build(groups[op]) for op, build in BUILDERS.items() if op in groups)
    except PolicyError as err:
        err.path = err.path or path
        raise
    if True in exists:
        return 0, (lambda view: True) if False in exists else (lambda view: key in view)
    return 1 + len(predicates), _key_check(key, exact, predicates, False in exists)


def _group_rules(rules: list[Any]) -> dict[str, list[Any]]:
    """Map operator ("" for an exact value) to its arguments, in policy order."""
    groups: dict[str, list[Any]] = {}
    for rule in rules:
        if rule is None or isinstance(rule, (str, bool)) or is_number(rule):
            groups.setdefault("", []).append(rule)
            continue
        if not isinstance(rule, dict):
            fail("Match value must be String, number, true, false, or null")
        if len(rule) != 1:
            fail("Only one key allowed in match expression")
        ((operator, argument),) = rule.items()
        if operator not in BUILDERS and operator != "exists":
            fail(f"Unrecognized match type {operator}")
        if operator == "exists" and not isinstance(argument, bool):
            fail("exists match pattern must be either true or false.")
        if operator == "numeric":  # an equality is just an exact number
            low, low_inc, high, high_inc = bounds = numeric_bounds(argument)
            operator, argument = ("", low) if low == high else ("numeric", bounds)
        groups.setdefault(operator, []).append(argument)
    return groups


def _key_check(
    key: Any, exact: frozenset[Any], predicates: tuple[Predicate, ...], when_missing: bool
) -> Check:
    if not predicates:

        def check(view: View) -> bool:
            values = view.get(key)
            return when_missing if values is None else not exact.isdisjoint(values)

        return check

    def check_with_predicates(view: View) -> bool:
        values = view.get(key)
        if values is None:
            return when_missing
        if not exact.isdisjoint(values):
            return True
        for value in values:
            for predicate in predicates:
                if predicate(value):
                    return True
        return False

    return check_with_predicates
