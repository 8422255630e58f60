"""Faults in the data a user brings, replayed through the `detector` CLI (issue 10, data part).

Flaws that real published data has (degenerate or duplicate boxes, corrupt or truncated images, label
files without an image, images without labels) give exit 0 with one warning line each, naming file and
line, and a count in the summary; ``--strict`` makes them one error line. Malformed input (non-UTF-8 label
files, unwritable or non-dataset --out, out-of-range options) gives exit 2 and one error line. Never a
traceback, never anything half-written.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from detector.cli import app

W, H = 96, 64
BOXES = [(0, 8, 10, 30, 34), (1, 50, 20, 80, 50)]  # (class, x1, y1, x2, y2) px
runner = CliRunner()


def _yolo(boxes=BOXES) -> str:
    return "".join(
        f"{c} {(x1 + x2) / 2 / W:.6f} {(y1 + y2) / 2 / H:.6f} {(x2 - x1) / W:.6f} {(y2 - y1) / H:.6f}\n"
        for c, x1, y1, x2, y2 in boxes
    )


def _real_set(folder: Path, stems=("a", "b", "c", "d", "e", "f")) -> Path:
    """A YOLO images/ + labels/ set: every image one cube and one sphere."""
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    for k, stem in enumerate(stems):
        img = np.random.default_rng(k).normal(90, 12, (H, W)).clip(0, 255).astype(np.uint8)
        for _, x1, y1, x2, y2 in BOXES:
            cv2.rectangle(img, (x1, y1), (x2 - 1, y2 - 1), 200, -1)
        cv2.imwrite(str(folder / "images" / f"{stem}.png"), img)
        (folder / "labels" / f"{stem}.txt").write_text(_yolo())
    return folder


def _build(*args) -> object:
    return runner.invoke(app, ["build-dataset", *map(str, args)])


def _lines(text: str, prefix: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.startswith(prefix)]


def _assert_one_error(result, needle: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [ln for ln in result.stderr.strip().splitlines() if not ln.startswith("warning: ")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], result.stderr


def _snapshot(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# ---------------------------------------------------------------------------------------- warnings


def test_degenerate_box_in_build_dataset_is_one_warning_and_counted(tmp_path):
    src = _real_set(tmp_path / "real")
    label = src / "labels" / "c.txt"
    label.write_text(_yolo() + "1 0.5 0.5 0.0 0.1\n")  # zero width, line 3
    out = tmp_path / "ds"
    res = _build("--real", src, "--out", out, "--split", "0.5,0.5")
    assert res.exit_code == 0, res.output
    assert _lines(res.stderr, "warning: ") == [f"warning: {label}:3: degenerate box (0 x 6.4 px, under 1 px): skipped"]
    assert "warnings: 1 label skipped" in res.stdout
    stats = json.loads((out / "stats.json").read_text())
    assert stats["warnings"]["label skipped"] == 1
    assert stats["table"]["total"] == {**stats["table"]["total"], "images": 6, "cube": 6, "sphere": 6}


def test_degenerate_box_with_strict_is_one_error_nothing_written(tmp_path):
    src = _real_set(tmp_path / "real")
    label = src / "labels" / "c.txt"
    label.write_text(_yolo() + "1 0.5 0.5 0.0 0.1\n")
    before = _snapshot(tmp_path)
    res = _build("--real", src, "--out", tmp_path / "ds", "--split", "0.5,0.5", "--strict")
    _assert_one_error(res, f"{label}:3: degenerate box")
    assert res.stderr.strip().count("\n") == 0  # the error only, no warning before it
    assert _snapshot(tmp_path) == before


def test_duplicate_box_is_skipped_with_a_warning(tmp_path):
    src = _real_set(tmp_path / "real")
    label = src / "labels" / "b.txt"
    label.write_text(_yolo() + _yolo(BOXES[1:]))
    res = _build("--real", src, "--out", tmp_path / "ds", "--split", "0.5,0.5")
    assert res.exit_code == 0, res.output
    assert _lines(res.stderr, "warning: ") == [f"warning: {label}:3: duplicate box: same class and box as line 2: skipped"]
    stats = json.loads((tmp_path / "ds" / "stats.json").read_text())
    assert stats["table"]["total"]["sphere"] == 6


@pytest.mark.parametrize("how", ["truncated", "garbage"])
def test_corrupt_image_is_skipped_not_copied(tmp_path, how):
    src = _real_set(tmp_path / "real")
    bad = src / "images" / "d.png"
    bad.write_bytes(bad.read_bytes()[:150] if how == "truncated" else b"\x00garbage" * 10)
    out = tmp_path / "ds"
    res = _build("--real", src, "--out", out, "--split", "0.5,0.5", "--copy")
    assert res.exit_code == 0, res.output
    warnings = _lines(res.stderr, "warning: ")
    assert len(warnings) == 1 and warnings[0].startswith(f"warning: {bad}: cannot read image") and "image skipped" in warnings[0]
    assert "warnings: 1 image skipped" in res.stdout
    stats = json.loads((out / "stats.json").read_text())
    assert stats["table"]["total"]["images"] == 5
    assert not [f for split in stats["files"].values() for f in split if f["source"] == str(bad)]
    assert len(list(out.glob("*/images/*"))) == 5


def test_every_image_corrupt_is_an_error(tmp_path):
    src = _real_set(tmp_path / "real", stems=("a", "b"))
    for p in (src / "images").iterdir():
        p.write_bytes(p.read_bytes()[:100])
    before = _snapshot(tmp_path)
    _assert_one_error(_build("--real", src, "--out", tmp_path / "ds"), "no usable image: all 2")
    assert _snapshot(tmp_path) == before


def test_label_without_image_and_image_without_labels_warn(tmp_path):
    src = _real_set(tmp_path / "real")
    (src / "labels" / "lost.txt").write_text(_yolo())
    (src / "labels" / "f.txt").unlink()
    res = _build("--real", src, "--out", tmp_path / "ds", "--split", "0.5,0.5")
    assert res.exit_code == 0, res.output
    warnings = _lines(res.stderr, "warning: ")
    assert len(warnings) == 2
    assert warnings[0].startswith(f"warning: {src / 'labels' / 'lost.txt'}: label file has no image")
    assert warnings[1].startswith(f"warning: {src / 'images' / 'f.png'}: image has no label file")
    assert "1 label file without image, 1 image without labels" in res.stdout
    _assert_one_error(_build("--real", src, "--out", tmp_path / "ds2", "--strict"), "lost.txt: label file has no image")


def test_coco_entry_without_its_image_warns(tmp_path):
    src = tmp_path / "coco"
    _real_set(src)
    images, anns = [], []
    for i, stem in enumerate(["a", "b", "c", "d", "e", "f", "missing"], start=1):
        images.append({"id": i, "file_name": f"{stem}.png", "width": W, "height": H})
        for c, x1, y1, x2, y2 in BOXES:
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": c + 1, "bbox": [x1, y1, x2 - x1, y2 - y1]})
    cats = [{"id": 1, "name": "cube"}, {"id": 2, "name": "sphere"}]
    (src / "annotations.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    res = _build("--real", src, "--out", tmp_path / "ds", "--split", "0.5,0.5")
    assert res.exit_code == 0, res.output
    assert _lines(res.stderr, "warning: ") == [
        f"warning: {src / 'annotations.json'}: COCO images entry 'missing.png' has no image file in {src / 'images'}: its 2 label(s) skipped"
    ]


# ---------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "data, needle",
    [
        (_yolo().encode("utf-16"), "UTF-16"),
        (os.urandom(64) + b"\xff\xfe\x00", "not a"),
        (b"0 0.5 0.5 0.2 0.2\n\x00\x01\x02", "not a text file"),
    ],
)
@pytest.mark.parametrize("command", ["build-dataset", "evaluate"])
def test_non_utf8_label_file_is_one_error_naming_it(tmp_path, data, needle, command):
    src = _real_set(tmp_path / "real")
    label = src / "labels" / "b.txt"
    label.write_bytes(b"\x80" + data if needle == "not a" else data)
    out = tmp_path / "out"
    before = _snapshot(tmp_path)
    if command == "build-dataset":
        res = _build("--real", src, "--out", out)
    else:
        (tmp_path / "preds").mkdir()
        before = _snapshot(tmp_path)
        res = runner.invoke(app, ["evaluate", "--set", f"S={src}", "--out", str(out), "--predictions", str(tmp_path / "preds")])
    _assert_one_error(res, f"{label}")
    assert needle in res.stderr
    assert _snapshot(tmp_path) == before


def test_overwrite_refuses_to_delete_a_file(tmp_path):
    src = _real_set(tmp_path / "real")
    target = tmp_path / "file.png"
    target.write_bytes(b"precious")
    _assert_one_error(_build("--real", src, "--out", target, "--overwrite"), "not a dataset folder")
    assert target.read_bytes() == b"precious"


def test_overwrite_refuses_a_folder_that_is_not_a_dataset(tmp_path):
    src = _real_set(tmp_path / "real")
    target = tmp_path / "thesis"
    target.mkdir()
    (target / "chapter1.tex").write_text("precious")
    _assert_one_error(_build("--real", src, "--out", target, "--overwrite"), "not a dataset folder")
    assert (target / "chapter1.tex").read_text() == "precious"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _build("--real", src, "--out", empty, "--overwrite", "--split", "0.5,0.5").exit_code == 0  # nothing to lose


def test_out_in_a_read_only_folder_is_one_line(tmp_path, monkeypatch):
    src = _real_set(tmp_path / "real")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        if os.geteuid() != 0:  # root writes anyway; the simulated failure below covers it
            _assert_one_error(_build("--real", src, "--out", locked / "ds"), "permission denied")
            assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)

    import detector.dataset

    def refuse(dest, tag="partial"):
        raise PermissionError(13, "Permission denied", str(dest.parent))

    monkeypatch.setattr(detector.dataset, "staging_dir", refuse)
    _assert_one_error(_build("--real", src, "--out", locked / "ds", "--split", "0.5,0.5"), "Permission denied")
    assert list(locked.iterdir()) == []


def test_seed_minus_one_is_refused_at_the_cli_with_its_range_in_help(tmp_path):
    src = _real_set(tmp_path / "real")
    res = _build("--real", src, "--out", tmp_path / "ds", "--seed", "-1")
    assert res.exit_code == 2 and "Traceback" not in res.output and "--seed" in res.output
    assert not (tmp_path / "ds").exists()
    help_text = re.sub(r"\s+", " ", runner.invoke(app, ["build-dataset", "--help"]).output)
    assert "x>=0" in help_text and "--strict" in help_text
    for option, value in (("--max-objects-per-class", "0"),):
        bad = _build("--real", src, "--out", tmp_path / "ds", option, value)
        assert bad.exit_code == 2 and "Traceback" not in bad.output


def test_evaluate_help_shows_strict_and_option_ranges():
    help_text = re.sub(r"\s+", " ", runner.invoke(app, ["evaluate", "--help"]).output)
    assert "--strict" in help_text and "0<=x<=1" in help_text
