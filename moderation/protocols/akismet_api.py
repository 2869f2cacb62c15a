"""Akismet-compatible endpoints: `/1.1/comment-check`, `submit-spam`, `submit-ham`, `verify-key`.

Form-encoded requests with the site's API key as `api_key`; text answers in Akismet's style
(`moderation.protocols.akismet`). A plain Flask blueprint (not in the OpenAPI document, which
describes the JSON API); CSRF-exempt because it reads no cookies.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import redis
from flask import Blueprint, Response, request
from werkzeug.exceptions import HTTPException

from moderation.checks import check_now
from moderation.errors import REDIS_RETRY_AFTER
from moderation.labels import LabelKind
from moderation.protocols.akismet import (
    DEBUG_HEADER,
    THANKS,
    AkismetError,
    is_administrator,
    is_set,
    require,
    submission_from,
    verdict,
)
from moderation.services import services
from moderation.store import SCORING_FAILED

log = logging.getLogger(__name__)

blp = Blueprint("akismet", __name__, url_prefix="/1.1")

#: Seconds a caller should wait before checking again when no worker answered in time.
BUSY_RETRY_AFTER = 5


def text(body: str, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(body, status=status, mimetype="text/plain", headers=dict(headers or {}))


def refusal(error: AkismetError) -> Response:
    return text(error.body, error.status, {DEBUG_HEADER: error.debug, **error.headers})


@blp.errorhandler(AkismetError)
def handle_akismet_error(error: AkismetError) -> Response:
    return refusal(error)


@blp.errorhandler(redis.ConnectionError)
@blp.errorhandler(redis.TimeoutError)
def handle_redis_down(error: Exception) -> Response:
    log.warning("Redis unavailable: %s", type(error).__name__)
    retry = {"Retry-After": str(REDIS_RETRY_AFTER)}
    return refusal(AkismetError("unavailable", "Storage unavailable; retry later.", 503, retry))


@blp.errorhandler(HTTPException)
def handle_http_error(error: HTTPException) -> Response:
    status = error.code or 500
    return refusal(AkismetError(error.name, error.description or error.name, status))


def authenticated_site(form: Mapping[str, str]) -> str:
    """The site whose API key the form's `api_key` is; Akismet's `invalid` otherwise."""
    require(form, "api_key")
    site = services().sites.authenticate(form["api_key"])
    if site is None:
        raise AkismetError("invalid", "The api_key is not a site's API key on this service.")
    return site


@blp.post("/comment-check")
def comment_check() -> Response:
    """`true` (spam) or `false`, scored by the workers while the caller waits."""
    form = request.form
    site = authenticated_site(form)
    if is_administrator(form):
        return text("false")
    require(form, "user_ip", "comment_content")
    submission = submission_from(form)
    svc = services()
    timeout = svc.settings.max_wait_seconds
    comment = check_now(site, submission, timeout)
    decision = comment.decision if comment else None
    if decision is None or decision.scores is None or SCORING_FAILED in decision.reasons:
        debug = f"No scoring worker decided within {timeout:g} s; retry later."
        raise AkismetError("unavailable", debug, 503, {"Retry-After": str(BUSY_RETRY_AFTER)})
    answer = verdict(decision.scores, svc.policies.get(site), bool(submission.honeypot))
    return text(answer.body, headers=answer.headers)


def submit(verdict_name: str, kind: LabelKind) -> Response:
    """The text becomes a label for the site's learning (nothing with `is_test`)."""
    form = request.form
    site = authenticated_site(form)
    require(form, "user_ip", "comment_content")
    submission = submission_from(form)
    if not is_set(form.get("is_test")):
        source = f"akismet:submit-{verdict_name}"
        services().labels.label_text(site, submission.content, kind, source)
    return text(THANKS)


@blp.post("/submit-spam")
def submit_spam() -> Response:
    return submit("spam", LabelKind.SPAM)


@blp.post("/submit-ham")
def submit_ham() -> Response:
    return submit("ham", LabelKind.OK)


@blp.post("/verify-key")
def verify_key() -> Response:
    """`valid` when `key` (or `api_key`) is a site's API key, else `invalid`."""
    form = request.form
    key = form.get("key") or form.get("api_key", "")
    if not key:
        return refusal(AkismetError("invalid", 'Empty "key" value'))
    if services().sites.authenticate(key) is None:
        return refusal(AkismetError("invalid", "The key is not a site's API key on this service."))
    return text("valid")
