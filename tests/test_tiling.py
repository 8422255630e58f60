"""Tiled, scale-adaptive inference: tile geometry, seam merging, the auto plan, and predict_images end to end
with a stand-in model that finds bright blobs (so seams are tested without training anything)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from detector import tiling
from detector.predict import predict_images
from synthgen.annotations import Detections
from synthgen.errors import InputError


# ------------------------------------------------------------------ tile geometry


@given(length=st.integers(1, 5000), tile=st.integers(32, 1024), frac=st.floats(0.0, 0.45))
def test_tile_starts_cover_the_axis_with_the_overlap(length, tile, frac):
    overlap = int(tile * frac)
    starts = tiling.tile_starts(length, tile, overlap)
    assert starts[0] == 0
    assert min(starts[-1] + tile, length) == length  # the last tile reaches the border
    for a, b in zip(starts, starts[1:]):
        assert a < b and a + tile - b >= overlap  # consecutive tiles overlap at least that much
    if length >= tile:
        assert all(s + tile <= length for s in starts)  # never cut short


def test_parse_tile():
    assert tiling.parse_tile("auto") == "auto" and tiling.parse_tile("OFF") == "off" and tiling.parse_tile("640") == 640
    for bad in ("big", "16", "-3"):
        with pytest.raises(InputError):
            tiling.parse_tile(bad)


# ------------------------------------------------------------------ seams: one whole detection per particle


def _clipped_truth(boxes: np.ndarray, win) -> Detections:
    """What a perfect detector reports on one tile: every particle it sees, clipped to the tile."""
    x0, y0, x1, y1 = win
    c = boxes.copy()
    c[:, [0, 2]] = np.clip(c[:, [0, 2]], x0, x1)
    c[:, [1, 3]] = np.clip(c[:, [1, 3]], y0, y1)
    seen = (c[:, 2] - c[:, 0] > 0) & (c[:, 3] - c[:, 1] > 0)
    c = c[seen] - np.array([x0, y0, x0, y0], np.float64)
    return Detections(c, np.zeros(len(c), np.int64), np.full(len(c), 0.9))


def _particles(draw_seed: int, h: int, w: int, n: int, max_size: int) -> np.ndarray:
    """Non-overlapping square particles (rejection sampling on a grid-free canvas)."""
    rng = np.random.default_rng(draw_seed)
    out = []
    for _ in range(n * 20):
        s = rng.uniform(4, max_size)
        x, y = rng.uniform(0, w - s), rng.uniform(0, h - s)
        b = np.array([x, y, x + s, y + s])
        if all(b[0] >= o[2] + 2 or o[0] >= b[2] + 2 or b[1] >= o[3] + 2 or o[1] >= b[3] + 2 for o in out):
            out.append(b)
        if len(out) == n:
            break
    return np.array(out, np.float64).reshape(-1, 4)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    h=st.integers(100, 900),
    w=st.integers(100, 900),
    tile=st.integers(64, 256),
    n=st.integers(1, 40),
)
@example(seed=0, h=300, w=300, tile=128, n=30)
def test_merged_tiles_give_each_particle_once_and_whole(seed, h, w, tile, n):
    overlap = tile // 3
    boxes = _particles(seed, h, w, n, max_size=overlap - 2 * tiling.EDGE_PX - 1)
    windows = tiling.tile_grid(h, w, tile, overlap)
    merged = tiling.merge_tiles([_clipped_truth(boxes, win) for win in windows], windows, h, w)
    assert len(merged) == len(boxes)  # never two, never lost
    got = merged.xyxy[np.lexsort(merged.xyxy.T[::-1])]
    want = boxes[np.lexsort(boxes.T[::-1])]
    np.testing.assert_allclose(got, want, atol=1e-3)  # never a half


def test_inner_edge_cut_ignores_the_image_border():
    boxes = np.array([[0, 10, 20, 30], [90, 10, 100, 30], [40, 10, 60, 30]], np.float64)
    # a tile at the image's left border: x=0 is the border, x=100 an inner edge
    cut = tiling.inner_edge_cut(boxes, (0, 0, 100, 100), 100, 300)
    assert cut.tolist() == [False, True, False]


@st.composite
def _scored_boxes(draw):
    n = draw(st.integers(0, 25))
    xy = draw(st.lists(st.tuples(st.floats(0, 200), st.floats(0, 200), st.floats(1, 60), st.floats(1, 60)), min_size=n, max_size=n))
    conf = draw(st.lists(st.floats(0, 1), min_size=n, max_size=n))
    cls = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    xyxy = np.array([[x, y, x + bw, y + bh] for x, y, bw, bh in xy], np.float64).reshape(-1, 4)
    return Detections(xyxy, np.array(cls, np.int64), np.array(conf, np.float32))


@settings(max_examples=150, deadline=None)
@given(det=_scored_boxes(), conf=st.floats(0, 1))
@example(  # a particle the model calls both a cube and a sphere: one particle, the more confident call
    det=Detections(np.array([[10, 10, 40, 40], [11, 10, 41, 40]], np.float64), np.array([0, 1]), np.array([0.6, 0.4], np.float32)),
    conf=0.25,
)
def test_one_per_particle_keeps_the_most_confident_of_each_overlap(det, conf):
    from synthgen.annotations import box_iou

    keep = tiling.one_per_particle(det, conf)
    above = det.confidence >= conf
    assert not (keep & ~above).any()  # nothing below the cut
    iou = box_iou(det.xyxy, det.xyxy)
    kept = np.flatnonzero(keep)
    if len(kept) > 1:  # no two counted particles are one
        sub = iou[np.ix_(kept, kept)]
        np.fill_diagonal(sub, 0)
        assert sub.max() <= tiling.MERGE_IOU + 1e-6
    for i in np.flatnonzero(above & ~keep):  # each one dropped is a more (or as) confident one's double
        assert any(iou[i, j] > tiling.MERGE_IOU - 1e-6 and det.confidence[j] >= det.confidence[i] for j in kept)


def test_one_per_particle_takes_labels_as_they_are():
    labels = Detections(np.array([[0, 0, 10, 10], [0, 0, 10, 10]], np.float64), np.array([0, 1]))
    assert tiling.one_per_particle(labels, 0.5).tolist() == [True, True]


# ------------------------------------------------------------------ the auto plan


def test_vote_plan_keeps_a_scale_near_the_target_whole():
    # 48 px at the whole-image input is the target itself; within half a ladder step stays whole too
    assert not tiling.plan_vote(48.0, 512, 512, 512).rescaled
    assert not tiling.plan_vote(48.0 * 1.15, 512, 512, 512).rescaled
    assert tiling.plan_vote(48.0 * 1.3, 512, 512, 512).rescaled


def test_vote_plan_tiles_small_particles_and_shrinks_large_ones():
    small = tiling.plan_vote(30.0, 2048, 2048, 512)  # 7.5 px at the model input
    assert small.tile == 512 and small.scale == pytest.approx(tiling.VOTE_TARGET_PX / 30)
    assert small.overlap >= 2 * tiling.VOTE_TARGET_PX  # the largest particles (~3x median) lie whole in a tile
    large = tiling.plan_vote(200.0, 512, 512, 512)
    assert large.tile is None and large.scale == pytest.approx(tiling.VOTE_TARGET_PX / 200)
    tiny = tiling.plan_vote(2.0, 200, 200, 512)
    assert tiny.scale == tiling.MAX_UPSCALE


# ------------------------------------------------------------------ predict_images end to end


class _Boxes(SimpleNamespace):
    def __len__(self) -> int:
        return len(self.conf)


class BlobModel:
    """Stands in for a YOLO model: finds bright connected blobs; calls squares cubes, discs spheres.

    Records the input shapes so tests can see the tiling; like ultralytics it enlarges a small input to
    imgsz (coordinates are mapped back), which is why predict must pad rather than hand it small images.
    """

    names = {0: "cube", 1: "sphere"}
    overrides = {"imgsz": 128}

    def __init__(self, confidence: float = 0.9):
        self.shapes = []
        self.confidence = confidence  # below tiling.SURE_CONF: the whole-image pass is never sure

    def predict(self, arrays, conf, iou, imgsz, device, max_det, verbose):
        out = []
        for a in arrays:
            self.shapes.append(a.shape[:2])
            f = imgsz / max(a.shape[:2])
            interp = cv2.INTER_AREA if f < 1 else cv2.INTER_NEAREST
            big = cv2.resize(a, None, fx=f, fy=f, interpolation=interp) if f != 1 else a
            grey = cv2.cvtColor(big, cv2.COLOR_BGR2GRAY)
            n, lab, stats, _ = cv2.connectedComponentsWithStats((grey > 128).astype(np.uint8))
            rows = []
            for k in range(1, n):
                x, y, bw, bh, area = stats[k]
                if bw < 6 or bh < 6:  # like a real detector, tiny blobs at the input are missed
                    continue
                cls = 0 if area / (bw * bh) > 0.9 else 1
                rows.append([x / f, y / f, (x + bw) / f, (y + bh) / f, self.confidence, cls])
            r = torch.tensor(rows, dtype=torch.float32).reshape(-1, 6)
            out.append(SimpleNamespace(boxes=_Boxes(xyxy=r[:, :4], conf=r[:, 4], cls=r[:, 5])))
        return out


def _micrograph(tmp_path, h, w, size, seed=0):
    """Dark image with bright squares of `size` px on a jittered grid, many crossing any tile seam."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 20, np.uint8)
    boxes = []
    step = int(size * 1.9)
    for y in range(2, h - size - 2, step):
        for x in range(2, w - size - 2, step):
            x1, y1 = x + int(rng.integers(0, step - size)), y + int(rng.integers(0, step - size))
            if x1 + size >= w - 1 or y1 + size >= h - 1:
                continue
            img[y1 : y1 + size, x1 : x1 + size] = 220
            boxes.append([x1, y1, x1 + size, y1 + size])
    path = tmp_path / "m.png"
    cv2.imwrite(str(path), img)
    return path, np.array(boxes, np.float64)


