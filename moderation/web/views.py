"""The /moderate blueprint: login, the queue page, and the JSON endpoints its script calls."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import redis
from flask import (
    Blueprint,
    Response,
    current_app,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_wtf.csrf import CSRFError
from marshmallow import ValidationError
from werkzeug.exceptions import BadRequest

from moderation.errors import ApiError, error_response, flatten_fields, storage_refusal
from moderation.moderators import Moderator
from moderation.records import Action
from moderation.review import QueuePage, encode_cursor
from moderation.schemas import ReviewDecisionSchema
from moderation.services import services
from moderation.web import cards
from moderation.web.login import (
    LoginForm,
    current_moderator,
    json_login_required,
    log_in,
    log_out,
    page_login_required,
    session_moderator,
)
from moderation.web.security import add_security_headers, require_secret_key

log = logging.getLogger(__name__)

blp = Blueprint(
    "moderate",
    __name__,
    url_prefix="/moderate",
    template_folder="templates",
    static_folder="static",
)
blp.before_app_request(require_secret_key)
blp.after_app_request(add_security_headers)

#: How many cards the page shows at most; the queue refills it as decisions empty it.
PAGE_SIZE = 50
POLL_SECONDS = 5
JSON_ENDPOINTS = frozenset({"moderate.queue_json", "moderate.decide", "moderate.audit"})


# --- errors: HTML for pages, the contract's JSON for the script's endpoints -------------------


def wants_json() -> bool:
    return request.endpoint in JSON_ENDPOINTS


def error_page(status: int, title: str, message: str) -> tuple[str, int]:
    return render_template("moderate/error.html", title=title, message=message), status


@blp.errorhandler(CSRFError)
def csrf_failed(error: CSRFError) -> Any:
    if wants_json():
        message = "The page's security token is missing or stale: reload the page."
        return error_response(ApiError(400, message, code="csrf_failed"))
    return error_page(400, "Form expired", "The form was stale. Go back, reload and try again.")


@blp.errorhandler(redis.ConnectionError)
@blp.errorhandler(redis.TimeoutError)
def storage_down(error: Exception) -> Any:
    refused = storage_refusal(error)
    if wants_json():
        return error_response(refused)
    page, status = error_page(503, "Unavailable", refused.message)
    return page, status, refused.headers


# --- login -----------------------------------------------------------------------------------


@blp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if request.method == "GET" and session_moderator() is not None:
        return redirect(url_for(".queue"))
    form = LoginForm()
    failed = False
    if form.validate_on_submit():
        moderator = services().moderators.by_password(form.name.data, form.password.data)
        if moderator is not None:
            log_in(moderator)
            log.info("moderator %s logged in to /moderate", moderator.name)
            return redirect(url_for(".queue"))
        log.info("failed /moderate login")
        failed = True
    status = 401 if failed else 400 if form.errors else 200
    return render_template("moderate/login.html", form=form, failed=failed), status


def login_refused(retry_after: int) -> Response:
    """The login form again, 429: too many attempts from here or for this name (ratelimit.py)."""
    page = render_template("moderate/login.html", form=LoginForm(), retry_after=retry_after)
    return Response(page, status=429, headers={"Retry-After": str(retry_after)})


@blp.route("/logout", methods=["POST"])
def logout() -> Response:
    log_out()
    return redirect(url_for(".login"))


# --- the queue -------------------------------------------------------------------------------


def filters(moderator: Moderator) -> tuple[list[str], str | None, str | None]:
    """The moderator's sites, and the site and label filters of the request (None: all).

    A site or label that is not on offer is ignored rather than refused.
    """
    sites = services().review.visible_sites(moderator)
    site = request.args.get("site") or None
    label = request.args.get("label") or None
    return (
        sites,
        site if site in sites else None,
        label if label in services().settings.policy.hold else None,
    )


def hold_thresholds(site: str) -> Mapping[str, float]:
    """The site's hold thresholds (its own policy, else the service's), read once a request."""
    known: dict[str, Mapping[str, float]] = g.setdefault("hold_thresholds", {})
    if site not in known:
        svc = services()
        known[site] = svc.policies.get(site).hold
    return known[site]


def present(item: dict[str, Any]) -> dict[str, Any]:
    """A queue item as a card, with the URLs its buttons call."""
    card = cards.card(item, hold_thresholds(item["site"]))
    ids = {"site": item["site"], "comment_id": item["id"]}
    return card | {"urls": {"decide": url_for(".decide", **ids), "audit": url_for(".audit", **ids)}}


def tail_of(page: QueuePage, after: str | None) -> str | None:
    """Where to ask for newer comments next time: after the last comment seen so far."""
    if page.next_cursor:
        return page.next_cursor
    if not page.items:
        return after
    last = page.items[-1]
    comment = services().comments.get(last["site"], last["id"])
    return encode_cursor((comment.submitted_at, last["site"], last["id"])) if comment else after


def held_count(sites: list[str]) -> int:
    return sum(services().comments.held_count(site) for site in sites)


def read_queue(
    moderator: Moderator, site: str | None, label: str | None, after: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    if limit <= 0:
        return [], after
    page = services().review.queue(moderator, site=site, label=label, cursor=after, limit=limit)
    return [present(item) for item in page.items], tail_of(page, after)


@blp.route("", strict_slashes=False)
@page_login_required
def queue() -> str:
    moderator = current_moderator()
    sites, site, label = filters(moderator)
    items, tail = read_queue(moderator, site, label, None, PAGE_SIZE)
    return render_template(
        "moderate/queue.html",
        moderator=moderator,
        cards=items,
        blank=cards.blank_card(),
        sites=sites,
        site=site,
        labels=sorted(services().settings.policy.hold),
        label=label,
        label_name=cards.label_name,
        count=held_count([site] if site else sites),
        tail=tail or "",
        page_size=PAGE_SIZE,
        poll_seconds=current_app.config.get("MODERATE_POLL_SECONDS", POLL_SECONDS),
    )


@blp.route("/queue.json")
@json_login_required
def queue_json() -> dict[str, Any]:
    """Held comments after `after` (the last cursor this page saw), and the queue's size."""
    moderator = current_moderator()
    sites, site, label = filters(moderator)
    limit = min(max(request.args.get("limit", PAGE_SIZE, type=int) or 0, 0), PAGE_SIZE)
    items, tail = read_queue(moderator, site, label, request.args.get("after") or None, limit)
    return {"items": items, "tail": tail, "count": held_count([site] if site else sites)}


