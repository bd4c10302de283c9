"""mailto URIs, address and header checks, templates and MIME building (pure)."""

import email
import email.policy

import jinja2
import pytest

from notifier.core import emails
from notifier.errors import ValidationError

SUBSCRIPTION = {"id": "s1", "source": ["proj", "queues", "orders"]}
PAYLOAD = {
    "body": {"event": "<script>alert(1)</script>", "n": 1},
    "ttl": 300,
    "message_id": "m1",
    "timestamp": "2026-01-01T00:00:00.000Z",
    "queue_name": "orders",
}


def target(subscriber, **options):
    return emails.email_target(subscriber, options)


@pytest.mark.parametrize(
    "subscriber,to",
    [
        ("mailto:a@example.com", ("a@example.com",)),
        ("MAILTO:a@example.com", ("a@example.com",)),
        ("mailto:a@example.com,b@example.com", ("a@example.com", "b@example.com")),
        ("mailto:a@example.com, b@example.com", ("a@example.com", "b@example.com")),
        ("mailto:?to=a@example.com&to=b@example.com", ("a@example.com", "b@example.com")),
        ("mailto:a@example.com?to=a@example.com", ("a@example.com",)),
        ("mailto:a+tag@example.com", ("a+tag@example.com",)),
        ("mailto:a%2Btag@example.com", ("a+tag@example.com",)),
        ("mailto:first.last@sub.example.co.uk", ("first.last@sub.example.co.uk",)),
        ("mailto:ops@localhost", ("ops@localhost",)),
        ("mailto:a@b%C3%BCcher.example", ("a@xn--bcher-kva.example",)),
        ("mailto:j%C3%B6rg@example.com", ("jörg@example.com",)),
    ],
)
def test_recipients_come_from_the_path_and_to_fields_percent_decoded(subscriber, to):
    assert target(subscriber).to == to


def test_query_fields_are_decoded_case_insensitively_and_body_is_the_intro():
    result = target(
        "mailto:a@example.com?SUBJECT=Gr%C3%BC%C3%9Fe%20%2B%201"
        "&Cc=c@example.com,d@example.com&bcc=e@example.com&body=Hi%0Athere"
    )
    assert result.subject == "Grüße + 1"
    assert result.cc == ("c@example.com", "d@example.com")
    assert result.bcc == ("e@example.com",)
    assert result.intro == "Hi\nthere"


def test_options_add_cc_and_bcc_and_the_uri_subject_wins_as_in_zaqar():
    result = target(
        "mailto:a@example.com?subject=From%20URI&cc=c@example.com",
        subject="From options",
        cc=["d@example.com", "c@example.com"],
        bcc="e@example.com,f@example.com",
    )
    assert result.subject == "From URI"
    assert result.cc == ("c@example.com", "d@example.com")
    assert result.bcc == ("e@example.com", "f@example.com")
    assert target("mailto:a@example.com", subject="Opt").subject == "Opt"


@pytest.mark.parametrize("value", [None, "", {}, []])
def test_empty_cc_forms_zaqar_clients_send_are_accepted(value):
    assert target("mailto:a@example.com", cc=value, bcc=value).cc == ()


@pytest.mark.parametrize(
    "subscriber",
    [
        "mailto:",
        "mailto:?subject=nobody",
        "mailto:not-an-address",
        "mailto:a@",
        "mailto:@example.com",
        "mailto:a@example.com%0D%0ABcc:x@evil.example",
        "mailto:a@example.com?subject=Hi%0D%0ABcc:%20x@evil.example",
        "mailto:a@example.com?subject=Hi%0ABcc:%20x@evil.example",
        "mailto:a@example.com?subject=Hi%00",
        "mailto:a@example.com?subject=Hi%E2%80%A8Bcc:%20x@evil.example",
        "mailto:a@example.com?cc=c@example.com%0ABcc:x@evil.example",
        "mailto:a@example.com?body=%07bell",
        "mailto:a@example.com?x-mailer=evil",
        "mailto:a@example.com?subject=a&subject=b",
        "mailto:a@example.com#fragment",
        "mailto:-oQ/tmp/x@example.com",
        "mailto:a b@example.com",
        'mailto:"quoted"@example.com',
        "mailto:a..b@example.com",
        "mailto:a@exa_mple.com",
        "mailto:a@-bad.example",
        "mailto:a@example..com",
        "mailto:a@example.com.",
        "mailto:%FF@example.com",
        "mailto:a%C2%A0b@example.com",
        "mailto:" + "x" * 65 + "@example.com",
        "mailto:" + ",".join(f"u{n}@example.com" for n in range(51)),
    ],
)
def test_bad_or_injecting_subscribers_are_refused_naming_the_subscriber(subscriber):
    with pytest.raises(ValidationError) as error:
        target(subscriber)
    assert error.value.field == "subscriber"


