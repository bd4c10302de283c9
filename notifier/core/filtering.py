"""Subscription filtering: Zaqar tag lists and SNS-style filter policies.

* tags (Zaqar ``filter_policies``): plain string lists, see :func:`tags_match`;
* filter policies (``options.filter_policy``): AWS SNS-compatible JSON policies
  on the message attributes or the JSON body, see :func:`matches`.

A policy is validated and compiled in one walk into a :class:`Matcher` (hash
sets for exact values, one predicate per operator family); a message is
flattened once into a :class:`PreparedMessage` and checked against many
matchers. In a flattened message strings stay ``str``, numbers become
``float`` and JSON true/false/null become ``TRUE``/``FALSE``/``NULL``
(:mod:`notifier.core.filter_operators`, with the operators themselves), so that
``True != 1`` and ``"5" != 5`` as in SNS. Pure: stdlib only, no I/O.
"""

import functools
import json
import math

from notifier.core.filter_operators import (
    BUILDERS,
    PolicyError,
    fail,
    is_number,
    numeric_bounds,
    scalar,
)
from notifier.errors import ValidationError

ATTRIBUTES, BODY = "MessageAttributes", "MessageBody"
SCOPES = (ATTRIBUTES, BODY)
MAX_KEYS, MAX_COMBINATIONS, MAX_POLICY_BYTES = 5, 150, 256 * 1024
# A key of a flattened message keeps its first MAX_VALUES_PER_KEY values: a
# 200 KB array cannot make every policy on that key walk 14,000 values.
MAX_VALUES_PER_KEY = 1000
MAX_TAGS, MAX_TAG_LENGTH = 50, 256


# -- Zaqar tags ---------------------------------------------------------------


def tags_match(subscription_tags, message_tags):
    """Return True if a message with ``message_tags`` goes to the subscription.

    None and [] mean the same on either side: a subscription without tags
    receives everything; a message without tags reaches only such subscriptions.
    """
    if not subscription_tags:
        return True
    return bool(message_tags) and not set(subscription_tags).isdisjoint(message_tags)


def validate_tags(tags, field="filter_policies"):
    """Raise ValidationError unless ``tags`` is None or a short list of strings."""
    if tags is None:
        return
    if not isinstance(tags, list):
        raise ValidationError("Tags must be a list of strings", field=field)
    if len(tags) > MAX_TAGS:
        raise ValidationError(f"At most {MAX_TAGS} tags are allowed, got {len(tags)}", field=field)
    for tag in tags:
        if not isinstance(tag, str) or not tag:
            raise ValidationError(f"Each tag must be a non-empty string, got {tag!r}", field=field)
        if len(tag) > MAX_TAG_LENGTH:
            raise ValidationError(
                f"Tag {tag[:20]!r}... is longer than {MAX_TAG_LENGTH} characters", field=field
            )


# -- policies: public entry points --------------------------------------------


