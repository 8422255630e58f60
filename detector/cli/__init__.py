"""`detector` command line: a thin typer layer; each stage's commands live in their own module."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="detector",
    help="Build training sets, train YOLO-tiny nanoparticle detectors, evaluate, predict and measure.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

from detector.cli import dataset_cmds, evaluate_cmds, train_cmds  # noqa: E402,F401  (register commands)


@app.callback()
def _root() -> None:
    """Keeps typer in command-group mode even while only one command is registered."""


def main() -> None:
    app()
