"""The masking rules, shape by shape: which keys are secret, which text shapes are hidden,
what stays visible, and the settings that extend them."""

from __future__ import annotations

import logging
import sys

import pytest

from pipelines.logs import MaskingFilter
from pipelines.masking import MASK, is_secret, key_words, mask, mask_entry, mask_text

SECRET_KEYS = [
    "password",
    "Password",
    "PASSWORD",
    "db_password",
    "dbPassword",
    "dbpassword",
    "passwd",
    "pwd",
    "mysql_pwd",
    "passphrase",
    "secret",
    "client_secret",
    "auth",
    "Authorization",
    "HTTP_AUTHORIZATION",
    "proxy-authorization",
    "token",
    "api_token",
    "accessToken",
    "refresh_token",
    "csrftoken",
    "api_key",
    "apiKey",
    "APIKey",
    "x-api-key",
    "X_API_KEY",
    "apikey",
    "stripe_key",
    "signing_key",
    "private_key",
    "privateKey",
    "aws_access_key_id",
    "jwt",
    "cvv",
    "cvc",
    "card_number",
    "cardNumber",
    "credit_card",
    "pin",
    "card_pin",
    "pin_code",
    "otp",
    "cookie",
    "set-cookie",
    "sessionid",
    "session_id",
    "user_session",
    "connect.sid",
    "credentials",
    "signature",
    "dsn",
    "sentry_dsn",
]
# Harmless keys that substring scrubbers hide (otp, pass, pin, token, key, auth).
HARMLESS_KEYS = [
    "footprint",
    "hotplate",
    "compass",
    "passenger",
    "spin",
    "pinned",
    "author",
    "authored_at",
    "token_count",
    "max_tokens",
    "tokens",
    "keyboard",
    "monkey",
    "key",
    "idempotency_key",
    "sort_key",
    "public_key",
    "cache_key",
    "secretary",
    "session_length",
    "customer_id",
    "bypass_cache",
]


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_secret_keys(key: str) -> None:
    assert is_secret(key), key_words(key)
    assert mask({key: "v", "other": 1}) == {key: MASK, "other": 1}


@pytest.mark.parametrize("key", HARMLESS_KEYS)
def test_harmless_keys_stay_visible(key: str) -> None:
    assert not is_secret(key), key_words(key)
    assert mask({key: "v"}) == {key: "v"}


def test_key_words_split_on_case_separators_and_digits() -> None:
    assert key_words("X-Api-Key") == ("x", "api", "key")
    assert key_words("HTTPAuthorization") == ("http", "authorization")
    assert key_words("cardNumber2") == ("card", "number", "2")
    assert key_words("connect.sid") == ("connect", "sid")


# shape -> (text, what must remain visible)
TEXT_SHAPES = {
    "bearer token": ("Authorization: Bearer abc.DEF-123_x", "Authorization: Bearer " + MASK),
    "lowercase bearer": ("sent bearer abcdef12", "sent bearer " + MASK),
    "basic credentials": ("Basic dXNlcjpwYXNz", "Basic " + MASK),
    "URL password": (
        "could not connect to postgres://app:s3cret@db:5432/app",
        "could not connect to postgres://app:" + MASK + "@db:5432/app",
    ),
    "URL password, no user": (
        "redis://:hunter2@cache:6379/0",
        "redis://:" + MASK + "@cache:6379/0",
    ),
    "Stripe key": ("password sk_live_EXC_SECRET", "password " + MASK),
    "Stripe test key": ("key rk_test_51Hx", "key " + MASK),
    "GitHub token": ("ghp_0123456789abcdefghijABCDEFGHIJ", MASK),
    "Slack token": ("xoxb-1234-5678-abcdefghij", MASK),
    "AWS access key id": ("id AKIAIOSFODNN7EXAMPLE ok", "id " + MASK + " ok"),
    "Google API key": ("AIza" + "S" * 35, MASK),
    "OpenAI key": ("sk-proj-abcdefghijklmnop1234", MASK),
    "JWT": ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig_nature", MASK),
    "PEM private key": (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----",
        MASK,
    ),
    "key=value": ("login with password=hunter2 failed", "login with password=" + MASK + " failed"),
    "query parameter": ("GET /v1?api_key=abc123&page=2", "GET /v1?api_key=" + MASK + "&page=2"),
    "JSON pair": ('{"token": "abc", "n": 1}', '{"token": "' + MASK + '", "n": 1}'),
    "repr pair": ("{'card_number': '4242'}", "{'card_number': '" + MASK + "'}"),
    "header line": ("X-Api-Key: k-123", "X-Api-Key: " + MASK),
    "header pair repr": ("[('Authorization', 'xyz')]", "[('Authorization', '" + MASK + "')]"),
    "name/value repr": (
        "{'name': 'Cookie', 'value': 'a=1; b=2'}",
        "{'name': 'Cookie', 'value': '" + MASK + "'}",
    ),
}
PROSE = [
    "Basic validation failed",
    "the token expired",
    "Token expired at noon",
    "the passenger boarded; compass heading 270",
    "footprint: 12 kB, hotplate: on, spin: 3",
    "https://example.com/path?page=2&sort=name",
    "ValueError: context['password'] is already set",
    "sk_live",
]


