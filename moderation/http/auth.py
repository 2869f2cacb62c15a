"""Who is calling: host sites by API key, moderators by API token."""

from __future__ import annotations

from flask import g, request

from moderation.http.app_services import services
from moderation.http.errors import ApiError
from moderation.storage.moderator_store import Moderator

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="moderation"'}


def bearer_token() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def authenticate_site() -> None:
    """`before_request` hook for host-site endpoints: sets `g.site` or answers 401."""
    token = bearer_token()
    if token is None:
        raise ApiError(
            401, "Missing API key: send 'Authorization: Bearer <api_key>'.", headers=_CHALLENGE
        )
    site = services().sites.authenticate(token)
    if site is None:
        raise ApiError(401, "Invalid API key.", headers=_CHALLENGE)
    g.site = site


def current_site() -> str:
    return g.site


def authenticate_moderator() -> None:
    """`before_request` hook for review endpoints: sets `g.moderator` or answers 401."""
    token = bearer_token()
    if token is None:
        raise ApiError(
            401,
            "Missing token: send 'Authorization: Bearer <moderator token>'.",
            headers=_CHALLENGE,
        )
    moderator = services().moderators.by_token(token)
    if moderator is None:
        raise ApiError(401, "Invalid or disabled moderator token.", headers=_CHALLENGE)
    g.moderator = moderator


def current_moderator() -> Moderator:
    return g.moderator
