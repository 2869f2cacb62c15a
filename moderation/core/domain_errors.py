"""What the service refuses on purpose, in its own terms (no HTTP).

The actions raise these; `moderation.http.errors` answers each with its status and the
contract's error JSON, in one place. `code` is the contract's name for the kind of refusal,
which bulk results also report per item (`ReviewService.decide_many`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from moderation.core.records import Comment


class DomainError(Exception):
    """A refusal whose message is safe to show to whoever asked."""

    code: ClassVar[str] = "refused"

    def __init__(
        self,
        message: str,
        *,
        fields: dict[str, list[str]] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields
        self.extra = extra or {}


class NotAssigned(DomainError):
    """The moderator is not assigned to the site."""

    code = "forbidden"

    def __init__(self, site: str) -> None:
        super().__init__(f"You are not assigned to site {site!r}.")
        self.site = site


class CommentNotFound(DomainError):
    """The site has no such comment."""

    code = "not_found"

    def __init__(self, site: str, comment_id: str) -> None:
        super().__init__(f"No comment {comment_id!r} on site {site!r}.")
        self.site = site
        self.comment_id = comment_id


class AlreadyDecided(DomainError):
    """The comment is not open to this decision (decided first by someone else, or decided and
    not overturned); `extra["current"]` is its record now."""

    code = "conflict"

    def __init__(self, comment_id: str, current: Comment) -> None:
        super().__init__(
            f"Comment {comment_id!r} is already {current.status.value}.",
            extra={"current": current.record()},
        )
        self.comment_id = comment_id


class InvalidRequest(DomainError):
    """A request the rules refuse; `fields` names each refused field with its problems."""

    code = "validation_failed"

    def __init__(self, message: str, fields: dict[str, list[str]]) -> None:
        super().__init__(message, fields=fields)
