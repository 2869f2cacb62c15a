"""Akismet-compatible endpoints under `/1.1/` (and `/1.2/` for key-sites and usage-limit, as
Akismet serves them): comment-check, submit-spam, submit-ham, verify-key, and the account calls
WordPress's plugin makes (get-subscription, get-stats, deactivate, key-sites, usage-limit, test).

Form-encoded requests (the key in the form or the host name: `moderation.protocols.akismet`);
text or JSON answers in Akismet's style. A plain Flask blueprint (not in the OpenAPI document,
which describes the JSON API); CSRF-exempt because it reads no cookies.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TypeVar

import redis
from flask import Blueprint, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from moderation.actions.immediate_checks import check_now
from moderation.core import credentials
from moderation.http.app_services import services
from moderation.http.errors import storage_refusal
from moderation.http.rate_limits import ProtocolLimits, client_address
from moderation.protocols import akismet
from moderation.protocols.akismet import (
    ACCOUNT_KEY_FIELDS,
    COMMENT_KEY_FIELDS,
    CONNECTED,
    DEBUG_HEADER,
    THANKS,
    AkismetError,
    is_administrator,
    is_set,
    presented_key,
    require,
    submission_from,
    verdict,
)
from moderation.protocols.akismet_usage import AkismetUsage, month_of
from moderation.storage.comment_store import SCORING_FAILED
from moderation.storage.label_store import LabelKind

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Response])

blp = Blueprint("akismet", __name__)
#: Akismet's API versions: 1.1 for every call, and 1.2 where Akismet serves its newer ones.
V1_1, V1_2 = ("1.1",), ("1.1", "1.2")

#: Seconds a caller should wait before checking again when no worker answered in time.
BUSY_RETRY_AFTER = 5


def text(body: str, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(body, status=status, mimetype="text/plain", headers=dict(headers or {}))


def refusal(error: AkismetError) -> Response:
    return text(error.body, error.status, {DEBUG_HEADER: error.debug, **error.headers})


@blp.errorhandler(AkismetError)
def handle_akismet_error(error: AkismetError) -> Response:
    return refusal(error)


@blp.errorhandler(redis.ConnectionError)
@blp.errorhandler(redis.TimeoutError)
def handle_redis_down(error: Exception) -> Response:
    refused = storage_refusal(error)
    return refusal(AkismetError("unavailable", refused.message, 503, refused.headers))


@blp.errorhandler(HTTPException)
def handle_http_error(error: HTTPException) -> Response:
    status = error.code or 500
    return refusal(AkismetError(error.name, error.description or error.name, status))


#: Endpoint -> where its call looks for the key first (`akismet_route` fills it).
KEY_FIELDS: dict[str, tuple[str, ...]] = {}


def akismet_route(
    name: str,
    methods: tuple[str, ...] = ("POST",),
    versions: tuple[str, ...] = V1_1,
    key_fields: tuple[str, ...] = COMMENT_KEY_FIELDS,
) -> Callable[[F], F]:
    """Serve a call under the versions Akismet's clients use for it; `key_fields`: the form
    fields it reads the key from, in order (the account calls send `key`)."""

    def register(view: F) -> F:
        for version in versions:
            blp.add_url_rule(f"/{version}/{name}", view_func=view, methods=list(methods))
        KEY_FIELDS[f"{blp.name}.{view.__name__}"] = key_fields
        return view

    return register


def form() -> Mapping[str, str]:
    """The call's parameters: the form, and the query string some clients use (GET calls)."""
    return request.values


def request_key() -> str | None:
    """The key this request presents, in the form or the host name (also the rate limits')."""
    # The Host header as sent: werkzeug's `request.host` is empty for a name with "_" in it,
    # which API keys have (DNS names may not, but clients send them).
    host = request.environ.get("HTTP_HOST", "")
    return presented_key(form(), host, KEY_FIELDS.get(request.endpoint or "", COMMENT_KEY_FIELDS))


def request_site() -> str | None:
    """The site whose key the request presents, or None; looked up once per request (the
    rate limit asks first, then the call)."""
    if "akismet_site" not in g:
        key = request_key()
        g.akismet_site = services().sites.authenticate_akismet(key) if key else None
    return g.akismet_site


def authenticated_site() -> str:
    """The site whose key the call presents; Akismet's `invalid` otherwise."""
    if request_key() is None:
        raise AkismetError("Missing required field: api_key.", 'Empty "api_key" value')
    site = request_site()
    if site is None:
        raise AkismetError("invalid", "The key is not a site's key on this service.")
    return site


# --- rate limits (`moderation.http.rate_limits`) ------------------------------------------------


def rate_limit_credential() -> str:
    """For a call whose key (form or host name, any case, API key or Akismet-shaped) is a
    site's: the site's API key by digest, so that it shares the count of the site's `/v1` and
    Perspective calls. Otherwise the presented key lowercased, by digest, or the address."""
    site = request_site()
    api_key_digest = services().sites.api_key_digest(site) if site else None
    if api_key_digest:
        return f"credential:{api_key_digest}"
    key = request_key()
    return f"credential:{credentials.digest(key.lower())}" if key else client_address()


