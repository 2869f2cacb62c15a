"""Access control on every endpoint, enumerated from the app's URL map.

`PROTECTED` says, for every route and method, how to call it and which credential it needs;
`PUBLIC` lists the routes anyone may call, with the reason. A route in neither fails
`test_every_route_has_an_access_case`, so a new endpoint cannot ship without a case here.

Each protected endpoint is called by every wrong caller (no credential, a wrong one, a
rotated-out one, the wrong kind, a disabled moderator, another site or a moderator of another
site) in two worlds: one where the target comment (on site `news`) does not exist and one
where it does. Every refusal must be the contract's error JSON, leak none of the target's
data, change nothing, and be the same in both worlds (so a caller cannot even learn that the
comment exists). The rightful caller goes last and must succeed.
"""

from __future__ import annotations

import base64
import functools
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash
from werkzeug.test import TestResponse

from moderation.actions.review_service import decode_cursor
from moderation.app import create_app
from moderation.core.domain_errors import InvalidRequest
from moderation.core.redis_keys import KEYS
from moderation.core.settings import Settings
from moderation.http.errors import CODES, from_domain_error
from moderation.protocols.perspective import GOOGLE_STATUS
from moderation.storage import moderator_store as moderators_module
from moderation.storage.coral_secrets import CoralSecretStore
from moderation.storage.moderator_store import ModeratorStore, Role
from moderation.storage.site_store import SiteStore
from tests.support.coral import moderation_request, serialised, signature_header
from tests.support.held import form_token, log_in, page_token, store_hold

TARGET_ID = "c-target"
TARGET = {
    "id": TARGET_ID,
    # Nothing that HTML or JSON would escape, so a leak is found in pages and JSON alike.
    "content": "zq-content of the target comment",
    "author": {
        "id": "u-zq",
        "name": "Zoe Quill-Leaky",
        "email": "zoe.leaky@example.org",
        "url": "https://zoe-leaky.example/home",
        "ip": "203.0.113.77",
        "user_agent": "LeakyAgent/9.9",
    },
    "context": {"post_id": "p-zq-leaky", "permalink": "https://news.example/p-zq-leaky"},
}
NEWS_BANNED_WORD = "zqbannedleaky"
NEWS_CALLBACK = "https://news-callback-zqleaky.example/hook"
#: What no refused caller may ever see: the target's content and personal data, and the
#: `news` site's own settings.
LEAKS = [
    TARGET["content"],
    "Zoe Quill-Leaky",
    "zoe.leaky@example.org",
    "zoe-leaky.example",
    "203.0.113.77",
    "LeakyAgent",
    "p-zq-leaky",
    NEWS_BANNED_WORD,
    "news-callback-zqleaky",
]

SITE, MODERATOR, SESSION, PAGE = "site key", "moderator token", "/moderate session", "page"
AKISMET = "site key as Akismet's api_key form field"
PERSPECTIVE = "site key in ?key= (Perspective)"
CORAL = "Coral's X-Coral-Signature under the site's signing secret"
NEWS_CORAL_SECRET = "empsec_" + "4e" * 33
BLOG_CORAL_SECRET = "empsec_" + "b1" * 33
OK = "2xx"
#: Akismet's refusal: a 200 whose text is `invalid` or `Missing required field: api_key.`.
AKISMET_REFUSED = "akismet refusal"


@dataclass(frozen=True)
class Call:
    """How to call one endpoint, and what a caller of the other tenant gets: "foreign" is
    404 or 403 for someone else's resource, OK where the endpoint acts on the caller's own
    site (and then must show nothing of `news`)."""

    auth: str
    method: str
    path: str
    json: Any = None
    form: dict[str, str] | None = None  # AKISMET: the form besides the key
    foreign: int | str = 404
    owner: int | str = OK
    #: A string the rightful caller's answer contains: proof the leak check can see a leak.
    reveals: str | None = None


TARGET_URL = f"/v1/comments/{TARGET_ID}"
REVIEW_URL = f"/v1/review/news/{TARGET_ID}"
OTHER_CONTENT = {"id": TARGET_ID, "content": "someone else's text under the same id"}
AUTHOR_URL = f"/v1/review/news/authors/{TARGET['author']['id']}"
PAGE_AUTHOR_URL = f"/moderate/authors/news/{TARGET['author']['id']}"

