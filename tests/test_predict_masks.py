"""`detector predict` sizes from masks, end to end with the shipped (box-only) model (slow).

Ground truth comes from a synthetic set: synthgen knows every particle's footprint exactly."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from detector.cli import app as detector_app
from detector.metrics import box_iou
from synthgen.cli import app as synthgen_app

PATTERNS = Path(__file__).resolve().parents[1] / "patterns"
runner = CliRunner()
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    """Two plain-mode micrographs of p04 (20-30 px cubes and quasi-spheres), with their COCO footprints."""
    out = tmp_path_factory.mktemp("masks") / "set"
    done = runner.invoke(synthgen_app, ["generate", str(PATTERNS / "p04" / "pattern.txt"), "--out", str(out), "--count", "2", "--seed", "3"])
    assert done.exit_code == 0, done.output
    return out


def _rows(folder: Path) -> list[dict]:
    with (folder / "detections.csv").open() as f:
        return list(csv.DictReader(f))


def _truth(folder: Path) -> dict[str, list[tuple[np.ndarray, float]]]:
    """image name -> [(xyxy, ECD of the particle)]. A template's footprint is its particle dilated by one
    pixel (patterns/README.md), so the particle's own ECD is the footprint's less 2 px."""
    coco = json.loads((folder / "annotations.json").read_text())
    names = {im["id"]: im["file_name"] for im in coco["images"]}
    out: dict[str, list] = {}
    for a in coco["annotations"]:
        x, y, w, h = a["bbox"]
        out.setdefault(Path(names[a["image_id"]]).name, []).append((np.array([x, y, x + w, y + h]), math.sqrt(4 * a["area"] / math.pi) - 2))
    return out


def test_threshold_masks_recover_the_footprint_ecd(synthetic, tmp_path):
    out = tmp_path / "pred"
    done = runner.invoke(detector_app, ["predict", str(synthetic / "images"), "--out", str(out), "--nm-per-px", "2", "--device", "cpu"])
    assert done.exit_code == 0, done.output
    assert "size from threshold masks" in done.output
    rows, truth = _rows(out), _truth(synthetic)
    assert {r["mask_source"] for r in rows} == {"threshold"}
    ratios, found = [], 0
    for name, particles in truth.items():
        mine = [r for r in rows if r["image"] == name and r["size_basis"] == "mask"]
        boxes = [np.array([float(r[k]) for k in ("x1", "y1", "x2", "y2")]) for r in mine]
        for box, ecd in particles:
            ious = box_iou([box], boxes)[0] if boxes else []
            if len(ious) and max(ious) >= 0.5:
                found += 1
                r = mine[int(np.argmax(ious))]
                ratios.append(float(r["ecd_px"]) / ecd)
                assert float(r["ecd_nm"]) == pytest.approx(2 * float(r["ecd_px"]), rel=1e-4)
    n = sum(map(len, truth.values()))
    assert found >= 0.8 * n, f"{found} of {n} particles matched"
    assert 0.95 <= float(np.median(ratios)) <= 1.05, np.median(ratios)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mask_source"] == "threshold" and set(summary["mask_sizes"]) == {"cube", "sphere"}
    cube = summary["mask_sizes"]["cube"]
    assert cube["unit"] == "nm" and cube["ci95"][0] <= cube["mean"] <= cube["ci95"][1]
    # a rotated cube's box overstates its edge; the mask's rectangle does not
    cubes = [r for r in rows if r["class"] == "cube" and r["size_basis"] == "mask"]
    assert np.mean([float(r["size_px"]) for r in cubes]) < np.mean([float(r["diameter_px"]) for r in cubes])
    assert (out / "mask_sizes_cube.png").is_file() and (out / "mask_sizes_sphere.png").is_file()


def test_masks_none_keeps_box_sizes_and_model_masks_need_a_segmentation_model(synthetic, tmp_path):
    out = tmp_path / "pred"
    done = runner.invoke(detector_app, ["predict", str(synthetic / "images"), "--out", str(out), "--masks", "none", "--device", "cpu"])
    assert done.exit_code == 0, done.output
    assert "ecd_px" not in _rows(out)[0] and "mask_sizes" not in json.loads((out / "summary.json").read_text())
    bad = tmp_path / "bad"
    done = runner.invoke(detector_app, ["predict", str(synthetic / "images"), "--out", str(bad), "--masks", "model", "--device", "cpu"])
    assert done.exit_code == 2
    lines = [ln for ln in done.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "segmentation model" in lines[0], done.output
    assert not bad.exists()


def test_refine_gaussian_counts_in_summary_and_saved_outlines(synthetic, tmp_path):
    out = tmp_path / "pred"
    done = runner.invoke(detector_app, ["predict", str(synthetic / "images"), "--out", str(out), "--refine", "gaussian",
                                        "--save", "labelme", "--device", "cpu"])  # fmt: skip
    assert done.exit_code == 0, done.output
    summary = json.loads((out / "summary.json").read_text())
    refine = summary["refine"]
    assert refine["method"] == "gaussian" and refine["refined"] > 0
    assert refine["refined"] + refine["failed"] == sum(1 for _ in _rows(out))
    assert f"{refine['refined']} refined, {refine['failed']} failed" in done.output
    assert summary["mask_source"] == "threshold+gaussian"
    shapes = [s for p in (out / "labelme").glob("*.json") for s in json.loads(p.read_text())["shapes"]]
    assert sum(s["shape_type"] == "polygon" for s in shapes) >= 0.8 * len(shapes)
    bad = runner.invoke(detector_app, ["predict", str(synthetic / "images"), "--out", str(tmp_path / "b"), "--refine", "gaussian",
                                       "--masks", "none", "--device", "cpu"])  # fmt: skip
    assert bad.exit_code == 2 and "--refine gaussian" in bad.output
