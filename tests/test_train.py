"""detector.train / detector.experiment / `detector train|experiment`: tiny CPU runs, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from detector import yolo_env
from detector.cli import app
from detector.experiment import load_experiment, parse_experiment, run_experiment
from detector.train import default_workers, read_checkpoints, resolve_data_yaml, train
from synthgen.errors import InputError

TINY = {"imgsz": 64, "batch": 2, "plots": False, "device": "cpu"}


def make_tiny_dataset(root: Path, n: int = 4, size: int = 64, seed: int = 0, outlines: bool = False) -> Path:
    """n train + n val images: one bright square (cube) and one disc (sphere) each, YOLO box labels
    (`outlines`: ultralytics' segment labels, the square's corners and 16 points on the disc)."""
    rng = np.random.default_rng(seed)
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = np.full((size, size, 3), 20, np.uint8)
            lines = []
            for cls in (0, 1):
                r = int(rng.integers(6, 10))
                cx, cy = (int(v) for v in rng.integers(r + 1, size - r - 1, 2))
                if cls == 0:
                    img[cy - r : cy + r, cx - r : cx + r] = 200
                    pts = np.array([[cx - r, cy - r], [cx + r, cy - r], [cx + r, cy + r], [cx - r, cy + r]], float)
                else:
                    cv2.circle(img, (cx, cy), r, (230, 230, 230), -1)
                    t = np.linspace(0, 2 * np.pi, 16, endpoint=False)
                    pts = np.column_stack([cx + r * np.cos(t), cy + r * np.sin(t)])
                if outlines:
                    lines.append(f"{cls} " + " ".join(f"{v:.6f}" for v in (pts / size).ravel()))
                else:
                    lines.append(f"{cls} {cx / size:.6f} {cy / size:.6f} {2 * r / size:.6f} {2 * r / size:.6f}")
            cv2.imwrite(str(root / "images" / split / f"im{i}.png"), img)
            (root / "labels" / split / f"im{i}.txt").write_text("\n".join(lines) + "\n")
    data = root / "data.yaml"  # relative path: must resolve against this file, not ultralytics' datasets dir
    data.write_text("path: .\ntrain: images/train\nval: images/val\nnames: {0: cube, 1: sphere}\n")
    return data


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny"))


class Interrupt(Exception):
    pass


def _interrupt_after_first_epoch(trainer) -> None:
    if trainer.epoch == 0:
        raise Interrupt


# ---------------------------------------------------------------- fast: input checks, devices, workers


def test_resolve_data_yaml_makes_paths_absolute(tiny_data):
    data = resolve_data_yaml(tiny_data)
    assert Path(data["path"]) == tiny_data.parent.resolve()
    assert Path(data["train"]).is_absolute() and Path(data["train"]).is_dir()
    assert data["names"] == {0: "cube", 1: "sphere"} and data["nc"] == 2


def test_missing_data_yaml_is_input_error(tmp_path):
    with pytest.raises(InputError, match="no such dataset YAML"):
        resolve_data_yaml(tmp_path / "nope.yaml")


def test_data_yaml_without_images_is_input_error(tmp_path):
    (tmp_path / "images" / "train").mkdir(parents=True)
    (tmp_path / "images" / "val").mkdir(parents=True)
    y = tmp_path / "data.yaml"
    y.write_text("path: .\ntrain: images/train\nval: images/val\nnames: [cube, sphere]\n")
    with pytest.raises(InputError, match="train split has no images") as e:
        resolve_data_yaml(y)
    assert str(y) in str(e.value)


def test_data_yaml_lacking_keys_is_input_error(tmp_path):
    y = tmp_path / "data.yaml"
    y.write_text("train: images\n")
    with pytest.raises(InputError, match="lacks val, names"):
        resolve_data_yaml(y)


def test_unknown_arch_is_input_error(tiny_data, tmp_path):
    with pytest.raises(InputError, match="unknown architecture 'yolov9-huge'"):
        train("yolov9-huge", tiny_data, tmp_path / "run", **TINY)
    assert not (tmp_path / "run").exists()  # nothing half-written


def test_select_device():
    import torch

    assert yolo_env.select_device("cpu") == "cpu"
    assert yolo_env.select_device("auto") == ("0" if torch.cuda.is_available() else "cpu")
    with pytest.raises(InputError, match="unknown device"):
        yolo_env.select_device("gpu please")
    if torch.cuda.device_count() < 8:
        with pytest.raises(InputError, match=r"no CUDA device (0,)?7 \(this machine has"):
            yolo_env.select_device("0,7")


def test_default_workers():
    assert default_workers("cpu", cores=2) == 0  # workers would steal the cores torch trains on
    assert default_workers("cpu", cores=16) == 4
    assert default_workers("0", cores=16) == 8


def test_cpu_threads_uses_all_cores():
    import torch

    yolo_env.yolo_class()
    torch_utils = yolo_env.ultralytics_module("utils.torch_utils")
    assert torch_utils.NUM_THREADS == yolo_env.usable_cores()
    torch_utils.select_device("cpu", verbose=False)  # ultralytics resets torch threads here
    assert torch.get_num_threads() == yolo_env.usable_cores()


def test_cli_train_bad_data_exits_2(tmp_path):
    res = CliRunner().invoke(
        app, ["train", "--arch", "yolov4-tiny", "--data", str(tmp_path / "none.yaml"), "--out", str(tmp_path / "r")]
    )
    assert res.exit_code == 2
    assert f"error: {tmp_path / 'none.yaml'}: no such dataset YAML" in res.output


def test_cli_train_needs_arch_and_data_unless_resume(tmp_path):
    res = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "r")])
    assert res.exit_code == 2 and "--data and --arch (or --weights) are required" in res.output
    res = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "r"), "--resume"])
    assert res.exit_code == 2 and "nothing to resume" in res.output


def test_cli_train_unknown_arch_exits_2(tmp_path):
    res = CliRunner().invoke(app, ["train", "--arch", "yolov5", "--data", "d.yaml", "--out", str(tmp_path)])
    assert res.exit_code == 2


# ---------------------------------------------------------------- experiment planning


def _write_config(tmp_path: Path, data_yaml: Path, archs=("yolov3-tiny", "yolov4-tiny"), **train_opts) -> Path:
    cfg = {
        "runs": "runs",
        "archs": list(archs),
        "datasets": {"A": str(data_yaml), "B": str(data_yaml)},
        "train": {"imgsz": 64, "batch": 2, "epochs": 1, "plots": False, "device": "cpu", **train_opts},
    }
    p = tmp_path / "exp.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def test_parse_experiment_grid(tmp_path, tiny_data):
    plan = load_experiment(_write_config(tmp_path, tiny_data))
    assert [r.name for r in plan] == ["M1-yolov3-tiny-A", "M2-yolov4-tiny-A", "M3-yolov3-tiny-B", "M4-yolov4-tiny-B"]
    assert all(r.run_dir.parent == tmp_path / "runs" for r in plan)
    assert plan[0].options["imgsz"] == 64 and {r.status() for r in plan} == {"new"}


@pytest.mark.parametrize(
    ("cfg", "msg"),
    [
        ({"runs": "r", "archs": ["yolov9"], "datasets": {"A": "a.yaml"}}, "unknown architecture"),
        ({"runs": "r", "archs": ["yolov4-tiny"], "datasets": {"A": "a.yaml"}, "train": {"lr0": 1}}, "unknown train option"),
        ({"archs": ["yolov4-tiny"], "datasets": {"A": "a.yaml"}}, "lacks runs"),
        ({"runs": "r", "archs": ["yolov4-tiny"], "datasets": ["a.yaml"]}, "datasets must map"),
    ],
)
def test_parse_experiment_bad_config(tmp_path, cfg, msg):
    with pytest.raises(InputError, match=msg) as e:
        parse_experiment(cfg, tmp_path / "exp.yaml")
    assert str(tmp_path / "exp.yaml") in str(e.value)


def test_experiment_skips_finished_runs(tmp_path, tiny_data, monkeypatch):
    plan = load_experiment(_write_config(tmp_path, tiny_data))
    for run in plan:  # what a finished run leaves behind
        (run.run_dir / "weights").mkdir(parents=True)
        (run.run_dir / "weights" / "best.pt").write_bytes(b"")
        (run.run_dir / "done").write_text("{}")
    import detector.train as train_mod

    monkeypatch.setattr(train_mod, "train", lambda *a, **k: pytest.fail("finished run retrained"))
    assert [s for _, s in run_experiment(plan)] == ["skipped"] * 4


# ---------------------------------------------------------------- slow: real tiny trainings on CPU


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["yolov3-tiny", "yolov4-tiny"])
def test_train_writes_checkpoint_that_reloads_and_predicts(arch, tiny_data, tmp_path):
    run = tmp_path / arch
    res = train(arch, tiny_data, run, epochs=1, checkpoint_every=1, **TINY)
    assert res.best.is_file() and res.last.is_file() and (run / "done").is_file() and (run / "results.csv").is_file()
    ck = read_checkpoints(run)
    assert ck == res.checkpoints and len(ck) == 1
    assert ck[0]["epoch"] == 1 and ck[0]["batches"] == 2 and ck[0]["images"] == 4  # 4 images, batch 2
    assert "metrics/mAP50(B)" in ck[0]["metrics"]
    model = yolo_env.load_model(run / ck[0]["path"])
    assert model.names == {0: "cube", 1: "sphere"}
    image = next((tiny_data.parent / "images" / "val").glob("*.png"))
    out = model.predict(str(image), imgsz=64, device="cpu", conf=0.0, verbose=False)
    assert len(out) == 1 and out[0].boxes.xyxy.shape[1] == 4
    # a second fresh run into the same folder is refused instead of overwriting it
    with pytest.raises(InputError, match="--resume"):
        train(arch, tiny_data, run, epochs=1, **TINY)


@pytest.mark.slow
def test_resume_continues_an_interrupted_run(tiny_data, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(Interrupt):
        train("yolov4-tiny", tiny_data, run, epochs=2, checkpoint_every=1,
              callbacks={"on_fit_epoch_end": _interrupt_after_first_epoch}, **TINY)
    assert (run / "weights" / "last.pt").is_file() and not (run / "done").exists()
    assert [c["epoch"] for c in read_checkpoints(run)] == [1]

    res = train("yolov4-tiny", None, run, resume=True, checkpoint_every=1, device="cpu")
    assert not res.resumed_finished and (run / "done").is_file()
    assert [(c["epoch"], c["batches"]) for c in res.checkpoints] == [(1, 2), (2, 4)]
    assert len((run / "results.csv").read_text().strip().splitlines()) == 3  # header + 2 epochs

    again = train("yolov4-tiny", None, run, resume=True, device="cpu")  # finished: nothing to do
    assert again.resumed_finished and again.checkpoints == res.checkpoints


@pytest.mark.slow
def test_cli_experiment_trains_then_skips(tmp_path, tiny_data):
    cfg = _write_config(tmp_path, tiny_data, archs=["yolov3-tiny"])
    data = yaml.safe_load(cfg.read_text())
    data["datasets"] = {"A": str(tiny_data)}
    cfg.write_text(yaml.safe_dump(data))
    first = CliRunner().invoke(app, ["experiment", str(cfg)])
    assert first.exit_code == 0, first.output
    assert "M1-yolov3-tiny-A: trained" in first.output
    assert (tmp_path / "runs" / "M1-yolov3-tiny-A" / "weights" / "best.pt").is_file()
    second = CliRunner().invoke(app, ["experiment", str(cfg)])
    assert second.exit_code == 0 and "M1-yolov3-tiny-A: skipped" in second.output
    ck = json.loads((tmp_path / "runs" / "M1-yolov3-tiny-A" / "checkpoints.json").read_text())
    assert ck[-1]["epoch"] == 1


@pytest.mark.slow
def test_cli_train_then_resume_finished(tmp_path, tiny_data):
    out = tmp_path / "run"
    args = ["train", "--arch", "yolov4-tiny", "--data", str(tiny_data), "--out", str(out), "--imgsz", "64",
            "--epochs", "1", "--batch", "2", "--checkpoint-every", "1", "--device", "cpu", "--no-plots"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert f"best weights: {out / 'weights' / 'best.pt'}" in res.output
    assert (out / "checkpoints" / "epoch0001.pt").is_file()
    res = CliRunner().invoke(app, ["train", "--out", str(out), "--resume", "--device", "cpu"])
    assert res.exit_code == 0 and "run already finished, nothing to resume" in res.output


@pytest.mark.slow
def test_cli_fine_tune_from_weights_with_classes_in_other_order(tmp_path, tiny_data):
    base_run = tmp_path / "base"
    train("yolov4-tiny", tiny_data, base_run, epochs=1, checkpoint_every=1, **TINY)
    # the same images, the classes listed the other way round (labels rewritten to match)
    other = make_tiny_dataset(tmp_path / "other", seed=1)
    for label in (tmp_path / "other" / "labels").rglob("*.txt"):
        lines = [ln.split() for ln in label.read_text().splitlines()]
        label.write_text("".join(" ".join([str(1 - int(p[0])), *p[1:]]) + "\n" for p in lines))
    other.write_text("path: .\ntrain: images/train\nval: images/val\nnames: {0: sphere, 1: cube}\n")
    out = tmp_path / "tuned"
    res = CliRunner().invoke(app, ["train", "--weights", str(base_run / "weights" / "best.pt"), "--data", str(other),
                                   "--out", str(out), "--imgsz", "64", "--epochs", "1", "--batch", "2",
                                   "--checkpoint-every", "1", "--device", "cpu", "--no-plots"])
    assert res.exit_code == 0, res.output
    base = json.loads((out / "base.json").read_text())
    assert base["weights"] == str((base_run / "weights" / "best.pt").resolve())
    assert base["classes"] == {"sphere": 1, "cube": 0} and base["images"] == 4
    ck = read_checkpoints(out)
    assert ck[-1]["images"] == 4 and ck[-1]["images_total"] == 4 + 4
    assert yolo_env.load_model(out / "weights" / "best.pt").names == {0: "sphere", 1: "cube"}
