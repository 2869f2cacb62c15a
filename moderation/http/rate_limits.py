"""Rate limits: flask-limiter, counted in Redis so every API process and host shares one count.

- host-site endpoints: per API key (by its digest: the key itself never reaches Redis),
  the Akismet-compatible ones (any of the site's keys, in the form or the host name, counted
  as its API key) and the Perspective-compatible ones (key in `?key=`) sharing the same count;
- Coral's External Moderation Phase (`/coral/<site>`, signed, no key): per site, at the
  host-site rate, counting only calls whose signature is good;
- the review API and the /moderate page's JSON endpoints: per moderator;
- /moderate/login: every attempt per client address, and failed attempts per account name
  from each address (a few quick tries, then a wait of up to a minute, then a lock of up to
  an hour) and, ten times as many, per account name from everywhere (`login_failure_limits`);
- failed authentication (a wrong or missing key or token, a bad signature, a wrong password):
  per client address and per what was presented (a key's prefix, Coral's site), counted and
  refused only once the credential has been checked and found wrong, so that a request with
  valid credentials is never refused for someone else's failures (`failure_throttle`).

A breach answers 429 in the contract's error form (Akismet's and Perspective's forms on their
endpoints, the login form on /moderate/login) with `Retry-After`. Operator endpoints
(/healthz, /readyz, /metrics), the API documentation and Perspective's discovery document are
never limited.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import redis
from flask import Blueprint, Flask, Response, current_app, g, request, session
from flask_limiter import Limiter, RateLimitExceeded
from limits import RateLimitItem, parse_many

from moderation.actions.services import Services
from moderation.core import credentials
from moderation.core.redis_keys import KEYS
from moderation.core.settings import Settings
from moderation.http.auth import bearer_token
from moderation.http.errors import ApiError, error_response
from moderation.http.web.login import SESSION_KEY
from moderation.http.web.views import login_refused

log = logging.getLogger(__name__)

SITE_BLUEPRINTS = ("comments", "policy", "site")
CORAL_BLUEPRINT = "coral"
REVIEW_BLUEPRINT = "review"
PAGE_BLUEPRINT = "moderate"
PAGE_JSON_ENDPOINTS = frozenset({"moderate.queue_json", "moderate.decide", "moderate.audit"})
LOGIN_ENDPOINT = "moderate.login"
#: Operator endpoints and documents served from memory (Perspective's discovery document:
#: cheaper to send than a count in Redis, and served while Redis is down).
UNLIMITED_BLUEPRINTS = frozenset({"ops", "api-docs", "docs_assets", "perspective-discovery"})

#: The scope of the failed-authentication counts (per address and per presented key prefix).
FAILURE_SCOPE = "auth-failures"
#: How many leading characters of a presented key its failures are counted by: a stale key
#: retried from many addresses shares one count, a guesser's random keys spread over many.
KEY_PREFIX_LENGTH = 8
#: Failed logins allowed at one account from everywhere, as a multiple of those allowed from
#: one address (MODERATION_LOGIN_FAILURE_LIMIT).
ACCOUNT_WIDE_FACTOR = 10
#: Where `init_app` keeps the foreign protocols' `ProtocolLimits`, by blueprint name.
PROTOCOLS_EXTENSION = "moderation_rate_limit_protocols"


@dataclass(frozen=True)
class ProtocolLimits:
    """What the limits need from a foreign protocol's blueprint (Akismet's, Perspective's),
    handed over by the protocol itself (`moderation.app` passes them to `init_app`): this module
    knows no protocol. Its calls share the host sites' limit (scope "site")."""

    blueprint: str
    #: Whom a call counts against: "credential:<digest>" of the site's key, or the address.
    credential: Callable[[], str]
    #: The key a call presents (for the failed-authentication counts), None when it sent none.
    presented_key: Callable[[], str | None]
    #: The 429 in the protocol's own form, from its message and headers (`Retry-After`).
    refusal: Callable[[str, dict[str, str]], Response]
    #: Whether the view's answer is a failed authentication; None: a 401 or `g.auth_failed`.
    failed_authentication: Callable[[Response], bool] | None = None


def request_protocol() -> ProtocolLimits | None:
    """The foreign protocol whose endpoint this request calls, or None."""
    protocols: dict[str, ProtocolLimits] = current_app.extensions.get(PROTOCOLS_EXTENSION, {})
    return protocols.get(request.blueprint or "")


