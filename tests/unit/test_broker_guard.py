"""workers/broker.py: kombu's restore paths are skipped only when the broker
connection is gone; any other AttributeError still surfaces."""

import types

import pytest

from workers.broker import _skip_when_connection_gone


def qos(client):
    transport = types.SimpleNamespace(client=client)
    return types.SimpleNamespace(channel=types.SimpleNamespace(connection=transport))


@_skip_when_connection_gone
def restore(qos, fail):
    if fail:
        raise AttributeError("'NoneType' object has no attribute 'hostname'")
    return "restored"


def test_restoring_with_the_connection_gone_is_skipped(caplog):
    assert restore(qos(None), True) is None
    assert "broker connection gone" in caplog.text


def test_an_attribute_error_with_a_live_connection_is_raised():
    with pytest.raises(AttributeError):
        restore(qos(object()), True)


def test_restoring_runs_as_ever_otherwise():
    assert restore(qos(object()), False) == "restored"
