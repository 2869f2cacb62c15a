"""Google's own Python client (`google-api-python-client`), unmodified, against this service.

Built as Perspective's official samples build it: `discovery.build("commentanalyzer",
"v1alpha1", developerKey=..., discoveryServiceUrl=<this service>/$discovery/rest?version=
v1alpha1, static_discovery=False)`, which fetches the discovery document first and then sends
every call to the document's `rootUrl`. A real `moderation serve` and a real worker (the tiny
Detoxify checkpoint) answer. Refusals carry Google's error details (`google.rpc.ErrorInfo`'s
`reason`), which `HttpError.error_details` exposes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httplib2
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from googleapiclient import discovery
from googleapiclient.errors import HttpError

from moderation.app import create_app
from moderation.core.redis_keys import KEYS
from moderation.core.settings import Settings
from moderation.protocols.perspective_discovery import DOCUMENT
from moderation.storage.site_store import SiteCredentials
from tests.support.load import served_api
from tests.support.perspective import ANALYZE, error_reason, google_error
from tests.support.processes import running_worker
from tests.support.redis_server import RedisServer
from tests.support.tiny_detoxify import CLEAN_EXAMPLE, TOXIC_EXAMPLE, TinyDetoxify

DISCOVERY = "/$discovery/rest?version=v1alpha1"


@pytest.fixture
def api(redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path) -> Iterator[str]:
    """`moderation serve`, no worker."""
    with served_api(redis_server.url, tmp_path) as base:
        yield base


@pytest.fixture
def served(
    redis_server: RedisServer, tiny_detoxify: TinyDetoxify, api: str, tmp_path: Path
) -> Iterator[str]:
    """`moderation serve` and a worker with the tiny Detoxify checkpoint."""
    extra = {
        "MODERATION_TOXICITY_MODEL": f"detoxify:{tiny_detoxify.checkpoint}",
        "MODERATION_DETOXIFY_CONFIG_DIR": str(tiny_detoxify.config_dir),
    }
    with running_worker(redis_server.url, tmp_path / "worker.log", extra):
        yield api


def google_client(base: str, api_key: str) -> Any:
    """Perspective's sample, word for word but for this service's URL in place of Google's."""
    return discovery.build(
        "commentanalyzer",
        "v1alpha1",
        developerKey=api_key,
        discoveryServiceUrl=base + DISCOVERY,
        static_discovery=False,
    )


def summary(body: dict, attribute: str) -> float:
    score = body["attributeScores"][attribute]["summaryScore"]
    assert score["type"] == "PROBABILITY"
    return score["value"]


# --- the real client against real processes ---------------------------------------------------