PROTECTED: dict[tuple[str, str], Call] = {
    # host sites (API key)
    ("/v1/comments", "POST"): Call(
        SITE, "POST", "/v1/comments", OTHER_CONTENT, foreign=OK, owner=409
    ),
    ("/v1/comments/batch", "POST"): Call(
        SITE, "POST", "/v1/comments/batch", {"comments": [OTHER_CONTENT]}, foreign=OK
    ),
    ("/v1/comments/<path:comment_id>", "GET"): Call(SITE, "GET", TARGET_URL),
    ("/v1/comments/<path:comment_id>", "DELETE"): Call(SITE, "DELETE", TARGET_URL),
    ("/v1/comments/<path:comment_id>/deliveries", "GET"): Call(
        SITE, "GET", TARGET_URL + "/deliveries"
    ),
    ("/v1/comments/<path:comment_id>/redeliver", "POST"): Call(
        SITE, "POST", TARGET_URL + "/redeliver"
    ),
    ("/v1/comments/<path:comment_id>/reports", "POST"): Call(
        SITE, "POST", TARGET_URL + "/reports", {"reporter": "r-1", "reason": "abuse"}
    ),
    ("/v1/policy", "GET"): Call(SITE, "GET", "/v1/policy", foreign=OK, reveals=NEWS_BANNED_WORD),
    ("/v1/policy", "PUT"): Call(SITE, "PUT", "/v1/policy", {"banned_words": ["x"]}, foreign=OK),
    ("/v1/site", "GET"): Call(SITE, "GET", "/v1/site", foreign=OK, reveals=NEWS_CALLBACK),
    ("/v1/site", "PUT"): Call(
        SITE, "PUT", "/v1/site", {"callback_url": "https://93.184.215.14/hook"}, foreign=OK
    ),
    ("/v1/models", "GET"): Call(SITE, "GET", "/v1/models", foreign=OK),
    ("/v1/site/coral", "GET"): Call(SITE, "GET", "/v1/site/coral", foreign=OK),
    ("/v1/site/coral", "PUT"): Call(
        SITE, "PUT", "/v1/site/coral", {"signing_secrets": ["empsec_new"]}, foreign=OK
    ),
    ("/v1/site/coral", "DELETE"): Call(SITE, "DELETE", "/v1/site/coral", foreign=OK),
    # Coral Talk's External Moderation Phase (signed; no worker runs here: no opinion, 204)
    ("/coral/<site>", "POST"): Call(
        CORAL, "POST", "/coral/news", moderation_request("hi"), foreign=401
    ),
    # host sites through the Akismet-compatible API (the key in the form)
    ("/1.1/comment-check", "POST"): Call(
        AKISMET,
        "POST",
        "/1.1/comment-check",
        form={"user_ip": "203.0.113.9", "user_role": "administrator", "comment_content": "hi"},
        foreign=OK,
    ),
    ("/1.1/submit-spam", "POST"): Call(
        AKISMET,
        "POST",
        "/1.1/submit-spam",
        form={"user_ip": "203.0.113.9", "comment_content": "buy cheap pills"},
        foreign=OK,
    ),
    ("/1.1/submit-ham", "POST"): Call(
        AKISMET,
        "POST",
        "/1.1/submit-ham",
        form={"user_ip": "203.0.113.9", "comment_content": "a fine comment"},
        foreign=OK,
    ),
    ("/1.1/verify-key", "POST"): Call(
        AKISMET, "POST", "/1.1/verify-key", form={"blog": "https://news.example"}, foreign=OK
    ),
    # Akismet's account calls (WordPress's settings page); key-sites and usage-limit take GET too
    **{
        (path, method): Call(
            AKISMET, method, path, form={"blog": "https://news.example"}, foreign=OK
        )
        for path, methods in (
            ("/1.1/get-subscription", ("POST",)),
            ("/1.1/get-stats", ("POST",)),
            ("/1.1/deactivate", ("POST",)),
            ("/1.1/key-sites", ("GET", "POST")),
            ("/1.2/key-sites", ("GET", "POST")),
            ("/1.1/usage-limit", ("GET", "POST")),
            ("/1.2/usage-limit", ("GET", "POST")),
        )
        for method in methods
    },
    # host sites through the Perspective-compatible API (the key in ?key=; no worker runs here)
    ("/v1alpha1/comments:analyze", "POST"): Call(
        PERSPECTIVE,
        "POST",
        "/v1alpha1/comments:analyze",
        {"comment": {"text": "hi"}, "requestedAttributes": {"TOXICITY": {}}},
        foreign=503,
        owner=503,
    ),
    ("/v1alpha1/comments:suggestscore", "POST"): Call(
        PERSPECTIVE,
        "POST",
        "/v1alpha1/comments:suggestscore",
        {
            "comment": {"text": "hi"},
            "attributeScores": {"TOXICITY": {"summaryScore": {"value": 1}}},
        },
        foreign=OK,
    ),
    # moderators (API token)
    ("/v1/review/queue", "GET"): Call(
        MODERATOR, "GET", "/v1/review/queue?site=news", foreign=403, reveals=TARGET["content"]
    ),
    ("/v1/review/bulk", "POST"): Call(
        MODERATOR,
        "POST",
        "/v1/review/bulk",
        {"site": "news", "ids": [TARGET_ID], "action": "reject"},
        foreign=403,
    ),
    ("/v1/review/<site>/<path:comment_id>", "GET"): Call(
        MODERATOR, "GET", REVIEW_URL, foreign=403, reveals=TARGET["content"]
    ),
    ("/v1/review/<site>/<path:comment_id>", "POST"): Call(
        MODERATOR, "POST", REVIEW_URL, {"action": "reject", "note": "n"}, foreign=403
    ),
    ("/v1/review/<site>/<path:comment_id>/audit", "GET"): Call(
        MODERATOR, "GET", REVIEW_URL + "/audit", foreign=403
    ),
    ("/v1/review/reported", "GET"): Call(
        MODERATOR, "GET", "/v1/review/reported?site=news", foreign=403
    ),
    ("/v1/review/approved", "GET"): Call(
        MODERATOR, "GET", "/v1/review/approved?site=news", foreign=403
    ),
    ("/v1/review/stats", "GET"): Call(MODERATOR, "GET", "/v1/review/stats?site=news", foreign=403),
    ("/v1/review/<site>/authors/<path:author_id>", "GET"): Call(
        MODERATOR, "GET", AUTHOR_URL, foreign=403, reveals=TARGET["content"]
    ),
    ("/v1/review/<site>/authors/<path:author_id>", "POST"): Call(
        MODERATOR, "POST", AUTHOR_URL, {"action": "premoderate"}, foreign=403
    ),
    # the /moderate page (session cookie; CSRF token on POSTs)
    ("/moderate", "GET"): Call(
        PAGE, "GET", "/moderate?site=news", foreign=OK, reveals=TARGET["content"]
    ),
    ("/moderate/queue.json", "GET"): Call(
        SESSION, "GET", "/moderate/queue.json?site=news", foreign=OK, reveals=TARGET["content"]
    ),
    ("/moderate/decide/<site>/<path:comment_id>", "POST"): Call(
        SESSION, "POST", f"/moderate/decide/news/{TARGET_ID}", {"action": "reject"}, foreign=403
    ),
    ("/moderate/audit/<site>/<path:comment_id>", "GET"): Call(
        SESSION, "GET", f"/moderate/audit/news/{TARGET_ID}", foreign=403
    ),
    ("/moderate/authors/<site>/<path:author_id>", "POST"): Call(
        SESSION, "POST", PAGE_AUTHOR_URL, {"action": "premoderate"}, foreign=403
    ),
    ("/moderate/dashboard", "GET"): Call(PAGE, "GET", "/moderate/dashboard?site=news", foreign=OK),
    ("/moderate/dashboard.json", "GET"): Call(
        SESSION, "GET", "/moderate/dashboard.json?site=news", foreign=403
    ),
}

