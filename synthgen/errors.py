"""The one exception for bad user input; the CLIs turn it into a single line and exit code 2."""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """Bad input named by file and line: ``path:line: message``."""

    def __init__(self, msg: str, path: str | Path | None = None, line: int | None = None):
        super().__init__(msg)
        self.msg, self.path, self.line = msg, path, line

    def __str__(self) -> str:
        loc = ":".join(str(x) for x in (self.path, self.line) if x is not None)
        return f"{loc}: {self.msg}" if loc else self.msg


class InputErrors(InputError):
    """Several input defects reported at once (e.g. every bad line of every pattern file)."""

    def __init__(self, errors: list[InputError]):
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)