# --- who a request counts against ------------------------------------------------------------


def client_address() -> str:
    """The caller's address (the proxy's unless MODERATION_PROXY_HOPS says how many to trust)."""
    return f"address:{request.remote_addr or 'unknown'}"


def api_credential() -> str:
    """The bearer key or token by digest, or the address when none was sent."""
    token = bearer_token()
    return f"credential:{credentials.digest(token)}" if token else client_address()


def coral_site() -> str:
    """The site a Coral phase URL names (`/coral/<site>`): Coral presents no key, only a
    signature, so its calls count per site."""
    return f"coral:{(request.view_args or {}).get('site', '')}"


def page_moderator() -> str:
    """The logged-in moderator of the /moderate page, or the address."""
    name = session.get(SESSION_KEY)
    return f"moderator:{name}" if isinstance(name, str) else client_address()


def login_name() -> str:
    """The account name a login form names (names are not secret)."""
    name = request.form.get("name", "").strip().lower()[:63]
    return f"login:{name}" if name else client_address()


def login_name_at_address() -> str:
    """The account name a login form names, at the caller's address."""
    return f"{login_name()}/{client_address()}"


def presented() -> str | None:
    """What a failed authentication presented, besides its address: the first characters of
    the key or token, lowercased (Akismet's host names arrive lowercased), or the site a Coral
    call names; None for a call with no key and for the /moderate page (its logins count per
    account name instead)."""
    blueprint = request.blueprint
    if blueprint == CORAL_BLUEPRINT:
        return coral_site()
    if blueprint == PAGE_BLUEPRINT:
        return None
    protocol = request_protocol()
    key = protocol.presented_key() if protocol else bearer_token()
    return f"key:{key[:KEY_PREFIX_LENGTH].lower()}" if key else None


def presented_digest(what: str, secret_key: str | None) -> str:
    """`presented()` as its failure count names it: an HMAC under the server's key (a plain
    digest without one). Eight characters of an Akismet-shaped key are 32 of its 48 bits: a
    plain digest in a copy of Redis would give them away to a search of 2**32 candidates."""
    message = f"{FAILURE_SCOPE}:{what}".encode()
    mac = hmac.new((secret_key or "").encode(), message, hashlib.sha256)
    return mac.hexdigest()[:32]


def failure_counts(secret_key: str | None) -> list[tuple[str, str]]:
    """The counts (limits' identifiers) a failed authentication of this request goes to."""
    counts = [(client_address(), FAILURE_SCOPE)]
    what = presented()
    if what:
        counts.append((f"presented:{presented_digest(what, secret_key)}", FAILURE_SCOPE))
    return counts


# --- when a limit applies --------------------------------------------------------------------


def is_unlimited() -> bool:
    endpoint = request.endpoint or ""
    return request.blueprint in UNLIMITED_BLUEPRINTS or endpoint.endswith("static")


def not_page_json() -> bool:
    return request.endpoint not in PAGE_JSON_ENDPOINTS


def not_login_post() -> bool:
    return not (request.endpoint == LOGIN_ENDPOINT and request.method == "POST")


def failed_authentication(response: Response) -> bool:
    """A 401, or what a view flagged in `g.auth_failed` (Perspective's 400/403, Coral's 401),
    or what a protocol says is one (Akismet's `invalid`, answered with a 200 as Akismet does).

    Decided once, on the view's own answer: `failure_throttle` may then replace that answer
    with a 429, and flask-limiter's deductions (the login and Coral limits) ask again after it.
    """
    if "failed_authentication" not in g:
        protocol = request_protocol()
        if protocol and protocol.failed_authentication:
            failed = protocol.failed_authentication(response)
        else:
            failed = response.status_code == 401 or bool(g.get("auth_failed"))
        g.failed_authentication = failed
    return bool(g.failed_authentication)


def signed(response: Response) -> bool:
    """Only calls that passed the signature check use up the site's Coral budget."""
    return not failed_authentication(response)


def throttled_failure(response: Response) -> bool:
    """A failed authentication that the failure limits count and refuse: every one but the
    /moderate page's data asked for without a session. Such a call presents nothing to guess
    (the session cookie is signed), it is limited per address by the moderators' limit, and
    its 401 is what sends the page back to the login form, which a 429 would not."""
    if is_unlimited() or not failed_authentication(response):
        return False
    return request.endpoint not in PAGE_JSON_ENDPOINTS


