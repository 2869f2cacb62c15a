"""The /moderate page: login, sessions, CSRF, the queue, decisions, headers and escaping."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape
from werkzeug.http import parse_date

from moderation.app import create_app
from moderation.core.rules import ReasonKind, reason_kind
from moderation.core.settings import Settings
from moderation.http.web import SESSION_LIFETIME
from moderation.storage.moderator_store import ModeratorCredentials, ModeratorStore, Role
from moderation.storage.policy_store import PolicyStore
from tests.support.held import abusive, form_token, hold, log_in, page_token

#: Spam a worker holds for spam alone (the shipped spam model; no abuse).
SPAM = "Great video! Check out my channel and subscribe http://bit.ly/x1"

SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


@pytest.fixture(autouse=True)
def close_redis(app: Flask) -> Iterator[None]:
    """Close the app's Redis connections, so no socket is left for the garbage collector."""
    yield
    app.extensions["moderation"].redis.close()


@pytest.fixture
def moderators(redis_client) -> ModeratorStore:
    return ModeratorStore(redis_client)


@pytest.fixture
def sites(make_site, scoring_worker) -> dict[str, str]:
    """Two sites and their API keys, with a real worker deciding their comments."""
    return {name: make_site(name).api_key for name in ("news", "blog")}


@pytest.fixture
def ann(moderators: ModeratorStore) -> ModeratorCredentials:
    """A moderator of `news` only."""
    return moderators.create("ann", Role.MODERATOR, ["news"])


@pytest.fixture
def ann_client(client: FlaskClient, ann: ModeratorCredentials) -> FlaskClient:
    """The test client, logged in as ann."""
    assert log_in(client, "ann", ann.password).status_code == 302
    return client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def queue_token(client: FlaskClient) -> str:
    return page_token(client.get("/moderate").get_data(as_text=True))


def decide(client: FlaskClient, site: str, comment_id: str, action: str, note: str = ""):
    return client.post(
        f"/moderate/decide/{site}/{comment_id}",
        json={"action": action, "note": note},
        headers={"X-CSRFToken": queue_token(client)},
    )


# --- logging in ------------------------------------------------------------------------------


def test_the_queue_needs_a_login(client: FlaskClient) -> None:
    response = client.get("/moderate")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/moderate/login")
    assert client.get("/moderate/queue.json").status_code == 401
    assert client.get("/moderate/audit/news/c-1").status_code == 401


def test_login_sets_a_hardened_session_cookie(client: FlaskClient, ann) -> None:
    response = log_in(client, "ann", ann.password)
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/moderate")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("moderation_session=")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # off by default, so http://127.0.0.1 works
    expires = parse_date(re.search(r"Expires=([^;]+)", cookie).group(1))
    assert abs(expires - datetime.now(UTC) - SESSION_LIFETIME) < timedelta(minutes=1)
    page = client.get("/moderate")
    assert page.status_code == 200
    assert "ann" in page.get_data(as_text=True)
    # Polling does not push the expiry back: a login lasts SESSION_LIFETIME from when it began.
    assert "Set-Cookie" not in client.get("/moderate/queue.json").headers


def test_a_wrong_password_is_refused(client: FlaskClient, ann) -> None:
    response = log_in(client, "ann", "not-the-password")
    assert response.status_code == 401
    assert "Wrong name or password" in response.get_data(as_text=True)
    assert client.get("/moderate").status_code == 302
    assert log_in(client, "nobody", ann.password).status_code == 401


def test_a_disabled_moderator_cannot_log_in(client, moderators, ann) -> None:
    moderators.set_disabled("ann", True)
    assert log_in(client, "ann", ann.password).status_code == 401
    assert client.get("/moderate").status_code == 302


def test_disabling_an_account_ends_its_session_at_once(ann_client, moderators) -> None:
    assert ann_client.get("/moderate").status_code == 200
    moderators.set_disabled("ann", True)
    assert ann_client.get("/moderate").status_code == 302
    assert ann_client.get("/moderate/queue.json").status_code == 401


def test_logging_in_starts_a_fresh_session(client: FlaskClient, ann) -> None:
    with client.session_transaction() as session:
        session["planted"] = "by an attacker"
    log_in(client, "ann", ann.password)
    with client.session_transaction() as session:
        assert "planted" not in session
        assert session["moderator"] == "ann"


def test_logout_ends_the_session(ann_client: FlaskClient) -> None:
    token = form_token(ann_client.get("/moderate").get_data(as_text=True))
    response = ann_client.post("/moderate/logout", data={"csrf_token": token})
    assert response.status_code == 302
    assert ann_client.get("/moderate").status_code == 302


def test_without_a_secret_key_the_page_says_what_is_missing(settings: Settings) -> None:
    app = create_app(settings.with_overrides(secret_key=None))
    client = app.test_client()
    try:
        for response in (client.get("/moderate/login"), client.post("/moderate/login")):
            assert response.status_code == 503
            assert "MODERATION_SECRET_KEY" in response.get_data(as_text=True)
            assert response.headers["X-Frame-Options"] == "DENY"
        assert client.get("/moderate").status_code == 503
        assert client.get("/healthz").status_code == 200
    finally:
        app.extensions["moderation"].redis.close()


