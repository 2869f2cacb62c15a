"""Hypothesis with hostile input: the request schemas alone, then the JSON endpoints.

Strings mix NUL and other control characters, lone surrogates (sent as `"\\ud800"` escapes in
the raw JSON), bidi controls (U+202E, U+2066), zero-width characters, emoji up to 20,000 of
them, very long ids; numbers include 1e400, 10**400 and 5,000-digit integer literals, -0 and
the NaN/Infinity tokens; bodies nest thousands of levels deep; any field may have any type.

Properties: never a 5xx; every 4xx is the contract's error JSON, valid Unicode that strict
JSON readers accept, with `fields` naming the bad field on a 422; whatever is accepted (202)
reads back identical (id through GET /v1/comments/<id>, content, author and context through
the review API), and nothing accepted is lost.
"""

from __future__ import annotations

import base64
import ipaddress
from typing import Any
from urllib.parse import quote, urlencode

import hypothesis
import marshmallow as ma
import pytest
from hypothesis import strategies as st
from rq import Queue

from moderation.core import webhook_requests
from moderation.core.redis_keys import KEYS
from moderation.core.settings import Settings
from moderation.http.schemas import (
    BatchSchema,
    BulkReviewSchema,
    CommentSubmissionSchema,
    PolicySchema,
    ReviewDecisionSchema,
    ReviewQueueQuerySchema,
    SiteSettingsSchema,
    WaitQuerySchema,
)
from moderation.storage.job_queues import SCORING_QUEUE
from moderation.storage.moderator_store import ModeratorStore, Role
from tests.support.held import store_hold
from tests.support.hostile import (
    BOUNDED,
    NUMBER_TOKENS,
    SCALE,
    encode,
    hostile_text,
    json_values,
    plain,
    storable_text,
    strict_json,
    utf8,
    valid_ids,
    without_rate_limits,
)

# --- submissions: valid ones, then ones with a field spoiled ---------------------------------

AUTHOR_FIELDS = ("id", "name", "email", "url", "ip", "user_agent")
CONTEXT_FIELDS = ("post_id", "permalink", "parent_id", "language")
AUTHOR_TEXT = {"name": 256, "email": 320, "user_agent": 1024}


def short(limit: int) -> st.SearchStrategy[str]:
    return storable_text.filter(lambda text: len(text) <= limit)


