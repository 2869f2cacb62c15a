"""Host-site endpoints: submit a comment, read it back (optionally waiting for the decision)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from flask import request
from flask.views import MethodView

from moderation.api import Blueprint
from moderation.auth import authenticate_site, current_site
from moderation.errors import ApiError
from moderation.records import Comment, Status, Submission
from moderation.schemas import CommentRecordSchema, CommentSubmissionSchema, WaitQuerySchema
from moderation.services import services
from moderation.store import ConflictError

blp = Blueprint(
    "comments",
    __name__,
    url_prefix="/v1/comments",
    description="Submit comments and read their decisions (host sites, API key auth).",
)
blp.before_request(authenticate_site)

JSON_METHODS = ("POST", "PUT", "PATCH")


@blp.before_request
def require_json() -> None:
    if request.method in JSON_METHODS and not request.is_json:
        raise ApiError(415, "Send the body as JSON with 'Content-Type: application/json'.")


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
        submission = Submission(
            id=body["id"],
            content=body["content"],
            author=body.get("author", {}),
            context=body.get("context", {}),
            honeypot=body.get("honeypot", ""),
        )
        svc = services()
        try:
            accepted = svc.comments.accept(current_site(), submission, svc.enqueue_scoring)
        except ConflictError as conflict:
            raise ApiError(
                409,
                f"Comment {submission.id!r} was already submitted with different content.",
                extra={"current": conflict.existing.record()},
            ) from None
        comment = wait_if_asked(accepted.comment, wait)
        return answer(comment, {"Location": location(comment.id)})


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
