"""Masks and sizes against ground truth: mask mAP (pycocotools ``segm``), size accuracy and KS per class.

Ground-truth masks come from the set (``synthgen.instance_masks.sample_masks``: a ``masks/`` instance
image beside ``images/``, else the labels' polygons); predicted masks from the detections' outlines (a
segmentation model's, or the threshold fallback of ``detector.measure`` for a box-only one). A particle
without a mask (a labelled box with no outline, a detection whose threshold mask failed) takes its box
as its mask for the mAP and is left out of the sizes.

Size accuracy (Okunev 2020, Table 4) compares the two *populations*, as a scientist would: the mean
ECD of every predicted particle (confidence >= conf) over the mean ECD of every labelled particle of
the class, each without the particles that touch the image border (unless ``include_border``).
``matched_accuracy`` is the same ratio over the pairs matched by box IoU >= 0.5, which separates the
measurement's error from the detection's (missed or extra particles). KS is the two-sample
Kolmogorov-Smirnov distance between the two ECD distributions.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from detector.measure import Measurement, measure
from detector.metrics import match_image
from detector.tiling import one_per_particle
from synthgen.annotations import Detections, Sample
from synthgen.classes import CLASS_NAMES
from synthgen.instance_masks import ParticleMask, rasterize, sample_masks


@dataclass(frozen=True)
class SizeComparison:
    """One class's ECD distribution, predicted against labelled."""

    name: str
    n_true: int
    n_pred: int
    mean_true: float
    mean_pred: float
    accuracy: float  # mean_pred / mean_true
    matched_accuracy: float  # mean ECD ratio over IoU-matched pairs
    n_matched: int
    ks: float
    border_true: int  # left out for touching the border
    border_pred: int
    true_sizes: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    pred_sizes: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))


@dataclass(frozen=True)
class MaskEval:
    """Mask scores of one set for one model."""

    source: str  # where predicted masks came from: model or threshold
    map50: dict[str, float]  # class name / "all" -> mask AP@0.5 (pycocotools)
    map50_95: dict[str, float]  # mask AP@[.5:.95]
    box_map50: dict[str, float]  # box AP@0.5 by pycocotools on the same detections (to compare with)
    sizes: dict[str, SizeComparison]
    gt_masks: int  # labelled particles with a mask
    gt_total: int
    pred_without_mask: int  # detections (conf >= conf) whose mask failed
    include_border: bool = False
    refine: dict | None = None  # Gaussian refinement counts (detector.refine.RefineCounts.as_dict)


# ------------------------------------------------------------------ mask mAP


def box_mask(box: np.ndarray, width: int, height: int) -> ParticleMask:
    """The pixels whose centres lie in an xyxy box (a mask for a particle that has none)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    return rasterize(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]), width, height)


def encode(pm: ParticleMask, width: int, height: int) -> dict:
    """COCO run-length encoding of one particle on the full image."""
    from pycocotools import mask as mask_utils

    return mask_utils.encode(np.asfortranarray(pm.full(width, height).astype(np.uint8)))


def segm_map(
    gt: Sequence[tuple[Sequence[ParticleMask], np.ndarray]],
    dt: Sequence[tuple[Sequence[ParticleMask], np.ndarray, np.ndarray]],
    sizes: Sequence[tuple[int, int]],
    class_names: Sequence[str] = CLASS_NAMES,
    iou_type: str = "segm",
    boxes: tuple[Sequence[np.ndarray], Sequence[np.ndarray]] | None = None,
) -> tuple[dict[str, float], dict[str, float]]:
    """pycocotools AP@0.5 and AP@[.5:.95] per class name and "all" (mean over the classes with labels;
    nan for a class without). ``gt``: per image (masks, class ids); ``dt``: (masks, class ids, scores);
    ``sizes``: per image (width, height). ``iou_type="bbox"`` scores ``boxes`` (per image gt and
    detected xyxy arrays) instead of the masks: the box AP computed the same way, to compare with."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    labelled = {int(k) for _, c in gt for k in c}
    ap50 = {n: (0.0 if k in labelled else float("nan")) for k, n in enumerate(class_names)}
    ap50["all"] = 0.0 if labelled else float("nan")
    ap = dict(ap50)
    images, anns, results = [], [], []

    def xywh(b):
        return [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]

    for i, ((gm, gc), (dm, dc, ds), (w, h)) in enumerate(zip(gt, dt, sizes), start=1):
        images.append({"id": i, "width": int(w), "height": int(h), "file_name": str(i)})
        for k, (pm, c) in enumerate(zip(gm, gc)):
            ann = {"id": len(anns) + 1, "image_id": i, "category_id": int(c) + 1, "iscrowd": 0}
            if iou_type == "bbox":
                ann["bbox"] = xywh(boxes[0][i - 1][k])
                ann["area"] = ann["bbox"][2] * ann["bbox"][3]
            else:
                ann.update(segmentation=encode(pm, w, h), area=float(pm.area), bbox=[pm.x0, pm.y0, pm.mask.shape[1], pm.mask.shape[0]])
            anns.append(ann)
        for k, (pm, c, s) in enumerate(zip(dm, dc, ds)):
            res = {"image_id": i, "category_id": int(c) + 1, "score": float(s)}
            if iou_type == "bbox":
                res["bbox"] = xywh(boxes[1][i - 1][k])
            else:
                res["segmentation"] = encode(pm, w, h)
            results.append(res)
    if not results or not anns:
        return ap50, ap  # loadRes([]) raises; with no detections every AP is 0
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco_gt = COCO()
        coco_gt.dataset = {"info": {}, "images": images, "annotations": anns,
                           "categories": [{"id": k + 1, "name": n} for k, n in enumerate(class_names)]}  # fmt: skip
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes(results), iou_type)
        ev.params.maxDets = [1, 10, max(100, max(len(d[1]) for d in dt))]
        ev.evaluate()
        ev.accumulate()
    prec = ev.eval["precision"][:, :, :, 0, -1]  # [iou thr, recall, class, area all, max dets]
    got50, got = [], []
    for k, cat_id in enumerate(ev.params.catIds):
        p, p50 = prec[:, :, k], prec[0, :, k]
        if (p > -1).any():
            name = class_names[cat_id - 1]
            ap[name], ap50[name] = float(p[p > -1].mean()), float(p50[p50 > -1].mean())
            got.append(ap[name])
            got50.append(ap50[name])
    if got:
        ap["all"], ap50["all"] = float(np.mean(got)), float(np.mean(got50))
    return ap50, ap


