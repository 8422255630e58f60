"""detector export: output naming, loading exports, errors; export + predict with a tiny model (slow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from detector.cli import app
from detector.export import check_out, default_out
from detector.yolo_env import exported_format, is_model_path, load_model
from synthgen.errors import InputError

runner = CliRunner()


def test_exported_format_by_name(tmp_path):
    assert exported_format("a/best.onnx") == "onnx"
    assert exported_format("a/best_openvino_model") == "openvino"
    assert exported_format("a/best.pt") is None and exported_format("a/run") is None
    assert is_model_path("x.pt") and is_model_path("x.onnx") and not is_model_path("images")
    assert default_out(Path("w/best.pt"), "onnx") == Path("w/best.onnx")
    assert default_out(Path("w/best.pt"), "openvino") == Path("w/best_openvino_model")


def test_check_out_refuses_wrong_names_and_existing(tmp_path):
    with pytest.raises(InputError, match="ending in .onnx"):
        check_out(tmp_path / "m.bin", "onnx")
    with pytest.raises(InputError, match="_openvino_model"):
        check_out(tmp_path / "m.onnx", "openvino")
    (tmp_path / "m.onnx").write_bytes(b"x")
    with pytest.raises(InputError, match="--overwrite"):
        check_out(tmp_path / "m.onnx", "onnx")
    assert check_out(tmp_path / "m.onnx", "onnx", overwrite=True) == tmp_path / "m.onnx"


def test_corrupt_onnx_is_an_input_error(tmp_path):
    bad = tmp_path / "m.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(InputError):
        load_model(bad)
    with pytest.raises(InputError, match="no such"):
        load_model(tmp_path / "none.onnx")


def test_cli_export_bad_input_is_one_line(tmp_path):
    res = runner.invoke(app, ["export", str(tmp_path / "none.pt"), "--out", str(tmp_path / "m.onnx")])
    assert res.exit_code == 2 and "none.pt" in res.stderr and not (tmp_path / "m.onnx").exists()


@pytest.mark.slow
@pytest.mark.parametrize("fmt,name", [("onnx", "m.onnx"), ("openvino", "m_openvino_model")])
def test_export_predicts_like_pytorch(tmp_path, fmt, name):
    from test_train import make_tiny_dataset

    from detector.predict import predict_images, trained_imgsz
    from detector.train import train

    data = make_tiny_dataset(tmp_path / "data")
    run = tmp_path / "run"
    train("yolov3-tiny", data, run, imgsz=64, epochs=1, batch=2, device="cpu", plots=False)
    pt = run / "weights" / "last.pt"
    out = tmp_path / name
    res = runner.invoke(app, ["export", str(pt), "--format", fmt, "--out", str(out)])
    assert res.exit_code == 0, res.output
    exported = load_model(out)
    assert dict(exported.names) == dict(load_model(pt).names) and trained_imgsz(exported) == 64
    images = sorted((data.parent / "images" / "val").glob("*.png"))
    a = list(predict_images(load_model(pt), images, conf=0.05, device="cpu", tile="off"))
    b = list(predict_images(exported, images, conf=0.05, device="cpu", tile="off"))
    for da, db in zip(a, b):
        assert abs(len(da) - len(db)) <= 1
        for box, cls in zip(da.xyxy, da.class_id):  # every PyTorch box has an exported one within 1 px
            near = np.abs(db.xyxy - box).max(axis=1) <= 1.0 if len(db) else np.zeros(0, bool)
            assert near.any() and cls in db.class_id[near]
    res = runner.invoke(app, ["predict", str(out), str(images[0]), "--out", str(tmp_path / "pred"), "--device", "cpu"])
    assert res.exit_code == 0, res.output
