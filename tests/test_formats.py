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
from synthgen.warnings_log import IMAGE_SKIPPED, IMAGE_WITHOUT_LABELS, LABEL_SKIPPED, LABELS_WITHOUT_IMAGE, collect

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
        ("0 0.5 0.5 -0.1 0.2\n", "must not be negative", 1),
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


# ---------------------------------------------------------------- flaws of real data: warnings, not errors


@pytest.mark.parametrize("line", ["0 0.5 0.5 0 0.2", "1 0.5 0.5 0.2 0.004"])  # zero, and 0.4 px high
def test_degenerate_yolo_box_is_skipped_with_one_warning(line, capsys):
    text = _yolo_text() + line + "\n"
    with collect() as log:
        det = parse_yolo(text, W, H, "lbl.txt")
    _assert_boxes(det)
    assert log.counts == {LABEL_SKIPPED: 1}
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: lbl.txt:3: degenerate box")


def test_strict_turns_the_warning_into_an_error():
    with collect(strict=True), pytest.raises(InputError, match="degenerate box") as e:
        parse_yolo("0 0.5 0.5 0 0.2\n", W, H, "lbl.txt")
    assert (e.value.path, e.value.line) == ("lbl.txt", 1) and "--strict" in str(e.value)


def test_duplicate_boxes_are_skipped_in_every_format(capsys):
    with collect() as log:
        _assert_boxes(parse_yolo(_yolo_text() + _yolo_text(BOXES[:1]), W, H, "lbl.txt"))
        voc = _voc_text()
        first_obj = voc[voc.index("<object>") : voc.index("</object>") + len("</object>")]
        _, _, det, _ = parse_voc(voc.replace("</annotation>", "\n" + first_obj + "</annotation>"), "a.xml")
        _assert_boxes(det)
        lm = _labelme()
        lm["shapes"].append(dict(lm["shapes"][1]))
        _assert_boxes(parse_labelme(lm, "a.json")[2])
        coco = _coco()
        coco["annotations"].append({**coco["annotations"][0], "id": 9})
        (_, _, det, polys), = parse_coco(coco, "c.json").values()
        _assert_boxes(det)
        assert len(polys) == 2
    assert log.counts == {LABEL_SKIPPED: 4}
    err = capsys.readouterr().err
    assert "lbl.txt:3: duplicate box: same class and box as line 1" in err and "a.xml:2: duplicate" in err


def test_degenerate_voc_labelme_coco_boxes_are_skipped():
    voc = _voc_text().replace("<xmax>50</xmax>", "<xmax>10.5</xmax>")  # 0.5 px wide
    lm = _labelme()
    lm["shapes"][0]["points"] = [[10, 20], [10, 60]]
    coco = _coco()
    coco["annotations"][0]["bbox"] = [10, 20, 0, 40]
    with collect() as log:
        assert parse_voc(voc, "a.xml")[2].class_id.tolist() == [1]
        assert parse_labelme(lm, "a.json")[2].class_id.tolist() == [1]
        assert next(iter(parse_coco(coco, "c.json").values()))[2].class_id.tolist() == [1]
    assert log.counts == {LABEL_SKIPPED: 3}


@pytest.mark.parametrize(
    "mutate, needle",
    [
        (lambda v: v.replace("<xmax>50</xmax>", "<xmax>5</xmax>"), "inverted bndbox"),
        (lambda v: v.replace("<xmax>50</xmax>", "<xmax>x</xmax>"), "no valid bndbox"),
    ],
)
def test_malformed_voc_boxes_stay_errors(mutate, needle):
    with pytest.raises(InputError, match=needle):
        parse_voc(mutate(_voc_text()), "a.xml")
    coco = _coco()
    coco["annotations"][0]["bbox"] = [10, 20, -3, 40]
    with pytest.raises(InputError, match="negative"):
        parse_coco(coco, "c.json")


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_corrupt_and_truncated_images_are_skipped(tmp_path, capsys):
    for name in ("a.png", "b.png", "c.jpg", "d.png"):
        _image(tmp_path / "images" / name)
        (tmp_path / "labels").mkdir(exist_ok=True)
        (tmp_path / "labels" / (Path(name).stem + ".txt")).write_text(_yolo_text())
    _truncate(tmp_path / "images" / "b.png")
    _truncate(tmp_path / "images" / "c.jpg")
    (tmp_path / "images" / "d.png").write_bytes(b"not an image")
    with collect() as log:
        samples = read_labelled_folder(tmp_path)
    assert [s.image_path.name for s in samples] == ["a.png"]
    assert log.counts == {IMAGE_SKIPPED: 3}
    err = capsys.readouterr().err
    assert f"warning: {tmp_path / 'images' / 'b.png'}: cannot read image (truncated): image skipped" in err
    _truncate(tmp_path / "images" / "a.png")
    with pytest.raises(InputError, match="no usable image: all 4"):
        read_labelled_folder(tmp_path)


def test_jpeg_without_only_its_end_marker_is_usable(tmp_path):
    img = tmp_path / "a.jpg"
    cv2.imwrite(str(img), np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))
    img.write_bytes(img.read_bytes()[:-2])
    assert image_size(img) == (64, 64)
    from synthgen.formats import check_image

    assert check_image(img) == (64, 64)


def test_labels_without_image_and_images_without_labels_warn(tmp_path, capsys):
    _image(tmp_path / "images" / "a.png")
    _image(tmp_path / "images" / "b.png")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "a.txt").write_text(_yolo_text())
    (tmp_path / "labels" / "gone.txt").write_text(_yolo_text())
    (tmp_path / "images" / "README.txt").write_text("these are micrographs\n")  # not a label file
    with collect() as log:
        samples = read_labelled_folder(tmp_path)
    assert [len(s.gt) for s in samples] == [2, 0]
    assert log.counts == {LABELS_WITHOUT_IMAGE: 1, IMAGE_WITHOUT_LABELS: 1}
    err = capsys.readouterr().err
    assert f"{tmp_path / 'labels' / 'gone.txt'}: label file has no image" in err and "README" not in err


def test_coco_entry_without_image_file_warns(tmp_path, capsys):
    _image(tmp_path / "a.png")
    coco = _coco()
    coco["images"].append({"id": 2, "file_name": "lost.png", "width": W, "height": H})
    coco["annotations"].append({**coco["annotations"][0], "id": 7, "image_id": 2})
    (tmp_path / "ann.json").write_text(json.dumps(coco))
    with collect() as log:
        samples = read_labelled_folder(tmp_path)
    assert len(samples) == 1 and log.counts == {LABELS_WITHOUT_IMAGE: 1}
    assert "COCO images entry 'lost.png' has no image file" in capsys.readouterr().err


@pytest.mark.parametrize(
    "data, needle",
    [
        ("0 0.5 0.5 0.2 0.2\n".encode("utf-16"), "UTF-16"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "not a"),
        ("0 0.5 0.5 0.2 0.2\n".encode("utf-16-le"), "not a text file"),
    ],
)
def test_non_utf8_label_file_is_one_error_naming_it(tmp_path, data, needle):
    _image(tmp_path / "images" / "a.png")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "a.txt").write_bytes(data)
    with pytest.raises(InputError, match=needle) as e:
        read_labelled_folder(tmp_path)
    assert Path(e.value.path) == tmp_path / "labels" / "a.txt"


def test_utf8_bom_label_file_is_read(tmp_path):
    _image(tmp_path / "images" / "a.png")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "a.txt").write_bytes(b"\xef\xbb\xbf" + _yolo_text().encode())
    _assert_boxes(read_labelled_folder(tmp_path)[0].gt)
