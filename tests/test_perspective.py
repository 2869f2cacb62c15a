"""The Perspective-compatible API (/v1alpha1/comments:analyze and :suggestscore).

Scored by real worker processes. The `perspective` package from PyPI (unmodified) talks to a
real `moderation serve`; its only adaptation is its own `api_client.url` attribute. Coral
Talk's request bodies are reproduced from Coral's public source
(server/src/core/server/services/perspective/perspective.ts, `formatBody`): analyze sends
`comment.text`, `doNotStore`, `requestedAttributes` with the one configured model, and
`languages` with one language; suggestscore sends `context.entries`, the model's
`summaryScore.value` (0 approved, 1 deleted), `languages`, `communityId` and `clientToken`.
"""

from __future__ import annotations

import json
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from perspective import PerspectiveAPI

from moderation.app import create_app
from moderation.core.redis_keys import KEYS
from moderation.core.sentences import sentence_spans
from moderation.core.settings import Settings
from moderation.protocols.perspective import (
    model_support,
    scored_languages,
)
from moderation.storage.site_store import SiteCredentials
from tests.support.load import served_api
from tests.support.perspective import ANALYZE, SUGGEST, google_error
from tests.support.processes import running_worker
from tests.support.redis_dump import dump_everything, find_in_dump
from tests.support.redis_server import RedisServer
from tests.support.tiny_detoxify import CLEAN_EXAMPLE, TOXIC_EXAMPLE, TinyDetoxify

pytestmark = pytest.mark.e2e

DETOXIFY_ATTRIBUTES = (
    "TOXICITY",
    "SEVERE_TOXICITY",
    "IDENTITY_ATTACK",
    "INSULT",
    "PROFANITY",
    "THREAT",
)


def coral_analyze(text: str, do_not_store: bool = True, model: str = "TOXICITY") -> dict:
    """What Coral Talk POSTs to `<endpoint>/comments:analyze`."""
    return {
        "comment": {"text": text},
        "doNotStore": do_not_store,
        "requestedAttributes": {model: {}},
        "languages": ["en"],
    }


def coral_suggest(text: str, comment_id: str, approved: bool, model: str = "TOXICITY") -> dict:
    """What Coral Talk POSTs to `<endpoint>/comments:suggestscore` after a moderator acts."""
    context = {
        "url": f"https://news.example/story?commentID={comment_id}",
        "reply_to_id_Coral_comment_id": None,
        "Coral_comment_id": comment_id,
    }
    return {
        "comment": {"text": text},
        "context": {"entries": [{"text": json.dumps(context)}]},
        "attributeScores": {model: {"summaryScore": {"value": 0 if approved else 1}}},
        "languages": ["en"],
        "communityId": "Coral:https://news.example/",
        "clientToken": f"comment:{comment_id}",
    }


@pytest.fixture
def lite_worker(redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path) -> Iterator:
    with running_worker(redis_server.url, tmp_path / "worker.log") as process:
        yield process


@pytest.fixture
def detoxify_worker(
    redis_server: RedisServer, redis_client: redis.Redis, tiny_detoxify: TinyDetoxify, tmp_path
) -> Iterator:
    extra = {
        "MODERATION_TOXICITY_MODEL": f"detoxify:{tiny_detoxify.checkpoint}",
        "MODERATION_DETOXIFY_CONFIG_DIR": str(tiny_detoxify.config_dir),
    }
    with running_worker(redis_server.url, tmp_path / "worker.log", extra) as process:
        yield process


@pytest.fixture
def served(redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path) -> Iterator[str]:
    with served_api(redis_server.url, tmp_path) as base:
        yield base


def perspective_client(base: str, api_key: str) -> PerspectiveAPI:
    """The PyPI client, pointed at the served API through its own `url` setting."""
    client = PerspectiveAPI(api_key)
    client.api_client.url = base + "/v1alpha1/{endpoint}"
    return client


def summary(body: dict, attribute: str) -> float:
    score = body["attributeScores"][attribute]["summaryScore"]
    assert score["type"] == "PROBABILITY"
    assert 0.0 <= score["value"] <= 1.0
    return score["value"]


# --- a real client library, real worker processes ----------------------------------------


