"""Held comments and logged-in moderators for the /moderate tests, with no worker running."""

from __future__ import annotations

import re
from typing import Any

import redis
from flask.testing import FlaskClient

from moderation.core.records import Action, Decision, utc_now
from moderation.storage.comment_store import CommentStore

HOLD_REASONS = ["toxicity 0.93 >= 0.80"]
HOLD_SCORES = {"toxicity": 0.93, "spam": 0.1}
HOLD_MODELS = {"toxicity": "lite", "spam": "signals-v1"}

_FORM_TOKEN = re.compile(r'<input[^>]* name="csrf_token"[^>]* value="([^"]+)"')
_META_TOKEN = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


def comment_body(comment_id: str, content: str | None = None, **extra: Any) -> dict[str, Any]:
    """A submission for POST /v1/comments."""
    body: dict[str, Any] = {
        "id": comment_id,
        "content": content if content is not None else f"text of {comment_id}",
        "author": {"id": "u-1", "name": "Ann Author", "email": "ann@example.org"},
        "context": {"post_id": "p-1", "permalink": "https://news.example/p-1"},
    }
    body.update(extra)
    return body


def store_hold(
    redis_client: redis.Redis,
    site: str,
    comment_id: str,
    reasons: list[str] | None = None,
    scores: dict[str, float] | None = None,
) -> None:
    """Store an automatic hold for a submitted comment, as a scoring worker would."""
    decision = Decision(
        Action.HOLD,
        reasons or HOLD_REASONS,
        scores or HOLD_SCORES,
        HOLD_MODELS,
        "auto",
        utc_now(),
    )
    assert CommentStore(redis_client).decide(site, comment_id, decision).stored


def hold(
    client: FlaskClient,
    redis_client: redis.Redis,
    api_key: str,
    site: str,
    comment_id: str,
    content: str | None = None,
    **extra: Any,
) -> None:
    """Submit a comment through the API, then hold it."""
    response = client.post(
        "/v1/comments",
        json=comment_body(comment_id, content, **extra),
        headers={"Authorization": f"Bearer {api_key}"},
    )
    assert response.status_code == 202, response.get_json()
    store_hold(redis_client, site, comment_id)


def form_token(html: str) -> str:
    """The CSRF token of a form on the page (the login form, the logout form)."""
    match = _FORM_TOKEN.search(html)
    assert match, "no csrf_token field on the page"
    return match.group(1)


def page_token(html: str) -> str:
    """The CSRF token the queue page gives its script (X-CSRFToken)."""
    match = _META_TOKEN.search(html)
    assert match, "no csrf-token meta tag on the page"
    return match.group(1)


def log_in(client: FlaskClient, name: str, password: str) -> Any:
    """Log in through the form, as a browser would: GET it for the token, then POST it."""
    token = form_token(client.get("/moderate/login").get_data(as_text=True))
    return client.post(
        "/moderate/login", data={"name": name, "password": password, "csrf_token": token}
    )
