"""Shared CLI plumbing: InputError -> one line on stderr, exit code 2."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

import typer

from synthgen.errors import InputError


@contextlib.contextmanager
def input_errors_exit() -> Iterator[None]:
    """Turn InputError (and a missing or unwritable file) into `error: path:line: message` and exit code 2."""
    try:
        yield
    except InputError as e:
        for line in str(e).splitlines():
            typer.echo(f"error: {line}", err=True)
        raise typer.Exit(code=2) from None
    except FileNotFoundError as e:
        typer.echo(f"error: {e.filename}: no such file", err=True)
        raise typer.Exit(code=2) from None
    except OSError as e:
        # A file operation the user's setup refused (read-only folder, no permission, disk full):
        # one line naming the file, not a traceback. OSErrors without a file are bugs: re-raised.
        if e.filename is None:
            raise
        reason = e.strerror or type(e).__name__
        typer.echo(f"error: {e.filename}: {reason[:1].lower() + reason[1:]}", err=True)
        raise typer.Exit(code=2) from None


LOGGER_NAME = "nanosynth"  # the one project logger: logging.getLogger("nanosynth") (or a child of it)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (test runners swap it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


class _CliFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        return msg if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {msg}"


def setup_logging() -> None:
    """Project log records -> stderr, one line each: progress as is, ``warning: ...`` for warnings.

    Warnings of Python's ``warnings`` module (e.g. from a dependency) go to the same logger, as one line.
    """
    logger = logging.getLogger(LOGGER_NAME)
    if not any(getattr(h, "name", "") == "nanosynth-cli" for h in logger.handlers):
        handler = _StderrHandler()
        handler.set_name("nanosynth-cli")
        handler.setFormatter(_CliFormatter())
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    import warnings

    def showwarning(message, category, filename, lineno, file=None, line=None):
        logger.warning(f"{category.__name__}: {str(message).splitlines()[0] if str(message) else ''}")

    warnings.showwarning = showwarning


def command_group(name: str, help: str) -> typer.Typer:
    """A typer app in command-group mode (even with one command), without typer's rich tracebacks."""
    app = typer.Typer(name=name, help=help, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

    @app.callback()
    def _root() -> None:
        setup_logging()

    return app


def run_cli(app: typer.Typer) -> None:
    """Console entry point: a bad option value (typer/click usage error) is one line
    ``error: ...`` and exit code 2, like every other input error, instead of a framed usage box."""
    import sys

    try:
        from typer._click.exceptions import ClickException  # typer >= 0.26 vendors click
    except ImportError:  # pragma: no cover - older typer on top of click
        from click.exceptions import ClickException

    try:
        rv = app(standalone_mode=False)
    except ClickException as e:
        if type(e).__name__ != "NoArgsIsHelpError":  # that one: the help was already shown
            ctx = getattr(e, "ctx", None)
            where = f"{ctx.command_path}: " if ctx is not None else ""
            typer.echo(f"error: {where}{e.format_message()}".splitlines()[0] + "  (see --help)", err=True)
        sys.exit(e.exit_code)
    sys.exit(rv if isinstance(rv, int) else 0)