# --- CSRF --------------------------------------------------------------------------------------


def test_posts_without_a_csrf_token_are_refused(client, ann_client, ann, sites):
    hold(client, sites["news"], "c-1")
    login = client.post("/moderate/login", data={"name": "ann", "password": ann.password})
    assert login.status_code == 400
    assert "Form expired" in login.get_data(as_text=True)

    no_token = client.post("/moderate/decide/news/c-1", json={"action": "approve"})
    assert no_token.status_code == 400
    assert no_token.get_json()["error"]["code"] == "csrf_failed"
    forged = client.post(
        "/moderate/decide/news/c-1", json={"action": "approve"}, headers={"X-CSRFToken": "x"}
    )
    assert forged.status_code == 400
    assert client.post("/moderate/logout").status_code == 400
    assert client.get("/v1/comments/c-1", headers=bearer(sites["news"])).get_json()["status"] == (
        "held"
    )


def test_the_json_apis_need_no_csrf_token(client, sites, ann) -> None:
    """Bearer-token APIs are exempt: a token in a header cannot be ridden by another site."""
    hold(client, sites["news"], "c-1")
    response = client.post(
        "/v1/review/news/c-1", json={"action": "reject"}, headers=bearer(ann.token)
    )
    assert response.status_code == 200, response.get_json()


# --- the queue ---------------------------------------------------------------------------------


def test_a_moderator_sees_only_their_sites(client, ann_client, sites) -> None:
    hold(client, sites["news"], "n-1", abusive("news comment"))
    hold(client, sites["blog"], "b-1", abusive("blog comment"))
    page = ann_client.get("/moderate").get_data(as_text=True)
    assert "news comment" in page
    assert "blog comment" not in page
    assert '<option value="blog"' not in page
    assert ann_client.get("/moderate?site=blog").get_data(as_text=True).count("blog comment") == 0

    polled = ann_client.get("/moderate/queue.json").get_json()
    assert [item["key"] for item in polled["items"]] == ["news/n-1"]
    assert polled["count"] == 1

    assert decide(ann_client, "blog", "b-1", "approve").status_code == 403
    assert ann_client.get("/moderate/audit/blog/b-1").status_code == 403


def test_an_admin_sees_every_site(client, moderators, sites) -> None:
    root = moderators.create("root", Role.ADMIN, [])
    hold(client, sites["news"], "n-1", abusive("news comment"))
    hold(client, sites["blog"], "b-1", abusive("blog comment"))
    log_in(client, "root", root.password)
    page = client.get("/moderate").get_data(as_text=True)
    assert "news comment" in page and "blog comment" in page
    only_blog = client.get("/moderate?site=blog").get_data(as_text=True)
    assert "blog comment" in only_blog and "news comment" not in only_blog


def test_the_page_shows_scores_reasons_author_and_post(client, ann_client, sites) -> None:
    record = hold(client, sites["news"], "c-1")
    page = ann_client.get("/moderate").get_data(as_text=True)
    assert "Ann Author" in page
    assert "ann@example.org" in page
    assert 'href="https://news.example/p-1"' in page
    (reason,) = record["decision"]["reasons"]  # the worker's: held for toxicity alone
    assert reason_kind(reason) is ReasonKind.TOXICITY
    assert str(escape(reason)) in page
    scores = record["decision"]["scores"]
    toxicity = re.search(r'<li class="score( over)?" title="toxicity', page)
    spam = re.search(r'<li class="score( over)?" title="spam', page)
    assert scores["toxicity"] >= 0.80 > scores["spam"]
    assert toxicity and toxicity.group(1) == " over"  # past the 0.80 hold threshold
    assert spam and spam.group(1) is None  # under 0.70
    assert '<strong id="queue-count">1</strong>' in page


def test_scores_are_marked_against_the_sites_own_thresholds(
    client, ann_client, settings, sites, redis_client
) -> None:
    def spam_bar() -> dict:
        items = ann_client.get("/moderate/queue.json").get_json()["items"]
        return next(bar for bar in items[0]["scores"] if bar["label"] == "spam")

    spam = hold(client, sites["news"], "c-1")["decision"]["scores"]["spam"]
    assert (spam_bar()["threshold"], spam_bar()["over"]) == (0.70, False)  # the default
    # The site lowers its spam threshold under the comment's score: the bar is marked over.
    lower = round(spam / 2, 4)
    strict = replace(settings.policy, hold={**settings.policy.hold, "spam": lower})
    PolicyStore(redis_client, settings.policy).replace("news", strict)
    assert (spam_bar()["threshold"], spam_bar()["over"]) == (lower, True)


