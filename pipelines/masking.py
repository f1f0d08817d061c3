"""Hiding secrets wherever the library shows data to people: the dashboard, the admin,
command output (tables and ``--json``), errors, tracebacks and log records.

Masking is for display; what is stored is never changed. Two rules, applied together:

* **By key.** A value whose object key names a secret is replaced whole. Keys are split
  into words (``apiKey``, ``API_KEY``, ``x-api-key`` are all ``api key``) and matched on
  word boundaries, so ``footprint``, ``hotplate``, ``compass``, ``passenger`` and ``spin``
  stay visible while ``pwd``, ``auth``, ``stripe_key``, ``jwt``, ``cvv`` and
  ``card_number`` are hidden. Header lists (``[["Authorization", "Bearer ..."]]``) and
  name/value objects (``{"name": "X-Api-Key", "value": ...}``) are matched by their name.
* **By shape, inside any text** (string values, errors, tracebacks, log messages): bearer
  and basic credentials, the password of ``user:password@`` in URLs, well-known API-key
  prefixes (Stripe, GitHub, Slack, AWS, Google, OpenAI, ...), JWTs, PEM private keys, and
  ``key=value`` / ``"key": "value"`` pairs whose key names a secret.

``PIPELINES_MASKED_KEYS`` adds key names (matched as words, like the defaults) and
``PIPELINES_MASKED_PATTERNS`` adds regular expressions for text; a pattern with a group
named ``secret`` masks only that group.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

MASK = "••••••"


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words that make a key secret wherever they appear in it (Sentry's default denylist and
# Django's SafeExceptionReporterFilter, on word boundaries instead of substrings).
SECRET_WORDS = _words(
    "password passwd passphrase passcode pwd pass secret secrets credential credentials "
    "auth authorization cookie cookies jwt bearer cvv cvv2 cvc csc otp totp csrf xsrf "
    "sessionid apikey privatekey secretkey accesskey dsn ssn"
)
# Words that make a key secret when they end it: ``access_token`` but not ``token_count``
# or ``max_tokens``; ``card_pin`` but not ``pin_color``.
SECRET_LAST_WORDS = _words("token pin signature session sid")
# A single word ending like this is secret too: ``accesstoken``, ``dbpassword``.
SECRET_SUFFIXES = ("password", "passwd", "secret", "token", "apikey", "privatekey", "secretkey")
# Word sequences that make a key secret wherever they appear.
SECRET_PHRASES = (
    ("api", "key"),
    ("private", "key"),
    ("access", "key"),
    ("session", "id"),
    ("card", "number"),
    ("card", "no"),
    ("credit", "card"),
    ("cc", "number"),
    ("pin", "code"),
    ("security", "code"),
    ("connect", "sid"),
)
# ``<something>_key`` is secret (``stripe_key``, ``signing_key``) unless the word before
# ``key`` says it is an identifier.
HARMLESS_KEY_QUALIFIERS = _words(
    "idempotency sort primary foreign cache partition routing lookup object public dedup "
    "dedupe group index unique natural composite shard row range hash lock join order "
    "entry item message event field column dict map node bucket s3 translation i18n "
    "registry redis storage file path"
)

_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def key_words(key: str) -> tuple[str, ...]:
    """``"X-Api-Key"`` -> ``("x", "api", "key")``; ``"cardNumber2"`` -> ``("card",
    "number", "2")``."""
    return tuple(word.lower() for word in _WORD.findall(key))


def _has_phrase(words: tuple[str, ...], phrase: tuple[str, ...]) -> bool:
    n = len(phrase)
    return any(words[i : i + n] == phrase for i in range(len(words) - n + 1))


@dataclass(frozen=True)
class _Rules:
    extra_phrases: tuple[tuple[str, ...], ...]
    extra_key_regexes: tuple[re.Pattern[str], ...]
    text_patterns: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...]


def _secret_words(words: tuple[str, ...]) -> bool:
    if not words:
        return False
    if any(w in SECRET_WORDS for w in words) or words[-1] in SECRET_LAST_WORDS:
        return True
    if len(words) == 1 and words[0].endswith(SECRET_SUFFIXES):
        return True
    if words[-1] == "key" and len(words) > 1 and words[-2] not in HARMLESS_KEY_QUALIFIERS:
        return True
    return any(_has_phrase(words, phrase) for phrase in SECRET_PHRASES)


@lru_cache(maxsize=4096)
def _is_secret_key(key: str, rules: _Rules) -> bool:
    words = key_words(key)
    if _secret_words(words) or any(_has_phrase(words, p) for p in rules.extra_phrases):
        return True
    return any(regex.search(key) for regex in rules.extra_key_regexes)


def is_secret(key: object) -> bool:
    """Whether values under this key are hidden."""
    return isinstance(key, str) and _is_secret_key(key, _rules())


# --- shapes inside text ---------------------------------------------------------------------


def _masked_group(match: re.Match[str]) -> str:
    """The match with its ``secret`` group (or all of it) replaced by the mask."""
    if "secret" not in match.re.groupindex or match.start("secret") < 0:
        return MASK
    start, end = match.start("secret") - match.start(), match.end("secret") - match.start()
    whole = match.group(0)
    return whole[:start] + MASK + whole[end:]


def _looks_like_credential(text: str) -> bool:
    """Tells ``Basic dXNlcjpw`` from ``Basic validation failed``."""
    return len(text) >= 8 and (
        any(c.isdigit() for c in text)
        or (any(c.islower() for c in text) and any(c.isupper() for c in text))
        or any(c in "+/=._-~" for c in text)
    )


def _scheme(match: re.Match[str]) -> str:
    if match.group("scheme").lower() != "bearer" and not _looks_like_credential(
        match.group("secret")
    ):
        return match.group(0)
    return _masked_group(match)


def _pair(match: re.Match[str]) -> str:
    if not is_secret(match.group("key")) or match.group("secret").lower() in _SCHEMES:
        return match.group(0)  # ``Authorization: Bearer ...``: the scheme rule masked it
    return _masked_group(match)


_SCHEMES = frozenset(["bearer", "basic", "token", "digest", "bot", "apikey", "negotiate"])
URL_PASSWORD = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/?#@\[\]]*:(?P<secret>[^\s/?#@]+)@")
AUTH_SCHEME = re.compile(
    r"\b(?P<scheme>[Bb]earer|BEARER|Basic|Token|Digest|Bot|ApiKey|Negotiate)"
    r"\s+(?P<secret>[A-Za-z0-9\-._~+/=:]{6,})"
)
API_KEY_PREFIXES = re.compile(
    r"\b(?:"
    r"(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9_]+|whsec_[A-Za-z0-9_]+"  # Stripe
    r"|sk-(?:proj-|ant-)?[A-Za-z0-9_\-]{16,}"  # OpenAI, Anthropic
    r"|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"  # GitHub
    r"|glpat-[A-Za-z0-9_\-]{20,}"  # GitLab
    r"|xox[abposr]-[A-Za-z0-9\-]{10,}|xapp-[A-Za-z0-9\-]{10,}"  # Slack
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"  # AWS access key ids
    r"|AIza[0-9A-Za-z_\-]{35}|ya29\.[0-9A-Za-z_\-]+"  # Google
    r"|SG\.[A-Za-z0-9_\-]{16,}\.[A-Za-z0-9_\-]{16,}"  # SendGrid
    r"|npm_[A-Za-z0-9]{36}|pypi-[A-Za-z0-9_\-]{50,}|hf_[A-Za-z0-9]{30,}"
    r"|shp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}|dop_v1_[a-f0-9]{64}"
    r"|eyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*"  # JWT
    r")"
)
PRIVATE_KEY_BLOCK = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.S
)
# ``password=x``, ``"api_key": "x"``, ``'token': 'x'``, ``Authorization: x``; the key is
# judged by :func:`is_secret`.
QUOTED_PAIR = re.compile(
    r"""(?P<key>[A-Za-z_][A-Za-z0-9_.\-]*)["']?\s*[:=]\s*b?(?P<q>["'])(?P<secret>[^"'\n]*)(?P=q)"""
)
# ``["X-Api-Key", "x"]`` / ``('Authorization', 'x')``: a header pair written out (a repr
# in a log message); the name is judged by :func:`is_secret`.
QUOTED_LIST_PAIR = re.compile(
    r"""[\[(]\s*["'](?P<key>[A-Za-z_][A-Za-z0-9_.\-]*)["']\s*,\s*(?P<q>["'])(?P<secret>[^"'\n]*)(?P=q)\s*[\])]"""
)
# ``{"name": "Cookie", "value": "x"}`` written out (HAR-style headers).
NAME_VALUE_PAIR = re.compile(
    r"""["'](?:name|key|header)["']\s*:\s*["'](?P<key>[^"'\n]+)["']\s*,\s*["']value["']\s*:\s*(?P<q>["'])(?P<secret>[^"'\n]*)(?P=q)"""
)
BARE_PAIR = re.compile(
    r"""(?P<key>[A-Za-z_][A-Za-z0-9_.\-]*)["']?[ \t]*[:=](?!//)[ \t]*(?P<secret>[^\s"',;&)}\]]+)"""
)

BUILT_IN_TEXT_PATTERNS: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    (PRIVATE_KEY_BLOCK, _masked_group),
    (URL_PASSWORD, _masked_group),
    (AUTH_SCHEME, _scheme),
    (API_KEY_PREFIXES, _masked_group),
    (QUOTED_PAIR, _pair),
    (QUOTED_LIST_PAIR, _pair),
    (NAME_VALUE_PAIR, _pair),
    (BARE_PAIR, _pair),
)


def mask_text(text: str) -> str:
    """``text`` with every credential shape it contains replaced by the mask."""
    if not text:
        return text
    for pattern, replace in _rules().text_patterns:
        text = pattern.sub(replace, text)
    return text


# --- JSON values ---------------------------------------------------------------------------

_PAIR_NAME_FIELDS = ("name", "key", "header", "field")


def _is_pair_list(value: list[Any]) -> bool:
    return bool(value) and all(
        isinstance(item, list) and len(item) == 2 and isinstance(item[0], str) for item in value
    )


def mask(value: Any) -> Any:
    """A copy of the JSON ``value`` with secrets masked at any depth: values of secret
    keys, the values of secret-named pairs, and credential shapes inside strings."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        named = next((value[f] for f in _PAIR_NAME_FIELDS if isinstance(value.get(f), str)), "")
        hide_value = "value" in value and is_secret(named)
        return {
            k: MASK if is_secret(k) or (hide_value and k == "value") else mask(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        if _is_pair_list(value):
            return [[k, MASK if is_secret(k) else mask(v)] for k, v in value]
        return [mask(v) for v in value]
    return value


def mask_entry(key: str, value: Any) -> Any:
    """The value to show for context key ``key``."""
    return MASK if is_secret(key) else mask(value)


# --- configuration -------------------------------------------------------------------------


def _setting_list(name: str) -> list[Any]:
    value = getattr(settings, name, None) or []
    return [value] if isinstance(value, str | re.Pattern) else list(value)


def _extra_keys(entries: Iterable[Any]) -> tuple[list[tuple[str, ...]], list[re.Pattern[str]]]:
    """Plain names are matched as words; a compiled regex, or a string written as one
    (``^...``, ``...$``, ``(...)``) is searched in the key."""
    phrases, regexes = [], []
    for entry in entries:
        if isinstance(entry, re.Pattern):
            regexes.append(entry)
        elif re.search(r"[\\^$()\[\]|*+?]", entry):
            regexes.append(re.compile(entry, re.IGNORECASE))
        elif key_words(entry):
            phrases.append(key_words(entry))
    return phrases, regexes


@cache
def _rules() -> _Rules:
    phrases, regexes = _extra_keys(_setting_list("PIPELINES_MASKED_KEYS"))
    extra = tuple(
        (p if isinstance(p, re.Pattern) else re.compile(p), _masked_group)
        for p in _setting_list("PIPELINES_MASKED_PATTERNS")
    )
    return _Rules(tuple(phrases), tuple(regexes), BUILT_IN_TEXT_PATTERNS + extra)


@receiver(setting_changed)
def _forget_rules(setting: str = "", **kwargs: object) -> None:
    if setting.startswith("PIPELINES_MASKED_"):
        _rules.cache_clear()
