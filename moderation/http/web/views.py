"""The /moderate blueprint: login, the queue page, and the JSON endpoints its script calls."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
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
from werkzeug.wrappers import Response as BaseResponse

from moderation.actions.review_service import QueuePage, encode_cursor
from moderation.core.records import Action, AuthorAction
from moderation.core.settings import PolicySettings
from moderation.http.app_services import services
from moderation.http.errors import ApiError, error_response, flatten_fields, storage_refusal
from moderation.http.schemas import AuthorActionSchema, ReviewDecisionSchema
from moderation.http.web import cards
from moderation.http.web.login import (
    LoginForm,
    current_moderator,
    json_login_required,
    log_in,
    log_out,
    page_login_required,
    session_moderator,
)
from moderation.http.web.security import add_security_headers, require_secret_key
from moderation.storage.label_store import LabelKind
from moderation.storage.moderator_store import Moderator

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
JSON_ENDPOINTS = frozenset(
    {
        "moderate.queue_json",
        "moderate.decide",
        "moderate.audit",
        "moderate.dashboard_json",
        "moderate.author_action",
    }
)


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
    """The login form again, 429: too many attempts from here or for this name (rate_limits.py)."""
    page = render_template("moderate/login.html", form=LoginForm(), retry_after=retry_after)
    return Response(page, status=429, headers={"Retry-After": str(retry_after)})


@blp.route("/logout", methods=["POST"])
def logout() -> BaseResponse:
    log_out()
    return redirect(url_for(".login"))


# --- the page's views: held, reported, approved ----------------------------------------------


@dataclass(frozen=True)
class View:
    """One list of comments the page shows, and what its cards' buttons do."""

    name: str
    title: str  # the tab's text
    heading: str  # the list's accessible name
    approve: str  # the approve button's text ("": no approve button)
    overturn: bool  # decisions may change a decided comment
    empty_title: str
    empty_text: str


VIEWS = {
    view.name: view
    for view in (
        View(
            "held",
            "Held",
            "Held comments, oldest first",
            "Approve",
            False,
            "All clear",
            "No held comments right now. New ones appear here as they arrive.",
        ),
        View(
            "reported",
            "Reported",
            "Reported comments, most recently reported first",
            "Keep published",
            True,
            "No open reports",
            "Comments readers report show here until a moderator decides them.",
        ),
        View(
            "approved",
            "Approved",
            "Recently approved comments, newest first",
            "",
            True,
            "Nothing found",
            "No recent approval matches. Try another word, or all approvals.",
        ),
    )
}
DEFAULT_VIEW = "held"
#: The longest search the Approved view takes (the rest is ignored).
QUERY_CHARS = 200
TRUE_WORDS = ("1", "on", "true", "yes")


@dataclass(frozen=True)
class Search:
    """The Approved view's search: a word to find, and only the service's own approvals."""

    query: str = ""
    automatic: bool = False


def requested_view() -> View:
    """The view the request asks for (`?view=`); anything else is the held queue."""
    return VIEWS.get(request.args.get("view", ""), VIEWS[DEFAULT_VIEW])


def requested_search() -> Search:
    query = (request.args.get("q") or "").strip()[:QUERY_CHARS]
    return Search(query, (request.args.get("automatic") or "").lower() in TRUE_WORDS)


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


# --- cards -------------------------------------------------------------------------------------


def site_policy(site: str) -> PolicySettings:
    """The site's policy (its own, else the service's), read once a request."""
    known: dict[str, PolicySettings] = g.setdefault("site_policies", {})
    if site not in known:
        known[site] = services().policies.get(site)
    return known[site]


def hold_thresholds(site: str) -> Mapping[str, float]:
    """The site's hold thresholds (its own policy, else the service's)."""
    return site_policy(site).hold


def policy_words(site: str) -> cards.PolicyWords:
    """The site policy's banned and suspect words, which the cards mark in the text."""
    policy = site_policy(site)
    return cards.PolicyWords(tuple(policy.banned_words), tuple(policy.suspect_words))


def card_urls(site: str, comment_id: str, author_id: str) -> dict[str, str]:
    """What a card's buttons call; no author id, no author actions."""
    ids: dict[str, Any] = {"site": site, "comment_id": comment_id}
    author = url_for(".author_action", site=site, author_id=author_id) if author_id else ""
    return {
        "decide": url_for(".decide", **ids),
        "audit": url_for(".audit", **ids),
        "author": author,
    }


def present(item: dict[str, Any]) -> dict[str, Any]:
    """A review item as a card, with the URLs its buttons call."""
    site = item["site"]
    card = cards.card(item, hold_thresholds(site), policy_words(site))
    return card | {"urls": card_urls(site, item["id"], card["author"]["id"])}


# --- reading the views -------------------------------------------------------------------------


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


def reported_count(sites: list[str]) -> int:
    """Comments with readers' reports no moderator has settled."""
    reports = services().reader_reports.reports
    return sum(reports.reported_count(site) for site in sites)


