"""`detector build-dataset`: every label format ends up as YOLO, the info bar is cut with its labels,
balancing, stratified seeded splits, atomic output and one-line errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from detector.cli import app
from synthgen.annotations import Detections, Sample
from detector.dataset import (
    Item,
    balance_items,
    class_totals,
    crop_labels,
    make_sources,
    parse_split,
    split_items,
)
from detector.info_bar import find_info_bar
from synthgen.errors import InputError

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
W, H = 96, 64
# (class, x1, y1, x2, y2) in pixels: one cube and one sphere per image
BOXES = [(0, 8, 10, 30, 34), (1, 50, 20, 80, 50)]
NAMES = {0: "nanocube", 1: "quasi-sphere"}  # aliases, mapped by name onto cube / sphere


# ---------------------------------------------------------------------------------------- fixtures


def _draw(path: Path, boxes=BOXES, height: int = H, width: int = W, seed: int = 0) -> Path:
    """A noisy grey micrograph with a bright blob in every box."""
    rng = np.random.default_rng(seed)
    img = rng.normal(90, 12, (height, width)).clip(0, 255).astype(np.uint8)
    for _, x1, y1, x2, y2 in boxes:
        center = (int((x1 + x2) / 2), int((y1 + y2) / 2))
        cv2.ellipse(img, center, (int((x2 - x1) / 2), int((y2 - y1) / 2)), 0, 0, 360, 200, -1)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)
    return path


def _yolo_text(boxes, width=W, height=H) -> str:
    return "".join(
        f"{c} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} {(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}\n"
        for c, x1, y1, x2, y2 in boxes
    )


def _write_yolo(folder: Path, stems) -> None:
    # labelImg's YOLO mode: txt beside the images plus classes.txt, here with class order swapped
    (folder / "classes.txt").parent.mkdir(parents=True, exist_ok=True)
    (folder / "classes.txt").write_text("quasi-sphere\nnanocube\n")
    for stem in stems:
        _draw(folder / f"{stem}.png")
        swapped = [(1 - c, *box) for c, *box in BOXES]
        (folder / f"{stem}.txt").write_text(_yolo_text(swapped))


def _write_voc(folder: Path, stems) -> None:
    for stem in stems:
        _draw(folder / f"{stem}.jpg")
        objs = "".join(
            f"<object><name>{NAMES[c]}</name><pose>Unspecified</pose><truncated>0</truncated><difficult>0</difficult>"
            f"<bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
            for c, x1, y1, x2, y2 in BOXES
        )
        (folder / f"{stem}.xml").write_text(
            f"<annotation><folder>{folder.name}</folder><filename>{stem}.jpg</filename>"
            f"<size><width>{W}</width><height>{H}</height><depth>1</depth></size><segmented>0</segmented>{objs}</annotation>"
        )


def _write_coco(folder: Path, stems) -> None:
    images, anns = [], []
    for i, stem in enumerate(stems, start=1):
        _draw(folder / "images" / f"{stem}.png")
        images.append({"id": i, "file_name": f"{stem}.png", "width": W, "height": H})
        for c, x1, y1, x2, y2 in BOXES:
            anns.append(
                {"id": len(anns) + 1, "image_id": i, "category_id": c + 1, "bbox": [x1, y1, x2 - x1, y2 - y1],
                 "area": (x2 - x1) * (y2 - y1), "iscrowd": 0, "segmentation": []}
            )
    cats = [{"id": 1, "name": "cube"}, {"id": 2, "name": "sphere"}]
    (folder / "annotations.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))


def _write_labelme(folder: Path, stems) -> None:
    for stem in stems:
        _draw(folder / f"{stem}.png")
        (c0, *b0), (c1, *b1) = BOXES
        shapes = [
            {"label": NAMES[c0], "points": [[b0[0], b0[1]], [b0[2], b0[3]]], "shape_type": "rectangle"},
            # a polygon whose bounding box is the sphere box
            {"label": NAMES[c1], "shape_type": "polygon",
             "points": [[b1[0], (b1[1] + b1[3]) / 2], [(b1[0] + b1[2]) / 2, b1[1]], [b1[2], (b1[1] + b1[3]) / 2], [(b1[0] + b1[2]) / 2, b1[3]]]},
        ]
        (folder / f"{stem}.json").write_text(
            json.dumps({"version": "5.4.1", "shapes": shapes, "imagePath": f"{stem}.png", "imageHeight": H, "imageWidth": W, "imageData": None})
        )


WRITERS = {"yolo": _write_yolo, "voc": _write_voc, "coco": _write_coco, "labelme": _write_labelme}


def _run(*args: str):
    return CliRunner().invoke(app, ["build-dataset", *map(str, args)])


def _read_out_labels(out: Path) -> dict[str, list[tuple[int, float, float, float, float]]]:
    """{split/file stem: [(class, cx, cy, w, h), ...]} of a written dataset."""
    labels = {}
    for txt in sorted(out.glob("*/labels/*.txt")):
        rows = [ln.split() for ln in txt.read_text().splitlines() if ln.strip()]
        labels[f"{txt.parent.parent.name}/{txt.stem}"] = [(int(r[0]), *map(float, r[1:])) for r in rows]
    return labels


def _split_classes(out: Path) -> dict[str, set[int]]:
    found: dict[str, set[int]] = {}
    for key, rows in _read_out_labels(out).items():
        found.setdefault(key.split("/")[0], set()).update(r[0] for r in rows)
    return found


# ---------------------------------------------------------------------------------------- formats


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_each_label_format_becomes_correct_yolo(tmp_path, fmt):
    src = tmp_path / f"real-{fmt}"
    WRITERS[fmt](src, ["a", "b"])
    out = tmp_path / "out"
    result = _run("--real", src, "--out", out, "--split", "0.5,0.5", "--seed", "3")
    assert result.exit_code == 0, result.stderr + result.stdout

    labels = _read_out_labels(out)
    assert len(labels) == 2 and {k.split("/")[0] for k in labels} == {"train", "val"}
    want = sorted((c, *map(float, rest.split())) for c, rest in (ln.split(" ", 1) for ln in _yolo_text(BOXES).splitlines()))
    for rows in labels.values():
        got = sorted(rows)
        assert [r[0] for r in got] == [int(w[0]) for w in want]
        np.testing.assert_allclose([r[1:] for r in got], [w[1:] for w in want], atol=1e-5)
    # images are copied/linked unchanged and paired with their labels by stem
    for split in ("train", "val"):
        (img,) = (out / split / "images").iterdir()
        assert (out / split / "labels" / f"{img.stem}.txt").is_file()
        assert cv2.imread(str(img)).shape[:2] == (H, W)

    data = yaml.safe_load((out / "data.yaml").read_text())
    assert Path(data["path"]).is_absolute() and Path(data["path"]) == out.resolve()
    assert data["names"] == {0: "cube", 1: "sphere"}
    assert (data["train"], data["val"]) == ("train/images", "val/images") and "test" not in data
    stats = json.loads((out / "stats.json").read_text())
    assert stats["table"]["total"] == {"images": 2, "synthetic_images": 0, "real_images": 2, "cube": 2, "sphere": 2}
    assert not list(tmp_path.glob(".out.*")), "temporary folder left behind"


def test_output_loads_in_ultralytics(tmp_path, monkeypatch):
    yolo_env = pytest.importorskip("detector.yolo_env")  # ultralytics, imported offline
    check_det_dataset = yolo_env.ultralytics_module("data.utils").check_det_dataset

    src = tmp_path / "src"
    _write_voc(src, ["a", "b", "c"])
    out = tmp_path / "ds"
    assert _run("--real", src, "--out", out, "--seed", "1").exit_code == 0
    monkeypatch.chdir(tmp_path.parent)  # the yaml must work from any working directory
    data = check_det_dataset(str(out / "data.yaml"), autodownload=False)
    assert data["nc"] == 2 and Path(data["train"]) == out / "train" / "images"
    assert all(Path(data[k]).is_dir() for k in ("train", "val", "test"))


# ---------------------------------------------------------------------------------------- info bar


def _with_bar(img: np.ndarray, bar_rows: int, level: int, text_level: int, separator: int | None = None) -> np.ndarray:
    """Append an SEM-like information bar (flat background, text, a scale bar) below ``img``."""
    bar = np.full((bar_rows, img.shape[1]), level, np.uint8)
    cv2.putText(bar, "15.0kV x30.0k SE(U) 1.00um", (4, bar_rows - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.35, text_level, 1)
    cv2.line(bar, (img.shape[1] - 60, 5), (img.shape[1] - 10, 5), text_level, 2)
    parts = [img] + ([np.full((1, img.shape[1]), separator, np.uint8)] if separator is not None else []) + [bar]
    return np.vstack(parts)


def _micrograph(height: int, width: int, seed: int, background: float = 110, blobs: int = 12) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.normal(background, 15, (height, width))
    for _ in range(blobs):
        cv2.circle(img, (int(rng.integers(0, width)), int(rng.integers(0, height))), int(rng.integers(4, 12)), 210, -1)
    return cv2.GaussianBlur(img, (3, 3), 0).clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize(
    "bar_rows, level, text_level, separator",
    [(24, 0, 255, None), (30, 255, 0, None), (18, 20, 230, 255), (40, 128, 255, None)],
)
def test_info_bar_found_within_a_few_pixels(bar_rows, level, text_level, separator):
    img = _micrograph(180, 240, seed=bar_rows)
    full = _with_bar(img, bar_rows, level, text_level, separator)
    top = find_info_bar(full)
    assert top is not None and abs(top - img.shape[0]) <= 2
    colour = cv2.cvtColor(full, cv2.COLOR_GRAY2BGR)  # colour and 16-bit images work the same way
    assert find_info_bar(colour) == top
    assert abs(find_info_bar(full.astype(np.uint16) * 257) - top) <= 1


@pytest.mark.parametrize("seed", range(4))
def test_no_bar_no_crop(seed):
    assert find_info_bar(_micrograph(200, 240, seed)) is None
    # dark background with particles down to the bottom edge: uniform rows, but no bar
    dark = _micrograph(200, 240, seed, background=15, blobs=30)
    dark[-30:-10, :] = np.random.default_rng(seed).normal(15, 3, (20, 240)).clip(0, 255).astype(np.uint8)
    assert find_info_bar(dark) is None
    assert find_info_bar(np.zeros((200, 240), np.uint8)) is None  # flat: nothing to tell apart
    # a scale bar drawn inside the image (no strip) is not an information bar
    inside = _micrograph(200, 240, seed)
    cv2.rectangle(inside, (150, 175), (230, 195), 255, -1)
    assert find_info_bar(inside) is None


def test_info_bar_on_real_sem_images():
    real = SHARED / "data" / "real-sem" / "spheres-train" / "images"
    if not real.is_dir():
        pytest.skip(f"{real} not available")
    # white strip with black text (50 rows), black strip with white text (32 rows); a plain figure crop
    assert abs(find_info_bar(cv2.imread(str(real / "1b3c6536a3.png"))) - 462) <= 2
    assert abs(find_info_bar(cv2.imread(str(real / "21308b3614.png"))) - 480) <= 2
    assert find_info_bar(cv2.imread(str(real / "62e729e838.png"))) is None


def test_remove_info_bar_crops_image_and_moves_labels(tmp_path):
    img = _micrograph(160, 200, seed=7)
    full = _with_bar(img, 30, 0, 255)  # bar starts at row 160
    src = tmp_path / "real"
    (src / "images").mkdir(parents=True)
    cv2.imwrite(str(src / "images" / "sem.tif"), full)
    boxes = [
        (0, 10, 20, 40, 50),  # above the bar: unchanged
        (1, 60, 140, 90, 170),  # 2/3 above: clipped to y2 = 160
        (0, 100, 150, 130, 180),  # 1/3 above: dropped
        (1, 150, 165, 170, 185),  # inside the bar: dropped
        (1, 170, 40, 190, 60),  # above: unchanged
    ]
    (src / "labels").mkdir()
    (src / "labels" / "sem.txt").write_text(_yolo_text(boxes, 200, 190))
    out = tmp_path / "out"
    result = _run("--real", src, "--out", out, "--remove-info-bar", "--split", "0.5,0.5")
    # a single image cannot fill two splits: that is an error, and nothing is written
    assert result.exit_code == 2 and "cannot fill 2 splits" in result.stderr and not out.exists()

    # two copies of the image so that both splits get one (sphere and cube in each)
    cv2.imwrite(str(src / "images" / "sem2.tif"), full)
    (src / "labels" / "sem2.txt").write_text(_yolo_text(boxes, 200, 190))
    result = _run("--real", src, "--out", out, "--remove-info-bar", "--split", "0.5,0.5")
    assert result.exit_code == 0, result.stderr
    assert "info bar cut from 2 image(s)" in result.stdout

    for png in out.glob("*/images/*.png"):  # cropped images are re-encoded as PNG
        assert cv2.imread(str(png), cv2.IMREAD_UNCHANGED).shape == (160, 200)
    for rows in _read_out_labels(out).values():
        got = sorted((c, (cx - w / 2) * 200, (cy - h / 2) * 160, (cx + w / 2) * 200, (cy + h / 2) * 160) for c, cx, cy, w, h in rows)
        want = sorted([(0, 10, 20, 40, 50), (1, 60, 140, 90, 160), (1, 170, 40, 190, 60)])
        np.testing.assert_allclose(got, want, atol=0.01)
    stats = json.loads((out / "stats.json").read_text())
    assert [c["kept_rows"] for c in stats["info_bar"]["cropped_images"]] == [160, 160]
    assert stats["info_bar"]["clipped_labels"] == 2
    reasons = sorted(d["reason"] for d in stats["dropped_labels"])
    assert len(reasons) == 4 and sum("inside the info bar" == r for r in reasons) == 2
    assert all(d["image"].endswith((".tif")) for d in stats["dropped_labels"])


def test_info_bar_is_left_on_synthetic_folders(tmp_path):
    syn = tmp_path / "syn"
    (syn / "images").mkdir(parents=True)
    (syn / "labels").mkdir()
    for stem in ("a", "b"):
        cv2.imwrite(str(syn / "images" / f"{stem}.png"), _with_bar(_micrograph(100, 120, 1), 20, 0, 255))
        (syn / "labels" / f"{stem}.txt").write_text(_yolo_text(BOXES, 120, 120))
    (syn / "manifest.json").write_text("{}")  # marks a synthgen folder for auto-detection
    out = tmp_path / "out"
    assert _run(syn, "--out", out, "--remove-info-bar", "--split", "0.5,0.5").exit_code == 0
    stats = json.loads((out / "stats.json").read_text())
    assert stats["sources"][0]["kind"] == "synthetic" and stats["info_bar"]["cropped_images"] == []


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 1), st.floats(0, 90), st.floats(0, 90), st.floats(1, 30), st.floats(1, 30)),
        max_size=12,
    ),
    st.integers(10, 100),
)
def test_crop_labels_keeps_boxes_inside_and_accounts_for_all(boxes, keep_rows):
    xyxy = np.array([[x, y, x + w, y + h] for _, x, y, w, h in boxes], np.float32).reshape(-1, 4)
    det = Detections(xyxy, np.array([b[0] for b in boxes], np.int64))
    sample = Sample(Path("x.png"), 130, 130, det)
    cropped, dropped, clipped = crop_labels(sample, keep_rows)
    assert len(cropped.gt) + len(dropped) == len(det)
    assert cropped.height == keep_rows
    assert (cropped.gt.xyxy[:, 3] <= keep_rows + 1e-4).all() and (cropped.gt.wh >= 1 - 1e-4).all()
    assert clipped == int(((xyxy[:, 3] > keep_rows) & (xyxy[:, 1] < keep_rows)).sum()) - sum(
        "above the info bar" in d.reason for d in dropped
    )
    assert all(d.xyxy[1] >= keep_rows for d in dropped if d.reason == "inside the info bar")


# ---------------------------------------------------------------------------------------- balance, split


def _items(n_cube_imgs: int, n_sphere_imgs: int, cubes_each=1, spheres_each=2, mixed: int = 0) -> list[Item]:
    items = []
    for k in range(n_cube_imgs + n_sphere_imgs + mixed):
        if k < n_cube_imgs:
            cls = [0] * cubes_each
        elif k < n_cube_imgs + n_sphere_imgs:
            cls = [1] * spheres_each
        else:
            cls = [0, 1, 1]
        xyxy = [[4 * j, 0, 4 * j + 3, 3] for j in range(len(cls))]
        items.append(Item(Sample(Path(f"i{k}.png"), 64, 64, Detections(np.array(xyxy), np.array(cls))), 0))
    return items


def test_balance_objects_gives_equal_counts():
    items = _items(10, 3)  # 10 cubes, 6 spheres
    balanced = balance_items(items, "objects", None, np.random.default_rng(0))
    assert class_totals(balanced) == {"cube": 6, "sphere": 6}
    assert balance_items(items, "none", None, np.random.default_rng(0)) == items
    capped = balance_items(items, "none", 4, np.random.default_rng(0))
    assert class_totals(capped) == {"cube": 4, "sphere": 4}
    both = balance_items(_items(20, 12, mixed=4), "objects", 10, np.random.default_rng(1))
    assert class_totals(both) == {"cube": 10, "sphere": 10}


def test_balance_cli_writes_equal_counts(tmp_path):
    src = tmp_path / "real"
    for k in range(12):
        boxes = [BOXES[0]] if k < 8 else [BOXES[1], (1, 50, 2, 70, 18)]  # 8 cubes, 8 spheres ...
        _draw(src / "images" / f"{k:02d}.png", boxes, seed=k)
        (src / "labels").mkdir(exist_ok=True)
        (src / "labels" / f"{k:02d}.txt").write_text(_yolo_text(boxes))
    for k in range(12, 18):  # ... plus 6 more cube images
        _draw(src / "images" / f"{k:02d}.png", [BOXES[0]], seed=k)
        (src / "labels" / f"{k:02d}.txt").write_text(_yolo_text([BOXES[0]]))
    out = tmp_path / "out"
    result = _run("--real", src, "--out", out, "--balance", "objects", "--split", "0.5,0.5")
    assert result.exit_code == 0, result.stderr
    stats = json.loads((out / "stats.json").read_text())
    assert stats["objects_before_balance"] == {"cube": 14, "sphere": 8}
    assert stats["table"]["total"]["cube"] == stats["table"]["total"]["sphere"] == 8
    assert "cube" in result.stdout and "sphere" in result.stdout and "total" in result.stdout


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("fractions", [(0.7, 0.15, 0.15), (0.8, 0.2)])
def test_split_stratified_and_deterministic(seed, fractions):
    items = _items(40, 5, cubes_each=3, spheres_each=4)  # spheres are rare: 5 images
    splits = split_items(items, fractions, np.random.default_rng(seed))
    assert sorted(it.sample.image_path.name for part in splits for it in part) == sorted(
        it.sample.image_path.name for it in items
    )
    for part in splits:
        totals = class_totals(part)
        assert totals["cube"] > 0 and totals["sphere"] > 0, totals
    train = class_totals(splits[0])
    assert abs(train["cube"] / 120 - fractions[0]) < 0.1
    again = split_items(items, fractions, np.random.default_rng(seed))
    assert [[it.sample.image_path for it in p] for p in again] == [[it.sample.image_path for it in p] for p in splits]


def test_split_seed_changes_assignment_and_cli_is_deterministic(tmp_path):
    items = _items(30, 10)
    a = split_items(items, (0.7, 0.15, 0.15), np.random.default_rng(0))
    b = split_items(items, (0.7, 0.15, 0.15), np.random.default_rng(1))
    assert [[it.sample.image_path for it in p] for p in a] != [[it.sample.image_path for it in p] for p in b]

    src = tmp_path / "real"
    _write_coco(src, [f"im{k}" for k in range(8)])
    runs = []
    for name in ("o1", "o2"):
        assert _run("--real", src, "--out", tmp_path / name, "--seed", "5").exit_code == 0
        runs.append(json.loads((tmp_path / name / "stats.json").read_text())["files"])
    assert runs[0] == runs[1]
    assert _split_classes(tmp_path / "o1") == {"train": {0, 1}, "val": {0, 1}, "test": {0, 1}}


def test_split_impossible_for_a_rare_class_is_an_error():
    with pytest.raises(InputError, match="'sphere' is in only 2 image"):
        split_items(_items(20, 2), (0.7, 0.15, 0.15), np.random.default_rng(0))
    assert all(class_totals(p)["sphere"] for p in split_items(_items(20, 2), (0.8, 0.2), np.random.default_rng(0)))


@pytest.mark.parametrize(
    "text, want",
    [
        ("0.7,0.15,0.15", (0.7, 0.15, 0.15)),
        ("0.8, 0.2", (0.8, 0.2)),
        (".5,.25,.25", (0.5, 0.25, 0.25)),
        ("0.75,0.15,0.15", (0.75 / 1.05, 0.15 / 1.05, 0.15 / 1.05)),  # the paper's wording: proportions
        ("3,1", (0.75, 0.25)),
    ],
)
def test_parse_split(text, want):
    assert parse_split(text) == pytest.approx(want)


@pytest.mark.parametrize("text", ["1", "0.5,0.3,0.1,0.1", "a,b", "1,0", "1.2,-0.2", ""])
def test_parse_split_rejects(text):
    with pytest.raises(InputError, match="--split"):
        parse_split(text)


def test_positional_folders_are_auto_detected(tmp_path):
    (tmp_path / "syn").mkdir()
    (tmp_path / "syn" / "manifest.json").write_text("{}")
    (tmp_path / "real").mkdir()
    kinds = [s.kind for s in make_sources(auto=[tmp_path / "syn", tmp_path / "real"])]
    assert kinds == ["synthetic", "real"]
    assert [s.kind for s in make_sources(real=[tmp_path / "syn"])] == ["real"]  # explicit wins


def test_overwrite_replaces_atomically(tmp_path):
    src = tmp_path / "src"
    _write_labelme(src, ["a", "b", "c", "d"])
    out = tmp_path / "ds"
    assert _run("--real", src, "--out", out, "--split", "0.5,0.5").exit_code == 0
    assert oct(out.stat().st_mode & 0o777) != oct(0o700)  # not mkdtemp's private mode
    (out / "stale.txt").write_text("from an older build")
    assert _run("--real", src, "--out", out, "--split", "0.5,0.5").exit_code == 2  # exists: refused
    result = _run("--real", src, "--out", out, "--overwrite", "--copy")
    assert result.exit_code == 0, result.stderr
    assert not (out / "stale.txt").exists() and (out / "test" / "images").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "src"]  # no temp or old folders left
    assert all(p.stat().st_nlink == 1 for p in out.glob("*/images/*"))  # --copy: real copies


# ---------------------------------------------------------------------------------------- bad input


def _bad_input_cases(tmp_path: Path) -> dict[str, tuple[list, str]]:
    ok = tmp_path / "ok"
    _write_voc(ok, ["a", "b", "c"])
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    out_of_range = tmp_path / "range"
    _draw(out_of_range / "images" / "x.png")
    (out_of_range / "labels").mkdir()
    (out_of_range / "labels" / "x.txt").write_text(_yolo_text(BOXES) + "7 0.5 0.5 0.1 0.1\n")
    outside = tmp_path / "outside"
    _draw(outside / "images" / "x.png")
    (outside / "labels").mkdir()
    (outside / "labels" / "x.txt").write_text("0 0.9 0.5 0.4 0.1\n")
    unknown = tmp_path / "unknown"
    _write_voc(unknown, ["a"])
    (unknown / "a.xml").write_text((unknown / "a.xml").read_text().replace("nanocube", "nanorod"))
    unlabelled = tmp_path / "unlabelled"
    _draw(unlabelled / "images" / "x.png")
    existing = tmp_path / "existing"
    existing.mkdir()
    return {
        "no images": ([empty], f"{empty}: no images found"),
        "class out of range": ([out_of_range], f"{out_of_range / 'labels' / 'x.txt'}:3: class 7 out of range"),
        "coordinates out of range": ([outside], f"{outside / 'labels' / 'x.txt'}:1: box"),
        "unknown class": ([unknown], f"{unknown / 'a.xml'}: unknown class name(s) 'nanorod'"),
        "empty dataset": ([unlabelled], "no labelled particles"),
        "bad split": ([ok, "--split", "0.6,x"], "--split '0.6,x': expected 2 or 3"),
        "bad balance": ([ok, "--balance", "classes"], ""),
        "too few for cap": ([ok, "--max-objects-per-class", "0"], ""),
        "no inputs": ([], "no input folders"),
        "missing folder": ([tmp_path / "nope"], "no such folder"),
        "output exists": ([ok, "--out", existing], "already exists"),
        # --overwrite replaces the output whole: an input inside it would be deleted with it
        "input inside output": ([ok, "--out", tmp_path, "--overwrite"], "must not be an input folder, inside one, or hold one"),
    }


CASES = [
    "no images",
    "class out of range",
    "coordinates out of range",
    "unknown class",
    "empty dataset",
    "bad split",
    "bad balance",
    "too few for cap",
    "no inputs",
    "missing folder",
    "output exists",
    "input inside output",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_exit_2_one_line_nothing_written(tmp_path, case):
    args, message = _bad_input_cases(tmp_path)[case]
    out = tmp_path / "built"
    before = sorted(p.name for p in tmp_path.iterdir())
    if "--out" not in args:
        args = [*args, "--out", out]
    result = _run(*args)
    assert result.exit_code == 2, result.stdout + result.stderr
    if message:  # typer's own usage errors (bad enum / range) are boxed and not ours to format
        lines = result.stderr.strip().splitlines()
        errors = [ln for ln in lines if not ln.startswith("warning: ")]  # warnings about the data may come first
        assert len(errors) == 1 and errors[0].startswith("error: ") and message in errors[0], result.stderr
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "something was written"


# ---------------------------------------------------------------------------------------- documented example


def test_documented_example_mixed_synthetic_cubes_and_real_spheres(tmp_path):
    """README: synthetic cubes from the bundled patterns + real quasi-spheres, set B, with info bar removal."""
    real = SHARED / "data" / "real-sem" / "spheres-train"
    if not real.is_dir():
        pytest.skip(f"{real} not available")
    syn = tmp_path / "synthetic"
    pattern = Path(__file__).resolve().parents[1] / "patterns" / "p01" / "pattern.txt"
    try:
        from synthgen.generate import generate

        generate([pattern], syn, count=12, max_particles=40, seed=1)
    except (ImportError, InputError, OSError):  # generator unavailable: tiny numpy cube images instead
        for k in range(12):
            rng = np.random.default_rng(k)
            boxes = [(0, x, y, x + 14, y + 14) for x, y in rng.integers(0, 100, (20, 2))]
            _draw(syn / "images" / f"{k:06d}.png", boxes, 128, 128, seed=k)
            (syn / "labels").mkdir(exist_ok=True)
            (syn / "labels" / f"{k:06d}.txt").write_text(_yolo_text(boxes, 128, 128))
        (syn / "manifest.json").write_text("{}")
    out = tmp_path / "datasets" / "setB"
    result = _run(syn, real, "--out", out, "--remove-info-bar", "--balance", "objects", "--split", "0.7,0.15,0.15", "--seed", "0")
    assert result.exit_code == 0, result.stderr + result.stdout
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert Path(data["path"]) == out.resolve() and data["names"] == {0: "cube", 1: "sphere"}
    assert _split_classes(out) == {"train": {0, 1}, "val": {0, 1}, "test": {0, 1}}
    stats = json.loads((out / "stats.json").read_text())
    assert [s["kind"] for s in stats["sources"]] == ["synthetic", "real"]
    total = stats["table"]["total"]
    assert abs(total["cube"] - total["sphere"]) <= 0.05 * max(total["cube"], total["sphere"])
    assert len(stats["info_bar"]["cropped_images"]) >= 3  # several spheres-train images carry a bar
