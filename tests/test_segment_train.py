"""`detector train --task segment`: the -seg models, outline label checks, fine-tuning a Segment model from
detector weights (matching layers transferred), and predict/evaluate using its outlines."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from detector import yolo_env
from detector.cli import app
from detector.models import arch_for_task, model_cfg, yaml_task
from detector.segmentation import check_segment_text
from synthgen.errors import InputError
from test_train import make_tiny_dataset

TINY = ["--imgsz", "64", "--batch", "2", "--epochs", "1", "--device", "cpu", "--no-plots"]


def make_segment_dataset(root: Path, n: int = 4, size: int = 64, seed: int = 0) -> Path:
    """test_train's tiny set with outline labels."""
    return make_tiny_dataset(root, n, size, seed, outlines=True)


def test_seg_yamls_build_segment_models_with_the_detector_backbones():
    for arch in ("yolov3-tiny", "yolov4-tiny"):
        seg_arch = arch_for_task(arch, "segment")
        assert seg_arch == f"{arch}-seg" and yaml_task(model_cfg(seg_arch)) == "segment"
        assert yaml_task(model_cfg(arch)) == "detect"
        det, seg = yolo_env.load_model(model_cfg(arch)), yolo_env.load_model(model_cfg(seg_arch))
        assert seg.task == "segment" and type(seg.model.model[-1]).__name__ == "Segment"
        # every layer of the detector before its head is there, with the same parameter shapes
        n = len(det.model.model) - 1
        assert len(seg.model.model) - 1 == n + 4  # plus the stride-8 branch
        for a, b in zip(det.model.model[:n], seg.model.model[:n]):
            assert [p.shape for p in a.parameters()] == [p.shape for p in b.parameters()]


def test_check_segment_text_errors_name_the_line(tmp_path):
    src = tmp_path / "a.txt"
    assert check_segment_text("0 0.1 0.1 0.2 0.1 0.2 0.2\n", src, 2) == 1
    for text, msg in [
        ("0 0.1 0.1 0.2 0.1 0.2 0.2\n0 0.5 0.5 0.1 0.1\n", "box line"),
        ("3 0.1 0.1 0.2 0.1 0.2 0.2\n", "out of range"),
        ("0 0.1 0.1 0.2\n", "at least 3"),
        ("0 0.1 0.1 0.2 0.1 1.5 0.2\n", r"\[0, 1\]"),
        ("0 a b c d e f\n", "numbers"),
    ]:
        with pytest.raises(InputError, match=msg) as e:
            check_segment_text(text, src, 2)
        assert e.value.path == src and e.value.line is not None


@pytest.mark.slow
def test_train_segment_then_fine_tune_from_detector_and_predict_outlines(tmp_path):
    data = make_segment_dataset(tmp_path / "seg")
    runner = CliRunner()
    r = runner.invoke(app, ["train", "--task", "segment", "--arch", "yolov4-tiny", "--data", str(data), "--out", str(tmp_path / "run"), *TINY])
    assert r.exit_code == 0, r.output
    best = tmp_path / "run" / "weights" / "best.pt"
    m = yolo_env.load_model(best)
    assert m.task == "segment"
    # fine-tune a Segment model from the shipped detector: backbone weights come over unchanged
    from detector.weights import shipped_weights

    r = runner.invoke(app, ["train", "--task", "segment", "--weights", str(shipped_weights()), "--data", str(data),
                            "--out", str(tmp_path / "ft"), *TINY, "--lr", "1e-9"])  # fmt: skip
    assert r.exit_code == 0, r.output
    ft = yolo_env.load_model(tmp_path / "ft" / "weights" / "last.pt")
    det = yolo_env.load_model(shipped_weights())
    assert ft.task == "segment"
    w_det = det.model.model[0].conv.weight.detach().float()
    w_ft = ft.model.model[0].conv.weight.detach().float()
    assert torch.allclose(w_det, w_ft, atol=1e-3)  # lr ~0: the detector's first conv survives
    # predict with the segmentation model: outlines come back as polygons, sizes from masks
    out = tmp_path / "pred"
    img = tmp_path / "seg" / "images" / "val"
    r = runner.invoke(app, ["predict", str(best), str(img), "--out", str(out), "--conf", "0.001", "--tile", "off", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    header = (out / "detections.csv").read_text().splitlines()[0].split(",")
    assert "ecd_px" in header and "mask_source" in header
    # evaluate scores the model's own outlines against ground-truth instance masks
    import csv

    from test_mask_eval import _masked_set

    _masked_set(tmp_path / "masked", n=1)
    r = runner.invoke(app, ["evaluate", str(best), "--set", f"M={tmp_path / 'masked'}", "--out", str(tmp_path / "ev"),
                            "--masks", "model", "--tile", "off", "--device", "cpu"])  # fmt: skip
    assert r.exit_code == 0, r.output
    with (tmp_path / "ev" / "masks.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert rows and {row["mask_source"] for row in rows} == {"model"}
