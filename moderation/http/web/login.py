"""Who is logged in: the session keeps the moderator's name and the account's session epoch;
the account is re-read from the store on every request, so disabling it or resetting its
password (both renew the epoch) takes effect at once."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import g, redirect, session, url_for
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from moderation.http.app_services import services
from moderation.http.errors import ApiError
from moderation.storage.moderator_store import Moderator

SESSION_KEY = "moderator"
EPOCH_KEY = "epoch"
View = TypeVar("View", bound=Callable[..., Any])


class LoginForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=63)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


def log_in(moderator: Moderator) -> None:
    """Start a fresh session (nothing from before the login survives)."""
    session.clear()
    session[SESSION_KEY] = moderator.name
    session[EPOCH_KEY] = moderator.session_epoch
    session.permanent = True


def log_out() -> None:
    session.clear()


def session_moderator() -> Moderator | None:
    """The logged-in moderator, if the account still exists, is enabled, and has had neither
    its password reset nor been disabled since this session logged in."""
    name, epoch = session.get(SESSION_KEY), session.get(EPOCH_KEY, "")
    if not isinstance(name, str) or not isinstance(epoch, str):
        return None
    moderator = services().moderators.get(name)
    if (
        moderator is None
        or moderator.disabled
        or not hmac.compare_digest(epoch.encode(), moderator.session_epoch.encode())
    ):
        session.clear()
        return None
    return moderator


def current_moderator() -> Moderator:
    return g.moderator


def page_login_required(view: View) -> View:
    """For HTML pages: redirect to the login form when nobody is logged in."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        moderator = session_moderator()
        if moderator is None:
            return redirect(url_for("moderate.login"))
        g.moderator = moderator
        return view(*args, **kwargs)

    return cast(View, wrapper)


def json_login_required(view: View) -> View:
    """For the page's JSON endpoints: 401 when nobody is logged in."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        moderator = session_moderator()
        if moderator is None:
            raise ApiError(401, "Your session has ended: log in again at /moderate/login.")
        g.moderator = moderator
        return view(*args, **kwargs)

    return cast(View, wrapper)
