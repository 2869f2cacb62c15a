"""Coral Talk's External Moderation Phase, without I/O: its request as a Submission, its
signature checked, a decision as its answer.

What Coral sends and expects, read from `coralproject/talk` (v9.11.8):

- `server/src/core/server/services/comments/pipeline/phases/external.ts` builds the request
  (`ExternalModerationRequest`): `action` (`NEW` or `EDIT`), `comment.body` (the comment's HTML,
  or its plain text when the phase's format is "Plain Text"; HTML is the default),
  `comment.parentID` (null for a top-level comment), `author.id`, `author.role` (COMMENTER,
  MEMBER, STAFF, MODERATOR, ADMIN), `story.id`, `story.url`, `site.id`, `tenantID`,
  `tenantDomain`.
- `server/src/core/server/services/fetch/fetch.ts` (`generateFetchOptions`, `createFetch`)
  sends it as `POST` with the body `JSON.stringify(request, null, 2)` (pretty-printed, two
  spaces), `Content-Type: application/json`, `User-Agent: Coral Moderation/<version>` and
  `X-Coral-Signature`, aborting after the phase's timeout (200 ms by default in the admin
  form; 100 to 10,000 ms allowed, `services/tenant/externalModerationPhases.ts`).
- `server/src/core/server/models/settings/signingSecret/helpers.ts` (`generateSignatures`):
  the header is `sha256=<hex>` for every active secret (HMAC-SHA256 of the exact body bytes
  under the secret string), joined with `,`. A rotated secret stays active until its
  `inactiveAt`, so during a rotation the header carries two signatures.
- The answer (`processPhase`): anything but 2xx, a timeout, a 204, an empty body or `{}` all
  mean "no opinion" and Coral's later phases (pre-moderation) go on. A 200 body is validated
  with Joi (`ExternalModerationResponseSchema`, unknown keys stripped): `status` one of NONE,
  APPROVED, REJECTED, PREMOD, SYSTEM_WITHHELD (a status ends the pipeline); `actions`, a list
  of `{"actionType": "FLAG", "reason": "COMMENT_DETECTED_TOXIC" | "COMMENT_DETECTED_SPAM"}`
  (no other reasons are accepted); `tags` (FEATURED, STAFF); `moderationAction`
  (`{status, rejectionReason: {code, ...}}`: recorded as a system moderation action, the
  author notified with the reason, as Coral's own banned-word phase does on a rejection).

This service answers: approve -> 204; hold -> 200 `SYSTEM_WITHHELD` (Coral's pending queue)
with a FLAG per kind of reason (toxic, spam); reject (the site's policy has `auto_reject`) ->
200 `REJECTED` with the same flags and a `moderationAction` carrying a rejection reason code.
A comment the workers could not score in time (or at all) -> 204, exactly what Coral does on
its own when the phase times out: answering otherwise would make the outcome depend on
whether the service missed Coral's clock by a few milliseconds. Unscored comments are not
withheld either: under load that would fill Coral's pending queue with clean comments.

The body is read as HTML whichever format the phase sends (the request does not say): Coral's
HTML escapes a `<` typed in a comment, but with the "Plain Text" format a `<` that starts
something tag-like ("a<b c>d") is lost from the scored text, so keep the default, HTML.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import marshmallow as ma

from moderation.core.records import Action, Decision, Submission
from moderation.core.rules import ReasonKind, reason_kind
from moderation.http.errors import flatten_fields
from moderation.http.schemas import CommentSubmissionSchema
from moderation.storage.comment_store import SCORING_FAILED

SIGNATURE_HEADER = "X-Coral-Signature"
SIGNATURE_PREFIX = "sha256="
ACTIONS = frozenset({"NEW", "EDIT"})
#: The longest text scored: the same limit as `POST /v1/comments`; longer bodies are scored on
#: their beginning rather than refused (a refusal would let the comment through in Coral).
MAX_CONTENT_CHARS = 20_000

TOXIC = "COMMENT_DETECTED_TOXIC"
SPAM = "COMMENT_DETECTED_SPAM"
WITHHELD = "SYSTEM_WITHHELD"
REJECTED = "REJECTED"
#: Coral's rejection reason codes (`REJECTION_REASON_CODE`) for this service's rejections.
REJECTION_CODES = {TOXIC: "ABUSIVE", SPAM: "SPAM"}
BANNED_WORD_CODE = "BANNED_WORD"

#: A submission's field names (as validation errors name them) back to Coral's.
CORAL_NAMES = {
    "content": "comment.body",
    "author.id": "author.id",
    "context.post_id": "story.id",
    "context.permalink": "story.url",
    "context.parent_id": "comment.parentID",
}


class CoralError(Exception):
    """A request this service refuses: a status and a message naming the fields."""

    def __init__(self, status: int, message: str, fields: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.fields = fields


@dataclass(frozen=True)
class Answer:
    """What Coral gets: 204 without a body, or 200 with `body` as JSON."""

    status: int
    body: dict[str, Any] | None = None
    #: Why, for the `X-Moderation-Outcome` header and the logs (Coral ignores it).
    outcome: str = ""


# --- the signature -------------------------------------------------------------------------


def signatures_in(header: str | None) -> list[str]:
    """The hex signatures of an `X-Coral-Signature` header (`sha256=<hex>[,sha256=<hex>...]`)."""
    found = []
    for part in (header or "").split(","):
        part = part.strip()
        if part.startswith(SIGNATURE_PREFIX):
            found.append(part.removeprefix(SIGNATURE_PREFIX).strip().lower())
    return found


def signature(secret: str, body: bytes) -> str:
    """Coral's `generateSignature`: HMAC-SHA256 of the body under the secret, as hex."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signed_by_any(header: str | None, body: bytes, secrets: Iterable[str]) -> bool:
    """True when one of the header's signatures is the body's under one of the secrets; every
    pair is compared in constant time (no early exit that would time the match)."""
    presented = signatures_in(header)
    matched = False
    for secret in secrets:
        expected = signature(secret, body).encode()
        for candidate in presented:
            matched |= hmac.compare_digest(expected, candidate.encode())
    return matched and bool(presented)


