"""`moderation models`: the sites' own models, for operators: list, show, roll back."""

from __future__ import annotations

import json
from typing import Any

import click

from moderation.core.settings import Settings
from moderation.ops.cli_settings import with_settings
from moderation.storage.model_registry import KINDS

KIND = click.Choice(KINDS)


@click.group()
def models() -> None:
    """The sites' own models, learned from their labels: list, show, roll back."""


def _connect(settings: Settings, site: str) -> Any:
    from moderation.core.redis_connections import connect
    from moderation.storage.site_store import SiteStore

    connection = connect(settings.redis_url)
    if SiteStore(connection, settings.secret_key).get(site) is None:
        raise click.ClickException(f"no site {site!r}")
    return connection


@models.command("list")
@click.option("--site", required=True, help="The site (tenant) name.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@with_settings
def models_list(settings: Settings, site: str, as_json: bool) -> None:
    """The site's labels, the model in use of each kind, and recent trainings."""
    from moderation.actions.model_reports import site_models_report

    report = site_models_report(_connect(settings, site), site, learning=settings.learning)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    labels = report["labels"]
    click.echo("labels: " + ", ".join(f"{kind} {count}" for kind, count in labels.items()))
    if not report["learning"]:
        click.echo("learning is off (MODERATION_LEARNING=false): base models only")
    for model in report["models"]:
        quality = model["held_out"] or {}
        auc = quality.get("auc")
        click.echo(
            f"{model['kind']}: {model['in_use']} (version {model['version']})"
            + (f", held-out AUC {auc:.4f}" if auc is not None else "")
        )
        for entry in model["history"][:5]:
            click.echo(f"  {entry['at']}  {describe(entry)}")


def describe(entry: dict[str, Any]) -> str:
    """One line for a training or rollback."""
    if entry["event"] == "rollback":
        return f"rolled back from version {entry['from']} to {entry['to']}"
    state = "in use" if entry.get("promoted") else "not promoted"
    return f"version {entry['version']} {state}: {entry['reason']}"


@models.command("show")
@click.option("--site", required=True, help="The site (tenant) name.")
@click.option("--kind", type=KIND, required=True)
@click.option("--version", type=int, default=None, help="Default: the version in use.")
@with_settings
def models_show(settings: Settings, site: str, kind: str, version: int | None) -> None:
    """One version's training record as JSON: labels, held-out quality, why it was (not) used."""
    from moderation.storage.model_registry import ModelRegistry

    registry = ModelRegistry(_connect(settings, site))
    version = registry.active(site).get(kind, 0) if version is None else version
    if version == 0:
        click.echo(json.dumps({"version": 0, "name": "base model", "kind": kind}))
        return
    entry = registry.entry(site, kind, version)
    if entry is None:
        raise click.ClickException(f"no record of {kind} model version {version} for {site!r}")
    click.echo(json.dumps(entry, indent=2))


@models.command("rollback")
@click.option("--site", required=True, help="The site (tenant) name.")
@click.option("--kind", type=KIND, required=True)
@click.option("--to", "to", type=int, default=None, help="A version; 0: the base model.")
@with_settings
def models_rollback(settings: Settings, site: str, kind: str, to: int | None) -> None:
    """Go back to an earlier version (default: the one before the version in use)."""
    from moderation.storage.model_registry import ModelRegistry, UnknownVersionError

    registry = ModelRegistry(_connect(settings, site))
    try:
        now = registry.rollback(site, kind, to, actor="operator")
    except UnknownVersionError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{site} {kind}: version {now} in use" + (" (the base model)" if not now else ""))