@pytest.mark.parametrize("shape", TEXT_SHAPES)
def test_credential_shapes_in_text(shape: str) -> None:
    text, shown = TEXT_SHAPES[shape]
    assert mask_text(text) == shown
    assert mask({"note": text}) == {"note": shown}  # inside values too


@pytest.mark.parametrize("text", PROSE)
def test_prose_stays_visible(text: str) -> None:
    assert mask_text(text) == text


def test_structures() -> None:
    value = {
        "headers": [["Authorization", "Bearer x"], ["X-Api-Key", "k"], ["Accept", "json"]],
        "har": [{"name": "Cookie", "value": "id=1"}, {"name": "Accept", "value": "json"}],
        "fields": ["password", "username"],  # a list of names is not a pair list
        "nested": [{"deep": {"secret": {"whole": "object"}}}],
    }
    assert mask(value) == {
        "headers": [["Authorization", MASK], ["X-Api-Key", MASK], ["Accept", "json"]],
        "har": [{"name": "Cookie", "value": MASK}, {"name": "Accept", "value": "json"}],
        "fields": ["password", "username"],
        "nested": [{"deep": {"secret": MASK}}],
    }
    assert mask_entry("password", {"anything": 1}) == MASK
    assert mask_entry("notes", "Bearer abcdefgh1") == "Bearer " + MASK
    original = {"password": "x"}
    mask(original)
    assert original == {"password": "x"}  # display copies; the value is untouched


def test_extra_keys_and_patterns_are_added_to_the_defaults(settings) -> None:
    settings.PIPELINES_MASKED_KEYS = ["customer ref", r"^internal_"]
    settings.PIPELINES_MASKED_PATTERNS = [r"ORDER-\d+", r"ticket (?P<secret>\w+)"]
    assert mask({"customerRef": 1, "internal_note": 2, "customer": 3, "password": 4}) == {
        "customerRef": MASK,
        "internal_note": MASK,
        "customer": 3,
        "password": MASK,
    }
    assert mask_text("see ORDER-42 and ticket T77") == f"see {MASK} and ticket {MASK}"


def test_log_records_are_masked_message_arguments_and_traceback() -> None:
    try:
        raise RuntimeError("could not log in with token=abc123")
    except RuntimeError:
        record = logging.LogRecord(
            "pipelines.step.X", logging.ERROR, __file__, 1, "with %s", ("Bearer abcdefgh1",), None
        )
        record.exc_info = sys.exc_info()
    assert MaskingFilter().filter(record)
    formatted = logging.Formatter().format(record)
    assert "abcdefgh1" not in formatted
    assert "abc123" not in formatted
    assert "token=" + MASK in formatted
    assert "Traceback" in formatted


def test_the_library_loggers_mask_before_any_handler(caplog) -> None:
    caplog.set_level(logging.INFO, logger="pipelines")
    logging.getLogger("pipelines.engine.anything").info("dsn %s", "postgres://u:pw1@db/x")
    logging.getLogger("pipelines.step.Charge").info("card %r", {"card_number": "4242"})
    assert "pw1" not in caplog.text
    assert "4242" not in caplog.text
    assert "postgres://u:" + MASK + "@db/x" in caplog.text
