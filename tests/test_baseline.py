"""The classical flooding baseline: threshold, polarity, flattening, shape rule, CLI report."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from detector.baseline import BaselineParams, detect, otsu_threshold, particles_are_dark
from detector.cli import app
from detector.metrics import box_iou
from synthgen.errors import InputError

runner = CliRunner()


def scene(size: int = 128, bg: int = 30, fg: int = 210, gradient: float = 0.0) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """A square (cube), a 45-degree square (cube) and a disc (sphere) on a background; [0, 1] float."""
    img = np.full((size, size), bg, np.float64)
    cv2.rectangle(img, (10, 10), (33, 33), fg, -1)  # 24 x 24
    diamond = np.array([[80, 8], [96, 24], [80, 40], [64, 24]], np.int32)
    cv2.fillPoly(img, [diamond], fg)
    cv2.circle(img, (40, 90), 14, fg, -1)
    img += gradient * np.linspace(0, 1, size)[None, :]
    boxes = np.array([[10, 10, 34, 34], [64, 8, 97, 41], [26, 76, 55, 105]], np.float64)
    return np.clip(img, 0, 255) / 255, boxes, [0, 0, 1]


def test_otsu_splits_two_modes():
    img, _, _ = scene()
    t = otsu_threshold(img)
    assert 30 / 255 < t < 210 / 255


def test_detects_boxes_and_shapes():
    img, boxes, classes = scene()
    det = detect(img)
    assert len(det) == 3
    iou = box_iou(boxes, det.xyxy)
    j = iou.argmax(1)
    assert (iou.max(1) > 0.9).all()
    assert det.class_id[j].tolist() == classes  # the rotated square is still a cube
    assert ((det.confidence > 0.9) & (det.confidence <= 1)).all()  # convex parts: solidity near 1


def test_dark_particles_on_light_background():
    img, boxes, _ = scene(bg=220, fg=40)
    assert particles_are_dark(img, otsu_threshold(img))
    assert len(detect(img)) == 3
    assert len(detect(img, BaselineParams(polarity="dark"))) == 3
    assert len(detect(img, BaselineParams(polarity="bright"))) != 3  # the background would be the particle


def test_flattening_rescues_an_uneven_background():
    img, boxes, _ = scene(bg=20, fg=120, gradient=170)
    flat = detect(img, BaselineParams(flatten=30))
    assert (box_iou(boxes, flat.xyxy).max(1) > 0.7).all()


def test_level_min_area_and_fixed_class():
    img, _, _ = scene()
    assert len(detect(img, BaselineParams(min_area=600))) == 1  # the disc (~615 px); square 576, diamond ~545
    assert set(detect(img, BaselineParams(class_rule="sphere")).class_id.tolist()) == {1}
    assert len(detect(img, BaselineParams(level=0.99))) == 0
    with pytest.raises(InputError):
        BaselineParams(level=1.5).check()
    assert len(detect(np.zeros((32, 32)))) == 0


def test_cli_baseline_writes_predictions_and_report(tmp_path):
    folder = tmp_path / "I"
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    img, boxes, classes = scene()
    cv2.imwrite(str(folder / "images" / "a.png"), (img * 255).astype(np.uint8))
    lines = [f"{c} {(b[0] + b[2]) / 256} {(b[1] + b[3]) / 256} {(b[2] - b[0]) / 128} {(b[3] - b[1]) / 128}" for b, c in zip(boxes, classes)]
    (folder / "labels" / "a.txt").write_text("\n".join(lines))
    out = tmp_path / "out"
    res = runner.invoke(app, ["baseline", "--set", f"I={folder}", "--out", str(out), "--overlays"])
    assert res.exit_code == 0, res.output
    assert len((out / "predictions" / "I" / "a.txt").read_text().splitlines()) == 3
    with (out / "metrics.csv").open() as f:
        rows = {r["class"]: r for r in csv.DictReader(f)}
    assert rows["all"]["model"] == "baseline" and float(rows["all"]["detected_pct"]) == 100.0
    assert float(rows["all"]["map50"]) == 1.0
    assert (out / "report.md").is_file() and (out / "overlays" / "I" / "baseline" / "a.png").is_file()


def test_cli_baseline_bad_level(tmp_path):
    (tmp_path / "I").mkdir()
    res = runner.invoke(app, ["baseline", "--set", f"I={tmp_path / 'I'}", "--out", str(tmp_path / "o"), "--level", "3"])
    assert res.exit_code == 2 and "level" in res.stderr
