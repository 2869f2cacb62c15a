"""Moderators' tools through the API, decided by a real worker process: readers' reports,
actions on authors, the context of a review item, overturning approvals, the dashboard's
figures. (The page itself: tests/test_moderator_tools_page.py, in Chromium.)"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from moderation.core.redis_keys import KEYS
from moderation.storage.moderator_store import ModeratorCredentials, ModeratorStore, Role
from tests.support.processes import running_worker, wait_for
from tests.support.receiver import running_receiver

pytestmark = pytest.mark.e2e

PRIVATE_CALLBACKS = {"MODERATION_ALLOW_PRIVATE_CALLBACKS": "true"}
CLEAN = "Thanks, this was a careful and interesting read."
#: Different clean comments (the same text again and again is a spam signal of its own).
CLEAN_TEXTS = itertools.cycle(
    [
        "The council meeting sounded long but productive.",
        "I walked past the new library yesterday, it looks lovely.",
        "Good to see the bus timetable finally fixed.",
        "My grandmother remembers when the bridge was built.",
        "Interesting interview, I learned a lot about the harbour.",
        "The photos of the festival are wonderful this year.",
        "Could you follow up on the school funding story?",
        "Well researched piece on local farming, thank you.",
        "We tried the bakery mentioned here and it was great.",
        "I disagree with the columnist but enjoyed the argument.",
    ]
)


def clean() -> str:
    return next(CLEAN_TEXTS)


ABUSIVE = "You are a fucking idiot and everyone here knows it."


@pytest.fixture
def settings(settings):
    return settings.with_overrides(allow_private_callbacks=True)


@pytest.fixture
def worker(redis_server, tmp_path) -> Iterator[None]:
    with running_worker(redis_server.url, tmp_path / "worker.log", PRIVATE_CALLBACKS):
        yield


@pytest.fixture
def deliveries(redis_server, tmp_path) -> Iterator[None]:
    """A webhook delivery worker."""
    log = tmp_path / "deliveries.log"
    with running_worker(redis_server.url, log, PRIVATE_CALLBACKS, deliveries=True):
        yield


@pytest.fixture
def ann(redis_client, site) -> ModeratorCredentials:
    return ModeratorStore(redis_client).create("ann", Role.MODERATOR, ["news"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def submit(client: FlaskClient, auth: dict, comment_id: str, content: str, **extra: Any) -> None:
    body = {"id": comment_id, "content": content, **extra}
    response = client.post("/v1/comments", json=body, headers=auth)
    assert response.status_code == 202, response.get_data(as_text=True)


def decided(client: FlaskClient, auth: dict, comment_id: str) -> dict[str, Any]:
    """The comment's record once a worker decided it."""

    def record() -> dict[str, Any] | None:
        found = client.get(f"/v1/comments/{comment_id}", headers=auth).get_json()
        return found if found["status"] != "pending" else None

    return wait_for(record, timeout=60, what=f"a decision on {comment_id}")


def report(
    client: FlaskClient, auth: dict, comment_id: str, reporter: str, reason: str
) -> tuple[int, dict[str, Any]]:
    response = client.post(
        f"/v1/comments/{comment_id}/reports",
        json={"reporter": reporter, "reason": reason},
        headers=auth,
    )
    return response.status_code, response.get_json()


