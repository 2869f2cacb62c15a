"""Hostile input for the fuzz tests: strings, numbers and JSON that break naive servers.

Strings mix NUL and other control characters, lone surrogates, bidi controls, zero-width
characters and up to 20,000 emoji; number tokens include 1e400, 10**400 and 5,000 digits;
`encode` writes lone surrogates as `\\udXXX` escapes and `Token`s verbatim, so bodies can be
what no Python JSON encoder would send. `strict_json` reads an answer as a strict client does.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import hypothesis
from hypothesis import HealthCheck
from hypothesis import strategies as st

from moderation.core.settings import Settings

#: `FUZZ_SCALE=20 pytest tests/test_fuzz_schemas.py -o timeout=0` runs 20 times the examples.
SCALE = int(os.environ.get("FUZZ_SCALE", "1"))
#: The same cases every run (derandomized, no example database), and no time limit per case.
BOUNDED = hypothesis.settings(
    max_examples=60 * SCALE,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)

NASTY = [
    "\x00",
    "\x1b[31m",
    "\r\n",
    "\ud800",  # lone surrogates
    "\udfff",
    "\u202e",  # right-to-left override
    "\u2066",  # left-to-right isolate
    "\u2069",
    "\u200b",  # zero-width space
    "\u200d",
    "\ufeff",
    "\uffff",
    "\U0010ffff",
    "😀",
    "👩‍👩‍👧",
    "e\u0301",
    "'",
    '"',
    "\\",
    "%00",
    "%2F",
    "/",
    ".",
    "..",
    "?",
    "#",
    "+",
    " ",
    "<script>",
    "${x}",
]
LONG = [
    "😀" * 20_000,  # the longest content allowed, in 4-byte characters
    "😀" * 20_001,
    "\u202e" * 20_000,
    "x" * 128,  # the longest id allowed
    "x" * 129,
    "🙂" * 128,
    "a/" * 64,
    "\x00" * 1000,
]
#: Number tokens Python's JSON reader accepts and JSON itself does not all allow.
NUMBER_TOKENS = [
    "1e400",
    "-1e400",
    "1" + "0" * 400,  # 10**400
    "9" * 5000,  # longer than Python converts
    "-0",
    "-0.0",
    "NaN",
    "Infinity",
    "-Infinity",
    "1e-400",
    "0.30000000000000004",
]

hostile_text = st.one_of(
    st.lists(st.one_of(st.sampled_from(NASTY), st.text(max_size=4)), max_size=10).map("".join),
    st.sampled_from(LONG),
    st.sampled_from(NASTY),
)
#: Hostile but valid where text may be anything storable: no lone surrogates.
storable_text = hostile_text.filter(lambda text: not any("\ud800" <= c <= "\udfff" for c in text))
#: ... and where ids may be: no control characters either, 1-128 characters.
printable = st.characters(blacklist_categories=("Cs", "Cc"))
PRINTABLE_NASTY = [n for n in NASTY if n.isprintable() or n in ("\u200b", "\u200d", "\ufeff")]
valid_ids = st.one_of(
    st.lists(st.one_of(st.sampled_from(PRINTABLE_NASTY), st.text(printable, max_size=4)))
    .map("".join)
    .filter(lambda text: 1 <= len(text) <= 128),
    st.sampled_from(["🙂" * 128, "x" * 128, "a/b", "x/", "a//b", "a/../b", "%2F", "\u202eevil"]),
)


@dataclasses.dataclass(frozen=True)
class Token:
    """A raw JSON token, written into the body as is."""

    text: str


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    hostile_text,
    st.sampled_from(NUMBER_TOKENS).map(Token),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3),
    max_leaves=6,
)


def encode(body: Any) -> bytes:
    """Raw JSON: lone surrogates as `\\udXXX` escapes, `Token`s verbatim."""
    tokens: list[str] = []

    def placeholders(value: Any) -> Any:
        if isinstance(value, Token):
            tokens.append(value.text)
            return f"__token_{len(tokens) - 1}__"
        if isinstance(value, dict):
            return {key: placeholders(item) for key, item in value.items()}
        if isinstance(value, list):
            return [placeholders(item) for item in value]
        return value

    text = json.dumps(placeholders(body))  # ensure_ascii: every non-ASCII character escaped
    for number, token in enumerate(tokens):
        text = text.replace(f'"__token_{number}__"', token)
    return text.encode()


def plain(value: Any) -> Any:
    """What Python's JSON reader makes of `value` (Tokens read back as numbers); None when it
    cannot read it (a number over 4300 digits)."""
    try:
        return json.loads(encode(value))
    except ValueError:
        return None


def utf8(value: Any) -> None:
    """Every string in `value` (keys too) is valid Unicode."""
    if isinstance(value, str):
        value.encode("utf-8")
    elif isinstance(value, dict):
        for key, item in value.items():
            utf8(key)
            utf8(item)
    elif isinstance(value, list):
        for item in value:
            utf8(item)


def strict_json(response) -> Any:
    """The body as a strict reader sees it: UTF-8, no NaN, no lone surrogates."""

    def refuse(token: str) -> None:
        raise AssertionError(f"{token} in the response")

    document = json.loads(response.get_data().decode("utf-8"), parse_constant=refuse)
    utf8(document)
    return document


def without_rate_limits(settings: Settings, **overrides: Any) -> Settings:
    """`settings` with every rate limit off, so that each fuzzed request reaches its handler
    (tests/test_ratelimit.py covers the limits)."""
    limits = [f.name for f in dataclasses.fields(settings) if f.name.endswith("limit")]
    return settings.with_overrides(**dict.fromkeys(limits), **overrides)
