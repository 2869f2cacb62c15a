"""Marshmallow schemas for every request and response (they also generate the OpenAPI doc)."""

from __future__ import annotations

import ipaddress
import unicodedata
from collections.abc import Callable
from typing import Any

import marshmallow as ma
from flask import has_app_context
from marshmallow import fields, validate

from moderation.core.records import AuthorAction, ReportReason
from moderation.core.settings import (
    BANNED_AUTHOR_ACTIONS,
    DURABILITY_MODES,
    UNSCORED_LANGUAGE_ACTIONS,
)
from moderation.http.app_services import services
from moderation.storage.hourly_stats import WINDOWS
from moderation.storage.site_store import valid_site_name

#: The contract's bound on `?wait=` seconds (0 <= S <= 10): always accepted.
MAX_WAIT_SECONDS = 10.0


def _encodable(value: str) -> None:
    """Reject strings that cannot be stored as UTF-8 (lone surrogates)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ma.ValidationError("Not valid Unicode text (lone surrogate).") from None


def _no_control_characters(value: str) -> None:
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise ma.ValidationError("Control characters are not allowed.")


#: Sub-resources read with GET under a comment's URL: an id ending in one would be ambiguous.
_SUB_RESOURCES = ("/deliveries", "/audit", "/reports")


def _addressable(value: str) -> None:
    """A comment id must read back through GET /v1/comments/<id> (percent-encoded). Servers
    decode %2F before routing and HTTP clients resolve dot segments, so some ids cannot."""
    if value in (".", ".."):
        raise ma.ValidationError("'.' and '..' cannot be used in a URL.")
    if value.startswith("/"):
        raise ma.ValidationError("Cannot start with '/'.")
    if value.endswith(_SUB_RESOURCES):
        raise ma.ValidationError("Cannot end with '/deliveries', '/audit' or '/reports'.")


def _site_name(value: str) -> None:
    if not valid_site_name(value):
        raise ma.ValidationError("Not a site name (1-63 of a-z, 0-9, '-' and '_').")


def _ip_address(value: str) -> None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ma.ValidationError("Not a valid IPv4 or IPv6 address.") from None


def text(
    max_length: int, *, required: bool = False, min_length: int = 0, **kwargs: Any
) -> fields.String:
    """A string field of bounded length that is valid UTF-8."""
    return fields.String(
        required=required,
        validate=[validate.Length(min=min_length, max=max_length), _encodable],
        **kwargs,
    )


def identifier(description: str, *, required: bool = False, in_urls: bool = False) -> fields.String:
    """An id from the host site: 1-128 characters, no control characters; `in_urls`: also one
    that works as the last part of a URL path."""
    validators: list[Callable[[Any], Any]] = [
        validate.Length(min=1, max=128),
        _encodable,
        _no_control_characters,
    ]
    return fields.String(
        required=required,
        validate=[*validators, _addressable] if in_urls else validators,
        metadata={"description": description},
    )


class AuthorSchema(ma.Schema):
    id = identifier("The author's id on the host site")
    name = text(256)
    email = text(320)
    url = text(2048)
    ip = fields.String(validate=[validate.Length(max=45), _ip_address])
    user_agent = text(1024)


class ContextSchema(ma.Schema):
    post_id = identifier("The post or article the comment belongs to")
    permalink = text(2048)
    parent_id = identifier("The comment this one replies to")
    language = text(35, metadata={"description": "BCP 47 language tag, e.g. en"})


class CommentSubmissionSchema(ma.Schema):
    id = identifier(
        "The host site's comment id, unique per site; it goes in URLs, so not '.' or '..', "
        "not starting with '/', not ending with '/deliveries', '/audit' or '/reports'",
        required=True,
        in_urls=True,
    )
    content = text(20_000, required=True, min_length=1)
    author = fields.Nested(AuthorSchema)
    context = fields.Nested(ContextSchema)
    honeypot = text(1024, metadata={"description": "A hidden form field; bots fill it in"})
    callback_url = fields.Url(
        schemes={"http", "https"},
        require_tld=False,
        validate=validate.Length(max=2048),
        metadata={"description": "where this comment's decisions go, instead of the site's"},
    )
    store = fields.Boolean(
        load_default=True,
        metadata={
            "description": "false: erase the text and personal fields as soon as the comment "
            "is decided (like Perspective's doNotStore); requires ?wait="
        },
    )


class BatchSchema(ma.Schema):
    comments = fields.List(
        fields.Raw(allow_none=True),  # a null entry is one invalid comment, not a bad batch
        required=True,
        validate=validate.Length(min=1, max=100),
        metadata={"description": "Up to 100 comments, each as for POST /v1/comments"},
    )


class BatchResultSchema(ma.Schema):
    id = fields.String(allow_none=True)
    status = fields.String(validate=validate.OneOf(["accepted", "duplicate", "invalid"]))
    error = fields.Nested(lambda: ErrorBodySchema())


class BatchResponseSchema(ma.Schema):
    results = fields.List(fields.Nested(BatchResultSchema))


def max_wait_seconds() -> float:
    """The largest `?wait=` the current app accepts: MODERATION_MAX_WAIT, never below the
    contract's 10 (a lower setting shortens the hold instead: `wait_if_asked`)."""
    if not has_app_context():  # a schema loaded outside the app: the contract's bound
        return MAX_WAIT_SECONDS
    return max(MAX_WAIT_SECONDS, services().settings.max_wait_seconds)


