"""Batch submission, erasure, "store": false and retention."""

from __future__ import annotations

import threading

import pytest
from rq import Queue

from moderation.core.records import Action, Decision, utc_now
from moderation.core.redis_keys import KEYS
from moderation.storage.comment_store import CommentStore
from moderation.storage.job_queues import SCORING_QUEUE
from moderation.storage.label_store import LabelStore
from tests.support.held import store_hold
from tests.support.processes import running_worker


def post_batch(client, auth, comments):
    return client.post("/v1/comments/batch", json={"comments": comments}, headers=auth)


# --- batch -----------------------------------------------------------------------------------


def test_batch_answers_per_item_in_order(client, auth, redis_client):
    client.post("/v1/comments", json={"id": "old", "content": "already here"}, headers=auth)
    response = post_batch(
        client,
        auth,
        [
            {"id": "b-1", "content": "fine"},
            {"id": "old", "content": "already here"},
            {"id": "b-2", "content": ""},
            {"id": "old", "content": "different"},
            "not an object",
            {"content": "no id"},
            {"id": "b-3", "content": "fine too", "author": {"ip": "nope"}},
            {"id": "b-4", "content": "also fine"},
        ],
    )
    assert response.status_code == 200
    results = response.get_json()["results"]
    assert [(r["id"], r["status"]) for r in results] == [
        ("b-1", "accepted"),
        ("old", "duplicate"),
        ("b-2", "invalid"),
        ("old", "invalid"),
        (None, "invalid"),
        (None, "invalid"),
        ("b-3", "invalid"),
        ("b-4", "accepted"),
    ]
    assert "content" in results[2]["error"]["fields"]
    assert results[3]["error"]["code"] == "conflict"
    assert "id" in results[5]["error"]["fields"]
    assert "author.ip" in results[6]["error"]["fields"]
    assert Queue(SCORING_QUEUE, connection=redis_client).count == 3  # old, b-1, b-4


@pytest.mark.parametrize(
    "body", [{"comments": []}, {"comments": [{"id": str(n), "content": "x"} for n in range(101)]}]
)
def test_batch_size_is_1_to_100(client, auth, body):
    response = client.post("/v1/comments/batch", json=body, headers=auth)
    assert response.status_code == 422
    assert "comments" in response.get_json()["error"]["fields"]


def test_a_full_batch_of_long_comments_fits(client, auth):
    comments = [{"id": f"long-{n}", "content": "ü" * 20_000} for n in range(100)]
    response = post_batch(client, auth, comments)
    assert response.status_code == 200
    assert {r["status"] for r in response.get_json()["results"]} == {"accepted"}


def test_batch_needs_auth_and_json(client, auth):
    assert post_batch(client, {}, [{"id": "x", "content": "y"}]).status_code == 401
    response = client.post("/v1/comments/batch", data="x", headers=auth)
    assert response.status_code == 415


# --- erasure ---------------------------------------------------------------------------------


def held(client, redis_client, auth, comment_id: str) -> None:
    body = {
        "id": comment_id,
        "content": "my secret text",
        "author": {"id": "u-1", "name": "Ann", "email": "ann@example.org", "ip": "203.0.113.7"},
        "context": {"permalink": "https://news.example/p/1"},
    }
    assert client.post("/v1/comments", json=body, headers=auth).status_code == 202
    store_hold(redis_client, "news", comment_id, scores={"toxicity": 0.02, "spam": 0.9})


def test_delete_erases_text_and_personal_data_but_keeps_the_decision(client, auth, redis_client):
    held(client, redis_client, auth, "c-1")

    response = client.delete("/v1/comments/c-1", headers=auth)
    assert response.status_code == 204
    stored = redis_client.hgetall(KEYS.comment("news", "c-1"))
    everything = b" ".join(stored.values())
    for personal in (
        b"my secret text",
        b"Ann",
        b"ann@example.org",
        b"203.0.113.7",
        b"news.example",
    ):
        assert personal not in everything
    record = client.get("/v1/comments/c-1", headers=auth).get_json()
    assert record["status"] == "held"
    assert record["decision"]["action"] == "hold"
    assert record["erased_at"].endswith("Z")
    assert redis_client.zcard(KEYS.held("news")) == 0  # gone from the review queue


