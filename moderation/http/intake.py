"""Accepting comments: the one path from a submitted comment (alone, or a batch's entry) to the
store and its scoring job, taken by the API's endpoints and by the backfill's direct mode
(`moderation.ops.backfill`), so that both validate, refuse and keep the same things.

Nothing here reads Flask's request or app: the caller names the store, the enqueuer and the site.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma

from moderation.core.records import Submission
from moderation.http.errors import ApiError, flatten_fields
from moderation.http.schemas import CommentSubmissionSchema
from moderation.storage.comment_store import Accepted, CommentStore, ConflictError, Enqueue

JSON = dict[str, Any]


def submission_from(body: JSON) -> Submission:
    """The submission of a comment `CommentSubmissionSchema` has loaded."""
    return Submission(
        id=body["id"],
        content=body["content"],
        author=body.get("author", {}),
        context=body.get("context", {}),
        honeypot=body.get("honeypot", ""),
        callback_url=body.get("callback_url"),
    )


def accept(
    comments: CommentStore, enqueue: Enqueue, site: str, body: JSON, *, confirm: bool = True
) -> Accepted:
    """Store and queue one loaded comment; 409 if its id is taken by other content.
    `confirm=False`: the caller confirms the durability of a whole batch once at its end."""
    submission = submission_from(body)
    try:
        return comments.accept(
            site, submission, enqueue, keep_text=body.get("store", True), confirm=confirm
        )
    except ConflictError as conflict:
        raise ApiError(
            409,
            f"Comment {submission.id!r} was already submitted with different content.",
            extra={"current": conflict.existing.record()},
        ) from None


def batch_entry(comments: CommentStore, enqueue: Enqueue, site: str, item: Any) -> JSON:
    """One batch entry's outcome: accepted, duplicate, or invalid with the error. A batch
    refuses `"store": false`, which needs someone waiting on the decision (`?wait=`)."""
    raw_id = item.get("id") if isinstance(item, dict) else None
    result_id = raw_id if isinstance(raw_id, str) else None
    try:
        body = CommentSubmissionSchema().load(item)
        if not body["store"]:
            raise ma.ValidationError({"store": ['"store": false is not available in a batch.']})
        created = accept(comments, enqueue, site, body, confirm=False).created
    except ma.ValidationError as error:
        fields = flatten_fields(error.messages)
        message = f"Invalid fields: {', '.join(sorted(fields))}."
        error_body = {"code": "validation_failed", "message": message, "fields": fields}
        return {"id": result_id, "status": "invalid", "error": error_body}
    except ApiError as error:
        return {"id": result_id, "status": "invalid", "error": error.body()}
    return {"id": body["id"], "status": "accepted" if created else "duplicate"}


def accept_batch(
    comments: CommentStore, enqueue: Enqueue, site: str, items: list[Any]
) -> list[JSON]:
    """Each entry's outcome (`batch_entry`), in order, once the store has confirmed them all:
    one wait for the disk (or replicas) covers the batch."""
    results = [batch_entry(comments, enqueue, site, item) for item in items]
    comments.confirm()
    return results