@pytest.mark.parametrize(
    "options,field",
    [
        ({"subject": "Hi\r\nBcc: x@evil.example"}, "options.subject"),
        ({"subject": "Hi\nthere"}, "options.subject"),
        ({"subject": "tab\tinside"}, "options.subject"),
        ({"subject": "nul\x00"}, "options.subject"),
        ({"subject": "line\u2028separator"}, "options.subject"),
        ({"subject": "lone \ud800 surrogate"}, "options.subject"),
        ({"subject": 42}, "options.subject"),
        ({"subject": "x" * 501}, "options.subject"),
        ({"cc": "c@example.com\r\nBcc: x@evil.example"}, "options.cc"),
        ({"cc": {"c@example.com": 1}}, "options.cc"),
        ({"cc": ["c@example.com", 7]}, "options.cc"),
        ({"bcc": ["not an address"]}, "options.bcc"),
        ({"from": "Evil\r\nBcc: x@evil.example <a@example.com>"}, "options.from"),
        ({"from": "not an address"}, "options.from"),
        ({"from": ["a@example.com"]}, "options.from"),
    ],
)
def test_bad_or_injecting_options_are_refused_naming_the_option(options, field):
    with pytest.raises(ValidationError) as error:
        emails.email_target("mailto:a@example.com", options)
    assert error.value.field == field


@pytest.mark.parametrize(
    "value,expected",
    [
        ("a@example.com", ("", "a@example.com")),
        ("Shop Alerts <alerts@shop.example>", ("Shop Alerts", "alerts@shop.example")),
        ('"Shop, Inc." <alerts@shop.example>', ("Shop, Inc.", "alerts@shop.example")),
        ("Jörg <j@bücher.example>", ("Jörg", "j@xn--bcher-kva.example")),
    ],
)
def test_a_mailbox_is_an_address_with_an_optional_display_name(value, expected):
    assert emails.check_mailbox(value, "options.from") == expected


@pytest.mark.parametrize(
    "code,verdict",
    [
        (421, "transient"),
        (450, "transient"),
        (451, "transient"),
        (454, "transient"),
        (500, "permanent"),
        (535, "permanent"),
        (550, "permanent"),
        (554, "permanent"),
        (None, "transient"),
        (-1, "transient"),
    ],
)
def test_smtp_codes_are_classified_4xx_transient_5xx_permanent(code, verdict):
    assert emails.classify_smtp_code(code) == verdict


# -- templates -------------------------------------------------------------------


def rendered_notification(subscriber="mailto:a@example.com?body=Hello", payload=PAYLOAD):
    result = target(subscriber)
    context = emails.notification_context(payload, SUBSCRIPTION, result)
    return emails.EmailTemplates().render("notification", context)


def test_the_packaged_templates_are_found_and_all_load():
    assert emails.load_packaged_template("notification.txt")
    assert emails.load_packaged_template("no-such-template.txt") is None
    emails.EmailTemplates().check()


def test_a_deployers_template_directory_overrides_one_template_and_keeps_the_rest(tmp_path):
    (tmp_path / "notification.subject.txt").write_text("Custom: {{ source_name }}\n")
    templates = emails.EmailTemplates(str(tmp_path))
    assert (
        templates.env.get_template("notification.subject.txt")
        .render(source_name="orders")
        .startswith("Custom: orders")
    )
    templates.check()  # the others still come from the package


def test_the_notification_has_a_subject_a_text_part_and_an_autoescaped_html_part():
    result = rendered_notification()
    assert result.subject == "New message on queue orders"
    assert '"event": "<script>alert(1)</script>"' in result.text
    assert "<script>" not in result.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in result.html
    assert result.text.startswith("Hello\n")
    assert "proj" in result.text and "m1" in result.html


def test_a_body_with_a_lone_surrogate_is_rendered_escaped_not_crashing():
    result = rendered_notification(payload=dict(PAYLOAD, body={"x": "\ud800"}))
    assert '"x": "\\ud800"' in result.text


def test_a_template_dir_overrides_file_by_file_and_must_exist(tmp_path):
    (tmp_path / "notification.txt").write_text("custom {{ source_name }}\n")
    templates = emails.EmailTemplates(str(tmp_path))
    context = emails.notification_context(PAYLOAD, SUBSCRIPTION, target("mailto:a@example.com"))
    result = templates.render("notification", context)
    assert result.text == "custom orders\n"
    assert result.subject == "New message on queue orders"  # packaged
    with pytest.raises(ValueError, match="missing is not a directory"):
        emails.EmailTemplates(str(tmp_path / "missing"))


def test_an_unknown_variable_in_a_template_is_an_error_not_a_blank(tmp_path):
    (tmp_path / "notification.txt").write_text("{{ no_such_thing }}")
    context = emails.notification_context(PAYLOAD, SUBSCRIPTION, target("mailto:a@example.com"))
    with pytest.raises(jinja2.UndefinedError):
        emails.EmailTemplates(str(tmp_path)).render("notification", context)