class WaitQuerySchema(ma.Schema):
    wait = fields.Float(
        load_default=0.0,
        validate=validate.Range(min=0.0),
        metadata={
            "description": "Seconds to hold the request for a decision: 0-10, or up to "
            "MODERATION_MAX_WAIT where that is higher"
        },
    )

    @ma.validates("wait")
    def at_most_max_wait(self, value: float, **_: Any) -> None:
        """The upper bound comes from the settings at request time, not at import."""
        validate.Range(min=0.0, max=max_wait_seconds())(value)


class DecisionSchema(ma.Schema):
    action = fields.String(validate=validate.OneOf(["approve", "hold", "reject"]))
    reasons = fields.List(fields.String())
    scores = fields.Dict(
        keys=fields.String(),
        values=fields.Float(),
        allow_none=True,
        metadata={"description": "each label's score in [0, 1]; null if it could not be scored"},
    )
    models = fields.Dict(keys=fields.String(), values=fields.String())
    language = fields.String(
        metadata={"description": "the comment's detected ISO 639-1 language, `und` if unknown"}
    )
    decided_by = fields.String(metadata={"description": "auto or moderator:<name>"})
    decided_at = fields.String(metadata={"description": "ISO 8601 UTC time"})
    policy_version = fields.Integer(metadata={"description": "the policy version applied"})


class CommentRecordSchema(ma.Schema):
    id = fields.String()
    status = fields.String(validate=validate.OneOf(["pending", "approved", "held", "rejected"]))
    submitted_at = fields.String(metadata={"description": "ISO 8601 UTC time"})
    decision = fields.Nested(DecisionSchema, allow_none=True)
    erased_at = fields.String(
        metadata={"description": "when the text and personal data were erased, if they were"}
    )


class ErrorBodySchema(ma.Schema):
    code = fields.String()
    message = fields.String()
    fields_ = fields.Dict(
        data_key="fields",
        attribute="fields",
        keys=fields.String(),
        values=fields.List(fields.String()),
        metadata={"description": "each invalid field (nested ones dotted) with its problems"},
    )
    current = fields.Dict(metadata={"description": "on a 409: the current state"})


class ErrorSchema(ma.Schema):
    error = fields.Nested(ErrorBodySchema)


class HealthSchema(ma.Schema):
    status = fields.String()


class ReadinessSchema(ma.Schema):
    status = fields.String(validate=validate.OneOf(["ok", "unavailable"]))
    redis = fields.String(validate=validate.OneOf(["ok", "down"]))
    missing = fields.List(fields.String(), metadata={"description": "redis, workers"})
    workers = fields.Integer(metadata={"description": "live scoring workers"})
    queue_depth = fields.Integer()
    pending = fields.Integer()
    oldest_pending_seconds = fields.Float(allow_none=True)
    toxicity_model = fields.Raw(metadata={"description": "the workers' model (a list if mixed)"})
    precision = fields.Raw(metadata={"description": "the workers' precision (a list if mixed)"})
    runtime = fields.Raw(
        metadata={"description": "what runs the workers' model: torch, onnxruntime, openvino"}
    )
    languages = fields.List(
        fields.String(),
        metadata={"description": "the languages some live worker's toxicity model reads"},
    )
    durability = fields.String(
        validate=validate.OneOf(DURABILITY_MODES),
        metadata={"description": "MODERATION_DURABILITY of this API process: what a 202 waits for"},
    )


# --- moderators ------------------------------------------------------------------------------


