"""Contour refinement by a 2D Gaussian fit (Okunev et al. 2020, Eq. 2-5), scipy least squares.

Each detected particle's intensity, in its box plus a margin, is fitted with a rotated elliptical
Gaussian on a flat background:

    I(x, y) = B + A exp(-(u^2 / (2 sx^2) + v^2 / (2 sy^2))),   (u, v) = R(theta) (x - x0, y - y0)

and its contour becomes the ellipse at half height, u^2/sx^2 + v^2/sy^2 = 2 ln 2 (semi-axes sx and sy
times sqrt(2 ln 2), half the full width at half maximum). A dark particle on a light background
(polarity from the box's centre against the ring around it, as the threshold masks) is fitted on the
inverted intensity. A fit *fails* (the particle keeps its mask) when least squares does not converge,
explains under half of the crop's variance, puts the centre outside the box, or gives an ellipse
smaller than a third or larger than 1.5 times the box; Okunev et al. report that only about half of
their contours refined (Table 3), so both counts are reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from synthgen.annotations import Detections

HALF = math.sqrt(2 * math.log(2))  # half-height semi-axis / sigma
MIN_R2 = 0.5
FIT_PIXELS = 1600


@dataclass(frozen=True)
class GaussianFit:
    amplitude: float
    background: float
    x0: float
    y0: float
    sx: float
    sy: float
    theta: float  # radians
    r2: float  # fraction of the crop's variance explained


def gaussian2d(p: np.ndarray, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    """Eq. 2-4: the rotated elliptical Gaussian on a flat background, p = (A, B, x0, y0, sx, sy, theta)."""
    a, b, x0, y0, sx, sy, t = p
    c, s = math.cos(t), math.sin(t)
    u = c * (xx - x0) + s * (yy - y0)
    v = -s * (xx - x0) + c * (yy - y0)
    return b + a * np.exp(-(u * u / (2 * sx * sx) + v * v / (2 * sy * sy)))


def _jacobian(p: np.ndarray, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    """d gaussian2d / d p, (pixels, 7): analytic, so a fit costs a few model evaluations, not 8 per step."""
    a, _, x0, y0, sx, sy, t = p
    c, s = math.cos(t), math.sin(t)
    dx, dy = (xx - x0).ravel(), (yy - y0).ravel()
    u, v = c * dx + s * dy, -s * dx + c * dy
    g = np.exp(-(u * u / (2 * sx * sx) + v * v / (2 * sy * sy)))
    ag = a * g
    return np.column_stack([
        g, np.ones_like(g), ag * (u * c / sx**2 - v * s / sy**2), ag * (u * s / sx**2 + v * c / sy**2),
        ag * u * u / sx**3, ag * v * v / sy**3, -ag * u * v * (1 / sx**2 - 1 / sy**2),
    ])  # fmt: skip


def fit_gaussian(grey: np.ndarray, box: np.ndarray, margin: float = 0.25) -> GaussianFit | None:
    """The least-squares Gaussian of the particle in `box` (xyxy, image px) of a grey image; None when the
    fit fails (see the module docstring). Coordinates are continuous image px (pixel centres at +0.5)."""
    from scipy.optimize import least_squares

    H, W = grey.shape
    x0, y0, x1, y1 = (float(v) for v in box)
    bw, bh = x1 - x0, y1 - y0
    if bw < 3 or bh < 3:
        return None
    m = margin * max(bw, bh)
    X0, Y0 = max(0, int(math.floor(x0 - m))), max(0, int(math.floor(y0 - m)))
    X1, Y1 = min(W, int(math.ceil(x1 + m))), min(H, int(math.ceil(y1 + m)))
    # a large particle is fitted on every k-th pixel (about FIT_PIXELS of them): the same Gaussian, k^2 less work
    k = max(1, math.ceil(math.sqrt((X1 - X0) * (Y1 - Y0) / FIT_PIXELS)))
    crop = grey[Y0:Y1:k, X0:X1:k].astype(np.float64)
    yy, xx = np.mgrid[Y0:Y1:k, X0:X1:k] + 0.5
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    centre = (np.abs(xx - cx) <= bw / 4) & (np.abs(yy - cy) <= bh / 4)
    ring = (xx < x0) | (xx > x1) | (yy < y0) | (yy > y1)
    if not centre.any() or crop.size < 16:
        return None
    back = float(np.median(crop[ring])) if ring.any() else float(np.percentile(crop, 10))
    if np.median(crop[centre]) < back:  # dark particle: fit the inverted intensity
        crop, back = -crop, -back
    amp = float(crop[centre].max() - back)
    if amp <= 0:
        return None
    p0 = np.array([amp, back, cx, cy, bw / 4, bh / 4 * 0.9, 0.0])  # sx != sy: at sx = sy theta has no gradient
    wgt = np.clip(crop - back, 0, None) * ~ring
    if wgt.sum() > 0:  # start from the intensity's second moments: centre, axes and angle
        mx, my = (wgt * xx).sum() / wgt.sum(), (wgt * yy).sum() / wgt.sum()
        cov = np.cov(np.stack([xx.ravel(), yy.ravel()]), aweights=wgt.ravel())
        ev, vec = np.linalg.eigh(cov)
        if ev[0] > 0 and x0 <= mx <= x1 and y0 <= my <= y1:
            p0[2:7] = mx, my, math.sqrt(ev[1]), math.sqrt(ev[0]) * 0.99, math.atan2(vec[1, 1], vec[0, 1])
    lo = np.array([0.0, crop.min() - amp, x0, y0, bw / 20, bh / 20, -math.pi])
    hi = np.array([4 * amp + 1e-9, crop.max(), x1, y1, bw, bh, math.pi])
    hi[4:6] = np.maximum(hi[4:6], lo[4:6] * 1.01)
    try:
        res = least_squares(lambda p: (gaussian2d(p, xx, yy) - crop).ravel(), np.clip(p0, lo, hi), jac=lambda p: _jacobian(p, xx, yy),
                            bounds=(lo, hi), x_scale="jac", max_nfev=100)  # fmt: skip
    except (ValueError, np.linalg.LinAlgError):
        return None
    if not res.success:
        return None
    var = float(((crop - crop.mean()) ** 2).sum())
    r2 = 1.0 - float((res.fun**2).sum()) / var if var > 0 else 0.0
    a, b, fx, fy, sx, sy, t = (float(v) for v in res.x)
    fit = GaussianFit(a, b, fx, fy, sx, sy, t, r2)
    half_w, half_h = 2 * HALF * sx, 2 * HALF * sy  # full widths at half height
    size, box_size = math.sqrt(half_w * half_h), math.sqrt(bw * bh)
    if r2 < MIN_R2 or not (x0 <= fx <= x1 and y0 <= fy <= y1) or not (box_size / 3 <= size <= 1.5 * box_size):
        return None
    return fit


def half_height_contour(fit: GaussianFit, n: int = 72, inset: float = 0.0) -> np.ndarray:
    """Eq. 5: the ellipse where the Gaussian falls to half its height, (n, 2) image px; `inset` px
    inside it. At inset 0 the pixels synthgen.instance_masks.rasterize marks (those whose centres it
    holds) cover the ellipse's area."""
    phi = np.linspace(0, 2 * math.pi, n, endpoint=False)
    a, b = max(HALF * fit.sx - inset, 0.5), max(HALF * fit.sy - inset, 0.5)
    u, v = a * np.cos(phi), b * np.sin(phi)
    c, s = math.cos(fit.theta), math.sin(fit.theta)
    return np.column_stack([fit.x0 + c * u - s * v, fit.y0 + s * u + c * v])