#: Routes anyone may call, and why that is safe.
PUBLIC: dict[tuple[str, str], str] = {
    ("/healthz", "GET"): "liveness for load balancers: says only 'ok'",
    ("/readyz", "GET"): "readiness: Redis, worker count, queue depth, model name",
    ("/metrics", "GET"): "Prometheus figures: counts, no ids or text",
    ("/docs", "GET"): "Swagger UI page",
    ("/docs/assets/<path:filename>", "GET"): "Swagger UI's scripts and styles",
    ("/v1/openapi.json", "GET"): "the API's description",
    ("/$discovery/rest", "GET"): "Perspective's discovery document (Google's client reads it)",
    ("/1.1/test", "GET"): "Akismet's connectivity check (WordPress): says only 'connected'",
    ("/static/<path:filename>", "GET"): "Flask's static folder (the app has none)",
    ("/moderate/static/<path:filename>", "GET"): "the page's script and styles",
    ("/moderate/login", "GET"): "the login form",
    ("/moderate/login", "POST"): "logging in (CSRF token required)",
    ("/moderate/logout", "POST"): "ends the caller's own session (CSRF token required)",
}


def routes(app: Flask) -> set[tuple[str, str]]:
    return {
        (rule.rule, method)
        for rule in app.url_map.iter_rules()
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }


# --- the world: two sites, four moderators, their sessions, and maybe the target comment --


def cheap_password_hash(password: str) -> str:
    return generate_password_hash(password, method="pbkdf2:sha256:1000")


@pytest.fixture(autouse=True)
def fast_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Access rules do not depend on the hash's cost; scrypt would make these tests slow."""
    monkeypatch.setattr(moderators_module, "generate_password_hash", cheap_password_hash)