class ReviewQueueQuerySchema(ma.Schema):
    site = fields.String(validate=_site_name)
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
    cursor = text(1024)
    label = text(64, metadata={"description": "e.g. toxicity, spam"})
    reason = text(200, metadata={"description": "text in a reason"})


class AuthorHistorySchema(ma.Schema):
    approved = fields.Integer()
    held = fields.Integer()
    rejected = fields.Integer()


class ReviewItemSchema(CommentRecordSchema):
    site = fields.String()
    content = fields.String()
    author = fields.Dict(keys=fields.String(), values=fields.String())
    context = fields.Dict(keys=fields.String(), values=fields.String())
    highlights = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.String()),
        metadata={"description": "score label -> the phrases of the text that drove it"},
    )
    author_history = fields.Nested(AuthorHistorySchema)
    spans = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.List(fields.Float())),
        metadata={
            "description": "toxicity label -> [begin, end, score] of each sentence (or clause) "
            "scored alone, for comments held for that label (Perspective-style span scores)"
        },
    )
    author_standing = fields.Nested(
        "AuthorStandingSchema",
        allow_none=True,
        metadata={"description": "what moderators said about the author; null: nothing"},
    )
    author_recent = fields.List(
        fields.Nested("CommentGlanceSchema"),
        metadata={"description": "the author's other recent comments on the site, newest first"},
    )
    parent = fields.Nested(
        "CommentGlanceSchema",
        allow_none=True,
        metadata={"description": "the comment this one replies to (`context.parent_id`)"},
    )
    reports = fields.Nested(
        "OpenReportsSchema",
        metadata={"description": "readers' reports since a moderator last decided it"},
    )


class CommentGlanceSchema(ma.Schema):
    id = fields.String()
    status = fields.String()
    submitted_at = fields.String()
    author_name = fields.String()
    content = fields.String(metadata={"description": "the first 400 characters"})
    reasons = fields.List(fields.String())
    decided_by = fields.String()


class AuthorStandingSchema(ma.Schema):
    standing = fields.String(metadata={"description": "banned, premoderated or trusted"})
    note = fields.String()
    by = fields.String()
    at = fields.String(allow_none=True)


class ReaderReportSchema(ma.Schema):
    reporter = fields.String()
    reason = fields.String()
    note = fields.String()
    at = fields.String()


class OpenReportsSchema(ma.Schema):
    open = fields.Integer()
    reasons = fields.Dict(keys=fields.String(), values=fields.Integer())
    items = fields.List(fields.Nested(ReaderReportSchema))


class ReviewQueueSchema(ma.Schema):
    items = fields.List(fields.Nested(ReviewItemSchema))
    next_cursor = fields.String(allow_none=True)


class ReviewListSchema(ma.Schema):
    items = fields.List(fields.Nested(ReviewItemSchema))


class ReportedQuerySchema(ma.Schema):
    site = fields.String(validate=_site_name)
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


class ApprovedQuerySchema(ReportedQuerySchema):
    q = text(200, load_default="", metadata={"description": "text in the comment, author or id"})
    automatic = fields.Boolean(
        load_default=False, metadata={"description": "only those the service approved"}
    )


class StatsQuerySchema(ma.Schema):
    site = fields.String(validate=_site_name)
    hours = fields.Integer(
        load_default=24,
        validate=validate.OneOf(WINDOWS),
        metadata={"description": "the window: 24, 168 (7 days) or 720 (30 days) hours"},
    )


class AuthorActionSchema(ma.Schema):
    action = fields.String(
        required=True, validate=validate.OneOf([action.value for action in AuthorAction])
    )
    note = text(2000, load_default="")
    reject_held = fields.Boolean(
        load_default=False,
        metadata={"description": "with ban: also reject the author's comments held now"},
    )


class AuthorEventSchema(ma.Schema):
    at = fields.String()
    actor = fields.String()
    action = fields.String()
    note = fields.String()
    from_ = fields.String(data_key="from", attribute="from", allow_none=True)
    to = fields.String(allow_none=True)


class AuthorProfileSchema(ma.Schema):
    site = fields.String()
    author_id = fields.String()
    standing = fields.String(allow_none=True)
    standing_note = fields.String()
    standing_by = fields.String()
    standing_at = fields.String(allow_none=True)
    counts = fields.Nested(AuthorHistorySchema)
    events = fields.List(fields.Nested(AuthorEventSchema))
    recent = fields.List(fields.Nested(CommentGlanceSchema))
    rejected = fields.List(
        fields.String(), metadata={"description": "held comments the ban rejected"}
    )