@pytest.mark.e2e
def test_googles_client_analyzes_suggests_and_reads_refusals(
    served: str, site: SiteCredentials, redis_client: redis.Redis
) -> None:
    client = google_client(served, site.api_key)
    analyze = {
        "comment": {"text": TOXIC_EXAMPLE},
        "requestedAttributes": {"TOXICITY": {}, "INSULT": {}, "THREAT": {}},
        "languages": ["en"],
        "doNotStore": True,
    }
    toxic = client.comments().analyze(body=analyze).execute()
    clean_request = {  # Google's "unspecified" enum values: plain text, probabilities
        **analyze,
        "comment": {"text": CLEAN_EXAMPLE, "type": "TEXT_TYPE_UNSPECIFIED"},
        "requestedAttributes": {"TOXICITY": {"scoreType": "SCORE_TYPE_UNSPECIFIED"}},
        "clientToken": "t-9",
    }
    clean = client.comments().analyze(body=clean_request).execute()
    assert set(toxic["attributeScores"]) == {"TOXICITY", "INSULT", "THREAT"}
    assert summary(toxic, "TOXICITY") > 0.9 > 0.1 > summary(clean, "TOXICITY")
    assert toxic["languages"] == ["en"] and clean["clientToken"] == "t-9"

    suggestion = {
        "comment": {"text": "an ugly remark"},
        "attributeScores": {"TOXICITY": {"summaryScore": {"value": 1}}},
        "clientToken": "comment:7",
        "sessionId": "s-1",
    }
    assert client.comments().suggestscore(body=suggestion).execute() == {"clientToken": "comment:7"}
    [(_, fields)] = redis_client.xrange(KEYS.labels("news"))
    assert (fields[b"content"], fields[b"kind"]) == (b"an ugly remark", b"toxic")

    # A key the service does not know: Google's 400 with reason API_KEY_INVALID.
    with pytest.raises(HttpError) as refused:
        google_client(served, "mk_not-a-key").comments().analyze(body=analyze).execute()
    assert refused.value.status_code == 400
    assert refused.value.reason == "API key not valid. Please pass a valid API key."
    [info] = refused.value.error_details
    assert info["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    assert (info["reason"], info["domain"]) == ("API_KEY_INVALID", "googleapis.com")

    # An attribute the model does not give: a 400 naming it.
    with pytest.raises(HttpError) as unknown:
        explicit = {**analyze, "requestedAttributes": {"SEXUALLY_EXPLICIT": {}}}
        client.comments().analyze(body=explicit).execute()
    assert unknown.value.status_code == 400 and "SEXUALLY_EXPLICIT" in unknown.value.reason


def test_the_served_document_points_at_the_service(api: str, site: SiteCredentials) -> None:
    response, content = httplib2.Http(timeout=10).request(api + DISCOVERY)
    assert response.status == 200 and response["cache-control"] == "no-store"
    document = json.loads(content)
    assert document["rootUrl"] == document["baseUrl"] == api + "/"

    response, content = httplib2.Http(timeout=10).request(api + "/$discovery/rest?version=v1")
    assert response.status == 404
    error = json.loads(content)["error"]
    assert (error["code"], error["status"]) == (404, "NOT_FOUND")
    assert "version: v1" in error["message"]
    with pytest.raises(discovery.UnknownApiNameOrVersion):
        discovery.build(
            "commentanalyzer",
            "v1",
            developerKey=site.api_key,
            discoveryServiceUrl=api + "/$discovery/rest?version={apiVersion}",
            static_discovery=False,
            cache_discovery=False,
        )


# --- the document and the error details, in process ---------------------------------------------


def test_document_shape() -> None:
    """Google's discovery format, as `discovery.build_from_document` reads it."""
    document = json.loads(DOCUMENT.read_text())
    assert document["kind"] == "discovery#restDescription"
    assert (document["discoveryVersion"], document["protocol"]) == ("v1", "rest")
    assert (document["id"], document["name"], document["version"]) == (
        "commentanalyzer:v1alpha1",
        "commentanalyzer",
        "v1alpha1",
    )
    assert document["servicePath"] == ""
    assert {"key", "alt", "fields", "prettyPrint", "quotaUser", "$.xgafv"} <= set(
        document["parameters"]
    )
    methods = document["resources"]["comments"]["methods"]
    for name, request, response in (
        ("analyze", "AnalyzeCommentRequest", "AnalyzeCommentResponse"),
        ("suggestscore", "SuggestCommentScoreRequest", "SuggestCommentScoreResponse"),
    ):
        method = methods[name]
        assert method["id"] == f"commentanalyzer.comments.{name}"
        assert method["httpMethod"] == "POST"
        assert method["path"] == method["flatPath"] == f"v1alpha1/comments:{name}"
        assert method["parameterOrder"] == []
        assert (method["request"]["$ref"], method["response"]["$ref"]) == (request, response)
    schemas = document["schemas"]
    # Every reference resolves, and each schema names itself.
    references = {m for m in json.dumps(document).split('"$ref": "')[1:]}
    assert {reference.split('"')[0] for reference in references} <= set(schemas)
    assert all(schema["id"] == name for name, schema in schemas.items())
    assert set(schemas["AnalyzeCommentRequest"]["properties"]) == {
        "clientToken",
        "comment",
        "communityId",
        "context",
        "doNotStore",
        "dropUnsupportedAttributes",
        "languages",
        "requestedAttributes",
        "sessionId",
        "spanAnnotations",
    }
    assert set(schemas["SpanScore"]["properties"]) == {"begin", "end", "score"}
    assert set(schemas["TextEntry"]["properties"]) == {"text", "type"}

    # Google's client builds from it (no request is made).
    client = discovery.build_from_document(
        {**document, "rootUrl": "https://moderation.example/"}, developerKey="k"
    )
    request = client.comments().analyze(body={"comment": {"text": "hi"}})
    assert request.uri.startswith("https://moderation.example/v1alpha1/comments:analyze?")
    assert "key=k" in request.uri and request.method == "POST"


def test_root_url_comes_from_the_request_or_the_setting(
    client: FlaskClient, settings: Settings
) -> None:
    served = client.get(DISCOVERY, base_url="https://Mod.Example:8443")
    assert served.status_code == 200
    assert served.get_json()["rootUrl"] == "https://mod.example:8443/"
    assert client.get("/$discovery/rest").get_json()["version"] == "v1alpha1"  # the default
    docker = client.get(DISCOVERY, headers={"Host": "moderation_api:8000"})
    assert docker.get_json()["rootUrl"] == "http://moderation_api:8000/"
    for bad in ("evil.example/x", "a b", "user@evil.example", ""):
        refused = client.get(DISCOVERY, headers={"Host": bad})
        assert google_error(refused, 400, "INVALID_ARGUMENT")["message"] == (
            "The request's Host header is not a valid host name."
        )

    # Behind MODERATION_PROXY_HOPS proxies the scheme is the one they were called with.
    behind: Flask = create_app(settings.with_overrides(proxy_hops=1))
    configured: Flask = create_app(
        settings.with_overrides(public_url="https://moderation.example/perspective/")
    )
    try:
        proxied = behind.test_client().get(DISCOVERY, headers={"X-Forwarded-Proto": "https"})
        assert proxied.get_json()["rootUrl"] == "https://localhost/"
        fixed = configured.test_client().get(DISCOVERY, headers={"Host": "other.example"})
        assert fixed.get_json()["rootUrl"] == "https://moderation.example/perspective/"
        assert fixed.headers["Cache-Control"] == "public, max-age=3600"
    finally:
        behind.extensions["moderation"].redis.close()
        configured.extensions["moderation"].redis.close()


def test_refusals_carry_googles_error_details(
    settings: Settings, site: SiteCredentials, client: FlaskClient
) -> None:
    body = {"comment": {"text": "hi"}, "requestedAttributes": {"TOXICITY": {}}}
    bad = google_error(client.post(ANALYZE + "?key=mk_nope", json=body), 400, "INVALID_ARGUMENT")
    assert error_reason(bad) == "API_KEY_INVALID"
    assert bad["details"][0]["metadata"] == {"service": "commentanalyzer.googleapis.com"}
    missing = google_error(client.post(ANALYZE, json=body), 403, "PERMISSION_DENIED")
    assert missing["message"] == "The request is missing a valid API key."
    assert error_reason(missing) == "CREDENTIALS_MISSING"

    # No worker runs: 503 with when to retry, as Retry-After and as google.rpc.RetryInfo.
    unavailable = client.post(f"{ANALYZE}?key={site.api_key}", json=body)
    error = google_error(unavailable, 503, "UNAVAILABLE")
    retry = f"{unavailable.headers['Retry-After']}s"
    assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry} in error[
        "details"
    ]

    limited_app: Flask = create_app(settings.with_overrides(rate_limit_site="1 per minute"))
    try:
        limited = limited_app.test_client()
        suggestion = {"comment": {"text": "hi"}, "attributeScores": {"TOXICITY": {}}}
        limited.post(f"/v1alpha1/comments:suggestscore?key={site.api_key}", json=suggestion)
        refused = limited.post(f"/v1alpha1/comments:suggestscore?key={site.api_key}", json={})
        error = google_error(refused, 429, "RESOURCE_EXHAUSTED")
        assert error_reason(error) == "RATE_LIMIT_EXCEEDED"
        assert error["details"][1]["retryDelay"] == f"{refused.headers['Retry-After']}s"
        # The discovery document is never limited.
        assert all(limited.get(DISCOVERY).status_code == 200 for _ in range(3))
    finally:
        limited_app.extensions["moderation"].redis.close()