@dataclass(frozen=True)
class RefineCounts:
    refined: int = 0
    failed: int = 0

    def __add__(self, other: RefineCounts) -> RefineCounts:
        return RefineCounts(self.refined + other.refined, self.failed + other.failed)

    def as_dict(self) -> dict:
        total = self.refined + self.failed
        return {"refined": self.refined, "failed": self.failed, "refined_fraction": self.refined / total if total else None}


def refine_gaussian(img: np.ndarray, det: Detections, conf: float = 0.0) -> tuple[Detections, RefineCounts]:
    """`det` with each outline (of a detection with confidence >= conf) replaced by its Gaussian fit's
    half-height ellipse; a detection whose fit fails keeps its outline. Also the counts."""
    import cv2

    grey = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    polys = list(det.polygons) if det.polygons is not None else [None] * len(det)
    scores = det.confidence if det.confidence is not None else np.ones(len(det))
    refined = failed = 0
    for i, box in enumerate(det.xyxy):
        if scores[i] < conf:
            continue
        fit = fit_gaussian(grey, box)
        if fit is None:
            failed += 1
        else:
            polys[i] = half_height_contour(fit)
            refined += 1
    return Detections(det.xyxy, det.class_id, det.confidence, tuple(polys)), RefineCounts(refined, failed)
