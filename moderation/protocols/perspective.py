"""Perspective API compatibility, the pure part: what a request asks, what the model can
answer, and the response and error bodies, shaped as Google's `commentanalyzer` v1alpha1.

No I/O here: `moderation.protocols.perspective_api` authenticates, scores through the workers and
calls these functions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from moderation.core.language_detection import normalise_language_tag
from moderation.core.records import UNDETERMINED_LANGUAGE
from moderation.storage.label_store import LabelKind
from moderation.storage.worker_languages import languages_read

#: Perspective attribute -> the toxicity model's label.
ATTRIBUTE_LABELS: dict[str, str] = {
    "TOXICITY": "toxicity",
    "SEVERE_TOXICITY": "severe_toxicity",
    "IDENTITY_ATTACK": "identity_attack",
    "INSULT": "insult",
    "PROFANITY": "obscene",
    "THREAT": "threat",
    "SEXUALLY_EXPLICIT": "sexual_explicit",
}
DETOXIFY_ORIGINAL = frozenset(
    {"toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack"}
)
#: Perspective's limit on the comment text (20 KB).
MAX_TEXT_BYTES = 20_480
SCORE_TYPE = "PROBABILITY"
ANALYZE_FIELDS = frozenset(
    {
        "comment",
        "context",
        "requestedAttributes",
        "spanAnnotations",
        "languages",
        "doNotStore",
        "clientToken",
        "sessionId",
        "communityId",
        "dropUnsupportedAttributes",
    }
)
SUGGEST_FIELDS = frozenset(
    {
        "comment",
        "context",
        "attributeScores",
        "languages",
        "communityId",
        "clientToken",
        "sessionId",
    }
)
#: What Google's schema calls "unspecified": the default (plain text, probability scores).
TEXT_TYPES = (None, "TEXT_TYPE_UNSPECIFIED", "PLAIN_TEXT")
SCORE_TYPES = (None, "", "SCORE_TYPE_UNSPECIFIED", SCORE_TYPE)
GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    415: "INVALID_ARGUMENT",
    422: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
BAD_KEY = "API key not valid. Please pass a valid API key."
MISSING_KEY = "The request is missing a valid API key."
#: The service Google's error details name; clients compare their `reason` and `domain`.
SERVICE_NAME = "commentanalyzer.googleapis.com"
ERROR_DOMAIN = "googleapis.com"


class PerspectiveError(Exception):
    """An error answered in Google's format: `{"error": {"code", "message", "status",
    "details"}}`; a `Retry-After` header is also told in `details` (google.rpc.RetryInfo)."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        details = [*(self.details or []), *retry_details(self.headers.get("Retry-After"))]
        return google_error(self.code, self.message, details)


def google_error(
    code: int, message: str, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {
        "code": code,
        "message": message,
        "status": GOOGLE_STATUS.get(code, "UNKNOWN"),
    }
    if details:
        error["details"] = details
    return {"error": error}


def invalid(message: str) -> PerspectiveError:
    return PerspectiveError(400, message)


# --- Google's error details (google.rpc.ErrorInfo, google.rpc.RetryInfo) ----------------------


def error_info(reason: str) -> dict[str, Any]:
    """The detail Google's clients read a refusal's cause from (`reason`, e.g.
    `API_KEY_INVALID`: google/api/error_reason.proto)."""
    return {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": ERROR_DOMAIN,
        "metadata": {"service": SERVICE_NAME},
    }


def retry_details(retry_after: str | None) -> list[dict[str, Any]]:
    """When to retry, as google.rpc.RetryInfo, from a `Retry-After` of whole seconds."""
    if not retry_after or not retry_after.isdigit():
        return []
    return [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_after}s"}]


def bad_key() -> PerspectiveError:
    """Google's answer to a key it does not know: 400 INVALID_ARGUMENT, API_KEY_INVALID."""
    return PerspectiveError(400, BAD_KEY, details=[error_info("API_KEY_INVALID")])


def missing_key() -> PerspectiveError:
    """Google's answer to a call without a key: 403 PERMISSION_DENIED, CREDENTIALS_MISSING."""
    return PerspectiveError(403, MISSING_KEY, details=[error_info("CREDENTIALS_MISSING")])


def rewritten_error(code: int, message: str, retry_after: str | None) -> dict[str, Any]:
    """An error raised outside this protocol (a rate limit, Redis down, a body too large) in
    Google's format, with the details Google gives: a 429 is RATE_LIMIT_EXCEEDED."""
    details = [error_info("RATE_LIMIT_EXCEEDED")] if code == 429 else []
    return google_error(code, message, details + retry_details(retry_after))


# --- what the model can answer ---------------------------------------------------------------


@dataclass(frozen=True)
class ModelSupport:
    """The labels every live worker's toxicity model gives, the languages some one reads."""

    models: tuple[str, ...]
    labels: frozenset[str]
    languages: tuple[str, ...]

    @property
    def attributes(self) -> list[str]:
        return [a for a, label in ATTRIBUTE_LABELS.items() if label in self.labels]


def labels_of(model: str) -> frozenset[str]:
    """The labels a model gives, from its name (for workers that did not register them)."""
    if model == "lite":
        return frozenset({"toxicity"})
    if model.startswith(("detoxify:unbiased", "detoxify:multilingual")):
        return DETOXIFY_ORIGINAL | {"sexual_explicit"}
    return DETOXIFY_ORIGINAL


def model_support(workers: Iterable[Mapping[str, str]]) -> ModelSupport | None:
    """What the live workers can score, from their registrations (`{"toxicity": name,
    "labels": "a,b", "languages": "en,fr"}`): the labels every one gives, the languages some
    one reads (comments are handed to a worker that reads theirs); None when none is alive."""
    registrations = list(workers)
    if not registrations:
        return None
    names, labels = [], None
    for registration in registrations:
        name = registration.get("toxicity", "?")
        names.append(name)
        own = registration.get("labels")
        model_labels = frozenset(own.split(",")) if own else labels_of(name)
        labels = model_labels if labels is None else labels & model_labels
    return ModelSupport(
        models=tuple(sorted(set(names))),
        labels=labels or frozenset(),
        languages=tuple(sorted(languages_read(registrations))),
    )


def normalize_language(code: str) -> str:
    """`en-US` -> `en`: the models know languages, not regions (the detector's hint parser);
    what is no language tag stays as sent, for the error to name it."""
    return normalise_language_tag(code) or code.strip().lower()


def scored_languages(detected: str, support: ModelSupport) -> list[str]:
    """The languages a comment was scored in when the request named none: the detected one,
    or for a text whose language cannot be told, English when a live model reads it."""
    if detected != UNDETERMINED_LANGUAGE:
        return [detected]
    return ["en"] if "en" in support.languages else list(support.languages[:1])


# --- the analyze request ---------------------------------------------------------------------


@dataclass(frozen=True)
class Requested:
    """One requested attribute and its optional threshold."""

    attribute: str
    threshold: float | None = None


@dataclass(frozen=True)
class AnalyzeRequest:
    text: str
    attributes: list[Requested]
    languages: list[str] = field(default_factory=list)
    span_annotations: bool = False
    do_not_store: bool = False
    client_token: str | None = None
    community_id: str | None = None
    drop_unsupported: bool = False


def _require_object(body: Any, allowed: frozenset[str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid("Invalid JSON payload received. Expected an object.")
    try:
        json.dumps(body, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise invalid("Invalid JSON payload received. A string is not valid UTF-8.") from None
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise invalid(
            f'Invalid JSON payload received. Unknown name "{unknown[0]}": Cannot find field.'
        )
    return body


def _optional(body: dict[str, Any], name: str, kind: type, proto: str) -> Any:
    value = body.get(name)
    if value is not None and (
        not isinstance(value, kind) or isinstance(value, bool) != (kind is bool)
    ):
        raise invalid(f"Invalid value at '{name}' ({proto}), {_json(value)}")
    return value


def _json(value: Any) -> str:
    return repr(value)[:80]


def _comment_text(body: dict[str, Any]) -> str:
    comment = body.get("comment")
    if comment is not None and not isinstance(comment, dict):
        raise invalid("Invalid value at 'comment' (type.googleapis.com/TextEntry).")
    comment = comment or {}
    kind = comment.get("type")
    if kind not in TEXT_TYPES:
        raise invalid(
            "Currently, only 'PLAIN_TEXT' comments are supported."
            if kind == "HTML"
            else "Unknown text type."
        )
    text = comment.get("text")
    if text is not None and not isinstance(text, str):
        raise invalid(f"Invalid value at 'comment.text' (TYPE_STRING), {_json(text)}")
    if not text or not text.strip():
        raise invalid("Comment must be non-empty.")
    if len(text.encode("utf-8", "surrogatepass")) > MAX_TEXT_BYTES:
        raise invalid("Comment text too long.")
    return text


def _languages(body: dict[str, Any]) -> list[str]:
    languages = body.get("languages") or []
    if not isinstance(languages, list) or not all(isinstance(x, str) for x in languages):
        raise invalid("Invalid value at 'languages' (TYPE_STRING).")
    normalized = [normalize_language(x) for x in languages if x.strip()]
    return list(dict.fromkeys(normalized))


def _threshold(attribute: str, parameters: dict[str, Any]) -> float | None:
    value = parameters.get("scoreThreshold")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise invalid(f"requestedAttributes.{attribute}.scoreThreshold must be in [0, 1].")
    return float(value)


def parse_analyze(body: Any) -> AnalyzeRequest:
    """A validated analyze request, or PerspectiveError (400) saying what is wrong."""
    body = _require_object(body, ANALYZE_FIELDS)
    text = _comment_text(body)
    attributes = body.get("requestedAttributes")
    if attributes is not None and not isinstance(attributes, dict):
        raise invalid("Invalid value at 'requested_attributes'.")
    if not attributes:
        raise invalid("Missing requested_attributes")
    requested = []
    for name, parameters in attributes.items():
        if name not in ATTRIBUTE_LABELS:
            raise invalid(f"Unknown requested attribute: {name}")
        parameters = parameters or {}
        if not isinstance(parameters, dict) or set(parameters) - {"scoreType", "scoreThreshold"}:
            raise invalid(f"Invalid value at 'requested_attributes[{name}]'.")
        score_type = parameters.get("scoreType")
        if score_type not in SCORE_TYPES:
            raise invalid(f"Requested score type {score_type} is not supported by attribute {name}")
        requested.append(Requested(name, _threshold(name, parameters)))
    return AnalyzeRequest(
        text=text,
        attributes=requested,
        languages=_languages(body),
        span_annotations=bool(_optional(body, "spanAnnotations", bool, "TYPE_BOOL")),
        do_not_store=bool(_optional(body, "doNotStore", bool, "TYPE_BOOL")),
        client_token=_optional(body, "clientToken", str, "TYPE_STRING"),
        community_id=_optional(body, "communityId", str, "TYPE_STRING"),
        drop_unsupported=bool(_optional(body, "dropUnsupportedAttributes", bool, "TYPE_BOOL")),
    )


def scorable(
    request: AnalyzeRequest, support: ModelSupport, languages: list[str]
) -> list[Requested]:
    """The requested attributes the model can score in `languages`; PerspectiveError (400)
    for one it cannot (unless `dropUnsupportedAttributes` drops it)."""
    for requested in request.attributes:
        if ATTRIBUTE_LABELS[requested.attribute] not in support.labels:
            raise invalid(
                f"Requested attribute {requested.attribute} is not available with this "
                f"service's model ({', '.join(support.models)}); it scores "
                f"{', '.join(support.attributes)}."
            )
    unsupported = [lang for lang in languages if lang not in support.languages]
    if not unsupported:
        return list(request.attributes)
    if request.drop_unsupported:
        return []
    attribute = request.attributes[0].attribute
    raise PerspectiveError(
        400,
        f"Attribute {attribute} does not support request languages: {','.join(unsupported)}",
        details=[
            {
                "@type": "type.googleapis.com/google.commentanalyzer.v1alpha1.Error",
                "errorType": "LANGUAGE_NOT_SUPPORTED_BY_ATTRIBUTE",
                "languageNotSupportedByAttributeError": {
                    "detectedLanguages": unsupported,
                    "attribute": attribute,
                },
            }
        ],
    )


# --- spans and the response ------------------------------------------------------------------


def _score(value: float) -> dict[str, Any]:
    return {"value": value, "type": SCORE_TYPE}


def analyze_response(
    request: AnalyzeRequest,
    attributes: list[Requested],
    summary: Mapping[str, float],
    spans: Sequence[tuple[int, int, Mapping[str, float]]] | None,
    languages: list[str],
    detected: list[str],
) -> dict[str, Any]:
    """Perspective's AnalyzeCommentResponse; scores under a requested threshold are left out."""
    scores: dict[str, Any] = {}
    for requested in attributes:
        label = ATTRIBUTE_LABELS[requested.attribute]
        value = summary[label]
        floor = requested.threshold or 0.0
        if value < floor:
            continue
        entry: dict[str, Any] = {}
        if spans is not None:
            entry["spanScores"] = [
                {"begin": begin, "end": end, "score": _score(span[label])}
                for begin, end, span in spans
                if span[label] >= floor
            ]
        entry["summaryScore"] = _score(value)
        scores[requested.attribute] = entry
    response: dict[str, Any] = {
        "attributeScores": scores,
        "languages": languages,
        "detectedLanguages": detected,
    }
    if request.client_token is not None:
        response["clientToken"] = request.client_token
    return response


# --- suggestscore ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SuggestRequest:
    text: str
    scores: dict[str, float]  # by model label
    client_token: str | None = None
    community_id: str | None = None


def _suggested_value(attribute: str, entry: Any) -> float:
    summary = entry.get("summaryScore") if isinstance(entry, dict) else None
    value = summary.get("value") if isinstance(summary, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise invalid(f"attributeScores.{attribute}.summaryScore.value must be in [0, 1].")
    return float(value)


def parse_suggest(body: Any) -> SuggestRequest:
    """A validated suggestscore request, or PerspectiveError (400)."""
    body = _require_object(body, SUGGEST_FIELDS)
    text = _comment_text(body)
    _languages(body)
    suggested = body.get("attributeScores")
    if not isinstance(suggested, dict) or not suggested:
        raise invalid("Missing attribute_scores")
    scores = {}
    for attribute, entry in suggested.items():
        if attribute not in ATTRIBUTE_LABELS:
            raise invalid(f"Unknown attribute: {attribute}")
        scores[ATTRIBUTE_LABELS[attribute]] = _suggested_value(attribute, entry)
    return SuggestRequest(
        text=text,
        scores=scores,
        client_token=_optional(body, "clientToken", str, "TYPE_STRING"),
        community_id=_optional(body, "communityId", str, "TYPE_STRING"),
    )


def suggested_label(scores: Mapping[str, float]) -> LabelKind:
    """The label a suggestion amounts to: `toxic` when any attribute is suggested at 0.5 or
    more, else `ok` (Coral sends 1 for a comment its moderators rejected, 0 for approved)."""
    return LabelKind.TOXIC if max(scores.values()) >= 0.5 else LabelKind.OK
