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
from synthgen.extract import (
    SKIP_BORDER,
    SKIP_NO_MASK,
    Particle,
    crop_window,
    extract,
    mask_boxes,
    select_particles,
    skip_neighbour,
)

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
    # With a mask the pair 2 px apart is cut too, each with its neighbour blanked.
    assert report.n_written == 5 and report.skipped_counts() == {SKIP_BORDER: 1} and report.n_blanked == 2
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
    assert report.n_written == 5 and len(report.skipped) == 1 and report.n_blanked == 2


def test_isolated_only_keeps_the_old_rule_with_a_mask(micrograph):
    report = extract(micrograph["image"], micrograph["mask"], micrograph["dir"] / "pat", isolated_only=True)
    assert report.n_written == 3 and report.skipped_counts() == {SKIP_BORDER: 1, skip_neighbour(4): 2}
    assert report.n_blanked == 0


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


# --------------------------------------------------------------------------- crowded particles with masks

BG_MEAN, PARTICLE_LEVEL = 35, 170


def draw_shapes(shapes: list[tuple[str, int, int, int]], w: int, h: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """(grey image, uint16 instance mask with value k+1 for shape k) of (kind, x0, y0, size) shapes.

    A later shape never overwrites an earlier one, so shapes may touch without overlapping."""
    rng = np.random.default_rng(seed)
    img = np.clip(rng.normal(BG_MEAN, 6, (h, w)), 0, 255)
    labels = np.zeros((h, w), np.uint16)
    for k, (kind, x0, y0, s) in enumerate(shapes, start=1):
        m = np.zeros((h, w), np.uint8)
        if kind == "square":
            m[y0 : y0 + s, x0 : x0 + s] = 1
        else:
            cv2.ellipse(m, ((x0 + s / 2 - 0.5, y0 + s / 2 - 0.5), (s - 1, s - 1), 0), 1, -1)
        m[labels != 0] = 0
        labels[m > 0] = k
        img[m > 0] = PARTICLE_LEVEL + 10 * k + rng.normal(0, 5, int(m.sum()))
    return np.clip(img, 0, 255).astype(np.uint8), labels


def whole(xyxy, w: int, h: int) -> bool:
    """The border rule: not cut by (or flush with) the image border, and at least 3 px a side."""
    x0, y0, x1, y1 = xyxy
    return x0 >= 1 and y0 >= 1 and x1 <= w - 1 and y1 <= h - 1 and min(x1 - x0, y1 - y0) >= 3


def assert_own_mask_templates(out: Path, image: np.ndarray, labels: np.ndarray, margin: int, report) -> None:
    """Every whole particle is cut, by its own mask, with the neighbour pixels in its crop blanked."""
    h, w = labels.shape
    boxes = mask_boxes(labels)
    expected = [k for k in sorted(boxes) if whole(boxes[k], w, h)]
    _, entries = read_out(out)
    assert report.n_written == len(entries) == len(expected)
    n_blanked = 0
    for (rel, _), k in zip(entries, expected):
        t = cv2.imread(str(out / rel), cv2.IMREAD_UNCHANGED)
        grey, alpha = t[..., 0], t[..., 3]
        x0, y0, x1, y1 = crop_window(boxes[k], margin, w, h)
        win, src = labels[y0:y1, x0:x1], image[y0:y1, x0:x1]
        own, others, free = win == k, (win != 0) & (win != k), win == 0
        assert alpha.shape == own.shape
        assert (alpha[own] == 255).all()
        assert (alpha[others] == 0).all(), "alpha reaches a neighbour's mask pixels"
        # extract's feather: the mask dilated by 1 px, then blurred (sigma 0.6), so it fades out within 2 px.
        grown = cv2.dilate(own.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        assert not (alpha[~grown] > 0).any(), "alpha beyond the feather of the particle's own mask"
        assert (grey[own] == src[own]).all() and (grey[free] == src[free]).all()
        if others.any():
            n_blanked += 1
            blank = np.unique(grey[others])
            assert len(blank) == 1 and blank[0] < PARTICLE_LEVEL - 40, "neighbour pixels not blanked"
            if free.sum() >= 16:
                assert blank[0] == np.round(np.median(src[free]))
    assert report.n_blanked == n_blanked
    assert report.skipped_counts() == ({SKIP_BORDER: len(boxes) - len(expected)} if len(expected) < len(boxes) else {})


shape_strategy = st.tuples(
    st.sampled_from(["square", "disc"]), st.integers(6, 24), st.integers(0, 2), st.integers(-5, 5), st.booleans()
)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(shape_strategy, min_size=2, max_size=3),
    st.integers(0, 12),
    st.integers(0, 12),
    st.integers(0, 6),
    st.booleans(),
)
def test_touching_particles_are_cut_by_their_own_masks(specs, x, y, margin, flush_right):
    """Chains of 2-3 touching or nearly touching discs/squares: each whole one is cut by its own mask."""
    import tempfile

    w = h = 110
    shapes = []
    for i, (kind, s, gap, shift, down) in enumerate(specs):
        if i:
            _, px, py, ps = shapes[-1]
            x, y = (max(px + shift, 0), py + ps + gap) if down else (px + ps + gap, max(py + shift, 0))
        shapes.append((kind, x, y, s))
    if flush_right:  # the last shape against the right border: cut by the border, skipped
        dx = w - (shapes[-1][1] + shapes[-1][3])
        shapes = [(k, sx + dx, sy, s) for k, sx, sy, s in shapes]
        shapes = [(k, sx, sy, s) for k, sx, sy, s in shapes if sx >= 0]
    image, labels = draw_shapes(shapes, w, h)
    with tempfile.TemporaryDirectory() as tmp:
        cv2.imwrite(f"{tmp}/m.png", image)
        cv2.imwrite(f"{tmp}/mask.png", labels)
        boxes = mask_boxes(labels)
        if not any(whole(b, w, h) for b in boxes.values()):
            with pytest.raises(InputError, match="no particle could be cut"):
                extract(f"{tmp}/m.png", f"{tmp}/mask.png", f"{tmp}/pat", margin=margin)
            return
        report = extract(f"{tmp}/m.png", f"{tmp}/mask.png", f"{tmp}/pat", margin=margin)
        assert_own_mask_templates(Path(tmp) / "pat", image, labels, margin, report)
        from synthgen.pattern import load_pattern

        assert len(load_pattern(Path(tmp) / "pat" / "pattern.txt").templates) == report.n_written


# Two squares sharing an edge, a disc touching the second, a square cut by the right border.
CROWD = [("square", 20, 30, 20), ("square", 40, 30, 20), ("disc", 60, 34, 18), ("square", 100, 10, 12)]
CROWD_W, CROWD_H = 112, 90


def crowd_files(base: Path, emps_layout: bool = False) -> dict[str, Path]:
    """Image, YOLO labels (line k = mask value k+1, class sphere) and mask of CROWD under `base`."""
    image, labels = draw_shapes(CROWD, CROWD_W, CROWD_H, seed=1)
    dirs = {d: base / d if emps_layout else base for d in ("images", "labels", "masks")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    paths = {"image": dirs["images"] / "c.png", "yolo": dirs["labels"] / "c.txt", "mask": dirs["masks"] / "c.png"}
    paths["mask"] = paths["mask"] if emps_layout else base / "c_mask.png"
    cv2.imwrite(str(paths["image"]), image)
    cv2.imwrite(str(paths["mask"]), labels)
    lines = []
    for k in sorted(mask_boxes(labels)):
        x0, y0, x1, y1 = mask_boxes(labels)[k]
        cx, cy, bw, bh = (x0 + x1) / 2 / CROWD_W, (y0 + y1) / 2 / CROWD_H, (x1 - x0) / CROWD_W, (y1 - y0) / CROWD_H
        lines.append(f"1 {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}")
    paths["yolo"].write_text("\n".join(lines) + "\n")
    return paths


def test_cli_yolo_labels_with_masks_cuts_touching_particles_and_passes_check(tmp_path):
    p = crowd_files(tmp_path)
    out = tmp_path / "pat"
    # Boxes alone: the three touching particles are skipped.
    args = ["extract", str(p["image"]), "--labels", str(p["yolo"]), "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "3 within 4 px of a neighbour" in result.output
    result = CliRunner().invoke(app, [*args, "--masks", str(p["mask"])])
    assert result.exit_code == 0, result.output
    assert "wrote 3 templates (3 with neighbours blanked)" in result.output
    assert f"skipped 1: {SKIP_BORDER}" in result.output
    _, entries = read_out(out)
    assert {c for _, c in entries} == {"sphere"}  # classes from the label file
    image, labels = draw_shapes(CROWD, CROWD_W, CROWD_H, seed=1)
    report = extract(p["image"], p["yolo"], tmp_path / "pat2", mask_path=p["mask"])
    assert_own_mask_templates(tmp_path / "pat2", image, labels, 4, report)
    check = CliRunner().invoke(app, ["check", str(out / "pattern.txt")])
    assert check.exit_code == 0 and check.output.startswith("ok "), check.output
    assert "masks c_mask.png" in (out / "pattern.txt").read_text()
    # --isolated-only restores the skip.
    result = CliRunner().invoke(app, [*args, "--masks", str(p["mask"]), "--isolated-only", "--force"])
    assert result.exit_code == 2 and "3 within 4 px of a neighbour" in result.output


def test_cli_hints_at_a_sibling_mask_in_an_emps_layout(tmp_path):
    p = crowd_files(tmp_path, emps_layout=True)
    args = ["extract", str(p["image"]), "--labels", str(p["yolo"]), "--out", str(tmp_path / "pat")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and f"--masks {p['mask']}" in result.output


def test_masks_that_do_not_match_the_label_file(tmp_path):
    p = crowd_files(tmp_path)
    lines = p["yolo"].read_text().splitlines()
    # One line fewer than the mask has particles: the mask belongs to another label file.
    p["yolo"].write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(InputError, match="instance mask has value 4 but the label file has 3"):
        extract(p["image"], p["yolo"], tmp_path / "pat", mask_path=p["mask"])
    # An extra line with no mask pixels is skipped and counted, the others cut.
    p["yolo"].write_text("\n".join([*lines, "1 0.5 0.85 0.05 0.05"]) + "\n")
    report = extract(p["image"], p["yolo"], tmp_path / "pat", mask_path=p["mask"])
    assert report.n_written == 3 and report.skipped_counts() == {SKIP_BORDER: 1, SKIP_NO_MASK: 1}
    with pytest.raises(InputError, match="--masks goes with a label file"):
        extract(p["image"], p["mask"], tmp_path / "pat3", mask_path=p["mask"])
    with pytest.raises(InputError, match="lossless image"):
        extract(p["image"], p["yolo"], tmp_path / "pat3", mask_path=p["yolo"])
    assert not (tmp_path / "pat3").exists()


def test_extract_a_crowded_spheres_train_micrograph_with_its_mask(shared_dir, tmp_path):
    split = shared_dir / "data" / "real-sem" / "spheres-train"
    images = sorted((split / "images").glob("*.png"))
    if not images or not (split / "masks").is_dir():
        pytest.skip(f"no spheres-train images with masks under {split}")
    image = images[0]
    labels, mask = split / "labels" / f"{image.stem}.txt", split / "masks" / f"{image.stem}.png"
    report = extract(image, labels, tmp_path / "pat", mask_path=mask)
    n_labels = len([ln for ln in labels.read_text().splitlines() if ln.strip()])
    assert report.n_written >= 1 and report.n_written + len(report.skipped) == n_labels
    _, entries = read_out(tmp_path / "pat")
    assert {c for _, c in entries} == {"sphere"}
    check = CliRunner().invoke(app, ["check", str(tmp_path / "pat" / "pattern.txt")])
    assert check.exit_code == 0, check.output
