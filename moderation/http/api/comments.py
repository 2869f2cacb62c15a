"""Host-site endpoints: submit comments (one or a batch), read them back, erase them."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from flask import request
from flask.views import MethodView

from moderation.core.records import Comment, ReportReason, Status
from moderation.http.api import Blueprint
from moderation.http.app_services import services
from moderation.http.auth import authenticate_site, current_site
from moderation.http.errors import ApiError, unicode_safe
from moderation.http.intake import accept, accept_batch
from moderation.http.schemas import (
    BatchResponseSchema,
    BatchSchema,
    CommentRecordSchema,
    CommentSubmissionSchema,
    DeliveriesSchema,
    RedeliverSchema,
    ReportOutcomeSchema,
    ReportSubmissionSchema,
    WaitQuerySchema,
)

blp = Blueprint(
    "comments",
    __name__,
    url_prefix="/v1/comments",
    description="Submit comments and read their decisions (host sites, API key auth).",
)
blp.before_request(authenticate_site)

#: Endpoints that read a JSON body (redeliver, a POST, takes none).
JSON_BODY_ENDPOINTS = ("comments.Comments", "comments.batch", "comments.reports")


@blp.before_request
def require_json() -> None:
    if request.endpoint in JSON_BODY_ENDPOINTS and not request.is_json:
        raise ApiError(415, "Send the body as JSON with 'Content-Type: application/json'.")


@blp.before_request
def allow_larger_batches() -> None:
    if request.endpoint == "comments.batch":
        request.max_content_length = services().settings.max_batch_bytes


def location(comment_id: str) -> str:
    return "/v1/comments/" + quote(comment_id, safe="")


def answer(comment: Comment, headers: dict[str, str] | None = None) -> tuple[Any, int, Any]:
    """202 while the decision is pending, 200 once it exists."""
    status = 202 if comment.status is Status.PENDING else 200
    return comment.record(), status, headers or {}


def wait_if_asked(comment: Comment, wait: float) -> Comment:
    if wait <= 0 or comment.status is not Status.PENDING:
        return comment
    wait = min(wait, services().settings.max_wait_seconds)
    return services().comments.wait_for_decision(comment.site, comment.id, wait) or comment


@blp.route("")
class Comments(MethodView):
    @blp.arguments(WaitQuerySchema, location="query", as_kwargs=True)
    @blp.arguments(CommentSubmissionSchema)
    @blp.response(202, CommentRecordSchema, description="Accepted: stored and queued.")
    @blp.alt_response(200, schema=CommentRecordSchema, description="Decided within `wait`.")
    @blp.alt_response(409, description="The id exists with different content.")
    def post(self, body: dict[str, Any], wait: float) -> Any:
        """Submit a comment for moderation."""
        if not body["store"] and wait <= 0:
            raise ApiError(
                422,
                'Invalid fields: store. "store": false needs ?wait= to return the decision.',
                fields={"store": ['"store": false requires ?wait= greater than 0.']},
            )
        svc = services()
        accepted = accept(svc.comments, svc.enqueue_scoring, current_site(), body)
        comment = wait_if_asked(accepted.comment, wait)
        return answer(comment, {"Location": location(comment.id)})


@blp.route("/batch", methods=["POST"])
@blp.arguments(BatchSchema)
@blp.response(200, BatchResponseSchema)
def batch(body: dict[str, Any]) -> dict[str, Any]:
    """Submit up to 100 comments; one result per comment, in order."""
    svc = services()
    results = accept_batch(svc.comments, svc.enqueue_scoring, current_site(), body["comments"])
    return {"results": unicode_safe(results)}


@blp.route("/<path:comment_id>")
class CommentById(MethodView):
    @blp.arguments(WaitQuerySchema, location="query", as_kwargs=True)
    @blp.response(200, CommentRecordSchema)
    @blp.alt_response(404, description="No such comment on this site.")
    def get(self, comment_id: str, wait: float) -> Any:
        """Read a comment's record, optionally waiting up to `wait` seconds for its decision."""
        comment = services().comments.get(current_site(), comment_id)
        if comment is None:
            raise ApiError(404, f"No comment {comment_id!r} on this site.")
        comment = wait_if_asked(comment, wait)
        return comment.record(), 200

    @blp.response(204)
    @blp.alt_response(404, description="No such comment on this site.")
    def delete(self, comment_id: str) -> Any:
        """Erase the comment's text and personal data; its decision and audit trail stay."""
        site = current_site()
        if not services().comments.erase(site, comment_id, actor=f"site:{site}"):
            raise ApiError(404, f"No comment {comment_id!r} on this site.")
        return "", 204


def existing(comment_id: str) -> Comment:
    comment = services().comments.get(current_site(), comment_id)
    if comment is None:
        raise ApiError(404, f"No comment {comment_id!r} on this site.")
    return comment


@blp.route("/<path:comment_id>/deliveries")
@blp.response(200, DeliveriesSchema)
def deliveries(comment_id: str) -> dict[str, Any]:
    """Every webhook delivery attempt for the comment, oldest first."""
    comment = existing(comment_id)
    return {"deliveries": services().deliveries.attempts(comment.site, comment.id)}


@blp.route("/<path:comment_id>/redeliver", methods=["POST"])
@blp.response(202, RedeliverSchema)
@blp.alt_response(409, description="Neither the comment nor its site has a callback URL.")
def redeliver(comment_id: str) -> Any:
    """Send the comment's current record to its callback URL again."""
    comment = existing(comment_id)
    if not services().outbox.redeliver(comment.site, comment.id, comment):
        raise ApiError(409, "Neither this comment nor its site has a callback URL.")
    return {"queued": True}, 202


@blp.route("/<path:comment_id>/reports", methods=["POST"])
@blp.arguments(ReportSubmissionSchema)
@blp.response(201, ReportOutcomeSchema, description="Counted.")
@blp.alt_response(200, schema=ReportOutcomeSchema, description="This reader had reported it.")
@blp.alt_response(404, description="No such comment on this site.")
def reports(body: dict[str, Any], comment_id: str) -> Any:
    """A reader reports a comment; one report per reader counts. At the policy's
    `report_threshold` distinct readers, a published comment goes back to review, held, and
    the site gets the webhook."""
    outcome = services().reader_reports.report(
        current_site(), comment_id, body["reporter"], ReportReason(body["reason"]), body["note"]
    )
    if outcome is None:
        raise ApiError(404, f"No comment {comment_id!r} on this site.")
    return outcome, 201 if outcome["counted"] else 200
