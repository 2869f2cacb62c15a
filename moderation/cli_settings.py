"""Settings for the `moderation` command's subcommands: read once, refused by name."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

import click

from moderation import settings as settings_module
from moderation.settings import Settings, SettingsError


def load_settings() -> Settings:
    """Settings from the environment; a bad value stops the program, naming the variable."""
    try:
        return settings_module.from_env()
    except SettingsError as error:
        raise click.ClickException(f"configuration error: {error}") from None


def with_settings(command: Callable[..., Any]) -> Callable[..., Any]:
    """Calls `command` with the settings as its first argument."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return command(load_settings(), *args, **kwargs)

    return wrapper
