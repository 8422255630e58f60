"""End-to-end generation, its output files, reproducibility and the CLI (check/generate/preview)."""

from __future__ import annotations

import os

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from conftest import write_pattern
from synthgen import generate as generate_module
from synthgen.cli import app
from synthgen.errors import InputErrors
from synthgen.generate import GenerateOptions, generate, synthesize
from synthgen.pattern import load_pattern

runner = CliRunner()


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_generate_writes_consistent_dataset(tiny_pattern, tmp_path):
    out = tmp_path / "out"
    result = generate([tiny_pattern], out, count=3, seed=7, max_particles=40)
    assert sorted(p.name for p in out.iterdir()) == ["annotations.json", "data.yaml", "images", "labels", "manifest.json"]
    assert sorted(p.name for p in (out / "images").iterdir()) == ["000000.png", "000001.png", "000002.png"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 7 == result.seed
    coco = json.loads((out / "annotations.json").read_text())
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["path"] == str(out.resolve()) and data["names"] == {0: "cube", 1: "sphere"}
    for k, entry in enumerate(manifest["images"]):
        lines = (out / entry["label"]).read_text().splitlines()
        assert len(lines) == entry["particles"] == sum(entry["counts"].values()) > 0
        assert entry["counts"]["cube"] == sum(line.startswith("0 ") for line in lines)
        anns = [a for a in coco["annotations"] if a["image_id"] == k + 1]
        assert len(anns) == len(lines)
        img = cv2.imread(str(out / entry["file"]), cv2.IMREAD_UNCHANGED)
        assert img.shape == (120, 160) and img.dtype == np.uint8
        # The recorded image seed regenerates the image exactly.
        again, _ = synthesize(load_pattern(tiny_pattern), entry["seed"], GenerateOptions(max_particles=40))
        assert np.array_equal(again, img)
    assert manifest["totals"]["particles"] == len(coco["annotations"]) == sum(result.counts.values())
    assert leftovers(tmp_path) == []


def test_same_seed_byte_identical_for_any_worker_count(tiny_pattern, tmp_path):
    other = write_pattern(tmp_path / "other", width=100, height=90)
    outputs = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        generate([tiny_pattern, other], out, count=5, seed=123, workers=workers, image_format="jpg")
        outputs[workers] = {k: v for k, v in files(out).items() if k != "data.yaml"}  # data.yaml holds the path
    assert outputs[1] == outputs[2] and len(outputs[1]) == 5 + 5 + 2
    out3 = tmp_path / "again"
    generate([tiny_pattern, other], out3, count=5, seed=124, image_format="jpg")
    assert files(out3)["images/000000.jpg"] != outputs[1]["images/000000.jpg"]


def test_per_pattern_and_round_robin(tiny_pattern, tmp_path):
    other = write_pattern(tmp_path / "other", width=100, height=90)
    shared = generate([tiny_pattern, other], tmp_path / "rr", count=3, seed=1)
    assert [r.pattern for r in shared.images] == [0, 1, 0]
    each = generate([tiny_pattern, other], tmp_path / "pp", count=2, per_pattern=True, seed=1)
    assert [r.pattern for r in each.images] == [0, 0, 1, 1]


def test_annotations_load_in_pycocotools(tiny_pattern, tmp_path):
    from pycocotools.coco import COCO

    generate([tiny_pattern], tmp_path / "out", count=2, seed=3)
    coco = COCO(str(tmp_path / "out" / "annotations.json"))
    assert sorted(c["name"] for c in coco.loadCats(coco.getCatIds())) == ["cube", "sphere"]
    ann = coco.loadAnns(coco.getAnnIds(imgIds=[1]))[0]
    mask = coco.annToMask(ann)
    assert abs(int(mask.sum()) - ann["area"]) < 0.2 * ann["area"] + 20
    x, y, w, h = ann["bbox"]
    rows, cols = np.nonzero(mask)
    assert cols.min() >= np.floor(x) - 1 and cols.max() <= np.ceil(x + w) and rows.min() >= np.floor(y) - 1


def test_interrupted_run_leaves_nothing(tiny_pattern, tmp_path, monkeypatch):
    real_encode = generate_module.encode
    calls = []

    def flaky(image, fmt):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_encode(image, fmt)

    monkeypatch.setattr(generate_module, "encode", flaky)
    with pytest.raises(KeyboardInterrupt):
        generate([tiny_pattern], tmp_path / "out", count=4, seed=1)
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_bad_options_raise_before_writing(tiny_pattern, tmp_path):
    with pytest.raises(InputErrors):
        generate([tiny_pattern, tmp_path / "nope.txt"], tmp_path / "out", count=1)
    for kwargs in (
        {"count": 0}, {"background": 300}, {"image_format": "gif"}, {"scale_jitter": 1.5},
        {"min_gap": float("nan")}, {"min_gap": float("inf")},  # would write NaN/Infinity into manifest.json
    ):  # fmt: skip
        with pytest.raises(Exception, match="--"):
            generate([tiny_pattern], tmp_path / "out", **kwargs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pattern"]


# --- CLI -------------------------------------------------------------------------------------


BAD_INPUTS = {
    "missing template file": (["templates/absent.png"], 3, "template file not found"),
    "bad number": (None, 2, "bad number"),
    "malformed line": (["templates/sphere.png cube sphere extra"], 3, "malformed line"),
    "corrupt image": (["templates/broken.png"], 3, "corrupt"),
    "template larger than canvas": (["templates/big.png"], 3, "larger than the 160x120 canvas"),
    "empty pattern": ([], 2, "empty pattern"),
    "unknown class": (["templates/sphere.png rod"], 3, "unknown class 'rod'"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_cli_bad_input_one_clear_error_exit_2_nothing_written(tmp_path, case):
    lines, line_no, fragment = BAD_INPUTS[case]
    path = write_pattern(tmp_path / "p", lines=lines if lines is not None else ["templates/sphere.png"])
    (tmp_path / "p" / "templates" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    cv2.imwrite(str(tmp_path / "p" / "templates" / "big.png"), np.zeros((130, 50), np.uint8))
    if case == "bad number":
        path.write_text(path.read_text().replace("160 120", "160 12o"))
    out = tmp_path / "out"
    res = runner.invoke(app, ["generate", str(path), "--out", str(out), "--count", "2", "--seed", "1"])
    assert res.exit_code == 2, res.output
    errors = [line for line in res.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [line for line in res.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith(f"error: {path}:{line_no}: ") and fragment in errors[0]
    assert "Traceback" not in res.output
    assert not out.exists() and leftovers(tmp_path) == []


def test_cli_check_reports_every_error_of_two_files(tmp_path, tiny_pattern):
    a = write_pattern(tmp_path / "a", lines=["templates/absent.png", "templates/sphere.png blob"])
    b = write_pattern(tmp_path / "b", width=10, height=10)
    res = runner.invoke(app, ["check", str(a), str(b)])
    assert res.exit_code == 2
    errors = res.stderr.splitlines()
    assert [e.split(": ")[1] for e in errors] == [f"{a}:3", f"{a}:4", f"{b}:3", f"{b}:4", f"{b}:5"]
    ok = runner.invoke(app, ["check", str(tiny_pattern)])
    assert ok.exit_code == 0 and "3 templates (2 cube, 1 sphere)" in ok.stdout


def test_cli_generate_and_preview(tiny_pattern, tmp_path):
    out = tmp_path / "out"
    res = runner.invoke(app, ["generate", str(tiny_pattern), "--out", str(out), "-n", "3", "--seed", "5", "--min-gap", "2", "--scale-jitter", "0.1", "--format", "jpg", "--max-particles", "20"])
    assert res.exit_code == 0, res.output
    assert "seed 5" in res.stdout and "wrote 3 images" in res.stdout
    assert len(list((out / "images").glob("*.jpg"))) == 3
    again = runner.invoke(app, ["generate", str(tiny_pattern), "--out", str(out), "-n", "1"])
    assert again.exit_code == 2 and "not empty" in again.stderr
    sheet = tmp_path / "sheet.png"
    res = runner.invoke(app, ["preview", str(out), "--out", str(sheet), "--n", "3", "--cols", "2"])
    assert res.exit_code == 0, res.output
    img = cv2.imread(str(sheet))
    assert img.shape[1] == 2 * (480 + 4) and img.shape[0] > 2 * 360
    bad = runner.invoke(app, ["preview", str(tmp_path / "nowhere"), "--out", str(tmp_path / "s.png")])
    assert bad.exit_code == 2 and not (tmp_path / "s.png").exists()


@pytest.mark.parametrize("command", [[], ["check"], ["generate"], ["preview"]])
def test_cli_help(command):
    res = runner.invoke(app, [*command, "--help"])
    assert res.exit_code == 0 and "Usage" in res.stdout


def test_real_patterns_generate(real_patterns, tmp_path):
    out = tmp_path / "real"
    result = generate(real_patterns, out, count=len(real_patterns), seed=11, max_particles=60, workers=1)
    assert len(result.images) == len(real_patterns)
    assert all(len(r.particles) > 5 for r in result.images)
    from pycocotools.coco import COCO

    coco = COCO(str(out / "annotations.json"))
    assert len(coco.getAnnIds()) == sum(len(r.particles) for r in result.images)


def test_preview_bad_data_yaml_is_one_line(tiny_pattern, tmp_path):
    out = tmp_path / "gen"
    assert runner.invoke(app, ["generate", str(tiny_pattern), "--out", str(out), "-n", "1", "--seed", "1"]).exit_code == 0
    (out / "data.yaml").write_text("- 1\n- 2\n")
    res = runner.invoke(app, ["preview", str(out), "--out", str(tmp_path / "s.png")])
    assert res.exit_code == 2 and "data.yaml: expected a mapping" in res.stderr and not (tmp_path / "s.png").exists()


def test_generated_folder_is_not_private(tiny_pattern, tmp_path):
    out = tmp_path / "gen"
    assert runner.invoke(app, ["generate", str(tiny_pattern), "--out", str(out), "-n", "1", "--seed", "1"]).exit_code == 0
    mask = os.umask(0o022)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~mask  # as any new folder (mkdtemp alone gives 0700)


def test_streamed_json_equals_one_shot_and_records_optional(tiny_pattern, tmp_path):
    """annotations.json and manifest.json are assembled from per-image parts (memory flat in --count):
    byte for byte what one json dump of all images gives; keep_images=False changes no file."""
    from synthgen.generate import manifest
    from synthgen.labels import LabelledImage, coco_dataset, json_text

    other = write_pattern(tmp_path / "other", width=100, height=90)
    kept = generate([tiny_pattern, other], tmp_path / "a", count=5, seed=9, max_particles=30)
    pats = [load_pattern(tiny_pattern), load_pattern(other)]
    assert (tmp_path / "a" / "manifest.json").read_text() == json_text(manifest(pats, kept.options, 9, kept.images))
    labelled = [LabelledImage(r.file, pats[r.pattern].width, pats[r.pattern].height, r.particles) for r in kept.images]
    assert (tmp_path / "a" / "annotations.json").read_text() == json_text(coco_dataset(labelled), compact=True)
    lean = generate([tiny_pattern, other], tmp_path / "b", count=5, seed=9, max_particles=30, keep_images=False)
    assert lean.images == () and lean.count == 5 and lean.counts == kept.counts
    a, b = files(tmp_path / "a"), files(tmp_path / "b")
    assert {k: v for k, v in a.items() if k != "data.yaml"} == {k: v for k, v in b.items() if k != "data.yaml"}
    assert leftovers(tmp_path) == []
