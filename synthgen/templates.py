"""Template images and their footprint polygons. No placement.

Coordinates are continuous pixel coordinates: pixel ``(row i, col j)`` covers the square
``[j, j+1] x [i, i+1]``, so its centre is ``(j + 0.5, i + 0.5)``. A footprint polygon covers
the squares of its mask pixels (area ~ pixel count).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import shapely
from shapely.geometry import Polygon, box

from synthgen.errors import InputError

TEMPLATE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
ALPHA_THRESHOLD = 128  # alpha >= this is inside the footprint; softer alpha only feathers the edge
MIN_COMPONENT_FRACTION = 0.03  # a derived particle smaller than this share of the crop is noise
SIMPLIFY_TOLERANCE = 0.5  # px; keeps polygons small (fast overlap tests, small COCO files); paint is cut to it


@dataclass(frozen=True, eq=False)
class Template:
    """One particle crop: grey pixels, soft alpha (0..255) and the footprint polygon."""

    grey: np.ndarray  # (h, w) uint8
    alpha: np.ndarray  # (h, w) uint8, zero outside the footprint
    polygon: Polygon  # footprint in template pixel coordinates
    footprint_source: str  # "alpha", "derived" or "rectangle"
    path: Path | None = None
    # Polygon exterior relative to the crop centre (k, 2), closing vertex dropped; placement
    # rotates these numbers directly.
    centred: np.ndarray = field(init=False, repr=False)
    # (h, w, 4) uint8 [grey * alpha / 255, alpha, 0, 0] for compositing: warping premultiplied grey
    # keeps edges from mixing in the crop's own background (a dark or bright halo). Four channels
    # because cv2.warpAffine is much faster on four than on two.
    paint: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        h, w = self.grey.shape
        xy = np.asarray(self.polygon.exterior.coords, dtype=np.float64)[:-1]
        object.__setattr__(self, "centred", xy - (w / 2.0, h / 2.0))
        object.__setattr__(self, "paint", premultiplied(self.grey, self.alpha))

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.grey.shape[1], self.grey.shape[0]


def premultiplied(grey: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """(h, w, 4) uint8 [grey * alpha / 255, alpha, 0, 0] (see ``Template.paint``)."""
    ga = ((grey.astype(np.uint16) * alpha + 127) // 255).astype(np.uint8)
    zero = np.zeros_like(alpha)
    return np.dstack([ga, alpha, zero, zero])


def to_grey_alpha(img: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Any cv2-decoded image (grey/BGR/BGRA, 8/16-bit or float) -> (grey uint8, alpha uint8 | None)."""
    alpha = None
    if img.ndim == 3:
        if img.shape[2] == 4:
            alpha, img = img[:, :, 3], img[:, :, :3]
        elif img.shape[2] == 2:  # grey + alpha
            alpha, img = img[:, :, 1], img[:, :, :1]
        img = img[:, :, 0] if img.shape[2] == 1 else cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_BGR2GRAY)
    return _to_uint8(img), None if alpha is None else _to_uint8(alpha)


