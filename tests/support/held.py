"""Held comments and logged-in moderators for the review and /moderate tests.

Review tests get their held comments from a real scoring worker (the `scoring_worker` fixture
of tests/conftest.py: one `moderation worker` per test module): they submit text the
embedded model scores as abuse (`abusive`, `held_text`) through the API and wait for the
worker's hold (`hold`). Tests that need a held comment with no worker running (security,
fuzzing, durability) use `store_hold`, whose reasons come from the policy's own `decide`.
"""

from __future__ import annotations

import re
from typing import Any

import redis
from flask.testing import FlaskClient

from moderation.core.records import Action, Decision, utc_now
from moderation.core.rules import Signals, decide
from moderation.core.settings import PolicySettings
from moderation.storage.comment_store import CommentStore
from moderation.storage.job_queues import scoring_queue
from moderation.storage.policy_store import PolicyStore
from tests.support.processes import wait_for

#: Abuse the embedded (lite) toxicity model scores near 1.0: under the default policy a worker
#: holds a comment with it for toxicity alone (its spam score stays low). A sentence of its
#: own, so that the page marks it, not the text before it, as the toxic sentence.
ABUSE = "You are a fucking idiot."
#: Scores of a comment held for toxicity, as the lite model and the spam model give them, for
#: `store_hold` (tests with no worker running).
HOLD_SCORES = {"toxicity": 0.93, "spam": 0.1}
HOLD_MODELS = {"toxicity": "lite", "spam": "spam-base-1"}

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


def abusive(text: str) -> str:
    """`text`, then abuse that a worker holds for toxicity."""
    return f"{text}. {ABUSE}"


def held_text(comment_id: str) -> str:
    """The text `hold` submits when given none."""
    return abusive(f"text of {comment_id}")


def bearer(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


def worker_is_done(connection: redis.Redis) -> bool:
    """Every comment decided, nothing queued, no job in hand."""
    queue = scoring_queue(connection)
    return (
        CommentStore(connection).pending_count() == 0
        and queue.count == 0
        and queue.started_job_registry.count == 0
    )


def decided(client: FlaskClient, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    """Submit a comment (`headers` authenticate as its site) and return its record once a
    worker decided it."""
    response = client.post("/v1/comments?wait=10", json=body, headers=headers)
    assert response.status_code in (200, 202), response.get_json()
    record = response.get_json()
    if record["status"] != "pending":
        return record

    def read() -> dict[str, Any] | None:
        found = client.get(response.headers["Location"], headers=headers).get_json()
        return found if found["status"] != "pending" else None

    return wait_for(read, timeout=60, interval=0.05, what=f"a decision on {body['id']}")


def hold(
    client: FlaskClient,
    api_key: str,
    comment_id: str,
    content: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Submit a comment through the API and wait until the running worker (`scoring_worker`)
    holds it; returns its record. `content` must be something the worker holds (`abusive`)."""
    text = content if content is not None else held_text(comment_id)
    record = decided(client, bearer(api_key), comment_body(comment_id, text, **extra))
    assert record["status"] == "held", record
    return record


def store_hold(
    redis_client: redis.Redis,
    site: str,
    comment_id: str,
    scores: dict[str, float] | None = None,
) -> Decision:
    """Store an automatic hold for a submitted comment, for tests with no worker running: the
    action and reasons are what the policy (`rules.decide`, with the site's policy) makes of
    `scores` (default: a comment held for toxicity)."""
    scores = scores or HOLD_SCORES
    policy = PolicyStore(redis_client, PolicySettings()).get(site)
    verdict = decide(scores, Signals(), policy)
    assert verdict.action is Action.HOLD, (scores, verdict)
    decision = Decision(Action.HOLD, verdict.reasons, scores, HOLD_MODELS, "auto", utc_now())
    assert CommentStore(redis_client).decide(site, comment_id, decision).stored
    return decision


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
