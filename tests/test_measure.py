"""detector.measure: drawn shapes of known area / Feret / edge, threshold masks inside boxes, statistics."""

from __future__ import annotations

import math

import cv2
import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from detector.measure import EDGE_LEVEL, bootstrap_ci, measure, particle_size, threshold_mask, with_threshold_outlines
from synthgen.annotations import Detections
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
        box = np.array([34.0, 34.0, 67.0, 67.0])
        got = threshold_mask(img, box, level=0.5).full(100, 100)
        iou = (got & truth.astype(bool)).sum() / (got | truth.astype(bool)).sum()
        assert iou > 0.9
        # the default level runs at the foot of the edge: every particle pixel, at most a pixel more all round
        foot = threshold_mask(img, box).full(100, 100)
        assert (foot & truth.astype(bool)).sum() >= 0.98 * truth.sum()
        assert foot.sum() <= (cv2.dilate(truth, np.ones((3, 3), np.uint8)) > 0).sum()


def test_bootstrap_ci_brackets_the_mean():
    v = np.random.default_rng(1).normal(10, 2, 200)
    lo, hi = bootstrap_ci(v)
    assert lo < v.mean() < hi and hi - lo < 1.5
    assert all(math.isnan(x) for x in bootstrap_ci(np.array([1.0])))


def _disc_image(size, discs, blur, fg, bg, seed=0):
    """Discs (cx, cy, r) drawn with exact area coverage (8x supersampled), blurred, on a background."""
    ss = 8
    yy, xx = (np.mgrid[0 : size * ss, 0 : size * ss] + 0.5) / ss
    cover = np.zeros((size * ss, size * ss), bool)
    for cx, cy, r in discs:
        cover |= (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    frac = cover.reshape(size, ss, size, ss).mean(axis=(1, 3))
    img = bg + (fg - bg) * frac
    if blur > 0:
        img = cv2.GaussianBlur(img, (0, 0), blur)
    return (img + np.random.default_rng(seed).normal(0, 2, img.shape)).clip(0, 255).astype(np.uint8)


@settings(max_examples=40, deadline=None)
@given(st.floats(6, 30), st.floats(0.3, 2.0), st.booleans(), st.floats(0, 1), st.floats(0, 1))
@example(6.0, 2.0, False, 0.5, 0.5)
def test_threshold_mask_at_half_height_recovers_a_blurred_disc(r, blur, bright, fx, fy):
    """At level 0.5 the outline is the blurred step's half height: the disc's own edge, less the
    curvature's shrink of a blurred disc (about sigma^2 / r in diameter, sigma including the 0.8 px
    smoothing of threshold_mask); the default level runs nearer the foot of the edge: never smaller,
    about two sigma wider."""
    cx, cy = 50 + fx, 50 + fy
    fg, bg = (200, 50) if bright else (50, 200)
    img = _disc_image(100, [(cx, cy, r)], blur, fg, bg)
    box = np.array([cx - r, cy - r, cx + r, cy + r])
    half = threshold_mask(img, box, level=0.5)
    sigma2 = blur**2 + 0.8**2
    assert half is not None and abs(measure(half, 100, 100).ecd_px - 2 * r) <= 0.6 + sigma2 / r
    foot = threshold_mask(img, box, level=EDGE_LEVEL)
    assert foot is not None and foot.area >= half.area
    assert 0 <= measure(foot, 100, 100).ecd_px - measure(half, 100, 100).ecd_px <= 1.0 + 2.5 * math.sqrt(sigma2)


@settings(max_examples=25, deadline=None)
@given(st.floats(8, 20), st.floats(1.3, 1.9), st.booleans())
@example(10.0, 1.3, True)
@example(12.25, 1.578125, True)
@example(20.0, 1.75, False)
def test_touching_neighbours_are_split_between_their_boxes(r, gap, bright):
    """Two overlapping discs of the same brightness make one blob; with both boxes detected each
    mask keeps its own disc's side and they share next to no pixel; the two together cover the blob.
    Where the two discs merge into a flat plateau nothing marks the seam: OpenCV's flooding order
    lets it bend by a pixel or two and up to a sixth of the radius."""
    d = gap * r
    discs = [(50 - d / 2, 50.3, r), (50 + d / 2, 50.3, r)]
    fg, bg = (200, 50) if bright else (50, 200)
    img = _disc_image(100, discs, 0.8, fg, bg)
    boxes = np.array([[x - r, y - r, x + r, y + r] for x, y, _ in discs])
    out, failed = with_threshold_outlines(img, Detections(boxes, np.array([1, 1]), np.array([0.9, 0.9])), level=0.5)
    assert failed == 0
    from synthgen.instance_masks import rasterize

    left, right = (rasterize(p).full(100, 100) for p in out.polygons)
    yy, xx = np.mgrid[0:100, 0:100] + 0.5
    blob = np.zeros((100, 100), bool)
    for x, y, rr in discs:
        blob |= (xx - x) ** 2 + (yy - y) ** 2 <= rr * rr
    assert (left & right).sum() <= 0.02 * blob.sum()
    # each mask lies on its own side of the contact line (x = 50), give or take the seam
    tol = 1.5 + 0.15 * r
    assert xx[left].max() <= 50 + tol and xx[right].min() >= 50 - tol
    assert abs((left | right).sum() - blob.sum()) <= 0.1 * blob.sum()
    # without the neighbour the left mask reaches into the right disc, as far as its box
    alone = threshold_mask(img, boxes[0], level=0.5).full(100, 100)
    assert xx[alone].max() >= min(boxes[0][2], 50 + 3) - 1
