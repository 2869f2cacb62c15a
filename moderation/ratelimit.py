"""Rate limits: flask-limiter, counted in Redis so every API process and host shares one count.

- host-site endpoints: per API key (by its digest: the key itself never reaches Redis),
  the Akismet-compatible ones (any of the site's keys, in the form or the host name, counted
  as its API key) and the Perspective-compatible ones (key in `?key=`) sharing the same count;
- Coral's External Moderation Phase (`/coral/<site>`, signed, no key): per site, at the
  host-site rate, counting only calls whose signature is good;
- the review API and the /moderate page's JSON endpoints: per moderator;
- /moderate/login: every attempt per client address, and failed attempts per account name
  (a few quick tries, then a wait of up to a minute, then a lock of up to an hour);
- any request that fails authentication (401): per client address.

A breach answers 429 in the contract's error form with `Retry-After`. Operator endpoints
(/healthz, /readyz, /metrics), the API documentation and Perspective's discovery document are
never limited.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from flask import Flask, Response, g, request, session
from flask_limiter import Limiter, RateLimitExceeded

from moderation import keys
from moderation.auth import bearer_token
from moderation.connections import is_sentinel_url
from moderation.errors import ApiError, error_response
from moderation.keyspace import KEYS
from moderation.protocols import akismet_api
from moderation.protocols.akismet import AkismetError
from moderation.services import Services, services
from moderation.settings import Settings
from moderation.web.login import SESSION_KEY
from moderation.web.views import login_refused

SITE_BLUEPRINTS = ("comments", "policy", "site")
AKISMET_BLUEPRINT = "akismet"
PERSPECTIVE_BLUEPRINT = "perspective"
CORAL_BLUEPRINT = "coral"
REVIEW_BLUEPRINT = "review"
PAGE_BLUEPRINT = "moderate"
PAGE_JSON_ENDPOINTS = frozenset({"moderate.queue_json", "moderate.decide", "moderate.audit"})
LOGIN_ENDPOINT = "moderate.login"
#: Operator endpoints and documents served from memory (Perspective's discovery document:
#: cheaper to send than a count in Redis, and served while Redis is down).
UNLIMITED_BLUEPRINTS = frozenset({"ops", "api-docs", "docs_assets", "perspective-discovery"})


# --- who a request counts against ------------------------------------------------------------


def client_address() -> str:
    """The caller's address (the proxy's unless MODERATION_PROXY_HOPS says how many to trust)."""
    return f"address:{request.remote_addr or 'unknown'}"


def api_credential() -> str:
    """The bearer key or token by digest, or the address when none was sent."""
    token = bearer_token()
    return f"credential:{keys.digest(token)}" if token else client_address()


def akismet_credential() -> str:
    """For a call whose key (form or host name, any case, API key or Akismet-shaped) is a
    site's: the site's API key by digest, so that it shares the count of the site's `/v1` and
    Perspective calls. Otherwise the presented key lowercased, by digest, or the address."""
    site = akismet_api.request_site()
    api_key_digest = services().sites.api_key_digest(site) if site else None
    if api_key_digest:
        return f"credential:{api_key_digest}"
    key = akismet_api.request_key()
    return f"credential:{keys.digest(key.lower())}" if key else client_address()


def query_credential() -> str:
    """The Perspective endpoints' `?key=` (or `X-Goog-Api-Key`) by digest, or the address."""
    key = request.args.get("key") or request.headers.get("X-Goog-Api-Key")
    return f"credential:{keys.digest(key)}" if key else client_address()


def coral_site() -> str:
    """The site a Coral phase URL names (`/coral/<site>`): Coral presents no key, only a
    signature, so its calls count per site."""
    return f"coral:{(request.view_args or {}).get('site', '')}"


def signed(response: Response) -> bool:
    """Only calls that passed the signature check use up the site's Coral budget."""
    return response.status_code != 401


def page_moderator() -> str:
    """The logged-in moderator of the /moderate page, or the address."""
    name = session.get(SESSION_KEY)
    return f"moderator:{name}" if isinstance(name, str) else client_address()


def login_name() -> str:
    """The account name a login form names (names are not secret)."""
    name = request.form.get("name", "").strip().lower()[:63]
    return f"login:{name}" if name else client_address()


# --- when a limit applies --------------------------------------------------------------------


def is_unlimited() -> bool:
    endpoint = request.endpoint or ""
    return request.blueprint in UNLIMITED_BLUEPRINTS or endpoint.endswith("static")


def not_page_json() -> bool:
    return request.endpoint not in PAGE_JSON_ENDPOINTS


def not_login_post() -> bool:
    return not (request.endpoint == LOGIN_ENDPOINT and request.method == "POST")


