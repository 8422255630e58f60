"""`synthgen` command line: a thin typer layer; each command lives in its own module."""

from __future__ import annotations

from synthgen.cli._common import command_group, run_cli

app = command_group("synthgen", "Compose labelled synthetic SEM micrographs from particle templates.")

from synthgen.cli import generate_cmds, template_cmds  # noqa: E402,F401  (they register commands on app)


def main() -> None:
    run_cli(app)
