"""What pages and other projects see of a subscriber URI: no password."""

import pytest

from notifier.sinks import shown_subscriber


@pytest.mark.parametrize(
    ("subscriber", "shown"),
    [
        ("http://127.0.0.1:9/hook", "http://127.0.0.1:9/hook"),
        ("https://u:p%40ss@example.com/h?q=1", "https://u:***@example.com/h?q=1"),
        ("http://u:pw@[::1]:8080/h", "http://u:***@[::1]:8080/h"),
        ("http://token@example.com/h", "http://***@example.com/h"),
        ("http://u:@example.com/h", "http://u:***@example.com/h"),
        ("mailto:ops@example.com", "mailto:ops@example.com"),
    ],
)
def test_the_password_of_a_subscriber_url_is_never_shown(subscriber, shown):
    assert shown_subscriber(subscriber) == shown
