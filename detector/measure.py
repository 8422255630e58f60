"""Particle measurement from masks: area, ECD, Feret diameters, minimum-area rectangle, circularity.

Every figure is measured on the particle's pixels at the image's own resolution (ImageJ's convention:
area = pixel count). Pixels are unit squares, so lengths come from their corners: a square of s x s
pixels has Feret diameters s and s*sqrt(2), rectangle sides s and s.

Size per class (`particle_size`): a cube's edge length is the geometric mean of its minimum-area
rectangle's sides (the square face seen from above, any rotation); a quasi-sphere's size is its
equivalent circular diameter ECD = sqrt(4 * area / pi).

Mask sources: a segmentation model's outlines (``model``), or for a box-only detector a classical
segmentation inside each detected box (``threshold``: Otsu on the box with a margin splits particle
from background, the outline runs at EDGE_LEVEL of the step between their medians, touching neighbours
are split by a marker watershed from the detected boxes' centres, holes filled, the part at the box
centre kept; polarity from the box's border against its centre).

Outlines and pixels: ``synthgen.instance_masks.rasterize`` marks exactly the pixels whose centres an
outline holds, so an outline through the boundary pixels' centres and one along the pixel edges give
the same pixels; measured and true sizes are both pixel counts of masks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from synthgen.annotations import Detections, box_iou
from synthgen.instance_masks import ParticleMask, mask_polygon, rasterize

SIZE_DEFINITION = {
    "cube": "edge length: geometric mean of the minimum-area rectangle's sides",
    "sphere": "equivalent circular diameter sqrt(4*area/pi)",
}


@dataclass(frozen=True)
class Measurement:
    area_px: int
    ecd_px: float
    feret_max_px: float
    feret_min_px: float
    rect_long_px: float
    rect_short_px: float
    aspect_ratio: float
    circularity: float
    touches_border: bool


def _corners(mask: np.ndarray, x0: int, y0: int) -> np.ndarray:
    """The corners of every boundary pixel (enough for the convex hull), image coordinates."""
    m = mask.astype(np.uint8)
    edge = m & ~cv2.erode(m, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)
    ys, xs = np.nonzero(edge)
    pts = np.concatenate([np.column_stack([xs + dx, ys + dy]) for dx in (0, 1) for dy in (0, 1)])
    return (pts + [x0, y0]).astype(np.float32)


def _min_width(hull: np.ndarray) -> float:
    """Rotating calipers: the minimum width of a convex polygon lies across one of its edges."""
    best = math.inf
    for i in range(len(hull)):
        e = hull[(i + 1) % len(hull)] - hull[i]
        n = np.hypot(*e)
        if n == 0:
            continue
        best = min(best, float(np.abs((hull - hull[i]) @ np.array([-e[1], e[0]]) / n).max()))
    return 0.0 if not math.isfinite(best) else best


def measure(pm: ParticleMask, width: int, height: int) -> Measurement | None:
    """The measurements of one particle's pixels; None for an empty mask."""
    area = pm.area
    if area == 0:
        return None
    hull = cv2.convexHull(_corners(pm.mask, pm.x0, pm.y0)).reshape(-1, 2).astype(np.float64)
    d = np.sqrt(((hull[:, None, :] - hull[None, :, :]) ** 2).sum(-1))
    feret_max = float(d.max())
    # widths from the boundary pixels' centres plus one pixel: exact for axis-aligned edges, and the
    # staircase corners of a rotated edge (up to 0.7 px out) do not inflate it
    ys, xs = np.nonzero(pm.mask)
    centres = np.column_stack([xs + pm.x0 + 0.5, ys + pm.y0 + 0.5]).astype(np.float32)
    hull_c = cv2.convexHull(centres).reshape(-1, 2).astype(np.float64)
    feret_min = _min_width(hull_c) + 1.0
    (_, _), (rw, rh), _ = cv2.minAreaRect(hull_c.astype(np.float32))
    rw, rh = rw + 1.0, rh + 1.0
    long_, short = max(rw, rh), min(rw, rh)
    outline = mask_polygon(pm)
    # the outline runs through boundary pixel centres, half a pixel inside the edge: + pi for the edge
    perimeter = float(cv2.arcLength(outline.astype(np.float32).reshape(-1, 1, 2), True)) + math.pi
    m = pm.mask
    h, w = m.shape
    touches = pm.x0 <= 0 or pm.y0 <= 0 or pm.x0 + w >= width or pm.y0 + h >= height
    if touches:  # the crop may reach the border with the particle's pixels short of it
        full_x = np.nonzero(m.any(axis=0))[0]
        full_y = np.nonzero(m.any(axis=1))[0]
        touches = bool(
            pm.x0 + full_x[0] <= 0 or pm.y0 + full_y[0] <= 0 or pm.x0 + full_x[-1] >= width - 1 or pm.y0 + full_y[-1] >= height - 1
        )
    return Measurement(
        area, math.sqrt(4 * area / math.pi), feret_max, feret_min,
        float(long_), float(short), float(long_ / short) if short > 0 else math.inf,
        min(1.0, 4 * math.pi * area / perimeter**2), bool(touches),
    )  # fmt: skip


