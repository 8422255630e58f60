"""Procedural SEM templates and the bundled patterns/ (synthgen render-templates)."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from synthgen.cli import app
from synthgen.procedural import PATTERN_SPECS, POLYHEDRA, outline_metrics, render_pattern_set, render_template

PATTERNS = Path(__file__).resolve().parents[1] / "patterns"
TABLE1 = {  # López Gutiérrez et al. 2022, Table 1: templates per pattern
    "p01": 2, "p02": 4, "p03": 6, "p04": 10, "p05": 31, "p06": 17, "p07": 29, "p08": 57,
}  # fmt: skip
# not in Table 1: polyhedral quasi-spheres beside rounded/truncated cubes (p09, p10); mass-thickness
# (TEM / HAADF-STEM) contrast (p11, p12)
EXTRA = {"p09": 32, "p10": 32, "p11": 32, "p12": 32}
BUNDLED = {**TABLE1, **EXTRA}
RESOLUTIONS = {(640, 480), (1280, 960), (1024, 1024)}


def read_pattern(path: Path) -> tuple[list[str], tuple[int, int], list[tuple[str, str]]]:
    """(comment lines, (w, h), [(template path, class)]) of a pattern file."""
    comments, items = [], []
    for raw in path.read_text().splitlines():
        if raw.startswith("#"):
            comments.append(raw)
        elif raw.strip():
            items.append(raw.split("#")[0].split())
    (w, h), entries = items[0], items[1:]
    return comments, (int(w), int(h)), [(e[0], e[1]) for e in entries]


def footprint_box(alpha: np.ndarray) -> tuple[int, int]:
    ys, xs = np.nonzero(alpha >= 128)
    return xs.max() - xs.min() + 1, ys.max() - ys.min() + 1


@pytest.mark.parametrize("kind", ["cube", "sphere"])
def test_template_is_rgba_with_footprint_inside_and_bright_particle(kind):
    img = render_template(kind, np.random.default_rng(1), 50.0)
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 4
    grey, alpha = img[..., 0], img[..., 3]
    assert (img[..., 0] == img[..., 1]).all() and (img[..., 1] == img[..., 2]).all()
    assert (alpha >= 128).sum() > 0.5 * 50 * 50 * (0.78 if kind == "sphere" else 1.0)
    # Footprint strictly inside: the dark border margin is transparent.
    assert alpha[0].max() == alpha[-1].max() == alpha[:, 0].max() == alpha[:, -1].max() == 0
    assert grey[alpha >= 128].mean() > grey[alpha == 0].mean() + 40


def test_same_generator_state_same_pixels_and_seeds_differ():
    a = render_template("cube", np.random.default_rng(7), 40.0)
    b = render_template("cube", np.random.default_rng(7), 40.0)
    c = render_template("cube", np.random.default_rng(8), 40.0)
    assert np.array_equal(a, b)
    assert a.shape != c.shape or not np.array_equal(a, c)


def test_shape_parameters_are_honoured():
    flat = {"tilt_deg": 0.0, "spin_deg": 0.0, "rounding": 0.05, "truncation": 0.0, "depth": 1.0}
    square = render_template("cube", np.random.default_rng(0), 60.0, aspect=1.0, **flat)
    long = render_template("cube", np.random.default_rng(0), 60.0, aspect=1.3, **flat)
    w, h = footprint_box(square[..., 3])
    assert abs(w - 60) <= 3 and abs(h - 60) <= 3
    w, h = footprint_box(long[..., 3])
    assert abs(w - 60) <= 3 and abs(h - 78) <= 3
    # Tilt shows side faces: the footprint grows beyond the top face.
    tilt = {**flat, "tilt_deg": 25.0, "tilt_azimuth_deg": 45.0}
    tilted = render_template("cube", np.random.default_rng(0), 60.0, aspect=1.0, **tilt)
    assert (tilted[..., 3] >= 128).sum() > 1.2 * (square[..., 3] >= 128).sum()
    # Truncated corners take area away from the outline (seen face-on a truncated cube stays square).
    cut = render_template("cube", np.random.default_rng(0), 60.0, aspect=1.0, **{**tilt, "truncation": 0.5})
    assert (cut[..., 3] >= 128).sum() < 0.98 * (tilted[..., 3] >= 128).sum()


def outline(img: np.ndarray) -> tuple[float, int, float]:
    contours, _ = cv2.findContours((img[..., 3] >= 128).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    return outline_metrics(max(contours, key=cv2.contourArea)[:, 0, :])


@pytest.mark.parametrize("shape", range(len(POLYHEDRA)))
def test_polyhedral_spheres_have_polygon_outlines_never_square(shape):
    fills = []
    for j in range(3):
        img = render_template("sphere", np.random.default_rng([3, shape, j]), 48.0, polyhedron=shape + 0.6)
        fill, sides, aspect = outline(img)
        assert sides >= 6 and aspect <= 1.35, (POLYHEDRA[shape], j, fill, sides, aspect)
        fills.append(fill)
        # Visible facets: the particle's grey levels spread more than a smooth sphere's shading.
        assert img[..., 0][img[..., 3] == 255].std() > 10
    # A cube, even rounded and truncated, fills its minimum-area rectangle; a polyhedron does not.
    cube = render_template("cube", np.random.default_rng(0), 48.0, rounding=0.5, truncation=0.5, tilt_deg=10.0)
    assert max(fills) < 0.87 < outline(cube)[0]


def test_polyhedron_off_by_default_keeps_the_random_stream():
    a = render_template("sphere", np.random.default_rng(4), 40.0)
    b = render_template("sphere", np.random.default_rng(4), 40.0, polyhedron=0.0)
    c = render_template("sphere", np.random.default_rng(4), 40.0, polyhedron=2.5)
    assert np.array_equal(a, b) and not (a.shape == c.shape and np.array_equal(a, c))


def test_unknown_kind_or_parameter_is_a_bug_not_silence():
    with pytest.raises(ValueError):
        render_template("rod", np.random.default_rng(0), 40.0)
    with pytest.raises(ValueError):
        render_template("cube", np.random.default_rng(0), 40.0, roundness=0.3)


def test_render_pattern_set_is_byte_identical_for_a_seed(tmp_path):
    specs = PATTERN_SPECS[:2]
    render_pattern_set(tmp_path / "a", seed=5, specs=specs)
    render_pattern_set(tmp_path / "b", seed=5, specs=specs)
    render_pattern_set(tmp_path / "c", seed=6, specs=specs[:1])
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 2 + 2 + 4  # two pattern.txt, 2 + 4 templates
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    assert (tmp_path / "a/p01/templates/t01.png").read_bytes() != (tmp_path / "c/p01/templates/t01.png").read_bytes()
    assert not [p for p in (tmp_path / "a").iterdir() if p.name.startswith(".")]  # no temp folders left


def test_cli_render_templates_writes_the_same_files_and_keeps_other_files(tmp_path, monkeypatch):
    import synthgen.procedural as procedural

    monkeypatch.setattr(procedural, "PATTERN_SPECS", PATTERN_SPECS[:1])
    out = tmp_path / "patterns"
    out.mkdir()
    (out / "README.md").write_text("keep me")
    result = CliRunner().invoke(app, ["render-templates", "--out", str(out), "--seed", "2022"])
    assert result.exit_code == 0, result.output
    assert (out / "README.md").read_text() == "keep me"
    render_pattern_set(tmp_path / "lib", seed=2022, specs=PATTERN_SPECS[:1])
    for name in ["pattern.txt", "templates/t01.png", "templates/t02.png"]:
        assert (out / "p01" / name).read_bytes() == (tmp_path / "lib/p01" / name).read_bytes()
    # Re-running replaces the pattern in place.
    result = CliRunner().invoke(app, ["render-templates", "--out", str(out), "--seed", "2022"])
    assert result.exit_code == 0 and sorted(p.name for p in out.iterdir()) == ["README.md", "p01"]


def test_cli_render_templates_out_is_a_file_exits_2(tmp_path):
    target = tmp_path / "patterns"
    target.write_text("not a folder")
    result = CliRunner().invoke(app, ["render-templates", "--out", str(target)])
    assert result.exit_code == 2
    assert "not a folder" in result.output
    assert target.read_text() == "not a folder"


# --------------------------------------------------------------------------- the bundled files


def _radial_profile(grey: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Mean grey of the footprint in 4 bands of distance to its outline, outermost first."""
    inside = (alpha >= 250).astype(np.uint8)
    d = cv2.distanceTransform(inside, cv2.DIST_L2, 5)
    bands = np.digitize(d, np.linspace(0, d.max() + 1e-6, 5)[1:-1])
    return np.array([grey[(inside > 0) & (bands == b)].mean() for b in range(4)])


