"""A message flattened once for evaluation against many filter policies.

Strings stay ``str``, numbers become ``float`` and JSON true/false/null become
``TRUE``/``FALSE``/``NULL`` (:func:`notifier.core.filtering.operators.scalar`),
so that ``True != 1`` and ``"5" != 5`` as in SNS.
"""

import functools
import json
import math
from typing import Any

from notifier.core.filtering.operators import scalar

# A key of a flattened message keeps its first MAX_VALUES_PER_KEY values: a
# 200 KB array cannot make every policy on that key walk 14,000 values.
MAX_VALUES_PER_KEY = 1000

#: A key of a view: an attribute name, or the key path of a body value.
Key = str | tuple[str, ...]
#: A flattened message: key -> its values (at least one).
View = dict[Any, tuple[Any, ...]]


class PreparedMessage:
    """One message flattened once, for evaluation against many matchers.

    ``attribute_view`` maps attribute name -> tuple of values; ``body_view``
    maps key path tuple -> tuple of values, or is None when the body is not a
    JSON object. A key whose value is an empty array is absent; a key keeps
    its first ``MAX_VALUES_PER_KEY`` values.
    """

    def __init__(self, message_attributes: dict[str, Any] | None = None, body: Any = None) -> None:
        self._attributes, self._body = message_attributes, body

    @functools.cached_property
    def attribute_view(self) -> View:
        view: View = {}
        for name, attribute in (self._attributes or {}).items():
            values = _attribute_values(attribute)
            if values:
                view[name] = values
        return view

    @functools.cached_property
    def body_view(self) -> View | None:
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


def prepare_message(
    message_attributes: dict[str, Any] | None = None, body: Any = None
) -> PreparedMessage:
    """Return a :class:`PreparedMessage` for ``Matcher.matches_prepared``."""
    return PreparedMessage(message_attributes, body)


def _flatten(node: Any) -> View:
    out: dict[tuple[str, ...], list[Any]] = {}
    _flatten_into(node, (), out)
    return {path: tuple(values) for path, values in out.items()}


def _flatten_into(node: Any, path: tuple[str, ...], out: dict[tuple[str, ...], list[Any]]) -> None:
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


def _attribute_values(attribute: Any) -> tuple[Any, ...]:
    """Return the normalised values of one SNS-style message attribute."""
    if not isinstance(attribute, dict):
        return _flatten(attribute).get((), ())  # a bare JSON value
    data_type = attribute.get("DataType") or attribute.get("Type") or "String"
    raw: Any = attribute.get("StringValue", attribute.get("Value"))
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