def particle_size(m: Measurement, class_name: str) -> float:
    """The size of SIZE_DEFINITION for the class, in px."""
    if class_name == "cube":
        return math.sqrt(m.rect_long_px * m.rect_short_px)
    return m.ecd_px


def measure_detections(det: Detections, width: int, height: int) -> list[Measurement | None]:
    """A Measurement per detection from its outline; None where it has none."""
    polys = det.polygons if det.polygons is not None else (None,) * len(det)
    return [None if p is None else measure(rasterize(p, width, height), width, height) for p in polys]


# ------------------------------------------------------------------ masks for box-only detectors


# Where a threshold outline runs between background (0) and particle (1): the median level of the
# expert outlines of ../shared/data/real-sem/spheres-train (548 particles inside their labelled
# boxes; a training split, never scored). Expert masks run at the foot of the edge, not at half height.
EDGE_LEVEL = 0.15
NEIGHBOUR_CONF = 0.25  # detections this confident claim their pixels against a neighbour's box


def _centre(box: np.ndarray, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    """The points in the central half of a box (half its width and height)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    return (np.abs(xx - (x0 + x1) / 2) <= (x1 - x0) / 4) & (np.abs(yy - (y0 + y1) / 2) <= (y1 - y0) / 4)


def threshold_mask(
    grey: np.ndarray, box: np.ndarray, neighbours: np.ndarray | None = None, level: float = EDGE_LEVEL
) -> ParticleMask | None:
    """The particle in a detected box by a threshold on the box plus a margin; None when nothing
    sensible is found.

    Polarity: the particle is whichever of bright/dark its centre is against the margin ring around
    the box. Otsu's threshold splits the box into particle and background; the outline then runs at
    `level` of the way from the background's median (in the margin ring, at least 3 px wide, so past a
    blurred edge) to the particle's median in the box (0.5: the half-height of a blurred step; the
    default EDGE_LEVEL: near its foot, where expert outlines run). Touching particles: the
    particle side is flooded (marker watershed on the intensities) from the box's centre and from the
    centres of the `neighbours` (other detected boxes, xyxy) at once, so a neighbour's pixels inside
    this box stay that neighbour's; the split runs along the seam between them. Holes are filled and
    the part at the box centre kept."""
    H, W = grey.shape
    x0, y0, x1, y1 = (float(v) for v in box)
    bw, bh = x1 - x0, y1 - y0
    if bw < 2 or bh < 2:
        return None
    m = max(3, int(round(0.15 * max(bw, bh))))  # the ring must reach past a blurred edge
    wx0, wy0, wx1, wy1 = math.floor(x0) - m, math.floor(y0) - m, math.ceil(x1) + m, math.ceil(y1) + m
    nbs = np.zeros((0, 4))
    if neighbours is not None and len(neighbours):
        nbs = np.asarray(neighbours, np.float64).reshape(-1, 4)
        nbs = nbs[(nbs[:, 0] < wx1) & (nbs[:, 2] > wx0) & (nbs[:, 1] < wy1) & (nbs[:, 3] > wy0)]
        nbs = nbs[box_iou(np.asarray(box, np.float64)[None], nbs)[0] < 0.5]  # a duplicate is no neighbour
        if len(nbs):  # the window reaches every neighbour's centre, where its flooding starts
            cxs, cys = (nbs[:, 0] + nbs[:, 2]) / 2, (nbs[:, 1] + nbs[:, 3]) / 2
            wx0, wx1 = min(wx0, math.floor(cxs.min())), max(wx1, math.ceil(cxs.max()) + 1)
            wy0, wy1 = min(wy0, math.floor(cys.min())), max(wy1, math.ceil(cys.max()) + 1)
    X0, Y0, X1, Y1 = max(0, wx0), max(0, wy0), min(W, wx1), min(H, wy1)
    crop = grey[Y0:Y1, X0:X1].astype(np.float32)
    if crop.size < 9:
        return None
    crop = cv2.medianBlur(crop, 3)  # against noise, without moving a sharp edge (a Gaussian blur would)
    yy, xx = np.mgrid[Y0:Y1, X0:X1] + 0.5
    inside = (xx >= x0 - 1) & (xx <= x1 + 1) & (yy >= y0 - 1) & (yy <= y1 + 1)
    near = (xx >= x0 - m) & (xx <= x1 + m) & (yy >= y0 - m) & (yy <= y1 + m)  # box and margin
    centre = _centre(box, xx, yy)
    ring = near & ~inside
    if not ring.any() or not centre.any():
        return None
    bright = np.median(crop[centre]) >= np.median(crop[ring])
    lo, hi = float(crop[near].min()), float(crop[near].max())
    if hi - lo < 1e-6:
        return None
    u8 = np.clip((crop - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8)
    t, _ = cv2.threshold(u8[inside], 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    z = u8 if bright else 255 - u8  # the particle is bright in z
    t = t if bright else 254 - t  # u8 <= t is z > 254 - t: Otsu's particle side either way
    part_side, back_side = z[inside] > t, z[ring] <= t
    if part_side.any() and back_side.any():
        p_lev, b_lev = float(np.median(z[inside][part_side])), float(np.median(z[ring][back_side]))
        t = b_lev + level * (p_lev - b_lev)
    fg = z > t
    if len(nbs):
        markers = np.where(fg, 0, 1).astype(np.int32)  # 1: background
        for k, nb in enumerate(nbs):
            markers[_centre(nb, xx, yy) & fg] = 3 + k
        markers[centre & fg] = 2
        cv2.watershed(cv2.cvtColor(z, cv2.COLOR_GRAY2BGR), markers)
        # a neighbour's pixels and the watershed line (-1) next to them are not this particle's
        fg &= ~cv2.dilate((markers >= 3).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    fg &= inside
    from scipy.ndimage import binary_fill_holes

    fg = binary_fill_holes(fg)
    n, lab = cv2.connectedComponents(fg.astype(np.uint8), connectivity=8)
    if n <= 1:
        return None
    overlap = np.bincount(lab[centre].ravel(), minlength=n)
    overlap[0] = 0
    k = int(overlap.argmax()) if overlap.max() > 0 else 1 + int(np.bincount(lab.ravel())[1:].argmax())
    part = lab == k
    if part.sum() < 0.2 * bw * bh:  # a fragment, not the particle
        return None
    ys, xs = np.nonzero(part)
    a, b, c, d = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    return ParticleMask(X0 + int(a), Y0 + int(b), part[b:d, a:c])


def with_threshold_outlines(
    img: np.ndarray, det: Detections, level: float = EDGE_LEVEL, neighbour_conf: float = NEIGHBOUR_CONF
) -> tuple[Detections, int]:
    """`det` with an outline per box from `threshold_mask` (None where it fails), and how many failed.
    The detections of at least `neighbour_conf` (all without confidences) are each box's neighbours."""
    grey = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    xyxy = np.asarray(det.xyxy, np.float64).reshape(-1, 4)
    strong = np.ones(len(xyxy), bool) if det.confidence is None else np.asarray(det.confidence) >= neighbour_conf
    polys, failed = [], 0
    for i, box in enumerate(xyxy):
        others = xyxy[strong & (np.arange(len(xyxy)) != i)]
        pm = threshold_mask(grey, box, others, level)
        poly = None if pm is None else mask_polygon(pm)
        failed += poly is None
        polys.append(poly)
    return Detections(det.xyxy, det.class_id, det.confidence, tuple(polys)), failed


