"""Faults of `detector train`: bad options and data, corrupt weights, kill -9 and damaged checkpoints.

Every case ends either in one `error: ...` line with exit code 2, or in a run that `--resume` completes.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from detector import yolo_env
from detector.cli import app
from detector.train import read_checkpoints, train
from test_train import TINY, Interrupt, make_tiny_dataset


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny"))


def _one_error_line(res) -> str:
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    assert "Traceback" not in res.output
    return lines[0]


def _detector(*argv, **kw) -> subprocess.CompletedProcess:
    exe = str(Path(sys.executable).with_name("detector"))
    return subprocess.run([exe, *map(str, argv)], capture_output=True, text=True, timeout=600, **kw)


# ---------------------------------------------------------------- fast: options, weights, labels


@pytest.mark.parametrize(
    ("args", "msg"),
    [
        (["--lr", "-1"], "--lr must be > 0 and <= 1, got -1"),
        (["--lr", "5"], "--lr must be > 0 and <= 1, got 5"),
        (["--lr", "nan"], "--lr must be > 0"),
        (["--epochs", "0"], "--epochs must be >= 1, got 0"),
        (["--batch", "0"], "--batch must be >= 1, got 0"),
        (["--imgsz", "16"], "--imgsz must be >= 32 and <= 8192, got 16"),
        (["--checkpoint-every", "0"], "--checkpoint-every must be >= 1"),
        (["--workers", "-1"], "--workers must be >= 0"),
    ],
)
def test_bad_numeric_option_is_one_line(tmp_path, tiny_data, args, msg):
    res = CliRunner().invoke(app, ["train", "--arch", "yolov4-tiny", "--data", str(tiny_data), "--out", str(tmp_path / "r"), *args])
    assert msg in _one_error_line(res)
    assert not (tmp_path / "r").exists()


def test_ranges_are_in_help():
    out = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "200"}).output
    for text in ("32..8192", ">= 1.", "> 0 and <= 1", ">= 0"):
        assert text in out


def test_bad_lr_in_a_subprocess_is_one_line(tmp_path, tiny_data):
    proc = _detector("train", "--arch", "yolov4-tiny", "--data", tiny_data, "--out", tmp_path / "r", "--lr", "-1")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == ["error: --lr must be > 0 and <= 1, got -1"]


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated zip", b"\x89PNG\r\n\x1a\n not weights"])
def test_corrupt_weights_is_one_line_without_download_hint(tmp_path, tiny_data, content):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(content)
    res = CliRunner().invoke(app, ["train", "--weights", str(bad), "--data", str(tiny_data), "--out", str(tmp_path / "r")])
    line = _one_error_line(res)
    assert str(bad) in line and "cannot load model" in line
    assert "yolo26n" not in res.output and "yolo predict" not in res.output
    with pytest.raises(Exception) as e:  # the same one line from the loader that predict/evaluate use
        yolo_env.load_model(bad)
    assert len(str(e.value).splitlines()) == 1 and "yolo26n" not in str(e.value)


@pytest.mark.parametrize(
    ("line", "msg"),
    [("0 nan 0.5 0.2 0.2", "non-finite"), ("7 0.5 0.5 0.2 0.2", "class 7 out of range"), ("0 0.5 0.5", "expected 5")],
)
def test_bad_label_fails_before_training(tmp_path, line, msg):
    data = make_tiny_dataset(tmp_path / "data")
    label = tmp_path / "data" / "labels" / "train" / "im2.txt"
    label.write_text(label.read_text() + line + "\n")
    res = CliRunner().invoke(app, ["train", "--arch", "yolov4-tiny", "--data", str(data), "--out", str(tmp_path / "r"),
                                   "--imgsz", "64", "--epochs", "1", "--batch", "2", "--device", "cpu"])
    err = _one_error_line(res)
    assert f"{label}:3:" in err and msg in err
    assert not (tmp_path / "r" / "weights").exists()  # nothing trained


def test_resume_of_an_empty_folder_is_one_line(tmp_path):
    res = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "r"), "--resume"])
    assert "nothing to resume" in _one_error_line(res)


# ---------------------------------------------------------------- slow: damaged checkpoints, kill -9


def _interrupt_after_epoch(n: int):
    def cb(trainer) -> None:
        if trainer.epoch + 1 == n:
            raise Interrupt

    return cb


@pytest.mark.slow
def test_truncated_last_pt_resumes_from_newest_checkpoint(tmp_path, tiny_data):
    run = tmp_path / "run"
    with pytest.raises(Interrupt):
        train("yolov4-tiny", tiny_data, run, epochs=2, checkpoint_every=1,
              callbacks={"on_fit_epoch_end": _interrupt_after_epoch(1)}, **TINY)
    last = run / "weights" / "last.pt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # what kill -9 mid-write used to leave

    fresh = CliRunner().invoke(app, ["train", "--arch", "yolov4-tiny", "--data", str(tiny_data), "--out", str(run)])
    assert "--resume" in _one_error_line(fresh)  # the run is still there, and resumable

    res = CliRunner().invoke(app, ["train", "--out", str(run), "--resume", "--device", "cpu", "--no-plots"])
    assert res.exit_code == 0, res.output
    warn = [ln for ln in res.output.splitlines() if ln.startswith("warning:")]
    assert len(warn) == 1 and "weights/last.pt" in warn[0] and "resuming from checkpoints/epoch0001.pt" in warn[0]
    assert "optimizer state restarts" in warn[0] and "Traceback" not in res.output
    assert (run / "done").is_file() and (run / "weights" / "last.pt.damaged").is_file()
    assert [c["epoch"] for c in read_checkpoints(run)] == [1, 2]
    assert [ln.split(",")[0].strip() for ln in (run / "results.csv").read_text().splitlines()[1:]] == ["1", "2"]
    yolo_env.load_model(run / "weights" / "best.pt")


@pytest.mark.slow
def test_killed_in_final_validation_is_marked_finished(tmp_path, tiny_data):
    run = tmp_path / "run"
    # the last epoch is saved (last.pt with its optimizer) and then the process dies: ultralytics'
    # own resume would stop with "training to 1 epochs is finished, nothing to resume"
    with pytest.raises(Interrupt):
        train("yolov4-tiny", tiny_data, run, epochs=1, checkpoint_every=1,
              callbacks={"on_model_save": _interrupt_after_epoch(1)}, **TINY)
    assert not (run / "done").exists()
    (run / "weights" / "best.pt").write_bytes(b"PK\x03\x04")  # and best.pt was being rewritten
    res = CliRunner().invoke(app, ["train", "--out", str(run), "--resume", "--device", "cpu"])
    assert res.exit_code == 0 and "Traceback" not in res.output, res.output
    assert "final validation was interrupted: marked finished" in res.output
    assert json.loads((run / "done").read_text())["note"]
    for name in ("last.pt", "best.pt"):
        ckpt = yolo_env.read_checkpoint(run / "weights" / name)
        assert ckpt.get("optimizer") is None  # stripped, as a finished run's weights are
    again = CliRunner().invoke(app, ["train", "--out", str(run), "--resume", "--device", "cpu"])
    assert again.exit_code == 0 and "run already finished, nothing to resume" in again.output


@pytest.mark.slow
def test_killed_between_last_pt_and_its_checkpoint_copy_keeps_the_last_epoch(tmp_path, tiny_data):
    run = tmp_path / "run"
    with pytest.raises(Interrupt):
        train("yolov4-tiny", tiny_data, run, epochs=2, checkpoint_every=1,
              callbacks={"on_model_save": _interrupt_after_epoch(2)}, **TINY)
    # the kill came after last.pt of the final epoch and before the keeper's copy and entry
    entries = read_checkpoints(run)
    (run / entries[-1]["path"]).unlink()
    (run / "checkpoints.json").write_text(json.dumps(entries[:-1]))
    res = CliRunner().invoke(app, ["train", "--out", str(run), "--resume", "--device", "cpu"])
    assert res.exit_code == 0 and "marked finished" in res.output, res.output
    kept = read_checkpoints(run)
    assert [c["epoch"] for c in kept] == [1, 2]
    assert kept[1]["batches"] == 2 * kept[0]["batches"] and kept[1]["images"] == 2 * kept[0]["images"]
    yolo_env.load_model(run / kept[1]["path"])


@pytest.mark.slow
def test_kill_9_at_a_random_moment_then_resume(tmp_path, tiny_data):
    run = tmp_path / "run"
    args = ["train", "--arch", "yolov4-tiny", "--data", tiny_data, "--out", run, "--imgsz", "64", "--epochs", "3",
            "--batch", "2", "--checkpoint-every", "1", "--device", "cpu", "--no-plots"]
    exe = str(Path(sys.executable).with_name("detector"))
    proc = subprocess.Popen([exe, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while not (run / "checkpoints.json").is_file() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(random.Random().uniform(0.0, 1.5))  # anywhere in the next epoch, its saves or validation
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.communicate(timeout=60)
    res = _detector("train", "--out", run, "--resume", "--device", "cpu", "--no-plots")
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr[-3000:]
    assert (run / "done").is_file()
    assert [c["epoch"] for c in read_checkpoints(run)] == [1, 2, 3]
    yolo_env.load_model(run / "weights" / "best.pt")
    debris = [p for d in ("weights", "checkpoints") for p in (run / d).iterdir() if p.name.endswith(".tmp")]
    assert debris == []  # a save cut by the kill leaves a temp file; resume removes it
