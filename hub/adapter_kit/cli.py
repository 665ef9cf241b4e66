"""``sportello adapter new NAME``: the scaffold on the command line (added to ``sportello``'s
main group by ``hub/cli/main.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .scaffold import KINDS, ProjectNames, ScaffoldError, scaffold


@click.group("adapter")
def adapter_group() -> None:
    """Tools for writing adapters to the comune's own software."""


@adapter_group.command("new")
@click.argument("name")
@click.option(
    "--kind",
    type=click.Choice(sorted(KINDS)),
    default="registry",
    show_default=True,
    help="what the adapter connects: the registry (anagrafe) or accounting (ragioneria)",
)
@click.option(
    "--dest",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="folder in which the project folder sportello-adapter-NAME is created",
)
def new_cmd(name: str, kind: str, dest: Path) -> None:
    """Create sportello-adapter-NAME: an adapter plugin with its contract tests.

    NAME is the adapter's name, the one tenants choose in their configuration: lowercase
    letters and digits, separated by '-' or '_' (for example acme-json).
    """
    try:
        project = scaffold(name, dest, kind)
    except ScaffoldError as exc:
        click.echo(f"sportello: error: {exc}", err=True)
        sys.exit(2)
    except OSError as exc:
        click.echo(f"sportello: error: {exc.strerror or exc} ({exc.filename or dest})", err=True)
        sys.exit(1)
    names = ProjectNames.of(name, kind)
    click.echo(f"Created {project}")
    click.echo(f"  {kind} adapter {names.name!r}: class {names.class_name} in package")
    click.echo(f"  {names.package}, plugin entry point {names.name!r} (group 'sportello')")
    click.echo("")
    click.echo("Next steps:")
    click.echo(f"  cd {project}")
    click.echo('  pip install -e ".[test]"      # into the environment where sportello runs')
    click.echo(f"  python -m pytest              # the {kind} contract and the adapter's tests")
    click.echo(f"  sportello plugins             # lists {names.name!r}")
    click.echo(f"Then edit src/{names.package}/adapter.py to read the comune's real data, and")
    click.echo(f'choose it for a tenant: [tenants.adapters.{kind}] plugin = "{names.name}"')
