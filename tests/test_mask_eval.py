"""detector.mask_eval and `detector evaluate` with ground-truth masks: mask mAP, size accuracy, KS."""

from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocotools import mask as mask_utils
from typer.testing import CliRunner

from detector.cli import app
from detector.mask_eval import compare_sizes, ks_distance, segm_map
from detector.measure import measure
from synthgen.instance_masks import ParticleMask

runner = CliRunner()
W, H = 120, 100


def _disc(cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W] + 0.5
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


def _crop(full: np.ndarray) -> ParticleMask:
    ys, xs = np.nonzero(full)
    return ParticleMask(int(xs.min()), int(ys.min()), full[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1])


def _toy(seed: int):
    """Three images of discs (two classes); detections shifted and resized, some missed, some spurious."""
    rng = np.random.default_rng(seed)
    gt, dt = [], []
    for _ in range(3):
        g_full, g_cls, d_full, d_cls, d_sc = [], [], [], [], []
        for _ in range(rng.integers(2, 6)):
            cx, cy, r = rng.uniform(15, W - 15), rng.uniform(15, H - 15), rng.uniform(4, 12)
            c = int(rng.integers(0, 2))
            g_full.append(_disc(cx, cy, r))
            g_cls.append(c)
            if rng.random() < 0.85:
                d_full.append(_disc(cx + rng.normal(0, 2), cy + rng.normal(0, 2), r * rng.uniform(0.8, 1.2)))
                d_cls.append(c if rng.random() < 0.9 else 1 - c)
                d_sc.append(rng.uniform(0.1, 1))
        for _ in range(rng.integers(0, 3)):  # false positives
            d_full.append(_disc(rng.uniform(10, W - 10), rng.uniform(10, H - 10), rng.uniform(3, 8)))
            d_cls.append(int(rng.integers(0, 2)))
            d_sc.append(rng.uniform(0, 0.6))
        gt.append((g_full, np.array(g_cls)))
        dt.append((d_full, np.array(d_cls), np.array(d_sc)))
    return gt, dt


