"""Scrubbing secrets out of what destinations answer (pure function)."""

from __future__ import annotations

from osmos.outbound.scrub import REDACTED, scrub


def test_the_destination_secret_values_are_removed_wherever_they_appear():
    text = 'echo: Bearer abc123xyz and later abc123xyz and {"k": "Bearer abc123xyz"}'

    cleaned = scrub(text, ["Bearer abc123xyz"])

    assert "abc123xyz" not in cleaned


def test_a_secret_echoed_json_escaped_is_removed():
    assert "p/ss" not in scrub('{"v": "tok\\"en/p\\/ss"}', ['tok"en/p/ss']).replace(REDACTED, "")
    assert scrub('{"v": "tok\\"en-1234"}', ['tok"en-1234']) == '{"v": "[redacted]"}'


def test_short_values_are_not_treated_as_secrets():
    assert scrub("version 2 of 2", ["2"]) == "version 2 of 2"


def test_credential_header_lines_echoed_back_are_removed():
    text = "Authorization: Basic Zm9vOmJhcg==\nCookie: sid=1\nX-Api-Key: k-1\nAccept: */*"

    cleaned = scrub(text)

    assert cleaned.splitlines() == [
        f"Authorization: {REDACTED}",
        f"Cookie: {REDACTED}",
        f"X-Api-Key: {REDACTED}",
        "Accept: */*",
    ]


def test_credential_members_of_json_and_parameters_are_removed():
    text = '{"headers": {"Proxy-Authorization": "Basic eA==", "Set-Cookie": "a=b"}} ?api_key=zz9'

    cleaned = scrub(text)

    assert "eA==" not in cleaned
    assert "a=b" not in cleaned
    assert "zz9" not in cleaned
    assert '"Proxy-Authorization": "[redacted]"' in cleaned


def test_text_without_secrets_is_unchanged():
    text = '{"rejected": [{"index": 3, "reason": "email is invalid"}]}'

    assert scrub(text, ["Bearer unrelated-1"]) == text