def _to_uint8(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if a.dtype == np.uint16:
        return np.round(a / 257.0).astype(np.uint8)
    a = a.astype(np.float64)
    top = 1.0 if a.max(initial=0.0) <= 1.0 else a.max()
    return np.round(np.clip(a / top, 0.0, 1.0) * 255.0).astype(np.uint8)


def largest_filled_component(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Largest 8-connected blob of a bool mask with its holes filled, and its outer contour (k, 2) int."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    contour = max(contours, key=lambda c: (len(c) > 2, cv2.contourArea(c), len(c)))
    filled = np.zeros(mask.shape, np.uint8)
    cv2.drawContours(filled, [contour], -1, 1, thickness=cv2.FILLED)
    return filled.astype(bool), contour[:, 0, :]


def derive_mask(grey: np.ndarray) -> np.ndarray | None:
    """Particle mask of a crop without alpha: Otsu split, the side unlike the crop's border is the
    particle (works for bright SEM and dark TEM particles), largest blob, holes filled.
    None when no plausible particle stands out."""
    h, w = grey.shape
    if h < 3 or w < 3 or grey.min() == grey.max():
        return None
    t, _ = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    fg = grey > t
    border = np.concatenate([grey[0], grey[-1], grey[1:-1, 0], grey[1:-1, -1]])
    if np.mean(border > t) > 0.5:
        fg = ~fg
    found = largest_filled_component(fg)
    if found is None:
        return None
    filled, _ = found
    if filled.sum() < MIN_COMPONENT_FRACTION * h * w:
        return None
    return filled


def mask_polygon(mask: np.ndarray) -> tuple[np.ndarray, Polygon] | None:
    """Largest blob of ``mask`` (holes filled) and a valid polygon covering its pixel squares."""
    found = largest_filled_component(mask)
    if found is None:
        return None
    filled, contour = found
    centres = contour.astype(np.float64) + 0.5
    x, y = centres.min(axis=0), centres.max(axis=0)
    square = box(x[0] - 0.5, x[1] - 0.5, y[0] + 0.5, y[1] + 0.5)
    if len(centres) < 3:
        return filled, square
    # The contour runs through boundary pixel centres; a half-pixel mitred buffer moves it out to
    # the pixel edges so the polygon (and the label box) covers every footprint pixel.
    poly = Polygon(centres)
    if not poly.is_valid:
        poly = _largest_polygon(shapely.make_valid(poly))
    if poly is None or poly.area <= 0:
        return filled, square
    poly = poly.buffer(0.5, join_style="mitre", mitre_limit=1.5)
    poly = _largest_polygon(poly.simplify(SIMPLIFY_TOLERANCE, preserve_topology=True))
    return (filled, Polygon(poly.exterior)) if poly is not None else None


def _largest_polygon(geom) -> Polygon | None:
    polys = [g for g in getattr(geom, "geoms", [geom]) if isinstance(g, Polygon) and not g.is_empty]
    if not polys:
        parts = [g for g in getattr(geom, "geoms", []) if not g.is_empty]
        polys = [p for g in parts for p in getattr(g, "geoms", [g]) if isinstance(p, Polygon)]
    return max(polys, key=lambda p: p.area) if polys else None


def make_template(grey: np.ndarray, alpha: np.ndarray | None = None, path: Path | None = None) -> Template:
    """Template from pixels: footprint from alpha when given, else derived, else the whole crop."""
    h, w = grey.shape
    source, mask = "rectangle", None
    if alpha is not None:
        mask = alpha >= ALPHA_THRESHOLD
        if not mask.any():
            raise InputError("the alpha channel is fully transparent: no particle footprint", path)
        source = "alpha"
    else:
        mask = derive_mask(grey)
        source = "derived" if mask is not None else "rectangle"
    found = mask_polygon(mask) if mask is not None else None
    if found is None:
        source, filled, poly = "rectangle", np.ones((h, w), bool), box(0, 0, w, h)
    else:
        filled, poly = found
    # Paint nothing outside the footprint, so labels describe exactly what is rendered.
    base = alpha if alpha is not None else np.full((h, w), 255, np.uint8)
    soft = np.where(filled, base, 0).astype(np.uint8)
    return Template(grey=grey, alpha=soft, polygon=poly, footprint_source=source, path=path)


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Send what C libraries write to file descriptor 2 to /dev/null for the block.

    libpng prints "libpng error: ..." itself on a truncated or corrupt PNG, whatever OpenCV's log
    level (OPENCV_LOG_LEVEL, set in synthgen/__init__.py, only quiets OpenCV's own "[ WARN ]"
    lines); the project's one-line error names the file instead."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield  # no usable fd 2: nothing to silence
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def decode_image(path: str | Path, flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray | None:
    """cv2.imdecode of the file's bytes (any path, unicode too), None when unreadable, silently."""
    data = np.fromfile(path, dtype=np.uint8)
    if not data.size:
        return None
    with native_stderr_silenced():
        img = cv2.imdecode(data, flags)
    return None if img is None or img.size == 0 else img


def load_template(path: str | Path) -> Template:
    """Read a template image (PNG/JPEG/BMP/TIFF, grey or colour, 8/16-bit, optional alpha)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("template file not found", path)
    if path.suffix.lower() not in TEMPLATE_SUFFIXES:
        raise InputError(f"unsupported template type {path.suffix!r} (use PNG, JPEG, BMP or TIFF)", path)
    img = decode_image(path)
    if img is None:
        raise InputError("cannot read the template image (corrupt or not an image)", path)
    grey, alpha = to_grey_alpha(img)
    return make_template(grey, alpha, path)
