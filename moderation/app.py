"""create_app(settings): the Flask factory, a flat list of what the app is made of."""

from __future__ import annotations

import logging

from flask import Flask

from moderation import errors
from moderation.api import Api, comments, ops, review
from moderation.services import build_services
from moderation.settings import Settings

OPENAPI_CONFIG = {
    "API_TITLE": "Comment moderation",
    "API_VERSION": "v1",
    "OPENAPI_VERSION": "3.0.3",
    "OPENAPI_URL_PREFIX": "/",
    "OPENAPI_JSON_PATH": "v1/openapi.json",
}


def create_app(settings: Settings) -> Flask:
    """An app wired to the Redis and policy that `settings` name."""
    app = Flask("moderation")
    app.config.update(OPENAPI_CONFIG)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["moderation"] = build_services(settings)
    logging.getLogger("moderation").setLevel(settings.log_level)

    errors.init_app(app)
    api = Api(app)
    api.register_blueprint(comments.blp)
    api.register_blueprint(review.blp)
    api.register_blueprint(ops.blp)
    return app
