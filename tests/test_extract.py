"""`synthgen extract`: templates cut from a labelled micrograph, with a pattern file."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import box
from typer.testing import CliRunner

from synthgen.cli import app
from synthgen.errors import InputError
from synthgen.extract import SKIP_BORDER, Particle, extract, select_particles, skip_neighbour

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
W, H = 200, 160
# (x0, y0, x1, y1, kind): three isolated particles, one cut by the border, two touching.
PARTICLES = [
    (20, 20, 44, 44, "square"),
    (90, 30, 116, 56, "disc"),
    (40, 100, 62, 122, "square"),
    (180, 70, 200, 92, "square"),  # cut by the right border
    (120, 100, 140, 120, "square"),  # these two are 2 px apart
    (142, 104, 160, 122, "disc"),
]


def draw_micrograph() -> tuple[np.ndarray, np.ndarray]:
    """(grey image, instance labels) of the particles above on a noisy dark background."""
    rng = np.random.default_rng(0)
    img = np.clip(rng.normal(35, 6, (H, W)), 0, 255)
    labels = np.zeros((H, W), np.uint16)
    for i, (x0, y0, x1, y1, kind) in enumerate(PARTICLES, start=1):
        m = np.zeros((H, W), np.uint8)
        if kind == "square":
            m[y0:y1, x0:x1] = 1
        else:
            cv2.ellipse(m, (((x0 + x1) / 2 - 0.5, (y0 + y1) / 2 - 0.5), (x1 - x0 - 1, y1 - y0 - 1), 0), 1, -1)
        img[m > 0] = 150 + rng.normal(0, 8, int(m.sum()))
        labels[m > 0] = i * 7  # ids need not be consecutive
    return img.astype(np.uint8), labels


def yolo_lines(cls: int = 0) -> str:
    out = []
    for x0, y0, x1, y1, _ in PARTICLES:
        out.append(f"{cls} {(x0 + x1) / 2 / W:.6f} {(y0 + y1) / 2 / H:.6f} {(x1 - x0) / W:.6f} {(y1 - y0) / H:.6f}")
    return "\n".join(out) + "\n"


@pytest.fixture
def micrograph(tmp_path: Path) -> dict[str, Path]:
    img, labels = draw_micrograph()
    src = tmp_path / "src"
    src.mkdir()
    cv2.imwrite(str(src / "m.png"), img)
    cv2.imwrite(str(src / "m_mask.png"), labels)
    (src / "m.txt").write_text(yolo_lines())
    return {"image": src / "m.png", "yolo": src / "m.txt", "mask": src / "m_mask.png", "dir": tmp_path}


def read_out(out: Path) -> tuple[list[str], list[tuple[str, str]]]:
    lines = [ln for ln in (out / "pattern.txt").read_text().splitlines() if ln.strip()]
    body = [ln for ln in lines if not ln.startswith("#")]
    return body[0].split(), [tuple(ln.split()) for ln in body[1:]]


def check_templates(out: Path, entries, min_area: int) -> list[np.ndarray]:
    imgs = []
    for rel, _ in entries:
        img = cv2.imread(str(out / rel), cv2.IMREAD_UNCHANGED)
        assert img is not None and img.shape[2] == 4
        alpha = img[..., 3]
        assert (alpha >= 128).sum() >= min_area
        assert alpha[0].max() == alpha[-1].max() == alpha[:, 0].max() == alpha[:, -1].max() == 0
        imgs.append(img)
    return imgs


def test_extract_from_yolo_skips_border_and_touching(micrograph):
    out = micrograph["dir"] / "pat"
    report = extract(micrograph["image"], micrograph["yolo"], out, margin=4)
    assert report.n_written == 3
    assert report.skipped_counts() == {SKIP_BORDER: 1, skip_neighbour(4): 2}
    size, entries = read_out(out)
    assert size == [str(W), str(H)]
    assert entries == [(f"templates/t0{i}.png", "cube") for i in (1, 2, 3)]
    imgs = check_templates(out, entries, min_area=300)
    # Otsu footprint of the 24x24 square: its area, not the whole margin-padded crop.
    assert imgs[0].shape[:2] == (24 + 8, 24 + 8)
    assert abs(int((imgs[0][..., 3] >= 128).sum()) - 24 * 24) < 0.25 * 24 * 24
    # The disc's footprint is round: clearly less than its box (both grown by the 1 px feather).
    assert (imgs[1][..., 3] >= 128).sum() < 0.88 * 28 * 28
    assert not [p for p in micrograph["dir"].iterdir() if p.name.startswith(".")]


def test_extract_from_instance_mask_uses_the_mask_as_footprint(micrograph):
    out = micrograph["dir"] / "pat"
    report = extract(micrograph["image"], micrograph["mask"], out, margin=3, class_name="quasi-sphere")
    assert report.n_written == 3 and len(report.skipped) == 3
    size, entries = read_out(out)
    assert size == [str(W), str(H)] and {c for _, c in entries} == {"sphere"}
    imgs = check_templates(out, entries, min_area=300)
    _, labels = draw_micrograph()
    ys, xs = np.nonzero(labels == 14)  # particle 2, cropped with its 3 px margin
    disc = labels[ys.min() - 3 : ys.max() + 4, xs.min() - 3 : xs.max() + 4] == 14
    alpha = imgs[1][..., 3]
    assert alpha.shape == disc.shape
    assert (alpha[disc] == 255).mean() > 0.95 and (alpha[cv2.dilate(disc.astype(np.uint8), np.ones((5, 5))) == 0] == 0).all()


def test_margin_zero_keeps_the_pair_two_pixels_apart(micrograph):
    report = extract(micrograph["image"], micrograph["mask"], micrograph["dir"] / "pat", margin=0)
    assert report.n_written == 5 and report.skipped_counts() == {SKIP_BORDER: 1}


def test_extract_from_labelme_polygons(micrograph):
    img_path = micrograph["image"]
    shapes = []
    for x0, y0, x1, y1, kind in PARTICLES:
        if kind == "square":
            pts = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]
        else:
            t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
            cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
            pts = np.column_stack([cx + rx * np.cos(t), cy + ry * np.sin(t)]).tolist()
        shapes.append({"label": "sphere", "points": pts, "shape_type": "polygon"})
    data = {"shapes": shapes, "imagePath": img_path.name, "imageWidth": W, "imageHeight": H}
    label = img_path.with_suffix(".json")
    label.write_text(json.dumps(data))
    out = micrograph["dir"] / "pat"
    report = extract(img_path, label, out)
    assert report.n_written == 3
    _, entries = read_out(out)
    assert {c for _, c in entries} == {"sphere"}
    imgs = check_templates(out, entries, min_area=300)
    # The 24x24 square polygon, grown by the 1 px feather.
    assert abs(int((imgs[0][..., 3] >= 128).sum()) - 26 * 26) < 0.05 * 26 * 26


def test_extract_from_coco_json_with_polygons_and_boxes(micrograph):
    img_path = micrograph["image"]
    anns = []
    for k, (x0, y0, x1, y1, _) in enumerate(PARTICLES, start=1):
        # Polygon for the first particle only; the others are box-only (Otsu footprint).
        seg = [[x0, y0, x1, y0, x1, y1, x0, y1]] if k == 1 else []
        anns.append({"id": k, "image_id": 1, "category_id": 2, "bbox": [x0, y0, x1 - x0, y1 - y0],
                     "segmentation": seg, "area": (x1 - x0) * (y1 - y0), "iscrowd": 0})  # fmt: skip
    coco = {
        "info": {}, "images": [{"id": 1, "file_name": img_path.name, "width": W, "height": H}],
        "categories": [{"id": 1, "name": "cube"}, {"id": 2, "name": "quasi-sphere"}], "annotations": anns,
    }  # fmt: skip
    label = img_path.parent / "annotations.json"
    label.write_text(json.dumps(coco))
    report = extract(img_path, label, micrograph["dir"] / "pat")
    assert report.n_written == 3 and report.skipped_counts() == {SKIP_BORDER: 1, skip_neighbour(4): 2}
    _, entries = read_out(micrograph["dir"] / "pat")
    assert {c for _, c in entries} == {"sphere"}
    check_templates(micrograph["dir"] / "pat", entries, min_area=300)


def test_colour_coded_mask_and_16_bit_image(micrograph):
    grey, labels = draw_micrograph()
    image = micrograph["dir"] / "m16.png"
    cv2.imwrite(str(image), grey.astype(np.uint16) * 257)
    rng = np.random.default_rng(3)
    palette = {int(v): rng.integers(1, 255, 3) for v in np.unique(labels) if v}
    colour = np.zeros((H, W, 3), np.uint8)
    for v, c in palette.items():
        colour[labels == v] = c
    mask = micrograph["dir"] / "m_colour.png"
    cv2.imwrite(str(mask), colour)
    report = extract(image, mask, micrograph["dir"] / "pat", margin=4)
    assert report.n_written == 3 and len(report.skipped) == 3


def test_cli_extract_reports_skips(micrograph):
    out = micrograph["dir"] / "pat"
    args = ["extract", str(micrograph["image"]), "--labels", str(micrograph["yolo"]), "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "wrote 3 templates" in result.output
    assert f"skipped 1: {SKIP_BORDER}" in result.output and "skipped 2: within 4 px" in result.output
    # A second run refuses to overwrite, --force replaces.
    assert CliRunner().invoke(app, args).exit_code == 2
    assert CliRunner().invoke(app, [*args, "--force", "--margin", "0"]).exit_code == 0
    assert len(read_out(out)[1]) == 5


def _nothing_written(base: Path, out: Path) -> bool:
    return not out.exists() and not [p for p in base.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize(
    "case, expect",
    [
        ("bad_yolo_line", "m.txt:2:"),
        ("missing_image", "no such image"),
        ("corrupt_image", "cannot read image"),
        ("mask_wrong_size", "instance mask is 20x10"),
        ("unknown_class", "unknown class 'rod'"),
        ("all_skipped", "no particle could be cut out"),
        ("unknown_label_format", "unknown label format"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(micrograph, case, expect):
    image, labels, extra = micrograph["image"], micrograph["yolo"], []
    src = image.parent
    if case == "bad_yolo_line":
        labels.write_text("0 0.2 0.2 0.1 0.1\n0 0.5 oops 0.1 0.1\n")
    elif case == "missing_image":
        image = src / "nope.png"
    elif case == "corrupt_image":
        image = src / "bad.png"
        image.write_bytes(b"\x89PNG not really")
    elif case == "mask_wrong_size":
        labels = src / "small_mask.png"
        cv2.imwrite(str(labels), np.ones((10, 20), np.uint8))
    elif case == "unknown_class":
        extra = ["--class-name", "rod"]
    elif case == "all_skipped":
        labels.write_text("0 0.05 0.5 0.1 0.2\n")  # touches the left border
    elif case == "unknown_label_format":
        labels = src / "m.csv"
        labels.write_text("x")
    out = micrograph["dir"] / "pat"
    result = CliRunner().invoke(app, ["extract", str(image), "--labels", str(labels), "--out", str(out), *extra])
    assert result.exit_code == 2, result.output
    assert expect in result.output
    assert result.output.startswith("error: ")
    assert _nothing_written(micrograph["dir"], out)


def test_library_raises_input_error_for_non_empty_out(micrograph):
    out = micrograph["dir"] / "pat"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty"):
        extract(micrograph["image"], micrograph["yolo"], out)
    assert (out / "notes.txt").read_text() == "mine" and len(list(out.iterdir())) == 1
    with pytest.raises(InputError, match="refusing to replace"):
        extract(micrograph["image"], micrograph["yolo"], out, force=True)
    assert (out / "notes.txt").read_text() == "mine" and len(list(out.iterdir())) == 1


box_strategy = st.tuples(
    st.integers(0, 180), st.integers(0, 140), st.integers(3, 40), st.integers(3, 40)
).map(lambda b: (float(b[0]), float(b[1]), float(min(b[0] + b[2], 200)), float(min(b[1] + b[3], 160))))


@settings(max_examples=60, deadline=None)
@given(st.lists(box_strategy, min_size=1, max_size=12), st.integers(0, 6))
def test_kept_particles_are_whole_and_isolated(bxs, margin):
    particles = [Particle(b, "cube") for b in bxs]
    keep, skipped = select_particles(particles, 200, 160, margin)
    assert sorted(keep + [i for i, _ in skipped]) == list(range(len(bxs)))
    for i in keep:
        x0, y0, x1, y1 = bxs[i]
        assert x0 >= 1 and y0 >= 1 and x1 <= 199 and y1 <= 159
        for j in range(len(bxs)):
            if j != i:
                assert box(*bxs[i]).distance(box(*bxs[j])) >= max(margin, 1)


def test_extract_a_real_val_i_micrograph(tmp_path):
    split = SHARED / "data" / "real-sem" / "val-I"
    if not split.is_dir():
        pytest.skip(f"shared data not found at {split}")
    image = sorted((split / "images").glob("*.png"))[0]
    labels = split / "labels" / f"{image.stem}.txt"
    n_labels = len([ln for ln in labels.read_text().splitlines() if ln.strip()])
    report = extract(image, labels, tmp_path / "pat")
    assert report.n_written > 0 and report.n_written + len(report.skipped) == n_labels
    height, width = cv2.imread(str(image), cv2.IMREAD_UNCHANGED).shape[:2]
    size, entries = read_out(tmp_path / "pat")
    assert size == [str(width), str(height)] and len(entries) == report.n_written
    check_templates(tmp_path / "pat", entries, min_area=20)
    from synthgen.pattern import load_pattern

    assert len(load_pattern(tmp_path / "pat" / "pattern.txt").templates) == report.n_written
