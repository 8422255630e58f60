"""Detection metrics in pure numpy: IoU, greedy matching, VOC all-point AP, counts.

Matching follows the Cartucho/mAP script the López Gutiérrez 2022 paper used (itself the Pascal VOC
devkit rule): per class, detections sorted by confidence (stable, so ties keep their input order)
take the labelled box of their class with the highest IoU; it is a true positive when that IoU is at
least the threshold and the box is still free, otherwise a false positive (a duplicate). Boxes are
continuous pixel coordinates, so IoU has no "+1" pixel term (Cartucho's script adds one pixel to
every width and height; for boxes tens of pixels wide that changes IoU by a few per cent at most).

The `"center"` rule is Okunev et al. 2020's count: a detection counts when its centre lies inside a
labelled box; each labelled particle takes one detection (the most confident), further ones are
false positives. Among several free labelled boxes holding the centre it takes the best-IoU one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from detector.tiling import one_per_particle
from synthgen.annotations import Detections, box_iou  # noqa: F401  (box_iou: part of this module's API)

RULES = ("iou", "center")


def centers_inside(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(len(pred), len(gt)) bool: the centre of each predicted box lies inside each labelled box."""
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 4)
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 4)
    cx = (pred[:, 0] + pred[:, 2]) / 2
    cy = (pred[:, 1] + pred[:, 3]) / 2
    return (
        (cx[:, None] >= gt[None, :, 0])
        & (cx[:, None] <= gt[None, :, 2])
        & (cy[:, None] >= gt[None, :, 1])
        & (cy[:, None] <= gt[None, :, 3])
    )


@dataclass(frozen=True)
class ImageMatch:
    """Matching of one image's detections to its labels.

    pred_gt[i] is the labelled box detection i was matched to, or -1; pred_iou[i] its IoU with that
    box (or with the best labelled box of its class when unmatched, 0 when there is none).
    """

    pred_gt: np.ndarray  # (m,) int64
    pred_iou: np.ndarray  # (m,) float64
    gt_matched: np.ndarray  # (n,) bool

    @property
    def tp(self) -> np.ndarray:
        return self.pred_gt >= 0


def _confidence_order(pred: Detections) -> np.ndarray:
    if pred.confidence is None:
        return np.arange(len(pred))
    return np.argsort(-pred.confidence, kind="stable")