@st.composite
def submissions(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly valid submissions full of hostile text, about half of them spoiled somewhere."""
    content = draw(storable_text.filter(lambda text: 1 <= len(text) <= 20_000))
    body: dict[str, Any] = {"id": draw(valid_ids), "content": content}
    if draw(st.booleans()):
        author = {name: short(limit) for name, limit in AUTHOR_TEXT.items()}
        body["author"] = draw(st.fixed_dictionaries({}, optional={"id": valid_ids, **author}))
    if draw(st.booleans()):
        context = {"post_id": valid_ids, "parent_id": valid_ids, "language": short(35)}
        body["context"] = draw(st.fixed_dictionaries({}, optional=context))
    if draw(st.booleans()):
        body["honeypot"] = draw(short(1024))
    # Then maybe spoil it: any field, nested ones too, takes any value, or an unknown one appears.
    spoil = draw(st.sampled_from(["none"] * 5 + ["field", "nested", "unknown", "drop"]))
    if spoil == "field":
        name = draw(st.sampled_from(["id", "content", "author", "context", "honeypot", "store"]))
        body[name] = draw(json_values)
    elif spoil == "nested":
        part = draw(st.sampled_from(["author", "context"]))
        names = AUTHOR_FIELDS if part == "author" else CONTEXT_FIELDS
        body[part] = {**body.get(part, {}), draw(st.sampled_from(names)): draw(json_values)}
    elif spoil == "unknown":
        body[draw(hostile_text.filter(lambda key: key not in body))] = draw(json_values)
    elif spoil == "drop":
        del body[draw(st.sampled_from(["id", "content"]))]
    return body


# --- the schemas alone -----------------------------------------------------------------------


def named_fields(messages: Any, path: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """The paths of the fields a marshmallow error names (`_schema`: the object itself)."""
    if not isinstance(messages, dict):
        return {path}
    names: set[tuple[str, ...]] = set()
    for key, value in messages.items():
        names |= named_fields(value, path if key == "_schema" else (*path, str(key)))
    return names


@hypothesis.settings(BOUNDED, max_examples=300 * SCALE)
@hypothesis.given(submissions())
def test_the_submission_schema_accepts_only_what_it_can_store(body):
    data = plain(body)
    hypothesis.assume(data is not None)  # the API answers 400 (tested below)
    try:
        loaded = CommentSubmissionSchema().load(data)
    except ma.ValidationError as error:
        named = named_fields(error.messages)
        assert named and all(named), error.messages
        assert {path[0] for path in named} <= {*data, "id", "content"}, named
        return
    utf8(loaded)
    # What is kept is exactly what was sent: no trimming, no normalization.
    assert {key: loaded[key] for key in data} == data
    assert 1 <= len(loaded["id"]) <= 128 and 1 <= len(loaded["content"]) <= 20_000


SCHEMAS = [
    (CommentSubmissionSchema, {"id": "c-1", "content": "text"}),
    (BatchSchema, {"comments": [{"id": "c-1", "content": "text"}]}),
    (PolicySchema, {"hold": {"toxicity": 0.5}, "banned_words": ["word"], "max_links": 2}),
    (SiteSettingsSchema, {"callback_url": "https://hooks.example/x"}),
    (ReviewDecisionSchema, {"action": "approve", "note": "fine"}),
    (BulkReviewSchema, {"site": "news", "ids": ["c-1"], "action": "reject"}),
    (WaitQuerySchema, {"wait": 1.5}),
    (ReviewQueueQuerySchema, {"site": "news", "limit": 5, "label": "spam"}),
]


@pytest.mark.parametrize(
    ("schema_class", "valid"), SCHEMAS, ids=lambda s: getattr(s, "__name__", "")
)
@BOUNDED
@hypothesis.given(data=st.data())
def test_every_request_schema_fails_only_with_a_validation_error(schema_class, valid, data):
    body = dict(valid)
    name = data.draw(st.sampled_from([*valid, "unknown \ud800"]), label="field")
    body[name] = data.draw(json_values, label="value")
    body = plain(body)
    hypothesis.assume(body is not None)
    try:
        loaded = schema_class().load(body)
    except ma.ValidationError as error:
        assert named_fields(error.messages)
        return
    if schema_class is not BatchSchema:  # entries stay raw: each is loaded on its own
        utf8(loaded)


# --- through the API -------------------------------------------------------------------------


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return without_rate_limits(settings)


@pytest.fixture
def admin(redis_client) -> dict[str, str]:
    token = ModeratorStore(redis_client).create("root", Role.ADMIN, []).token
    return {"Authorization": f"Bearer {token}"}


def send(client, method: str, path: str, body: Any, headers: dict[str, str]):
    data = body if isinstance(body, bytes) else encode(body)
    return client.open(
        path, method=method, data=data, content_type="application/json", headers=headers
    )


def assert_error_json(response, sent: Any = None) -> dict[str, Any]:
    """A 4xx in the contract's form; on a 422 `fields` names fields of what was sent."""
    assert 400 <= response.status_code < 500, (response.status_code, response.data[:500])
    error = strict_json(response)["error"]
    assert isinstance(error["code"], str) and isinstance(error["message"], str)
    if response.status_code == 422:
        assert error["fields"], error
        for name, problems in error["fields"].items():
            assert problems and all(isinstance(p, str) for p in problems)
            if isinstance(sent, dict):
                known = {*map(safe, sent), "id", "content", "body", "wait"}
                assert any(name == key or name.startswith(key + ".") for key in known), name
    return error


def safe(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def segment(text: str) -> str:
    """`text` as one path segment; a lone surrogate goes out as the bytes it would be."""
    return quote(text, safe="", errors="surrogatepass")


def comment_path(comment_id: str) -> str:
    return "/v1/comments/" + segment(comment_id)


def test_submissions_are_answered_and_what_is_accepted_reads_back(
    client, auth, admin, redis_client
):
    accepted: dict[str, dict[str, Any]] = {}

    @hypothesis.settings(BOUNDED, max_examples=120 * SCALE)
    @hypothesis.given(submissions())
    def submit(body):
        response = send(client, "POST", "/v1/comments", body, auth)
        assert response.status_code < 500, response.data
        if response.status_code != 202:
            assert_error_json(response, plain(body))
            return
        sent = plain(body)
        record = strict_json(response)
        assert record["id"] == sent["id"] and record["status"] == "pending"
        assert response.headers["Location"] == comment_path(sent["id"])
        # The same id and content again answers with the comment first accepted.
        first = accepted.setdefault(sent["id"], sent)
        assert first["content"] == sent["content"]
        read_back(client, auth, admin, first)

    submit()
    # Nothing accepted is lost: each is stored, readable, and has its one scoring job.
    for sent in accepted.values():
        read_back(client, auth, admin, sent)
    jobs = Queue(SCORING_QUEUE, connection=redis_client).get_jobs()
    assert sorted(job.args[1] for job in jobs) == sorted(accepted)


def read_back(client, auth, admin, sent: dict[str, Any]) -> None:
    record = client.get(comment_path(sent["id"]), headers=auth)
    assert record.status_code == 200, (sent["id"], record.data)
    assert strict_json(record)["id"] == sent["id"]
    item = client.get("/v1/review/news/" + segment(sent["id"]), headers=admin)
    assert item.status_code == 200, item.data
    stored = strict_json(item)
    assert stored["content"].encode() == sent["content"].encode()  # byte for byte
    assert stored["author"] == sent.get("author", {})
    assert stored["context"] == sent.get("context", {})


# Raw bodies no dict can express: deep nesting, huge number literals, duplicate keys, junk.
DEEP = 5_000
RAW_BODIES = [
    b"[" * DEEP + b"]" * DEEP,
    b'{"a":' * DEEP + b"1" + b"}" * DEEP,
    b'{"id": "x", "content": "y", "author": ' + b"[" * DEEP + b"]" * DEEP + b"}",
    b'{"id": "x", "content": "y", "context": ' + b'{"a":' * 900 + b"1" + b"}" * 900 + b"}",
    b'{"id": "x", "content": "y", "author": ' + b"9" * 5000 + b"}",
    b'{"id": ' + b"1" * 4301 + b', "content": "y"}',
    b'{"id": "x", "content": "y", "store": NaN}',
    b'{"id": "x", "id": "x2", "content": "y"}',
    b'{"id": "x", "content": "\\ud800\\u0000\\u202e"}',
    b'{"id": "\\ud83d\\ude00", "content": "\\ud83d"}',
    b'{"id": "x", "content": "y"} trailing',
    b'{"id": "x", "content": "y"',
    b"\xff\xfe{}",
    b'{"id": "x", "content": "\xed\xa0\x80"}',  # a surrogate in raw (invalid) UTF-8
    b"",
    b"null",
    b"-0",
    b"1e400",
    b'"\\ud800"',
]


@pytest.mark.parametrize("body", RAW_BODIES, ids=lambda body: repr(body[:24]))
@pytest.mark.parametrize("path", ["/v1/comments", "/v1/comments/batch"])
def test_raw_bodies_are_never_a_server_error(client, auth, path, body):
    if path.endswith("batch") and body.startswith(b"{"):
        body = b'{"comments": [' + body + b"]}"
    response = send(client, "POST", path, body, auth)
    assert response.status_code < 500, response.data
    if response.status_code >= 400:
        assert_error_json(response)
    else:
        strict_json(response)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/v1/policy"),
        ("PUT", "/v1/site"),
        ("POST", "/v1/review/news/c-1"),
        ("POST", "/v1/review/bulk"),
    ],
)
@pytest.mark.parametrize("body", RAW_BODIES[:8], ids=lambda body: repr(body[:24]))
def test_raw_bodies_on_the_other_json_endpoints(client, auth, admin, method, path, body):
    headers = admin if "review" in path else auth
    response = send(client, method, path, body, headers)
    assert response.status_code < 500, response.data
    if response.status_code >= 400:
        assert_error_json(response)