def test_client_library_analyzes_with_detoxify_labels(
    detoxify_worker, served: str, site: SiteCredentials
) -> None:
    client = perspective_client(served, site.api_key)
    requested = {name: {} for name in DETOXIFY_ATTRIBUTES}
    toxic = client.analyze_comment(TOXIC_EXAMPLE, requested_attributes=requested)
    clean = client.analyze_comment(
        CLEAN_EXAMPLE, requested_attributes=requested, client_token="t-1", do_not_store=True
    )

    assert set(toxic["attributeScores"]) == set(DETOXIFY_ATTRIBUTES)
    assert all("spanScores" not in entry for entry in toxic["attributeScores"].values())
    assert summary(toxic, "TOXICITY") > 0.9 > 0.1 > summary(clean, "TOXICITY")
    assert summary(toxic, "INSULT") > summary(clean, "INSULT")
    assert toxic["languages"] == ["en"] and toxic["detectedLanguages"] == ["en"]
    assert "clientToken" not in toxic and clean["clientToken"] == "t-1"
    assert client.score(TOXIC_EXAMPLE, ["PROFANITY"])["PROFANITY"] == summary(toxic, "PROFANITY")

    # The tiny checkpoint has Detoxify original's labels: no sexual_explicit.
    with pytest.raises(urllib.error.HTTPError) as refused:
        client.analyze_comment(TOXIC_EXAMPLE, requested_attributes={"SEXUALLY_EXPLICIT": {}})
    assert refused.value.code == 400
    error = json.loads(refused.value.read())["error"]
    assert error["status"] == "INVALID_ARGUMENT" and "SEXUALLY_EXPLICIT" in error["message"]


def test_client_library_span_annotations_score_each_sentence(
    detoxify_worker, served: str, site: SiteCredentials
) -> None:
    client = perspective_client(served, site.api_key)
    text = f"{CLEAN_EXAMPLE}. {TOXIC_EXAMPLE}!"
    body = client.analyze_comment(
        text,
        requested_attributes={"TOXICITY": {"scoreType": "PROBABILITY"}, "INSULT": {}},
        span_annotations=True,
        languages=["en"],
    )

    spans = body["attributeScores"]["TOXICITY"]["spanScores"]
    assert [(span["begin"], span["end"]) for span in spans] == [
        (0, len(CLEAN_EXAMPLE) + 1),
        (len(CLEAN_EXAMPLE) + 2, len(text)),
    ]
    assert text[spans[1]["begin"] : spans[1]["end"]] == f"{TOXIC_EXAMPLE}!"
    clean, toxic = (span["score"] for span in spans)
    assert clean["type"] == toxic["type"] == "PROBABILITY"
    assert clean["value"] < 0.1 < 0.9 < toxic["value"]
    assert len(body["attributeScores"]["INSULT"]["spanScores"]) == 2
    assert summary(body, "TOXICITY") > clean["value"]

    one = client.analyze_comment(TOXIC_EXAMPLE, span_annotations=True)
    [only] = one["attributeScores"]["TOXICITY"]["spanScores"]
    assert (only["begin"], only["end"]) == (0, len(TOXIC_EXAMPLE))
    assert only["score"]["value"] == summary(one, "TOXICITY")


def test_client_library_suggests_a_score(
    served: str, site: SiteCredentials, redis_client: redis.Redis
) -> None:
    client = perspective_client(served, site.api_key)
    answer = client.suggest_score(
        "an ugly remark",
        {"TOXICITY": {"summaryScore": {"value": 1.0}}},
        client_token="comment:42",
        community_id="Coral:https://news.example/",
    )
    assert answer == {"clientToken": "comment:42"}
    [(_, fields)] = redis_client.xrange(KEYS.labels("news"))
    assert fields[b"content"] == b"an ugly remark"
    assert fields[b"kind"] == b"toxic"
    assert fields[b"source"] == b"perspective:suggestscore:Coral:https://news.example/"
    assert json.loads(fields[b"details"]) == {"suggested": {"toxicity": 1.0}}  # by label


# --- Coral Talk's request bodies --------------------------------------------------------------


def test_coral_talk_analyze_and_suggest_bodies(
    lite_worker, client: FlaskClient, site: SiteCredentials, redis_client: redis.Redis
) -> None:
    key = f"?key={site.api_key}"
    toxic = client.post(ANALYZE + key, json=coral_analyze("You are a fucking idiot."))
    clean = client.post(ANALYZE + key, json=coral_analyze("Thanks, a great read.", False))
    assert toxic.status_code == clean.status_code == 200, toxic.get_json()
    # Coral reads exactly this: data.attributeScores[model].summaryScore.value
    assert summary(toxic.get_json(), "TOXICITY") > 0.8 > summary(clean.get_json(), "TOXICITY")
    assert set(toxic.get_json()["attributeScores"]) == {"TOXICITY"}

    suggested = client.post(SUGGEST + key, json=coral_suggest("Thanks!", "c-7", approved=True))
    assert suggested.status_code == 200 and suggested.get_json() == {"clientToken": "comment:c-7"}
    rejected = coral_suggest("You idiot.", "c-8", approved=False)
    assert client.post(SUGGEST + key, json=rejected).get_json() == {"clientToken": "comment:c-8"}
    labels = [fields for _, fields in redis_client.xrange(KEYS.labels("news"))]
    assert [(e[b"content"], e[b"kind"]) for e in labels] == [
        (b"Thanks!", b"ok"),
        (b"You idiot.", b"toxic"),
    ]