@dataclass
class World:
    app: Flask
    redis: redis.Redis
    keys: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    clients: dict[str, FlaskClient] = field(default_factory=dict)
    csrf: dict[str, str] = field(default_factory=dict)

    def news_state(self) -> dict[str, Any]:
        """Everything of `news` a wrong caller must not be able to change."""
        r = self.redis
        return {
            "comment": r.hgetall(KEYS.comment("news", TARGET_ID)),
            "audit": r.lrange(KEYS.audit("news", TARGET_ID), 0, -1),
            "held": r.zrange(KEYS.held("news"), 0, -1),
            "site": r.hgetall(KEYS.site("news")),
            "policy": r.get(KEYS.policy("news")),
            "coral secrets": r.get(KEYS.coral_secrets("news")),
            "labels": r.xrange(KEYS.labels("news")),
            "reports": r.hgetall(KEYS.reports("news", TARGET_ID)),
            "author": r.hgetall(KEYS.author_counts("news", TARGET["author"]["id"])),
            "author log": r.lrange(KEYS.author_log("news", TARGET["author"]["id"]), 0, -1),
            "label stats": r.hgetall(KEYS.label_stats("news")),
        }


def build_world(app: Flask, connection: redis.Redis, settings: Settings, target: bool) -> World:
    connection.flushall()
    world = World(app, connection)
    sites = SiteStore(connection, settings.secret_key)
    world.keys["news-old"] = sites.create("news").api_key
    world.keys["news"] = sites.rotate_api_key("news").api_key
    blog = sites.create("blog")
    world.keys["blog"], world.keys["blog-ak"] = blog.api_key, blog.akismet_key or ""
    world.keys["news-ak-old"] = sites.rotate_akismet_key("news")
    sites.rotate_akismet_key("news")  # the key above is rotated out
    sites.set_callback_url("news", NEWS_CALLBACK)
    coral = CoralSecretStore(connection, settings.secret_key)
    coral.set("news", [NEWS_CORAL_SECRET])
    coral.set("blog", [BLOG_CORAL_SECRET])
    put = app.test_client().put(
        "/v1/policy", json={"banned_words": [NEWS_BANNED_WORD]}, headers=bearer(world.keys["news"])
    )
    assert put.status_code == 200, put.get_json()

    moderators = ModeratorStore(connection)
    for name, role, assigned in [
        ("ann", Role.MODERATOR, ["news"]),
        ("bob", Role.MODERATOR, ["blog"]),
        ("dis", Role.MODERATOR, ["news"]),
        ("root", Role.ADMIN, []),
    ]:
        created = moderators.create(name, role, assigned)
        world.tokens[name] = created.token
        if name != "root":
            client = app.test_client()
            assert log_in(client, name, created.password).status_code == 302
            world.clients[name] = client
            world.csrf[name] = page_token(client.get("/moderate").get_data(as_text=True))
    moderators.set_disabled("dis", True)  # after logging in: a live session of a disabled account
    anonymous = app.test_client()
    world.clients["anonymous"] = anonymous
    world.csrf["anonymous"] = form_token(anonymous.get("/moderate/login").get_data(as_text=True))

    if target:
        submitted = app.test_client().post(
            "/v1/comments", json=TARGET, headers=bearer(world.keys["news"])
        )
        assert submitted.status_code == 202, submitted.get_json()
        store_hold(connection, "news", TARGET_ID)
    return world


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


# --- callers ---------------------------------------------------------------------------------

Send = Callable[[World, Call, str | None], TestResponse]


def request(client: FlaskClient, call: Call, method: str | None, headers: dict[str, str]):
    return client.open(call.path, method=method or call.method, json=call.json, headers=headers)


def with_client(name: str, headers: Callable[[World], dict[str, str]]) -> Send:
    """A request from the named client (cookies and all), with the page's CSRF token."""

    def send(world: World, call: Call, method: str | None) -> TestResponse:
        sent = {**headers(world), "X-CSRFToken": world.csrf[name]}
        return request(world.clients[name], call, method, sent)

    return send


def fresh(headers: Callable[[World], dict[str, str]]) -> Send:
    """A request from a client with no cookies."""

    def send(world: World, call: Call, method: str | None) -> TestResponse:
        return request(world.app.test_client(), call, method, headers(world))

    return send


def akismet_form(
    key: Callable[[World], str | None], client: str | None = None, headers: Any = None
) -> Send:
    """An Akismet form post with `key` as its api_key (none when None), from the named client
    (cookies and all) or a fresh one, with `headers` (a function of the world) if given. A GET
    sends the form as its query string, as Akismet's clients do."""

    def send(world: World, call: Call, method: str | None) -> TestResponse:
        form = dict(call.form or {})
        secret = key(world)
        if secret is not None:
            form["api_key"] = secret
        sender = world.clients[client] if client else world.app.test_client()
        sent = headers(world) if headers else {}
        method = method or call.method
        if method in ("GET", "HEAD"):
            return sender.open(call.path, method=method, query_string=form, headers=sent)
        return sender.open(call.path, method=method, data=form, headers=sent)

    return send


