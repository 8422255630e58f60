"""Instance masks and outlines: mask <-> polygon round trip, Detections carrying polygons, masks/ beside
images/ mapped onto label lines, and `build-dataset --task segment` writing ultralytics outline labels."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from detector.cli import app
from synthgen.annotations import Detections
from synthgen.formats import read_labelled_folder
from synthgen.instance_masks import ParticleMask, gt_mask_values, mask_polygon, rasterize, sample_masks, sample_polygons

W, H = 96, 64
# (class, x0, y0, x1, y1): a rectangle cube and a disc sphere
SHAPES = [(0, 10, 12, 34, 30), (1, 50, 20, 80, 50)]


def _instance_mask() -> np.ndarray:
    m = np.zeros((H, W), np.uint16)
    c, x0, y0, x1, y1 = SHAPES[0]
    m[y0:y1, x0:x1] = 1
    cv2.circle(m, (65, 35), 14, 2, -1)
    return m


def _write_set(root: Path, lines: str | None = None, stems=("a",)) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "masks").mkdir()
    m = _instance_mask()
    img = np.where(m > 0, 200, 40).astype(np.uint8)
    for stem in stems:
        cv2.imwrite(str(root / "images" / f"{stem}.png"), img)
        cv2.imwrite(str(root / "masks" / f"{stem}.png"), m)
    if lines is None:
        rows = []
        for v in (1, 2):
            ys, xs = np.nonzero(m == v)
            x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
            rows.append(f"{v - 1} {(x0 + x1) / 2 / W:.6f} {(y0 + y1) / 2 / H:.6f} {(x1 - x0) / W:.6f} {(y1 - y0) / H:.6f}")
        lines = "\n".join(rows) + "\n"
    for stem in stems:
        (root / "labels" / f"{stem}.txt").write_text(lines)
    return root


@st.composite
def blobs(draw):
    """A mask of one part without holes: a filled rotated rectangle or ellipse."""
    w, h = draw(st.integers(3, 40)), draw(st.integers(3, 40))
    angle = draw(st.floats(0, 180))
    kind = draw(st.sampled_from(["rect", "ellipse"]))
    img = np.zeros((64, 64), np.uint8)
    if kind == "rect":
        pts = cv2.boxPoints(((32, 32), (w, h), angle)).astype(np.int32)
        cv2.fillPoly(img, [pts], 1)
    else:
        cv2.ellipse(img, (32, 32), (w // 2, h // 2), angle, 0, 360, 1, -1)
    n, lab = cv2.connectedComponents(img, connectivity=8)
    if n > 2:  # keep the largest part
        sizes = np.bincount(lab.ravel())[1:]
        img = (lab == 1 + sizes.argmax()).astype(np.uint8)
    return img.astype(bool)


@settings(max_examples=60, deadline=None)
@given(blobs(), st.integers(-5, 5), st.integers(-5, 5))
@example(np.ones((1, 1), bool), 0, 0)
def test_mask_polygon_rasterize_round_trip(mask, dx, dy):
    pm = ParticleMask(10 + dx, 10 + dy, mask)
    poly = mask_polygon(pm)
    back = rasterize(poly)
    a, b = pm.full(100, 100), back.full(100, 100)
    assert (a == b).all()


def test_detections_carry_polygons_through_subsets_and_merge():
    sq = np.array([[0, 0], [4, 0], [4, 4], [0, 4]], float)
    d = Detections(np.array([[0, 0, 4, 4], [1, 1, 5, 5], [2, 2, 6, 6]]), np.array([0, 1, 0]), np.ones(3), (sq, None, sq + 2))
    sub = d[np.array([True, False, True])]
    assert len(sub.polygons) == 2 and np.allclose(sub.polygons[1], sq + 2)
    assert d[1].polygons == (None,)
    assert d[1:].polygons[0] is None
    merged = Detections.merge([d, Detections(np.array([[0, 0, 1, 1]]), np.array([1]), np.ones(1))])
    assert len(merged.polygons) == 4 and merged.polygons[3] is None
    assert Detections.merge([d[[0]], d[[0]]]).polygons is not None
    assert Detections(np.zeros((2, 4)), np.zeros(2)).polygons is None


def test_masks_beside_images_map_onto_label_lines(tmp_path):
    root = _write_set(tmp_path / "set")
    (s,) = read_labelled_folder(root)
    assert s.mask_path == root / "masks" / "a.png"
    masks = sample_masks(s)
    m = _instance_mask()
    assert [pm.area for pm in masks] == [int((m == 1).sum()), int((m == 2).sum())]
    polys = sample_polygons(s)
    assert all(p is not None and len(p) >= 4 for p in polys)


def test_mask_values_matched_by_box_when_lines_were_skipped():
    m = _instance_mask()
    # three values in the mask, two labelled boxes (line of value 1 missing): matched by box IoU
    m3 = m.copy()
    m3[m == 2] = 3
    m3[m == 1] = 2
    m3[0:3, 0:3] = 1
    gt = np.array([[10, 12, 34, 30], [51, 21, 80, 50]], float)
    assert gt_mask_values(m3, gt) == [2, 3]
    assert gt_mask_values(m, gt) == [1, 2]


def test_build_dataset_segment_writes_outlines(tmp_path):
    root = _write_set(tmp_path / "real", stems=("a", "b"))
    out = tmp_path / "ds"
    r = CliRunner().invoke(app, ["build-dataset", "--real", str(root), "--task", "segment", "--split", "0.5,0.5", "--out", str(out)])
    assert r.exit_code == 0, r.output
    texts = [p.read_text() for p in out.glob("*/labels/*.txt")]
    lines = [ln.split() for t in texts for ln in t.splitlines()]
    assert len(lines) == 4
    for ln in lines:
        xy = np.array(ln[1:], float).reshape(-1, 2)
        assert len(xy) >= 4 and ((0 <= xy) & (xy <= 1)).all()
    # the cube's outline is its rectangle through boundary pixel centres: 23 x 17 px apart
    cube = next(np.array(ln[1:], float).reshape(-1, 2) * [W, H] for ln in lines if ln[0] == "0")
    assert np.allclose(cube.min(0), [10.5, 12.5], atol=1e-3) and np.allclose(cube.max(0), [33.5, 29.5], atol=1e-3)
    # the default stays box labels
    out2 = tmp_path / "ds2"
    r = CliRunner().invoke(app, ["build-dataset", "--real", str(root), "--split", "0.5,0.5", "--out", str(out2)])
    assert r.exit_code == 0, r.output
    assert all(len(ln.split()) == 5 for p in out2.glob("*/labels/*.txt") for ln in p.read_text().splitlines())


def _edge_outline(pm: ParticleMask) -> np.ndarray:
    """The outline of a mask along its pixels' edges (the other convention: synthgen's footprints)."""
    import shapely

    ys, xs = np.nonzero(pm.mask)
    cells = shapely.box(xs + pm.x0, ys + pm.y0, xs + pm.x0 + 1, ys + pm.y0 + 1)
    merged = shapely.union_all(cells)
    if merged.geom_type != "Polygon":  # parts touching at a corner only: the largest
        merged = max(merged.geoms, key=lambda g: g.area)
    return np.asarray(merged.exterior.coords)[:-1]


@settings(max_examples=60, deadline=None)
@given(blobs(), st.integers(-5, 5), st.integers(-5, 5))
@example(np.ones((1, 1), bool), 0, 0)
@example(np.ones((3, 7), bool), 0, 0)
def test_both_outline_conventions_rasterise_to_the_same_pixels(mask, dx, dy):
    """Through the boundary pixels' centres or along their edges: the same pixels, area and ECD."""
    import shapely

    from detector.measure import measure

    pm = ParticleMask(10 + dx, 10 + dy, mask)
    edge = _edge_outline(pm)
    if shapely.Polygon(edge).area != mask.sum():  # parts joined at a corner: the edge outline keeps one
        return
    centre = mask_polygon(pm)
    a, b, c = pm.full(100, 100), rasterize(centre).full(100, 100), rasterize(edge).full(100, 100)
    assert (a == b).all() and (a == c).all()
    assert shapely.Polygon(edge).area == a.sum()  # the edge outline's area is the pixel count
    ma, mc = measure(pm, 100, 100), measure(rasterize(edge), 100, 100)
    assert ma.area_px == mc.area_px and ma.ecd_px == mc.ecd_px


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 30), st.integers(1, 30), st.integers(0, 20), st.integers(0, 20))
@example(1, 1, 0, 0)
def test_axis_aligned_rectangle_outline_on_pixel_edges_rasterises_exactly(w, h, x0, y0):
    """A w x h rectangle with corners on pixel corners covers w*h pixels, its ECD sqrt(4wh/pi);
    fillPoly would also paint a pixel beyond each edge."""
    pm = rasterize(np.array([[x0, y0], [x0 + w, y0], [x0 + w, y0 + h], [x0, y0 + h]], float))
    assert pm.area == w * h and (pm.x0, pm.y0, pm.mask.shape) == (x0, y0, (h, w))


@settings(max_examples=80, deadline=None)
@given(st.floats(2.0, 40.0), st.floats(0.0, 1.0), st.floats(0.0, 1.0))
@example(2.0, 0.5, 0.5)
@example(3.0, 0.0, 0.0)
def test_disc_outline_rasterises_to_its_area(r, fx, fy):
    """A continuous disc covers pi r^2 pixels to within a fraction of its perimeter (any centre)."""
    import shapely

    from detector.measure import measure

    disc = np.asarray(shapely.Point(50 + fx, 50 + fy).buffer(r, quad_segs=64).exterior.coords)
    pm = rasterize(disc)
    assert abs(pm.area - np.pi * r * r) <= 0.25 * 2 * np.pi * r + 1
    assert abs(measure(pm, 200, 200).ecd_px - 2 * r) <= 0.5 + 1 / (np.pi * r)  # the area's bound, as a diameter
