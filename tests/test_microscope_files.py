"""Microscope files through the commands: pixel size per image in `detector predict`, info bars left
out, scale bars read by OCR, height maps, and 16-bit micrographs giving the 8-bit detections."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest
import tifffile
from hypothesis import example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from detector.cli import app
from detector.measure import particle_heights
from detector.predict import image_for_model
from detector.scale_bar import find_bars, ocr_available, parse_scale_label, read_scale_bar, resolve_scale, scale_bar_readings, text_lines
from synthgen.annotations import Detections
from synthgen.readers import Micrograph, read_micrograph
from conftest import grid_micrograph
from test_readers import fei_tiff, zeiss_tiff

runner = CliRunner()
needs_ocr = pytest.mark.skipif(not ocr_available(), reason="no OCR engine: pip install pytesseract and apt install tesseract-ocr")


def particles(w: int = 320, h: int = 256, seed: int = 0) -> np.ndarray:
    return grid_micrograph(w, h, seed)


def with_scale_bar(img: np.ndarray, length: int, label: str, x: int = 20, y: int | None = None, size: int = 18) -> np.ndarray:
    """A white bar of `length` px and its label above it (a sans-serif font, as microscopes print),
    drawn in the image's lower left."""
    from PIL import Image, ImageDraw, ImageFont

    y = img.shape[0] - 20 if y is None else y
    im = Image.fromarray(img)
    draw = ImageDraw.Draw(im)
    draw.rectangle([x, y, x + length - 1, y + 5], fill=255)
    draw.text((x, y - size - 6), label, fill=255, font=ImageFont.load_default(size=size))
    return np.asarray(im).copy()


def _text(draw, xy, label: str, fill: int, size: int = 18) -> None:
    from PIL import ImageFont

    draw.text(xy, label, fill=fill, font=ImageFont.load_default(size=size))


def with_boxed_bar(img: np.ndarray, length: int, label: str) -> np.ndarray:
    """A black bar and its label beside it in a light box in the lower right (the box, not the image, is
    the bar's ground; image content as dark as the bar lies next to the box)."""
    from PIL import Image, ImageDraw

    h, w = img.shape
    im = Image.fromarray(img)
    draw = ImageDraw.Draw(im)
    draw.rectangle([w - length - 90, h - 34, w - 6, h - 6], fill=205)
    draw.rectangle([w - length - 82, h - 22, w - 83, h - 19], fill=10)
    _text(draw, (w - 76, h - 31), label, 10)
    return np.asarray(im).copy()


