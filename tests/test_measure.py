"""detector.measure: drawn shapes of known area / Feret / edge, threshold masks inside boxes, statistics."""

from __future__ import annotations

import math

import cv2
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.measure import bootstrap_ci, measure, particle_size, threshold_mask
from synthgen.instance_masks import ParticleMask


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 60), st.integers(2, 60), st.integers(0, 30), st.integers(0, 30))
def test_axis_aligned_rectangle_measures_exactly(w, h, x0, y0):
    m = measure(ParticleMask(x0 + 1, y0 + 1, np.ones((h, w), bool)), 200, 200)
    assert m.area_px == w * h
    assert math.isclose(m.feret_max_px, math.hypot(w, h), rel_tol=1e-6)
    assert math.isclose(m.feret_min_px, min(w, h), rel_tol=1e-6)
    assert math.isclose(m.rect_long_px, max(w, h), rel_tol=1e-4) and math.isclose(m.rect_short_px, min(w, h), rel_tol=1e-4)
    assert not m.touches_border
    if w == h:
        assert math.isclose(particle_size(m, "cube"), w, rel_tol=1e-4)


@settings(max_examples=40, deadline=None)
@given(st.integers(8, 40), st.floats(0, 90))
def test_rotated_square_edge_and_disc_ecd(edge, angle):
    img = np.zeros((128, 128), np.uint8)
    pts = cv2.boxPoints(((64, 64), (edge, edge), angle))
    cv2.fillPoly(img, [np.round(pts * 16).astype(np.int32)], 1, shift=4)
    m = measure(ParticleMask(0, 0, img.astype(bool)), 128, 128)
    assert abs(m.area_px - edge * edge) <= 4 * edge  # rasterisation: within a pixel of the outline
    # fillPoly also paints the outline pixels: the drawn square is up to ~1 px wider than `edge`
    assert abs(particle_size(m, "cube") - math.sqrt(m.area_px)) <= 1.5
    disc = np.zeros((128, 128), np.uint8)
    cv2.circle(disc, (64, 64), edge, 1, -1)
    d = measure(ParticleMask(0, 0, disc.astype(bool)), 128, 128)
    assert abs(d.ecd_px - 2 * edge) <= 1.5 and d.circularity > 0.75
    assert abs(d.feret_max_px - d.feret_min_px) <= 2


def test_touches_border():
    mask = np.ones((5, 5), bool)
    assert measure(ParticleMask(0, 10, mask), 50, 50).touches_border
    assert measure(ParticleMask(45, 10, mask), 50, 50).touches_border
    assert not measure(ParticleMask(44, 10, mask), 50, 50).touches_border


def test_threshold_mask_finds_bright_and_dark_particles_in_their_boxes():
    rng = np.random.default_rng(0)
    for fg, bg in ((200, 40), (40, 200)):
        img = rng.normal(bg, 8, (100, 100)).clip(0, 255).astype(np.uint8)
        cv2.circle(img, (50, 50), 15, fg, -1)
        truth = np.zeros((100, 100), np.uint8)
        cv2.circle(truth, (50, 50), 15, 1, -1)
        pm = threshold_mask(img, np.array([34.0, 34.0, 67.0, 67.0]))
        got = pm.full(100, 100)
        iou = (got & truth.astype(bool)).sum() / (got | truth.astype(bool)).sum()
        assert iou > 0.9


def test_bootstrap_ci_brackets_the_mean():
    v = np.random.default_rng(1).normal(10, 2, 200)
    lo, hi = bootstrap_ci(v)
    assert lo < v.mean() < hi and hi - lo < 1.5
    assert all(math.isnan(x) for x in bootstrap_ci(np.array([1.0])))