# --- the 429 answer --------------------------------------------------------------------------


def retry_after(limiter: Limiter) -> int:
    """Whole seconds until the breached limit lets a request through again (at least 1)."""
    current = limiter.current_limit
    if current is None:
        return 1
    return seconds_until(current.reset_at)


def seconds_until(moment: float) -> int:
    return max(1, math.ceil(moment - time.time()))


def too_many_requests(limit: RateLimitItem, wait: int) -> Response:
    """The 429 in the form the endpoint's clients read (JSON, the login page, a protocol's own:
    Akismet's text, Google's JSON)."""
    if request.endpoint == LOGIN_ENDPOINT:
        return login_refused(wait)
    message = f"Rate limit exceeded ({limit}). Retry in {wait} s."
    retry = {"Retry-After": str(wait)}
    protocol = request_protocol()
    if protocol:
        return protocol.refusal(message, retry)
    return error_response(ApiError(429, message, headers=retry))


def breach_handler(limiter: Limiter) -> Callable[[RateLimitExceeded], Response]:
    def refuse(error: RateLimitExceeded) -> Response:
        return too_many_requests(error.limit.limit, retry_after(limiter))

    return refuse


def failure_throttle(
    limiter: Limiter, limits: list[RateLimitItem], secret_key: str | None
) -> Callable[[Response], Response]:
    """An `after_request` hook: a failed authentication is counted per client address and per
    what it presented (`failure_counts`); once one of those counts is past `limits`, it is
    answered 429 instead of its 401 (or Akismet's `invalid`, Perspective's 400/403), and no
    longer counted. A request whose credentials are valid is never counted nor refused here,
    whoever failed from its address: behind NAT or on a Kubernetes node, one client with a
    stale key no longer locks its neighbours out.

    Checking the key first and throttling only failures (so that, past the limit, a guess is
    still checked: a right one is served, a wrong one gets 429) is safe for site API keys and
    moderator tokens because they are high-entropy: 256 random bits, and 48 for Akismet-shaped
    keys, whose 2**48 candidates take about 900 years at 10,000 guesses a second (divided by
    the number of sites, since any site's key would do). For passwords, which may be
    guessable, `login_failure_limits` refuses attempts at an account before checking them.

    Registered after flask-limiter's own hook, so it runs before it (Flask runs them in reverse):
    `failed_authentication` keeps its verdict on the view's answer for the deductions that
    follow. Redis failing here leaves the refusal as it was: it is a refusal already.
    """

    def throttle(response: Response) -> Response:
        if not throttled_failure(response):
            return response
        strategy = limiter.limiter
        counts = failure_counts(secret_key)
        try:
            over = [(i, c) for i in limits for c in counts if not strategy.test(i, *c)]
            if not over:  # count it; a race with another process may still tip it over
                over = [(i, c) for i in limits for c in counts if not strategy.hit(i, *c)]
            if not over:
                return response
            waits = [
                (seconds_until(strategy.get_window_stats(i, *c).reset_time), i) for i, c in over
            ]
        except redis.RedisError as error:
            log.warning("Authentication failures not counted: %s", type(error).__name__)
            return response
        wait, limit = max(waits, key=lambda pair: pair[0])
        log.info("authentication failures past %s: answered 429", limit)
        return too_many_requests(limit, wait)

    return throttle


# --- wiring ----------------------------------------------------------------------------------


#: The URL that picks limits' storage class, whatever REDIS_URL is: limits is handed the app's
#: own connection pool (TCP, TLS, Unix socket or Sentinel-managed), so only the scheme counts.
#: (Its own Sentinel storage would read `/<master>/<db>` as one master name.)
LIMITS_STORAGE_URI = "redis://"


def account_wide(limit: str) -> str:
    """`limit` with every amount ACCOUNT_WIDE_FACTOR times larger ("3 per minute" -> "30 per
    1 minute")."""
    return "; ".join(
        f"{item.amount * ACCOUNT_WIDE_FACTOR} per {item.multiples} {item.GRANULARITY.name}"
        for item in parse_many(limit)
    )