def test_do_not_store_keeps_nothing_in_redis(
    lite_worker, client: FlaskClient, site: SiteCredentials, redis_client: redis.Redis
) -> None:
    text = "zq-perspective-private text. And a second zq-sentence."
    before = set(redis_client.scan_iter(f"{KEYS.comment('news', '')}*"))
    response = client.post(
        f"{ANALYZE}?key={site.api_key}",
        json={**coral_analyze(text), "spanAnnotations": True},
    )
    assert response.status_code == 200, response.get_json()
    assert len(response.get_json()["attributeScores"]["TOXICITY"]["spanScores"]) == 2
    assert find_in_dump(dump_everything(redis_client), "zq-") == []
    assert set(redis_client.scan_iter(f"{KEYS.comment('news', '')}*")) == before

    kept = client.post(f"{ANALYZE}?key={site.api_key}", json=coral_analyze(text, False))
    assert kept.status_code == 200
    assert find_in_dump(dump_everything(redis_client), "zq-") == []  # the text never stays
    [record] = set(redis_client.scan_iter(f"{KEYS.comment('news', '')}*")) - before
    assert redis_client.hget(record, "status") in (b"approved", b"held")


# --- refusals in Google's format ----------------------------------------------------------------


def test_refusals_before_scoring(client: FlaskClient, site: SiteCredentials) -> None:
    key = f"?key={site.api_key}"
    google_error(
        client.post(ANALYZE + "?key=mk_nope", json=coral_analyze("hi")), 400, "INVALID_ARGUMENT"
    )
    assert (
        client.post(ANALYZE + "?key=mk_nope", json=coral_analyze("hi")).get_json()["error"][
            "message"
        ]
        == "API key not valid. Please pass a valid API key."
    )
    google_error(client.post(ANALYZE, json=coral_analyze("hi")), 403, "PERMISSION_DENIED")
    google_error(client.post(SUGGEST + "?key=x", json={}), 400, "INVALID_ARGUMENT")

    malformed = [
        b"{not json",
        b"[1, 2]",
        json.dumps({"comment": {"text": ""}, "requestedAttributes": {"TOXICITY": {}}}).encode(),
        json.dumps({"comment": {"text": "hi"}}).encode(),
        json.dumps({**coral_analyze("hi"), "doNotStore": "yes"}).encode(),
        json.dumps({**coral_analyze("hi"), "surprise": 1}).encode(),
        json.dumps({**coral_analyze("hi"), "comment": {"text": "hi", "type": "HTML"}}).encode(),
        json.dumps(coral_analyze("x" * 20_481)).encode(),
        json.dumps(
            {**coral_analyze("hi"), "requestedAttributes": {"TOXICITY": {"scoreType": "RAW"}}}
        ).encode(),
        json.dumps(
            {**coral_analyze("hi"), "requestedAttributes": {"TOXICITY": {"scoreThreshold": 2}}}
        ).encode(),
    ]
    malformed += [b"[" * 100_000, b'{"comment": {"text": "\\ud800"}}', b"\xff\xfe", b'"text"']
    for data in malformed:
        response = client.post(ANALYZE + key, data=data, content_type="application/json")
        google_error(response, 400, "INVALID_ARGUMENT")
    huge = client.post(ANALYZE + key, json=coral_analyze("x" * 2_000_000))
    google_error(huge, 413, "INVALID_ARGUMENT")
    unknown = client.post(ANALYZE + key, json=coral_analyze("hi", model="FLIRTATION"))
    assert google_error(unknown, 400, "INVALID_ARGUMENT")["message"] == (
        "Unknown requested attribute: FLIRTATION"
    )
    bad_suggestion = {"comment": {"text": "hi"}, "attributeScores": {"TOXICITY": {}}}
    google_error(client.post(SUGGEST + key, json=bad_suggestion), 400, "INVALID_ARGUMENT")

    # Nothing to score with: no worker runs.
    response = client.post(ANALYZE + key, json=coral_analyze("hi"))
    google_error(response, 503, "UNAVAILABLE")
    assert response.headers["Retry-After"]