def akismet_host(key: Callable[[World], str]) -> Send:
    """An Akismet call with `key` as the leftmost label of the host name, as most clients
    send it (`KEY.rest.akismet.com`), from a client with no cookies."""

    def send(world: World, call: Call, method: str | None) -> TestResponse:
        host = {"Host": f"{key(world)}.rest.akismet.com"}
        method = method or call.method
        form = {"query_string" if method in ("GET", "HEAD") else "data": dict(call.form or {})}
        return world.app.test_client().open(call.path, method=method, headers=host, **form)

    return send


def coral_signed(secret: Callable[[World], str | None], client: str | None = None) -> Send:
    """The call's body as Coral sends it, signed with `secret` (None: no signature)."""

    def send(world: World, call: Call, method: str | None) -> TestResponse:
        body = serialised(call.json)
        headers = {"Content-Type": "application/json"}
        if (key := secret(world)) is not None:
            headers["X-Coral-Signature"] = signature_header(body, [key])
        sender = world.clients[client] if client else world.app.test_client()
        return sender.open(call.path, method=method or call.method, data=body, headers=headers)

    return send


def query_key(key: Callable[[World], str]) -> Send:
    """A request from a client with no cookies, with `key` in `?key=` as Google's clients
    send it."""

    def send(world: World, call: Call, method: str | None) -> TestResponse:
        path = f"{call.path}?key={quote(key(world))}"
        return world.app.test_client().open(path, method=method or call.method, json=call.json)

    return send


def no_headers(world: World) -> dict[str, str]:
    return {}


def ann_token(world: World) -> dict[str, str]:
    return bearer(world.tokens["ann"])


def news_key(world: World) -> dict[str, str]:
    return bearer(world.keys["news"])


def no_key(world: World) -> None:
    return None


#: (who, what they should get: a status, "foreign" or "owner", how they call)
CALLERS: dict[str, list[tuple[str, int | str, Send]]] = {
    SITE: [
        ("no key, a moderator's session cookie", 401, with_client("ann", no_headers)),
        ("a made-up key", 401, fresh(lambda w: bearer("mk_" + secrets.token_urlsafe(32)))),
        ("the site's rotated-out key", 401, fresh(lambda w: bearer(w.keys["news-old"]))),
        ("the key without 'Bearer'", 401, fresh(lambda w: {"Authorization": w.keys["news"]})),
        ("an admin's moderator token", 401, fresh(lambda w: bearer(w.tokens["root"]))),
        ("another site's key", "foreign", fresh(lambda w: bearer(w.keys["blog"]))),
        ("the site's key", "owner", fresh(news_key)),
    ],
    AKISMET: [
        ("no key, a moderator's session cookie", AKISMET_REFUSED, akismet_form(no_key, "ann")),
        ("the key as a bearer header", AKISMET_REFUSED, akismet_form(no_key, headers=news_key)),
        ("a made-up key", AKISMET_REFUSED, akismet_form(lambda w: "mk_" + secrets.token_hex(8))),
        ("the site's rotated-out key", AKISMET_REFUSED, akismet_form(lambda w: w.keys["news-old"])),
        ("an admin's moderator token", AKISMET_REFUSED, akismet_form(lambda w: w.tokens["root"])),
        ("a made-up Akismet key in the host", AKISMET_REFUSED, akismet_host(lambda w: "0" * 12)),
        (
            "a rotated-out Akismet key",
            AKISMET_REFUSED,
            akismet_host(lambda w: w.keys["news-ak-old"]),
        ),
        ("another site's key", "foreign", akismet_form(lambda w: w.keys["blog"])),
        ("another site's Akismet key", "foreign", akismet_host(lambda w: w.keys["blog-ak"])),
        ("the site's key", "owner", akismet_form(lambda w: w.keys["news"])),
    ],
    PERSPECTIVE: [
        ("no key, a moderator's session cookie", 403, with_client("ann", no_headers)),
        ("the key as a bearer header", 403, fresh(news_key)),
        ("a made-up key", 400, query_key(lambda w: "mk_" + secrets.token_urlsafe(32))),
        ("the site's rotated-out key", 400, query_key(lambda w: w.keys["news-old"])),
        ("an admin's moderator token", 400, query_key(lambda w: w.tokens["root"])),
        ("another site's key", "foreign", query_key(lambda w: w.keys["blog"])),
        ("the site's key", "owner", query_key(lambda w: w.keys["news"])),
    ],
    CORAL: [
        ("no signature, a moderator's session cookie", 401, coral_signed(lambda w: None, "ann")),
        ("no signature, the site's key", 401, fresh(news_key)),
        ("a made-up secret", 401, coral_signed(lambda w: "empsec_" + secrets.token_hex(33))),
        ("the site's API key as the secret", 401, coral_signed(lambda w: w.keys["news"])),
        ("another site's secret", "foreign", coral_signed(lambda w: BLOG_CORAL_SECRET)),
        ("the site's secret", "owner", coral_signed(lambda w: NEWS_CORAL_SECRET)),
    ],
    MODERATOR: [
        ("no token, a logged-in session cookie", 401, with_client("ann", no_headers)),
        ("a made-up token", 401, fresh(lambda w: bearer("mt_" + secrets.token_urlsafe(32)))),
        ("the site's API key", 401, fresh(news_key)),
        ("a disabled moderator of the site", 401, fresh(lambda w: bearer(w.tokens["dis"]))),
        ("the token without 'Bearer'", 401, fresh(lambda w: {"Authorization": w.tokens["ann"]})),
        ("a moderator of another site", "foreign", fresh(lambda w: bearer(w.tokens["bob"]))),
        ("a moderator of the site", "owner", fresh(ann_token)),
    ],
    SESSION: [
        ("no session", 401, with_client("anonymous", no_headers)),
        ("a moderator token, no session", 401, with_client("anonymous", ann_token)),
        ("the site's key, no session", 401, with_client("anonymous", news_key)),
        ("a disabled moderator's live session", 401, with_client("dis", no_headers)),
        ("a moderator of another site", "foreign", with_client("bob", no_headers)),
        ("a moderator of the site", "owner", with_client("ann", no_headers)),
    ],
    PAGE: [
        ("no session", 302, with_client("anonymous", no_headers)),
        ("a moderator token, no session", 302, with_client("anonymous", ann_token)),
        ("a disabled moderator's live session", 302, with_client("dis", no_headers)),
        ("a moderator of another site", "foreign", with_client("bob", no_headers)),
        ("a moderator of the site", "owner", with_client("ann", no_headers)),
    ],
}