def canonical_json(policy):
    """Return the canonical JSON text of ``policy`` (sorted keys, no spaces)."""
    return json.dumps(policy, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def validate_policy(policy, scope=ATTRIBUTES, field="options.filter_policy"):
    """Raise ValidationError unless ``policy`` is a valid SNS filter policy."""
    _compile(policy, scope, field)


def compile_policy(policy, scope=ATTRIBUTES):
    """Validate ``policy`` and compile it into a :class:`Matcher`."""
    check = _compile(policy, scope, "options.filter_policy")
    terms = tuple(_cost_terms(policy, (), scope, [])) if check else ()
    return Matcher(scope, check, terms)


@functools.lru_cache(maxsize=4096)
def compiled(policy_text, scope=ATTRIBUTES):
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


def matches(policy, message_attributes=None, body=None, scope=ATTRIBUTES):
    """Return True if the message passes ``policy`` (a dict, JSON text or None)."""
    if not policy:
        return True
    text = policy if isinstance(policy, str) else canonical_json(policy)
    return compiled(text, scope).matches(message_attributes, body)


class Matcher:
    """A compiled filter policy: evaluate it against many messages cheaply."""

    __slots__ = ("scope", "_check", "_body", "_terms")

    def __init__(self, scope, check, terms=()):
        self.scope, self._check, self._body = scope, check, scope == BODY
        self._terms = terms  # (key, units per value of the key)

    def matches(self, message_attributes=None, body=None):
        """Return True if the message passes this policy."""
        return self.matches_prepared(PreparedMessage(message_attributes, body))

    def matches_prepared(self, message):
        """Return True if an already prepared message passes this policy."""
        if self._check is None:
            return True
        view = message.body_view if self._body else message.attribute_view
        return view is not None and self._check(view)

    def cost(self, message):
        """Return the most work (in units: one value checked by one operator
        family) evaluating this policy on a prepared message can take; cheap
        to compute, so a budget is charged before the work is done."""
        if self._check is None:
            return 0
        view = message.body_view if self._body else message.attribute_view
        if view is None:
            return 1
        return sum(1 + weight * len(view.get(key, ())) for key, weight in self._terms)


def _cost_terms(policy, path, scope, terms):
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


# -- policies: validation and compilation in one walk -------------------------


def _compile(policy, scope, field):
    """Return the check function of ``policy`` (None: no filter) or raise."""
    if scope not in SCOPES:
        raise ValidationError(
            f"Invalid filter policy scope {scope!r}; use one of {', '.join(SCOPES)}",
            field="options.filter_policy_scope",
        )
    if policy is None:
        return None
    if not isinstance(policy, dict):
        raise ValidationError("Filter policy must be a JSON object", field=field)
    try:
        checks = _compile_level(policy, (), scope, [])
        _check_limits(policy)
    except PolicyError as err:
        raise ValidationError(err.describe(), field=field) from None
    return _all_of(checks) if checks else None


def _check_limits(policy):
    if len(canonical_json(policy).encode()) > MAX_POLICY_BYTES:
        fail("Filter policy can not be larger than 256 KB")
    if _combinations(policy) > MAX_COMBINATIONS:
        fail("Filter policy is too complex")
    if _max_keys(policy) > MAX_KEYS:
        fail(f"Filter policy can not have more than {MAX_KEYS} keys")


def _combinations(policy):
    """Multiply the value counts of the leaf keys; an ``$or`` adds its branches."""
    total = 1
    for key, value in policy.items():
        if key == "$or":
            total *= sum(_combinations(branch) for branch in value)
        else:
            total *= _combinations(value) if isinstance(value, dict) else len(value)
    return total


def _max_keys(policy):
    """Count leaf keys; an ``$or`` counts as its largest branch."""
    count = 0
    for key, value in policy.items():
        if key == "$or":
            count += max(_max_keys(branch) for branch in value)
        else:
            count += _max_keys(value) if isinstance(value, dict) else 1
    return count


def _compile_level(policy, path, scope, checks):
    """Append a (cost, check) pair per key of one policy level to ``checks``."""
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
            checks.append(_compile_key(key_path if scope == BODY else key, value, key_path))
        else:
            raise PolicyError(f'"{key}" must be an object or an array', key_path)
    return checks


def _compile_or(branches, path, scope):
    if (
        not isinstance(branches, list)
        or len(branches) < 2
        or not all(isinstance(b, dict) and b for b in branches)
    ):
        raise PolicyError(
            '"$or" must be an array of at least two non-empty objects', path + ("$or",)
        )
    compiled_branches = tuple(_all_of(_compile_level(b, path, scope, [])) for b in branches)
    return functools.partial(_any_of, compiled_branches)


def _any_of(branches, view):
    for branch in branches:
        if branch(view):
            return True
    return False


def _all_of(checks):
    ordered = tuple(check for _, check in sorted(checks, key=lambda pair: pair[0]))
    if len(ordered) == 1:
        return ordered[0]

    def all_of(view):
        for check in ordered:
            if not check(view):
                return False
        return True

    return all_of


def _compile_key(key, rules, path):
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


def _group_rules(rules):
    """Map operator ("" for an exact value) to its arguments, in policy order."""
    groups = {}
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


def _key_check(key, exact, predicates, when_missing):
    if not predicates:

        def check(view):
            values = view.get(key)
            return when_missing if values is None else not exact.isdisjoint(values)

        return check

    def check_with_predicates(view):
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


# -- messages -----------------------------------------------------------------


class PreparedMessage:
    """One message flattened once, for evaluation against many matchers.

    ``attribute_view`` maps attribute name -> tuple of values; ``body_view``
    maps key path tuple -> tuple of values, or is None when the body is not a
    JSON object. A key whose value is an empty array is absent; a key keeps
    its first ``MAX_VALUES_PER_KEY`` values.
    """

    def __init__(self, message_attributes=None, body=None):
        self._attributes, self._body = message_attributes, body

    @functools.cached_property
    def attribute_view(self):
        view = {}
        for name, attribute in (self._attributes or {}).items():
            values = _attribute_values(attribute)
            if values:
                view[name] = values
        return view

    @functools.cached_property
    def body_view(self):
        body = self._body
        if isinstance(body, (str, bytes, bytearray)):
            try:
                body = json.loads(body)
            except ValueError:
                return None
        try:
            return _flatten(body) if isinstance(body, dict) else None
        except RecursionError:
            return None


def prepare_message(message_attributes=None, body=None):
    """Return a :class:`PreparedMessage` for ``Matcher.matches_prepared``."""
    return PreparedMessage(message_attributes, body)


def _flatten(node):
    out = {}
    _flatten_into(node, (), out)
    return {path: tuple(values) for path, values in out.items()}


def _flatten_into(node, path, out):
    if isinstance(node, dict):
        for key, child in node.items():
            _flatten_into(child, path + (key,), out)
    elif isinstance(node, list):
        for child in node:
            _flatten_into(child, path, out)
    else:
        values = out.setdefault(path, [])
        if len(values) < MAX_VALUES_PER_KEY:
            values.append(scalar(node))


def _attribute_values(attribute):
    """Return the normalised values of one SNS-style message attribute."""
    if not isinstance(attribute, dict):
        return _flatten(attribute).get((), ())  # a bare JSON value
    data_type = attribute.get("DataType") or attribute.get("Type") or "String"
    raw = attribute.get("StringValue", attribute.get("Value"))
    if data_type.endswith(".Array"):
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except ValueError:
                return ()
        return _flatten(raw).get((), ()) if isinstance(raw, list) else ()
    base = data_type.partition(".")[0]
    if base == "String":
        return (raw,) if isinstance(raw, str) else ()
    if base == "Number" and not isinstance(raw, bool):
        try:
            number = float(raw)
        except (TypeError, ValueError):
            return ()
        return (number,) if math.isfinite(number) else ()
    return ()  # Binary and unknown types are ignored, as SNS does
