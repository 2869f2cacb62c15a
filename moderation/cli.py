"""The `moderation` command: up, serve, worker, sites."""

from __future__ import annotations

import json
import logging
import sys
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
    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return command(load_settings(), *args, **kwargs)

    return wrapper


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@click.group()
def main() -> None:
    """Self-hosted comment moderation: API, scoring workers and administration."""


@main.command()
@with_settings
def serve(settings: Settings) -> None:
    """Run the HTTP API (gunicorn, gthread workers) on HOST:PORT."""
    from moderation.server import run_api

    configure_logging(settings.log_level)
    run_api(settings)


@main.command()
@click.option("--burst", is_flag=True, help="Exit once the queue is empty.")
@with_settings
def worker(settings: Settings, burst: bool) -> None:
    """Run one scoring worker process (run as many as you like, on any host)."""
    from workers.worker import run_worker

    configure_logging(settings.log_level)
    run_worker(settings, burst=burst)


@main.command()
@with_settings
def up(settings: Settings) -> None:
    """Redis, the API and one worker in one process tree, for development."""
    from moderation.devserver import run_development_stack

    configure_logging(settings.log_level)
    run_development_stack(settings)


@main.group()
def sites() -> None:
    """Manage sites (tenants) and their API keys."""


def site_store(settings: Settings) -> Any:
    from moderation.services import connect
    from moderation.sites import SiteStore

    return SiteStore(connect(settings.redis_url), settings.secret_key)


def print_credentials(credentials: Any, as_json: bool) -> None:
    data = {
        "site": credentials.site,
        "api_key": credentials.api_key,
        "webhook_secret": credentials.webhook_secret,
    }
    if as_json:
        click.echo(json.dumps(data))
    else:
        for key, value in data.items():
            click.echo(f"{key}: {value}")
        click.echo("Store these now: they are not shown again.", err=True)


@sites.command("create")
@click.argument("name")
@click.option("--callback-url", default=None, help="Where decisions are POSTed (webhooks).")
@click.option("--json", "as_json", is_flag=True, help="Print the credentials as JSON.")
@with_settings
def sites_create(settings: Settings, name: str, callback_url: str | None, as_json: bool) -> None:
    """Create a site; prints its API key and webhook secret once."""
    from moderation.sites import SiteExistsError

    try:
        credentials = site_store(settings).create(name, callback_url)
    except SiteExistsError:
        raise click.ClickException(f"site {name!r} exists (use 'sites rotate-key')") from None
    except (ValueError, RuntimeError) as error:
        raise click.ClickException(str(error)) from None
    print_credentials(credentials, as_json)


@sites.command("rotate-key")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the credentials as JSON.")
@with_settings
def sites_rotate_key(settings: Settings, name: str, as_json: bool) -> None:
    """Replace a site's API key; the old key stops working at once."""
    from moderation.sites import UnknownSiteError

    try:
        credentials = site_store(settings).rotate_api_key(name)
    except UnknownSiteError:
        raise click.ClickException(f"no site {name!r}") from None
    except RuntimeError as error:
        raise click.ClickException(str(error)) from None
    print_credentials(credentials, as_json)


@sites.command("list")
@with_settings
def sites_list(settings: Settings) -> None:
    """List site names."""
    for name in site_store(settings).names():
        click.echo(name)


if __name__ == "__main__":
    main()