class ReportSubmissionSchema(ma.Schema):
    reporter = identifier("The reader's id on the host site", required=True)
    reason = fields.String(
        required=True, validate=validate.OneOf([reason.value for reason in ReportReason])
    )
    note = text(2000, load_default="")


class ReportOutcomeSchema(ma.Schema):
    comment = fields.String()
    reporter = fields.String()
    counted = fields.Boolean(
        metadata={"description": "false when this reader had reported the comment already"}
    )
    open_reports = fields.Integer(
        metadata={"description": "distinct readers' reports since a moderator last decided it"}
    )
    threshold = fields.Integer(metadata={"description": "the site policy's report_threshold"})
    status = fields.String(metadata={"description": "the comment's status now"})


class DecisionOptionsSchema(ma.Schema):
    """What a moderator's decision may also say: decide a comment in any state, and why a
    rejection was made (what the site's models learn from it)."""

    overturn = fields.Boolean(
        load_default=False,
        metadata={
            "description": "Decide the comment whatever its state (an automatic approval can "
            "be rejected, a rejection approved); without it only pending or held comments."
        },
    )
    label = fields.String(
        validate=validate.OneOf(["spam", "toxic", "other"]),
        metadata={
            "description": "Why a rejection was made, for the site's learning: spam, toxic "
            "(abuse) or other (learned by neither model). Default: what the comment was held for."
        },
    )

    @ma.validates_schema
    def label_only_for_rejections(self, data: dict[str, Any], **_: Any) -> None:
        if "label" in data and data.get("action") != "reject":
            raise ma.ValidationError("A label says why a comment is rejected.", "label")


class ReviewDecisionSchema(DecisionOptionsSchema):
    action = fields.String(required=True, validate=validate.OneOf(["approve", "reject"]))
    note = text(2000, load_default="")


class BulkReviewSchema(DecisionOptionsSchema):
    site = fields.String(required=True, validate=_site_name)
    ids = fields.List(
        fields.String(validate=[validate.Length(min=1, max=128), _encodable]),
        required=True,
        validate=validate.Length(min=1, max=100),
    )
    action = fields.String(required=True, validate=validate.OneOf(["approve", "reject"]))
    note = text(2000, load_default="")


class BulkReviewResultSchema(ma.Schema):
    id = fields.String()
    outcome = fields.String(metadata={"description": "decided, conflict, not_found, forbidden"})
    error = fields.String()
    record = fields.Nested(CommentRecordSchema)
    current = fields.Nested(CommentRecordSchema)


class BulkReviewResponseSchema(ma.Schema):
    results = fields.List(fields.Nested(BulkReviewResultSchema))


class AuditEventSchema(ma.Schema):
    at = fields.String()
    actor = fields.String()
    action = fields.String()
    from_ = fields.String(data_key="from", attribute="from", allow_none=True)
    to = fields.String()
    note = fields.String()


class AuditSchema(ma.Schema):
    events = fields.List(fields.Nested(AuditEventSchema))


# --- per-site policy -------------------------------------------------------------------------

#: Labels a policy may set thresholds for: Detoxify's labels and spam.
POLICY_LABELS = (
    "toxicity",
    "severe_toxicity",
    "obscene",
    "threat",
    "insult",
    "identity_attack",
    "sexual_explicit",
    "spam",
)


def thresholds(description: str) -> fields.Dict:
    return fields.Dict(
        keys=fields.String(validate=validate.OneOf(POLICY_LABELS)),
        values=fields.Float(validate=validate.Range(min=0.0, max=1.0)),
        metadata={"description": description},
    )


def word_list(description: str) -> fields.List:
    return fields.List(
        fields.String(validate=[validate.Length(min=1, max=100), _encodable]),
        validate=validate.Length(max=1000),
        metadata={"description": description},
    )


