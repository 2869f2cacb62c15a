"""Perspective-compatible endpoints: `comments:analyze` and `comments:suggestscore` under
`/v1alpha1`, authenticated by a site's API key in `?key=` (or `X-Goog-Api-Key`), answered
and refused in Google's formats. The protocol itself lives in `moderation.protocols.perspective`.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Response, g, jsonify, request

from moderation.actions.immediate_checks import check_many
from moderation.core import credentials
from moderation.core.records import UNDETERMINED_LANGUAGE, Comment, Submission
from moderation.core.sentences import sentence_spans
from moderation.http.api import Blueprint
from moderation.http.api.health import live_worker_names
from moderation.http.app_services import services
from moderation.http.errors import ApiError, error_response
from moderation.http.rate_limits import ProtocolLimits, client_address
from moderation.protocols.perspective import (
    AnalyzeRequest,
    ModelSupport,
    PerspectiveError,
    analyze_response,
    bad_key,
    missing_key,
    model_support,
    parse_analyze,
    parse_suggest,
    rewritten_error,
    scorable,
    scored_languages,
    suggested_label,
)
from moderation.storage.worker_models import WorkerModels

blp = Blueprint(
    "perspective",
    __name__,
    url_prefix="/v1alpha1",
    description="Perspective API compatibility (site API key in ?key=).",
)

#: Seconds a client should wait before retrying when no worker answered.
RETRY_AFTER = "5"


def query_key() -> str | None:
    """The API key as Google's clients send it: `?key=`, or the `X-Goog-Api-Key` header."""
    return request.args.get("key") or request.headers.get("X-Goog-Api-Key") or None


@blp.before_request
def authenticate() -> None:
    """Sets `g.site`, or answers as Google does: 403 without a key, 400 with a bad one."""
    key = query_key()
    if key is None:
        g.auth_failed = True
        raise missing_key()
    site = services().sites.authenticate(key)
    if site is None:
        g.auth_failed = True
        raise bad_key()
    g.site = site


@blp.errorhandler(PerspectiveError)
def answer_error(error: PerspectiveError) -> Response:
    response = jsonify(error.body())
    response.status_code = error.code
    response.headers.update(error.headers)
    return response


@blp.after_request
def google_format(response: Response) -> Response:
    """Errors raised outside this module (rate limits, Redis down, body too large) come in the
    contract's format; Perspective clients read Google's, so they are rewritten."""
    if response.status_code < 400 or not response.is_json:
        return response
    body = response.get_json(silent=True)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        message = str(error.get("message", ""))
        retry_after = response.headers.get("Retry-After")
        rewritten = rewritten_error(response.status_code, message, retry_after)
        response.set_data(json.dumps(rewritten))
    return response


# --- rate limits (`moderation.http.rate_limits`) ------------------------------------------------


def rate_limit_credential() -> str:
    """The `?key=` (or `X-Goog-Api-Key`) by digest, or the address."""
    key = query_key()
    return f"credential:{credentials.digest(key)}" if key else client_address()


def rate_limit_refusal(message: str, headers: dict[str, str]) -> Response:
    """A 429 in Google's format, already: the failed-authentication throttle answers after
    `google_format` has run, and `google_format` leaves an answer in Google's format as it is."""
    return google_format(error_response(ApiError(429, message, headers=headers)))


RATE_LIMITS = ProtocolLimits(
    blueprint=blp.name,
    credential=rate_limit_credential,
    presented_key=query_key,
    refusal=rate_limit_refusal,
)


def json_body() -> Any:
    """The request body as JSON whatever its Content-Type (Google's clients vary)."""
    try:
        return json.loads(request.get_data(cache=False) or b"null")
    except (ValueError, RecursionError):
        raise PerspectiveError(400, "Invalid JSON payload received.") from None