def _pycocotools_directly(gt, dt, tmp: Path) -> tuple[float, float]:
    """COCO files written and scored the way the cocoapi README does it: (AP@[.5:.95], AP@0.5)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def rle(m):
        r = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        r["counts"] = r["counts"].decode()
        return r

    images, anns, res = [], [], []
    for i, ((gm, gc), (dm, dc, ds)) in enumerate(zip(gt, dt), start=1):
        images.append({"id": i, "width": W, "height": H, "file_name": f"{i}.png"})
        for m, c in zip(gm, gc):
            r = rle(m)
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(c) + 1, "segmentation": r,
                         "area": float(mask_utils.area(r)), "bbox": mask_utils.toBbox(r).tolist(), "iscrowd": 0})  # fmt: skip
        res += [{"image_id": i, "category_id": int(c) + 1, "segmentation": rle(m), "score": float(s)} for m, c, s in zip(dm, dc, ds)]
    (tmp / "gt.json").write_text(json.dumps({"info": {}, "images": images, "annotations": anns,
                                             "categories": [{"id": 1, "name": "cube"}, {"id": 2, "name": "sphere"}]}))  # fmt: skip
    (tmp / "dt.json").write_text(json.dumps(res))
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(tmp / "gt.json"))
        ev = COCOeval(coco, coco.loadRes(str(tmp / "dt.json")), "segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0]), float(ev.stats[1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_segm_map_agrees_with_pycocotools_run_directly(seed, tmp_path):
    gt, dt = _toy(seed)
    ap50, ap = segm_map(
        [([_crop(m) for m in gm], gc) for gm, gc in gt],
        [([_crop(m) for m in dm], dc, ds) for dm, dc, ds in dt],
        [(W, H)] * len(gt),
    )
    direct, direct50 = _pycocotools_directly(gt, dt, tmp_path)
    assert ap["all"] == pytest.approx(direct, abs=1e-9)
    assert ap50["all"] == pytest.approx(direct50, abs=1e-9)
    assert 0 < ap["all"] < ap50["all"] <= 1


def test_segm_map_without_detections_is_zero_and_nan_without_labels():
    gt = [([_crop(_disc(50, 50, 8))], np.array([0]))]
    ap50, ap = segm_map(gt, [([], np.zeros(0, int), np.zeros(0))], [(W, H)])
    assert ap50["cube"] == ap["all"] == 0.0
    assert np.isnan(ap["sphere"])


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(1, 100), min_size=1, max_size=30), st.floats(0.5, 2))
def test_ks_distance(values, factor):
    a = np.array(values)
    assert ks_distance(a, a) == 0
    assert 0 <= ks_distance(a, a * factor) <= 1
    assert ks_distance(a, a + 1000) == 1


def test_size_accuracy_of_scaled_discs_and_border_particles():
    true = [measure(_crop(_disc(30 + 25 * k, 50, 10)), W, H) for k in range(3)]
    pred = [measure(_crop(_disc(30 + 25 * k, 50, 11)), W, H) for k in range(3)]
    edge = measure(_crop(_disc(2, 50, 10)), W, H)  # cut by the left border
    s = compare_sizes("sphere", true + [edge], pred, list(zip(true, pred)))
    assert (s.n_true, s.border_true, s.n_pred) == (3, 1, 3)
    assert s.accuracy == pytest.approx(1.1, abs=0.02)
    assert s.matched_accuracy == pytest.approx(s.accuracy)
    assert s.ks == 1.0  # every predicted disc is larger than every labelled one
    assert compare_sizes("sphere", true + [edge], pred, [], include_border=True).n_true == 4


# ------------------------------------------------------------------ end to end


def _masked_set(folder: Path, n: int = 3, seed: int = 0) -> None:
    """Bright squares (cube) and discs (sphere) on a noisy dark canvas, YOLO labels and a 16-bit masks/ folder."""
    rng = np.random.default_rng(seed)
    for sub in ("images", "labels", "masks"):
        (folder / sub).mkdir(parents=True)
    for i in range(n):
        img = rng.integers(10, 40, (H, W), dtype=np.uint8)
        labels = np.zeros((H, W), np.uint16)
        lines = []
        for k, (x, y) in enumerate([(10, 10), (65, 12), (14, 58), (70, 55)]):
            s = int(rng.integers(20, 30))
            c = (k + i) % 2
            layer = np.zeros((H, W), np.uint8)
            if c == 0:
                cv2.rectangle(layer, (x, y), (x + s - 1, y + s - 1), 1, -1)
            else:
                cv2.circle(layer, (x + s // 2, y + s // 2), s // 2, 1, -1)
            img[layer > 0] = 210
            labels[layer > 0] = k + 1
            ys, xs = np.nonzero(layer)
            x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
            lines.append(f"{c} {(x0 + x1) / 2 / W:.6f} {(y0 + y1) / 2 / H:.6f} {(x1 - x0) / W:.6f} {(y1 - y0) / H:.6f}")
        cv2.imwrite(str(folder / "images" / f"im{i}.png"), img)
        cv2.imwrite(str(folder / "masks" / f"im{i}.png"), labels)
        (folder / "labels" / f"im{i}.txt").write_text("\n".join(lines) + "\n")


def test_evaluate_cli_scores_threshold_masks_against_instance_masks(tmp_path):
    data = tmp_path / "set"
    _masked_set(data)
    preds = tmp_path / "preds"
    preds.mkdir()
    for txt in (data / "labels").glob("*.txt"):  # perfect boxes: the masks come from the threshold fallback
        (preds / txt.name).write_text("".join(line + " 0.9\n" for line in txt.read_text().split("\n") if line))
    out = tmp_path / "report"
    done = runner.invoke(app, ["evaluate", "--predictions", f"perfect={preds}", "--set", f"S={data}", "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert "size acc" in done.output
    with (out / "masks.csv").open() as f:
        rows = {r["class"]: r for r in csv.DictReader(f)}
    assert rows["all"]["mask_source"] == "threshold"
    assert float(rows["all"]["mask_map50"]) > 0.95
    for name in ("cube", "sphere"):
        assert int(rows[name]["n_true"]) == int(rows[name]["n_pred"]) == 6
        assert float(rows[name]["size_accuracy"]) == pytest.approx(1.0, abs=0.03)
        assert float(rows[name]["ks"]) <= 0.5
    assert list(out.glob("sizes_S_perfect_*.png"))
    assert "## Masks and sizes" in (out / "report.md").read_text()


def test_evaluate_masks_model_refuses_box_predictions(tmp_path):
    data = tmp_path / "set"
    _masked_set(data, n=1)
    preds = tmp_path / "preds"
    preds.mkdir()
    (preds / "im0.txt").write_text("0 0.2 0.2 0.2 0.2 0.9\n")
    done = runner.invoke(app, ["evaluate", "--predictions", str(preds), "--set", f"S={data}", "--out", str(tmp_path / "r"), "--masks", "model"])
    assert done.exit_code == 2
    assert "--masks model" in done.output
    assert not (tmp_path / "r").exists()


def test_evaluate_refine_gaussian_counts_and_labels_the_source(tmp_path):
    data = tmp_path / "set"
    _masked_set(data, n=2)
    preds = tmp_path / "preds"
    preds.mkdir()
    for txt in (data / "labels").glob("*.txt"):
        (preds / txt.name).write_text("".join(line + " 0.9\n" for line in txt.read_text().split("\n") if line))
    out = tmp_path / "report"
    done = runner.invoke(app, ["evaluate", "--predictions", str(preds), "--set", f"S={data}", "--out", str(out), "--refine", "gaussian"])
    assert done.exit_code == 0, done.output
    assert "gaussian refinement" in done.output
    with (out / "masks.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {r["mask_source"] for r in rows} == {"threshold+gaussian"}
    assert "contours refined" in (out / "report.md").read_text()