def _matches(det: Detections, boxes: np.ndarray, tol: float) -> int:
    hit = 0
    for b in boxes:
        d = np.abs(det.xyxy - b).max(axis=1) if len(det) else np.array([np.inf])
        hit += int(d.min() <= tol)
    return hit


def test_auto_tiles_a_large_frame_of_small_particles_without_seam_artefacts(tmp_path):
    path, boxes = _micrograph(tmp_path, 700, 900, size=10)  # 10 px in 900 px: ~1.4 px at 128: missed whole
    model = BlobModel()
    plans = []
    (whole,) = predict_images(model, [path], imgsz=128, tile="off")
    assert len(whole) == 0
    (det,) = predict_images(model, [path], imgsz=128, tile="auto", on_plan=lambda p, plan: plans.append(plan))
    assert plans[0].tile == 128 and plans[0].scale > 1  # the vote's finer scales found the small particles
    assert len(det) == len(boxes)  # one detection per particle, none doubled at a seam
    assert _matches(det, boxes, tol=1.0) == len(boxes)  # and each whole
    later = model.shapes[2:]  # after the two whole-image passes: vote passes, then tiles
    # every input square, a multiple of 32 and passed as its own imgsz: never one ultralytics would enlarge
    assert all(h == w and h % 32 == 0 and h <= 128 for h, w in later)
    assert later.count((128, 128)) >= 4


