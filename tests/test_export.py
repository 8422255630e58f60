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
    # --runtime FMT on the .pt: exported once into the cache, then reused
    cache = tmp_path / "cache"
    args = ["predict", str(pt), str(images[0]), "--out", str(tmp_path / "pred2"), "--device", "cpu", "--runtime", fmt]
    res = runner.invoke(app, args, env={"NANOSYNTH_CACHE": str(cache)})
    assert res.exit_code == 0, res.output
    (cached,) = cache.iterdir()
    assert exported_format(cached) == fmt
    stamp = cached.stat().st_mtime_ns
    res = runner.invoke(app, [*args[:4], str(tmp_path / "pred3"), *args[5:]], env={"NANOSYNTH_CACHE": str(cache)})
    assert res.exit_code == 0, res.output
    assert cached.stat().st_mtime_ns == stamp and len(list(cache.iterdir())) == 1


def test_auto_runtime_choice(tmp_path, monkeypatch):
    from detector import export as ex

    monkeypatch.setattr(ex, "cpu_has_bf16", lambda: True)
    assert ex.auto_runtime(tmp_path / "m.pt", "cpu") == "openvino"
    assert ex.auto_runtime(tmp_path / "m.pt", "0") == "torch"  # a GPU runs the .pt
    assert ex.auto_runtime(tmp_path / "m.onnx", "cpu") == "onnx"  # an export runs on its own runtime
    monkeypatch.setattr(ex, "cpu_has_bf16", lambda: False)
    assert ex.auto_runtime(tmp_path / "m.pt", "cpu") == "torch"  # no bf16 units: OpenVINO f32 is no faster


def test_runtime_errors(tmp_path):
    from detector.export import load_for_runtime

    (tmp_path / "m.onnx").write_bytes(b"x")
    with pytest.raises(InputError, match="is an onnx model"):
        load_for_runtime(tmp_path / "m.onnx", "openvino", "cpu")
    with pytest.raises(InputError, match="unknown runtime"):
        load_for_runtime(tmp_path / "m.pt", "tensorrt", "cpu")
    import cv2

    (tmp_path / "img").mkdir()
    cv2.imwrite(str(tmp_path / "img" / "a.png"), np.zeros((64, 64), np.uint8))
    res = runner.invoke(app, ["predict", str(tmp_path / "m.onnx"), str(tmp_path / "img"), "--out", str(tmp_path / "o"), "--runtime", "torch"])
    assert res.exit_code == 2 and "m.onnx" in res.stderr and "--runtime torch" in res.stderr and not (tmp_path / "o").exists()


def test_cached_export_keyed_by_content(tmp_path, monkeypatch):
    from detector import export as ex

    monkeypatch.setenv("NANOSYNTH_CACHE", str(tmp_path / "cache"))
    made = []
    monkeypatch.setattr(ex, "export", lambda w, fmt, out: (made.append(out), out.write_bytes(b"m"))[0])
    pt = tmp_path / "best.pt"
    pt.write_bytes(b"one")
    first = ex.cached_export(pt, "onnx")
    assert ex.cached_export(pt, "onnx") == first and len(made) == 1  # made once, then reused
    pt.write_bytes(b"two")  # retrained under the same name: a new export
    assert ex.cached_export(pt, "onnx") != first and len(made) == 2
    assert first.parent == tmp_path / "cache" and first.name.startswith("best-") and first.suffix == ".onnx"