def failed_authentication(response: Response) -> bool:
    """A 401, or Akismet's `invalid` (answered with a 200, as Akismet does)."""
    if request.blueprint == AKISMET_BLUEPRINT:
        return response.get_data() == b"invalid"
    return response.status_code == 401 or bool(g.get("auth_failed"))  # Perspective: 400/403


# --- the 429 answer --------------------------------------------------------------------------


def retry_after(limiter: Limiter) -> int:
    """Whole seconds until the breached limit lets a request through again (at least 1)."""
    current = limiter.current_limit
    if current is None:
        return 1
    return max(1, math.ceil(current.reset_at - time.time()))


def breach_handler(limiter: Limiter) -> Callable[[RateLimitExceeded], Response]:
    def too_many_requests(error: RateLimitExceeded) -> Response:
        wait = retry_after(limiter)
        if request.endpoint == LOGIN_ENDPOINT:
            return login_refused(wait)
        message = f"Rate limit exceeded ({error.limit.limit}). Retry in {wait} s."
        retry = {"Retry-After": str(wait)}
        if request.blueprint == AKISMET_BLUEPRINT:
            return akismet_api.refusal(AkismetError("rate limited", message, 429, retry))
        return error_response(ApiError(429, message, headers=retry))

    return too_many_requests


# --- wiring ----------------------------------------------------------------------------------


def storage_uri(redis_url: str) -> str:
    """The URL that picks limits' storage class. limits spells a Unix socket `redis+unix://`.
    A Sentinel URL becomes plain `redis://`: limits is handed the app's own connection pool,
    which already follows the Sentinels (limits' Sentinel storage would read `/<master>/<db>`
    as one master name, and open connections of its own)."""
    if redis_url.startswith("unix://"):
        return "redis+unix://" + redis_url.removeprefix("unix://")
    if is_sentinel_url(redis_url):
        return "redis://sentinel-master"  # only the scheme counts: the pool is given
    return redis_url


def init_app(app: Flask, settings: Settings, app_services: Services) -> Limiter:
    """Attach the limits to the app's blueprints (call after they are registered)."""
    limiter = Limiter(
        client_address,
        app=app,
        storage_uri=storage_uri(settings.redis_url),
        # The app's own fast-failing pool: when Redis is down the limiter raises
        # redis.ConnectionError, which the app answers with 503 like any other storage call.
        storage_options={
            "connection_pool": app_services.redis.connection_pool,
            "key_prefix": KEYS.rate_limits,
        },
        strategy="sliding-window-counter",
        application_limits=[settings.auth_failure_limit] if settings.auth_failure_limit else [],
        application_limits_deduct_when=failed_authentication,
        headers_enabled=False,
    )
    limiter.request_filter(is_unlimited)
    # Shared limits: one count per caller across all the endpoints of a scope.
    if settings.rate_limit_site:
        site_limit = limiter.shared_limit(
            settings.rate_limit_site, scope="site", key_func=api_credential
        )
        for name in SITE_BLUEPRINTS:
            site_limit(app.blueprints[name])
        limiter.shared_limit(settings.rate_limit_site, scope="site", key_func=akismet_credential)(
            app.blueprints[AKISMET_BLUEPRINT]
        )
        limiter.shared_limit(settings.rate_limit_site, scope="site", key_func=query_credential)(
            app.blueprints[PERSPECTIVE_BLUEPRINT]
        )
        limiter.shared_limit(
            settings.rate_limit_site, scope="coral", key_func=coral_site, deduct_when=signed
        )(app.blueprints[CORAL_BLUEPRINT])
    if settings.rate_limit_moderator:
        review_limit = settings.rate_limit_moderator
        limiter.shared_limit(review_limit, scope="review", key_func=api_credential)(
            app.blueprints[REVIEW_BLUEPRINT]
        )
        limiter.shared_limit(
            review_limit, scope="review", key_func=page_moderator, exempt_when=not_page_json
        )(app.blueprints[PAGE_BLUEPRINT])
    if settings.rate_limit_login:
        limiter.shared_limit(
            settings.rate_limit_login,
            scope="login",
            key_func=client_address,
            exempt_when=not_login_post,
        )(app.blueprints[PAGE_BLUEPRINT])
    if settings.login_failure_limit:
        limiter.shared_limit(
            settings.login_failure_limit,
            scope="login-failures",
            key_func=login_name,
            exempt_when=not_login_post,
            deduct_when=failed_authentication,
        )(app.blueprints[PAGE_BLUEPRINT])
    app.register_error_handler(RateLimitExceeded, breach_handler(limiter))
    return limiter
