"""Coral Talk's External Moderation Phase (`POST /coral/<site>`) and its secrets
(`PUT /v1/site/coral`).

Requests are built as Coral builds them (tests/support/coral.py, from Coral's external.ts,
fetch.ts and signingSecret/helpers.ts): the pretty-printed JSON body, its headers, and one
signature per active secret. The answers are checked against what Coral's `processPhase`
accepts: 204, or 200 with a body its Joi schema validates.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests
from flask import Flask
from flask.testing import FlaskClient

from moderation.app import create_app
from moderation.core.records import Action, Decision
from moderation.core.redis_keys import KEYS
from moderation.core.settings import Settings
from moderation.protocols.coral import (
    REJECTED,
    SPAM,
    TOXIC,
    WITHHELD,
    CoralError,
    answer,
    parse_request,
    plain_text,
    signed_by_any,
)
from moderation.storage.comment_store import SCORING_FAILED
from moderation.storage.site_store import SiteCredentials
from tests.support.coral import (
    OLD_SECRET,
    SECRET,
    headers_for,
    moderation_request,
    send,
    serialised,
)
from tests.support.load import served_api
from tests.support.processes import running_worker
from tests.support.redis_dump import dump_everything, find_in_dump
from tests.support.redis_server import RedisServer

TOXIC_TEXT = "You are a fucking idiot and a worthless piece of shit."
SPAM_TEXT = "check out my channel http://bit.ly/x subscribe"
CLEAN_TEXT = "Thanks for the thoughtful article; the section on budgets was very clear."
#: What Coral's Joi schema (`ExternalModerationResponseSchema`) lets through.
CORAL_STATUSES = {"NONE", "APPROVED", "REJECTED", "PREMOD", "SYSTEM_WITHHELD"}
CORAL_FLAGS = {TOXIC, SPAM}


def assert_coral_accepts(body: dict) -> None:
    """The keys and values Coral's `validateResponse` accepts (it would throw otherwise)."""
    assert set(body) <= {"status", "actions", "tags", "moderationAction"}
    assert body.get("status", "NONE") in CORAL_STATUSES
    for action in body.get("actions", []):
        assert action.keys() == {"actionType", "reason"}
        assert action["actionType"] == "FLAG" and action["reason"] in CORAL_FLAGS
    if "moderationAction" in body:
        assert body["moderationAction"]["status"] in CORAL_STATUSES
        assert set(body["moderationAction"]["rejectionReason"]) == {"code"}


def decision(action: Action, reasons: list[str], scores: dict | None = None) -> Decision:
    scores = {"toxicity": 0.1, "spam": 0.1} if scores is None else scores
    return Decision(action, reasons, scores, {"toxicity": "lite"}, "auto", 0.0)


# --- the pure protocol -----------------------------------------------------------------------


def test_the_request_is_read_as_coral_builds_it() -> None:
    request = moderation_request(
        "<p>Meat &amp; Fish<br></p><div><b>Bold</b> words</div>",
        action="EDIT",
        parent_id="d79b787f-f406-49a0-a179-72e3652e54be",
    )
    body = serialised(request)
    assert body.startswith(b'{\n  "action": "EDIT",\n  "comment": {\n    "body": ')
    parsed = parse_request(body)
    assert parsed.action == "EDIT" and parsed.author_role == "COMMENTER"
    assert parsed.submission.content == "Meat & Fish\n\nBold words"
    assert parsed.submission.author == {"id": "baf4e943-3594-4fcc-b2ba-3e8de7a76352"}
    assert parsed.submission.context == {
        "post_id": "245b3856-b0a0-4d2f-a6bb-58c71f18d6a6",
        "permalink": "https://news.example/posts/a-story/",
        "parent_id": "d79b787f-f406-49a0-a179-72e3652e54be",
    }
    top_level = parse_request(serialised(moderation_request("Plain text, a < b.")))
    assert top_level.submission.content == "Plain text, a < b."
    assert "parent_id" not in top_level.submission.context
    # Fields Coral may add one day are not an error.
    assert parse_request(serialised({**request, "revision": {"id": "r1"}})).action == "EDIT"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"action": "DELETE"}, "action"),
        ({"action": None}, "action"),
        ({"comment": {"parentID": None}}, "comment.body"),
        ({"comment": {"body": 5}}, "comment.body"),
        ({"comment": "text"}, "comment"),
        ({"author": {"id": "u" * 200, "role": "COMMENTER"}}, "author.id"),
        ({"author": {"id": "u-1", "role": ["ADMIN"]}}, "author.role"),
        ({"story": {"id": "s-1", "url": "https://x.example/" + "p" * 2100}}, "story.url"),
        ({"comment": {"body": "hi", "parentID": "bad\u0000id"}}, "comment.parentID"),
    ],
)
def test_invalid_fields_are_named_as_coral_names_them(change: dict, field: str) -> None:
    with pytest.raises(CoralError) as refused:
        parse_request(serialised({**moderation_request("hello"), **change}))
    assert refused.value.status == 422
    assert refused.value.fields is not None and field in refused.value.fields
    assert field in refused.value.message


