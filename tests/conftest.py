"""Shared fixtures: tiny pattern files with numpy-drawn templates, and the optional ../shared data."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def draw_cube(size: int = 24, level: int = 200, alpha: bool = True) -> np.ndarray:
    """A bright square particle with a brighter rim, on a dark border; BGRA when ``alpha``."""
    img = np.full((size + 8, size + 8), 30, np.uint8)
    cv2.rectangle(img, (4, 4), (size + 3, size + 3), level, thickness=-1)
    cv2.rectangle(img, (4, 4), (size + 3, size + 3), 250, thickness=1)
    if not alpha:
        return img
    a = np.zeros_like(img)
    a[4 : size + 4, 4 : size + 4] = 255
    return np.dstack([img, img, img, a])


def draw_sphere(size: int = 20, level: int = 180) -> np.ndarray:
    """A grey disc on a dark background, no alpha: the footprint must be derived."""
    img = np.full((size + 8, size + 8), 25, np.uint8)
    c = (size + 8) // 2
    cv2.circle(img, (c, c), size // 2, level, thickness=-1)
    return img


def grid_micrograph(w: int = 512, h: int = 384, seed: int = 0) -> np.ndarray:
    """Bright squares and discs (~30 px) in a grid on a dark noisy background: the shipped model finds ~35."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w), 25, np.uint8)
    for i, y in enumerate(range(40, h - 30, 70)):
        for j, x in enumerate(range(40, w - 30, 70)):
            if (i + j) % 2:
                cv2.rectangle(img, (x - 14, y - 14), (x + 14, y + 14), 200, -1)
            else:
                cv2.circle(img, (x, y), 15, 190, -1)
    img = cv2.GaussianBlur(img, (3, 3), 0)
    return np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)


def write_pattern(folder: Path, width: int = 160, height: int = 120, lines: list[str] | None = None) -> Path:
    """A pattern in ``folder`` with an RGBA cube, a grey cube and a derived-mask sphere template."""
    tdir = folder / "templates"
    tdir.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(tdir / "cube_rgba.png"), draw_cube(24))
    cv2.imwrite(str(tdir / "cube_grey.png"), draw_cube(16, alpha=False))
    cv2.imwrite(str(tdir / "sphere.png"), draw_sphere(20))
    if lines is None:
        lines = ["templates/cube_rgba.png cube", "templates/cube_grey.png", "templates/sphere.png quasi-sphere"]
    text = "# tiny test pattern\n" + f"{width} {height}\n" + "\n".join(lines) + "\n"
    path = folder / "pattern.txt"
    path.write_text(text)
    return path


@pytest.fixture(autouse=True, scope="session")
def _export_cache(tmp_path_factory) -> None:
    """`--runtime auto` exports into a cache: one for the test session, never the user's."""
    import os

    os.environ["NANOSYNTH_CACHE"] = str(tmp_path_factory.mktemp("export-cache"))


@pytest.fixture
def tiny_pattern(tmp_path: Path) -> Path:
    """Path of a 160x120 pattern with three numpy-drawn templates (cube RGBA, cube grey, sphere)."""
    return write_pattern(tmp_path / "pattern")


@pytest.fixture
def shared_dir() -> Path:
    """The read-only ../shared folder, or skip when it is not next to the repository."""
    if not SHARED.is_dir():
        pytest.skip(f"shared data not found at {SHARED}")
    return SHARED


@pytest.fixture
def real_patterns(shared_dir: Path) -> list[Path]:
    """The real-template pattern files in ../shared/patterns-real (skip when missing)."""
    paths = sorted((shared_dir / "patterns-real").glob("*/pattern.txt"))
    if not paths:
        pytest.skip(f"no pattern files in {shared_dir / 'patterns-real'}")
    return paths
