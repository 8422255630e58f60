"""Placement geometry, labels and rendering agree (hypothesis over random templates and seeds)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from shapely import affinity
from shapely.geometry import Polygon

from synthgen.labels import clipped_box, yolo_lines
from synthgen.placement import PlacementOptions, ShapeTable, linear_part, place_particles
from synthgen.render import footprint_masks, paste, patch_box, patch_boxes, render
from synthgen.templates import make_template, premultiplied

GEOMETRY = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def random_template(rng: np.random.Generator):
    """A grey template: rectangle, ellipse, triangle or C shape (centre outside the footprint) of
    random size; no alpha, so the footprint is derived."""
    h, w = rng.integers(6, 40, size=2)
    img = np.zeros((h + 4, w + 4), np.uint8)
    kind = rng.integers(4)
    yy, xx = np.mgrid[: h + 4, : w + 4]
    if kind == 0:
        img[2 : h + 2, 2 : w + 2] = 200
    elif kind == 1:
        img[((xx - (w + 3) / 2) / (w / 2)) ** 2 + ((yy - (h + 3) / 2) / (h / 2)) ** 2 <= 1] = 200
    elif kind == 2:
        img[(yy >= 2) & (yy < h + 2) & (xx >= 2) & (xx - 2 <= (yy - 2) * w / h)] = 200
    else:
        img[2 : h + 2, 2 : w + 2] = 200
        img[2 + h // 3 : h + 2 - h // 3, 2 + w // 3 :] = 0
    return make_template(img)


templates_st = st.integers(0, 2**32 - 1).map(lambda s: [random_template(np.random.default_rng(s + k)) for k in range(3)])
opts_st = st.builds(
    PlacementOptions,
    max_particles=st.integers(1, 60),
    min_gap=st.sampled_from([0.0, 0.0, 1.5, 4.0]),
    scale_jitter=st.sampled_from([0.0, 0.2]),
    max_failures=st.integers(5, 60),
)


def place(templates, width, height, seed, opts):
    shapes = [t.centred for t in templates]
    return place_particles(shapes, [k % 2 for k in range(len(templates))], width, height, np.random.default_rng(seed), opts)


@GEOMETRY
@given(templates_st, st.integers(60, 200), st.integers(60, 200), st.integers(0, 2**32 - 1), opts_st)
def test_footprints_disjoint_inside_and_exact(templates, width, height, seed, opts):
    placed = place(templates, width, height, seed, opts)
    assert 1 <= len(placed) <= opts.max_particles
    canvas = shapely.box(0, 0, width, height)
    for p in placed:
        t = templates[p.template_index]
        assert canvas.covers(p.footprint)
        # Rotation and scale change the area only by scale^2 ...
        assert p.footprint.area == pytest.approx(t.polygon.area * p.scale**2, rel=1e-9)
        # ... and the footprint is exactly the template polygon under the particle's affine map.
        m = p.matrix(t.size)
        expected = affinity.affine_transform(t.polygon, [m[0, 0], m[0, 1], m[1, 0], m[1, 1], m[0, 2], m[1, 2]])
        assert np.allclose(np.asarray(expected.exterior.coords), np.asarray(p.footprint.exterior.coords), atol=1e-6)
    for a, b in itertools.combinations(placed, 2):
        if opts.min_gap > 0:
            assert a.footprint.distance(b.footprint) > opts.min_gap - 1e-9
        else:
            assert not a.footprint.intersects(b.footprint)


@GEOMETRY
@given(templates_st, st.integers(0, 2**32 - 1))
def test_same_seed_same_placement_and_stop_rules(templates, seed):
    opts = PlacementOptions(max_particles=5)
    a = place(templates, 150, 150, seed, opts)
    b = place(templates, 150, 150, seed, opts)
    assert [(p.template_index, p.angle_deg, p.offset) for p in a] == [(p.template_index, p.angle_deg, p.offset) for p in b]
    assert len(a) == 5  # room for 5 small particles on 150x150: stops at max_particles


@GEOMETRY
@given(templates_st, st.lists(st.floats(0, 360, exclude_max=True), min_size=1, max_size=20), st.floats(0.5, 1.5))
def test_rotated_bounds_match_brute_force(templates, angles, scale):
    """The support-function shortcut gives exactly the bounds of the rotated vertices."""
    table = ShapeTable([t.centred for t in templates])
    ti = np.arange(len(angles)) % len(templates)
    got = table.rotated_bounds(ti, np.array(angles), np.full(len(angles), scale))
    for k, (t, a) in enumerate(zip(ti, angles)):
        xy = templates[t].centred @ linear_part(a, scale).T
        assert np.allclose(got[k], [*xy.min(axis=0), *xy.max(axis=0)], atol=1e-9)


@GEOMETRY
@given(templates_st, st.integers(0, 2**32 - 1), st.sampled_from([0.0, 3.0]), st.sampled_from([0.0, 0.3]))
def test_shortcuts_change_nothing(templates, seed, gap, jitter):
    """The disk and raster shortcuts only skip GEOS calls: with them disabled (every pair left to
    GEOS) the same random stream places exactly the same particles."""
    opts = PlacementOptions(max_particles=150, min_gap=gap, scale_jitter=jitter, max_failures=40)
    fast = place(templates, 150, 120, seed, opts)
    init = ShapeTable.__init__

    def exact_only(self, shapes):
        init(self, shapes)
        self.r_in = np.full_like(self.r_in, -np.inf)
        self.r_out = np.full_like(self.r_out, np.inf)

    ShapeTable.__init__ = exact_only
    try:
        slow = place(templates, 150, 120, seed, opts)
    finally:
        ShapeTable.__init__ = init
    assert [(p.template_index, p.angle_deg, p.offset) for p in fast] == [(p.template_index, p.angle_deg, p.offset) for p in slow]


def test_shortcuts_exact_for_centre_outside_footprint():
    """A C-shaped template has its centre in its notch, where a small particle can sit."""
    c_shape = np.zeros((44, 44), np.uint8)
    c_shape[2:42, 2:42] = 200
    c_shape[15:29, 15:] = 0
    small = np.pad(np.full((6, 6), 200, np.uint8), 2)
    templates = [make_template(c_shape), make_template(small)]
    assert not templates[0].polygon.contains(shapely.Point(22, 22))
    for seed in range(3):
        test_shortcuts_change_nothing.hypothesis.inner_test(templates, seed, 0.0, 0.0)


def test_full_canvas_stops_after_consecutive_failures():
    big = make_template(np.pad(np.full((30, 30), 200, np.uint8), 2))
    placed = place([big], 40, 40, 0, PlacementOptions(max_particles=100, max_failures=50))
    assert len(placed) == 1  # a 30x30 square leaves no room for a second on a 40x40 canvas
    assert place([big], 20, 20, 0, PlacementOptions(max_failures=10)) == []  # never fits


@GEOMETRY
@given(templates_st, st.integers(60, 160), st.integers(60, 160), st.integers(0, 2**32 - 1))
# A C-shaped particle at 335.5 deg whose slot, narrower than 2 px, cv2.fillPoly filled from both sides:
# a painted pixel with its centre 0.1 px outside the footprint and no unpainted neighbour (issue 10).
@example(templates=[random_template(np.random.default_rng(487013 + k)) for k in range(3)], width=60, height=126, seed=234)
def test_yolo_boxes_are_tight_inside_and_cover_rendered_pixels(templates, width, height, seed):
    placed = place(templates, width, height, seed, PlacementOptions(max_particles=25, max_failures=30))
    lines = yolo_lines(placed, width, height)
    assert len(lines) == len(placed)
    for p, line in zip(placed, lines):
        c, cx, cy, w, h = line.split()
        cx, cy, w, h = map(float, (cx, cy, w, h))
        assert int(c) == p.class_id
        assert 0 <= cx - w / 2 + 1e-6 and cx + w / 2 - 1e-6 <= 1 and 0 <= cy - h / 2 + 1e-6 and cy + h / 2 - 1e-6 <= 1
        x0, y0, x1, y1 = p.footprint.bounds  # tight box of the rotated footprint
        assert np.allclose([cx * width, cy * height], [(x0 + x1) / 2, (y0 + y1) / 2], atol=1e-5 * max(width, height))
        assert np.allclose([w * width, h * height], [x1 - x0, y1 - y0], atol=1e-5 * max(width, height))
        # Every pixel painted for this particle has its centre in (or on) the footprint, hence in the box.
        t = templates[p.template_index]
        canvas = np.zeros((height, width), np.uint8)
        paste(canvas, premultiplied(np.full_like(t.grey, 255), t.alpha), p, t.size)
        rows, cols = np.nonzero(canvas)
        assert len(rows) > 0
        assert shapely.intersects_xy(p.footprint, cols + 0.5, rows + 0.5).all()
        assert (cols + 0.5 >= x0).all() and (cols + 0.5 <= x1).all() and (rows + 0.5 >= y0).all() and (rows + 0.5 <= y1).all()
        # ... and the painted area matches the footprint's.
        assert abs(len(rows) - p.footprint.area) <= 0.25 * p.footprint.area + p.footprint.length / 2


@GEOMETRY
@given(templates_st, st.integers(60, 160), st.integers(60, 160), st.integers(0, 2**32 - 1))
def test_footprint_masks_are_the_pixel_centres_inside(templates, width, height, seed):
    """All footprints of a canvas in one pass: a mask pixel is one whose centre lies in (or, within
    rounding, on) its footprint, and every centre clearly inside is in the mask."""
    placed = place(templates, width, height, seed, PlacementOptions(max_particles=25, max_failures=30))
    boxes = [patch_box(p.footprint.bounds, width, height) for p in placed]
    assert patch_boxes([p.footprint for p in placed], width, height) == boxes
    masks = footprint_masks([p.footprint for p in placed], boxes)
    for p, (c0, r0, c1, r1), mask in zip(placed, boxes, masks):
        assert mask.shape == (r1 - r0, c1 - c0) and mask.dtype == bool
        rows, cols = np.mgrid[r0:r1, c0:c1]
        centres = shapely.points(cols + 0.5, rows + 0.5)
        near = shapely.distance(p.footprint.exterior, centres) < 1e-9
        inside = shapely.intersects(p.footprint, centres)
        assert (mask == inside)[~near].all()
    assert footprint_masks([], []) == [] and footprint_masks([Polygon([(0, 0), (1, 0), (0, 1)])], [None]) == [None]


def test_render_background_and_particles():
    t = make_template(np.pad(np.full((10, 10), 200, np.uint8), 3))
    placed = place([t], 80, 60, 3, PlacementOptions(max_particles=4))
    img = render(80, 60, placed, [t], background=17)
    assert img.shape == (60, 80) and img.dtype == np.uint8
    assert (img == 17).mean() > 0.5 and img.max() == 200
    assert (img >= 17).all()


def test_clipped_box_clips_to_image():
    assert clipped_box(Polygon([(-1, -2), (5, 0), (12, 9)]), 10, 8) == (0.0, 0.0, 10.0, 8.0)
