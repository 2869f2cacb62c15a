"""The review API: accounts, the held queue, decisions, 409s, bulk, audit, labeled examples."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from moderation.core.redis_keys import KEYS
from moderation.core.rules import ReasonKind, reason_kind
from moderation.ops.cli import main
from moderation.storage.label_store import LabelKind, LabelStore
from moderation.storage.moderator_store import ModeratorStore, Role
from tests.support.held import decided, held_text
from tests.support.processes import moderation_env

CLEAN = "Thanks, this was a careful and interesting read."
#: A promotion the shipped spam model holds (one link, no abuse).
SPAM = "Great video! Check out my channel and subscribe http://bit.ly/x1"
#: More links than the default policy allows (2).
LINKS = (
    "The minutes https://news.example/minutes the agenda https://news.example/agenda "
    "and the map https://news.example/map"
)


@pytest.fixture
def moderators(redis_client) -> ModeratorStore:
    return ModeratorStore(redis_client)


@pytest.fixture
def sites(make_site, scoring_worker) -> dict[str, dict[str, str]]:
    """Two sites, with the headers that authenticate as each, and a real worker deciding
    their comments."""
    return {
        name: {"Authorization": f"Bearer {make_site(name).api_key}"} for name in ("news", "blog")
    }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def ann(moderators) -> dict[str, str]:
    """A moderator of `news` only."""
    return bearer(moderators.create("ann", Role.MODERATOR, ["news"]).token)


@pytest.fixture
def root(moderators) -> dict[str, str]:
    """An admin: sees every site."""
    return bearer(moderators.create("root", Role.ADMIN, []).token)


def hold(client, headers, comment_id, author_id="u-1", content=None) -> dict:
    """Submit a comment (by default `held_text`: abuse) and wait for the real worker's hold;
    returns the record."""
    body = {
        "id": comment_id,
        "content": content or held_text(comment_id),
        "author": {"id": author_id},
    }
    record = decided(client, headers, body)
    assert record["status"] == "held", record
    return record


def ids(response) -> list[str]:
    return [item["id"] for item in response.get_json()["items"]]


# --- accounts --------------------------------------------------------------------------------


def test_cli_creates_a_moderator_with_token_and_password(redis_server, redis_client, client):
    env = moderation_env(redis_server.url)
    runner = CliRunner()
    result = runner.invoke(
        main,
        ["moderators", "create", "ann", "--role", "moderator", "--sites", "news,blog", "--json"],
        env=env,
    )
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    assert set(created) == {"name", "role", "token", "password"}
    assert created["role"] == "moderator"
    assert client.get("/v1/review/queue", headers=bearer(created["token"])).status_code == 200

    store = ModeratorStore(redis_client)
    assert store.by_password("ann", created["password"]).sites == ("blog", "news")
    raw = b"".join(redis_client.hvals(KEYS.moderator("ann")))
    assert created["password"].encode() not in raw
    assert created["token"].encode() not in raw

    assert runner.invoke(main, ["moderators", "disable", "ann"], env=env).exit_code == 0
    assert client.get("/v1/review/queue", headers=bearer(created["token"])).status_code == 401
    assert store.by_password("ann", created["password"]) is None

    assert runner.invoke(main, ["moderators", "enable", "ann"], env=env).exit_code == 0
    reset = runner.invoke(main, ["moderators", "reset-password", "ann", "--json"], env=env)
    fresh = json.loads(reset.stdout)
    assert store.by_password("ann", created["password"]) is None
    assert store.by_password("ann", fresh["password"]) is not None
    assert client.get("/v1/review/queue", headers=bearer(created["token"])).status_code == 401
    assert client.get("/v1/review/queue", headers=bearer(fresh["token"])).status_code == 200


def test_review_endpoints_need_a_moderator_token(client, sites):
    for headers in ({}, bearer("mt_wrong"), sites["news"]):
        assert client.get("/v1/review/queue", headers=headers).status_code == 401
        assert client.get("/v1/review/news/x/audit", headers=headers).status_code == 401
        response = client.post("/v1/review/news/x", json={"action": "approve"}, headers=headers)
        assert response.status_code == 401


# --- the queue -------------------------------------------------------------------------------


def test_queue_lists_held_comments_oldest_first_with_what_a_moderator_needs(client, sites, ann):
    held = [hold(client, sites["news"], f"c-{number}") for number in range(3)]
    approved = {"id": "approved", "content": CLEAN}
    assert decided(client, sites["news"], approved)["status"] == "approved"

    response = client.get("/v1/review/queue", headers=ann)
    assert response.status_code == 200
    assert ids(response) == ["c-0", "c-1", "c-2"]
    item = response.get_json()["items"][0]
    assert item["site"] == "news"
    assert item["content"] == held_text("c-0")
    assert item["author"] == {"id": "u-1"}
    assert item["status"] == "held"
    assert item["decision"] == held[0]["decision"]  # the worker's, as the site reads it
    assert [reason_kind(r) for r in item["decision"]["reasons"]] == [ReasonKind.TOXICITY]
    assert item["author_history"] == {"approved": 0, "held": 3, "rejected": 0}
    assert response.get_json()["next_cursor"] is None


def test_queue_pages_with_a_cursor(client, sites, ann):
    for number in range(5):
        hold(client, sites["news"], f"c-{number}")

    first = client.get("/v1/review/queue?limit=2", headers=ann).get_json()
    assert [i["id"] for i in first["items"]] == ["c-0", "c-1"]
    second = client.get(f"/v1/review/queue?limit=2&cursor={first['next_cursor']}", headers=ann)
    assert ids(second) == ["c-2", "c-3"]
    third = client.get(
        f"/v1/review/queue?limit=2&cursor={second.get_json()['next_cursor']}", headers=ann
    ).get_json()
    assert [i["id"] for i in third["items"]] == ["c-4"]
    assert third["next_cursor"] is None
    bad = client.get("/v1/review/queue?cursor=not-a-cursor", headers=ann)
    assert bad.status_code == 422
    assert "cursor" in bad.get_json()["error"]["fields"]


def test_moderators_see_only_their_sites_and_admins_see_all(client, sites, ann, root):
    hold(client, sites["news"], "n-1")
    hold(client, sites["blog"], "b-1")

    assert ids(client.get("/v1/review/queue", headers=ann)) == ["n-1"]
    assert sorted(ids(client.get("/v1/review/queue", headers=root))) == ["b-1", "n-1"]
    assert ids(client.get("/v1/review/queue?site=blog", headers=root)) == ["b-1"]
    assert client.get("/v1/review/queue?site=blog", headers=ann).status_code == 403
    assert client.get("/v1/review/blog/b-1", headers=ann).status_code == 403
    assert client.get("/v1/review/blog/b-1/audit", headers=ann).status_code == 403
    response = client.post("/v1/review/blog/b-1", json={"action": "approve"}, headers=ann)
    assert response.status_code == 403
    assert client.get("/v1/comments/b-1", headers=sites["blog"]).get_json()["status"] == "held"


def test_queue_filters_by_label_and_reason(client, sites, ann):
    """What the worker holds them for: abuse for toxicity, a promotion for spam (with its one
    link), three links for the link count (and, as the spam model reads links, for spam)."""
    hold(client, sites["news"], "toxic")
    hold(client, sites["news"], "spammy", content=SPAM)
    links = hold(client, sites["news"], "links", content=LINKS)
    assert "3 links > 2 allowed" in links["decision"]["reasons"]

    assert ids(client.get("/v1/review/queue?label=spam", headers=ann)) == ["spammy", "links"]
    assert ids(client.get("/v1/review/queue?label=toxicity", headers=ann)) == ["toxic"]
    assert ids(client.get("/v1/review/queue?reason=links", headers=ann)) == ["links"]
    assert ids(client.get("/v1/review/queue?label=spam&reason=links", headers=ann)) == ["links"]


# --- deciding --------------------------------------------------------------------------------


def test_approve_updates_the_record_the_site_reads(client, sites, ann):
    held = hold(client, sites["news"], "c-1")

    response = client.post(
        "/v1/review/news/c-1", json={"action": "approve", "note": "satire"}, headers=ann
    )
    assert response.status_code == 200
    assert response.get_json()["status"] == "approved"
    record = client.get("/v1/comments/c-1", headers=sites["news"]).get_json()
    assert record["status"] == "approved"
    assert record["decision"]["action"] == "approve"
    assert record["decision"]["decided_by"] == "moderator:ann"
    assert record["decision"]["scores"] == held["decision"]["scores"]  # the worker's scores
    assert ids(client.get("/v1/review/queue", headers=ann)) == []


def test_a_second_decision_is_409_with_the_current_state(client, sites, ann, root):
    hold(client, sites["news"], "c-1")
    assert (
        client.post("/v1/review/news/c-1", json={"action": "reject"}, headers=root).status_code
        == 200
    )

    response = client.post("/v1/review/news/c-1", json={"action": "approve"}, headers=ann)
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert error["current"]["status"] == "rejected"
    assert error["current"]["decision"]["decided_by"] == "moderator:root"


def test_decision_validation_and_missing_comments(client, sites, ann):
    hold(client, sites["news"], "c-1")
    for body, field in (
        ({"action": "hold"}, "action"),
        ({}, "action"),
        ({"action": "approve", "x": 1}, "x"),
    ):
        response = client.post("/v1/review/news/c-1", json=body, headers=ann)
        assert response.status_code == 422
        assert field in response.get_json()["error"]["fields"]
    assert (
        client.post("/v1/review/news/nope", json={"action": "approve"}, headers=ann).status_code
        == 404
    )
    assert client.post("/v1/review/news/c-1", data="x", headers=ann).status_code == 415


def test_bulk_decisions_answer_per_id(client, sites, ann):
    for comment_id in ("a", "b", "c"):
        hold(client, sites["news"], comment_id)
    client.post("/v1/review/news/b", json={"action": "approve"}, headers=ann)

    response = client.post(
        "/v1/review/bulk",
        json={
            "site": "news",
            "ids": ["a", "b", "missing", "c"],
            "action": "reject",
            "note": "spam run",
        },
        headers=ann,
    )
    assert response.status_code == 200
    outcomes = [(r["id"], r["outcome"]) for r in response.get_json()["results"]]
    assert outcomes == [
        ("a", "decided"),
        ("b", "conflict"),
        ("missing", "not_found"),
        ("c", "decided"),
    ]
    assert client.get("/v1/comments/c", headers=sites["news"]).get_json()["status"] == "rejected"
    forbidden = client.post(
        "/v1/review/bulk", json={"site": "blog", "ids": ["a"], "action": "reject"}, headers=ann
    )
    assert forbidden.status_code == 403


# --- audit, history, labeled examples ---------------------------------------------------------


def test_audit_trail_records_every_state_change(client, sites, ann):
    hold(client, sites["news"], "c-1")
    client.post("/v1/review/news/c-1", json={"action": "reject", "note": "slur"}, headers=ann)

    response = client.get("/v1/review/news/c-1/audit", headers=ann)
    assert response.status_code == 200
    events = response.get_json()["events"]
    assert [(e["actor"], e["action"], e["from"], e["to"]) for e in events] == [
        ("site:news", "submit", None, "pending"),
        ("auto", "hold", "pending", "held"),
        ("moderator:ann", "reject", "held", "rejected"),
    ]
    assert events[-1]["note"] == "slur"
    assert all(event["at"].endswith("Z") for event in events)


def test_one_comment_shows_the_authors_history(client, sites, ann):
    hold(client, sites["news"], "old-1", author_id="u-7")
    hold(client, sites["news"], "old-2", author_id="u-7")
    hold(client, sites["news"], "new", author_id="u-7")
    client.post("/v1/review/news/old-1", json={"action": "approve"}, headers=ann)
    client.post("/v1/review/news/old-2", json={"action": "reject"}, headers=ann)

    item = client.get("/v1/review/news/new", headers=ann).get_json()
    assert item["author_history"] == {"approved": 1, "held": 1, "rejected": 1}
    assert item["content"] == held_text("new")


def test_moderator_decisions_are_labels(client, redis_client, sites, ann):
    held = hold(client, sites["news"], "c-1")
    assert [reason_kind(r) for r in held["decision"]["reasons"]] == [ReasonKind.TOXICITY]
    client.post("/v1/review/news/c-1", json={"action": "reject"}, headers=ann)

    [label] = LabelStore(redis_client).recent("news", 10)
    assert label.kind is LabelKind.TOXIC  # what the worker held it for
    assert (label.text, label.comment, label.source) == (held_text("c-1"), "c-1", "moderator:ann")
    assert label.scores["toxicity"] == held["decision"]["scores"]["toxicity"]
