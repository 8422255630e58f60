"""Pattern parsing/validation and template footprints."""

from __future__ import annotations


import cv2
import numpy as np
import pytest

from conftest import draw_cube, draw_sphere, write_pattern
from synthgen.errors import InputError, InputErrors
from synthgen.pattern import check_patterns, load_pattern, parse_pattern
from synthgen.templates import load_template, make_template


def test_parse_pattern_reads_size_entries_classes_and_comments(tmp_path):
    text = "# header\n\n640 480  # resolution\na.png\nsub/b.png sphere\nc.png quasi-sphere # note\nd.png quasi sphere\n"
    p = parse_pattern(text, tmp_path / "p.txt")
    assert (p.width, p.height) == (640, 480)
    assert [e.class_name for e in p.entries] == ["cube", "sphere", "sphere", "sphere"]
    assert [e.line for e in p.entries] == [4, 5, 6, 7]
    assert p.entries[1].path == tmp_path / "sub" / "b.png"
    assert p.entries[0].class_id == 0 and p.entries[1].class_id == 1


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("640 4x0\na.png\n", 1, "bad number '4x0'"),
        ("640\na.png\n", 1, "WIDTH HEIGHT"),
        ("0 480\na.png\n", 1, "bad canvas size 0"),
        ("640 480\na.png triangle\n", 2, "unknown class 'triangle'"),
        ("640 480\na.png cube extra words\n", 2, "malformed line"),
        ("640 480\n# nothing else\n", 1, "empty pattern"),
        ("# only comments\n\n", None, "empty pattern"),
    ],
)
def test_parse_pattern_errors_name_file_and_line(tmp_path, text, line, fragment):
    with pytest.raises(InputErrors) as info:
        parse_pattern(text, tmp_path / "p.txt")
    (err,) = info.value.errors
    assert err.line == line and err.path == tmp_path / "p.txt"
    assert fragment in err.msg
    assert str(err).startswith(f"{tmp_path / 'p.txt'}:{line}: " if line else f"{tmp_path / 'p.txt'}: ")


def test_parse_pattern_collects_every_bad_line(tmp_path):
    with pytest.raises(InputErrors) as info:
        parse_pattern("64 x\na.png blob\nb.png\nc.png 1 2 3\n", tmp_path / "p.txt")
    assert [e.line for e in info.value.errors] == [1, 2, 4]


def test_load_pattern_loads_templates_and_footprints(tiny_pattern):
    p = load_pattern(tiny_pattern)
    assert (p.width, p.height) == (160, 120) and len(p.templates) == 3
    assert [t.footprint_source for t in p.templates] == ["alpha", "derived", "derived"]
    cube_rgba, cube_grey, sphere = p.templates
    assert cube_rgba.polygon.area == pytest.approx(24 * 24)  # alpha square, pixel edges
    assert cube_grey.polygon.area == pytest.approx(16 * 16)
    assert sphere.polygon.area == pytest.approx(np.pi * 10**2, rel=0.06)
    assert p.counts_per_class() == {"cube": 2, "sphere": 1}
    assert load_pattern(tiny_pattern.parent).source == tiny_pattern  # a folder with pattern.txt works


def test_load_pattern_reports_template_defects_at_once(tmp_path):
    path = write_pattern(
        tmp_path,
        width=30,
        height=30,
        lines=["templates/missing.png", "templates/corrupt.png", "templates/cube_rgba.png", "templates/sphere.png blob"],
    )
    (tmp_path / "templates" / "corrupt.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(InputErrors) as info:
        load_pattern(path)
    msgs = {e.line: e.msg for e in info.value.errors}
    assert set(msgs) == {3, 4, 5, 6}
    assert "not found" in msgs[3] and "corrupt" in msgs[4]
    assert "larger than the 30x30 canvas" in msgs[5] and "unknown class" in msgs[6]
    assert all(e.path == path for e in info.value.errors)


def test_check_patterns_reports_all_files(tmp_path):
    a = write_pattern(tmp_path / "a", lines=["templates/nope.png"])
    b = tmp_path / "b.txt"
    b.write_text("100 abc\nx.png\n")
    errors = check_patterns([a, b, tmp_path / "absent.txt"])
    assert [(e.path, e.line) for e in errors] == [(a, 3), (b, 1), (b, 2), (tmp_path / "absent.txt", None)]


def test_templates_formats_and_depths(tmp_path):
    grey = draw_sphere(30)
    cv2.imwrite(str(tmp_path / "s.jpg"), cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR))
    cv2.imwrite(str(tmp_path / "s16.tif"), grey.astype(np.uint16) * 257)
    cv2.imwrite(str(tmp_path / "s.bmp"), grey)
    for name in ("s.jpg", "s16.tif", "s.bmp"):
        t = load_template(tmp_path / name)
        assert t.grey.dtype == np.uint8 and t.grey.shape == grey.shape
        assert t.footprint_source == "derived"
        assert t.polygon.area == pytest.approx(np.pi * 15**2, rel=0.06), name
    assert np.abs(load_template(tmp_path / "s16.tif").grey.astype(int) - grey).max() <= 1


def test_derived_footprint_dark_particle_on_light_background():
    img = 255 - draw_sphere(30)  # TEM-like contrast
    t = make_template(img)
    assert t.footprint_source == "derived"
    assert t.polygon.area == pytest.approx(np.pi * 15**2, rel=0.06)
    assert t.polygon.is_valid


def test_footprint_falls_back_to_rectangle_and_alpha_cuts_paint():
    flat = np.full((12, 20), 90, np.uint8)
    t = make_template(flat)
    assert t.footprint_source == "rectangle" and t.polygon.bounds == (0, 0, 20, 12)
    bgra = draw_cube(16)
    t = make_template(bgra[:, :, 0], bgra[:, :, 3])
    assert (t.alpha[bgra[:, :, 3] == 0] == 0).all()  # nothing is painted outside the footprint
    with pytest.raises(InputError, match="fully transparent"):
        make_template(bgra[:, :, 0], np.zeros_like(bgra[:, :, 3]))


def test_real_patterns_load(real_patterns):
    for path in real_patterns:
        p = load_pattern(path)
        assert p.templates and all(t.polygon.is_valid and t.polygon.area > 0 for t in p.templates)
        assert all(t.footprint_source == "alpha" for t in p.templates)
