"""The SNS filter-policy operators, and the values and errors they share.

Each builder in :data:`BUILDERS` validates an operator's arguments (raising
:class:`PolicyError` with AWS's messages) and returns a predicate on one
flattened message value; :mod:`notifier.filtering` compiles policies from
them. Pure: stdlib only, no I/O.
"""

import functools
import ipaddress
import json
import math


class Literal:
    """A JSON literal kept apart from numbers (in Python ``True == 1``)."""

    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return self.name


TRUE, FALSE, NULL = Literal("true"), Literal("false"), Literal("null")


def scalar(value):
    """Normalise one JSON scalar for matching."""
    if value is True or value is False or value is None:
        return TRUE if value else FALSE if value is False else NULL
    return float(value) if isinstance(value, (int, float)) else value


class PolicyError(Exception):
    """Why a policy is invalid; ``path`` is filled in by the key being compiled."""

    def __init__(self, reason, path=()):
        super().__init__(reason)
        self.reason, self.path = reason, path

    def describe(self):
        where = f' (key "{".".join(map(str, self.path))}")' if self.path else ""
        return self.reason + where


def fail(reason):
    raise PolicyError(reason)


# -- operators: each builder validates its arguments, then returns v -> bool --


def is_number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _strings(operator, args):
    for arg in args:
        if not isinstance(arg, str):
            fail(f"{operator} match pattern must be a string")
    return tuple(args)


def _prefix(args):
    prefixes = _strings("prefix", args)
    return lambda v: type(v) is str and v.startswith(prefixes)


def _suffix(args):
    suffixes = _strings("suffix", args)
    return lambda v: type(v) is str and v.endswith(suffixes)


def _ignore_case(args):
    folded = frozenset(a.lower() for a in _strings("equals-ignore-case", args))
    return lambda v: type(v) is str and v.lower() in folded


def _numeric(bounds):
    bounds = tuple(bounds)

    def in_range(v):
        if type(v) is not float:
            return False
        for low, low_inc, high, high_inc in bounds:
            if (low < v or (low_inc and v == low)) and (v < high or (high_inc and v == high)):
                return True
        return False

    return in_range


_LOWER, _UPPER = {">": False, ">=": True}, {"<": False, "<=": True}  # -> inclusive


def numeric_bounds(argument):
    """Parse a ``numeric`` expression into (low, low_inclusive, high, high_inclusive)."""
    if not isinstance(argument, list) or not argument:
        fail("Value of numeric must be an array.")
    operator = argument[0]
    if not isinstance(operator, str):
        fail(f"Invalid member in numeric match: {json.dumps(operator)}")
    if operator != "=" and operator not in _LOWER and operator not in _UPPER:
        fail(f"Unrecognized numeric range operator: {operator}")
    first = _operand(argument, 1, operator)
    if len(argument) > 2 and operator not in _LOWER:
        fail("Too many elements in numeric expression")
    if operator in _UPPER:
        return -math.inf, False, first, _UPPER[operator]
    if len(argument) == 2:
        return (
            (first, True, first, True)
            if operator == "="
            else (first, _LOWER[operator], math.inf, False)
        )
    upper = argument[2]
    if not isinstance(upper, str) or upper not in _UPPER:
        fail(
            f"Bad numeric range operator: {upper}"
            if isinstance(upper, str)
            else f"Bad value in numeric range: {json.dumps(upper)}"
        )
    second = _operand(argument, 3, upper)
    if second <= first:
        fail("Bottom must be less than top")
    if len(argument) > 4:
        fail("Too many terms in numeric range expression")
    return first, _LOWER[operator], second, _UPPER[upper]


def _operand(argument, index, operator):
    value = argument[index] if index < len(argument) else None
    if not is_number(value):
        fail(f"Value of {'equals' if operator == '=' else operator} must be numeric")
    return float(value)


def _cidr(args):
    networks = tuple(_network(a) for a in args)

    def in_networks(v):
        address = _ip_address(v) if type(v) is str else None
        return address is not None and any(address in net for net in networks)

    return in_networks


def _network(argument):
    if not isinstance(argument, str):
        fail("cidr match pattern must be a string")
    address, slash, mask = argument.partition("/")
    if not slash or "/" in mask:
        fail("Malformed CIDR, one '/' required")
    if not mask.isdigit():
        fail("Malformed CIDR, mask bits must be an integer")
    try:
        return ipaddress.ip_network(argument, strict=False)
    except ValueError:
        fail(f"Nonstandard IP address: {address}")


@functools.lru_cache(maxsize=1024)
def _ip_address(text):
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _anything_but(args):
    predicates = tuple(_one_anything_but(a) for a in args)
    if len(predicates) == 1:
        return predicates[0]
    return lambda v: any(p(v) for p in predicates)


def _one_anything_but(argument):
    if isinstance(argument, dict):
        inner = next(iter(argument), "{}")
        if len(argument) != 1 or inner not in ("prefix", "suffix", "equals-ignore-case"):
            fail(f"Unsupported anything-but pattern: {inner}")
        pattern = BUILDERS[inner]([argument[inner]])
        return lambda v: not pattern(v)
    if isinstance(argument, list):
        if not argument:
            fail("Empty arrays are not allowed")
        if not all(isinstance(v, str) or is_number(v) for v in argument):
            fail("Inside anything but list, start|null|boolean is not supported.")
    elif not (isinstance(argument, str) or is_number(argument)):
        fail("Value of anything-but must be an array or single string/number value.")
    excluded = frozenset(map(scalar, argument if isinstance(argument, list) else [argument]))
    return lambda v: v not in excluded


# Cheapest first: a key's predicates are tried in this order.
BUILDERS = {
    "prefix": _prefix,
    "suffix": _suffix,
    "equals-ignore-case": _ignore_case,
    "numeric": _numeric,
    "anything-but": _anything_but,
    "cidr": _cidr,
}
