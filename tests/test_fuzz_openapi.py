"""schemathesis against /v1/openapi.json: every operation, in-process, with valid credentials.

Each generated request goes through the Flask app (WSGI, no server) as an authenticated
caller: a site's API key where the document says `siteKey`, an admin moderator's token where
it says `moderatorToken`. Every answer must be a non-5xx whose status code, content type and
body the document declares. Bounded and derandomized, so CI runs the same cases every time.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from moderation.app import create_app
from moderation.core import webhook_requests
from moderation.core.settings import Settings
from moderation.storage.moderator_store import ModeratorStore, Role
from moderation.storage.webhook_outbox import DeliveryLog
from tests.support.held import comment_body, store_hold
from tests.support.hostile import BOUNDED, SCALE, without_rate_limits

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


def openapi_document() -> dict[str, Any]:
    """The document the app serves, built without Redis (collection happens before any)."""
    app = create_app(Settings(redis_url="redis://127.0.0.1:1/0", toxicity_model="lite"))
    return app.extensions["flask-smorest"]["apis"][""]["ext_obj"].spec.to_dict()


DOCUMENT = openapi_document()
schema = schemathesis.openapi.from_dict(DOCUMENT)


def security_scheme(operation: Any) -> str | None:
    """The scheme an operation asks for: its own `security`, else the document's."""
    requirements = operation.definition.raw.get("security", DOCUMENT.get("security", []))
    return next((name for requirement in requirements for name in requirement), None)