# --- checks ----------------------------------------------------------------------------------

VOLATILE = frozenset({"submitted_at", "decided_at", "at"})


def comparable(response: TestResponse) -> tuple[int, Any]:
    """Status and JSON body without timestamps: what must not differ between the worlds."""
    body = response.get_json(silent=True)
    if body is None and response.mimetype == "text/plain":
        body = response.get_data(as_text=True)

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k not in VOLATILE}
        if isinstance(node, list):
            return [strip(item) for item in node]
        return node

    return response.status_code, strip(body)


def leaked(response: TestResponse) -> list[str]:
    text = response.get_data(as_text=True) + "\n" + str(response.headers)
    return [secret for secret in LEAKS if secret in text]


def check_refusal(
    who: str, response: TestResponse, expected: int | str, *, google: bool = False
) -> None:
    """`google`: errors in Google's format (`{"error": {"code": <int>, "message", "status"}}`)."""
    status = response.status_code
    where = f"{who}: {status} {response.get_data(as_text=True)[:300]}"
    if expected == OK:
        assert 200 <= status < 300, where
    elif expected == AKISMET_REFUSED:
        assert status == 200 and response.mimetype == "text/plain", where
        assert response.text in ("invalid", "Missing required field: api_key."), where
        assert response.headers["X-akismet-debug-help"], where
    elif expected == 302:
        assert status == 302, where
        assert response.headers["Location"].endswith("/moderate/login"), where
    else:
        assert status == expected, where
        body = response.get_json(silent=True)
        assert isinstance(body, dict) and set(body) == {"error"}, where
        if google:
            assert set(body["error"]) <= {"code", "message", "status", "details"}, where
            assert body["error"]["code"] == status, where
            assert body["error"]["status"] == GOOGLE_STATUS[status], where
        else:
            assert set(body["error"]) <= {"code", "message", "fields"}, where
            assert body["error"]["code"] == CODES[status], where
        assert isinstance(body["error"]["message"], str), where
    assert leaked(response) == [], f"{who} sees {leaked(response)}"


@pytest.fixture
def world_factory(app: Flask, redis_client: redis.Redis, settings: Settings) -> Iterator[Any]:
    yield functools.partial(build_world, app, redis_client, settings)


# --- the tests -------------------------------------------------------------------------------


def test_every_route_has_an_access_case(app: Flask) -> None:
    missing = routes(app) - PROTECTED.keys() - PUBLIC.keys()
    assert not missing, f"routes with no access-control case in PROTECTED or PUBLIC: {missing}"
    stale = (PROTECTED.keys() | PUBLIC.keys()) - routes(app)
    assert not stale, f"cases for routes that no longer exist: {stale}"
    assert not PROTECTED.keys() & PUBLIC.keys()


