"""Resolving a `moderation ...` command line to its click command, without running it."""

from __future__ import annotations

import click

from moderation.ops.cli import main


def resolve(arguments: list[str]) -> click.Command:
    """The click command these arguments name; parsing them raises on unknown options."""
    command: click.Command = main
    name, rest = "moderation", list(arguments)
    while isinstance(command, click.Group):
        assert rest, f"{name} needs a subcommand"
        name, *rest = rest
        subcommand = command.get_command(click.Context(command), name)
        assert subcommand is not None, f"no command {name!r} in `moderation`"
        command = subcommand
    command.make_context(name, rest)  # parse only: nothing is invoked
    return command
