"""Coral Talk's External Moderation Phase at `POST /coral/<site>`.

Coral signs each request with the phase's signing secrets (`X-Coral-Signature`); the site
stores them with `PUT /v1/site/coral`. The comment is scored by the workers while Coral waits
(a one-off check: the text is moderated in Coral, so nothing of it stays here and this
service's moderators never see it), up to MODERATION_CORAL_TIMEOUT, and answered as
`moderation.protocols.coral` maps the decision. Errors are the contract's JSON (Coral only
logs a non-2xx answer and goes on). A plain Flask blueprint, outside the OpenAPI document
(Coral's format, not this API's); CSRF-exempt because it reads no cookies.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, g, jsonify, request

from moderation.actions.immediate_checks import check_now
from moderation.http.app_services import services
from moderation.http.errors import ApiError
from moderation.protocols.coral import (
    SIGNATURE_HEADER,
    Answer,
    CoralError,
    answer,
    has_text,
    parse_request,
    signed_by_any,
)
from moderation.storage.site_store import valid_site_name

log = logging.getLogger(__name__)

blp = Blueprint("coral", __name__, url_prefix="/coral")

OUTCOME_HEADER = "X-Moderation-Outcome"
#: Checked when a site has no secrets, so an unknown site costs the same HMAC work.
NO_SECRETS = ("not a secret: a site without Coral signing secrets",)
UNSIGNED = (
    f"The {SIGNATURE_HEADER} header is missing or matches none of the signing secrets set for "
    "this URL's site (PUT /v1/site/coral)."
)


def site_secrets(site: str) -> tuple[list[str], bool]:
    """The secrets to check the signature against, and whether the site has any."""
    secrets = services().coral_secrets.get(site) if valid_site_name(site) else []
    return (secrets, True) if secrets else (list(NO_SECRETS), False)


def reply(result: Answer) -> Response:
    response = jsonify(result.body) if result.body is not None else Response(status=204)
    response.status_code = result.status
    response.headers[OUTCOME_HEADER] = result.outcome
    return response


@blp.post("/<site>")
def moderate(site: str) -> Response:
    """One comment from Coral's moderation pipeline: 204 (no opinion) or 200 with a status."""
    raw = request.get_data(cache=True)  # the exact bytes Coral signed; 413 past the body limit
    secrets, configured = site_secrets(site)
    signed = signed_by_any(request.headers.get(SIGNATURE_HEADER), raw, secrets)
    if not (signed and configured):
        g.auth_failed = True
        raise ApiError(401, UNSIGNED)
    try:
        coral = parse_request(raw)
    except CoralError as error:
        raise ApiError(error.status, error.message, fields=error.fields) from None
    if not has_text(coral):  # an embed or a GIF alone: nothing to judge
        return reply(Answer(204, outcome="no text"))
    svc = services()
    timeout = svc.settings.coral_timeout
    checked = check_now(svc, site, coral.submission, timeout)
    result = answer(checked.decision if checked else None)
    if result.outcome == "timeout":
        log.info("Coral check for site %s not decided within %g s: answered 204", site, timeout)
    return reply(result)
