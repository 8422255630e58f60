"""Label format readers: every format gives the same boxes; bad labels name their file and line."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from synthgen.formats import (
    image_size,
    parse_coco,
    parse_labelme,
    parse_voc,
    parse_yolo,
    read_label_file,
    read_labelled_folder,
)
from synthgen.errors import InputError

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
W, H = 200, 100
# (class, x1, y1, x2, y2) in pixels: one cube, one sphere
BOXES = [(0, 10, 20, 50, 60), (1, 100, 10, 140, 40)]


def _image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.zeros((H, W), np.uint8))
    return path


def _yolo_text(boxes=BOXES) -> str:
    return "".join(
        f"{c} {(x1 + x2) / 2 / W:.6f} {(y1 + y2) / 2 / H:.6f} {(x2 - x1) / W:.6f} {(y2 - y1) / H:.6f}\n"
        for c, x1, y1, x2, y2 in boxes
    )


def _voc_text(names=("cube", "quasi-sphere")) -> str:
    objs = "".join(
        f"<object><name>{n}</name><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
        for n, (_, x1, y1, x2, y2) in zip(names, BOXES)
    )
    return f"<annotation><filename>a.png</filename><size><width>{W}</width><height>{H}</height><depth>1</depth></size>{objs}</annotation>"


def _labelme(names=("nanocube", "sphere")) -> dict:
    shapes = [
        {"label": n, "points": [[x1, y1], [x2, y2]], "shape_type": "rectangle"}
        for n, (_, x1, y1, x2, y2) in zip(names, BOXES)
    ]
    return {"shapes": shapes, "imagePath": "a.png", "imageWidth": W, "imageHeight": H}


def _coco(names=("cube", "sphere")) -> dict:
    anns = [
        {
            "id": i + 1,
            "image_id": 1,
            "category_id": c + 1,
            "bbox": [x1, y1, x2 - x1, y2 - y1],
            "segmentation": [[x1, y1, x2, y1, x2, y2, x1, y2]],
            "area": (x2 - x1) * (y2 - y1),
            "iscrowd": 0,
        }
        for i, (c, x1, y1, x2, y2) in enumerate(BOXES)
    ]
    return {
        "info": {},
        "images": [{"id": 1, "file_name": "a.png", "width": W, "height": H}],
        "annotations": anns,
        "categories": [{"id": i + 1, "name": n} for i, n in enumerate(names)],
    }


def _assert_boxes(det) -> None:
    assert det.class_id.tolist() == [b[0] for b in BOXES]
    np.testing.assert_allclose(det.xyxy, [b[1:] for b in BOXES], atol=1e-3)


def test_parse_yolo_converts_normalised_to_pixels():
    _assert_boxes(parse_yolo(_yolo_text(), W, H, "a.txt"))


def test_parse_yolo_with_confidence():
    det = parse_yolo("0 0.5 0.5 0.2 0.2 0.9\n", W, H, "p.txt", with_confidence=True)
    assert det.confidence.tolist() == pytest.approx([0.9])


@pytest.mark.parametrize(
    "text, needle, line",
    [
        ("0 0.5 0.5 0.1 0.1\n2 0.5 0.5 0.1 0.1\n", "class 2 out of range", 2),
        ("0 0.5 0.5 0.1\n", "expected 5 numbers", 1),
        ("\n0 0.5 x 0.1 0.1\n", "not a number", 2),
        ("0 1.5 0.5 0.2 0.2\n", "out of range", 1),
        ("0 0.5 0.5 0 0.2\n", "positive", 1),
        ("nan 0.5 0.5 0.2 0.2\n", "not an integer", 1),
        ("inf 0.5 0.5 0.2 0.2\n", "not an integer", 1),
    ],
)
def test_parse_yolo_errors_name_file_and_line(text, needle, line):
    with pytest.raises(InputError) as e:
        parse_yolo(text, W, H, "lbl.txt")
    assert e.value.line == line and needle in str(e.value) and str(e.value).startswith(f"lbl.txt:{line}:")


def test_voc_labelme_coco_agree():
    _, _, det, unknown = parse_voc(_voc_text())
    assert unknown == []
    _assert_boxes(det)
    _, _, det, polys, unknown = parse_labelme(_labelme())
    assert unknown == [] and polys == [None, None]
    _assert_boxes(det)
    (w, h, det, polys), = parse_coco(_coco()).values()
    assert (w, h) == (W, H) and polys[0].shape == (4, 2)
    _assert_boxes(det)


@pytest.mark.parametrize("fmt", ["yolo-labels", "yolo-beside", "voc", "labelme", "coco"])
def test_read_labelled_folder_each_layout(tmp_path, fmt):
    if fmt == "yolo-labels":
        img = _image(tmp_path / "images" / "a.png")
        (tmp_path / "labels").mkdir()
        (tmp_path / "labels" / "a.txt").write_text(_yolo_text())
    elif fmt == "yolo-beside":
        # labelImg's YOLO mode: classes.txt with its own order (sphere first)
        img = _image(tmp_path / "a.png")
        swapped = [(1 - c, *b) for c, *b in BOXES]
        (tmp_path / "a.txt").write_text(_yolo_text(swapped))
        (tmp_path / "classes.txt").write_text("sphere\ncube\n")
    elif fmt == "voc":
        img = _image(tmp_path / "a.png")
        (tmp_path / "a.xml").write_text(_voc_text())
    elif fmt == "labelme":
        img = _image(tmp_path / "a.png")
        (tmp_path / "a.json").write_text(json.dumps(_labelme()))
    else:
        img = _image(tmp_path / "a.png")
        (tmp_path / "annotations.json").write_text(json.dumps(_coco()))
    _image(img.parent / "b.png")  # no labels: an image with no particles
    samples = read_labelled_folder(tmp_path)
    assert [s.image_path.name for s in samples] == ["a.png", "b.png"]
    assert (samples[0].width, samples[0].height) == (W, H)
    _assert_boxes(samples[0].gt)
    assert len(samples[1].gt) == 0


def test_unknown_class_names_are_listed(tmp_path):
    _image(tmp_path / "a.png")
    (tmp_path / "a.xml").write_text(_voc_text(names=("rod", "star")))
    with pytest.raises(InputError) as e:
        read_labelled_folder(tmp_path)
    msg = str(e.value)
    assert "'rod'" in msg and "'star'" in msg and "a.xml" in msg


def test_unknown_coco_category(tmp_path):
    _image(tmp_path / "a.png")
    (tmp_path / "ann.json").write_text(json.dumps(_coco(names=("cube", "wire"))))
    with pytest.raises(InputError, match="'wire'"):
        read_labelled_folder(tmp_path)


def test_empty_folder_and_corrupt_image(tmp_path):
    with pytest.raises(InputError, match="no images found"):
        read_labelled_folder(tmp_path)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(InputError, match="cannot read image") as e:
        image_size(bad)
    assert str(bad) in str(e.value)


def test_read_label_file_dispatches_on_suffix(tmp_path):
    img = _image(tmp_path / "a.png")
    for name, text in [("a.txt", _yolo_text()), ("a.xml", _voc_text()), ("a.json", json.dumps(_labelme()))]:
        (tmp_path / name).write_text(text)
        det, polys = read_label_file(tmp_path / name, img)
        _assert_boxes(det)
        assert len(polys) == len(det)
    (tmp_path / "coco.json").write_text(json.dumps(_coco()))
    det, polys = read_label_file(tmp_path / "coco.json", img)
    _assert_boxes(det)
    assert polys[0] is not None
    with pytest.raises(InputError, match="malformed json"):
        (tmp_path / "broken.json").write_text("{")
        read_label_file(tmp_path / "broken.json", img)


def test_real_sem_sets_match_their_documented_counts():
    root = SHARED / "data" / "real-sem"
    if not root.is_dir():
        pytest.skip(f"{root} not present")
    expected = {"spheres-train": (24, 0, 727), "val-I": (11, 294, 112), "val-II": (12, 74, 755), "val-III": (4, 82, 0)}
    for split, (n_images, cubes, spheres) in expected.items():
        samples = read_labelled_folder(root / split)
        classes = np.concatenate([s.gt.class_id for s in samples])
        assert (len(samples), int((classes == 0).sum()), int((classes == 1).sum())) == (n_images, cubes, spheres)


def test_malformed_coco_and_labelme_are_input_errors():
    coco = _coco()
    del coco["annotations"][0]["bbox"]
    with pytest.raises(InputError, match="has no 'bbox'"):
        parse_coco(coco, "ann.json")
    for bad in ({"shapes": ["not an object"]}, {"shapes": None}):
        with pytest.raises(InputError, match="not a labelme json"):
            parse_labelme(bad, "a.json")