def read_queue(
    moderator: Moderator, site: str | None, label: str | None, after: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    if limit <= 0:
        return [], after
    page = services().review.queue(moderator, site=site, label=label, cursor=after, limit=limit)
    return [present(item) for item in page.items], tail_of(page, after)


def read_view(
    view: View, moderator: Moderator, site: str | None, label: str | None, search: Search
) -> tuple[list[dict[str, Any]], str | None]:
    """The view's first cards, and (held only) where to poll for newer ones from."""
    review = services().review
    if view.name == "held":
        return read_queue(moderator, site, label, None, PAGE_SIZE)
    if view.name == "reported":
        items = review.reported(moderator, site=site, limit=PAGE_SIZE)
    else:
        items = review.approved(
            moderator,
            site=site,
            query=search.query,
            limit=PAGE_SIZE,
            automatic_only=search.automatic,
        )
    return [present(item) for item in items], None


@blp.route("", strict_slashes=False)
@page_login_required
def queue() -> str:
    moderator = current_moderator()
    sites, site, label = filters(moderator)
    view, search = requested_view(), requested_search()
    shown = [site] if site else sites
    items, tail = read_view(view, moderator, site, label, search)
    return render_template(
        "moderate/queue.html",
        moderator=moderator,
        view=view,
        views=list(VIEWS.values()),
        search=search,
        cards=items,
        blank=cards.blank_card(),
        mark_kinds=cards.MARK_KINDS,
        sites=sites,
        site=site,
        labels=sorted(services().settings.policy.hold),
        label=label,
        label_name=cards.label_name,
        counts={"held": held_count(shown), "reported": reported_count(shown)},
        tail=tail or "",
        page_size=PAGE_SIZE,
        poll_seconds=current_app.config.get("MODERATE_POLL_SECONDS", POLL_SECONDS),
        dashboard_url=url_for("moderate.dashboard"),
    )


@blp.route("/queue.json")
@json_login_required
def queue_json() -> dict[str, Any]:
    """Held comments after `after` (the last cursor this page saw), the queue's size and how
    many comments have open reports."""
    moderator = current_moderator()
    sites, site, label = filters(moderator)
    limit = min(max(request.args.get("limit", PAGE_SIZE, type=int) or 0, 0), PAGE_SIZE)
    items, tail = read_queue(moderator, site, label, request.args.get("after") or None, limit)
    shown = [site] if site else sites
    return {
        "items": items,
        "tail": tail,
        "count": held_count(shown),
        "reported": reported_count(shown),
    }


# --- deciding, and acting on authors -----------------------------------------------------------


def json_body(schema: Any, invalid: str) -> dict[str, Any]:
    """The request's JSON body, loaded by a marshmallow schema (415, 400, 422 otherwise)."""
    if not request.is_json:
        raise ApiError(415, "Send the body as JSON with 'Content-Type: application/json'.")
    try:
        data = request.get_json()
    except (BadRequest, RecursionError):  # not JSON, or nested too deeply to read
        raise ApiError(400, "The request body is not valid JSON.", code="malformed_json") from None
    try:
        return schema.load(data or {})
    except ValidationError as error:
        raise ApiError(422, invalid, fields=flatten_fields(error.messages)) from None


@blp.route("/decide/<site>/<path:comment_id>", methods=["POST"])
@json_login_required
def decide(site: str, comment_id: str) -> dict[str, Any]:
    """Approve or reject: `{"action": "approve" | "reject", "note": "...", "overturn": false,
    "label": "spam" | "toxic" | "other"}`; 409 if decided (without `overturn`)."""
    body = json_body(ReviewDecisionSchema(), "Invalid decision.")
    moderator = current_moderator()
    action = Action(body["action"])
    label = LabelKind(body["label"]) if body.get("label") else None
    record = services().review.decide(
        moderator, site, comment_id, action, body["note"], overturn=body["overturn"], label=label
    )
    log.info("moderator %s: %s %s/%s via /moderate", moderator.name, action, site, comment_id)
    return {"record": record}


def author_answer(site: str, author_id: str, profile: Mapping[str, Any]) -> dict[str, Any]:
    """What the page needs after an action on an author: their badge and counts for every
    card of theirs, and the cards of the comments the action rejected."""
    standing = {
        "standing": profile.get("standing"),
        "note": profile.get("standing_note", ""),
        "by": profile.get("standing_by", ""),
        "at": profile.get("standing_at"),
    }
    counts = profile.get("counts") or {}
    return {
        "author": {
            "key": f"{site}/{author_id}",
            "standing": cards.standing_badge(standing),
            "history": {status: int(counts.get(status, 0)) for status in cards.HISTORY_STATUSES},
        },
        "rejected": [f"{site}/{comment_id}" for comment_id in profile.get("rejected", [])],
    }


@blp.route("/authors/<site>/<path:author_id>", methods=["POST"])
@json_login_required
def author_action(site: str, author_id: str) -> dict[str, Any]:
    """Ban, premoderate, trust or clear an author: `{"action", "note", "reject_held"}`."""
    body = json_body(AuthorActionSchema(), "Invalid action on an author.")
    moderator = current_moderator()
    action = AuthorAction(body["action"])
    profile = services().review.act_on_author(
        moderator, site, author_id, action, body["note"], reject_held=body["reject_held"]
    )
    log.info("moderator %s: %s author %s/%s via /moderate", moderator.name, action, site, author_id)
    return author_answer(site, author_id, profile)


@blp.route("/audit/<site>/<path:comment_id>")
@json_login_required
def audit(site: str, comment_id: str) -> dict[str, Any]:
    """The comment's audit trail, oldest first."""
    return {"events": services().review.audit(current_moderator(), site, comment_id)}
