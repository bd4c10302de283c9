"""Unit tests of sources.apply_metadata_patch: Zaqar's JSON-patch on /metadata/KEY."""

import pytest

from notifier.errors import ValidationError
from notifier.services.sources import apply_metadata_patch

BEFORE = {"colour": "red", "size": 2}


def op(kind, key, *value):
    document = {"op": kind, "path": f"/metadata/{key}"}
    if value:
        (document["value"],) = value
    return document


@pytest.mark.parametrize(
    "ops, expected",
    [
        ([op("add", "new", 1)], {"colour": "red", "size": 2, "new": 1}),
        ([op("add", "colour", "blue")], {"colour": "blue", "size": 2}),
        ([op("replace", "size", {"w": 3})], {"colour": "red", "size": {"w": 3}}),
        ([op("remove", "colour")], {"size": 2}),
        ([op("add", "n", None)], {"colour": "red", "size": 2, "n": None}),
        ([op("remove", "colour"), op("remove", "size")], {}),
        ([op("add", "t", 1), op("replace", "t", 2), op("remove", "t")], BEFORE),
        ([op("remove", "colour"), op("add", "colour", "green")], {"size": 2, "colour": "green"}),
        ([op("add", "a/b", 1)], {"colour": "red", "size": 2, "a/b": 1}),
        (
            [op("add", "_retry_policy", {"minimum_delay": 1})],
            {"colour": "red", "size": 2, "_retry_policy": {"minimum_delay": 1}},
        ),
    ],
)
def test_ops_apply_in_order(ops, expected):
    assert apply_metadata_patch(BEFORE, ops) == expected


def test_the_given_metadata_is_not_changed():
    before = dict(BEFORE)
    apply_metadata_patch(before, [op("remove", "colour"), op("add", "x", 1)])
    assert before == BEFORE


def test_extra_fields_of_an_op_are_ignored():
    ops = [dict(op("add", "x", 1), comment="why")]
    assert apply_metadata_patch({}, ops) == {"x": 1}


@pytest.mark.parametrize(
    "ops, field",
    [
        (None, "body"),
        ({}, "body"),
        (op("add", "x", 1), "body"),
        ([], "body"),
        ("add", "body"),
        ([None], "body[0]"),
        ([[op("add", "x", 1)]], "body[0]"),
        ([op("add", "x", 1), "remove"], "body[1]"),
        ([{"op": "add", "value": 1}], "body[0].path"),
        ([{"op": "add", "path": 1, "value": 1}], "body[0].path"),
        ([{"op": "add", "path": "/metadata/", "value": 1}], "body[0].path"),
        ([{"op": "add", "path": "/metadata", "value": 1}], "body[0].path"),
        ([{"op": "add", "path": "/colour", "value": 1}], "body[0].path"),
        ([{"op": "add", "path": "metadata/colour", "value": 1}], "body[0].path"),
        ([{"path": "/metadata/x", "value": 1}], "body[0].op"),
        ([op("move", "x", 1)], "body[0].op"),
        ([op("test", "colour", "red")], "body[0].op"),
        ([op("ADD", "x", 1)], "body[0].op"),
        ([op("add", "x")], "body[0].value"),
        ([op("replace", "size")], "body[0].value"),
        ([op("replace", "missing", 1)], "body[0].path"),
        ([op("remove", "missing")], "body[0].path"),
        ([op("remove", "colour"), op("remove", "colour")], "body[1].path"),
        ([op("remove", "colour"), op("replace", "colour", 1)], "body[1].path"),
    ],
)
def test_a_bad_patch_is_rejected_naming_the_op_and_field(ops, field):
    with pytest.raises(ValidationError) as caught:
        apply_metadata_patch(BEFORE, ops)
    assert caught.value.field == field
    assert caught.value.description