@pytest.mark.parametrize("raw", [b"{", b"[]", b'"text"', b"\xff\xfe"])
def test_a_body_that_is_no_json_object_is_malformed(raw: bytes) -> None:
    with pytest.raises(CoralError) as refused:
        parse_request(raw)
    assert refused.value.status == 400


def test_any_listed_signature_under_any_secret_is_valid() -> None:
    body = serialised(moderation_request("hello"))
    rotating = headers_for(body, [SECRET, OLD_SECRET])["X-Coral-Signature"]
    assert rotating.count("sha256=") == 2 and "," in rotating
    assert signed_by_any(rotating, body, [SECRET])
    assert signed_by_any(rotating, body, [OLD_SECRET])
    assert signed_by_any(
        headers_for(body, [OLD_SECRET])["X-Coral-Signature"], body, [SECRET, OLD_SECRET]
    )
    assert not signed_by_any(rotating, body + b" ", [SECRET])
    assert not signed_by_any(rotating, body, ["empsec_other"])
    assert not signed_by_any(None, body, [SECRET])
    assert not signed_by_any("sha256=", body, [SECRET])
    assert not signed_by_any(rotating.replace("sha256=", "sha1="), body, [SECRET])


def test_plain_text_keeps_what_coral_plain_text_keeps() -> None:
    assert plain_text("<p>one</p><p>two</p>") == "one\ntwo"
    assert plain_text("a <a href='http://bit.ly/x'>http://bit.ly/x</a>") == "a http://bit.ly/x"
    assert plain_text("<p></p><br>") == ""


def test_decisions_become_coral_answers() -> None:
    hold = answer(decision(Action.HOLD, ["toxicity 0.93 >= 0.80", "spam 0.75 >= 0.70"]))
    assert hold.status == 200
    assert hold.body == {
        "status": WITHHELD,
        "actions": [
            {"actionType": "FLAG", "reason": TOXIC},
            {"actionType": "FLAG", "reason": SPAM},
        ],
    }
    links = answer(decision(Action.HOLD, ["3 links > 2 allowed"])).body
    assert links == {"status": WITHHELD, "actions": [{"actionType": "FLAG", "reason": SPAM}]}
    quoted = answer(decision(Action.HOLD, ['toxicity 0.90 >= 0.80: "a link idiot"'])).body
    assert quoted and quoted["actions"] == [{"actionType": "FLAG", "reason": TOXIC}]
    banned = answer(decision(Action.HOLD, ['banned word "idiot"'])).body
    assert banned and banned["actions"] == [{"actionType": "FLAG", "reason": TOXIC}]
    premoderated = answer(decision(Action.HOLD, ["site premoderates every comment"])).body
    assert premoderated == {"status": WITHHELD, "actions": []}  # no flag that would mislead

    reject = answer(decision(Action.REJECT, ["spam 0.99 >= 0.97"]))
    assert reject.body == {
        "status": REJECTED,
        "actions": [{"actionType": "FLAG", "reason": SPAM}],
        "moderationAction": {"status": REJECTED, "rejectionReason": {"code": "SPAM"}},
    }
    toxic_reject = answer(decision(Action.REJECT, ['banned word "x"', "toxicity 0.99 >= 0.97"]))
    assert toxic_reject.body and toxic_reject.body["moderationAction"]["rejectionReason"] == {
        "code": "BANNED_WORD"
    }
    for body in (hold.body, links, banned, premoderated, reject.body, toxic_reject.body):
        assert body is not None
        assert_coral_accepts(body)

    assert answer(decision(Action.APPROVE, [])).status == 204
    assert answer(None).status == 204 and answer(None).outcome == "timeout"
    failed = decision(Action.HOLD, [SCORING_FAILED], scores=None)
    assert answer(failed).status == 204 and answer(failed).outcome == "unscored"


# --- secrets and refusals, through the app ---------------------------------------------------


@pytest.fixture
def coral_app(settings: Settings) -> Iterator[Flask]:
    """The app with a small body limit and a short wait (no worker runs in these tests)."""
    application = create_app(settings.with_overrides(max_body_bytes=4096, coral_timeout=0.2))
    yield application
    application.extensions["moderation"].redis.close()


@pytest.fixture
def coral_client(coral_app: Flask) -> FlaskClient:
    return coral_app.test_client()


def post_as_coral(
    client: FlaskClient, site: str, request: dict, secrets: list[str], body: bytes | None = None
):
    raw = serialised(request) if body is None else body
    return client.post(f"/coral/{site}", data=raw, headers=headers_for(raw, secrets))


