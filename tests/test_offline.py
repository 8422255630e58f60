"""Train, validate and predict with the network unreachable: no connection may even be attempted.

Runs in a fresh interpreter so the guard is in place before ultralytics is first imported (its
online check runs at import), with an empty ultralytics config dir (so fonts and settings must be
provided locally, not downloaded).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from test_train import make_tiny_dataset

GUARD = textwrap.dedent(
    """
    import json, socket, sys
    attempts = []

    def _refuse(kind, what):
        attempts.append([kind, repr(what)])
        raise OSError(f"network disabled by test_offline ({kind} {what!r})")

    _connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            _refuse("connect", address)
        return _connect(self, address)

    def connect_ex(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            _refuse("connect_ex", address)
        return _connect_ex(self, address)

    socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
    socket.create_connection = lambda address, *a, **k: _refuse("create_connection", address)
    socket.getaddrinfo = lambda host, *a, **k: _refuse("getaddrinfo", host)
    socket.gethostbyname = lambda host: _refuse("gethostbyname", host)
    """
)

SCENARIO = textwrap.dedent(
    """
    from pathlib import Path
    from detector.train import train
    from detector.yolo_env import load_model

    data, run = Path(sys.argv[1]), Path(sys.argv[2])
    res = train("yolov4-tiny", data, run, imgsz=64, epochs=1, batch=2, device="auto", plots=True)
    model = load_model(res.best)
    metrics = model.val(data=str(run / "data.yaml"), imgsz=64, batch=2, device="cpu", plots=True,
                        project=str(run), name="val", exist_ok=True)
    image = next((data.parent / "images" / "val").glob("*.png"))
    pred = model.predict(str(image), imgsz=64, device="cpu", conf=0.0, save=True,
                         project=str(run), name="predict", exist_ok=True)
    print("RESULT " + json.dumps({"attempts": attempts, "boxes": len(pred[0].boxes),
                                   "map50": float(metrics.box.map50)}))
    """
)


@pytest.mark.slow
def test_train_val_predict_without_network(tmp_path):
    data = make_tiny_dataset(tmp_path / "data")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YOLO_", "ULTRALYTICS_"))}
    env["YOLO_CONFIG_DIR"] = str(tmp_path / "config")  # empty: nothing cached from earlier runs
    env["CUDA_VISIBLE_DEVICES"] = ""  # device=auto must fall back to the CPU here
    script = GUARD + SCENARIO
    proc = subprocess.run(
        [sys.executable, "-c", script, str(data), str(tmp_path / "run")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    assert result["attempts"] == [], f"network access attempted: {result['attempts']}"
    assert result["boxes"] >= 0
    config = tmp_path / "config" / "Ultralytics"
    assert (config / "Arial.ttf").is_file()  # the font came from matplotlib, not the internet
    assert json.loads((config / "settings.json").read_text())["sync"] is False
    assert (tmp_path / "run" / "labels.jpg").is_file()  # plots were drawn (with the local font)
    assert list((tmp_path / "run" / "predict").glob("*.png")) or list((tmp_path / "run" / "predict").glob("*.jpg"))


def test_guard_catches_stock_ultralytics(tmp_path):
    """The guard is not vacuous: plain ultralytics (no yolo_env) checks DNS and fetches a font."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YOLO_", "ULTRALYTICS_"))}
    env["YOLO_CONFIG_DIR"] = str(tmp_path / "config")
    script = GUARD + textwrap.dedent(
        """
        import ultralytics
        from ultralytics.utils.checks import check_font
        check_font("Arial.Unicode.ttf")
        print("RESULT " + json.dumps(attempts))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    attempts = json.loads(next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))[7:])
    assert ["getaddrinfo", "'one.one.one.one'"] in attempts


# ---------------------------------------------------------------- every CLI command, each in a fresh process

# Installed as sitecustomize.py (imported by every fresh interpreter on PYTHONPATH, before the command's own
# imports): the same guard, writing what was attempted to $NET_GUARD_LOG/<pid>.json at exit.
SITECUSTOMIZE = GUARD + textwrap.dedent(
    """
    import atexit, os
    def _dump():
        folder = os.environ.get("NET_GUARD_LOG")
        if folder:
            with open(os.path.join(folder, f"{os.getpid()}.json"), "w") as f:
                json.dump({"argv": sys.argv, "attempts": attempts}, f)
    atexit.register(_dump)
    """
)
LEAKS = ("Error fetching version info", "urlopen", "network disabled by test_offline", "Traceback")


@pytest.fixture
def offline_env(tmp_path):
    site, log = tmp_path / "site", tmp_path / "netlog"
    site.mkdir()
    log.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("YOLO_", "ULTRALYTICS_")) and k not in ("NO_ALBUMENTATIONS_UPDATE", "OPENCV_LOG_LEVEL")}
    env.update(PYTHONPATH=os.pathsep.join([str(site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
               NET_GUARD_LOG=str(log), YOLO_CONFIG_DIR=str(tmp_path / "config"), CUDA_VISIBLE_DEVICES="")
    return env, log


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def _run_offline(env, log, argv, cwd):
    before = set(log.iterdir())
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{argv[:3]} exited {proc.returncode}:\n{output[-3000:]}"
    dumps = [json.loads(p.read_text()) for p in set(log.iterdir()) - before]
    assert dumps, f"the guard did not run in {argv[:3]} (sitecustomize not imported?)"
    for d in dumps:
        assert d["attempts"] == [], f"{argv[:3]}: network access attempted: {d['attempts']}"
    leaked = [s for s in LEAKS if s in output]
    assert not leaked, f"{argv[:3]} printed {leaked}:\n{output[-3000:]}"
    return output


def test_guard_sees_albumentations_update_check(offline_env, tmp_path):
    """Not vacuous: albumentations without our package checks for updates on import (and is caught)."""
    env, log = offline_env
    before = set(log.iterdir())
    proc = subprocess.run([sys.executable, "-c", "import albumentations"], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=300)
    dumps = [json.loads(p.read_text()) for p in set(log.iterdir()) - before]
    assert dumps and dumps[0]["attempts"], proc.stderr[-2000:]
    env = {**env, "NO_ALBUMENTATIONS_UPDATE": "1"}
    _run_offline(env, log, [sys.executable, "-c", "import synthgen, albumentations"], tmp_path)


@pytest.mark.slow  # five fresh interpreters and one procedural pattern: about a minute on 2 cores
def test_synthgen_commands_without_network(offline_env, tmp_path):
    from conftest import write_pattern

    env, log = offline_env
    pattern = write_pattern(tmp_path / "pattern")
    run = lambda *argv: _run_offline(env, log, [_bin("synthgen"), *map(str, argv)], tmp_path)  # noqa: E731
    run("check", pattern)
    run("generate", pattern, "--out", tmp_path / "gen", "--count", "3", "--seed", "1")
    run("preview", tmp_path / "gen", "--out", tmp_path / "sheet.png", "--n", "2")
    image = sorted((tmp_path / "gen" / "images").iterdir())[0]
    run("extract", image, "--labels", tmp_path / "gen" / "labels" / f"{image.stem}.txt", "--out", tmp_path / "ex")
    # render-templates: the real command on the first bundled pattern only (all eight take minutes)
    script = ("import sys, synthgen.procedural as p; p.PATTERN_SPECS = p.PATTERN_SPECS[:1]; "
              "from synthgen.cli import main; sys.argv = ['synthgen'] + sys.argv[1:]; main()")
    _run_offline(env, log, [sys.executable, "-c", script, "render-templates", "--out", str(tmp_path / "tpl"),
                            "--seed", "1"], tmp_path)
    assert (tmp_path / "tpl" / "p01" / "pattern.txt").is_file()


@pytest.mark.slow
def test_detector_commands_without_network(offline_env, tmp_path):
    from conftest import write_pattern

    env, log = offline_env
    pattern = write_pattern(tmp_path / "pattern")
    gen = tmp_path / "gen"
    _run_offline(env, log, [_bin("synthgen"), "generate", str(pattern), "--out", str(gen), "--count", "4", "--seed", "1"],
                 tmp_path)
    run = lambda *argv: _run_offline(env, log, [_bin("detector"), *map(str, argv)], tmp_path)  # noqa: E731
    run("build-dataset", "--synthetic", gen, "--out", tmp_path / "ds", "--split", "0.5,0.5", "--seed", "0")
    out = run("train", "--arch", "yolov4-tiny", "--data", tmp_path / "ds" / "data.yaml", "--out", tmp_path / "run",
              "--imgsz", "64", "--epochs", "1", "--batch", "2", "--device", "cpu", "--no-plots")
    assert "epoch 1/1" in out and "Epoch" not in out  # our progress line, not ultralytics' table
    best = tmp_path / "run" / "weights" / "best.pt"
    run("evaluate", best, "--set", f"S={gen}", "--out", tmp_path / "eval", "--imgsz", "64", "--device", "cpu")
    run("predict", best, gen / "images", "--out", tmp_path / "pred", "--imgsz", "64", "--device", "cpu")
    run("baseline", "--set", f"S={gen}", "--out", tmp_path / "base")
    for fmt, name in (("onnx", "m.onnx"), ("openvino", "m_openvino_model")):
        run("export", best, "--format", fmt, "--out", tmp_path / name)
        run("predict", tmp_path / name, gen / "images", "--out", tmp_path / f"pred-{fmt}", "--device", "cpu")
    assert "/api/predict" in run("serve", "--help")
