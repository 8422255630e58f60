"""Metric tests with hand-computed answers, and agreement with the Cartucho/mAP algorithm."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synthgen.annotations import Detections
from detector.metrics import average_precision, box_iou, centers_inside, evaluate_set, match_image, voc_ap

NAMES = ("cube", "sphere")


def det(boxes, cls, conf=None) -> Detections:
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), np.array(cls, np.int64), None if conf is None else np.array(conf, np.float32))


GT = det([[0, 0, 10, 10], [20, 20, 30, 30], [40, 0, 50, 10]], [0, 0, 1])


# ---------------------------------------------------------------- IoU


boxes = st.tuples(
    st.floats(0, 100), st.floats(0, 100), st.floats(0.5, 50), st.floats(0.5, 50)
).map(lambda t: [t[0], t[1], t[0] + t[2], t[1] + t[3]])


@settings(max_examples=200, deadline=None)
@given(st.lists(boxes, min_size=1, max_size=6), st.lists(boxes, min_size=1, max_size=6))
def test_iou_symmetric_and_bounded(a, b):
    m = box_iou(np.array(a), np.array(b))
    assert m.shape == (len(a), len(b))
    np.testing.assert_allclose(m, box_iou(np.array(b), np.array(a)).T)
    assert (m >= 0).all() and (m <= 1).all()


@settings(max_examples=100, deadline=None)
@given(st.lists(boxes, min_size=1, max_size=6))
def test_iou_self_is_one(a):
    np.testing.assert_allclose(np.diag(box_iou(np.array(a), np.array(a))), 1.0)


def test_iou_hand_computed():
    assert box_iou([[0, 0, 10, 10]], [[5, 0, 15, 10]])[0, 0] == pytest.approx(50 / 150)
    assert box_iou([[0, 0, 10, 10]], [[10, 10, 20, 20]])[0, 0] == 0.0
    assert box_iou(np.zeros((0, 4)), [[0, 0, 1, 1]]).shape == (0, 1)


def test_centers_inside():
    inside = centers_inside([[2, 2, 6, 6], [8, 8, 20, 20]], [[0, 0, 10, 10]])
    assert inside.tolist() == [[True], [False]]


# ---------------------------------------------------------------- AP


def test_voc_ap_known_sequence():
    # rec/prec of TP, FP, TP, FP over 3 labels: envelope 1 up to 1/3, 2/3 up to 2/3, then 0
    rec = np.array([1, 1, 2, 2]) / 3
    prec = np.array([1, 1 / 2, 2 / 3, 2 / 4])
    assert voc_ap(rec, prec) == pytest.approx(1 / 3 + 2 / 9)
    assert average_precision(np.array([1, 0, 1, 0], bool), np.array([0.9, 0.8, 0.7, 0.6]), 3) == pytest.approx(5 / 9)
    assert math.isnan(average_precision(np.zeros(0, bool), np.zeros(0), 0))
    assert average_precision(np.zeros(0, bool), np.zeros(0), 4) == 0.0


def test_known_pr_sequence_through_matching():
    gt = det([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]], [0, 0, 0])
    pred = det(
        [[0, 0, 10, 10], [60, 60, 70, 70], [20, 20, 30, 31], [80, 80, 90, 90]],
        [0, 0, 0, 0],
        [0.9, 0.8, 0.7, 0.6],
    )
    m = evaluate_set([(gt, pred)], NAMES, conf=0.0)
    assert m.per_class["cube"].ap50 == pytest.approx(5 / 9)
    assert m.overall.ap50 == pytest.approx(5 / 9)  # sphere has no labels: not in the mean
    assert (m.per_class["cube"].tp, m.per_class["cube"].fp, m.per_class["cube"].fn) == (2, 2, 1)


# ---------------------------------------------------------------- counts


def test_perfect_predictions_score_one():
    pred = Detections(GT.xyxy, GT.class_id, np.ones(len(GT), np.float32))
    m = evaluate_set([(GT, pred), (GT, pred)], NAMES)
    for row in (*m.per_class.values(), m.overall, m.agnostic):
        assert row.ap50 == 1.0 and row.precision == 1.0 and row.recall == 1.0
        assert row.iou == pytest.approx(1.0) and row.detected_pct == 100.0 and row.fp == 0 and row.fn == 0
    assert m.overall.tp == 6 and m.overall.labelled == 6 and m.overall.confused == 0


def test_a_duplicate_is_one_particle_in_the_counts_and_a_false_positive_in_matching():
    gt = det([[0, 0, 10, 10]], [0])
    pred = det([[0, 0, 10, 10], [0, 0, 10, 9]], [0, 0], [0.5, 0.9])
    match = match_image(gt, pred)
    assert match.pred_gt.tolist() == [-1, 0]  # the more confident one takes the label
    m = evaluate_set([(gt, pred)], NAMES, conf=0.1).per_class["cube"]
    assert (m.tp, m.fp, m.fn) == (1, 0, 0)  # counted as detector predict's table: one particle
    assert m.iou == pytest.approx(0.9)
    assert m.precision == 1.0 and m.recall == 1.0
    far = det([[0, 0, 10, 10], [30, 30, 40, 40]], [0, 0], [0.5, 0.9])  # two particles, one of them false
    m = evaluate_set([(gt, far)], NAMES, conf=0.1).per_class["cube"]
    assert (m.tp, m.fp, m.fn) == (1, 1, 0)


def test_empty_predictions_and_empty_images():
    m = evaluate_set([(GT, Detections.empty(True)), (Detections.empty(), Detections.empty(True))], NAMES)
    assert m.overall.tp == 0 and m.overall.fn == 3 and m.overall.fp == 0
    assert m.overall.ap50 == 0.0 and math.isnan(m.overall.precision) and m.overall.recall == 0.0
    assert math.isnan(m.overall.iou)
    # detections on an image without particles are all false positives
    fp = evaluate_set([(Detections.empty(), det([[0, 0, 5, 5]], [1], [0.9]))], NAMES)
    assert fp.per_class["sphere"].fp == 1 and math.isnan(fp.per_class["sphere"].ap50)
    assert math.isnan(fp.overall.ap50) and math.isnan(fp.overall.recall)
    nothing = evaluate_set([], NAMES)
    assert nothing.overall.labelled == 0


def test_class_mixup_is_fp_and_fn_and_a_confusion():
    gt = det([[0, 0, 10, 10]], [0])
    pred = det([[0, 0, 10, 10]], [1], [0.9])
    m = evaluate_set([(gt, pred)], NAMES)
    assert (m.per_class["cube"].tp, m.per_class["cube"].fn) == (0, 1)
    assert (m.per_class["sphere"].tp, m.per_class["sphere"].fp) == (0, 1)
    assert m.per_class["cube"].confused == 1 and m.overall.confused == 1
    assert m.agnostic.tp == 1 and m.agnostic.ap50 == 1.0
    assert m.confusion.tolist() == [[0, 1, 0], [0, 0, 0], [0, 0, 0]]


def test_confidence_threshold_applies_to_counts_not_ap():
    gt = det([[0, 0, 10, 10], [20, 20, 30, 30]], [0, 0])
    pred = det([[0, 0, 10, 10], [20, 20, 30, 30]], [0, 0], [0.9, 0.1])
    m = evaluate_set([(gt, pred)], NAMES, conf=0.25).per_class["cube"]
    assert (m.tp, m.fn) == (1, 1) and m.ap50 == 1.0


def test_iou_threshold():
    gt = det([[0, 0, 10, 10]], [0])
    pred = det([[5, 0, 15, 10]], [0], [0.9])  # IoU 1/3
    assert evaluate_set([(gt, pred)], NAMES, iou_threshold=0.5).overall.tp == 0
    assert evaluate_set([(gt, pred)], NAMES, iou_threshold=0.3).overall.tp == 1


def test_center_rule_counts_loose_boxes_once():
    gt = det([[0, 0, 10, 10], [20, 0, 30, 10]], [0, 0])
    # a loose box whose centre is inside the first particle, a duplicate, and a miss
    pred = det([[2, 2, 16, 16], [1, 1, 9, 9], [40, 40, 50, 50]], [0, 0, 0], [0.9, 0.8, 0.7])
    iou = evaluate_set([(gt, pred)], NAMES, rule="iou").overall
    center = evaluate_set([(gt, pred)], NAMES, rule="center").overall
    assert (iou.tp, iou.fp) == (1, 2)  # the loose box fails IoU 0.5, the tight one counts
    assert (center.tp, center.fp, center.fn) == (1, 2, 1)  # the most confident takes the particle


# ---------------------------------------------------------------- agreement with Cartucho/mAP


def cartucho_map(images_gt, images_pred, n_classes, min_overlap=0.5):
    """The Cartucho/mAP main.py algorithm, written from its description.

    For each class with labels: gather that class's detections of every image, sort them by
    confidence (descending); for each, find the labelled box of that class in its image with the
    largest overlap; if overlap >= min_overlap and that box is unused, TP and mark it used, else FP.
    Cumulate TP/FP, rec = TP/n_gt, prec = TP/(TP+FP); AP = VOC area under the precision envelope;
    mAP = mean AP over classes with labels.
    """
    aps = []
    for c in range(n_classes):
        gts = {i: [{"box": b, "used": False} for b, k in zip(g[0], g[1]) if k == c] for i, g in enumerate(images_gt)}
        n_gt = sum(len(v) for v in gts.values())
        if n_gt == 0:
            continue
        dets = [(conf, i, box) for i, p in enumerate(images_pred) for box, k, conf in zip(*p) if k == c]
        dets.sort(key=lambda d: d[0], reverse=True)
        tp, fp = [], []
        for _, i, bb in dets:
            ovmax, best = -1.0, None
            for g in gts[i]:
                bg = g["box"]
                iw = min(bb[2], bg[2]) - max(bb[0], bg[0])
                ih = min(bb[3], bg[3]) - max(bb[1], bg[1])
                if iw > 0 and ih > 0:
                    ua = (bb[2] - bb[0]) * (bb[3] - bb[1]) + (bg[2] - bg[0]) * (bg[3] - bg[1]) - iw * ih
                    ov = iw * ih / ua
                    if ov > ovmax:
                        ovmax, best = ov, g
            if ovmax >= min_overlap and not best["used"]:
                best["used"] = True
                tp.append(1), fp.append(0)
            else:
                tp.append(0), fp.append(1)
        tpc, fpc = np.cumsum(tp), np.cumsum(fp)
        rec = list(tpc / n_gt)
        prec = list(tpc / np.maximum(tpc + fpc, 1e-12))
        mrec, mpre = [0.0, *rec, 1.0], [0.0, *prec, 0.0]
        for j in range(len(mpre) - 2, -1, -1):
            mpre[j] = max(mpre[j], mpre[j + 1])
        aps.append(sum((mrec[j] - mrec[j - 1]) * mpre[j] for j in range(1, len(mrec)) if mrec[j] != mrec[j - 1]))
    return sum(aps) / len(aps)


def random_image(rng, n_gt):
    xy = rng.uniform(0, 200, (n_gt, 2))
    wh = rng.uniform(8, 30, (n_gt, 2))
    gt = np.concatenate([xy, xy + wh], 1)
    gcls = rng.integers(0, 2, n_gt)
    # jittered copies of some labels, duplicates, and random false boxes
    keep = rng.random(n_gt) < 0.8
    jit = gt[keep] + rng.normal(0, 3, (keep.sum(), 4))
    dup = jit[: max(1, len(jit) // 4)] + rng.normal(0, 1, (max(1, len(jit) // 4), 4)) if len(jit) else np.zeros((0, 4))
    fxy = rng.uniform(0, 200, (3, 2))
    false = np.concatenate([fxy, fxy + rng.uniform(8, 30, (3, 2))], 1)
    pbox = np.concatenate([jit, dup, false])
    pbox[:, 2:] = np.maximum(pbox[:, 2:], pbox[:, :2] + 1)
    pcls = np.concatenate([gcls[keep], gcls[keep][: len(dup)], rng.integers(0, 2, 3)])
    flip = rng.random(len(pcls)) < 0.1
    pcls = np.where(flip, 1 - pcls, pcls)
    conf = rng.random(len(pbox))
    return (gt, gcls), (pbox, pcls, conf)


@pytest.mark.parametrize("seed", range(6))
def test_map50_agrees_with_cartucho(seed):
    rng = np.random.default_rng(seed)
    images = [random_image(rng, int(rng.integers(0, 12))) for _ in range(5)]
    gts = [g for g, _ in images]
    preds = [p for _, p in images]
    pairs = [(det(g[0], g[1]), det(p[0], p[1], p[2])) for g, p in images]
    ours = evaluate_set(pairs, NAMES, conf=0.0).overall.ap50
    # float32 boxes on both sides so the overlaps are the same numbers
    gts32 = [(np.float32(g[0]).astype(np.float64), g[1]) for g in gts]
    preds32 = [(np.float32(p[0]).astype(np.float64), p[1], np.float32(p[2])) for p in preds]
    if not any(len(g[1]) for g in gts):
        assert math.isnan(ours)
        return
    assert ours == pytest.approx(cartucho_map(gts32, preds32, 2), abs=1e-9)