def test_polling_returns_only_comments_after_the_cursor(client, ann_client, sites):
    hold(client, sites["news"], "c-1")
    page = ann_client.get("/moderate").get_data(as_text=True)
    tail = re.search(r'data-tail="([^"]*)"', page).group(1)
    assert tail

    assert ann_client.get(f"/moderate/queue.json?after={tail}").get_json()["items"] == []
    hold(client, sites["news"], "c-2")
    polled = ann_client.get(f"/moderate/queue.json?after={tail}").get_json()
    assert [item["id"] for item in polled["items"]] == ["c-2"]
    assert polled["count"] == 2
    assert polled["tail"] != tail
    item = polled["items"][0]
    assert item["urls"]["decide"] == "/moderate/decide/news/c-2"
    assert item["scores"][0] | {"over": True} == item["scores"][0]
    after_two = ann_client.get(f"/moderate/queue.json?after={polled['tail']}").get_json()
    assert after_two["items"] == []
    assert ann_client.get("/moderate/queue.json?limit=0").get_json()["items"] == []
    assert ann_client.get("/moderate/queue.json?after=nonsense").status_code == 422


def test_the_label_filter_keeps_comments_held_for_that_label(client, ann_client, sites) -> None:
    toxic = hold(client, sites["news"], "c-1")
    spam = hold(client, sites["news"], "c-2", SPAM)
    assert {reason_kind(r) for r in toxic["decision"]["reasons"]} == {ReasonKind.TOXICITY}
    assert {reason_kind(r) for r in spam["decision"]["reasons"]} == {ReasonKind.SPAM}
    page = ann_client.get("/moderate?label=spam").get_data(as_text=True)
    # (c-1's text may still show on c-2's card, among its author's recent comments)
    assert 'data-key="news/c-2"' in page
    assert 'data-key="news/c-1"' not in page


# --- deciding ----------------------------------------------------------------------------------


def test_deciding_updates_the_record_and_the_audit_trail(client, ann_client, sites):
    hold(client, sites["news"], "c-1")
    response = decide(ann_client, "news", "c-1", "approve", note="fine in context")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["record"]["status"] == "approved"

    record = client.get("/v1/comments/c-1", headers=bearer(sites["news"])).get_json()
    assert record["status"] == "approved"
    assert record["decision"]["decided_by"] == "moderator:ann"

    events = ann_client.get("/moderate/audit/news/c-1").get_json()["events"]
    assert [(e["actor"], e["to"]) for e in events][-1] == ("moderator:ann", "approved")
    assert events[-1]["note"] == "fine in context"
    assert "c-1" not in str(ann_client.get("/moderate/queue.json").get_json()["items"])


def test_a_second_decision_is_a_conflict(client, ann_client, sites) -> None:
    hold(client, sites["news"], "c-1")
    assert decide(ann_client, "news", "c-1", "reject").status_code == 200
    again = decide(ann_client, "news", "c-1", "approve")
    assert again.status_code == 409
    assert again.get_json()["error"]["current"]["status"] == "rejected"


def test_bad_decisions_are_refused(client, ann_client, sites) -> None:
    hold(client, sites["news"], "c-1")
    token = {"X-CSRFToken": queue_token(ann_client)}
    hold_it = ann_client.post("/moderate/decide/news/c-1", json={"action": "hold"}, headers=token)
    assert hold_it.status_code == 422
    assert "action" in hold_it.get_json()["error"]["fields"]
    form = ann_client.post("/moderate/decide/news/c-1", data={"action": "x"}, headers=token)
    assert form.status_code == 415
    missing = ann_client.post(
        "/moderate/decide/news/nope", json={"action": "approve"}, headers=token
    )
    assert missing.status_code == 404


# --- headers and escaping ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/moderate/login", 302),  # logged in already: off to the queue
        ("/moderate", 200),
        ("/moderate/queue.json", 200),
        ("/moderate/static/moderate.js", 200),
        ("/moderate/static/moderate.css", 200),
        ("/moderate/audit/news/nope", 404),
    ],
)
def test_every_response_carries_the_security_headers(
    ann_client: FlaskClient, path: str, status: int
) -> None:
    response = ann_client.get(path)
    assert response.status_code == status
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "style-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    response.close()


def test_the_page_has_no_inline_script_or_style(ann_client: FlaskClient) -> None:
    page = ann_client.get("/moderate").get_data(as_text=True)
    assert re.findall(r"<script[^>]*>", page) == [
        '<script src="/moderate/static/moderate.js" defer>'
    ]
    assert " style=" not in page and "<style" not in page
    assert not re.search(r"\son\w+=", page)  # no inline event handlers


def test_comment_text_is_escaped(client, ann_client, sites) -> None:
    evil = abusive("<script>window.pwned=1</script><b>bold</b>")
    hold(
        client,
        sites["news"],
        "c-1",
        evil,
        author={
            "id": "u-1",
            "name": '<img src=x onerror="alert(1)">',
            "url": "javascript:alert(1)",
        },
        context={"permalink": "javascript:alert(2)", "post_id": "<i>p</i>"},
    )
    page = ann_client.get("/moderate").get_data(as_text=True)
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;" in page
    assert "<script>window.pwned" not in page
    assert "<b>bold</b>" not in page
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in page
    assert "javascript:" not in page
    assert "<i>p</i>" not in page