def test_explicit_tile_size_and_off(tmp_path):
    path, boxes = _micrograph(tmp_path, 400, 500, size=16)
    model = BlobModel()
    (det,) = predict_images(model, [path], imgsz=128, tile=200)
    assert len(det) == len(boxes) and _matches(det, boxes, tol=2.0) == len(boxes)


class TwoClassModel(BlobModel):
    """Every blob twice, once per class at nearly the same box: the model's per-class NMS keeps both."""

    def predict(self, arrays, **kw):
        out = []
        for r in super().predict(arrays, **kw):
            b = r.boxes
            xyxy = torch.cat([b.xyxy, b.xyxy + 0.5])
            conf = torch.cat([b.conf, b.conf * 0.5])
            cls = torch.cat([b.cls, 1 - b.cls])
            out.append(SimpleNamespace(boxes=_Boxes(xyxy=xyxy, conf=conf, cls=cls)))
        return out


def test_predict_gives_one_detection_per_particle_and_every_box_on_request(tmp_path):
    path, boxes = _micrograph(tmp_path, 300, 300, size=30)
    (det,) = predict_images(TwoClassModel(), [path], imgsz=128, tile="off")
    assert len(det) == len(boxes) and (det.class_id == 0).all()  # squares: the confident call is cube
    (every,) = predict_images(TwoClassModel(), [path], imgsz=128, tile="off", every_box=True)
    assert len(every) == 2 * len(boxes)