def test_signing_secrets_are_write_only_and_encrypted(
    coral_client: FlaskClient, auth: dict, site: SiteCredentials, redis_client: redis.Redis
) -> None:
    assert coral_client.get("/v1/site/coral", headers=auth).get_json() == {
        "site": "news",
        "configured": False,
        "secret_count": 0,
        "phase_path": "/coral/news",
    }
    put = coral_client.put(
        "/v1/site/coral", json={"signing_secrets": [SECRET, OLD_SECRET]}, headers=auth
    )
    assert put.status_code == 200
    assert put.get_json() == {
        "site": "news",
        "configured": True,
        "secret_count": 2,
        "phase_path": "/coral/news",
    }
    assert coral_client.get("/v1/site/coral", headers=auth).get_json()["secret_count"] == 2
    dump = dump_everything(redis_client)
    for secret in (SECRET, OLD_SECRET):
        assert find_in_dump(dump, secret) == []
        assert find_in_dump(dump, secret.removeprefix("empsec_")) == []
    assert redis_client.exists(KEYS.coral_secrets("news"))

    # A sealed value copied to another site's key is not that site's.
    redis_client.set(KEYS.coral_secrets("blog"), redis_client.get(KEYS.coral_secrets("news")))
    assert (
        post_as_coral(coral_client, "blog", moderation_request("hi"), [SECRET]).status_code == 401
    )

    cleared = coral_client.delete("/v1/site/coral", headers=auth)
    assert cleared.get_json()["configured"] is False
    assert (
        post_as_coral(coral_client, "news", moderation_request("hi"), [SECRET]).status_code == 401
    )
    assert coral_client.put("/v1/site/coral", json={"signing_secrets": [SECRET]}).status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"signing_secrets": []},
        {"signing_secrets": [f"empsec_{n}" for n in range(6)]},
        {"signing_secrets": ""},
        {"signing_secrets": [""]},
        {"signing_secrets": [7]},
        {"signing_secrets": ["with space"]},
        {"signing_secrets": ["x" * 257]},
        {"signing_secrets": [SECRET], "url": "https://coral.example"},
    ],
)
def test_bad_signing_secrets_are_422_naming_the_field(
    coral_client: FlaskClient, auth: dict, body: dict
) -> None:
    response = coral_client.put("/v1/site/coral", json=body, headers=auth)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "validation_failed"
    assert error["fields"]
    assert all(name.split(".")[0] in ("signing_secrets", "url") for name in error["fields"])
    for secret in body.get("signing_secrets") or []:  # a bad secret is not echoed either
        assert not isinstance(secret, str) or not secret or secret not in response.text


def test_unsigned_and_unknown_are_refused_alike(
    coral_client: FlaskClient, auth: dict, site: SiteCredentials
) -> None:
    coral_client.put("/v1/site/coral", json={"signing_secrets": [SECRET]}, headers=auth)
    request = moderation_request("hello")
    refusals = [
        post_as_coral(coral_client, "news", request, ["empsec_wrong"]),
        post_as_coral(coral_client, "no-such-site", request, [SECRET]),
        post_as_coral(coral_client, "Not A Site!", request, [SECRET]),
        coral_client.post("/coral/news", data=serialised(request)),  # no signature at all
    ]
    for response in refusals:
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] == "unauthorized"
    assert len({response.get_data() for response in refusals}) == 1  # nothing tells them apart

    malformed = post_as_coral(coral_client, "news", {}, [SECRET], body=b'{"action": "NEW",')
    assert malformed.status_code == 400
    invalid = post_as_coral(coral_client, "news", {**request, "action": "PUBLISH"}, [SECRET])
    assert invalid.status_code == 422
    assert list(invalid.get_json()["error"]["fields"]) == ["action"]
    too_large = post_as_coral(coral_client, "news", moderation_request("x" * 5000), [SECRET])
    assert too_large.status_code == 413
    assert too_large.get_json()["error"]["code"] == "payload_too_large"
    no_text = post_as_coral(coral_client, "news", moderation_request("<p><br></p>"), [SECRET])
    assert no_text.status_code == 204 and no_text.get_data() == b""


def test_no_worker_in_time_is_no_opinion(
    coral_client: FlaskClient, auth: dict, site: SiteCredentials
) -> None:
    """Coral itself treats a phase that times out as no opinion: so does the service."""
    coral_client.put("/v1/site/coral", json={"signing_secrets": [SECRET]}, headers=auth)
    response = post_as_coral(coral_client, "news", moderation_request(TOXIC_TEXT), [SECRET])
    assert response.status_code == 204 and response.get_data() == b""
    assert response.headers["X-Moderation-Outcome"] == "timeout"