# --- deciding --------------------------------------------------------------------------------


@blp.route("/decide/<site>/<path:comment_id>", methods=["POST"])
@json_login_required
def decide(site: str, comment_id: str) -> dict[str, Any]:
    """Approve or reject: `{"action": "approve" | "reject", "note": "..."}`; 409 if decided."""
    if not request.is_json:
        raise ApiError(415, "Send the body as JSON with 'Content-Type: application/json'.")
    try:
        data = request.get_json()
    except (BadRequest, RecursionError):  # not JSON, or nested too deeply to read
        raise ApiError(400, "The request body is not valid JSON.", code="malformed_json") from None
    try:
        body = ReviewDecisionSchema().load(data or {})
    except ValidationError as error:
        raise ApiError(422, "Invalid decision.", fields=flatten_fields(error.messages)) from None
    moderator = current_moderator()
    action = Action(body["action"])
    record = services().review.decide(moderator, site, comment_id, action, body["note"])
    log.info("moderator %s: %s %s/%s via /moderate", moderator.name, action, site, comment_id)
    return {"record": record}


@blp.route("/audit/<site>/<path:comment_id>")
@json_login_required
def audit(site: str, comment_id: str) -> dict[str, Any]:
    """The comment's audit trail, oldest first."""
    return {"events": services().review.audit(current_moderator(), site, comment_id)}