OTHER_BODIES = {
    ("PUT", "/v1/policy"): {"hold": {"toxicity": 0.5}, "banned_words": ["w"], "max_links": 2},
    ("PUT", "/v1/site"): {"callback_url": "https://hooks.example/x"},
    ("POST", "/v1/review/news/c-1"): {"action": "approve", "note": "ok"},
    ("POST", "/v1/review/bulk"): {"site": "news", "ids": ["c-1"], "action": "reject"},
    ("POST", "/v1/comments/batch"): {"comments": [{"id": "c-2", "content": "text"}]},
}


def test_the_other_json_endpoints_answer_any_field_with_anything(
    client, auth, admin, redis_client, monkeypatch
):
    # PUT /v1/site resolves callback host names: keep that offline and deterministic.
    public = [ipaddress.ip_address("93.184.215.14")]
    monkeypatch.setattr(webhook_requests, "_resolve", lambda host, port: public)
    client.post("/v1/comments", json={"id": "c-1", "content": "text"}, headers=auth)
    store_hold(redis_client, "news", "c-1")

    @hypothesis.settings(BOUNDED, max_examples=150 * SCALE)
    @hypothesis.given(data=st.data())
    def answer(data):
        method, path = data.draw(st.sampled_from(sorted(OTHER_BODIES)), label="endpoint")
        body = dict(OTHER_BODIES[(method, path)])
        name = data.draw(st.sampled_from([*body, "unknown \ud800"]), label="field")
        body[name] = data.draw(json_values, label="value")
        headers = admin if "review" in path else auth
        response = send(client, method, path, body, headers)
        assert response.status_code < 500, response.data
        if response.status_code >= 400:
            assert_error_json(response, plain(body))
        else:
            strict_json(response)

    answer()


