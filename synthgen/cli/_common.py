"""Shared CLI plumbing: InputError -> one line on stderr, exit code 2."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer

from synthgen.errors import InputError


@contextlib.contextmanager
def input_errors_exit() -> Iterator[None]:
    """Turn InputError (and a missing file) into `error: path:line: message` and exit code 2."""
    try:
        yield
    except InputError as e:
        for line in str(e).splitlines():
            typer.echo(f"error: {line}", err=True)
        raise typer.Exit(code=2) from None
    except FileNotFoundError as e:
        typer.echo(f"error: {e.filename}: no such file", err=True)
        raise typer.Exit(code=2) from None


def command_group(name: str, help: str) -> typer.Typer:
    """A typer app in command-group mode (even with one command), without typer's rich tracebacks."""
    app = typer.Typer(name=name, help=help, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

    @app.callback()
    def _root() -> None:
        pass

    return app
