"""evaluate.py / report.py / `detector evaluate`: COCO agreement, prediction readers, run folders, reports."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from detector.cli import app
from synthgen.annotations import Detections, Sample
from detector.evaluate import (
    ModelSpec,
    coco_ground_truth,
    coco_map,
    coco_results,
    model_specs,
    parse_set_args,
    read_predictions,
    score,
)
from synthgen.formats import read_labelled_folder
from synthgen.errors import InputError

runner = CliRunner()


def draw_set(folder: Path, n: int, seed: int, size: int = 96) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """`n` dark images with bright squares (cube, 0) and discs (sphere, 1) as a YOLO images/ + labels/ set."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    out = []
    for i in range(n):
        img = rng.integers(10, 40, (size, size), dtype=np.uint8)
        boxes, classes = [], []
        for k, (fx, fy) in enumerate([(0.08, 0.08), (0.55, 0.12), (0.2, 0.58), (0.6, 0.6)][: 2 + i % 3]):
            x, y, s = int(fx * size), int(fy * size), int(rng.integers(size // 6, size // 4))
            c = (k + i) % 2
            if c == 0:
                cv2.rectangle(img, (x, y), (x + s - 1, y + s - 1), 220, -1)
            else:
                cv2.circle(img, (x + s // 2, y + s // 2), s // 2, 200, -1)
            boxes.append([x, y, x + s, y + s])
            classes.append(c)
        name = f"img{i:02d}"
        cv2.imwrite(str(folder / "images" / f"{name}.png"), img)
        b = np.array(boxes, float)
        lines = [
            f"{c} {(x1 + x2) / 2 / size:.6f} {(y1 + y2) / 2 / size:.6f} {(x2 - x1) / size:.6f} {(y2 - y1) / size:.6f}"
            for (x1, y1, x2, y2), c in zip(b, classes)
        ]
        (folder / "labels" / f"{name}.txt").write_text("\n".join(lines) + "\n")
        out.append((name, b, np.array(classes)))
    return out


def write_yolo_conf(folder: Path, items, size: int = 96, shift: float = 0.0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, b, c in items:
        lines = [
            f"{k} {((x1 + x2) / 2 + shift) / size:.6f} {(y1 + y2) / 2 / size:.6f} {(x2 - x1) / size:.6f} {(y2 - y1) / size:.6f} 0.9"
            for (x1, y1, x2, y2), k in zip(b, c)
        ]
        (folder / f"{name}.txt").write_text("\n".join(lines) + "\n")


def toy_samples() -> tuple[list[Sample], list[Detections]]:
    rng = np.random.default_rng(3)
    samples, preds = [], []
    for i in range(4):
        xy = rng.uniform(0, 150, (6, 2))
        gt = np.concatenate([xy, xy + rng.uniform(10, 40, (6, 2))], 1)
        cls = rng.integers(0, 2, 6)
        pb = gt + rng.normal(0, 4, gt.shape)
        pb[:, 2:] = np.maximum(pb[:, 2:], pb[:, :2] + 2)
        pc = np.where(rng.random(6) < 0.15, 1 - cls, cls)
        pb = np.concatenate([pb, rng.uniform(0, 150, (2, 2)).repeat(2, 1) + [0, 0, 20, 20]])
        pc = np.concatenate([pc, [0, 1]])
        samples.append(Sample(Path(f"im{i}.png"), 200, 200, Detections(gt, cls)))
        preds.append(Detections(pb, pc, rng.random(len(pb))))
    return samples, preds


# ------------------------------------------------------------------ COCO


def test_coco_map_equals_pycocotools():
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    samples, preds = toy_samples()
    ours = coco_map(samples, preds)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = coco_ground_truth(samples)
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(coco_results(preds)), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ours["all"] == pytest.approx(ev.stats[0], abs=1e-12)
    assert 0 < ours["all"] < 1 and 0 < ours["cube"] < 1 and 0 < ours["sphere"] < 1


def test_coco_map_perfect_and_empty():
    samples, _ = toy_samples()
    perfect = [Detections(s.gt.xyxy, s.gt.class_id, np.ones(len(s.gt))) for s in samples]
    assert coco_map(samples, perfect)["all"] == pytest.approx(1.0)
    empty = [Detections.empty(True) for _ in samples]
    assert coco_map(samples, empty) == {"cube": 0.0, "sphere": 0.0, "all": 0.0}
    no_labels = [Sample(Path("a.png"), 10, 10, Detections.empty())]
    assert math.isnan(coco_map(no_labels, [Detections.empty(True)])["all"])


def test_coco_gt_has_required_fields():
    samples, _ = toy_samples()
    d = coco_ground_truth(samples)
    assert "info" in d and all(isinstance(im["id"], int) for im in d["images"])
    assert all({"area", "iscrowd", "bbox", "id"} <= set(a) for a in d["annotations"])


# ------------------------------------------------------------------ reading predictions


def test_yolo_and_coco_predictions_agree(tmp_path):
    items = draw_set(tmp_path / "set", 4, seed=0)
    samples = read_labelled_folder(tmp_path / "set")
    write_yolo_conf(tmp_path / "pred", items)
    yolo = read_predictions(tmp_path / "pred", "I", samples)
    assert [len(d) for d in yolo] == [len(s.gt) for s in samples]
    np.testing.assert_allclose(yolo[1].xyxy, samples[1].gt.xyxy, atol=1e-3)
    # the same detections as a COCO results json, with file-name ids and with 1-based integer ids
    res = []
    for s, d in zip(samples, yolo):
        for b, c in zip(d.xyxy.tolist(), d.class_id):
            res.append({"image_id": s.image_path.name, "category_id": int(c) + 1, "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "score": 0.9})
    (tmp_path / "res.json").write_text(json.dumps(res))
    coco = read_predictions(tmp_path / "res.json", "I", samples)
    for a, b in zip(yolo, coco):
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)
        assert a.class_id.tolist() == b.class_id.tolist()
    ids = {s.image_path.name: i + 1 for i, s in enumerate(samples)}
    (tmp_path / "res_int.json").write_text(json.dumps([{**r, "image_id": ids[r["image_id"]]} for r in res]))
    coco_int = read_predictions(tmp_path / "res_int.json", "I", samples)
    assert [len(d) for d in coco_int] == [len(d) for d in coco]
    m = score("I", ModelSpec("x", "-"), samples, coco)
    assert m.metrics.overall.ap50 == 1.0 and m.map50_95["all"] == pytest.approx(1.0, abs=1e-3)


def test_prediction_errors(tmp_path):
    draw_set(tmp_path / "set", 2, seed=0)
    samples = read_labelled_folder(tmp_path / "set")
    (tmp_path / "nothing").mkdir()
    with pytest.raises(InputError, match="no prediction file"):
        read_predictions(tmp_path / "nothing", "I", samples)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "img00.txt").write_text("0 0.5 0.5 0.1 0.1\n")  # no confidence column
    with pytest.raises(InputError) as e:
        read_predictions(tmp_path / "bad", "I", samples)
    assert "img00.txt:1" in str(e.value)


def test_set_args():
    assert parse_set_args(["I=a/b", "II=c"]) == {"I": Path("a/b"), "II": Path("c")}
    assert parse_set_args(["data/val-I"]) == {"val-I": Path("data/val-I")}
    with pytest.raises(InputError):
        parse_set_args(["I=a", "I=b"])


def test_run_folder_lists_every_checkpoint(tmp_path):
    run = tmp_path / "M1"
    (run / "checkpoints").mkdir(parents=True)
    (run / "weights").mkdir()
    for e in (2, 1):
        (run / "checkpoints" / f"epoch{e:04d}.pt").write_bytes(b"x")
    (run / "weights" / "best.pt").write_bytes(b"x")
    (run / "weights" / "last.pt").write_bytes(b"x")
    index = [{"epoch": e, "batches": 5 * e, "path": f"checkpoints/epoch{e:04d}.pt"} for e in (1, 2)]
    (run / "checkpoints.json").write_text(json.dumps(index))
    # an interrupted run: last.pt may be later than the last checkpoint, so its batch count is unknown
    assert [(s.checkpoint, s.batches) for s in model_specs([run])][-1] == ("last", None)
    (run / "done").write_text("{}")
    specs = model_specs([run])
    assert [(s.model, s.checkpoint, s.batches) for s in specs] == [
        ("M1", "epoch0001", 5), ("M1", "epoch0002", 10), ("M1", "best", None), ("M1", "last", 10),
    ]  # fmt: skip
    (run / "checkpoints" / "epoch0001.pt").unlink()
    with pytest.raises(InputError, match="missing"):
        model_specs([run])
    with pytest.raises(InputError, match="no such"):
        model_specs([tmp_path / "nope"])
    # a run's weights/best.pt is named after the run; any other file (the shipped model too) after itself
    assert [(s.model, s.checkpoint) for s in model_specs([run / "weights" / "best.pt"])] == [("M1", "best")]
    (run / "weights" / "my-model.pt").write_bytes(b"x")
    assert [(s.model, s.checkpoint) for s in model_specs([run / "weights" / "my-model.pt"])] == [("my-model", "my-model")]


# ------------------------------------------------------------------ CLI with --predictions


def _rows(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_cli_evaluate_predictions_side_by_side(tmp_path):
    items_i = draw_set(tmp_path / "I", 3, seed=1)
    items_ii = draw_set(tmp_path / "II", 3, seed=2)
    write_yolo_conf(tmp_path / "good" / "I", items_i)
    write_yolo_conf(tmp_path / "good" / "II", items_ii)
    write_yolo_conf(tmp_path / "shifted" / "I", items_i, shift=6.0)  # IoU of a 16-24 px box drops below 0.5
    write_yolo_conf(tmp_path / "shifted" / "II", items_ii, shift=6.0)
    out = tmp_path / "report"
    res = runner.invoke(
        app,
        ["evaluate", "--set", f"I={tmp_path / 'I'}", "--set", f"II={tmp_path / 'II'}", "--out", str(out),
         "--predictions", f"good={tmp_path / 'good'}", "--predictions", f"shifted={tmp_path / 'shifted'}", "--overlays"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    rows = _rows(out / "metrics.csv")
    assert {"set", "model", "checkpoint", "batches", "class", "iou", "map50", "map50_95", "precision", "recall",
            "tp", "fp", "fn", "labelled", "detected_pct"} <= set(rows[0])  # fmt: skip
    assert len(rows) == 2 * 2 * 4  # sets x models x (cube, sphere, all, any)
    good = [r for r in rows if r["model"] == "good" and r["class"] == "all"]
    assert all(float(r["map50"]) == 1.0 and float(r["detected_pct"]) == 100.0 and float(r["iou"]) > 0.99 for r in good)
    for r in rows:
        for k in ("iou", "map50", "map50_95", "precision", "recall"):
            assert r[k] == "nan" or 0.0 <= float(r[k]) <= 1.0
    shifted = [r for r in rows if r["model"] == "shifted" and r["class"] == "all"]
    assert all(float(r["map50"]) < 1.0 for r in shifted)
    md = (out / "report.md").read_text()
    assert "| good |" in md and "| shifted |" in md
    assert len(list((out / "overlays" / "I" / "good").glob("*.png"))) == 3
    assert not list(out.glob(".staging*"))


def test_cli_evaluate_bad_set_is_one_line(tmp_path):
    (tmp_path / "p").mkdir()
    res = runner.invoke(app, ["evaluate", "--set", f"I={tmp_path / 'missing'}", "--out", str(tmp_path / "o"), "--predictions", str(tmp_path / "p")])
    assert res.exit_code == 2
    assert res.stderr.strip().startswith("error:") and "missing" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------ end to end with a trained model


@pytest.mark.slow
def test_train_tiny_then_evaluate_run_folder(tmp_path):
    from detector.train import train

    items = draw_set(tmp_path / "train", 6, seed=5, size=64)
    draw_set(tmp_path / "II", 2, seed=6, size=64)
    (tmp_path / "data.yaml").write_text(
        f"path: {tmp_path / 'train'}\ntrain: images\nval: images\nnames:\n  0: cube\n  1: sphere\n"
    )
    run = tmp_path / "runs" / "M1"
    train("yolov4-tiny", tmp_path / "data.yaml", run, imgsz=64, epochs=1, batch=4, checkpoint_every=1, device="cpu", plots=False)
    out = tmp_path / "report"
    res = runner.invoke(
        app,
        ["evaluate", str(run), "--set", f"I={tmp_path / 'train'}", "--set", f"II={tmp_path / 'II'}", "--out", str(out),
         "--imgsz", "64", "--device", "cpu", "--conf", "0.001"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    rows = _rows(out / "metrics.csv")
    ckpts = {r["checkpoint"] for r in rows}
    assert {"epoch0001", "best", "last"} <= ckpts
    assert all(r["batches"] for r in rows if r["checkpoint"] == "epoch0001")
    for r in rows:
        assert int(r["tp"]) + int(r["fn"]) == int(r["labelled"])
        for k in ("map50", "map50_95", "recall"):
            assert r[k] == "nan" or 0.0 <= float(r[k]) <= 1.0
    assert (out / "report.md").is_file() and (out / "curves_I.png").is_file() and (out / "curves_II.png").is_file()
    assert len(items) == 6


# ------------------------------------------------------------------ the real validation sets


def test_baseline_predictions_on_real_sets(shared_dir, tmp_path):
    """Score the classical baseline on val-I..III through `evaluate --predictions` (numbers in range)."""
    sets = [shared_dir / "data" / "real-sem" / n for n in ("val-I", "val-II", "val-III")]
    if not all(s.is_dir() for s in sets):
        pytest.skip("real validation sets not found")
    base = tmp_path / "base"
    args = ["baseline", "--out", str(base)]
    for name, s in zip(("I", "II", "III"), sets):
        args += ["--set", f"{name}={s}"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    ev = runner.invoke(app, ["evaluate", "--predictions", f"baseline={base / 'predictions'}", "--out", str(tmp_path / "ev"), *args[3:]])
    assert ev.exit_code == 0, ev.output
    a, b = _rows(base / "metrics.csv"), _rows(tmp_path / "ev" / "metrics.csv")
    assert len(a) == len(b) == 3 * 4
    for ra, rb in zip(a, b):  # the txt round trip (8 decimals) keeps every count
        assert (ra["tp"], ra["fp"], ra["fn"]) == (rb["tp"], rb["fp"], rb["fn"])
        assert float(ra["map50"] if ra["map50"] != "nan" else 0) == pytest.approx(float(rb["map50"] if rb["map50"] != "nan" else 0), abs=1e-3)
    allrows = {r["set"]: r for r in a if r["class"] == "all"}
    assert int(allrows["I"]["labelled"]) == 406 and int(allrows["II"]["labelled"]) == 829 and int(allrows["III"]["labelled"]) == 82
    assert 0 < float(allrows["I"]["detected_pct"]) <= 100


# ------------------------------------------------------------------ flaws of real data


def test_degenerate_box_warns_once_and_scores_as_if_absent(tmp_path):
    """A zero-width box (as on line 407 of a published STEM label file): one warning naming file and
    line, exit 0, and every metric exactly as for the same set without that line."""
    import shutil

    items = draw_set(tmp_path / "clean", 4, seed=11)
    shutil.copytree(tmp_path / "clean", tmp_path / "flawed")
    label = tmp_path / "flawed" / "labels" / "img01.txt"
    lines = label.read_text().splitlines()
    label.write_text("\n".join([lines[0], "0 0.500000 0.500000 0.000000 0.120000", *lines[1:]]) + "\n")
    write_yolo_conf(tmp_path / "preds", items, shift=3.0)  # imperfect detections: metrics below 1

    def run(set_dir: Path, out: Path, *extra: str):
        return runner.invoke(
            app, ["evaluate", "--set", f"S={set_dir}", "--out", str(out), "--predictions", f"m={tmp_path / 'preds'}", *extra]
        )

    clean = run(tmp_path / "clean", tmp_path / "out-clean")
    flawed = run(tmp_path / "flawed", tmp_path / "out-flawed")
    assert clean.exit_code == 0 and flawed.exit_code == 0, flawed.output
    assert "Traceback" not in flawed.output
    warnings = [ln for ln in flawed.stderr.splitlines() if ln.strip()]
    assert warnings == [f"warning: {label}:2: degenerate box (0 x 11.5 px, under 1 px): skipped"]
    assert _rows(tmp_path / "out-flawed" / "metrics.csv") == _rows(tmp_path / "out-clean" / "metrics.csv")
    assert any(float(r["map50_95"]) < 1.0 for r in _rows(tmp_path / "out-clean" / "metrics.csv"))
    assert "set S: 1 label skipped" in flawed.stdout and "skipped" not in clean.stdout
    md = (tmp_path / "out-flawed" / "report.md").read_text()
    assert "set S: 1 label skipped" in md
    clean_md = (tmp_path / "out-clean" / "report.md").read_text()
    assert [ln for ln in md.splitlines() if ln and "skipped" not in ln] == [ln for ln in clean_md.splitlines() if ln]
    gt = lambda d: json.loads((tmp_path / d / "coco" / "S_gt.json").read_text())  # noqa: E731
    assert gt("out-flawed") == gt("out-clean")

    strict = run(tmp_path / "flawed", tmp_path / "out-strict", "--strict")
    assert strict.exit_code == 2 and strict.stderr.strip().splitlines() == [
        f"error: {label}:2: degenerate box (0 x 11.5 px, under 1 px): skipped (an error with --strict)"
    ]
    assert not (tmp_path / "out-strict").exists()


def test_corrupt_image_in_a_set_is_skipped_with_a_count(tmp_path):
    items = draw_set(tmp_path / "S", 3, seed=4)
    img = tmp_path / "S" / "images" / "img02.png"
    img.write_bytes(img.read_bytes()[:200])  # truncated
    write_yolo_conf(tmp_path / "preds", items)
    res = runner.invoke(app, ["evaluate", "--set", f"S={tmp_path / 'S'}", "--out", str(tmp_path / "o"), "--predictions", str(tmp_path / "preds")])
    assert res.exit_code == 0, res.output
    assert res.stderr.strip().splitlines() == [f"warning: {img}: cannot read image (truncated): image skipped"]
    assert "set S: 1 image skipped" in res.stdout
    rows = [r for r in _rows(tmp_path / "o" / "metrics.csv") if r["class"] == "all"]
    assert float(rows[0]["map50"]) == 1.0  # the two readable images, perfectly detected
