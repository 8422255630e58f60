"""The project's one way to report a handled flaw of the user's data: a warning, printed and counted.

``warn(msg, path, line, kind=...)`` prints one line ``warning: FILE:LINE: msg`` to stderr (the same
``FILE:LINE: msg`` form as :class:`InputError`), through the project logger ``nanosynth`` when a CLI
has set it up (else straight to stderr), and counts it in every active :func:`collect` block.
Inside ``collect(strict=True)`` (a command's ``--strict``) it raises :class:`InputError` instead, so
the CLI ends with one ``error:`` line and exit code 2. Outside any block it only prints.

    with collect(strict=options.strict) as log:
        samples = read_labelled_folder(folder)
    log.total, log.counts[LABEL_SKIPPED]

``kind`` says what happened to the flawed item, so a command can summarise ("3 labels skipped").
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections import Counter
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from synthgen.errors import InputError

LOGGER_NAME = "nanosynth"  # the project logger (synthgen.cli._common.setup_logging gives it the CLI's handler)
_log = logging.getLogger(f"{LOGGER_NAME}.data")

# kinds: what was done with the flawed item
LABEL_SKIPPED = "label skipped"  # one box (a line of a label file) left out
IMAGE_SKIPPED = "image skipped"  # an unreadable / corrupt / truncated image left out
LABELS_WITHOUT_IMAGE = "label file without image"  # a label file (or COCO images entry) whose image is missing
IMAGE_WITHOUT_LABELS = "image without labels"  # an image with no label file: kept, with no particles
OTHER = "other warning"
_PLURAL = {
    LABEL_SKIPPED: "labels skipped",
    IMAGE_SKIPPED: "images skipped",
    LABELS_WITHOUT_IMAGE: "label files without image",
    IMAGE_WITHOUT_LABELS: "images without labels",
    OTHER: "other warnings",
}


@dataclass
class WarningLog:
    """The warnings given inside one :func:`collect` block."""

    strict: bool = False
    counts: Counter = field(default_factory=Counter)  # kind -> number of warnings
    lines: list[str] = field(default_factory=list)  # "FILE:LINE: msg" of each warning

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        """``"1 label skipped, 2 images skipped"`` (empty when there were no warnings)."""
        return summarize(self.counts)


def summarize(counts: Mapping[str, int]) -> str:
    """``{"label skipped": 3}`` -> ``"3 labels skipped"``, comma-separated; empty for no warnings."""
    return ", ".join(f"{n} {kind if n == 1 else _PLURAL.get(kind, kind)}" for kind, n in counts.items() if n)


_active: ContextVar[tuple[WarningLog, ...]] = ContextVar("nanosynth_warning_logs", default=())


@contextlib.contextmanager
def collect(strict: bool = False) -> Iterator[WarningLog]:
    """Count the warnings given inside the block (nested blocks all count them); ``strict``: raise instead."""
    log = WarningLog(strict=strict)
    token = _active.set(_active.get() + (log,))
    try:
        yield log
    finally:
        _active.reset(token)


def warn(msg: str, path: str | Path | None = None, line: int | None = None, kind: str = OTHER) -> None:
    """One line ``warning: FILE:LINE: msg`` on stderr, counted; an InputError under ``collect(strict=True)``."""
    logs = _active.get()
    if any(log.strict for log in logs):
        raise InputError(f"{msg} (an error with --strict)", path, line)
    text = str(InputError(msg, path, line))
    if logging.getLogger(LOGGER_NAME).handlers:  # a CLI set up the project logger (synthgen.cli._common)
        _log.warning(text)
    else:
        print(f"warning: {text}", file=sys.stderr, flush=True)
    for log in logs:
        log.counts[kind] += 1
        log.lines.append(text)