class PolicySchema(ma.Schema):
    """A site's policy. PUT replaces it whole: omitted fields take the service defaults."""

    version = fields.Integer(
        metadata={"description": "Set by the service; send it back on PUT to refuse lost updates"}
    )
    hold = thresholds("label -> score at or above which a comment is held")
    reject = thresholds("label -> score at or above which it is rejected (with auto_reject)")
    auto_reject = fields.Boolean(metadata={"description": "reject instead of hold (default off)"})
    premoderate = fields.Boolean(metadata={"description": "hold every comment"})
    max_links = fields.Integer(validate=validate.Range(min=0, max=1000))
    banned_words = word_list("hold (reject with auto_reject) when one occurs")
    suspect_words = word_list("hold when one occurs")
    trusted_after = fields.Integer(
        validate=validate.Range(min=0, max=1_000_000),
        metadata={"description": "approved comments after which an author skips spam checks"},
    )
    unscored_languages = fields.String(
        validate=validate.OneOf(UNSCORED_LANGUAGE_ACTIONS),
        metadata={
            "description": "hold (default) or approve comments in a language no live toxicity "
            "model reads"
        },
    )

    report_threshold = fields.Integer(
        validate=validate.Range(min=0, max=1000),
        metadata={
            "description": "distinct readers' reports that send a published comment back to "
            "review, held (default 3; 0: reports never do)"
        },
    )
    premoderate_new_authors = fields.Integer(
        validate=validate.Range(min=0, max=1000),
        metadata={
            "description": "hold an author's comments until this many of theirs were approved "
            "(default 0: off); comments with no author id count as a new author's"
        },
    )
    banned_authors = fields.String(
        validate=validate.OneOf(BANNED_AUTHOR_ACTIONS),
        metadata={"description": "reject (default) or hold the comments of a banned author"},
    )

    @ma.validates_schema
    def word_lists_compile(self, data: dict[str, Any], **_: Any) -> None:
        from moderation.core.wordlists import compile_words

        for name in ("banned_words", "suspect_words"):
            try:
                compile_words(data.get(name, []))
            except ValueError as error:
                raise ma.ValidationError(str(error), field_name=name) from None


# --- the site itself and webhook deliveries --------------------------------------------------


class SiteSettingsSchema(ma.Schema):
    site = fields.String(dump_only=True)
    callback_url = fields.Url(
        schemes={"http", "https"},
        require_tld=False,
        allow_none=True,
        required=True,
        validate=validate.Length(max=2048),
        metadata={"description": "where decisions are POSTed; null turns webhooks off"},
    )


class CoralSettingsSchema(ma.Schema):
    """In: the signing secrets of the site's Coral External Moderation Phase (write-only).
    Out: whether they are set and how many, never the secrets themselves."""

    signing_secrets = fields.List(
        fields.String(
            validate=[
                validate.Length(min=1, max=256),
                _encodable,
                _no_control_characters,
                validate.Regexp(r"^\S+\Z", error="A secret has no spaces or line breaks."),
            ]
        ),
        required=True,
        load_only=True,
        validate=validate.Length(min=1, max=5),
        metadata={
            "description": "1-5 secrets as Coral shows them (`empsec_...`): the current one and, "
            "while one is being rotated, the old one; replaces those set before"
        },
    )
    site = fields.String(dump_only=True)
    configured = fields.Boolean(dump_only=True)
    secret_count = fields.Integer(dump_only=True)
    phase_path = fields.String(
        dump_only=True, metadata={"description": "the path of the phase's URL on this service"}
    )


class DeliveryAttemptSchema(ma.Schema):
    at = fields.String()
    attempt = fields.Integer()
    outcome = fields.String(metadata={"description": "delivered, failed or refused"})
    event = fields.String()
    url = fields.String()
    ok = fields.Boolean()
    status = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True)
    duration_ms = fields.Float()


class DeliveriesSchema(ma.Schema):
    deliveries = fields.List(fields.Nested(DeliveryAttemptSchema))


class RedeliverSchema(ma.Schema):
    queued = fields.Boolean()


class SiteModelSchema(ma.Schema):
    kind = fields.String(metadata={"description": "spam or toxicity"})
    version = fields.Integer(metadata={"description": "the site model in use; 0: the base model"})
    in_use = fields.String(metadata={"description": "what decisions name in `models`"})
    base = fields.List(fields.String(), metadata={"description": "the live workers' base model"})
    trained_at = fields.String(allow_none=True)
    labels = fields.Dict(
        allow_none=True, metadata={"description": "labels of each class it learned from"}
    )
    held_out = fields.Dict(
        allow_none=True,
        metadata={
            "description": "ROC AUC and log loss on held-out labels, against the model it replaced"
        },
    )
    history = fields.List(
        fields.Dict(), metadata={"description": "recent trainings and rollbacks, newest first"}
    )


class SiteModelsSchema(ma.Schema):
    site = fields.String()
    learning = fields.Boolean(metadata={"description": "whether the service learns from labels"})
    labels = fields.Dict(
        keys=fields.String(), values=fields.Integer(), metadata={"description": "labels per kind"}
    )
    labels_since_training = fields.Boolean(
        metadata={"description": "labels changed since the models were last trained"}
    )
    models = fields.List(fields.Nested(SiteModelSchema))
