"""Moderator endpoints: the held queue, one comment, decisions (single and bulk), audit."""

from __future__ import annotations

from typing import Any

from flask import request
from flask.views import MethodView

from moderation.core.records import Action, AuthorAction
from moderation.http.api import Blueprint
from moderation.http.app_services import services
from moderation.http.auth import authenticate_moderator, current_moderator
from moderation.http.errors import ApiError
from moderation.http.schemas import (
    ApprovedQuerySchema,
    AuditSchema,
    AuthorActionSchema,
    AuthorProfileSchema,
    BulkReviewResponseSchema,
    BulkReviewSchema,
    CommentRecordSchema,
    ReportedQuerySchema,
    ReviewDecisionSchema,
    ReviewItemSchema,
    ReviewListSchema,
    ReviewQueueQuerySchema,
    ReviewQueueSchema,
    StatsQuerySchema,
)
from moderation.storage.label_store import LabelKind

blp = Blueprint(
    "review",
    __name__,
    url_prefix="/v1/review",
    description="The review queue and moderator decisions (moderator token auth).",
)
blp.before_request(authenticate_moderator)
MODERATOR_AUTH: list[dict[str, list[str]]] = [{"moderatorToken": []}]


@blp.before_request
def require_json() -> None:
    if request.method == "POST" and not request.is_json:
        raise ApiError(415, "Send the body as JSON with 'Content-Type: application/json'.")


@blp.route("/queue")
@blp.doc(security=MODERATOR_AUTH)
@blp.arguments(ReviewQueueQuerySchema, location="query")
@blp.response(200, ReviewQueueSchema)
def queue(query: dict[str, Any]) -> dict[str, Any]:
    """Held comments of your sites, oldest first, with a cursor for the next page."""
    page = services().review.queue(current_moderator(), **query)
    return {"items": page.items, "next_cursor": page.next_cursor}


@blp.route("/reported")
@blp.doc(security=MODERATOR_AUTH)
@blp.arguments(ReportedQuerySchema, location="query")
@blp.response(200, ReviewListSchema)
def reported(query: dict[str, Any]) -> dict[str, Any]:
    """Comments readers reported that no moderator has decided since, the most recently
    reported first (published ones, and those the reports sent back to review)."""
    return {"items": services().review.reported(current_moderator(), **query)}


@blp.route("/approved")
@blp.doc(security=MODERATOR_AUTH)
@blp.arguments(ApprovedQuerySchema, location="query")
@blp.response(200, ReviewListSchema)
def approved(query: dict[str, Any]) -> dict[str, Any]:
    """Recently approved comments, newest first, optionally only the service's own approvals
    and those matching `q`: to find one to overturn (`"overturn": true`)."""
    review = services().review
    return {
        "items": review.approved(
            current_moderator(),
            site=query.get("site"),
            query=query["q"],
            limit=query["limit"],
            automatic_only=query["automatic"],
        )
    }


@blp.route("/stats")
@blp.doc(security=MODERATOR_AUTH)
@blp.arguments(StatsQuerySchema, location="query")
@blp.response(200)
def stats(query: dict[str, Any]) -> dict[str, Any]:
    """The dashboard's figures for your sites (or one), per UTC hour over the window."""
    sites = services().review.visible_sites(current_moderator(), query.get("site"))
    return services().stats.read(sites, query["hours"])


@blp.route("/<site>/authors/<path:author_id>")
class ReviewAuthor(MethodView):
    @blp.doc(security=MODERATOR_AUTH)
    @blp.response(200, AuthorProfileSchema)
    def get(self, site: str, author_id: str) -> dict[str, Any]:
        """The author's standing, counts, every action on them and their recent comments."""
        return services().review.author(current_moderator(), site, author_id)

    @blp.doc(security=MODERATOR_AUTH)
    @blp.arguments(AuthorActionSchema)
    @blp.response(200, AuthorProfileSchema)
    def post(self, body: dict[str, Any], site: str, author_id: str) -> dict[str, Any]:
        """Ban (their later comments are rejected, or held per the policy's `banned_authors`;
        with `reject_held`, their held ones too), premoderate (held), trust (no spam checks) or
        clear an author. Audited in the author's history."""
        return services().review.act_on_author(
            current_moderator(),
            site,
            author_id,
            AuthorAction(body["action"]),
            body["note"],
            reject_held=body["reject_held"],
        )


@blp.route("/bulk", methods=["POST"])
@blp.doc(security=MODERATOR_AUTH)
@blp.arguments(BulkReviewSchema)
@blp.response(200, BulkReviewResponseSchema)
def bulk(body: dict[str, Any]) -> dict[str, Any]:
    """Approve or reject a list of comments of one site; one result per id, in order."""
    results = services().review.decide_many(
        current_moderator(),
        body["site"],
        body["ids"],
        Action(body["action"]),
        body["note"],
        **decision_options(body),
    )
    return {"results": results}


def decision_options(body: dict[str, Any]) -> dict[str, Any]:
    """`overturn` and `label` of a decision body, as ReviewService takes them."""
    label = body.get("label")
    return {"overturn": body["overturn"], "label": LabelKind(label) if label else None}


@blp.route("/<site>/<path:comment_id>")
class ReviewComment(MethodView):
    @blp.doc(security=MODERATOR_AUTH)
    @blp.response(200, ReviewItemSchema)
    def get(self, site: str, comment_id: str) -> dict[str, Any]:
        """One comment with its scores, reasons and the author's history on the site."""
        review = services().review
        return review.item(review.comment(current_moderator(), site, comment_id))

    @blp.doc(security=MODERATOR_AUTH)
    @blp.arguments(ReviewDecisionSchema)
    @blp.response(200, CommentRecordSchema)
    @blp.alt_response(409, description="Already decided by someone else; `current` is its state.")
    def post(self, body: dict[str, Any], site: str, comment_id: str) -> dict[str, Any]:
        """Approve or reject a held (or still pending) comment, with an optional note; with
        `overturn`, a comment in any state. Every decision is a label for the site's models."""
        return services().review.decide(
            current_moderator(),
            site,
            comment_id,
            Action(body["action"]),
            body["note"],
            **decision_options(body),
        )


@blp.route("/<site>/<path:comment_id>/audit")
@blp.doc(security=MODERATOR_AUTH)
@blp.response(200, AuditSchema)
def audit(site: str, comment_id: str) -> dict[str, Any]:
    """Every change of the comment's state from submission on."""
    return {"events": services().review.audit(current_moderator(), site, comment_id)}
