"""detector.refine: Okunev's 2D Gaussian contour refinement recovers a blob's half-height contour."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from detector.refine import HALF, fit_gaussian, gaussian2d, half_height_contour, refine_gaussian
from synthgen.annotations import Detections
from synthgen.instance_masks import rasterize


def _blob(sx, sy, theta, dark=False, noise=3.0, seed=0, size=96):
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    img = gaussian2d(np.array([150.0, 30.0, 47.3, 49.1, sx, sy, theta]), xx, yy)
    img = img + np.random.default_rng(seed).normal(0, noise, img.shape)
    img = 255 - img if dark else img
    w, h = 2.5 * HALF * sx, 2.5 * HALF * sy  # a detector's box: about the particle, not exact
    r = max(w, h) / 2
    return np.clip(img, 0, 255).astype(np.uint8), np.array([47.3 - r, 49.1 - r, 47.3 + r, 49.1 + r])


@settings(max_examples=25, deadline=None)
@given(st.floats(5, 14), st.floats(5, 14), st.floats(-1.5, 1.5), st.booleans())
@example(8.0, 8.0, 0.0, False)
@example(12.0, 6.0, 0.7, True)
def test_fit_recovers_the_half_height_contour(sx, sy, theta, dark):
    img, box = _blob(sx, sy, theta, dark)
    fit = fit_gaussian(img.astype(np.float64), box)
    assert fit is not None
    assert (fit.x0, fit.y0) == pytest.approx((47.3, 49.1), abs=0.3)
    assert sorted([fit.sx, fit.sy]) == pytest.approx(sorted([sx, sy]), rel=0.05, abs=0.2)
    # the contour is the true half-height ellipse: its area pi * HALF^2 * sx * sy, its points at half height
    poly = half_height_contour(fit)
    true_area = math.pi * HALF**2 * sx * sy
    # rasterised exactly (the pixels whose centres it holds), its pixels cover the ellipse's area
    assert rasterize(poly).area == pytest.approx(true_area, rel=0.05)
    height = gaussian2d(np.array([1.0, 0.0, 47.3, 49.1, sx, sy, theta]), poly[:, 0], poly[:, 1])
    assert np.abs(height - 0.5).max() < 0.06


def test_refine_counts_refined_and_failed():
    img, box = _blob(8, 8, 0)
    flat = np.array([2.0, 2.0, 14.0, 14.0])  # an empty patch of noise: no Gaussian there
    img[:18, :18] = 30
    det = Detections(np.array([box, flat]), np.array([1, 1]), np.array([0.9, 0.8]), (None, np.array([[3, 3], [12, 3], [12, 12]], float)))
    out, counts = refine_gaussian(img, det)
    assert (counts.refined, counts.failed) == (1, 1)
    assert out.polygons[0] is not None and len(out.polygons[0]) == 72
    assert np.array_equal(out.polygons[1], det.polygons[1])  # a failed fit keeps its outline
    assert counts.as_dict()["refined_fraction"] == 0.5
    _, low = refine_gaussian(img, det, conf=0.85)  # only the measured detections are refined
    assert low.refined + low.failed == 1
