"""`make demo` runs the whole chain (generate, preview, predict with the shipped model, evaluate) and says where each result is."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_make_demo_runs_the_whole_chain(tmp_path):
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    from detector.weights import SHIPPED

    if not SHIPPED.is_file():
        pytest.skip(f"this checkout ships no default model ({SHIPPED})")
    out = tmp_path / "demo"
    # -o install: the venv running this test stands in for the one `make install` would build
    cmd = ["make", "--no-print-directory", "-o", "install", "demo", f"BIN={Path(sys.executable).parent}", f"DEMO_OUT={out}", "DEMO_COUNT=2"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=os.environ)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert len(list((out / "set" / "images").glob("*.png"))) == 2
    assert (out / "preview.png").stat().st_size > 0
    assert len(list((out / "predicted" / "annotated").iterdir())) == 2
    assert sorted(p.name for p in (out / "predicted").glob("sizes_*.png")) == ["sizes_cube.png", "sizes_sphere.png"]
    metrics = (out / "evaluation" / "metrics.csv").read_text()
    assert "demo" in metrics and "nanosynth-yolov4-tiny" in metrics
    # every path the closing lines name exists
    named = re.findall(rf"{re.escape(str(out))}[^\s,:]*", r.stdout)
    assert len(named) >= 6
    for p in named:
        assert list(out.parent.glob(str(Path(p).relative_to(out.parent)))), p
    assert "detector serve" in r.stdout
