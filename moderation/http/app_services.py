"""The services of the app handling the current request: what views and protocols ask for."""

from __future__ import annotations

from flask import current_app

from moderation.actions.services import Services


def services() -> Services:
    """The current app's services (inside a request or app context)."""
    services_of_app: Services = current_app.extensions["moderation"]
    return services_of_app