def test_erasure_is_audited_and_removes_the_label(client, auth, redis_client):
    from moderation.storage.moderator_store import ModeratorStore, Role

    held(client, redis_client, auth, "c-1")
    token = ModeratorStore(redis_client).create("ann", Role.MODERATOR, ["news"]).token
    moderator = {"Authorization": f"Bearer {token}"}
    client.post("/v1/review/news/c-1", json={"action": "reject"}, headers=moderator)
    assert redis_client.xlen(KEYS.labels("news")) == 1

    client.delete("/v1/comments/c-1", headers=auth)
    assert redis_client.xlen(KEYS.labels("news")) == 0
    stats = LabelStore(redis_client)
    assert stats.counts("news")["spam"] == 0 and stats.version("news") == 2  # labeled, erased
    events = client.get("/v1/review/news/c-1/audit", headers=moderator).get_json()["events"]
    assert (events[-1]["actor"], events[-1]["action"]) == ("site:news", "erase")


def test_delete_of_unknown_or_other_sites_comment_is_404(client, auth, make_site):
    other = {"Authorization": f"Bearer {make_site('blog').api_key}"}
    client.post("/v1/comments", json={"id": "c-1", "content": "x"}, headers=auth)
    assert client.delete("/v1/comments/c-1", headers=other).status_code == 404
    assert client.delete("/v1/comments/nope", headers=auth).status_code == 404
    assert client.get("/v1/comments/c-1", headers=auth).get_json().get("erased_at") is None


# --- "store": false and retention -------------------------------------------------------------


def test_store_false_requires_wait(client, auth):
    response = client.post(
        "/v1/comments", json={"id": "c-1", "content": "x", "store": False}, headers=auth
    )
    assert response.status_code == 422
    assert "store" in response.get_json()["error"]["fields"]


@pytest.mark.e2e
def test_store_false_returns_the_decision_and_keeps_no_text(
    client, auth, redis_server, redis_client, tmp_path
):
    with running_worker(redis_server.url, tmp_path / "worker.log"):
        body = {
            "id": "ephemeral",
            "content": "You are a fucking idiot",
            "author": {"email": "x@example.org"},
            "store": False,
        }
        response = client.post("/v1/comments?wait=10", json=body, headers=auth)
    assert response.status_code == 200
    assert response.get_json()["decision"]["action"] == "hold"
    stored = redis_client.hgetall(KEYS.comment("news", "ephemeral"))
    assert stored[b"content"] == b""
    assert b"x@example.org" not in b" ".join(stored.values())
    assert response.get_json()["erased_at"]
    assert redis_client.zcard(KEYS.held("news")) == 0  # nothing left for a moderator to read


def test_retention_erases_approved_comments_after_the_cutoff(redis_client):
    store = CommentStore(redis_client, track_retention=True)

    def enqueue(pipe, site, comment_id):
        return "job-id"

    from moderation.core.records import Submission

    for comment_id, action in (("old", Action.APPROVE), ("held", Action.HOLD)):
        store.accept("news", Submission(comment_id, "text", {"name": "Ann"}), enqueue)
        decision = Decision(action, [], {}, {}, "auto", utc_now())
        assert store.decide("news", comment_id, decision).stored
    cutoff = utc_now() + 1
    assert store.erase_approved_before(cutoff) == 1
    assert store.get("news", "old").submission.content == ""
    assert store.get("news", "old").erased_at is not None
    assert store.get("news", "held").submission.content == "text"
    assert store.erase_approved_before(cutoff) == 0


def test_concurrent_erase_and_decide_leave_a_consistent_record(client, auth, redis_client):
    client.post("/v1/comments", json={"id": "race", "content": "secret"}, headers=auth)
    store = CommentStore(redis_client)
    decision = Decision(Action.APPROVE, [], {}, {}, "auto", utc_now())
    threads = [
        threading.Thread(target=store.erase, args=("news", "race", "site:news")),
        threading.Thread(target=store.decide, args=("news", "race", decision)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    comment = store.get("news", "race")
    assert comment.submission.content == ""
    assert comment.erased_at is not None
    assert comment.status.value in ("pending", "approved")
