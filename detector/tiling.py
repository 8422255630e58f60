"""Scale-adaptive tiled inference: pure geometry, no model. ``detector.predict`` runs the passes.

``--tile auto`` (the default of predict and evaluate):

1. the model sees the whole image at its input size, as untiled inference does;
2. only *resolved* particles vote: confident detections (conf >= ``ESTIMATE_CONF``) whose size at
   the input of the scale that saw them lies inside ``SIZE_BAND`` (the sizes the shipped model was
   trained on). Out-of-band boxes are what the model does badly at that scale (a support grain read
   as one huge particle, texture read as specks), so they neither size nor count;
3. when the whole-image pass sees at least as many confident particles above the band as inside it,
   those large particles set the size (step 6);
4. unless it already resolves ``SETTLED`` particles, a zoom probe asks whether that scale misses small
   ones: the model also sees ``PROBE_CROPS`` crops (``PROBE_PX`` square at its input), placed where
   the image has the most fine detail (gradient energy), magnified ``ZOOM``x, ``ZOOM``^2x ... more
   (up to ``MAX_UPSCALE`` of the original pixels; ~1.1 of a whole pass a step). A finer scale wins
   when it resolves ``DENSITY_GAIN``x more particles per unit of image area than the best coarser
   one, or ``OTHER_POPULATION_GAIN``x when the best one's particles would be above the band at that
   scale (what it finds is then another, smaller population: specks and texture, or the real
   particles under a few false large boxes, and only a much denser one is believed). Zooming stops
   at ``MAX_UPSCALE`` or once a step sees ``MIN_ESTIMATE`` particles grown above the band;
5. the particle size is the median equivalent diameter of the winning scale's resolved particles;
   when it lies inside ``SIZE_BAND`` at the whole-image input (and no zoom won), the first pass is
   the answer; otherwise the image is resized so the median particle lands on ``TARGET_PX`` at the
   model input and, when the resized image is larger than the model input, sliced into overlapping
   ``imgsz`` tiles whose overlap exceeds the expected largest particle;
6. large particles (step 3, or nothing resolved at any scale): the image is shrunk so their median
   lands on ``TARGET_PX``, in one padded pass; that plan must confirm them: when the shrunk image
   yields fewer than ``SHRINK_CONFIRM`` of the whole-image pass's confident particles, those were
   false (e.g. texture read as a few big particles) and the whole-image result is kept.

``--tile PIXELS`` slices the image as it is (no resize) into tiles of that size, resized to the model
input; ``--tile off`` is plain whole-image inference.

Merging: a detection whose box touches a tile edge that is inside the image (not the image border)
is dropped: it may be a part of a particle cut by the tile, and the overlap is chosen so that the
whole particle lies inside a neighbouring tile. The whole detections of overlapping tiles are then
merged by class-agnostic non-maximum suppression, so a particle gives one detection, never two or
a half.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from synthgen.annotations import Detections
from synthgen.errors import InputError

SIZE_BAND = (14.0, 80.0)  # particle sizes (px at the model input) handled without rescaling
TARGET_PX = 32.0  # where a particle size outside the band is moved to
MAX_UPSCALE = 4.0  # no more than this magnification of the micrograph
ESTIMATE_CONF = 0.25  # detections trusted for the size estimate
SETTLED = 32  # this many resolved particles in the whole-image pass settle the scale without a probe
MIN_ESTIMATE = 4  # fewer confident detections than this say nothing about the size
PROBE_PX = 384  # side of a probe crop at the model input (a multiple of 32): enough area to hold a few sparse particles
PROBE_CROPS = ((0.3, 0.4), (0.7, 0.6))  # probe crop centres, as fractions of width and height
OTHER_POPULATION_GAIN = 4.0  # a zoom past where the best particles outgrow the band must find this x their density
ZOOM = 2.0  # each probe step magnifies this much more
SHRINK_CONFIRM = 0.5  # a shrunk image must re-find at least this share of the large particles
DENSITY_GAIN = 1.5  # a zoom "finds more" when its particles per unit area exceed this x the coarser one
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


def probe_windows(
    height: int, width: int, scale: float, crop_px: int = PROBE_PX, detail: np.ndarray | None = None
) -> list[tuple[int, int, int, int]]:
    """(x0, y0, x1, y1) in original pixels of the probe crops: `crop_px` at the input once scaled by `scale`.

    With `detail` (a map of local image detail, any resolution, e.g. gradient magnitude) the crops go
    where the detail is densest, so sparse particles on a support are probed where they are rather
    than on empty substrate; without it, at the fixed ``PROBE_CROPS`` centres.
    """
    side = max(1, round(crop_px / scale))
    centres = list(PROBE_CROPS) if detail is None else busiest_centres(detail, side / max(height, width), len(PROBE_CROPS))
    out = []
    for fx, fy in centres:
        x0 = int(np.clip(round(fx * width - side / 2), 0, max(0, width - side)))
        y0 = int(np.clip(round(fy * height - side / 2), 0, max(0, height - side)))
        out.append((x0, y0, min(width, x0 + side), min(height, y0 + side)))
    return out


def busiest_centres(detail: np.ndarray, side_frac: float, n: int) -> list[tuple[float, float]]:
    """Centres (fractions of width, height) of `n` windows of `side_frac` x the long side with the most
    total `detail`, greedily, each new one not overlapping those chosen before when there is room."""
    h, w = detail.shape[:2]
    win = max(1, min(round(side_frac * max(h, w)), h, w))
    csum = np.pad(detail.astype(np.float64), ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    sums = csum[win:, win:] - csum[:-win, win:] - csum[win:, :-win] + csum[:-win, :-win]  # window at each top-left
    taken = np.zeros(sums.shape, bool)
    out = []
    for _ in range(n):
        free = np.where(taken, -np.inf, sums)
        y, x = np.unravel_index(int(np.argmax(free)), free.shape)
        out.append(((x + win / 2) / w, (y + win / 2) / h))
        taken[max(0, y - win + 1) : y + win, max(0, x - win + 1) : x + win] = True
        if taken.all():
            taken[:] = False  # no room for a separate window: overlapping ones are allowed
    return out


def resolved(det: Detections, scale: float, min_conf: float = ESTIMATE_CONF) -> Detections:
    """The confident detections (original px) whose size at the input of `scale` lies in SIZE_BAND."""
    if len(det) == 0:
        return det
    keep, size = _confident_diameters(det, min_conf)
    return det[keep & (size * scale >= SIZE_BAND[0]) & (size * scale <= SIZE_BAND[1])]


def oversized_count(det: Detections, scale: float, min_conf: float = ESTIMATE_CONF) -> int:
    """Confident detections larger than SIZE_BAND at the input of `scale`."""
    if len(det) == 0:
        return 0
    keep, size = _confident_diameters(det, min_conf)
    return int((keep & (size * scale > SIZE_BAND[1])).sum())


def density(det: Detections, area_px: float, min_conf: float = ESTIMATE_CONF) -> float:
    """Confident detections per million original pixels."""
    return 1e6 * confident_count(det, min_conf) / max(area_px, 1.0)


def confident_count(det: Detections, min_conf: float = ESTIMATE_CONF) -> int:
    if len(det) == 0 or det.confidence is None:
        return len(det)
    return int((det.confidence >= min_conf).sum())


def consistent_shrink(plan: TilePlan, first: Detections, result: Detections, fit: float) -> bool:
    """False when a plan that shrinks the image below whole-image scale re-finds under
    ``SHRINK_CONFIRM`` of the whole-image pass's confident particles (always True for other plans)."""
    if plan.scale >= fit:
        return True
    return confident_count(result) >= SHRINK_CONFIRM * confident_count(first)