# --- the request ---------------------------------------------------------------------------


class _TextContent(HTMLParser):
    """The text of Coral's comment HTML, a line break where a block or `<br>` ends (like
    Coral's own `getHTMLPlainText`); character references decoded."""

    BREAKS = frozenset({"br", "p", "div", "li", "ul", "ol", "blockquote"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.BREAKS and tag != "br":
            self.parts.append("\n")


def plain_text(body: str) -> str:
    """The comment's text whether Coral sent HTML (its default) or plain text."""
    parser = _TextContent()
    parser.feed(body)
    parser.close()
    lines = "".join(parser.parts).splitlines()
    return "\n".join(line.rstrip() for line in lines).strip()


def _object(body: Mapping[str, Any], name: str, problems: dict[str, list[str]]) -> Mapping:
    value = body.get(name)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems[name] = ["Not an object."]
        return {}
    return value


def _string(
    parent: Mapping[str, Any], path: str, problems: dict[str, list[str]], *, required: bool = False
) -> str | None:
    """The string at `path` (its last part a key of `parent`); null is the same as absent."""
    value = parent.get(path.rsplit(".", 1)[-1])
    if value is None:
        if required:
            problems[path] = ["Missing data for required field."]
        return None
    if not isinstance(value, str):
        problems[path] = ["Not a string."]
        return None
    return value


@dataclass(frozen=True)
class ModerationRequest:
    """Coral's request, the fields this service uses."""

    action: str
    submission: Submission
    author_role: str | None = None


def parse_request(raw: bytes) -> ModerationRequest:
    """Coral's JSON body as a submission, validated like `POST /v1/comments`. CoralError 400
    for a body that is not a JSON object, 422 naming Coral's fields for invalid ones. Fields
    Coral may add later are ignored."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise CoralError(400, "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise CoralError(400, "The request body is not a JSON object.")
    problems: dict[str, list[str]] = {}
    action = _string(body, "action", problems, required=True)
    if action is not None and action not in ACTIONS:
        problems["action"] = ["Must be one of: NEW, EDIT."]
    comment = _object(body, "comment", problems)
    author = _object(body, "author", problems)
    story = _object(body, "story", problems)
    html = _string(comment, "comment.body", problems, required="comment" not in problems)
    parent_id = _string(comment, "comment.parentID", problems)
    author_id = _string(author, "author.id", problems)
    role = _string(author, "author.role", problems)
    story_id = _string(story, "story.id", problems)
    story_url = _string(story, "story.url", problems)
    if problems:
        raise _invalid(problems)
    text = plain_text(html or "")[:MAX_CONTENT_CHARS]
    fields: dict[str, Any] = {
        "id": "coral",  # check_now gives every check an id of its own
        **({"content": text} if text else {}),  # no text (an embed alone): nothing to score
        "author": {"id": author_id} if author_id else {},
        "context": {
            name: value
            for name, value in (
                ("post_id", story_id),
                ("permalink", story_url),
                ("parent_id", parent_id),
            )
            if value
        },
    }
    try:
        loaded = CommentSubmissionSchema().load(fields, partial=("content",))
    except ma.ValidationError as error:
        flat = flatten_fields(error.messages)
        problems = {CORAL_NAMES.get(name, name): messages for name, messages in flat.items()}
        raise _invalid(problems) from None
    submission = Submission(
        id=loaded["id"],
        content=loaded.get("content", ""),
        author=loaded.get("author", {}),
        context=loaded.get("context", {}),
    )
    return ModerationRequest(action=action or "NEW", submission=submission, author_role=role)


def _invalid(problems: dict[str, list[str]]) -> CoralError:
    names = ", ".join(sorted(problems))
    return CoralError(422, f"Invalid fields: {names}.", dict(sorted(problems.items())))


def has_text(request: ModerationRequest) -> bool:
    return bool(request.submission.content.strip())


# --- the answer ----------------------------------------------------------------------------

#: Coral's flag for each kind of reason (`moderation.core.rules.reason_kind`): spam scores, the
#: honeypot and too many links are spam; toxicity scores (the site's learned one included),
#: banned and suspect words and an unread language are toxic; premoderation is neither.
FLAG_OF_KIND = {
    ReasonKind.SPAM: SPAM,
    ReasonKind.TOXICITY: TOXIC,
    ReasonKind.BANNED: TOXIC,
    ReasonKind.SUSPECT: TOXIC,
    ReasonKind.LANGUAGE: TOXIC,
}


def flag_reasons(reasons: Sequence[str]) -> list[str]:
    """The distinct flag reasons, the strongest first (a decision lists its scored reasons by
    score, highest first)."""
    flags: list[str] = []
    for reason in reasons:
        kind = reason_kind(reason)
        flag = FLAG_OF_KIND.get(kind) if kind else None
        if flag and flag not in flags:
            flags.append(flag)
    return flags


def flags(kinds: Sequence[str]) -> list[dict[str, str]]:
    return [{"actionType": "FLAG", "reason": kind} for kind in kinds]


def is_unscored(decision: Decision | None) -> bool:
    return decision is None or decision.scores is None or SCORING_FAILED in decision.reasons


def answer(decision: Decision | None) -> Answer:
    """The answer to Coral for the check's decision (None: not decided in time)."""
    if decision is None:
        return Answer(204, outcome="timeout")
    if is_unscored(decision):
        return Answer(204, outcome="unscored")
    if decision.action is Action.APPROVE:
        return Answer(204, outcome="approve")
    kinds = flag_reasons(decision.reasons)
    if decision.action is Action.HOLD:
        return Answer(200, {"status": WITHHELD, "actions": flags(kinds)}, outcome="hold")
    banned = any(reason_kind(reason) is ReasonKind.BANNED for reason in decision.reasons)
    code = BANNED_WORD_CODE if banned else REJECTION_CODES[kinds[0] if kinds else TOXIC]
    body = {
        "status": REJECTED,
        "actions": flags(kinds),
        "moderationAction": {"status": REJECTED, "rejectionReason": {"code": code}},
    }
    return Answer(200, body, outcome="reject")
