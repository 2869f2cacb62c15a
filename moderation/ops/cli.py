"""The `moderation` command: up, serve, worker, sites, moderators, models."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from moderation.core.settings import Settings
from moderation.ops.cli_settings import require_durability, with_settings
from moderation.ops.model_commands import models as models_group


def configure_logging(settings: Settings) -> None:
    from moderation.core.logs import configure_logging as configure

    configure(settings.log_level, json_lines=settings.log_format == "json")


@click.group()
def main() -> None:
    """Self-hosted comment moderation: API, scoring workers and administration."""


@main.command()
@with_settings
def serve(settings: Settings) -> None:
    """Run the HTTP API (gunicorn, gthread workers) on HOST:PORT."""
    from moderation.ops.server import run_api

    configure_logging(settings)
    require_durability(settings)
    run_api(settings)


@main.command()
@click.option("--burst", is_flag=True, help="Exit once the queue is empty.")
@click.option(
    "--deliveries", is_flag=True, help="Deliver webhooks instead of scoring (its own queue)."
)
@with_settings
def worker(settings: Settings, burst: bool, deliveries: bool) -> None:
    """Run one scoring worker process (run as many as you like, on any host)."""
    configure_logging(settings)
    require_durability(settings)
    if deliveries:
        from workers.deliveries import run_delivery_worker

        run_delivery_worker(settings, burst=burst)
    else:
        from workers.scoring.worker import run_worker

        run_worker(settings, burst=burst)


@main.command()
@click.option("--demo", is_flag=True, help="Also run the example newsroom site (make demo).")
@with_settings
def up(settings: Settings, demo: bool) -> None:
    """Redis, the API and the workers in one process tree, for development.

    Logs are human-readable text here (MODERATION_LOG_FORMAT=json to change)."""
    from moderation.ops.devserver import run_development_stack

    if "MODERATION_LOG_FORMAT" not in os.environ:
        settings = settings.with_overrides(log_format="text")
    configure_logging(settings)
    run_development_stack(settings, demo=demo)


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--site", default=None, help="The site whose comments these are (into Redis).")
@click.option("--api-url", default=None, help="Submit over HTTP to this service instead.")
@click.option("--api-key", envvar="MODERATION_API_KEY", default=None, help="The site's API key.")
@click.option("--format", "input_format", type=click.Choice(["jsonl", "csv"]), default=None)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--id-field", default="id", show_default=True)
@click.option("--content-field", default="content", show_default=True)
@click.option("--author-id-field")
@click.option("--author-name-field")
@click.option("--author-email-field")
@click.option("--author-url-field")
@click.option("--author-ip-field")
@click.option("--post-id-field")
@click.option("--permalink-field")
@click.option("--parent-id-field")
@click.option("--batch-size", type=click.IntRange(1, 100), default=100, show_default=True)
@click.option("--rate", type=click.FloatRange(0, min_open=True), help="Comments per second.")
@click.option("--wait-timeout", type=click.FloatRange(0), default=300.0, show_default=True)
@click.option("--restart", is_flag=True, help="Ignore an earlier run's state and output.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@with_settings
def backfill(
    settings: Settings,
    file: Path,
    site: str | None,
    api_url: str | None,
    api_key: str | None,
    input_format: str | None,
    output: Path | None,
    batch_size: int,
    rate: float | None,
    wait_timeout: float,
    restart: bool,
    quiet: bool,
    **fields: str | None,
) -> None:
    """Moderate an archive of comments (JSON Lines or CSV); run it again to resume.

    Each --*-field names the input field (a CSV column, or a dotted path in JSON) holding that
    part of a comment. Decisions go to --output (default: FILE's name with the extension
    .decisions.jsonl), one line per comment. --site stores into Redis (REDIS_URL) directly;
    --api-url and --api-key go through the batch endpoint instead.
    """
    from moderation.ops.backfill import BackfillError, run_command

    try:
        code = run_command(
            settings,
            file,
            site=site,
            api_url=api_url,
            api_key=api_key,
            input_format=input_format,
            output=output,
            fields_by_option=fields,
            batch_size=batch_size,
            rate=rate,
            wait_timeout=wait_timeout,
            restart=restart,
            quiet=quiet,
        )
    except BackfillError as error:
        raise click.ClickException(str(error)) from None
    if code:
        raise SystemExit(code)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@with_settings
def status(settings: Settings, as_json: bool) -> None:
    """Queues, workers, pending and failed counts."""
    from moderation.core.redis_connections import connect
    from moderation.ops.queue_status import status as read_status

    report = read_status(connect(settings.redis_url))
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    for name, queue in report["queues"].items():
        click.echo(
            f"{name:9} queued {queue['queued']:6}  started {queue['started']:4}  "
            f"scheduled {queue['scheduled']:4}  failed {queue['failed']:4}  "
            f"workers {len(queue['workers'])}"
        )
    oldest = report["oldest_pending_seconds"]
    click.echo(
        f"pending comments {report['pending_comments']}"
        + (f" (oldest {oldest:.0f} s)" if oldest is not None else "")
        + f"; webhooks waiting to be queued {report['webhook_outbox']}"
    )
    for worker, loaded in sorted(report["models"].items()):
        spam = f", spam {loaded['spam']}" if "spam" in loaded else ""
        click.echo(f"worker {worker}: {loaded.get('toxicity', '?')}{spam}")


@main.command()
@click.option("--deliveries", is_flag=True, help="Requeue failed webhook deliveries instead.")
@with_settings
def requeue(settings: Settings, deliveries: bool) -> None:
    """Re-enqueue failed scoring jobs (their comments go back to pending) or deliveries."""
    from moderation.core.redis_connections import connect
    from moderation.ops.queue_status import requeue_failed

    count = requeue_failed(connect(settings.redis_url), settings, deliveries=deliveries)
    click.echo(f"requeued {count} failed {'deliveries' if deliveries else 'scoring jobs'}")


main.add_command(models_group)


@main.group()
def sites() -> None:
    """Manage sites (tenants) and their API keys."""


def site_store(settings: Settings) -> Any:
    from moderation.core.redis_connections import connect
    from moderation.storage.site_store import SiteStore

    return SiteStore(connect(settings.redis_url), settings.secret_key)


def print_once(data: dict[str, str], as_json: bool) -> None:
    """Secrets that are shown this once and never stored in clear."""
    if as_json:
        click.echo(json.dumps(data))
    else:
        for key, value in data.items():
            click.echo(f"{key}: {value}")
        click.echo("Store these now: they are not shown again.", err=True)


def print_credentials(credentials: Any, as_json: bool) -> None:
    shown = {
        "site": credentials.site,
        "api_key": credentials.api_key,
        "webhook_secret": credentials.webhook_secret,
    }
    if credentials.akismet_key:
        shown["akismet_key"] = credentials.akismet_key
    print_once(shown, as_json)


@sites.command("create")
@click.argument("name")
@click.option("--callback-url", default=None, help="Where decisions are POSTed (webhooks).")
@click.option("--json", "as_json", is_flag=True, help="Print the credentials as JSON.")
@with_settings
def sites_create(settings: Settings, name: str, callback_url: str | None, as_json: bool) -> None:
    """Create a site; prints its API key, webhook secret and Akismet-shaped key once."""
    from moderation.storage.site_store import SiteExistsError

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
    from moderation.storage.site_store import UnknownSiteError

    try:
        credentials = site_store(settings).rotate_api_key(name)
    except UnknownSiteError:
        raise click.ClickException(f"no site {name!r}") from None
    except RuntimeError as error:
        raise click.ClickException(str(error)) from None
    print_credentials(credentials, as_json)


@sites.command("rotate-akismet-key")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the new key as JSON.")
@with_settings
def sites_rotate_akismet_key(settings: Settings, name: str, as_json: bool) -> None:
    """Give a site a new Akismet-shaped key (12 hex characters, for Akismet's clients and
    WordPress); the old one stops working at once."""
    from moderation.storage.site_store import UnknownSiteError

    try:
        akismet_key = site_store(settings).rotate_akismet_key(name)
    except UnknownSiteError:
        raise click.ClickException(f"no site {name!r}") from None
    except RuntimeError as error:
        raise click.ClickException(str(error)) from None
    print_once({"site": name, "akismet_key": akismet_key}, as_json)


@sites.command("list")
@with_settings
def sites_list(settings: Settings) -> None:
    """List site names."""
    for name in site_store(settings).names():
        click.echo(name)


@main.group()
def moderators() -> None:
    """Manage moderator accounts."""


def moderator_store(settings: Settings) -> Any:
    from moderation.core.redis_connections import connect
    from moderation.storage.moderator_store import ModeratorStore

    return ModeratorStore(connect(settings.redis_url))


def print_moderator_credentials(credentials: Any, as_json: bool) -> None:
    print_once(
        {
            "name": credentials.name,
            "role": credentials.role.value,
            "token": credentials.token,
            "password": credentials.password,
        },
        as_json,
    )


def split_sites(raw: str | None) -> list[str]:
    return [site.strip() for site in (raw or "").split(",") if site.strip()]


@moderators.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(["admin", "moderator"]), required=True)
@click.option("--sites", "site_list", default=None, help="Comma-separated sites (moderators).")
@click.option("--json", "as_json", is_flag=True, help="Print the credentials as JSON.")
@with_settings
def moderators_create(
    settings: Settings, name: str, role: str, site_list: str | None, as_json: bool
) -> None:
    """Create a moderator; prints a token (API) and a password (web page) once."""
    from moderation.storage.moderator_store import ModeratorExistsError, Role

    sites = split_sites(site_list)
    known = set(site_store(settings).names())
    unknown = [site for site in sites if site not in known]
    if unknown:
        click.echo(f"warning: no such site(s) yet: {', '.join(unknown)}", err=True)
    if role == "moderator" and not sites:
        click.echo("warning: a moderator with no --sites sees nothing", err=True)
    try:
        credentials = moderator_store(settings).create(name, Role(role), sites)
    except ModeratorExistsError:
        raise click.ClickException(f"moderator {name!r} exists") from None
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    print_moderator_credentials(credentials, as_json)


@moderators.command("disable")
@click.argument("name")
@with_settings
def moderators_disable(settings: Settings, name: str) -> None:
    """Stop a moderator's logins and token at once."""
    _set_disabled(settings, name, True)
    click.echo(f"moderator {name!r} disabled")


