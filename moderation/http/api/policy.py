"""The site's own moderation policy: read it, replace it."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from flask import request
from flask.views import MethodView

from moderation.http.api import Blueprint
from moderation.http.app_services import services
from moderation.http.auth import authenticate_site, current_site
from moderation.http.errors import ApiError
from moderation.http.schemas import PolicySchema
from moderation.storage.policy_store import VersionConflictError, policy_to_json

blp = Blueprint(
    "policy",
    __name__,
    url_prefix="/v1/policy",
    description="The site's moderation policy (host sites, API key auth).",
)
blp.before_request(authenticate_site)


@blp.before_request
def require_json() -> None:
    if request.method == "PUT" and not request.is_json:
        raise ApiError(415, "Send the body as JSON with 'Content-Type: application/json'.")


@blp.route("")
class Policy(MethodView):
    @blp.response(200, PolicySchema)
    def get(self) -> dict[str, Any]:
        """The policy in force: the site's own, or the service default (version 0)."""
        return policy_to_json(services().policies.get(current_site()))

    @blp.arguments(PolicySchema)
    @blp.response(200, PolicySchema)
    @blp.alt_response(409, description="`version` is not the current version.")
    def put(self, body: dict[str, Any]) -> dict[str, Any]:
        """Replace the policy; omitted fields take the service defaults. Bumps the version."""
        expected = body.pop("version", None)
        for word_field in ("banned_words", "suspect_words"):
            if word_field in body:
                body[word_field] = tuple(body[word_field])
        policy = replace(services().settings.policy, **body)
        try:
            stored = services().policies.replace(current_site(), policy, expected_version=expected)
        except VersionConflictError as conflict:
            raise ApiError(
                409,
                f"The policy is at version {conflict.current.version}, not {expected}.",
                extra={"current": policy_to_json(conflict.current)},
            ) from None
        return policy_to_json(stored)