def rate_limit_refusal(message: str, headers: dict[str, str]) -> Response:
    """A 429 in Akismet's text style."""
    return refusal(AkismetError("rate limited", message, 429, headers))


def answered_invalid(response: Response) -> bool:
    """Akismet's failed authentication: `invalid`, answered with a 200 as Akismet does."""
    return response.get_data() == b"invalid"


RATE_LIMITS = ProtocolLimits(
    blueprint=blp.name,
    credential=rate_limit_credential,
    presented_key=request_key,
    refusal=rate_limit_refusal,
    failed_authentication=answered_invalid,
)


def usage() -> AkismetUsage:
    return AkismetUsage(services().redis)


def blog() -> str:
    return form().get("blog", "")


@akismet_route("comment-check")
def comment_check() -> Response:
    """`true` (spam) or `false`, scored by the workers while the caller waits."""
    values = form()
    site = authenticated_site()
    if is_administrator(values):
        return text("false")
    require(values, "user_ip", "comment_content")
    submission = submission_from(values)
    svc = services()
    timeout = svc.settings.max_wait_seconds
    comment = check_now(svc, site, submission, timeout)
    decision = comment.decision if comment else None
    if decision is None or decision.scores is None or SCORING_FAILED in decision.reasons:
        debug = f"No scoring worker decided within {timeout:g} s; retry later."
        raise AkismetError("unavailable", debug, 503, {"Retry-After": str(BUSY_RETRY_AFTER)})
    answer = verdict(decision.scores, svc.policies.get(site), bool(submission.honeypot))
    if not is_set(values.get("is_test")):
        usage().record(site, blog(), "spam" if answer.spam else "ham")
    return text(answer.body, headers=answer.headers)


def submit(verdict_name: str, kind: LabelKind, count: str) -> Response:
    """The text becomes a label for the site's learning (nothing with `is_test`)."""
    values = form()
    site = authenticated_site()
    require(values, "user_ip", "comment_content")
    submission = submission_from(values)
    if not is_set(values.get("is_test")):
        source = f"akismet:submit-{verdict_name}"
        services().labels.label_text(site, submission.content, kind, source)
        usage().record(site, blog(), count)
    return text(THANKS)


@akismet_route("submit-spam")
def submit_spam() -> Response:
    return submit("spam", LabelKind.SPAM, "missed_spam")


@akismet_route("submit-ham")
def submit_ham() -> Response:
    return submit("ham", LabelKind.OK, "false_positives")


@akismet_route("verify-key", key_fields=ACCOUNT_KEY_FIELDS)
def verify_key() -> Response:
    """`valid` when the key (`key`, `api_key` or the host's) is a site's key, else `invalid`."""
    if request_key() is None:
        return refusal(AkismetError("invalid", 'Empty "key" value'))
    authenticated_site()
    return text("valid")


@akismet_route("get-subscription", key_fields=ACCOUNT_KEY_FIELDS)
def get_subscription() -> Response:
    """The account behind the key, as WordPress's settings page reads it (`invalid` if none)."""
    return jsonify(akismet.subscription(authenticated_site()))


@akismet_route("get-stats", key_fields=ACCOUNT_KEY_FIELDS)
def get_stats() -> Response:
    """Checks and corrections over `from` ("6-months", "all" or a date), by month."""
    site = authenticated_site()
    kept = usage().months(site)
    months = akismet.stats_months(sorted(kept), form().get("from", ""), month_of())
    return jsonify(akismet.stats({month: kept[month] for month in months}))


@akismet_route("deactivate", key_fields=ACCOUNT_KEY_FIELDS)
def deactivate() -> Response:
    """WordPress calls this when its plugin is turned off; the key stays valid."""
    authenticated_site()
    return text("deactivated")


@akismet_route("key-sites", methods=("GET", "POST"), versions=V1_2)
def key_sites() -> Response:
    """The blogs that used the key in a month, with their counts (JSON or CSV)."""
    site = authenticated_site()
    query = akismet.key_sites_query(form(), month_of())
    page = akismet.key_sites_page(query, usage().blogs(site, query.month))
    if query.format == "csv":
        return text(akismet.key_sites_csv(page))
    return jsonify(akismet.key_sites_json(page))


@akismet_route("usage-limit", methods=("GET", "POST"), versions=V1_2)
def usage_limit() -> Response:
    """This month's checks; no monthly limit."""
    site = authenticated_site()
    return jsonify(akismet.usage(usage().calls(site, month_of())))


@akismet_route("test", methods=("GET",))
def connectivity_test() -> Response:
    """WordPress's connectivity check: `connected`, no key needed."""
    return text(CONNECTED)
