"""Response headers for every /moderate response, and the page's refusal to run unsigned."""

from __future__ import annotations

from flask import Response, current_app, render_template, request

PREFIX = "/moderate"
STATIC_ENDPOINT = "moderate.static"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "object-src 'none'",
        "frame-ancestors 'none'",
    ]
)

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def is_page_request() -> bool:
    return request.path == PREFIX or request.path.startswith(PREFIX + "/")


def add_security_headers(response: Response) -> Response:
    """`after_app_request` hook: the headers above on anything under /moderate."""
    if not is_page_request():
        return response
    response.headers.update(HEADERS)
    if request.endpoint != STATIC_ENDPOINT:
        # Pages and JSON carry comments and personal data: keep them out of caches.
        response.headers["Cache-Control"] = "no-store"
    return response


def require_secret_key() -> tuple[str, int] | None:
    """`before_app_request` hook: without MODERATION_SECRET_KEY the page answers 503.

    App-wide (filtered to this blueprint) so that it runs before CSRFProtect's own hook,
    which cannot work without a secret either.
    """
    if request.blueprint != "moderate" or request.endpoint == STATIC_ENDPOINT:
        return None
    if current_app.secret_key:
        return None
    return render_template("moderate/unavailable.html"), 503
