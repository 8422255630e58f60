"""The project's particle classes and the names accepted for them."""

from __future__ import annotations

CLASS_NAMES: tuple[str, ...] = ("cube", "sphere")

ALIASES: dict[str, str] = {
    "cube": "cube",
    "cubes": "cube",
    "nanocube": "cube",
    "nanocubes": "cube",
    "sphere": "sphere",
    "spheres": "sphere",
    "quasi-sphere": "sphere",
    "quasi-spheres": "sphere",
    "quasisphere": "sphere",
    "quasi_sphere": "sphere",
    "quasi sphere": "sphere",
    "nanosphere": "sphere",
    "nanospheres": "sphere",
}


def canonical_class(name: str) -> str | None:
    """The project class a label name means, or None when it is unknown."""
    return ALIASES.get(name.strip().lower())


def class_id(name: str) -> int | None:
    """Class index (0 cube, 1 sphere) for a name or alias, or None when it is unknown."""
    canon = canonical_class(name)
    return None if canon is None else CLASS_NAMES.index(canon)