def match_image(
    gt: Detections,
    pred: Detections,
    iou_threshold: float = 0.5,
    rule: str = "iou",
    class_agnostic: bool = False,
) -> ImageMatch:
    """Greedy matching of detections (by confidence) to labelled boxes of the same class."""
    if rule not in RULES:
        raise ValueError(f"unknown matching rule {rule!r}")
    m, n = len(pred), len(gt)
    iou = box_iou(pred.xyxy, gt.xyxy)  # (m, n)
    same = np.ones((m, n), bool) if class_agnostic else pred.class_id[:, None] == gt.class_id[None, :]
    iou_same = np.where(same, iou, -1.0)
    inside = centers_inside(pred.xyxy, gt.xyxy) & same if rule == "center" else None
    pred_gt = np.full(m, -1, np.int64)
    pred_iou = np.zeros(m, np.float64)
    gt_matched = np.zeros(n, bool)
    for i in _confidence_order(pred):
        if n == 0:
            break
        row = iou_same[i]
        if rule == "iou":
            j = int(np.argmax(row))  # first maximum: ties go to the earlier label, as Cartucho's loop
            pred_iou[i] = max(row[j], 0.0)
            if row[j] >= iou_threshold and not gt_matched[j]:
                pred_gt[i], gt_matched[j] = j, True
        else:
            free = inside[i] & ~gt_matched
            pred_iou[i] = max(row.max(), 0.0)
            if free.any():
                j = int(np.argmax(np.where(free, row, -2.0)))
                pred_gt[i], gt_matched[j], pred_iou[i] = j, True, row[j]
    return ImageMatch(pred_gt, pred_iou, gt_matched)


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """Pascal VOC (2010+) all-point interpolated AP: area under the monotone precision envelope."""
    mrec = np.concatenate([[0.0], np.asarray(recall, np.float64), [1.0]])
    mpre = np.concatenate([[0.0], np.asarray(precision, np.float64), [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    changed = np.nonzero(mrec[1:] != mrec[:-1])[0] + 1
    return float(np.sum((mrec[changed] - mrec[changed - 1]) * mpre[changed]))


def average_precision(tp: np.ndarray, confidence: np.ndarray, n_labelled: int) -> float:
    """VOC AP of detections pooled over images: tp flags and confidences, n labelled boxes (nan if 0)."""
    if n_labelled == 0:
        return float("nan")
    tp = np.asarray(tp, bool)
    if len(tp) == 0:
        return 0.0
    order = np.argsort(-np.asarray(confidence, np.float64), kind="stable")
    tp_cum = np.cumsum(tp[order])
    fp_cum = np.cumsum(~tp[order])
    return voc_ap(tp_cum / n_labelled, tp_cum / (tp_cum + fp_cum))


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den > 0 else float("nan")


@dataclass(frozen=True)
class ClassMetrics:
    """Scores of one class (or of all classes together) over a set of images.

    Counts, IoU, precision, recall and the confusion count use detections at or above the confidence
    threshold; `ap50` uses every detection. `confused` counts labelled boxes of this class found
    (IoU >= threshold, class-agnostic matching) by a detection of another class.
    Undefined ratios (no labels, no detections) are nan.
    """

    name: str
    labelled: int
    tp: int
    fp: int
    fn: int
    iou: float
    ap50: float
    confused: int = 0

    @property
    def precision(self) -> float:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        return _ratio(self.tp, self.labelled)

    @property
    def detected_pct(self) -> float:
        return 100.0 * self.recall


@dataclass(frozen=True)
class SetMetrics:
    """Per-class scores, the overall row, the class-agnostic row and the confusion matrix."""

    per_class: dict[str, ClassMetrics]
    overall: ClassMetrics  # name "all": summed counts, mAP@0.5 = mean AP over classes with labels
    agnostic: ClassMetrics  # name "any": every class merged into one ("a particle was found")
    confusion: np.ndarray  # (k+1, k+1): rows labelled class, cols detected class; index k = none

    def rows(self) -> list[ClassMetrics]:
        return [*self.per_class.values(), self.overall, self.agnostic]


def _pool(
    pairs: Sequence[tuple[Detections, Detections]],
    iou_threshold: float,
    rule: str,
    class_agnostic: bool,
):
    """Match every image; return pooled arrays over all detections and all labels."""
    matches = [match_image(g, p, iou_threshold, rule, class_agnostic) for g, p in pairs]
    preds = [p for _, p in pairs]
    gts = [g for g, _ in pairs]

    def cat(arrs, dtype):
        return np.concatenate(arrs).astype(dtype) if arrs else np.zeros(0, dtype)

    pred_cls = cat([p.class_id for p in preds], np.int64)
    pred_conf = cat([p.confidence if p.confidence is not None else np.ones(len(p)) for p in preds], np.float64)
    pred_tp = cat([m.tp for m in matches], bool)
    pred_iou = cat([m.pred_iou for m in matches], np.float64)
    gt_cls = cat([g.class_id for g in gts], np.int64)
    gt_hit = cat([m.gt_matched for m in matches], bool)
    return matches, pred_cls, pred_conf, pred_tp, pred_iou, gt_cls, gt_hit


def _counts(name: str, sel_pred: np.ndarray, labelled: int, pred_tp: np.ndarray, pred_iou: np.ndarray) -> ClassMetrics:
    """Counts and mean matched IoU of the selected detections (AP is filled in by the caller)."""
    tp_mask = sel_pred & pred_tp
    tp = int(tp_mask.sum())
    fp = int((sel_pred & ~pred_tp).sum())
    iou = float(pred_iou[tp_mask].mean()) if tp else float("nan")
    return ClassMetrics(name, labelled, tp, fp, labelled - tp, iou, float("nan"))


def evaluate_set(
    pairs: Sequence[tuple[Detections, Detections]],
    class_names: Sequence[str],
    iou_threshold: float = 0.5,
    conf: float = 0.25,
    rule: str = "iou",
) -> SetMetrics:
    """Score (labels, detections) pairs of a set of images; see ClassMetrics for what is counted.

    Counts at `conf` come from matching only the particles at or above `conf`
    (`detector.tiling.one_per_particle`: a box overlapping a more confident one by IoU > 0.5 is the
    same particle, as in `detector predict`'s table); AP comes from matching every detection.
    """
    k = len(class_names)
    at_conf = [(g, _above(p, conf)) for g, p in pairs]
    _, a_cls, _, a_tp, a_iou, gt_cls, _ = _pool(at_conf, iou_threshold, rule, False)
    _, p_cls, p_conf, p_tp, _, _, _ = _pool(pairs, iou_threshold, rule, False)

    per_class = {}
    aps = []
    for c, name in enumerate(class_names):
        labelled = int((gt_cls == c).sum())
        counts = _counts(name, a_cls == c, labelled, a_tp, a_iou)
        ap = average_precision(p_tp[p_cls == c], p_conf[p_cls == c], labelled)
        per_class[name] = replace(counts, ap50=ap)
        if (gt_cls == c).any():
            aps.append(ap)

    # class-agnostic: merge classes, match again; pairs matched across classes are confusions
    ag_matches, g_cls, _, g_tp, g_iou, _, _ = _pool(at_conf, iou_threshold, rule, True)
    _, _, q_conf, q_tp, _, _, _ = _pool(pairs, iou_threshold, rule, True)
    agnostic = _counts("any", np.ones(len(g_cls), bool), len(gt_cls), g_tp, g_iou)
    agnostic = replace(agnostic, ap50=average_precision(q_tp, q_conf, len(gt_cls)))
    confusion = confusion_matrix(at_conf, ag_matches, k)
    for c, name in enumerate(class_names):
        per_class[name] = replace(per_class[name], confused=int(confusion[c, :k].sum() - confusion[c, c]))

    tp = sum(m.tp for m in per_class.values())
    fp = sum(m.fp for m in per_class.values())
    labelled = len(gt_cls)
    tp_iou = a_iou[a_tp]
    overall = ClassMetrics(
        "all",
        labelled,
        tp,
        fp,
        labelled - tp,
        float(tp_iou.mean()) if len(tp_iou) else float("nan"),
        float(np.mean(aps)) if aps else float("nan"),
        sum(m.confused for m in per_class.values()),
    )
    return SetMetrics(per_class, overall, agnostic, confusion)


def confusion_matrix(
    pairs: Sequence[tuple[Detections, Detections]], matches: Sequence[ImageMatch], n_classes: int
) -> np.ndarray:
    """(k+1, k+1) counts from class-agnostic matches: [labelled class, detected class], k = nothing."""
    cm = np.zeros((n_classes + 1, n_classes + 1), np.int64)
    for (gt, pred), m in zip(pairs, matches):
        for i, j in enumerate(m.pred_gt):
            if j >= 0:
                cm[gt.class_id[j], pred.class_id[i]] += 1
            else:
                cm[n_classes, pred.class_id[i]] += 1
        for j in np.nonzero(~m.gt_matched)[0]:
            cm[gt.class_id[j], n_classes] += 1
    return cm


def _above(pred: Detections, conf: float) -> Detections:
    """The particles of `pred` at or above `conf` (detector.tiling.one_per_particle)."""
    if pred.confidence is None or len(pred) == 0:
        return pred
    return pred[one_per_particle(pred, conf)]
