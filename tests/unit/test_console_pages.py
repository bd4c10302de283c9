"""The console's pure parts: the retry preview, links on every URL,
where a validation error is shown."""

import pytest

from notifier import conf as conf_module
from notifier.core import links
from notifier.errors import ValidationError
from notifier.services import console
from notifier.web.console import Session, delay_chart, field_errors, parse_letter, token_csrf


@pytest.fixture
def conf():
    return conf_module.load_conf([])


def test_the_retry_preview_is_the_schedule_of_core_retry(conf):
    preview = console.retry_preview(
        conf,
        '{"retries_with_no_delay": 1, "minimum_delay_retries": 1, "minimum_delay": 2, '
        '"backoff_retries": 3, "maximum_delay": 8, "maximum_delay_retries": 1}',
    )

    assert preview["delays"] == [0.0, 2.0, 2.0, 5.0, 8.0, 8.0]
    assert preview["total_seconds"] == 25.0
    assert not preview["overridden"]


def test_an_empty_preview_shows_the_defaults_and_a_queue_policy_can_override(conf):
    defaults = console.retry_preview(conf, "")["delays"]
    queue = {"ignore_subscription_override": True, "retries_with_no_delay": 0}

    overridden = console.retry_preview(conf, '{"maximum_delay": 40}', queue)

    assert len(defaults) == 19
    assert overridden["overridden"] and overridden["delays"][0] == 5.0


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("{nope", "_retry_policy"),
        ("[]", "_retry_policy"),
        ('{"minimum_delay": -1}', "_retry_policy.minimum_delay"),
        ('{"bogus": 1}', "_retry_policy.bogus"),
        ('{"retry_backoff_function": "cubic"}', "_retry_policy.retry_backoff_function"),
    ],
)
def test_a_bad_retry_policy_names_its_field(conf, text, field):
    with pytest.raises(ValidationError) as raised:
        console.retry_preview(conf, text)

    assert raised.value.field == field
    assert field_errors(raised.value).keys() == {"retry"}


@pytest.mark.parametrize(
    ("field", "where"),
    [
        ("options.filter_policy", "filter"),
        ("options.filter_policy_scope", "scope"),
        ("subscriber", "form"),
        (None, "form"),
    ],
)
def test_validation_errors_go_next_to_their_field(field, where):
    assert field_errors(ValidationError("bad", field=field)).keys() == {where}


def test_a_link_session_carries_the_link_on_every_url():
    link = links.sign_link("k", links.CONSOLE_PATH, links.CONSOLE, "p1", "1h")
    session = Session("p1", "csrf", link)

    url = session.url("/console/explain", source="queues/a b", message_id=None)

    assert url.startswith("/console/explain?source=queues%2Fa+b&project=p1&expires=")
    assert url.endswith(f"signature={link.signature}")
    assert Session("p1", "csrf").url("/console") == "/console"


def test_a_keystone_sessions_csrf_token_depends_on_its_token():
    assert token_csrf("a") != token_csrf("b") and token_csrf("a") == token_csrf("a")
    assert len(token_csrf("a")) == 64


@pytest.mark.parametrize("value", ["queues/a/s", "queues/a/s/m/x", "queues//s/m", 5, None])
def test_a_dead_letter_choice_has_four_parts(value):
    with pytest.raises(ValidationError):
        parse_letter(value)


def test_the_delay_chart_scales_to_the_longest_delay():
    chart = delay_chart([0.0, 5.0, 10.0], width=300, height=120)

    heights = [bar["height"] for bar in chart["bars"]]
    assert heights == [1.0, 50.0, 100.0]
    assert [bar["x"] for bar in chart["bars"]] == [1.0, 101.0, 201.0]
    assert delay_chart([])["bars"] == []