@pytest.mark.parametrize("route", sorted(PROTECTED), ids=" ".join)
def test_wrong_callers_are_refused_and_learn_nothing(
    world_factory: Callable[[bool], World], route: tuple[str, str]
) -> None:
    call = PROTECTED[route]
    callers = CALLERS[call.auth]
    wrong = [(who, expected, send) for who, expected, send in callers if expected != "owner"]

    # Without the target comment: what each wrong caller gets when there is nothing to find.
    empty = world_factory(False)
    baseline = {who: comparable(send(empty, call, None)) for who, _, send in wrong}

    world = world_factory(True)
    before = world.news_state()
    for who, expected, send in wrong:
        expected = call.foreign if expected == "foreign" else expected
        response = send(world, call, None)
        check_refusal(who, response, expected, google=call.auth == PERSPECTIVE)
        assert comparable(response) == baseline[who], f"{who}: the answer tells the comment exists"
        if call.method == "GET":
            head = send(world, call, "HEAD")
            assert head.status_code == response.status_code, f"{who}: HEAD {head.status_code}"
            assert head.get_data() == b""
    assert world.news_state() == before, "a refused caller changed the site's data"

    owner = next(send for _, expected, send in callers if expected == "owner")
    response = owner(world, call, None)
    if call.owner == OK:
        assert 200 <= response.status_code < 300, response.get_data(as_text=True)[:300]
    else:
        assert response.status_code == call.owner
    if call.reveals:
        assert call.reveals in response.get_data(as_text=True)


@pytest.mark.parametrize("route", sorted(PUBLIC), ids=" ".join)
def test_public_routes_show_no_comment_or_site_data(
    world_factory: Callable[[bool], World], route: tuple[str, str]
) -> None:
    world = world_factory(True)
    rule, method = route
    path = rule.replace("<path:filename>", "moderate.js")
    response = world.app.test_client().open(path, method=method)
    assert response.status_code != 500  # /readyz is 503 here: no worker runs
    assert leaked(response) == []
    response.close()


# --- the /moderate page: CSRF on every POST, cookies ----------------------------------------

#: A POST for each /moderate route that takes one; a new one fails the test below until added.
PAGE_POSTS: dict[str, tuple[str, dict[str, Any]]] = {
    "/moderate/login": ("/moderate/login", {"data": {"name": "ann", "password": "x"}}),
    "/moderate/logout": ("/moderate/logout", {}),
    "/moderate/decide/<site>/<path:comment_id>": (
        f"/moderate/decide/news/{TARGET_ID}",
        {"json": {"action": "reject"}},
    ),
    "/moderate/authors/<site>/<path:author_id>": (PAGE_AUTHOR_URL, {"json": {"action": "ban"}}),
}


def test_every_moderate_post_needs_the_sessions_csrf_token(
    world_factory: Callable[[bool], World],
) -> None:
    world = world_factory(True)
    posts = {
        rule.rule
        for rule in world.app.url_map.iter_rules()
        if rule.endpoint.startswith("moderate.")
        and rule.methods & {"POST", "PUT", "PATCH", "DELETE"}
    }
    assert posts == PAGE_POSTS.keys()
    ann, before = world.clients["ann"], world.news_state()
    for path, kwargs in PAGE_POSTS.values():
        for headers in ({}, {"X-CSRFToken": "forged"}, {"X-CSRFToken": world.csrf["bob"]}):
            response = ann.post(path, headers=headers, **kwargs)
            assert response.status_code == 400, (path, headers, response.status_code)
            if "json" in kwargs:  # the script's endpoints answer in JSON
                assert response.get_json()["error"]["code"] == "csrf_failed"
            else:
                assert "Form expired" in response.get_data(as_text=True)
    assert world.news_state() == before
    assert ann.get("/moderate").status_code == 200  # the refused logout left the session alone


def test_only_bearer_endpoints_skip_csrf(app: Flask) -> None:
    """The JSON API's blueprints skip CSRF checks because they ignore cookies (bearer
    credentials only; Akismet's: the key in the form); every other route that changes
    something is in PAGE_POSTS above."""
    exempt = {blueprint.name for blueprint in app.extensions["csrf"]._exempt_blueprints}
    for rule in app.url_map.iter_rules():
        for method in (rule.methods or set()) - {"GET", "HEAD", "OPTIONS"}:
            if rule.endpoint.split(".")[0] in exempt:
                assert PROTECTED[(rule.rule, method)].auth in (
                    SITE,
                    MODERATOR,
                    AKISMET,
                    PERSPECTIVE,
                    CORAL,
                ), rule.rule
            else:
                assert rule.rule in PAGE_POSTS, f"{method} {rule.rule}: no CSRF case"


HTTPS = "https://mod.example"


def https_login(client: FlaskClient, password: str, referrer: str) -> TestResponse:
    page = client.get("/moderate/login", base_url=HTTPS)
    return client.post(
        "/moderate/login",
        data={"name": "ann", "password": password, "csrf_token": form_token(page.text)},
        headers={"Referer": referrer},
        base_url=HTTPS,
    )


