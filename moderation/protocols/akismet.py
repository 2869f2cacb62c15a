"""Akismet's protocol, without I/O: its form fields as a Submission, a decision as its answer.

Akismet answers `true`/`false` (spam or not) as text, with `X-akismet-pro-tip: discard` for
blatant spam and an `X-akismet-debug-help` header that explains an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import marshmallow as ma

from moderation.errors import flatten_fields
from moderation.records import Submission
from moderation.schemas import CommentSubmissionSchema
from moderation.settings import PolicySettings

THANKS = "Thanks for making the web a better place."
DEBUG_HEADER = "X-akismet-debug-help"
PRO_TIP_HEADER = "X-akismet-pro-tip"

#: Akismet's parameter for each field of a submission's author and context.
AUTHOR_FIELDS = {
    "comment_author": "name",
    "comment_author_email": "email",
    "comment_author_url": "url",
    "user_ip": "ip",
    "user_agent": "user_agent",
}
CONTEXT_FIELDS = {"permalink": "permalink"}
#: A submission's field names (as validation errors name them) back to Akismet's.
AKISMET_NAMES = {
    "content": "comment_content",
    "honeypot": "honeypot_field_name",
    **{f"author.{ours}": theirs for theirs, ours in AUTHOR_FIELDS.items()},
    **{f"context.{ours}": theirs for theirs, ours in CONTEXT_FIELDS.items()},
}
#: Parameters with a meaning of their own: never the honeypot's value.
PARAMETERS = frozenset(
    {"api_key", "key", "blog", "blog_lang", "comment_content", "comment_type", "is_test"}
    | {"user_role"}
    | AUTHOR_FIELDS.keys()
    | CONTEXT_FIELDS.keys()
)


class AkismetError(Exception):
    """An answer in Akismet's error style: a short text body and the debug-help header."""

    def __init__(
        self, body: str, debug: str, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(body)
        self.body = body
        self.debug = debug
        self.status = status
        self.headers = dict(headers or {})


@dataclass(frozen=True)
class Verdict:
    spam: bool
    discard: bool = False
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def body(self) -> str:
        return "true" if self.spam else "false"


def is_set(value: str | None) -> bool:
    """Akismet's flags (`is_test=1`): anything but empty, 0 or false."""
    return (value or "").strip().lower() not in ("", "0", "false", "no", "off")


def is_administrator(form: Mapping[str, str]) -> bool:
    return form.get("user_role", "").strip().lower() == "administrator"


def require(form: Mapping[str, str], *names: str) -> None:
    """Akismet's `Missing required field: user_ip.` for the first name that is empty."""
    for name in names:
        if not form.get(name, "").strip():
            raise AkismetError(f"Missing required field: {name}.", f'Empty "{name}" value')


def honeypot_value(form: Mapping[str, str]) -> str:
    """The value of the field `honeypot_field_name` names (empty when it names none)."""
    name = form.get("honeypot_field_name", "")
    return form.get(name, "") if name and name not in PARAMETERS else ""


def submission_from(form: Mapping[str, str]) -> Submission:
    """The form as a submission, validated like `POST /v1/comments` (AkismetError if not)."""
    author = {ours: form[theirs] for theirs, ours in AUTHOR_FIELDS.items() if form.get(theirs)}
    context = {ours: form[theirs] for theirs, ours in CONTEXT_FIELDS.items() if form.get(theirs)}
    # `blog_lang` lists the site's languages ("en, fr_ca"): the first is a hint for detection.
    site_language = form.get("blog_lang", "").split(",")[0].strip()
    if site_language:
        context["language"] = site_language[:35]
    body = {
        "id": "akismet",  # check_now gives every check an id of its own
        "content": form.get("comment_content", ""),
        "author": author,
        "context": context,
        "honeypot": honeypot_value(form),
    }
    try:
        loaded = CommentSubmissionSchema().load(body)
    except ma.ValidationError as error:
        problems = flatten_fields(error.messages)
        names = sorted(AKISMET_NAMES.get(name, name) for name in problems)
        details = "; ".join(
            f"{AKISMET_NAMES.get(name, name)}: {' '.join(messages)}"
            for name, messages in sorted(problems.items())
        )
        raise AkismetError(f"Invalid field: {', '.join(names)}.", details) from None
    return Submission(
        id=loaded["id"],
        content=loaded["content"],
        author=loaded.get("author", {}),
        context=loaded.get("context", {}),
        honeypot=loaded.get("honeypot", ""),
    )


def verdict(scores: Mapping[str, float], policy: PolicySettings, honeypot_filled: bool) -> Verdict:
    """Spam when the spam score reaches the site's hold threshold or the honeypot is filled;
    blatant ("discard") past the reject threshold, or with the honeypot filled."""
    score = scores.get("spam", 0.0)
    hold, reject = policy.hold.get("spam"), policy.reject.get("spam")
    discard = honeypot_filled or (reject is not None and score >= reject)
    spam = discard or (hold is not None and score >= hold)
    return Verdict(spam, discard, {PRO_TIP_HEADER: "discard"} if discard else {})