# ------------------------------------------------------------------ statistics


@dataclass(frozen=True)
class SizeSummary:
    """Size statistics of one class: the border-touching particles counted apart."""

    name: str
    count: int
    mean: float
    std: float
    sem: float
    median: float
    ci95_low: float
    ci95_high: float
    border_excluded: int
    unit: str = "px"
    basis: str = "mask"


def bootstrap_ci(values: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap 95 % interval of the mean (nan with fewer than two values)."""
    v = np.asarray(values, np.float64)
    if len(v) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), (n_boot, len(v)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def size_summary(name: str, sizes: np.ndarray, border_excluded: int = 0, unit: str = "px", basis: str = "mask") -> SizeSummary:
    """detector.predict.size_stats (count, mean, std, SEM) plus the median and the bootstrap 95 % interval."""
    from detector.predict import size_stats

    base = size_stats(name, sizes, unit)
    lo, hi = bootstrap_ci(sizes)
    median = float(np.median(sizes)) if base.count else float("nan")
    return SizeSummary(name, base.count, base.mean, base.std, base.sem, median, lo, hi, border_excluded, unit, basis)


def particle_heights(heights: np.ndarray, det: Detections, margin: float = 0.25) -> list[float | None]:
    """Height of each detected particle above its local background, in the height map's unit (nm):
    the highest point inside its box minus the median of a ring around the box (`margin` of the box
    size wide, clipped to the map). None when the box holds no finite height or the ring is empty."""
    h, w = heights.shape
    out: list[float | None] = []
    for x0, y0, x1, y1 in np.asarray(det.xyxy, np.float64):
        bx0, by0 = max(0, int(math.floor(x0))), max(0, int(math.floor(y0)))
        bx1, by1 = min(w, int(math.ceil(x1))), min(h, int(math.ceil(y1)))
        mx, my = max(1, round((x1 - x0) * margin)), max(1, round((y1 - y0) * margin))
        rx0, ry0, rx1, ry1 = max(0, bx0 - mx), max(0, by0 - my), min(w, bx1 + mx), min(h, by1 + my)
        inside = heights[by0:by1, bx0:bx1]
        ring = heights[ry0:ry1, rx0:rx1].copy()
        ring[by0 - ry0 : by1 - ry0, bx0 - rx0 : bx1 - rx0] = np.nan
        if inside.size == 0 or not np.isfinite(inside).any() or not np.isfinite(ring).any():
            out.append(None)
        else:
            out.append(float(np.nanmax(inside) - np.nanmedian(ring)))
    return out