@BOUNDED
@hypothesis.given(
    query=st.dictionaries(
        st.sampled_from(["wait", "site", "limit", "cursor", "label", "reason"]),
        st.one_of(hostile_text, st.sampled_from(NUMBER_TOKENS)),
        max_size=3,
    ),
    comment_id=hostile_text,
)
def test_hostile_ids_and_queries_are_never_a_server_error(client, auth, admin, query, comment_id):
    for method, path, headers in [
        ("GET", comment_path(comment_id), auth),
        ("DELETE", comment_path(comment_id), auth),
        ("GET", comment_path(comment_id) + "/deliveries", auth),
        ("POST", comment_path(comment_id) + "/redeliver", auth),
        ("GET", "/v1/review/news/" + segment(comment_id), admin),
        ("GET", "/v1/review/news/" + segment(comment_id) + "/audit", admin),
        ("GET", "/v1/review/queue", admin),
    ]:
        query_string = urlencode(query, errors="surrogatepass")
        response = client.open(path, method=method, query_string=query_string, headers=headers)
        assert response.status_code < 500, (method, path, response.data)
        if response.status_code >= 400:
            assert_error_json(response)


# --- regressions -----------------------------------------------------------------------------


def test_an_integer_too_long_for_python_is_malformed_json_not_a_500(client, auth):
    body = b'{"id": "x", "content": "y", "author": ' + b"9" * 5000 + b"}"
    response = send(client, "POST", "/v1/comments", body, auth)
    assert response.status_code == 400
    assert assert_error_json(response)["code"] == "malformed_json"


def test_a_null_batch_entry_is_one_invalid_result(client, auth):
    response = client.post(
        "/v1/comments/batch",
        json={"comments": [None, {"id": "b-1", "content": "fine"}]},
        headers=auth,
    )
    assert response.status_code == 200
    results = response.get_json()["results"]
    assert [(r["id"], r["status"]) for r in results] == [(None, "invalid"), ("b-1", "accepted")]


@pytest.mark.parametrize("score", ["NaN", '"nan"', "Infinity", "-Infinity", "1e400"])
def test_a_cursor_with_a_score_redis_cannot_use_is_422_not_500(
    client, auth, admin, score, redis_client
):
    client.post("/v1/comments", json={"id": "c-1", "content": "text"}, headers=auth)
    store_hold(redis_client, "news", "c-1")
    cursor = base64.urlsafe_b64encode(f'[{score}, "news", "c-1"]'.encode()).decode()
    response = client.get("/v1/review/queue", query_string={"cursor": cursor}, headers=admin)
    assert response.status_code == 422
    assert "cursor" in assert_error_json(response)["fields"]


def test_errors_spell_out_lone_surrogates_they_echo(client, auth):
    body = b'{"id": "x", "content": "y", "\\ud800": 1}'
    response = send(client, "POST", "/v1/comments", body, auth)
    assert response.status_code == 422
    assert assert_error_json(response)["fields"] == {"\\ud800": ["Unknown field."]}
    batch = b'{"comments": [{"id": "\\udfffx", "content": "y"}]}'
    results = strict_json(send(client, "POST", "/v1/comments/batch", batch, auth))["results"]
    assert results[0]["id"] == "\\udfffx" and results[0]["status"] == "invalid"


@pytest.mark.parametrize("comment_id", [".", "..", "/", "/x", "x/deliveries", "a/b/audit"])
def test_ids_a_url_cannot_carry_back_are_refused(client, auth, comment_id, redis_client):
    # Servers decode %2F before routing ("/x" was answered by "x" after a redirect) and
    # clients resolve dot segments; "<id>/deliveries" is another endpoint's URL.
    response = client.post("/v1/comments", json={"id": comment_id, "content": "x"}, headers=auth)
    assert response.status_code == 422
    assert "id" in assert_error_json(response)["fields"]
    assert redis_client.keys(KEYS.comment("news", "*")) == []


@pytest.mark.parametrize("comment_id", ["x/", "a//b", "a/../b", "x/redeliver", "audit", "%2F"])
def test_ids_with_slashes_and_dots_read_back(client, auth, comment_id):
    response = client.post("/v1/comments", json={"id": comment_id, "content": "x"}, headers=auth)
    assert response.status_code == 202
    record = client.get(response.headers["Location"], headers=auth)
    assert record.status_code == 200 and record.get_json()["id"] == comment_id


@pytest.mark.parametrize("site", ["\ud800", "news\n", "News", "", "a" * 64])
def test_a_site_that_cannot_exist_is_422_in_bulk_decisions_and_the_queue(client, admin, site):
    # "\ud800" reached Redis as a key name (a 500).
    body = {"site": site, "ids": ["x"], "action": "approve"}
    response = send(client, "POST", "/v1/review/bulk", body, admin)
    assert response.status_code == 422
    assert "site" in assert_error_json(response)["fields"]
    query = urlencode({"site": site}, errors="surrogatepass")
    response = client.get("/v1/review/queue", query_string=query, headers=admin)
    assert response.status_code == 422
    assert "site" in assert_error_json(response)["fields"]
