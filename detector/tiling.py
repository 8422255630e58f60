"""Scale-adaptive tiled inference: pure geometry, no model. ``detector.predict`` runs the passes.

``--tile auto`` (the default of predict and evaluate):

1. the model sees the whole image at its input size, as untiled inference does;
2. only *resolved* particles count: confident detections (conf >= ``ESTIMATE_CONF``) whose size at
   the input of the scale that saw them lies inside ``SIZE_BAND`` (the sizes the shipped model was
   trained on). Out-of-band boxes are what the model does badly at that scale (a support grain read
   as one huge particle, texture read as specks), so they neither size nor score;
3. when the whole-image pass is *sure*, it is the answer: the image is run whole. Sure means that
   the confident particles (conf >= ``SURE_CONF``) are at least half of the resolved ones, and either
   number at least ``SURE_PARTICLES``, or (a sparse frame) number at least ``MIN_ESTIMATE`` with their
   median within one ``VOTE_STEP`` of ``VOTE_TARGET_PX``, where the vote could not move them further
   than a step;
4. otherwise a *scale vote*: the model also sees the image at a ladder of scales ``VOTE_STEP`` apart,
   down to 1/``VOTE_STEP``^``VOTE_SHRINK_STEPS`` of the whole-image scale and up to ``MAX_UPSCALE`` of
   the original pixels, coarser scales first, stopping in each direction after ``VOTE_PATIENCE``
   steps without a better score than the best so far (none count while no scale has resolved any). A scale's score is the summed confidence of its resolved particles per unit of image area:
   the scale where the model is most sure of the most particles. A scale larger than the model input
   is seen through at most ``VOTE_TILES`` of its tiles, spread evenly over the image; smaller ones
   in one pass at their own size (cheaper than padding them);
5. the winning scale's resolved particles give the median size, and the image is resized so that it
   lands on ``VOTE_TARGET_PX`` at the model input (kept whole when that is within half a ladder step of
   the whole-image scale); when the resized image is larger than the model input it is sliced into
   overlapping ``imgsz`` tiles whose overlap exceeds the expected largest particle. The target lies
   above the band's geometric centre because the detected particles of a frame are its larger ones:
   their median overstates the median particle; 48 px was chosen on the dev benchmark
   (``bench/dev_score.py``; 32/40/48/56 px were tried, see the README).

``--tile PIXELS`` slices the image as it is (no resize) into tiles of that size, resized to the model
input; ``--tile off`` is plain whole-image inference.

Merging: a detection whose box touches a tile edge that is inside the image (not the image border)
is dropped: it may be a part of a particle cut by the tile, and the overlap is chosen so that the
whole particle lies inside a neighbouring tile. The whole detections of overlapping tiles are then
merged by class-agnostic non-maximum suppression, so a particle gives one detection, never two or
a half.

Particles: what is counted and measured (``detector predict``'s table, ``evaluate``'s counts and sizes)
is ``one_per_particle``: the detections at or above the confidence cut, where one overlapping a more
confident one by IoU > ``MERGE_IOU`` is the same particle, whatever its class. The model's own NMS is
per class, so a particle it half believes to be a cube and half a sphere otherwise comes out twice;
mAP still ranks every detection.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from synthgen.annotations import Detections
from synthgen.errors import InputError

SIZE_BAND = (14.0, 80.0)  # particle sizes (px at the model input) handled without rescaling
VOTE_TARGET_PX = 48.0  # where the vote's median particle is moved to (see module doc)
MAX_UPSCALE = 2.0  # no more than this magnification of the micrograph: beyond it substrate texture
# reads as confident specks that outvote the particles (4 -> 2 on bench/dev_score.py: see the README)
ESTIMATE_CONF = 0.25  # detections trusted for the size estimate
SURE_CONF = 0.5  # detections this confident make a whole-image pass sure ...
SURE_PARTICLES = 8  # ... when there are this many of them (and half of the resolved ones)
MIN_ESTIMATE = 4  # fewer resolved detections than this say nothing about the size
VOTE_STEP = math.sqrt(2.0)  # ratio of neighbouring scales of the vote
VOTE_SHRINK_STEPS = 4  # the vote looks down to 1/VOTE_STEP**4 = 1/4 of the whole-image scale
VOTE_PATIENCE = 2  # steps without a better score that end the vote in one direction
VOTE_TILES = 6  # tiles seen per vote scale; a finer scale samples its grid evenly
OVERLAP_PARTICLES = 3.0  # tile overlap in units of the median particle size (the largest ~3x median)
EDGE_PX = 2.0  # a box within this of an inner tile edge counts as cut by it
MERGE_IOU = 0.5  # whole detections of two tiles overlapping more than this are one particle


@dataclass(frozen=True)
class TilePlan:
    """How an image is run: resized by `scale`, then whole (`tile` None) or in overlapping tiles."""

    scale: float = 1.0
    tile: int | None = None  # tile side in px of the resized image
    overlap: int = 0
    reason: str = "whole image"

    @property
    def rescaled(self) -> bool:
        return self.tile is not None or abs(self.scale - 1.0) > 1e-9


def parse_tile(value: str) -> str | int:
    """``auto``, ``off`` or a tile size in pixels (>= 32)."""
    v = str(value).strip().lower()
    if v in ("auto", "off"):
        return v
    try:
        n = int(v)
    except ValueError:
        raise InputError(f"--tile must be auto, off or a tile size in pixels, got {value!r}") from None
    if n < 32:
        raise InputError(f"--tile size must be at least 32 px, got {n}")
    return n


def _confident_diameters(det: Detections, min_conf: float) -> tuple[np.ndarray, np.ndarray]:
    """Which detections have conf >= min_conf (all, without confidences), and each one's sqrt(w*h)."""
    conf = det.confidence if det.confidence is not None else np.ones(len(det))
    wh = det.wh.astype(np.float64)
    return conf >= min_conf, np.sqrt(np.clip(wh[:, 0] * wh[:, 1], 0, None))


