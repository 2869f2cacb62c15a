"""The calling site's own settings: its webhook callback URL, its Coral Talk signing secrets."""

from __future__ import annotations

from typing import Any

from flask import request
from flask.views import MethodView

from moderation.core.webhook_requests import UnsafeDestinationError, check_destination
from moderation.http.api import Blueprint
from moderation.http.app_services import services
from moderation.http.auth import authenticate_site, current_site
from moderation.http.errors import ApiError
from moderation.http.schemas import CoralSettingsSchema, SiteSettingsSchema

blp = Blueprint(
    "site", __name__, url_prefix="/v1/site", description="The site's settings (API key auth)."
)
blp.before_request(authenticate_site)


@blp.before_request
def require_json() -> None:
    if request.method == "PUT" and not request.is_json:
        raise ApiError(415, "Send the body as JSON with 'Content-Type: application/json'.")


def site_json() -> dict[str, Any]:
    site = services().sites.get(current_site())
    return {"site": current_site(), "callback_url": site.callback_url if site else None}


@blp.route("")
class SiteSettings(MethodView):
    @blp.response(200, SiteSettingsSchema)
    def get(self) -> dict[str, Any]:
        """The site's settings."""
        return site_json()

    @blp.arguments(SiteSettingsSchema)
    @blp.response(200, SiteSettingsSchema)
    def put(self, body: dict[str, Any]) -> dict[str, Any]:
        """Set or clear (null) the callback URL; private addresses are refused unless the
        operator allows them."""
        url = body["callback_url"]
        if url:
            try:
                check_destination(url, services().settings.allow_private_callbacks)
            except UnsafeDestinationError as error:
                raise ApiError(
                    422,
                    f"Invalid fields: callback_url. {error}",
                    fields={"callback_url": [str(error)]},
                ) from None
        services().sites.set_callback_url(current_site(), url)
        return site_json()


def coral_json() -> dict[str, Any]:
    """Whether the site's Coral secrets are set, and how many: never the secrets."""
    count = services().coral_secrets.count(current_site())
    return {
        "site": current_site(),
        "configured": count > 0,
        "secret_count": count,
        "phase_path": f"/coral/{current_site()}",
    }


@blp.route("/coral")
class CoralSettings(MethodView):
    @blp.response(200, CoralSettingsSchema)
    def get(self) -> dict[str, Any]:
        """Whether Coral Talk's signing secrets are set (how many; the secrets are never shown)."""
        return coral_json()

    @blp.arguments(CoralSettingsSchema)
    @blp.response(200, CoralSettingsSchema)
    def put(self, body: dict[str, Any]) -> dict[str, Any]:
        """Set the signing secrets Coral Talk shows for the External Moderation Phase whose URL
        is `/coral/<site>` on this service (write-only: stored encrypted, never echoed). During
        a rotation, send both the new and the old secret."""
        services().coral_secrets.set(current_site(), body["signing_secrets"])
        return coral_json()

    @blp.response(200, CoralSettingsSchema)
    def delete(self) -> dict[str, Any]:
        """Forget the signing secrets: `POST /coral/<site>` refuses every call until set again."""
        services().coral_secrets.clear(current_site())
        return coral_json()