def test_signed_calls_count_per_site(settings: Settings, auth: dict, site: SiteCredentials) -> None:
    """The site's budget is spent by signed calls only: unsigned ones cannot exhaust it."""
    limited = create_app(settings.with_overrides(rate_limit_site="2 per minute"))
    client = limited.test_client()
    try:
        client.put("/v1/site/coral", json={"signing_secrets": [SECRET]}, headers=auth)
        empty = moderation_request("<p></p>")  # no text: answered without the workers
        for _ in range(3):
            assert post_as_coral(client, "news", empty, ["empsec_wrong"]).status_code == 401
        assert post_as_coral(client, "news", empty, [SECRET]).status_code == 204
        assert post_as_coral(client, "news", empty, [SECRET]).status_code == 204
        refused = post_as_coral(client, "news", empty, [SECRET])
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        assert refused.get_json()["error"]["code"] == "rate_limited"
    finally:
        limited.extensions["moderation"].redis.close()


# --- a real `moderation serve` and a real worker ---------------------------------------------


@pytest.fixture
def served(redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path) -> Iterator[str]:
    # The answers, not the latency, are under test here (bench/coral_latency.py measures it).
    with served_api(redis_server.url, tmp_path, {"MODERATION_CORAL_TIMEOUT": "10"}) as base:
        yield base


@pytest.fixture
def worker(redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path) -> Iterator:
    with running_worker(redis_server.url, tmp_path / "worker.log") as process:
        yield process


@pytest.mark.e2e
def test_coral_gets_withheld_rejected_or_no_opinion(
    served: str, worker, site: SiteCredentials, redis_client: redis.Redis, tmp_path: Path
) -> None:
    session = requests.Session()
    auth = {"Authorization": f"Bearer {site.api_key}"}
    url = f"{served}/coral/news"
    # Coral is rotating: it signs with the new secret and the old one, and the site has set
    # only the old one so far.
    put = session.put(
        f"{served}/v1/site/coral", json={"signing_secrets": [OLD_SECRET]}, headers=auth
    )
    assert put.status_code == 200 and OLD_SECRET not in put.text
    rotating = [SECRET, OLD_SECRET]

    toxic = send(session, url, moderation_request(f"<p>{TOXIC_TEXT}</p>"), rotating)
    assert toxic.status_code == 200
    assert toxic.headers["Content-Type"] == "application/json"
    assert toxic.json() == {
        "status": "SYSTEM_WITHHELD",
        "actions": [{"actionType": "FLAG", "reason": "COMMENT_DETECTED_TOXIC"}],
    }
    spam = send(session, url, moderation_request(SPAM_TEXT, author_id="spammer-1"), rotating)
    assert spam.status_code == 200
    assert spam.json() == {
        "status": "SYSTEM_WITHHELD",
        "actions": [{"actionType": "FLAG", "reason": "COMMENT_DETECTED_SPAM"}],
    }
    clean = send(session, url, moderation_request(CLEAN_TEXT, action="EDIT"), rotating)
    assert clean.status_code == 204 and clean.content == b""

    # The rotation ends: the site sets the new secret; the old one alone no longer signs.
    session.put(f"{served}/v1/site/coral", json={"signing_secrets": [SECRET]}, headers=auth)
    assert send(session, url, moderation_request(CLEAN_TEXT), [SECRET]).status_code == 204
    assert send(session, url, moderation_request(CLEAN_TEXT), [OLD_SECRET]).status_code == 401

    # With auto-reject on, the site's policy rejects what crosses its reject thresholds.
    policy = {"auto_reject": True, "reject": {"toxicity": 0.9}}
    assert session.put(f"{served}/v1/policy", json=policy, headers=auth).status_code == 200
    rejected = send(session, url, moderation_request(TOXIC_TEXT), [SECRET])
    assert rejected.status_code == 200
    body = rejected.json()
    assert body["status"] == "REJECTED"
    assert body["actions"] == [{"actionType": "FLAG", "reason": "COMMENT_DETECTED_TOXIC"}]
    assert body["moderationAction"] == {
        "status": "REJECTED",
        "rejectionReason": {"code": "ABUSIVE"},
    }
    assert_coral_accepts(body)

    # Checks leave nothing of the comments, and no log holds a secret or a comment's text.
    dump = dump_everything(redis_client)
    for text in (TOXIC_TEXT, SPAM_TEXT, CLEAN_TEXT, SECRET, OLD_SECRET):
        assert find_in_dump(dump, text) == [], text
    logs = (tmp_path / "api.log").read_text() + (tmp_path / "worker.log").read_text()
    for text in (TOXIC_TEXT, SPAM_TEXT, CLEAN_TEXT, SECRET, OLD_SECRET, "bit.ly"):
        assert text not in logs