def median_size(det: Detections, min_conf: float = 0.0) -> tuple[float, int]:
    """Median equivalent diameter sqrt(w*h) of detections with conf >= min_conf, and their number."""
    if len(det) == 0:
        return float("nan"), 0
    keep, size = _confident_diameters(det, min_conf)
    if not keep.any():
        return float("nan"), 0
    return float(np.median(size[keep])), int(keep.sum())


def resolved(det: Detections, scale: float, min_conf: float = ESTIMATE_CONF) -> Detections:
    """The confident detections (original px) whose size at the input of `scale` lies in SIZE_BAND."""
    if len(det) == 0:
        return det
    keep, size = _confident_diameters(det, min_conf)
    return det[keep & (size * scale >= SIZE_BAND[0]) & (size * scale <= SIZE_BAND[1])]


def is_sure(first: Detections, fit: float) -> bool:
    """The whole-image pass (seen at scale `fit`) settles the scale without a vote (module doc, step 3)."""
    res = resolved(first, fit)
    size, n = median_size(res, SURE_CONF)  # of the confident ones
    if n < MIN_ESTIMATE or n < 0.5 * len(res):
        return False
    if n >= SURE_PARTICLES:
        return True
    # a sparse frame: sure where the vote could move it by at most a step
    return VOTE_TARGET_PX / VOTE_STEP <= size * fit <= VOTE_TARGET_PX * VOTE_STEP


def vote_scales(fit: float) -> tuple[list[float], list[float]]:
    """The vote's ladder around the whole-image scale `fit`: (coarser scales, finer scales), nearest first."""
    down = [fit / VOTE_STEP**k for k in range(1, VOTE_SHRINK_STEPS + 1)]
    up = []
    s = fit * VOTE_STEP
    while s <= MAX_UPSCALE * 1.0001:
        up.append(s)
        s *= VOTE_STEP
    return down, up


