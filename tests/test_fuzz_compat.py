"""Hypothesis against the Perspective- and Akismet-compatible endpoints, with a real worker.

These endpoints speak Google's and Akismet's formats, so they are not in /v1/openapi.json and
schemathesis does not reach them; here hostile bodies (tests/support/hostile.py) go to each
one while a real scoring worker (the tiny Detoxify checkpoint, six labels) answers checks.

Properties: never a 5xx (a worker is running, so not even a 503); Perspective answers are
strict JSON, either a well-formed AnalyzeCommentResponse (only requested attributes, scores
in [0, 1], spans inside the text) or Google's error format; `doNotStore` leaves no comment in
Redis; Akismet answers are one of its texts, errors carry the debug-help header, and no header
carries a line break; `is_test` submissions and administrators' comments are never learned
from or scored.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import hypothesis
import pytest
import redis
from hypothesis import strategies as st

from moderation.core.redis_keys import KEYS
from moderation.core.settings import Settings
from moderation.protocols.akismet import DEBUG_HEADER, THANKS
from moderation.protocols.perspective import ATTRIBUTE_LABELS
from moderation.storage.site_store import SiteCredentials
from tests.support.hostile import (
    BOUNDED,
    SCALE,
    encode,
    hostile_text,
    json_values,
    plain,
    storable_text,
    strict_json,
    without_rate_limits,
)
from tests.support.perspective import ANALYZE, SUGGEST, google_error
from tests.support.processes import running_worker
from tests.support.redis_server import RedisServer
from tests.support.tiny_detoxify import TinyDetoxify

pytestmark = pytest.mark.e2e


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return without_rate_limits(settings)


@pytest.fixture
def worker(
    redis_server: RedisServer, redis_client: redis.Redis, tiny_detoxify: TinyDetoxify, tmp_path
) -> Iterator[None]:
    extra = {
        "MODERATION_TOXICITY_MODEL": f"detoxify:{tiny_detoxify.checkpoint}",
        "MODERATION_DETOXIFY_CONFIG_DIR": str(tiny_detoxify.config_dir),
    }
    with running_worker(redis_server.url, tmp_path / "worker.log", extra):
        yield


def comment_keys(connection: redis.Redis) -> set[bytes]:
    return set(connection.scan_iter(f"{KEYS.comment('news', '')}*"))


# --- Perspective -----------------------------------------------------------------------------

#: Known attribute names, TOXICITY most often (the model's own), so requests reach the worker.
known_attributes = st.sampled_from(["TOXICITY"] * 4 + list(ATTRIBUTE_LABELS))
attribute_names = st.one_of(
    known_attributes,
    known_attributes,
    st.sampled_from(["FLIRTATION", "toxicity", "TOXICITY_EXPERIMENTAL", ""]),
    hostile_text,
)
valid_parameters = st.fixed_dictionaries(
    {}, optional={"scoreType": st.just("PROBABILITY"), "scoreThreshold": st.floats(0, 1)}
)
comment_text = storable_text.filter(str.strip)
valid_languages = st.lists(st.sampled_from(["en", "en-US", "EN", "fr", "de", "", " "]), max_size=3)
#: Where a spoiled body puts something unexpected.
SPOILS = ["field", "comment", "parameters", "attribute", "unknown", "not an object"]


@st.composite
def analyze_bodies(draw: st.DrawFn) -> Any:
    """Valid AnalyzeCommentRequests full of hostile text, about a third of them spoiled."""
    requested = draw(st.dictionaries(known_attributes, valid_parameters, min_size=1, max_size=4))
    optional = {
        "languages": valid_languages,
        "spanAnnotations": st.booleans(),
        "doNotStore": st.booleans(),
        "clientToken": storable_text,
        "sessionId": storable_text,
        "communityId": storable_text,
        "dropUnsupportedAttributes": st.booleans(),
        "context": json_values,
    }
    comment = st.fixed_dictionaries(
        {"text": comment_text}, optional={"type": st.just("PLAIN_TEXT")}
    )
    body = draw(
        st.fixed_dictionaries(
            {"comment": comment, "requestedAttributes": st.just(requested)}, optional=optional
        )
    )
    spoil = draw(st.sampled_from(["none"] * 12 + SPOILS))
    if spoil == "field":
        body[draw(st.sampled_from(sorted(optional)))] = draw(json_values)
    elif spoil == "comment":
        body["comment"] = draw(
            json_values | st.fixed_dictionaries({"text": hostile_text, "type": json_values})
        )
    elif spoil == "parameters":
        requested[draw(attribute_names)] = draw(json_values)
    elif spoil == "attribute":
        requested[draw(attribute_names)] = {}
    elif spoil == "unknown":
        body[draw(hostile_text)] = draw(json_values)
    elif spoil == "not an object":
        return draw(json_values)
    return body


def assert_analysis(sent: dict[str, Any], answer: dict[str, Any]) -> None:
    """A well-formed AnalyzeCommentResponse for what was sent."""
    text = sent["comment"]["text"]
    assert set(answer["attributeScores"]) <= set(sent["requestedAttributes"])
    for attribute, entry in answer["attributeScores"].items():
        summary = entry["summaryScore"]
        assert summary["type"] == "PROBABILITY" and 0.0 <= summary["value"] <= 1.0
        threshold = (sent["requestedAttributes"][attribute] or {}).get("scoreThreshold")
        assert summary["value"] >= (threshold or 0.0)
        if sent.get("spanAnnotations"):
            for span in entry["spanScores"]:
                assert 0 <= span["begin"] < span["end"] <= len(text), span
                assert text[span["begin"] : span["end"]].strip()
                assert 0.0 <= span["score"]["value"] <= 1.0
        else:
            assert "spanScores" not in entry
    assert answer["languages"] and answer["detectedLanguages"]
    if isinstance(sent.get("clientToken"), str):
        assert answer["clientToken"] == sent["clientToken"]
    else:
        assert "clientToken" not in answer


def test_analyze_answers_any_body_in_perspectives_formats(
    worker, client, site: SiteCredentials, redis_client: redis.Redis
) -> None:
    outcomes: Counter[int] = Counter()

    @hypothesis.settings(BOUNDED, max_examples=80 * SCALE)
    @hypothesis.given(analyze_bodies())
    def analyze(body: Any) -> None:
        before = comment_keys(redis_client)
        response = client.post(
            f"{ANALYZE}?key={site.api_key}", data=encode(body), content_type="application/json"
        )
        outcomes[response.status_code] += 1
        if response.status_code != 200:
            google_error(response)
            assert comment_keys(redis_client) == before  # a refusal scores and keeps nothing
            return
        sent = plain(body)
        assert_analysis(sent, strict_json(response))
        if sent.get("doNotStore") is True:
            assert comment_keys(redis_client) == before

    analyze()
    # The examples reached the worker as well as the refusals, or the test proves little.
    assert outcomes[200] >= 10 * SCALE, outcomes


@st.composite
def suggest_bodies(draw: st.DrawFn) -> Any:
    """Valid SuggestCommentScoreRequests (as Coral sends them), about a third spoiled."""
    value = st.fixed_dictionaries({"value": st.floats(0, 1)})
    score = st.fixed_dictionaries({"summaryScore": value})
    scores = draw(st.dictionaries(known_attributes, score, min_size=1, max_size=3))
    optional = {
        "languages": valid_languages,
        "clientToken": storable_text,
        "communityId": storable_text,
        "context": json_values,
    }
    body = draw(
        st.fixed_dictionaries(
            {
                "comment": st.fixed_dictionaries({"text": comment_text}),
                "attributeScores": st.just(scores),
            },
            optional=optional,
        )
    )
    spoil = draw(st.sampled_from(["none"] * 12 + SPOILS))
    if spoil == "field":
        body[draw(st.sampled_from(sorted(optional)))] = draw(json_values)
    elif spoil == "comment":
        body["comment"] = draw(json_values)
    elif spoil in ("parameters", "attribute"):
        scores[draw(attribute_names)] = draw(json_values | score)
    elif spoil == "unknown":
        body[draw(hostile_text)] = draw(json_values)
    elif spoil == "not an object":
        return draw(json_values)
    return body


def test_suggestscore_answers_any_body_and_keeps_one_example_per_success(
    client, site: SiteCredentials, redis_client: redis.Redis
) -> None:
    @hypothesis.settings(BOUNDED, max_examples=60 * SCALE)
    @hypothesis.given(suggest_bodies())
    def suggest(body: Any) -> None:
        before = redis_client.xlen(KEYS.labels("news"))
        response = client.post(
            f"{SUGGEST}?key={site.api_key}", data=encode(body), content_type="application/json"
        )
        after = redis_client.xlen(KEYS.labels("news"))
        if response.status_code != 200:
            google_error(response)
            assert after == before
            return
        sent = plain(body)
        token_sent = sent.get("clientToken")
        expected = {"clientToken": token_sent} if isinstance(token_sent, str) else {}
        assert strict_json(response) == expected
        assert after == before + 1

    suggest()


# --- Akismet ---------------------------------------------------------------------------------

AKISMET_TEXTS = {"true", "false", "valid", "invalid", THANKS}
form_text = st.one_of(storable_text, hostile_text, st.sampled_from(["", "0", "1", "true"]))
valid_ips = st.sampled_from(["203.0.113.7", "::1", "2001:db8::1"])
#: Texts the spam scorer calls spam and ham, so that checks answer both.
SPAM = "Buy cheap viagra now!!! http://pills.example/buy http://cheap-meds.example click here"
HAM = "Thanks for the thoughtful article; the section on budgets was very clear."
contents = st.one_of(st.sampled_from([SPAM, HAM]), comment_text, form_text)


#: Values Akismet's clients send for each parameter (the honeypot field is called `hp`).
AKISMET_VALUES = {
    "blog": st.just("https://news.example"),
    "user_agent": st.sampled_from(["Mozilla/5.0 (X11; Linux x86_64)", ""]),
    "referrer": st.sampled_from(["https://news.example/", ""]),
    "permalink": st.just("https://news.example/story"),
    "comment_type": st.sampled_from(["comment", "reply", "signup", "trackback"]),
    "comment_author": st.sampled_from(["Ann", "Бeн", "\u202eevil", ""]),
    "comment_author_email": st.sampled_from(["a@example.com", ""]),
    "comment_author_url": st.sampled_from(["https://example.com", ""]),
    "honeypot_field_name": st.sampled_from(["hp", "api_key", "user_ip"]),
    "hp": st.sampled_from(["", "filled by a bot"]),
    "is_test": st.sampled_from(["1", "0", "true"]),
    "user_role": st.sampled_from(["administrator", "Administrator ", "subscriber"]),
}


@st.composite
def akismet_forms(draw: st.DrawFn, key: str) -> dict[str, str]:
    """Forms as Akismet's clients post them, with hostile content; about a third spoiled (a
    field holds hostile text, a required one is missing, or the key is wrong)."""
    form = draw(
        st.fixed_dictionaries(
            {"api_key": st.just(key), "user_ip": valid_ips, "comment_content": contents},
            optional=AKISMET_VALUES,
        )
    )
    spoil = draw(st.sampled_from(["none"] * 8 + ["field", "missing", "key"]))
    if spoil == "field":
        name = draw(st.sampled_from(sorted({*AKISMET_VALUES, "user_ip"})))
        form[name] = draw(
            form_text | st.sampled_from(["999.1.1.1", "not-an-email", "javascript:x"])
        )
    elif spoil == "missing":
        del form[draw(st.sampled_from(["user_ip", "comment_content", "api_key"]))]
    elif spoil == "key":
        form["api_key"] = draw(
            st.sampled_from(["mk_wrong", "", key + " ", key.upper()]) | form_text
        )
    return form


def assert_akismet_text(response: Any) -> str:
    assert response.status_code < 500, (response.status_code, response.data[:300])
    assert response.mimetype == "text/plain"
    for name, value in response.headers.items():
        assert "\r" not in value and "\n" not in value, (name, value)
    answer = response.get_data(as_text=True)
    if response.status_code != 200:  # 413 and the like: an HTTP error, explained
        assert response.headers[DEBUG_HEADER], answer
        return answer
    if answer not in AKISMET_TEXTS - {"invalid"}:
        assert response.headers[DEBUG_HEADER], answer
        assert answer == "invalid" or answer.startswith(
            ("Missing required field: ", "Invalid field: ")
        ), answer
    return answer


@pytest.mark.parametrize("path", ["comment-check", "submit-spam", "submit-ham", "verify-key"])
def test_akismet_answers_any_form_in_its_own_texts(
    request: pytest.FixtureRequest,
    client,
    site: SiteCredentials,
    redis_client: redis.Redis,
    path: str,
) -> None:
    if path == "comment-check":
        request.getfixturevalue("worker")  # checks are scored by a real worker
    answers: Counter[str] = Counter()

    @hypothesis.settings(BOUNDED, max_examples=30 * SCALE)
    @hypothesis.given(akismet_forms(site.api_key))
    def post(form: dict[str, str]) -> None:
        before = redis_client.xlen(KEYS.labels("news"))
        data = urlencode(form, errors="surrogatepass")
        response = client.post(
            f"/1.1/{path}", data=data, content_type="application/x-www-form-urlencoded"
        )
        answer = assert_akismet_text(response)
        answers[answer.split(":")[0]] += 1
        learned = redis_client.xlen(KEYS.labels("news")) - before
        if path.startswith("submit-"):
            test_only = form.get("is_test", "0") not in ("", "0")
            assert learned == (1 if answer == THANKS and not test_only else 0), (answer, form)
        else:
            assert learned == 0
        administrator = form.get("user_role", "").strip().lower() == "administrator"
        if path == "comment-check" and administrator and form.get("api_key") == site.api_key:
            assert answer == "false"

    post()
    if path == "comment-check":
        assert {"true", "false"} <= set(answers), answers  # checks reached the worker
