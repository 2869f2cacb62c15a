"""create_app(settings): the Flask factory, a flat list of what the app is made of."""

from __future__ import annotations

import logging

from flask import Flask
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from moderation.actions.services import build_services
from moderation.core.settings import Settings
from moderation.http import errors, metrics, rate_limits, web
from moderation.http.api import (
    Api,
    Blueprint,
    comments,
    docs,
    health,
    models,
    policy,
    review,
    site,
)
from moderation.http.request_ids import init_request_ids
from moderation.protocols import (
    akismet_api,
    coral_api,
    perspective_api,
    perspective_discovery_api,
)

OPENAPI_CONFIG = {
    "API_TITLE": "Comment moderation",
    "API_VERSION": "v1",
    "OPENAPI_VERSION": "3.0.3",
    "OPENAPI_URL_PREFIX": "/",
    "OPENAPI_JSON_PATH": "v1/openapi.json",
    "API_SPEC_OPTIONS": {
        "components": {
            "securitySchemes": {
                "siteKey": {"type": "http", "scheme": "bearer", "description": "a site's API key"},
                "moderatorToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a moderator's API token",
                },
            }
        },
        # Host-site endpoints by default; review and ops endpoints say otherwise.
        "security": [{"siteKey": []}],
    },
}


def create_app(settings: Settings) -> Flask:
    """An app wired to the Redis and policy that `settings` name."""
    app = Flask("moderation")
    app.config.update(OPENAPI_CONFIG)
    app.config.update(docs.SWAGGER_UI_CONFIG)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["moderation"] = build_services(settings)
    logging.getLogger("moderation").setLevel(settings.log_level)

    errors.init_app(app)
    init_request_ids(app)
    metrics.init_app(app)
    api = Api(app)
    api.register_blueprint(comments.blp)
    api.register_blueprint(policy.blp)
    api.register_blueprint(site.blp)
    api.register_blueprint(models.blp)
    api.register_blueprint(review.blp)
    api.register_blueprint(health.blp)
    app.register_blueprint(docs.blp)
    app.register_blueprint(akismet_api.blp)
    app.register_blueprint(perspective_api.blp)  # Google's formats: not in the OpenAPI document
    app.register_blueprint(perspective_discovery_api.blp)  # Google's discovery document for it
    app.register_blueprint(coral_api.blp)  # Coral's format: not in the OpenAPI document either

    # The /moderate page (session cookie) and CSRF protection for every cookie-backed POST.
    # web.init_app first: its "secret key required" page must answer before CSRFProtect's hook.
    web.init_app(app, settings)
    csrf = CSRFProtect(app)
    for blueprint in app.blueprints.values():
        if isinstance(blueprint, Blueprint):  # the JSON API: bearer tokens, no cookies to ride
            csrf.exempt(blueprint)
    csrf.exempt(akismet_api.blp)  # form posts with the site's key as `api_key`, no cookies either
    csrf.exempt(coral_api.blp)  # signed by Coral's secret, no cookies either
    # Akismet's and Perspective's endpoints share the host sites' limit, counted and refused
    # as each protocol says.
    rate_limits.init_app(
        app,
        settings,
        app.extensions["moderation"],
        protocols=(akismet_api.RATE_LIMITS, perspective_api.RATE_LIMITS),
    )
    if settings.proxy_hops:
        hops = settings.proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    return app