def test_refusals_that_depend_on_the_model(
    lite_worker, client: FlaskClient, site: SiteCredentials
) -> None:
    key = f"?key={site.api_key}"
    german = {**coral_analyze("Das ist gut."), "languages": ["de"]}
    error = google_error(client.post(ANALYZE + key, json=german), 400, "INVALID_ARGUMENT")
    assert error["message"] == "Attribute TOXICITY does not support request languages: de"
    assert error["details"][0]["errorType"] == "LANGUAGE_NOT_SUPPORTED_BY_ATTRIBUTE"

    dropped = client.post(ANALYZE + key, json={**german, "dropUnsupportedAttributes": True})
    assert dropped.status_code == 200 and dropped.get_json()["attributeScores"] == {}

    # Without `languages`, the detected language decides, as with Google.
    french = coral_analyze("Espèce de connard, tu es un imbécile fini et personne ne veut de toi.")
    french.pop("languages", None)
    error = google_error(client.post(ANALYZE + key, json=french), 400, "INVALID_ARGUMENT")
    assert error["message"] == "Attribute TOXICITY does not support request languages: fr"
    assert error["details"][0]["languageNotSupportedByAttributeError"]["detectedLanguages"] == [
        "fr"
    ]

    # `lite` gives toxicity only.
    insult = client.post(ANALYZE + key, json=coral_analyze("hi", model="INSULT"))
    assert "lite" in google_error(insult, 400, "INVALID_ARGUMENT")["message"]

    # A threshold above the score leaves the attribute out.
    high = {**coral_analyze("Thanks!"), "requestedAttributes": {"TOXICITY": {"scoreThreshold": 1}}}
    assert client.post(ANALYZE + key, json=high).get_json()["attributeScores"] == {}


def test_a_check_not_scored_in_time_is_a_503(
    lite_worker, settings: Settings, site: SiteCredentials
) -> None:
    app = create_app(settings.with_overrides(max_wait_seconds=0.001))
    try:
        response = app.test_client().post(
            f"{ANALYZE}?key={site.api_key}", json=coral_analyze("A comment to score.")
        )
        assert "did not finish" in google_error(response, 503, "UNAVAILABLE")["message"]
        assert response.headers["Retry-After"]
    finally:
        app.extensions["moderation"].redis.close()


def test_rate_limit_is_per_site_key_in_googles_format(
    settings: Settings, site: SiteCredentials
) -> None:
    app: Flask = create_app(settings.with_overrides(rate_limit_site="2 per minute"))
    try:
        client = app.test_client()
        bearer = {"Authorization": f"Bearer {site.api_key}"}
        assert client.get("/v1/policy", headers=bearer).status_code == 200
        suggestion = coral_suggest("hi", "c-1", approved=True)
        assert client.post(f"{SUGGEST}?key={site.api_key}", json=suggestion).status_code == 200
        limited = client.post(f"{SUGGEST}?key={site.api_key}", json=suggestion)
        google_error(limited, 429, "RESOURCE_EXHAUSTED")
        assert limited.headers["Retry-After"]
    finally:
        app.extensions["moderation"].redis.close()


# --- the pure protocol pieces ---------------------------------------------------------------------


def test_sentence_spans() -> None:
    text = "  First one.  Second?! Third\nfourth "
    spans = sentence_spans(text)
    assert [text[b:e] for b, e in spans] == ["First one.", "Second?!", "Third", "fourth"]
    assert sentence_spans("no end") == [(0, 6)]


def test_model_support_and_languages() -> None:
    lite = model_support([{"toxicity": "lite", "labels": "toxicity"}])
    assert lite is not None and lite.attributes == ["TOXICITY"] and lite.languages == ("en",)
    multi = model_support([{"toxicity": "detoxify:multilingual", "languages": "en,fr,ru"}])
    assert multi is not None and "SEXUALLY_EXPLICIT" in multi.attributes
    assert multi.languages == ("en", "fr", "ru")
    # Labels: what every worker gives; languages: what some worker reads (comments in it are
    # handed over to that worker).
    mixed = model_support(
        [{"toxicity": "lite"}, {"toxicity": "detoxify:multilingual", "languages": "en,fr"}]
    )
    assert mixed is not None and mixed.attributes == ["TOXICITY"]
    assert mixed.languages == ("en", "fr")
    assert scored_languages("fr", mixed) == ["fr"]
    assert scored_languages("und", mixed) == ["en"]
    assert model_support([]) is None