def test_thickness_shading_is_a_dome_for_spheres_and_a_plateau_for_cubes():
    """Mass-thickness contrast: a quasi-sphere brightens steadily towards its centre (projected
    thickness of a ball); a cube seen face-on is flat inside a thin rounded rim; no SE edge glow."""
    quiet = {"dose": 1e6, "read_noise": 0.0, "texture": 0.0, "tilt_deg": 0.0, "ellipticity": 0.0, "irregularity": 0.0}
    img = render_template("sphere", np.random.default_rng(3), 60.0, shading="thickness", **quiet)
    prof = _radial_profile(img[..., 0].astype(float), img[..., 3])
    assert np.all(np.diff(prof) > 2), prof
    cube = render_template("cube", np.random.default_rng(3), 60.0, shading="thickness", rounding=0.1,
                           **{k: v for k, v in quiet.items() if k not in ("ellipticity", "irregularity")})  # fmt: skip
    prof = _radial_profile(cube[..., 0].astype(float), cube[..., 3])
    assert abs(prof[3] - prof[1]) < 4 and prof[0] < prof[1], prof
    se = render_template("cube", np.random.default_rng(3), 60.0, rounding=0.1,
                         **{k: v for k, v in quiet.items() if k not in ("ellipticity", "irregularity")})  # fmt: skip
    se_prof = _radial_profile(se[..., 0].astype(float), se[..., 3])
    assert se_prof[0] > se_prof[2] + 10, se_prof  # the SE look glows at the edge: the two really differ
    with pytest.raises(ValueError, match="shading"):
        render_template("cube", np.random.default_rng(3), 60.0, shading="phong")


