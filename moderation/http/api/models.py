"""The calling site's own models: which are in use, what they learned from, how well they do."""

from __future__ import annotations

from typing import Any

from moderation.actions.model_reports import site_models_report
from moderation.http.api import Blueprint
from moderation.http.app_services import services
from moderation.http.auth import authenticate_site, current_site
from moderation.http.schemas import SiteModelsSchema

blp = Blueprint(
    "models",
    __name__,
    url_prefix="/v1/models",
    description="The site's models, learned from its labels (API key auth).",
)
blp.before_request(authenticate_site)


@blp.route("")
@blp.response(200, SiteModelsSchema)
def site_models() -> dict[str, Any]:
    """The site's labels and models: per kind the version in use, the labels it learned from,
    its ROC AUC on held-out labels against the model it replaced, and recent trainings."""
    svc = services()
    return site_models_report(svc.redis, current_site(), learning=svc.settings.learning)