def test_a_sure_whole_image_pass_is_the_answer(tmp_path):
    path, boxes = _micrograph(tmp_path, 300, 300, size=40)  # 17 px at 128: in the band
    assert len(boxes) >= tiling.SURE_PARTICLES
    model, plans = BlobModel(), []
    (det,) = predict_images(model, [path], imgsz=128, tile="auto", on_plan=lambda p, plan: plans.append(plan))
    assert not plans[0].rescaled and len(model.shapes) == 1  # confident particles in the band: no vote
    assert len(det) == len(boxes)


def _squares(tmp_path, n: int, size: int, side: int = 512):
    """`n` bright squares of `size` px on a grid of a dark `side`-px frame: a sparse micrograph."""
    img = np.full((side, side, 3), 20, np.uint8)
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    gx, gy = (side - cols * size) // (cols + 1), (side - rows * size) // (rows + 1)
    for k in range(n):
        x, y = gx + (k % cols) * (size + gx), gy + (k // cols) * (size + gy)
        img[y : y + size, x : x + size] = 220
    cv2.imwrite(str(tmp_path / "sparse.png"), img)
    return tmp_path / "sparse.png"


@pytest.mark.parametrize("size, sure", [(96, True), (80, True), (40, False), (150, False)])
def test_a_sparse_confident_frame_is_sure_only_near_the_vote_target(tmp_path, size, sure):
    # 5 confident particles, fewer than SURE_PARTICLES: sure when their size at the 256-px input lies
    # within one ladder step of the target (48 and 40 px), voted on when it does not (20 and 75 px)
    path = _squares(tmp_path, 5, size)
    assert tiling.MIN_ESTIMATE <= 5 < tiling.SURE_PARTICLES
    model, plans = BlobModel(), []
    (det,) = predict_images(model, [path], imgsz=256, tile="auto", on_plan=lambda p, plan: plans.append(plan))
    assert (len(model.shapes) == 1) == sure, plans[0].reason
    assert plans[0].reason.startswith("sure") == sure
    assert len(det) == 5


def test_an_unsure_pass_votes_and_keeps_a_scale_that_already_fits(tmp_path):
    # 96 px at 512 -> 48 px at a 256 input: the vote's target, so the vote keeps the whole image
    path, boxes = _micrograph(tmp_path, 512, 512, size=96)
    assert len(boxes) >= tiling.MIN_ESTIMATE
    model, plans = BlobModel(confidence=0.4), []
    (det,) = predict_images(model, [path], imgsz=256, tile="auto", on_plan=lambda p, plan: plans.append(plan))
    assert len(model.shapes) > 1 and plans[0].reason.startswith("vote")  # not sure: the ladder was seen
    assert not plans[0].rescaled and len(det) == len(boxes)


def test_the_vote_shrinks_large_particles_onto_its_target(tmp_path):
    img = np.full((512, 512, 3), 20, np.uint8)
    for x in (20, 280):
        for y in (20, 280):
            img[y : y + 200, x : x + 200] = 220  # 200 px: 100 px at a 256-px input, above the band
    cv2.imwrite(str(tmp_path / "big.png"), img)
    plans = []
    (det,) = predict_images(BlobModel(), [tmp_path / "big.png"], imgsz=256, tile="auto", on_plan=lambda p, plan: plans.append(plan))
    assert plans[0].rescaled and plans[0].tile is None
    assert plans[0].scale == pytest.approx(tiling.VOTE_TARGET_PX / 200, rel=0.05)
    assert len(det) == 4 and _matches(det, np.array([[20, 20, 220, 220]], float), tol=8.0) == 1


def test_corrupt_image_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(InputError, match="cannot read image"):
        list(predict_images(BlobModel(), [bad], imgsz=128))


class OneBigBoxModel(BlobModel):
    """Sees four confident 170-px particles (overlapping, IoU < 0.5) in the full 256-px frame, and
    nothing at any other scale."""

    def predict(self, arrays, conf, iou, imgsz, device, max_det, verbose):
        out = []
        for a in arrays:
            self.shapes.append(a.shape[:2])
            big = [[10.0 + dx, 10.0 + dy, 180.0 + dx, 180.0 + dy, 0.9, 0.0] for dy in (0, 70) for dx in (0, 70)]
            rows = big if a.shape[:2] == (256, 256) else []
            r = torch.tensor(rows, dtype=torch.float32).reshape(-1, 6)
            out.append(SimpleNamespace(boxes=_Boxes(xyxy=r[:, :4], conf=r[:, 4], cls=r[:, 5])))
        return out


def test_large_boxes_no_other_scale_confirms_keep_the_whole_image(tmp_path):
    cv2.imwrite(str(tmp_path / "m.png"), np.full((256, 256, 3), 20, np.uint8))
    model, plans = OneBigBoxModel(), []
    (det,) = predict_images(model, [tmp_path / "m.png"], imgsz=128, tile="auto", on_plan=lambda p, plan: plans.append(plan))
    assert len(model.shapes) > 2  # the ladder was seen (85 px at the input is above the band: not resolved)
    assert not plans[0].rescaled and "too few particles" in plans[0].reason
    assert len(det) == 4 and det.xyxy[0].tolist() == [10.0, 10.0, 180.0, 180.0]


# ------------------------------------------------------------------ the vote's pieces


def test_vote_ladder_reaches_both_ends():
    down, up = tiling.vote_scales(0.25)
    assert down[0] == pytest.approx(0.25 / tiling.VOTE_STEP) and down[-1] == pytest.approx(0.25 / 4)
    assert up[0] == pytest.approx(0.25 * tiling.VOTE_STEP) and up[-1] <= tiling.MAX_UPSCALE * 1.0001
    assert up[-1] * tiling.VOTE_STEP > tiling.MAX_UPSCALE


def test_vote_winner_needs_enough_particles_and_prefers_the_coarser_tie():
    assert tiling.vote_winner({1.0: 5.0, 2.0: 9.0}, {1.0: 10, 2.0: 3}) == 1.0  # 2.0 resolves too few
    assert tiling.vote_winner({1.0: 5.0, 2.0: 5.0}, {1.0: 10, 2.0: 10}) == 1.0
    assert tiling.vote_winner({1.0: 5.0}, {1.0: 1}) is None


def test_vote_score_counts_only_resolved_particles_per_area():
    det = Detections(np.array([[0, 0, 20, 20], [0, 0, 200, 200], [0, 0, 2, 2], [0, 0, 30, 30]], float),
                     np.zeros(4, np.int64), np.array([0.8, 0.9, 0.9, 0.1]))  # fmt: skip
    # at scale 1 only the 20-px box is in the band and confident
    assert tiling.vote_score(det, 1.0, 2e6) == pytest.approx(0.4)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 60), st.integers(1, 40), st.integers(1, 40)), min_size=0, max_size=6))
def test_union_area_equals_the_painted_pixels(rects):
    windows = [(x, y, x + w, y + h) for x, y, w, h in rects]
    canvas = np.zeros((100, 100), bool)
    for x0, y0, x1, y1 in windows:
        canvas[y0:y1, x0:x1] = True
    assert tiling.union_area(windows) == canvas.sum()


@given(st.integers(1, 60), st.integers(1, 12))
def test_sampled_windows_spread_over_the_grid(n_windows, n):
    windows = [(i, 0, i + 1, 1) for i in range(n_windows)]
    pick = tiling.sampled_windows(windows, n)
    assert len(pick) == min(n, n_windows) and len(set(pick)) == len(pick)
    if n_windows > 1 and n > 1:
        assert pick[0] == windows[0] and pick[-1] == windows[-1]  # both ends of the grid are seen