@pytest.fixture(scope="module")
def bundled():
    if not (PATTERNS / "p01" / "pattern.txt").is_file():
        pytest.skip("patterns/ not generated (run: synthgen render-templates --out patterns/ --seed 2022)")
    return {name: read_pattern(PATTERNS / name / "pattern.txt") for name in BUNDLED}


def test_bundled_patterns_match_table1(bundled):
    assert [s.name for s in PATTERN_SPECS] == list(BUNDLED)
    for i, (name, (comments, size, entries)) in enumerate(bundled.items(), start=1):
        assert len(entries) == BUNDLED[name], name
        assert size in RESOLUTIONS, name
        classes = {c for _, c in entries}
        assert classes == ({"cube"} if i in (1, 2, 3, 8) else {"cube", "sphere"}), name
        assert any(re.search(r"synthgen render-templates .*--seed 2022", c) for c in comments), name
        for rel, _ in entries:
            assert (PATTERNS / name / rel).is_file()


def test_bundled_templates_have_inside_footprints_of_the_papers_size(bundled):
    specs = {s.name: s for s in PATTERN_SPECS}
    for name, (_, (width, _), entries) in bundled.items():
        scale = width / 1280  # 40-80 px particles at 1280x960, half that at 640x480
        if name in TABLE1:
            lo, hi = 0.8 * 40 * scale, 1.5 * 80 * scale
        else:  # p09-p12: their own size range
            lo, hi = 0.8 * specs[name].size_px[0], 1.5 * specs[name].size_px[1]
        for rel, _ in entries:
            img = cv2.imread(str(PATTERNS / name / rel), cv2.IMREAD_UNCHANGED)
            assert img is not None and img.shape[2] == 4, rel
            alpha = img[..., 3]
            assert (alpha >= 128).any(), f"{name}/{rel}: empty footprint"
            assert alpha[0].max() == alpha[-1].max() == alpha[:, 0].max() == alpha[:, -1].max() == 0
            # sqrt(area) does not depend on the in-plane angle: ~edge for cubes, 0.89 d for spheres.
            side = float(np.sqrt((alpha >= 128).sum()))
            assert lo <= side <= hi, f"{name}/{rel}: {side:.0f} px"
    for spec in PATTERN_SPECS[: len(TABLE1)]:
        lo, hi = (v * 1280 / spec.resolution[0] for v in spec.size_px)
        assert 40 <= lo <= hi <= 80, spec.name


def test_bundled_files_are_reproducible_from_the_seed(bundled, tmp_path):
    # Pixels, not bytes: a newer PNG encoder may pack the same pixels differently.
    render_pattern_set(tmp_path, seed=2022, specs=PATTERN_SPECS[:2])
    for spec in PATTERN_SPECS[:2]:
        assert (tmp_path / spec.name / "pattern.txt").read_text() == (PATTERNS / spec.name / "pattern.txt").read_text()
        for png in sorted((tmp_path / spec.name / "templates").glob("*.png")):
            new = cv2.imread(str(png), cv2.IMREAD_UNCHANGED).astype(int)
            old = cv2.imread(str(PATTERNS / spec.name / "templates" / png.name), cv2.IMREAD_UNCHANGED).astype(int)
            assert new.shape == old.shape and np.abs(new - old).mean() < 1.0, png.name


def test_bundled_p01_rerenders_byte_identical(bundled, tmp_path):
    # New shape parameters must not shift older patterns' random streams: same bytes as committed.
    render_pattern_set(tmp_path, seed=2022, specs=PATTERN_SPECS[:1])
    for rel in ["pattern.txt", "templates/t01.png", "templates/t02.png"]:
        assert (tmp_path / "p01" / rel).read_bytes() == (PATTERNS / "p01" / rel).read_bytes(), rel


def test_polyhedral_patterns_pass_check(bundled):
    result = CliRunner().invoke(app, ["check", str(PATTERNS / "p09"), str(PATTERNS / "p10")])
    assert result.exit_code == 0, result.output
    assert result.output.count("ok ") == 2 and "14 cube, 18 sphere" in result.output


def test_bundled_patterns_load_with_alpha_footprints(bundled):
    from synthgen.pattern import load_pattern

    for name in BUNDLED:
        pattern = load_pattern(PATTERNS / name / "pattern.txt")
        assert len(pattern.templates) == BUNDLED[name]
        assert {t.footprint_source for t in pattern.templates} == {"alpha"}
