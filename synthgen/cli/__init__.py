"""`synthgen` command line: a thin typer layer; each command lives in its own module."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="synthgen",
    help="Compose labelled synthetic SEM micrographs from particle templates.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

from synthgen.cli import generate_cmds, template_cmds  # noqa: E402  (they register commands on app)


@app.callback()
def _root() -> None:
    """Keeps typer in command-group mode even while only one command is registered."""


def main() -> None:
    app()