def with_info_bar_line(img: np.ndarray, length: int, label: str) -> np.ndarray:
    """A dark info strip under the image with a mid-grey 2-px line ``|--- label ---|`` (FEI style):
    end ticks, the label in a gap in the middle of the line."""
    from PIL import Image, ImageDraw

    strip = Image.fromarray(np.full((30, img.shape[1]), 40, np.uint8))
    draw = ImageDraw.Draw(strip)
    x0, y = 60, 15
    draw.rectangle([x0, y, x0 + length - 1, y + 1], fill=150)
    for x in (x0, x0 + length - 2):
        draw.rectangle([x, y - 6, x + 1, y + 7], fill=150)
    tw = 60
    mid = x0 + length // 2
    draw.rectangle([mid - tw // 2, y - 1, mid + tw // 2, y + 2], fill=40)
    _text(draw, (mid - tw // 2 + 4, y - 12), label, 210, 16)
    return np.vstack([img, np.asarray(strip)])


def rows_of(path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------------ pure parts


def test_parse_scale_label():
    assert [(lab, nm) for lab, nm, _ in parse_scale_label("x 200 nm y")] == [("200 nm", 200.0)]
    assert parse_scale_label("1 µm")[0][1] == 1000.0 and parse_scale_label("3.0 um")[0][1] == 3000.0
    assert parse_scale_label("2,5 μm")[0][1] == 2500.0 and parse_scale_label("500nm")[0][1] == 500.0
    assert parse_scale_label("WD 5.1 mmHg") == [] and parse_scale_label("no number") == []


def test_parse_scale_label_refuses_the_tail_of_a_number():
    # "2.5 µm" with its "2" cut off must not become 5 µm, nor "1.5" become 5
    assert parse_scale_label(".5 µm") == [] and parse_scale_label("x.5 nm") == []
    assert parse_scale_label("2.5 µm")[0][1] == 2500.0


def test_text_lines_finds_a_label_and_refuses_one_with_a_blob_at_its_start():
    mask = np.zeros((80, 200), np.uint8)
    cv2.putText(mask, "200 nm", (40, 50), cv2.FONT_HERSHEY_SIMPLEX, 0.8, 1, 2)
    lines = text_lines(mask)
    assert len(lines) == 1
    x0, y0, x1, y1, lh = lines[0]
    assert 35 <= x0 <= 45 and 125 <= x1 <= 145 and 8 <= lh <= 20
    blob = mask.copy()
    blob[15:60, 10:36] = 1  # a digit merged with noise (too big for a letter) right before the line: its start is uncertain
    assert text_lines(blob) == []
    edge = np.zeros_like(mask)  # image content running out of the window is no letter
    edge[30:60, 0:12] = 1
    assert text_lines(edge) == [] and text_lines(np.zeros_like(mask)) == []


def test_find_bars_finds_a_mid_grey_info_bar_line():
    img = with_info_bar_line(particles(), 200, "200 nm")
    bars = [b for b in find_bars(img) if b.y0 >= 256]
    assert any(abs(b.length - 200) <= 2 and b.gap for b in bars)  # the two pieces joined across the label
    assert all(b.y1 - b.y0 >= 2 for b in bars if b.threshold == 128)  # 1-px mid-grey rims are no bars


def test_a_piece_of_a_split_line_gives_no_scale():
    # |---- 2 um --------| with pieces too unequal to be joined: each piece alone is not the scale's length
    img = particles()
    img[236:238, 40:100] = 255
    img[236:238, 160:280] = 255
    cv2.putText(img, "2 um", (108, 242), cv2.FONT_HERSHEY_SIMPLEX, 0.45, 255, 1)
    assert sorted(b.length for b in find_bars(img)) == pytest.approx([60, 120], abs=2)
    always = lambda _img: "2 um"  # noqa: E731 - an OCR that reads the label every time
    assert scale_bar_readings(img, ocr=always, ocr_line=always) == []


@settings(max_examples=30, deadline=None)
@given(length=st.integers(20, 180), thick=st.integers(2, 8), x=st.integers(5, 100), y=st.integers(20, 220),
       grey=st.sampled_from([(255, 30), (150, 40), (0, 220)]))
@example(length=20, thick=2, x=5, y=20, grey=(255, 30))  # an even opening kernel put x0 one px right
def test_find_bars_measures_bars_of_any_size_place_and_grey(length, thick, x, y, grey):
    bar, ground = grey  # white on dark, a mid-grey hairline on a dark strip, black on light
    img = np.full((256, 320), ground, np.uint8)
    img[y : y + thick, x : x + length] = bar
    bars = find_bars(img)
    assert bars and (bars[0].x0, bars[0].length, bars[0].y1 - bars[0].y0) == (x, length, thick)


def test_find_bars_measures_a_drawn_bar_and_ignores_particles():
    img = with_scale_bar(particles(), 100, "200 nm")
    bars = find_bars(img)
    assert bars and bars[0].length == 100 and bars[0].bright
    assert find_bars(particles()) == []  # squares and discs are not bars


def test_resolve_scale_order_and_disagreement():
    plain, tagged = Micrograph(np.zeros((4, 4), np.uint8)), Micrograph(np.zeros((4, 4), np.uint8), 2.0, "metadata")
    reading = type("R", (), {"nm_per_px": 2.2, "label": "220 nm", "bar": type("B", (), {"length": 100})()})()
    assert resolve_scale(plain, None, None) == (None, "none", None)
    assert resolve_scale(plain, 1.5, None) == (1.5, "option", None)
    nm, source, note = resolve_scale(plain, 1.5, reading)  # scale bar before the option, saying what was read
    assert (nm, source) == (2.2, "scale-bar") and "'220 nm' read over 100 px" in note
    nm, source, warning = resolve_scale(tagged, 1.5, reading)  # 10 % apart: warn, keep the metadata
    assert (nm, source) == (2.0, "metadata") and "2.2 nm/px" in warning and "using the metadata" in warning
    close = type("R", (), {"nm_per_px": 2.06, "label": "206 nm", "bar": reading.bar})()
    assert resolve_scale(tagged, None, close) == (2.0, "metadata", None)  # 3 % apart: agreement


def test_info_bar_is_left_out_of_what_the_model_sees():
    img = particles(320, 256)
    bar = np.full((40, 320), 255, np.uint8)
    cv2.putText(bar, "EHT = 3.00 kV  Mag = 50.00 K X", (5, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 0, 1)
    m = Micrograph(np.vstack([img, bar]))
    seen, rows = image_for_model(m, remove_info_bar=True)
    assert rows == 256 and seen.shape == (256, 320, 3)
    assert image_for_model(m, remove_info_bar=False)[1] == 296


def test_particle_heights_above_local_background():
    z = np.full((40, 40), 1.0)
    z[10:20, 10:20] = 4.0  # a 3 nm particle on a 1 nm background
    z[25:35, 25:35] = np.linspace(1, 6, 10)[None, :]  # a 5 nm ramp
    h = particle_heights(z, Detections([[10, 10, 20, 20], [25, 25, 35, 35]], [1, 1]))
    assert h == pytest.approx([3.0, 5.0])


# ------------------------------------------------------------------ OCR


@needs_ocr
@pytest.mark.parametrize(("length", "label", "nm"), [(100, "200 nm", 200.0), (150, "500 nm", 500.0), (64, "50nm", 50.0)])
def test_read_drawn_scale_bar(length, label, nm):
    reading = read_scale_bar(with_scale_bar(particles(), length, label))
    assert reading is not None and reading.bar.length == length
    assert reading.nm_per_px == pytest.approx(nm / length, rel=0.02)


@needs_ocr
def test_read_a_black_bar_in_a_light_label_box():
    reading = read_scale_bar(with_boxed_bar(particles(), 80, "500 nm"))
    assert reading is not None and reading.bar.length == 80 and not reading.bar.bright
    assert reading.nm_per_px == pytest.approx(500 / 80, rel=0.02)


@needs_ocr
def test_read_a_grey_line_in_a_dark_info_bar():
    reading = read_scale_bar(with_info_bar_line(particles(), 200, "200 nm"))
    assert reading is not None and reading.nm_per_px == pytest.approx(1.0, rel=0.02)


@needs_ocr
def test_read_a_label_on_a_speckled_ground():
    img = with_scale_bar(particles(), 120, "50 nm", size=26)
    rng = np.random.default_rng(1)
    img = np.clip(img.astype(float) + rng.normal(0, 30, img.shape), 0, 255).astype(np.uint8)
    reading = read_scale_bar(img)
    assert reading is None or reading.nm_per_px == pytest.approx(50 / 120, rel=0.02)  # never a wrong number
    assert reading is not None


@needs_ocr
def test_read_a_label_that_touches_the_image_border():
    from PIL import Image, ImageDraw, ImageFont

    im = Image.fromarray(particles())
    draw = ImageDraw.Draw(im)
    draw.rectangle([0, 220, 319, 255], fill=25)
    draw.rectangle([20, 226, 119, 231], fill=255)  # the bar near the bottom, its label below it
    bottom = ImageFont.load_default(size=22).getbbox("500 nm")[3]
    _text(draw, (30, 256 - bottom), "500 nm", 255, 22)  # its letters end on the image's last row
    reading = read_scale_bar(np.asarray(im).copy())
    assert reading is not None and reading.nm_per_px == pytest.approx(5.0, rel=0.02)


@needs_ocr
def test_no_scale_bar_gives_no_scale():
    assert read_scale_bar(particles()) is None


# ------------------------------------------------------------------ detector predict end to end


def _predict(args, tmp_path):
    return runner.invoke(app, ["predict", *map(str, args), "--out", str(tmp_path / "out"), "--device", "cpu", "--conf", "0.1"])


def test_predict_reports_the_zeiss_pixel_size_with_no_option(tmp_path):
    (tmp_path / "in").mkdir()
    data16 = particles().astype(np.uint16) * 257  # a 16-bit SEM image
    zeiss_tiff(tmp_path / "in" / "sem.tif", data16, "Pixel Size = 2.345 nm")
    res = _predict([tmp_path / "in"], tmp_path)
    assert res.exit_code == 0, res.output
    rows = rows_of(tmp_path / "out" / "detections.csv")
    assert rows and all(r["nm_per_px"] == "2.345" and r["scale_source"] == "metadata" for r in rows)
    assert all(float(r["diameter_nm"]) == pytest.approx(2.345 * float(r["diameter_px"]), rel=1e-4) for r in rows)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["per_image"] == [{"image": "sem.tif", "nm_per_px": 2.345, "scale_source": "metadata"}]
    assert summary["nm_per_px"] == 2.345 and summary["classes"]["cube"]["unit"] == "nm"
    assert "1 metadata" in res.output


def test_predict_mixed_scales_pool_only_scaled_images(tmp_path):
    (tmp_path / "in").mkdir()
    fei_tiff(tmp_path / "in" / "a.tif", particles(seed=1), "2.0e-009")
    cv2.imwrite(str(tmp_path / "in" / "b.png"), particles(seed=2))
    res = _predict([tmp_path / "in", "--no-scale-bar"], tmp_path)
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [(i["image"], i["nm_per_px"], i["scale_source"]) for i in summary["per_image"]] == [("a.tif", 2.0, "metadata"), ("b.png", None, "none")]
    assert summary["images_without_scale"] == 1 and summary["size_unit"] == "nm"
    rows = rows_of(tmp_path / "out" / "detections.csv")
    n_a = sum(r["image"] == "a.tif" for r in rows)
    assert summary["classes"]["cube"]["count"] + summary["classes"]["sphere"]["count"] == n_a  # b.png left out
    assert all(r["diameter_nm"] == "" for r in rows if r["image"] == "b.png")
    assert "1 without a scale" in res.output
    # with --nm-per-px the PNG takes the option and the TIFF keeps its metadata
    res = runner.invoke(app, ["predict", str(tmp_path / "in"), "--out", str(tmp_path / "o2"), "--device", "cpu", "--nm-per-px", "3", "--no-scale-bar"])
    per = json.loads((tmp_path / "o2" / "summary.json").read_text())["per_image"]
    assert [(i["nm_per_px"], i["scale_source"]) for i in per] == [(2.0, "metadata"), (3.0, "option")]


def test_predict_height_map_reports_heights(tmp_path):
    z = particles(256, 192).astype(np.float64) / 255 * 4e-9  # particles ~3 nm high, in metres
    text = "# Channel: Topography\n# Width: 512 nm\n# Height: 384 nm\n# Value units: m\n"
    text += "\n".join(" ".join(f"{v:.4e}" for v in row) for row in z) + "\n"
    (tmp_path / "stm.txt").write_text(text)
    res = _predict([tmp_path / "stm.txt"], tmp_path)
    assert res.exit_code == 0, res.output
    rows = rows_of(tmp_path / "out" / "detections.csv")
    assert rows and all(float(r["nm_per_px"]) == 2.0 and r["scale_source"] == "metadata" for r in rows)
    heights = [float(r["height_nm"]) for r in rows]
    assert np.median(heights) == pytest.approx(2.6, abs=0.5)  # (195 - 25) / 255 * 4 nm


def test_predict_corrupt_tiff_is_skipped_with_a_warning(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "bad.tif").write_bytes(b"II*\x00garbage" * 20)
    zeiss_tiff(tmp_path / "in" / "ok.tif", particles())
    res = _predict([tmp_path / "in", "--no-scale-bar"], tmp_path)
    assert res.exit_code == 0, res.output
    assert "bad.tif" in res.stderr and "skipped 1" in res.stderr


@needs_ocr
def test_predict_reads_the_scale_bar_when_there_is_no_metadata(tmp_path):
    cv2.imwrite(str(tmp_path / "bar.png"), with_scale_bar(particles(), 100, "200 nm"))
    res = _predict([tmp_path / "bar.png"], tmp_path)
    assert res.exit_code == 0, res.output
    per = json.loads((tmp_path / "out" / "summary.json").read_text())["per_image"][0]
    assert per["scale_source"] == "scale-bar" and per["nm_per_px"] == pytest.approx(2.0, rel=0.02)
    assert "bar.png" in res.stderr and "from the scale bar" in res.stderr  # what OCR read, to check


@needs_ocr
def test_predict_warns_when_metadata_and_scale_bar_disagree(tmp_path):
    zeiss_tiff(tmp_path / "sem.tif", with_scale_bar(particles(), 100, "200 nm"), "Pixel Size = 3.000 nm")
    res = _predict([tmp_path / "sem.tif"], tmp_path)
    assert res.exit_code == 0, res.output
    assert "sem.tif" in res.stderr and "using the metadata" in res.stderr
    per = json.loads((tmp_path / "out" / "summary.json").read_text())["per_image"][0]
    assert (per["nm_per_px"], per["scale_source"]) == (3.0, "metadata")


# ------------------------------------------------------------------ 16-bit = 8-bit


@pytest.mark.slow
def test_16_bit_gives_the_8_bit_detections(tmp_path, shared_dir):
    """val-I as 16-bit TIFFs (the 8-bit grey x 257, the export's inverse) and as a 14-bit detector's data
    stored unscaled (round(grey x 16383 / 255), whose linear export is the grey) scores the mAP@0.5 of the PNGs."""
    from detector.metrics import evaluate_set
    from detector.predict import predict_images
    from detector.weights import shipped_weights
    from detector.yolo_env import load_model
    from synthgen.classes import CLASS_NAMES
    from synthgen.formats import read_labelled_folder

    samples = read_labelled_folder(shared_dir / "data" / "real-sem" / "val-I")
    wide, fourteen = [], []
    for s in samples:
        grey = cv2.cvtColor(read_micrograph(s.image_path).image, cv2.COLOR_BGR2GRAY) if read_micrograph(s.image_path).image.ndim == 3 else read_micrograph(s.image_path).image
        wide.append(tmp_path / f"{s.image_path.stem}.tif")
        tifffile.imwrite(wide[-1], grey.astype(np.uint16) * 257)
        fourteen.append(tmp_path / f"{s.image_path.stem}_14.tif")
        tifffile.imwrite(fourteen[-1], np.round(grey * (16383 / 255)).astype(np.uint16))
        cv2.imwrite(str(tmp_path / f"{s.image_path.stem}.png"), grey)
    model = load_model(shipped_weights())
    eight = [tmp_path / f"{s.image_path.stem}.png" for s in samples]
    maps = []
    for paths in (eight, wide, fourteen):
        dets = list(predict_images(model, paths, conf=0.001, device="cpu"))
        maps.append(evaluate_set([(s.gt, d) for s, d in zip(samples, dets)], CLASS_NAMES).overall.ap50)
    assert abs(maps[0] - maps[1]) <= 0.01 and abs(maps[0] - maps[2]) <= 0.01, maps
