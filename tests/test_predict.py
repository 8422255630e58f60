"""predict.py sizes and report.write_predictions outputs; `detector predict` end to end (slow)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from detector.cli import app
from synthgen.annotations import Detections
from synthgen.formats import read_label_file, read_labelled_folder
from detector.predict import collect_images, equivalent_diameter, model_class_map, size_stats
from detector.report import write_predictions
from synthgen.errors import InputError

runner = CliRunner()


def images(folder: Path, n: int = 2, size: int = 64) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        img = np.full((size, size), 20, np.uint8)
        cv2.rectangle(img, (8, 8), (23, 23), 220, -1)
        cv2.circle(img, (44, 44), 8, 200, -1)
        p = folder / f"im{i}.png"
        cv2.imwrite(str(p), img)
        paths.append(p)
    return paths


DETS = [
    Detections([[8, 8, 24, 24], [36, 36, 52, 52]], [0, 1], [0.9, 0.8]),
    Detections([[8, 8, 24, 24], [36, 36, 54, 54], [0, 0, 4, 9]], [0, 1, 1], [0.7, 0.6, 0.3]),
]


def test_equivalent_diameter_and_stats():
    d = Detections([[0, 0, 4, 9], [0, 0, 10, 10]], [0, 1])
    np.testing.assert_allclose(equivalent_diameter(d), [6.0, 10.0])  # sqrt(w*h)
    s = size_stats("sphere", np.array([16.0, 18.0, 6.0]))
    assert s.count == 3 and s.mean == pytest.approx(40 / 3)
    assert s.std == pytest.approx(np.sqrt(((16 - 40 / 3) ** 2 + (18 - 40 / 3) ** 2 + (6 - 40 / 3) ** 2) / 2))
    assert s.sem == pytest.approx(s.std / np.sqrt(3))
    one = size_stats("cube", np.array([5.0]))
    assert one.mean == 5.0 and math.isnan(one.std) and math.isnan(one.sem)


def test_model_class_map_by_name():
    assert model_class_map({0: "quasi-sphere", 1: "nanocube"}) == {0: 1, 1: 0}
    with pytest.raises(InputError, match="unknown class name.*person"):
        model_class_map({0: "person"})


def test_collect_images(tmp_path):
    paths = images(tmp_path / "d")
    (tmp_path / "notes.txt").write_text("x")
    assert collect_images([tmp_path / "d"]) == paths
    assert collect_images([paths[1]]) == [paths[1]]
    with pytest.raises(InputError, match="not an image"):
        collect_images([tmp_path / "notes.txt"])
    with pytest.raises(InputError, match="no such"):
        collect_images([tmp_path / "nope"])


@pytest.mark.parametrize("fmt", ["coco", "labelme"])
def test_write_predictions_outputs_and_read_back(tmp_path, fmt):
    paths = images(tmp_path / "in")
    out = tmp_path / "out"
    stats = write_predictions(paths, [(64, 64)] * 2, DETS, out, nm_per_px=2.0, save=fmt)
    with (out / "detections.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 5 and rows[0]["class"] == "cube" and float(rows[0]["diameter_px"]) == pytest.approx(16)
    assert float(rows[0]["diameter_nm"]) == pytest.approx(32)
    with (out / "counts.csv").open() as f:
        counts = list(csv.DictReader(f))
    assert [(r["image"], r["cube"], r["sphere"], r["total"]) for r in counts] == [("im0.png", "1", "1", "2"), ("im1.png", "1", "2", "3")]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["classes"]["cube"] == {"count": 2, "mean": 32.0, "std": 0.0, "sem": 0.0, "unit": "nm"}
    assert stats.boxes[1].count == 3 and stats.masks is None and summary["classes"]["sphere"]["mean"] == pytest.approx((32 + 36 + 12) / 3)
    assert (out / "sizes_cube.png").stat().st_size > 0 and (out / "sizes_sphere.png").is_file()
    assert sorted(p.name for p in (out / "annotated").iterdir()) == ["im0.png", "im1.png"]
    # the saved annotations read back through synthgen.formats with the same boxes and classes
    samples = read_labelled_folder(out / fmt)
    assert [s.image_path.name for s in samples] == ["im0.png", "im1.png"]
    for s, d in zip(samples, DETS):
        np.testing.assert_allclose(s.gt.xyxy, d.xyxy, atol=1e-4)
        assert s.gt.class_id.tolist() == d.class_id.tolist()
    if fmt == "labelme":
        det, _ = read_label_file(out / "labelme" / "im1.json", out / "labelme" / "im1.png")
        assert len(det) == 3


def test_write_predictions_with_nothing_found(tmp_path):
    paths = images(tmp_path / "in", n=1)
    write_predictions(paths, [(64, 64)], [Detections.empty(True)], tmp_path / "out")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["classes"]["cube"]["count"] == 0 and summary["classes"]["cube"]["mean"] is None
    assert (tmp_path / "out" / "sizes_cube.png").is_file()


def test_collect_images_rejects_two_images_of_one_name(tmp_path):
    images(tmp_path / "a", n=1)
    images(tmp_path / "b", n=1)
    with pytest.raises(InputError, match="two images named"):
        collect_images([tmp_path / "a", tmp_path / "b"])


def test_cli_predict_corrupt_weights_is_one_line(tmp_path):
    images(tmp_path / "in", n=1)
    (tmp_path / "w.pt").write_bytes(b"not a checkpoint")
    res = runner.invoke(app, ["predict", str(tmp_path / "w.pt"), str(tmp_path / "in"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "w.pt: cannot load model" in res.stderr and not (tmp_path / "o").exists()


def test_cli_predict_bad_weights(tmp_path):
    images(tmp_path / "in", n=1)
    res = runner.invoke(app, ["predict", str(tmp_path / "none.pt"), str(tmp_path / "in"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "none.pt" in res.stderr and not (tmp_path / "o").exists()


@pytest.mark.slow
def test_cli_predict_end_to_end(tmp_path):
    from detector.models import model_cfg
    from detector.predict import trained_imgsz
    from detector.train import train
    from detector.yolo_env import load_model

    paths = images(tmp_path / "data" / "images", n=4)
    (tmp_path / "data" / "labels").mkdir()
    for p in paths:
        (tmp_path / "data" / "labels" / f"{p.stem}.txt").write_text("0 0.25 0.25 0.25 0.25\n1 0.6875 0.6875 0.25 0.25\n")
    (tmp_path / "data.yaml").write_text(f"path: {tmp_path / 'data'}\ntrain: images\nval: images\nnames: [cube, sphere]\n")
    run = tmp_path / "run"
    train("yolov3-tiny", tmp_path / "data.yaml", run, imgsz=64, epochs=1, batch=4, device="cpu", plots=False)
    # without --imgsz, predict runs at the size the model was trained at (a model YAML: the paper's 416)
    assert trained_imgsz(load_model(run / "weights" / "last.pt")) == 64
    assert trained_imgsz(load_model(model_cfg("yolov3-tiny"))) == 416
    out = tmp_path / "pred"
    res = runner.invoke(
        app,
        ["predict", str(run / "weights" / "last.pt"), str(tmp_path / "data"), "--out", str(out), "--conf", "0.0",
         "--device", "cpu", "--nm-per-px", "1.5", "--save", "coco"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    for name in ("detections.csv", "counts.csv", "summary.json", "sizes_cube.png", "sizes_sphere.png", "coco/annotations.json"):
        assert (out / name).is_file(), name
    assert len(list((out / "annotated").glob("*.png"))) == 4
    with (out / "detections.csv").open() as f:
        rows = list(csv.DictReader(f))
    samples = read_labelled_folder(out / "coco")
    # read back as labels: boxes under 1 px and repeats of a box are skipped (with a warning), the rest kept
    labels = {(r["image"], r["class"], *(round(float(r[k]), 2) for k in ("x1", "y1", "x2", "y2"))) for r in rows
              if float(r["width_px"]) >= 1 and float(r["height_px"]) >= 1}  # fmt: skip
    assert 0 < sum(len(s.gt) for s in samples) <= len(labels)
    assert all(float(r["diameter_nm"]) == pytest.approx(1.5 * float(r["diameter_px"]), rel=1e-4) for r in rows)


def test_cli_predict_without_weights_and_no_shipped_model(tmp_path, monkeypatch):
    import detector.weights as shipped

    monkeypatch.setattr(shipped, "SHIPPED", tmp_path / "absent.pt")
    images(tmp_path / "in", n=1)
    res = runner.invoke(app, ["predict", str(tmp_path / "in"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "absent.pt: no default model" in res.stderr and not (tmp_path / "o").exists()


@pytest.mark.slow
def test_cli_predict_uses_the_shipped_model_when_no_weights_are_given(tmp_path):
    from detector.weights import SHIPPED

    if not SHIPPED.is_file():
        pytest.skip(f"this checkout ships no default model ({SHIPPED})")
    images(tmp_path / "in", n=2, size=128)
    out = tmp_path / "pred"
    res = runner.invoke(app, ["predict", str(tmp_path / "in"), "--out", str(out), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert (out / "detections.csv").is_file() and len(list((out / "annotated").glob("*.png"))) == 2