@moderators.command("enable")
@click.argument("name")
@with_settings
def moderators_enable(settings: Settings, name: str) -> None:
    """Let a disabled moderator in again."""
    _set_disabled(settings, name, False)
    click.echo(f"moderator {name!r} enabled")


def _set_disabled(settings: Settings, name: str, disabled: bool) -> None:
    from moderation.storage.moderator_store import UnknownModeratorError

    try:
        moderator_store(settings).set_disabled(name, disabled)
    except UnknownModeratorError:
        raise click.ClickException(f"no moderator {name!r}") from None


@moderators.command("reset-password")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the credentials as JSON.")
@with_settings
def moderators_reset_password(settings: Settings, name: str, as_json: bool) -> None:
    """A new password and token; the old ones stop working at once."""
    from moderation.storage.moderator_store import UnknownModeratorError

    try:
        credentials = moderator_store(settings).reset_password(name)
    except UnknownModeratorError:
        raise click.ClickException(f"no moderator {name!r}") from None
    print_moderator_credentials(credentials, as_json)


@moderators.command("list")
@with_settings
def moderators_list(settings: Settings) -> None:
    """List moderators with their role, sites and state."""
    store = moderator_store(settings)
    for name in store.names():
        moderator = store.get(name)
        if moderator is not None:
            state = " (disabled)" if moderator.disabled else ""
            sites = ",".join(moderator.sites) or "-"
            click.echo(f"{name}\t{moderator.role.value}\t{sites}{state}")


if __name__ == "__main__":
    main()