def vote_score(det: Detections, scale: float, area_px: float) -> float:
    """Summed confidence of the particles resolved at `scale`, per million original pixels of `area_px`."""
    res = resolved(det, scale)
    total = float(res.confidence.sum()) if len(res) and res.confidence is not None else float(len(res))
    return 1e6 * total / max(area_px, 1.0)


def vote_winner(scores: dict[float, float], resolved_counts: dict[float, int]) -> float | None:
    """The scale with the best score among those resolving at least MIN_ESTIMATE particles (ties: the
    coarser, cheaper one), or None when no scale resolves that many."""
    ok = [s for s in scores if resolved_counts[s] >= MIN_ESTIMATE]
    return max(ok, key=lambda s: (scores[s], -s)) if ok else None


def sampled_windows(windows: list[tuple[int, int, int, int]], n: int) -> list[tuple[int, int, int, int]]:
    """At most `n` of a tile grid's windows, spread evenly over the grid (an unbiased sample of its area)."""
    if len(windows) <= n:
        return list(windows)
    pick = np.unique(np.round(np.linspace(0, len(windows) - 1, n)).astype(int))
    return [windows[i] for i in pick]


def union_area(windows: list[tuple[int, int, int, int]]) -> float:
    """Area in px covered by the (x0, y0, x1, y1) windows together."""
    if not windows:
        return 0.0
    xs = sorted({v for w in windows for v in (w[0], w[2])})
    ys = sorted({v for w in windows for v in (w[1], w[3])})
    covered = np.zeros((len(ys) - 1, len(xs) - 1), bool)
    for x0, y0, x1, y1 in windows:
        covered[ys.index(y0) : ys.index(y1), xs.index(x0) : xs.index(x1)] = True
    return float((np.diff(ys)[:, None] * np.diff(xs)[None, :] * covered).sum())


def plan_vote(size_px: float, height: int, width: int, imgsz: int) -> TilePlan:
    """The plan after a scale vote whose winning scale's particles measure `size_px` (median, image px)."""
    long_side = max(height, width)
    fit = imgsz / long_side
    scale = min(VOTE_TARGET_PX / size_px, MAX_UPSCALE)
    if abs(math.log(scale / fit)) <= 0.5 * math.log(VOTE_STEP):
        return TilePlan(reason=f"vote: particles ~{size_px * fit:.0f} px at the model input: whole image")
    plan = resize_plan(scale, size_px, long_side, imgsz)
    return TilePlan(plan.scale, plan.tile, plan.overlap, f"vote: {plan.reason}")