def plan_auto(size_px: float, height: int, width: int, imgsz: int, force: bool = False) -> TilePlan:
    """The plan for an image whose particles measure `size_px` (median, in image px); see module doc.

    `force`: resize to the target even when the size is inside the band (the zoom probe found
    particles that whole-image inference missed).
    """
    long_side = max(height, width)
    fit = imgsz / long_side  # the scale of whole-image inference
    if not math.isfinite(size_px) or size_px <= 0:
        return TilePlan(reason="no particle size found: whole image")
    at_input = size_px * fit
    lo, hi = SIZE_BAND
    if lo <= at_input <= hi and not force:
        return TilePlan(reason=f"particles ~{at_input:.0f} px at the model input: whole image")
    scale = min(TARGET_PX / size_px, MAX_UPSCALE)
    if long_side * scale <= imgsz:  # fits the model input once resized: one pass, padded
        return TilePlan(scale, None, 0, f"particles ~{size_px:.0f} px: resized x{scale:.2f}, one pass")
    overlap = int(min(imgsz // 2, math.ceil(OVERLAP_PARTICLES * TARGET_PX)))
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
    import torch
    from torchvision.ops import nms

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
    keep = nms(torch.as_tensor(xyxy), torch.as_tensor(conf, dtype=torch.float64), iou).numpy()
    keep = np.sort(keep)
    outlines = tuple(polys[i] for i in keep) if any(p is not None for p in polys) else None
    return Detections(xyxy[keep], cls[keep], conf[keep], outlines)


def scale_detections(det: Detections, factor: float) -> Detections:
    """Boxes divided by `factor`: from a resized image back to the original's pixels."""
    if len(det) == 0 or factor == 1.0:
        return det
    polys = None if det.polygons is None else tuple(None if p is None else p / factor for p in det.polygons)
    return Detections(det.xyxy.astype(np.float64) / factor, det.class_id, det.confidence, polys)
