"""`detector predict` on bad input: batches go on past unreadable files, outputs stay out of input folders,
killed runs leave nothing a rerun trips over. Uses the shipped model (no training)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from detector.cli import app
from detector.predict import MAX_PIXELS, check_out_outside_inputs, checked_size
from detector.report import STAGING_NAME, staged_output
from synthgen.atomic import OWNER_FILE, OwnedStaging
from synthgen.errors import InputError

runner = CliRunner()


def _folder(tmp_path: Path) -> Path:
    """Two good micrographs, a truncated PNG and a text file named .jpg."""
    d = tmp_path / "micrographs"
    d.mkdir()
    for i in range(2):
        img = np.full((96, 96), 20, np.uint8)
        cv2.rectangle(img, (20, 20), (40, 40), 220, -1)
        cv2.circle(img, (66, 66), 10, 200, -1)
        cv2.imwrite(str(d / f"good{i}.png"), img)
    (d / "truncated.png").write_bytes((d / "good0.png").read_bytes()[:200])
    (d / "notes.jpg").write_text("not an image")
    return d


def _no_traceback(result) -> None:
    assert "Traceback" not in result.output


def test_predict_skips_unreadable_files_and_counts_them(tmp_path):
    src = _folder(tmp_path)
    res = runner.invoke(app, ["predict", str(src), "--out", str(tmp_path / "out"), "--device", "cpu"])
    _no_traceback(res)
    assert res.exit_code == 0, res.output
    warnings = [ln for ln in res.output.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 2 and any("truncated.png" in w for w in warnings) and any("notes.jpg" in w for w in warnings)
    assert "skipped 2 unreadable image(s); predicted 2" in res.output
    rows = (tmp_path / "out" / "counts.csv").read_text().splitlines()[1:]
    assert sorted(r.split(",")[0] for r in rows) == ["good0.png", "good1.png"]


def test_predict_fails_when_nothing_is_readable(tmp_path):
    src = _folder(tmp_path)
    for p in src.glob("good*"):
        p.unlink()
    res = runner.invoke(app, ["predict", str(src), "--out", str(tmp_path / "out"), "--device", "cpu"])
    _no_traceback(res)
    assert res.exit_code == 2
    assert [ln for ln in res.output.splitlines() if ln.startswith("error:")] == ["error: none of the 2 image(s) could be read"]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("where", ["same", "inside"])
def test_predict_never_writes_into_an_input_folder(tmp_path, where):
    src = _folder(tmp_path)
    out = src if where == "same" else src / "results"
    before = sorted(p.name for p in src.iterdir())
    res = runner.invoke(app, ["predict", str(src), "--out", str(out), "--device", "cpu"])
    _no_traceback(res)
    assert res.exit_code == 2 and "inside the input folder" in res.output
    assert sorted(p.name for p in src.iterdir()) == before


def test_out_beside_an_input_image_is_allowed(tmp_path):
    img = _folder(tmp_path) / "good0.png"
    check_out_outside_inputs(img.parent.parent / "measured", [img])
    with pytest.raises(InputError):
        check_out_outside_inputs(img.parent, [img])


def test_oversized_image_is_refused_from_its_header(tmp_path):
    from PIL import Image

    big = tmp_path / "big.png"
    side = int(MAX_PIXELS**0.5) + 10
    Image.new("L", (side, side)).save(big, optimize=False, compress_level=9)  # compresses to a few hundred kB
    with pytest.raises(InputError, match="too large"):
        checked_size(big)


@pytest.mark.parametrize("bad", [["--conf", "2"], ["--conf", "-0.1"], ["--tile", "7"], ["--tile", "huge"]])
def test_out_of_range_options_exit_2_without_traceback(tmp_path, bad):
    src = _folder(tmp_path)
    res = runner.invoke(app, ["predict", str(src), "--out", str(tmp_path / "out"), *bad])
    _no_traceback(res)
    assert res.exit_code == 2
    assert not (tmp_path / "out").exists()


def test_staging_of_a_killed_run_is_removed_by_the_next(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    # a staging folder whose owner file nobody holds (its writer was killed), and one of a live run
    dead = out / f".{STAGING_NAME}.partial-dead"
    dead.mkdir()
    (dead / OWNER_FILE).write_text("12345\n")
    live = OwnedStaging(out / STAGING_NAME)
    with staged_output(out) as tmp:
        (tmp / "result.txt").write_text("ok")
    assert not dead.exists() and live.path.exists()
    assert (out / "result.txt").read_text() == "ok"
    assert sorted(p.name for p in out.iterdir()) == sorted([live.path.name, "result.txt"])
    live.discard()
