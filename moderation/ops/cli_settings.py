"""Settings for the `moderation` command's subcommands: read once, refused by name."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

import click

from moderation.core import settings as settings_module
from moderation.core.redis_connections import connect
from moderation.core.settings import Settings, SettingsError
from moderation.storage.durability import Durability, DurabilityUnavailable


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


def require_durability(settings: Settings) -> None:
    """Stop a process that would write comments or decisions when its Redis cannot keep what
    MODERATION_DURABILITY promises (the message names the Redis setting to change)."""
    durability = Durability.from_settings(settings)
    if not durability.enabled:
        return
    connection = connect(settings.redis_url)
    try:
        durability.require(connection)
    except DurabilityUnavailable as error:
        raise click.ClickException(f"refusing to start: {error}") from None
    finally:
        connection.close()