def current_support() -> ModelSupport:
    """What the live workers' model can score; 503 when no worker runs."""
    redis = services().redis
    support = model_support(WorkerModels(redis).of(live_worker_names()).values())
    if support is None:
        raise PerspectiveError(
            503, "No scoring worker is running; retry later.", headers={"Retry-After": RETRY_AFTER}
        )
    return support


def score(texts: list[str], hint: str | None, keep: bool) -> list[Comment]:
    """Each text's decided check from the workers (one each, awaited together); 503 when they
    do not all come within MODERATION_MAX_WAIT seconds or one could not be scored."""
    svc = services()
    timeout = svc.settings.max_wait_seconds
    context = {"language": hint} if hint else {}
    submissions = [Submission(id="perspective", content=text, context=context) for text in texts]
    decided = [c for c in check_many(svc, g.site, submissions, timeout, keep_record=keep) if c]
    decisions = [comment.decision for comment in decided if comment.decision]
    if len(decisions) < len(texts):
        raise PerspectiveError(
            503,
            f"Scoring did not finish within {timeout:g} s; retry later.",
            headers={"Retry-After": RETRY_AFTER},
        )
    if any(decision.scores is None for decision in decisions):
        raise PerspectiveError(
            503, "The comment could not be scored; retry later.", headers={"Retry-After": "60"}
        )
    return decided


def forget(checks: list[Comment]) -> None:
    """Nothing of a refused request stays."""
    for check in checks:
        services().comments.forget(g.site, check.id)


def analyze_request(request_: AnalyzeRequest) -> dict[str, Any]:
    support = current_support()
    # Requested languages are refused before scoring, as Google does; if
    # `dropUnsupportedAttributes` drops every attribute, the text is still read for its language.
    dropped = bool(request_.languages) and not scorable(request_, support, request_.languages)
    text = request_.text
    spans = sentence_spans(text) if request_.span_annotations else []
    whole = spans == [(len(text) - len(text.lstrip()), len(text.rstrip()))]
    texts = [text] if whole else [text] + [text[begin:end] for begin, end in spans]
    hint = request_.languages[0] if request_.languages else None
    checks = score(texts, hint, keep=not (request_.do_not_store or dropped))
    decisions = [check.decision for check in checks if check.decision]
    # "und" (a text whose language cannot be told: "lol") is BCP 47's own tag for it; Google
    # refuses such a text unless `languages` is given, this service scores it as English.
    language = decisions[0].language or UNDETERMINED_LANGUAGE
    detected = [language]
    languages = request_.languages or scored_languages(language, support)
    try:
        attributes = [] if dropped else scorable(request_, support, languages)
    except PerspectiveError:
        forget(checks)
        raise
    if not attributes:
        return analyze_response(request_, [], {}, None, languages, detected)
    scores = [decision.scores or {} for decision in decisions]
    span_scores = None
    if request_.span_annotations:
        per_span = scores[:1] if whole else scores[1:]
        span_scores = [(b, e, s) for (b, e), s in zip(spans, per_span, strict=True)]
    return analyze_response(request_, attributes, scores[0], span_scores, languages, detected)


@blp.route("/comments:analyze", methods=["POST"])
def analyze() -> Any:
    """Perspective's AnalyzeComment: the toxicity model's scores for the requested attributes."""
    return analyze_request(parse_analyze(json_body()))


@blp.route("/comments:suggestscore", methods=["POST"])
def suggestscore() -> Any:
    """Perspective's SuggestCommentScore: a label for the site's learning."""
    suggestion = parse_suggest(json_body())
    source = "perspective:suggestscore"
    if suggestion.community_id:
        source += f":{suggestion.community_id[:200]}"
    services().labels.label_text(
        g.site,
        suggestion.text,
        suggested_label(suggestion.scores),
        source,
        details={"suggested": suggestion.scores},
    )
    answer: dict[str, Any] = {}
    if suggestion.client_token is not None:
        answer["clientToken"] = suggestion.client_token
    return answer