@pytest.mark.parametrize(
    "kind,subject",
    [
        ("subscription", "Confirm your subscription to topic alerts"),
        ("unsubscribe", "You have unsubscribed from topic alerts"),
    ],
)
def test_confirmation_emails_carry_the_source_project_and_an_escaped_link(kind, subject):
    link = "https://n.example/confirm?a=1&b=<2>"
    result = emails.render_confirmation_email(
        kind,
        {
            "source_kind": "topic",
            "source_name": "alerts",
            "project": "proj",
            "confirmation_link": link,
        },
    )
    assert result.subject == subject
    assert link in result.text and "proj" in result.text
    assert 'href="https://n.example/confirm?a=1&amp;b=&lt;2&gt;"' in result.html


def test_a_subscription_confirmation_email_carries_the_portal_link_only_when_given():
    context = {"source_name": "q", "project": "p", "confirmation_link": "https://n.example/c"}
    portal = "https://n.example/portal/queues/q/s1?project=p&expires=x&signature=y"

    plain = emails.render_confirmation_email("subscription", context)
    with_link = emails.render_confirmation_email("subscription", dict(context, portal_link=portal))

    assert "portal" not in plain.text and "portal" not in (plain.html or "")
    assert portal in with_link.text
    assert f'href="{portal.replace("&", "&amp;")}"' in (with_link.html or "")


def test_a_zaqar_template_dict_makes_a_plain_text_confirmation():
    result = emails.render_confirmation_email(
        "subscription",
        {"source_name": "q", "project": "p", "confirmation_link": "L"},
        zaqar_template={
            "topic": "Confirm",
            "body": "{0} of {1}: {2}",
            "sender": "Zaqar <no-reply@openstack.org>",
        },
    )
    assert (result.subject, result.text, result.html) == ("Confirm", "q of p: L", None)
    assert result.sender == "Zaqar <no-reply@openstack.org>"
    with pytest.raises(ValueError, match="kind must be one of"):
        emails.render_confirmation_email("resubscribe", {})


# -- building --------------------------------------------------------------------


def build(
    subscriber="mailto:a@example.com?cc=c@example.com",
    options=None,
    smtp_from="Notifier <notifier@example.net>",
):
    result = emails.email_target(subscriber, options or {"bcc": ["b@example.com"]})
    return emails.build_email(
        result, rendered_notification(subscriber), smtp_from, "msg_m1_s1", 1767225600
    )


def parsed(data):
    return email.message_from_bytes(data, policy=email.policy.default)


def test_the_built_email_has_headers_recipients_and_no_bcc_header():
    mail = build()
    message = parsed(mail.as_bytes())
    assert mail.sender == "notifier@example.net"
    assert mail.recipients == ("a@example.com", "c@example.com", "b@example.com")
    assert message["From"] == "Notifier <notifier@example.net>"
    assert (message["To"], message["Cc"]) == ("a@example.com", "c@example.com")
    assert "Bcc" not in message and "Sender" not in message
    assert message["Message-ID"] == "<msg_m1_s1@example.net>"
    assert message["Date"] == "Thu, 01 Jan 2026 00:00:00 +0000"
    assert message["Auto-Submitted"] == "auto-generated"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]


def test_for_sendmail_t_the_bcc_header_is_included_with_local_line_endings():
    data = build().as_bytes(linesep="\n", include_bcc=True)
    assert parsed(data)["Bcc"] == "b@example.com"
    assert b"\r\n" not in data
    assert b"\r\n" in build().as_bytes()


def test_a_from_option_gets_smtp_from_as_sender_and_as_envelope():
    mail = build(options={"from": "Shop <alerts@shop.example>"})
    message = parsed(mail.as_bytes())
    assert mail.sender == "notifier@example.net"
    assert message["From"] == "Shop <alerts@shop.example>"
    assert message["Sender"] == "Notifier <notifier@example.net>"


def test_non_ascii_subject_and_body_are_encoded_for_a_7bit_relay():
    mail = build(
        "mailto:a@example.com?subject=Gr%C3%BC%C3%9Fe%20%E2%9C%93",
        options={"from": "Jörg <j@example.com>"},
    )
    data = mail.as_bytes()
    assert not mail.smtputf8 and data.isascii()
    message = parsed(data)
    assert message["Subject"] == "Grüße ✓"
    assert message["From"] == "Jörg <j@example.com>"


def test_a_non_ascii_address_needs_smtputf8_and_is_sent_as_utf8():
    mail = build("mailto:j%C3%B6rg@example.com")
    assert mail.smtputf8
    assert "To: jörg@example.com".encode() in mail.as_bytes()
    assert "jörg@example.com" in parsed(mail.as_bytes()).get_body(("plain",)).get_content()