def act(client: FlaskClient, token: str, author: str, action: str, **extra: Any) -> dict:
    response = client.post(
        f"/v1/review/news/authors/{author}",
        json={"action": action, "note": f"{action} by test", **extra},
        headers=bearer(token),
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def review(client: FlaskClient, token: str, comment_id: str, action: str, **extra: Any) -> dict:
    response = client.post(
        f"/v1/review/news/{comment_id}", json={"action": action, **extra}, headers=bearer(token)
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def item(client: FlaskClient, token: str, comment_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/review/news/{comment_id}", headers=bearer(token))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def by(author: str) -> dict[str, Any]:
    return {"author": {"id": author, "name": author.title()}}


# --- readers' reports ----------------------------------------------------------------------


def test_three_readers_reports_send_a_published_comment_back_to_review(
    client, auth, ann, worker, deliveries
):
    with running_receiver() as receiver:
        client.put("/v1/site", json={"callback_url": receiver.url}, headers=auth)
        submit(client, auth, "c-1", CLEAN, **by("u-1"))
        assert decided(client, auth, "c-1")["status"] == "approved"
        receiver.wait_for_requests(1, timeout=30)

        assert report(client, auth, "c-1", "r-1", "abuse") == (
            201,
            {
                "comment": "c-1",
                "reporter": "r-1",
                "counted": True,
                "open_reports": 1,
                "threshold": 3,
                "status": "approved",
            },
        )
        again = report(client, auth, "c-1", "r-1", "spam")
        assert again[0] == 200 and again[1]["counted"] is False
        assert again[1]["open_reports"] == 1
        assert report(client, auth, "c-1", "r-2", "spam")[1]["status"] == "approved"
        status, third = report(client, auth, "c-1", "r-3", "abuse")
        assert (status, third["status"], third["open_reports"]) == (201, "held", 3)

        record = client.get("/v1/comments/c-1", headers=auth).get_json()
        assert record["status"] == "held"
        assert record["decision"]["reasons"] == ["reported by 3 readers: abuse, spam"]
        assert record["decision"]["decided_by"] == "auto"
        [_, hook] = receiver.wait_for_requests(2, timeout=30)
        assert hook.json()["comment"]["status"] == "held"

    queue = client.get("/v1/review/queue", headers=bearer(ann.token)).get_json()["items"]
    assert [each["id"] for each in queue] == ["c-1"]
    reported = client.get("/v1/review/reported", headers=bearer(ann.token)).get_json()["items"]
    assert [each["id"] for each in reported] == ["c-1"]
    assert reported[0]["reports"]["open"] == 3
    assert reported[0]["reports"]["reasons"] == {"abuse": 2, "spam": 1}

    # A moderator's decision settles the reports: none are open, and it takes three new
    # readers (not the same three again) to send it back.
    assert review(client, ann.token, "c-1", "approve")["status"] == "approved"
    assert client.get("/v1/review/reported", headers=bearer(ann.token)).get_json()["items"] == []
    assert report(client, auth, "c-1", "r-3", "abuse")[0] == 200
    assert report(client, auth, "c-1", "r-4", "abuse")[1]["open_reports"] == 1
    assert report(client, auth, "c-1", "r-5", "abuse")[1]["status"] == "approved"
    assert report(client, auth, "c-1", "r-6", "off_topic")[1]["status"] == "held"


def test_a_rejected_reported_comment_is_labelled_by_the_readers_reasons(client, auth, ann, worker):
    client.put("/v1/policy", json={"report_threshold": 2}, headers=auth)
    submit(client, auth, "c-1", "Buy cheap watches today, best prices anywhere.")
    assert decided(client, auth, "c-1")["status"] == "approved"
    report(client, auth, "c-1", "r-1", "spam")
    assert report(client, auth, "c-1", "r-2", "spam")[1]["status"] == "held"
    review(client, ann.token, "c-1", "reject")

    labels = client.get("/v1/models", headers=auth).get_json()["labels"]
    assert labels.get("spam") == 1 and not labels.get("toxic")


def test_erasing_a_comment_erases_who_reported_it(client, auth, ann, redis_client):
    submit(client, auth, "c-1", CLEAN)  # no worker: still pending, which readers may report
    assert report(client, auth, "c-1", "reader-1", "abuse")[0] == 201
    listed = client.get("/v1/review/reported", headers=bearer(ann.token)).get_json()["items"]
    assert [each["id"] for each in listed] == ["c-1"]
    assert listed[0]["reports"]["items"][0]["reporter"] == "reader-1"

    assert client.delete("/v1/comments/c-1", headers=auth).status_code == 204
    assert client.get("/v1/review/reported", headers=bearer(ann.token)).get_json()["items"] == []
    assert not redis_client.exists(KEYS.reports("news", "c-1"))


def test_reports_are_validated_by_field(client, auth, worker):
    submit(client, auth, "c-1", CLEAN)
    decided(client, auth, "c-1")
    for body, field in [
        ({"reason": "spam"}, "reporter"),
        ({"reporter": "r-1"}, "reason"),
        ({"reporter": "r-1", "reason": "boring"}, "reason"),
        ({"reporter": "", "reason": "spam"}, "reporter"),
        ({"reporter": "r-1", "reason": "spam", "note": "x" * 2001}, "note"),
        ({"reporter": "r-1", "reason": "spam", "extra": 1}, "extra"),
    ]:
        response = client.post("/v1/comments/c-1/reports", json=body, headers=auth)
        assert response.status_code == 422, body
        assert field in response.get_json()["error"]["fields"], body
    missing = client.post(
        "/v1/comments/nope/reports", json={"reporter": "r", "reason": "spam"}, headers=auth
    )
    assert missing.status_code == 404
    not_json = client.post("/v1/comments/c-1/reports", data="x", headers=auth)
    assert not_json.status_code == 415


# --- actions on authors ----------------------------------------------------------------------


def test_ban_premoderate_trust_and_clear_decide_an_authors_later_comments(
    client, auth, ann, worker
):
    submit(client, auth, "before", clean(), **by("u-9"))
    assert decided(client, auth, "before")["status"] == "approved"

    banned = act(client, ann.token, "u-9", "ban")
    assert banned["standing"] == "banned" and banned["standing_by"] == "moderator:ann"
    submit(client, auth, "while-banned", clean(), **by("u-9"))
    record = decided(client, auth, "while-banned")
    assert record["status"] == "rejected"
    assert record["decision"]["reasons"] == ["author banned by a moderator"]
    submit(client, auth, "someone-else", clean(), **by("u-1"))
    assert decided(client, auth, "someone-else")["status"] == "approved"

    client.put("/v1/policy", json={"banned_authors": "hold"}, headers=auth)
    submit(client, auth, "banned-held", clean(), **by("u-9"))
    assert decided(client, auth, "banned-held")["status"] == "held"

    act(client, ann.token, "u-9", "premoderate")
    submit(client, auth, "premoderated", clean(), **by("u-9"))
    record = decided(client, auth, "premoderated")
    assert record["status"] == "held"
    assert record["decision"]["reasons"] == ["author premoderated by a moderator"]

    spam = "Subscribe to my channel http://a.example http://b.example http://c.example"
    act(client, ann.token, "u-9", "trust")
    submit(client, auth, "trusted-links", spam, **by("u-9"))
    assert decided(client, auth, "trusted-links")["status"] == "approved"

    cleared = act(client, ann.token, "u-9", "clear")
    assert cleared["standing"] is None
    # Back to the site's policy: links count again (and, after six comments in a few seconds,
    # so does the author's burst), and no reason names a moderator's action.
    submit(client, auth, "cleared-links", spam, **by("u-9"))
    record = decided(client, auth, "cleared-links")
    assert record["status"] == "held"
    assert "3 links > 2 allowed" in record["decision"]["reasons"]
    assert not [r for r in record["decision"]["reasons"] if "by a moderator" in r]

    history = client.get("/v1/review/news/authors/u-9", headers=bearer(ann.token)).get_json()
    assert [e["action"] for e in history["events"]] == ["ban", "premoderate", "trust", "clear"]
    assert [(e["from"], e["to"]) for e in history["events"]] == [
        (None, "banned"),
        ("banned", "premoderated"),
        ("premoderated", "trusted"),
        ("trusted", None),
    ]
    assert all(e["actor"] == "moderator:ann" and e["note"] for e in history["events"])
    assert history["recent"][0]["id"] == "cleared-links"
    assert len(history["recent"]) == 6
    assert history["counts"]["rejected"] == 1


def test_a_ban_can_reject_the_authors_held_comments_at_once(client, auth, ann, worker):
    act(client, ann.token, "u-9", "premoderate")
    for number in range(2):
        submit(client, auth, f"held-{number}", clean(), **by("u-9"))
        assert decided(client, auth, f"held-{number}")["status"] == "held"
    submit(client, auth, "other", ABUSIVE, **by("u-1"))
    assert decided(client, auth, "other")["status"] == "held"

    banned = act(client, ann.token, "u-9", "ban", reject_held=True)
    assert sorted(banned["rejected"]) == ["held-0", "held-1"]
    for number in range(2):
        record = client.get(f"/v1/comments/held-{number}", headers=auth).get_json()
        assert record["status"] == "rejected"
        assert record["decision"]["decided_by"] == "moderator:ann"
    queue = client.get("/v1/review/queue", headers=bearer(ann.token)).get_json()["items"]
    assert [each["id"] for each in queue] == ["other"]

    refused = client.post(
        "/v1/review/news/authors/u-9",
        json={"action": "trust", "reject_held": True},
        headers=bearer(ann.token),
    )
    assert refused.status_code == 422 and "reject_held" in refused.get_json()["error"]["fields"]


def test_new_authors_are_held_until_enough_of_their_comments_were_approved(
    client, auth, ann, worker
):
    client.put("/v1/policy", json={"premoderate_new_authors": 2}, headers=auth)
    for number, reason in enumerate(["0 of 2", "1 of 2"]):
        submit(client, auth, f"new-{number}", clean(), **by("u-5"))
        record = decided(client, auth, f"new-{number}")
        assert record["status"] == "held"
        assert record["decision"]["reasons"] == [f"new author: {reason} comments approved"]
        review(client, ann.token, f"new-{number}", "approve")
    submit(client, auth, "known", clean(), **by("u-5"))
    assert decided(client, auth, "known")["status"] == "approved"
    submit(client, auth, "anonymous", CLEAN)
    assert decided(client, auth, "anonymous")["status"] == "held"


def test_author_actions_are_checked(client, auth, ann, redis_client, make_site):
    make_site("other")
    bob = ModeratorStore(redis_client).create("bob", Role.MODERATOR, ["other"])
    forbidden = client.post(
        "/v1/review/news/authors/u-1", json={"action": "ban"}, headers=bearer(bob.token)
    )
    assert forbidden.status_code == 403
    for body, field in [({"action": "smite"}, "action"), ({}, "action")]:
        response = client.post("/v1/review/news/authors/u-1", json=body, headers=bearer(ann.token))
        assert response.status_code == 422 and field in response.get_json()["error"]["fields"]
    assert client.post("/v1/review/news/authors/u-1", json={"action": "ban"}).status_code == 401


# --- context, overturning, figures -----------------------------------------------------------


def test_a_review_item_shows_the_article_the_parent_the_authors_comments_and_the_spans(
    client, auth, ann, worker
):
    context = {"post_id": "p-1", "permalink": "https://news.example/p-1"}
    submit(client, auth, "parent", "I think the council got this one right.", context=context)
    submit(client, auth, "earlier", CLEAN, **by("u-7"))
    for comment_id in ("parent", "earlier"):
        decided(client, auth, comment_id)
    reply = f"I read the whole article twice. {ABUSIVE}"
    submit(client, auth, "reply", reply, **by("u-7"), context={**context, "parent_id": "parent"})
    assert decided(client, auth, "reply")["status"] == "held"

    found = item(client, ann.token, "reply")
    assert found["context"]["permalink"] == "https://news.example/p-1"
    assert found["parent"]["id"] == "parent"
    assert found["parent"]["content"] == "I think the council got this one right."
    assert [each["id"] for each in found["author_recent"]] == ["earlier"]
    assert found["author_history"] == {"approved": 1, "held": 1, "rejected": 0}
    [first, second] = found["spans"]["toxicity"]
    assert reply[int(first[0]) : int(first[1])] == "I read the whole article twice."
    assert reply[int(second[0]) : int(second[1])] == ABUSIVE
    assert second[2] > first[2]  # the sentence that drove the score scores higher alone


def test_recent_approvals_can_be_searched_and_overturned(client, auth, ann, worker, deliveries):
    with running_receiver() as receiver:
        client.put("/v1/site", json={"callback_url": receiver.url}, headers=auth)
        submit(client, auth, "quiet", CLEAN)
        submit(client, auth, "sly", "Nice article. Also, people like you should disappear.")
        for comment_id in ("quiet", "sly"):
            assert decided(client, auth, comment_id)["status"] == "approved"
        receiver.wait_for_requests(2, timeout=30)

        listed = client.get("/v1/review/approved", headers=bearer(ann.token)).get_json()
        assert {each["id"] for each in listed["items"]} == {"quiet", "sly"}
        found = client.get(
            "/v1/review/approved?q=DISAPPEAR&automatic=true", headers=bearer(ann.token)
        ).get_json()["items"]
        assert [each["id"] for each in found] == ["sly"]

        overturned = review(client, ann.token, "sly", "reject", overturn=True, label="toxic")
        assert overturned["status"] == "rejected"
        [hook] = [r for r in receiver.wait_for_requests(3, timeout=30) if b'"sly"' in r.body][1:]
        assert hook.json()["comment"]["status"] == "rejected"
    still = client.get("/v1/review/approved?q=disappear", headers=bearer(ann.token)).get_json()
    assert still["items"] == []
    # A moderator's approval is newest, yet the automatic list still fills from further back.
    review(client, ann.token, "sly", "approve", overturn=True)
    automatic = client.get(
        "/v1/review/approved?automatic=true&limit=1", headers=bearer(ann.token)
    ).get_json()["items"]
    assert [each["id"] for each in automatic] == ["quiet"]


def test_the_dashboard_figures_count_what_happened(client, auth, ann, worker):
    comments = {"a": CLEAN, "b": CLEAN, "c": ABUSIVE, "d": "Another fine article, thank you."}
    for comment_id, content in comments.items():
        submit(client, auth, comment_id, content)
    records = {comment_id: decided(client, auth, comment_id) for comment_id in comments}
    held = [i for i, record in records.items() if record["status"] == "held"]
    approved = [i for i, record in records.items() if record["status"] == "approved"]
    assert held and approved
    review(client, ann.token, held[0], "approve")  # disagrees with the hold
    review(client, ann.token, approved[0], "reject", overturn=True)  # disagrees too

    stats = client.get("/v1/review/stats?site=news", headers=bearer(ann.token)).get_json()
    totals = stats["totals"]
    assert totals["submitted"] == len(comments) == sum(stats["submitted"])
    assert totals["approved"] == len(approved) and totals["held"] == len(held)
    assert totals["moderated"] == 2 and totals["overturned"] == 2
    assert stats["held_by_reason"] == {"toxicity": len(held)}
    assert stats["overturns"]["approved"] == {"reviewed": 1, "overturned": 1, "rate": 1.0}
    assert stats["overturns"]["toxicity"]["overturned"] == 1
    assert stats["queue"]["now"]["size"] == len(held) - 1 == stats["queue"]["size"][-1]
    assert len(stats["buckets"]) == 24 and stats["hours"] == 24

    week = client.get("/v1/review/stats?hours=168", headers=bearer(ann.token)).get_json()
    assert len(week["buckets"]) == 168 and week["totals"] == totals
    bad = client.get("/v1/review/stats?hours=5", headers=bearer(ann.token))
    assert bad.status_code == 422 and "hours" in bad.get_json()["error"]["fields"]
