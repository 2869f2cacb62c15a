"""One-off checks: score a text through the workers and answer the caller at once.

The Perspective- and Akismet-compatible endpoints answer synchronously, but the models live in
the workers. A check is accepted like any comment (same queue, same scorers, the spam counters
see it), with three differences: its text and personal fields are erased as soon as it is
decided, it is never offered to moderators, and no webhook announces it. The caller waits on
the decision (a Redis subscription, no polling) up to a timeout.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import replace

from moderation.actions.services import Services
from moderation.core.records import Comment, Status, Submission

CHECK_ID_PREFIX = "check-"


def new_check_id() -> str:
    return CHECK_ID_PREFIX + secrets.token_hex(12)


def check_now(
    svc: Services,
    site: str,
    submission: Submission,
    timeout: float,
    *,
    keep_record: bool = False,
) -> Comment | None:
    """Score `submission` for `site` (stored and queued through `svc`) and return its decided
    record, or None when no worker decided within `timeout` seconds (the check is then decided
    later, with nobody waiting).

    The submission's id is replaced by a fresh check id. With `keep_record` false nothing of
    the check stays once it is read (`CommentStore.forget`); otherwise its text-less record
    and audit trail stay under that id.
    """
    (result,) = check_many(svc, site, [submission], timeout, keep_record=keep_record)
    return result


def check_many(
    svc: Services,
    site: str,
    submissions: list[Submission],
    timeout: float,
    *,
    keep_record: bool = False,
) -> list[Comment | None]:
    """`check_now` for several texts at once: all are queued before any is awaited (workers
    score them together), and all share one `timeout`. One result per submission, in order."""
    checks = [
        replace(submission, id=new_check_id(), callback_url=None) for submission in submissions
    ]
    for check in checks:
        # Ahead of queued comments: the caller is waiting, and nobody waits on those.
        # A check kept only to answer now need not wait for Redis's disk (or its replicas).
        svc.comments.accept(
            site,
            check,
            svc.enqueue_scoring.ahead,
            keep_text=False,
            is_check=True,
            confirm=keep_record,
        )
    deadline = time.monotonic() + timeout
    results: list[Comment | None] = []
    for check in checks:
        remaining = max(0.0, deadline - time.monotonic())
        decided = svc.comments.wait_for_decision(site, check.id, remaining)
        if decided is None or decided.status is Status.PENDING:
            results.append(None)
            continue
        if not keep_record:
            svc.comments.forget(site, check.id)
        results.append(decided)
    return results