def hardened(cookie: str) -> bool:
    return "; Secure" in cookie and "; HttpOnly" in cookie and "; SameSite=Lax" in cookie


def test_secure_cookies_and_same_origin_posts_behind_https(settings: Settings) -> None:
    """MODERATION_SECURE_COOKIES: every cookie the page sets is Secure, HttpOnly, SameSite;
    over https a POST from another origin is refused even with a valid token."""
    app = create_app(settings.with_overrides(secure_cookies=True))
    try:
        password = (
            ModeratorStore(app.extensions["moderation"].redis)
            .create("ann", Role.MODERATOR, ["news"])
            .password
        )
        client = app.test_client()
        form = client.get("/moderate/login", base_url=HTTPS)
        assert form.headers.getlist("Set-Cookie")
        assert all(hardened(cookie) for cookie in form.headers.getlist("Set-Cookie"))
        assert https_login(client, password, "https://evil.example/").status_code == 400
        login = https_login(client, password, HTTPS + "/moderate/login")
        assert login.status_code == 302
        [cookie] = login.headers.getlist("Set-Cookie")
        assert cookie.startswith("moderation_session=") and hardened(cookie)
        assert client.get("/moderate", base_url=HTTPS).status_code == 200
    finally:
        app.extensions["moderation"].redis.close()


# --- sessions end with the credentials they were opened with --------------------------------


def test_a_password_reset_ends_the_sessions_opened_with_the_old_password(
    world_factory: Callable[[bool], World],
) -> None:
    """Someone who learned the old password and logged in must be out once it is reset."""
    world = world_factory(True)
    ann = world.clients["ann"]
    assert ann.get("/moderate").status_code == 200
    fresh_password = ModeratorStore(world.redis).reset_password("ann").password
    assert ann.get("/moderate").status_code == 302
    assert ann.get("/moderate/queue.json").status_code == 401
    again = world.app.test_client()
    assert log_in(again, "ann", fresh_password).status_code == 302
    assert again.get("/moderate").status_code == 200


def test_re_enabling_an_account_does_not_revive_its_old_sessions(
    world_factory: Callable[[bool], World],
) -> None:
    world = world_factory(True)
    moderators = ModeratorStore(world.redis)
    moderators.set_disabled("ann", True)
    moderators.set_disabled("ann", False)  # before the old session made any request
    assert world.clients["ann"].get("/moderate").status_code == 302


# --- crafted input on the authenticated paths -------------------------------------------------


def test_a_crafted_queue_cursor_is_a_422_not_a_500(world_factory: Callable[[bool], World]) -> None:
    """Cursors are base64 JSON the client hands back; one nested too deeply for Python's JSON
    reader must be refused like any other bad cursor."""
    world = world_factory(True)
    nested = base64.urlsafe_b64encode(b"[" * 100_000).decode()
    response = world.clients["ann"].get(f"/moderate/queue.json?after={nested}")
    assert response.status_code == 422, response.get_data(as_text=True)[:300]
    assert response.get_json()["error"]["fields"] == {"cursor": ["Not a valid cursor."]}
    with pytest.raises(InvalidRequest) as refused:
        decode_cursor(nested)
    assert from_domain_error(refused.value).status == 422


@pytest.mark.parametrize("body", [b"[" * 100_000, b"\xff\xfe", b'{"action": "approve"'])
def test_a_decision_that_is_not_json_is_a_400_not_a_500(
    world_factory: Callable[[bool], World], body: bytes
) -> None:
    world = world_factory(True)
    response = world.clients["ann"].post(
        f"/moderate/decide/news/{TARGET_ID}",
        data=body,
        headers={"Content-Type": "application/json", "X-CSRFToken": world.csrf["ann"]},
    )
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert response.get_json()["error"]["code"] == "malformed_json"


def test_the_openapi_document_states_the_auth_each_endpoint_enforces(app: Flask) -> None:
    doc = app.test_client().get("/v1/openapi.json").get_json()
    schemes = {SITE: [{"siteKey": []}], MODERATOR: [{"moderatorToken": []}]}
    for path, operations in doc["paths"].items():
        rule = re.sub(r"\{(\w+)\}", lambda m: f"<{m[1]}>", path)
        rule = rule.replace("<comment_id>", "<path:comment_id>")
        rule = rule.replace("<author_id>", "<path:author_id>")
        for method, operation in operations.items():
            if method == "parameters":
                continue
            route = (rule, method.upper())
            documented = operation.get("security", doc.get("security"))
            if route in PUBLIC:
                assert documented == [], route
            else:
                assert documented == schemes[PROTECTED[route].auth], route
