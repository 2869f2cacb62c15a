"""The /moderate web page: moderators log in and work the held queue.

`init_app` sets up the signed session cookie and registers the blueprint. CSRF protection
(Flask-WTF's CSRFProtect) is set up by the app factory, after this.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Flask

from moderation.core.settings import Settings
from moderation.http.web import dashboard  # noqa: F401  (registers /moderate/dashboard on blp)
from moderation.http.web.views import blp

SESSION_LIFETIME = timedelta(hours=12)

__all__ = ["SESSION_LIFETIME", "blp", "init_app"]


def init_app(app: Flask, settings: Settings) -> None:
    """Session cookie settings and the blueprint; call before `CSRFProtect(app)`."""
    app.config.update(
        # None disables the page (it answers 503); there is deliberately no fallback secret.
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_NAME="moderation_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # Off by default so http://127.0.0.1 works; turn on behind HTTPS.
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
        # A login lasts SESSION_LIFETIME from the moment it happens (a shift), not from the
        # last request: the page polls, and would otherwise keep itself logged in forever.
        SESSION_REFRESH_EACH_REQUEST=False,
        # The token lives as long as the session: a page left open all day keeps working.
        WTF_CSRF_TIME_LIMIT=None,
    )
    app.register_blueprint(blp)