# ------------------------------------------------------------------ sizes


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic (the largest gap between the empirical CDFs); nan if either is empty."""
    a, b = np.sort(np.asarray(a, np.float64)), np.sort(np.asarray(b, np.float64))
    if not len(a) or not len(b):
        return float("nan")
    from scipy.stats import ks_2samp

    return float(ks_2samp(a, b).statistic)


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 and math.isfinite(num) else float("nan")


def compare_sizes(
    name: str,
    true: Sequence[Measurement],
    pred: Sequence[Measurement],
    pairs: Sequence[tuple[Measurement, Measurement]],
    include_border: bool = False,
) -> SizeComparison:
    """The two ECD populations of one class (border particles left out unless `include_border`)."""

    def keep(ms):
        return [m for m in ms if include_border or not m.touches_border]

    t, p = keep(true), keep(pred)
    ts, ps = np.array([m.ecd_px for m in t]), np.array([m.ecd_px for m in p])
    pairs = [(a, b) for a, b in pairs if include_border or not (a.touches_border or b.touches_border)]
    mt, mp = (float(ts.mean()) if len(ts) else float("nan")), (float(ps.mean()) if len(ps) else float("nan"))
    matched = _ratio(sum(b.ecd_px for _, b in pairs), sum(a.ecd_px for a, _ in pairs)) if pairs else float("nan")
    return SizeComparison(name, len(ts), len(ps), mt, mp, _ratio(mp, mt), matched, len(pairs), ks_distance(ts, ps),
                          len(true) - len(t), len(pred) - len(p), ts, ps)  # fmt: skip


# ------------------------------------------------------------------ one set


def has_masks(samples: Sequence[Sample]) -> bool:
    """Whether any image of the set has ground-truth masks or polygons."""
    return any(s.mask_path is not None or any(p is not None for p in s.polygons) for s in samples)


def _pred_masks(det: Detections, width: int, height: int) -> list[ParticleMask | None]:
    polys = det.polygons if det.polygons is not None else (None,) * len(det)
    return [None if p is None else rasterize(p, width, height) for p in polys]


def evaluate_masks(
    samples: Sequence[Sample],
    predictions: Sequence[Detections],
    source: str,
    conf: float = 0.25,
    include_border: bool = False,
    class_names: Sequence[str] = CLASS_NAMES,
) -> MaskEval:
    """Mask mAP (every detection) and size comparison (the particles >= conf, as `one_per_particle`
    counts them) of one set; the detections carry their outlines already (``Detections.polygons``)."""
    gt_in, dt_in, sizes = [], [], []
    true = {k: [] for k in range(len(class_names))}
    pred = {k: [] for k in range(len(class_names))}
    pairs = {k: [] for k in range(len(class_names))}
    n_gt_masks = n_gt = failed = 0
    for s, det in zip(samples, predictions):
        w, h = s.width, s.height
        gm = sample_masks(s)
        n_gt += len(gm)
        n_gt_masks += sum(m is not None and m.area > 0 for m in gm)
        dm = _pred_masks(det, w, h)
        scores = det.confidence if det.confidence is not None else np.ones(len(det))
        kept = one_per_particle(det, conf)  # the particles counted, as detector predict's table
        gt_ms = [None if m is None or m.area == 0 else measure(m, w, h) for m in gm]
        dt_ms = [None if m is None or m.area == 0 or not k else measure(m, w, h) for m, k in zip(dm, kept)]  # sizes: kept ones only
        gt_in.append(([m if gm_ms is not None else box_mask(b, w, h) for m, gm_ms, b in zip(gm, gt_ms, s.gt.xyxy)], s.gt.class_id))
        dt_in.append(([m if m is not None and m.area > 0 else box_mask(b, w, h) for m, b in zip(dm, det.xyxy)], det.class_id, scores))
        sizes.append((w, h))
        for m, c in zip(gt_ms, s.gt.class_id):
            if m is not None:
                true[int(c)].append(m)
        for m, c, k in zip(dt_ms, det.class_id, kept):
            if k:
                failed += m is None
                if m is not None:
                    pred[int(c)].append(m)
        match = match_image(s.gt, det[kept], 0.5)
        dt_kept = [m for m, k in zip(dt_ms, kept) if k]
        for i, j in enumerate(match.pred_gt):
            if j >= 0 and dt_kept[i] is not None and gt_ms[j] is not None:
                pairs[int(s.gt.class_id[j])].append((gt_ms[j], dt_kept[i]))
    ap50, ap = segm_map(gt_in, dt_in, sizes, class_names)
    boxes = ([s.gt.xyxy for s in samples], [d.xyxy for d in predictions])
    box50, _ = segm_map(gt_in, dt_in, sizes, class_names, "bbox", boxes)
    comparisons = {n: compare_sizes(n, true[k], pred[k], pairs[k], include_border) for k, n in enumerate(class_names)}
    return MaskEval(source, ap50, ap, box50, comparisons, n_gt_masks, n_gt, failed, include_border)