def resize_plan(scale: float, size_px: float, long_side: int, imgsz: int) -> TilePlan:
    """Resize by `scale`; one padded pass when the result fits the model input, overlapping tiles otherwise."""
    if long_side * scale <= imgsz:
        return TilePlan(scale, None, 0, f"particles ~{size_px:.0f} px: resized x{scale:.2f}, one pass")
    overlap = int(min(imgsz // 2, math.ceil(OVERLAP_PARTICLES * size_px * scale)))
    return TilePlan(scale, imgsz, overlap, f"particles ~{size_px:.0f} px: resized x{scale:.2f}, {imgsz}-px tiles")


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets along one axis: tiles of `tile` px, consecutive ones overlapping >= `overlap`.

    The last tile ends at the border (it is never cut short), so every tile has the full size when
    the axis is at least `tile` long; a shorter axis gets one tile at 0.
    """
    if length <= tile:
        return [0]
    step = tile - overlap
    if step <= 0:
        raise ValueError(f"overlap {overlap} must be smaller than the tile {tile}")
    n = math.ceil((length - tile) / step) + 1
    # spread the tiles evenly: the overlap only grows
    return [round(i * (length - tile) / (n - 1)) for i in range(n)]


def tile_grid(height: int, width: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """(x0, y0, x1, y1) of every tile covering a height x width image."""
    return [
        (x, y, min(x + tile, width), min(y + tile, height))
        for y in tile_starts(height, tile, overlap)
        for x in tile_starts(width, tile, overlap)
    ]


def inner_edge_cut(xyxy: np.ndarray, window: tuple[int, int, int, int], height: int, width: int, edge: float = EDGE_PX) -> np.ndarray:
    """Boolean per box (image coordinates): touches an edge of `window` that lies inside the image."""
    x0, y0, x1, y1 = window
    cut = np.zeros(len(xyxy), bool)
    if x0 > 0:
        cut |= xyxy[:, 0] <= x0 + edge
    if y0 > 0:
        cut |= xyxy[:, 1] <= y0 + edge
    if x1 < width:
        cut |= xyxy[:, 2] >= x1 - edge
    if y1 < height:
        cut |= xyxy[:, 3] >= y1 - edge
    return cut


def _agnostic_nms(xyxy: np.ndarray, conf: np.ndarray, iou: float) -> np.ndarray:
    """Indices of the boxes kept by non-maximum suppression over all classes at once (torchvision)."""
    import torch
    from torchvision.ops import nms

    return nms(torch.as_tensor(xyxy, dtype=torch.float64), torch.as_tensor(conf, dtype=torch.float64), iou).numpy()


def merge_tiles(
    per_tile: list[Detections],
    windows: list[tuple[int, int, int, int]],
    height: int,
    width: int,
    iou: float = MERGE_IOU,
    edge: float = EDGE_PX,
) -> Detections:
    """One set of detections from tiles: shift to image coordinates, drop edge-cut boxes, merge duplicates.

    Coordinates are those of the (possibly resized) image the tiles were cut from; `per_tile[i]` is in
    the coordinates of tile `windows[i]`.
    """
    boxes, classes, confs, polys = [], [], [], []
    for det, win in zip(per_tile, windows):
        if len(det) == 0:
            continue
        xyxy = det.xyxy.astype(np.float64) + np.array([win[0], win[1], win[0], win[1]], np.float64)
        keep = ~inner_edge_cut(xyxy, win, height, width, edge)
        boxes.append(xyxy[keep])
        classes.append(det.class_id[keep])
        confs.append((det.confidence if det.confidence is not None else np.ones(len(det)))[keep])
        tile_polys = det.polygons if det.polygons is not None else (None,) * len(det)
        polys.extend(None if p is None else p + [win[0], win[1]] for p, k in zip(tile_polys, keep) if k)
    if not boxes or sum(len(b) for b in boxes) == 0:
        return Detections.empty(with_confidence=True)
    xyxy, cls, conf = np.concatenate(boxes), np.concatenate(classes), np.concatenate(confs)
    keep = np.sort(_agnostic_nms(xyxy, conf, iou))
    outlines = tuple(polys[i] for i in keep) if any(p is not None for p in polys) else None
    return Detections(xyxy[keep], cls[keep], conf[keep], outlines)


def one_per_particle(det: Detections, conf: float, iou: float = MERGE_IOU) -> np.ndarray:
    """Which detections are counted as particles (a boolean mask): conf >= `conf`, less those
    overlapping a more confident counted one by IoU > `iou`, any class. Boxes without confidences
    (labels) all count: nothing says which of two is the particle."""
    if det.confidence is None:
        return np.ones(len(det), bool)
    keep = det.confidence >= conf
    if keep.sum() < 2:
        return keep
    idx = np.flatnonzero(keep)
    kept = _agnostic_nms(det.xyxy[idx], det.confidence[idx], iou)
    out = np.zeros(len(det), bool)
    out[idx[kept]] = True
    return out


def scale_detections(det: Detections, factor: float) -> Detections:
    """Boxes divided by `factor`: from a resized image back to the original's pixels."""
    if len(det) == 0 or factor == 1.0:
        return det
    polys = None if det.polygons is None else tuple(None if p is None else p / factor for p in det.polygons)
    return Detections(det.xyxy.astype(np.float64) / factor, det.class_id, det.confidence, polys)