def blueprint(app: Flask, name: str) -> Blueprint:
    """A registered blueprint, as flask-limiter's decorators take it (`app.blueprints` is
    typed with the base class they do not take)."""
    found = app.blueprints[name]
    assert isinstance(found, Blueprint)
    return found


def login_failure_limits(limiter: Limiter, app: Flask, limit: str) -> None:
    """Failed logins, checked before the password is: past a limit, every attempt at that
    account is refused with 429, the right password included, so that a guesser never learns
    whether a password was right once it is throttled.

    Counted twice: per (account name, client address) at MODERATION_LOGIN_FAILURE_LIMIT, and
    per account name from everywhere at ten times that. A stranger at one address can only
    lock the account for that address (its own count runs out long before the account-wide
    one), so the moderator still logs in from anywhere else; a guesser spread over many
    addresses still gets at most ten times the per-address allowance a minute and an hour,
    however many addresses it has. Per account alone, anyone could lock any moderator out
    from everywhere with a few wrong passwords; per address alone, a botnet would get
    unlimited guesses. (Passwords are generated, 120 random bits, today; the limits stand in
    case people ever choose their own.) Failed logins also count, after the check, against
    their address's failed-authentication limit (`failure_throttle`); a right one never does."""
    page = blueprint(app, PAGE_BLUEPRINT)
    for scope, key_func, amounts in (
        ("login-failures", login_name_at_address, limit),
        ("login-failures-account", login_name, account_wide(limit)),
    ):
        limiter.shared_limit(
            amounts,
            scope=scope,
            key_func=key_func,
            exempt_when=not_login_post,
            deduct_when=failed_authentication,
        )(page)


def init_app(
    app: Flask,
    settings: Settings,
    app_services: Services,
    protocols: Iterable[ProtocolLimits] = (),
) -> Limiter:
    """Attach the limits to the app's blueprints (call after they are registered), the foreign
    protocols' as they describe them."""
    protocols = list(protocols)
    app.extensions[PROTOCOLS_EXTENSION] = {protocol.blueprint: protocol for protocol in protocols}
    limiter = Limiter(
        client_address,
        app=app,
        storage_uri=LIMITS_STORAGE_URI,
        # The app's own fast-failing pool: when Redis is down the limiter raises
        # redis.ConnectionError, which the app answers with 503 like any other storage call.
        storage_options={
            # flask-limiter types the options str | int; limits' Redis storage takes a pool
            "connection_pool": app_services.redis.connection_pool,  # type: ignore[dict-item]
            "key_prefix": KEYS.rate_limits,
        },
        strategy="sliding-window-counter",
        headers_enabled=False,
    )
    limiter.request_filter(is_unlimited)
    # Shared limits: one count per caller across all the endpoints of a scope.
    if settings.rate_limit_site:
        site_limit = limiter.shared_limit(
            settings.rate_limit_site, scope="site", key_func=api_credential
        )
        for name in SITE_BLUEPRINTS:
            site_limit(blueprint(app, name))
        for protocol in protocols:
            limiter.shared_limit(
                settings.rate_limit_site, scope="site", key_func=protocol.credential
            )(blueprint(app, protocol.blueprint))
        limiter.shared_limit(
            settings.rate_limit_site, scope="coral", key_func=coral_site, deduct_when=signed
        )(blueprint(app, CORAL_BLUEPRINT))
    if settings.rate_limit_moderator:
        review_limit = settings.rate_limit_moderator
        limiter.shared_limit(review_limit, scope="review", key_func=api_credential)(
            blueprint(app, REVIEW_BLUEPRINT)
        )
        limiter.shared_limit(
            review_limit, scope="review", key_func=page_moderator, exempt_when=not_page_json
        )(blueprint(app, PAGE_BLUEPRINT))
    if settings.rate_limit_login:
        limiter.shared_limit(
            settings.rate_limit_login,
            scope="login",
            key_func=client_address,
            exempt_when=not_login_post,
        )(blueprint(app, PAGE_BLUEPRINT))
    if settings.login_failure_limit:
        login_failure_limits(limiter, app, settings.login_failure_limit)
    if settings.auth_failure_limit:
        limits = parse_many(settings.auth_failure_limit)
        app.after_request(failure_throttle(limiter, limits, settings.secret_key))
    app.register_error_handler(RateLimitExceeded, breach_handler(limiter))
    return limiter
