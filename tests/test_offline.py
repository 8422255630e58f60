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
