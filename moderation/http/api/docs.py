"""`/docs`: Swagger UI for the OpenAPI document, with its assets served from this service.

The assets come from the `swagger-ui-bundle-v2` package, so the page works with no internet.
"""

from __future__ import annotations

from flask import Blueprint, Response, send_from_directory
from swagger_ui_bundle import swagger_ui_path

ASSETS_URL = "/docs/assets/"

#: flask-smorest renders the page itself from these settings.
SWAGGER_UI_CONFIG = {
    "OPENAPI_SWAGGER_UI_PATH": "docs",
    "OPENAPI_SWAGGER_UI_URL": ASSETS_URL,
}

blp = Blueprint("docs_assets", __name__)


@blp.route(ASSETS_URL + "<path:filename>")
def asset(filename: str) -> Response:
    """Swagger UI's scripts and styles."""
    return send_from_directory(swagger_ui_path, filename, max_age=24 * 3600)