@schema.auth(refresh_interval=None)
class OperationBearer:
    """`Bearer <scheme name>` on every case that is not deliberately unauthenticated.

    schemathesis builds some cases (its coverage phase) when the tests are collected, before
    any site exists, so the provider writes a placeholder that `authenticate` swaps for the
    running test's credential.
    """

    def get(self, case: Any, context: Any) -> str | None:
        return security_scheme(context.operation)

    def set(self, case: Any, data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


def authenticate(case: Any, credentials: dict[str, str]) -> None:
    """Put the real site key or moderator token where the provider left its placeholder."""
    header = (case.headers or {}).get("Authorization", "")
    scheme = header.removeprefix("Bearer ")
    if scheme in credentials:
        case.headers["Authorization"] = f"Bearer {credentials[scheme]}"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return without_rate_limits(settings, allow_private_callbacks=True)


@pytest.fixture(autouse=True)
def no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Callback URLs with generated host names resolve to one public address, offline."""
    real = webhook_requests._resolve

    def resolve(host: str, port: int) -> list[Any]:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return [ipaddress.ip_address("93.184.215.14")]
        return real(host, port)

    monkeypatch.setattr(webhook_requests, "_resolve", resolve)


@pytest.fixture
def credentials(site, redis_client) -> dict[str, str]:
    """Security scheme name -> a valid bearer token: the site's key, an admin's token."""
    admin = ModeratorStore(redis_client).create("root", Role.ADMIN, []).token
    return {"siteKey": site.api_key, "moderatorToken": admin}


def test_the_fuzzed_document_is_the_served_one(client):
    assert client.get("/v1/openapi.json").get_json() == DOCUMENT


@schema.parametrize()
@hypothesis.settings(BOUNDED, max_examples=50 * SCALE)
def test_every_operation_answers_as_documented(case, app, credentials):
    # With no scoring worker running, /readyz's documented answer is 503.
    checks = CHECKS[1:] if case.operation.path == "/readyz" else CHECKS
    authenticate(case, credentials)
    case.call_and_validate(app=app, checks=checks)


# --- real answers, not generated ones ---------------------------------------------------------
#
# Random ids rarely name a stored comment, so the fuzzing above mostly sees empty lists and
# 404s. This walks one comment through its whole life (and every error the contract lists)
# and holds each answer to the same checks.


def conforms(response: Any, method: str, path: str, **path_parameters: str) -> Any:
    """Validate a Flask test client `response` against the operation `method path`."""
    case = schema[path][method].Case(path_parameters=path_parameters or None)
    case.validate_response(response, checks=CHECKS)
    return response


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_comments_whole_life_answers_as_documented(client, credentials, redis_client, make_site):
    site, admin = bearer(credentials["siteKey"]), bearer(credentials["moderatorToken"])
    moderator = bearer(ModeratorStore(redis_client).create("ann", Role.MODERATOR, ["blog"]).token)
    make_site("blog")
    comments, one = "/v1/comments", "/v1/comments/{comment_id}"
    review, audit = "/v1/review/{site}/{comment_id}", "/v1/review/{site}/{comment_id}/audit"

    conforms(client.get("/v1/site", headers=site), "GET", "/v1/site")
    conforms(client.get("/v1/policy", headers=site), "GET", "/v1/policy")
    policy = {"version": 0, "hold": {"spam": 0.9}, "banned_words": ["spoiler"], "max_links": 3}
    assert conforms(client.put("/v1/policy", json=policy, headers=site), "PUT", "/v1/policy")
    stale = client.put("/v1/policy", json=policy, headers=site)
    assert conforms(stale, "PUT", "/v1/policy").status_code == 409

    full = comment_body(
        "c/1 é", author={"id": "u-1", "ip": "203.0.113.7", "url": "https://a.example"}
    )
    full["honeypot"] = ""
    assert (
        conforms(client.post(comments, json=full, headers=site), "POST", comments).status_code
        == 202
    )
    assert (
        conforms(client.post(comments, json=full, headers=site), "POST", comments).status_code
        == 202
    )
    clash = client.post(comments, json={**full, "content": "other"}, headers=site)
    assert conforms(clash, "POST", comments).status_code == 409
    batch = {"comments": [comment_body("b-1"), full, {"id": "b-2"}, "not an object"]}
    conforms(
        client.post("/v1/comments/batch", json=batch, headers=site), "POST", "/v1/comments/batch"
    )

    path = "/v1/comments/c%2F1%20%C3%A9"
    assert (
        conforms(client.get(path, headers=site), "GET", one, comment_id="c/1 é").status_code == 200
    )
    # held for spam, the only label the policy above holds for
    store_hold(redis_client, "news", "c/1 é", scores={"toxicity": 0.1, "spam": 0.95})
    held = conforms(client.get(path + "?wait=0.1", headers=site), "GET", one, comment_id="c/1 é")
    assert held.get_json()["status"] == "held"

    queue = client.get("/v1/review/queue?site=news&limit=1", headers=admin)
    assert conforms(queue, "GET", "/v1/review/queue").get_json()["items"]
    item = client.get("/v1/review/news/c/1 é", headers=admin)
    assert conforms(item, "GET", review, site="news", comment_id="c/1 é").status_code == 200
    forbidden = client.get("/v1/review/news/c/1 é", headers=moderator)
    assert conforms(forbidden, "GET", review, site="news", comment_id="c/1 é").status_code == 403
    decide = {"action": "approve", "note": "fine"}
    approved = client.post("/v1/review/news/c/1 é", json=decide, headers=admin)
    assert conforms(approved, "POST", review, site="news", comment_id="c/1 é").status_code == 200
    again = client.post("/v1/review/news/c/1 é", json=decide, headers=admin)
    assert conforms(again, "POST", review, site="news", comment_id="c/1 é").status_code == 409
    events = client.get("/v1/review/news/c/1 é/audit", headers=admin)
    assert (
        len(conforms(events, "GET", audit, site="news", comment_id="c/1 é").get_json()["events"])
        >= 3
    )
    bulk = {"site": "news", "ids": ["b-1", "c/1 é", "nope"], "action": "reject"}
    conforms(client.post("/v1/review/bulk", json=bulk, headers=admin), "POST", "/v1/review/bulk")

    hook = {"callback_url": "http://127.0.0.1:9/hook"}
    conforms(client.put("/v1/site", json=hook, headers=site), "PUT", "/v1/site")
    log = DeliveryLog(redis_client)
    log.record(
        "news",
        "c/1 é",
        {
            "attempt": 1,
            "outcome": "failed",
            "event": "comment.decided",
            "url": hook["callback_url"],
            "ok": False,
            "status": None,
            "error": "timeout",
            "duration_ms": 10000.0,
        },
    )
    log.record(
        "news",
        "c/1 é",
        {
            "attempt": 2,
            "outcome": "delivered",
            "event": "comment.decided",
            "url": hook["callback_url"],
            "ok": True,
            "status": 200,
            "error": None,
            "duration_ms": 12.5,
        },
    )
    deliveries = client.get(path + "/deliveries", headers=site)
    conforms(deliveries, "GET", one + "/deliveries", comment_id="c/1 é")
    redeliver = client.post(path + "/redeliver", headers=site)
    assert conforms(redeliver, "POST", one + "/redeliver", comment_id="c/1 é").status_code == 202

    assert (
        conforms(client.delete(path, headers=site), "DELETE", one, comment_id="c/1 é").status_code
        == 204
    )
    erased = conforms(client.get(path, headers=site), "GET", one, comment_id="c/1 é")
    assert "erased_at" in erased.get_json()
    gone = client.delete("/v1/comments/nope", headers=site)
    assert conforms(gone, "DELETE", one, comment_id="nope").status_code == 404


@pytest.mark.parametrize(
    ("request_kwargs", "status"),
    [
        ({"json": {"id": "x", "content": "y"}, "headers": {}}, 401),
        ({"data": '{"id": "x",', "content_type": "application/json"}, 400),
        ({"data": "[" * 50_000, "content_type": "application/json"}, 400),
        ({"data": "id=x", "content_type": "text/plain"}, 415),
        ({"json": {"id": "x", "content": "y" * 2_000_000}}, 413),
        ({"json": {"id": "x", "content": ""}}, 422),
    ],
)
def test_every_error_the_contract_lists_is_documented(client, credentials, request_kwargs, status):
    kwargs = {"headers": bearer(credentials["siteKey"]), **request_kwargs}
    response = client.post("/v1/comments", **kwargs)
    assert conforms(response, "POST", "/v1/comments").status_code == status


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_redis_unavailable_is_documented_everywhere(settings):
    down = settings.with_overrides(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    client = create_app(down).test_client()
    for method, path, kwargs in [
        ("POST", "/v1/comments", {"json": {"id": "x", "content": "y"}}),
        ("GET", "/v1/policy", {}),
        ("GET", "/v1/review/queue", {}),
        ("GET", "/metrics", {}),
        ("GET", "/readyz", {}),
    ]:
        response = client.open(path, method=method, headers=bearer("mk_any"), **kwargs)
        assert response.status_code == 503, (path, response.data)
        # Every check but not_a_server_error: the 503 is right, is it documented?
        schema[path][method].Case().validate_response(response, checks=CHECKS[1:])


def test_rate_limited_answers_are_documented(settings, make_site, redis_client):
    if not any(field.name == "rate_limit_site" for field in dataclasses.fields(settings)):
        pytest.skip("no rate limiting in this tree")
    limited = settings.with_overrides(rate_limit_site="1 per minute")
    client = create_app(limited).test_client()
    headers = bearer(make_site("blog").api_key)
    assert client.get("/v1/policy", headers=headers).status_code == 200
    response = client.get("/v1/policy", headers=headers)
    assert conforms(response, "GET", "/v1/policy").status_code == 429
    assert int(response.headers["Retry-After"]) >= 1


def test_metrics_name_their_charset_once(client):
    content_type = client.get("/metrics").headers["Content-Type"]
    assert content_type.startswith("text/plain")
    assert content_type.count("charset") == 1, content_type


def test_every_operation_documents_exactly_its_answers():
    operations = {
        (method.upper(), path): operation
        for path, item in DOCUMENT["paths"].items()
        for method, operation in item.items()
        if method != "parameters"
    }
    for (method, path), operation in operations.items():
        responses = operation["responses"]
        assert "default" not in responses, (method, path)
        if path.startswith("/v1/"):
            assert {"401", "429", "503"} <= set(responses), (method, path)
        if "{" in path:
            assert "404" in responses, (method, path)
        if "requestBody" in operation:
            assert {"400", "413", "415", "422"} <= set(responses), (method, path)
        if path.startswith("/v1/review/"):
            assert "403" in responses, (method, path)
        for status, response in responses.items():
            if status.startswith(("4", "5")):
                response = resolve(response)
                assert "application/json" in response["content"], (method, path, status)
    for status in ("429", "503"):
        assert resolve(operations["POST", "/v1/comments"]["responses"][status])["headers"][
            "Retry-After"
        ]["required"]


def resolve(node: Any) -> Any:
    """Follow a local `$ref` (failing on one that points nowhere)."""
    while isinstance(node, dict) and "$ref" in node:
        target: Any = DOCUMENT
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def test_every_reference_in_the_document_resolves():
    def walk(node: Any) -> None:
        if isinstance(node, dict):
            resolve(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(DOCUMENT)
