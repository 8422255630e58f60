"""The shipped default model: used by `detector predict` and `detector evaluate` when no weights are given.

How it was trained and what it scores: MODEL_CARD.md beside this file.
"""

from __future__ import annotations

from pathlib import Path

from synthgen.errors import InputError

SHIPPED = Path(__file__).with_name("nanosynth-yolov4-tiny.pt")


def shipped_weights() -> Path:
    """The default model's weights file; InputError when this install carries none."""
    if not SHIPPED.is_file():
        raise InputError("no default model in this install: pass a weights file (.pt) or train one with `detector train`", SHIPPED)
    return SHIPPED
