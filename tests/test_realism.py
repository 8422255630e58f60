"""synthgen.realism (presets, background, degrade) and synthgen.distractors."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import Polygon, box

from synthgen.distractors import draw_distractors, footprint_mask, reserve_info_bar
from synthgen.errors import InputError
from synthgen.realism import (
    KNOBS,
    PRESETS,
    SECTIONS,
    RealismConfig,
    _pipelines,
    degrade,
    load_realism,
    make_background,
    parse_realism,
    with_distractors,
)


def scene(seed: int = 0, h: int = 120, w: int = 160) -> tuple[np.ndarray, np.ndarray]:
    """Dark canvas with bright discs and squares, and the mask of their pixels."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w), 40, np.uint8)
    occ = np.zeros((h, w), np.uint8)
    for _ in range(6):
        x, y, r = int(rng.integers(15, w - 15)), int(rng.integers(15, h - 15)), int(rng.integers(5, 14))
        if rng.random() < 0.5:
            cv2.circle(occ, (x, y), r, 1, -1)
        else:
            cv2.rectangle(occ, (x - r, y - r), (x + r, y + r), 1, -1)
    img[occ > 0] = 200
    return img, occ.astype(bool)


def test_presets_load():
    for name in PRESETS:
        cfg = load_realism(name)
        assert isinstance(cfg, RealismConfig) and cfg.name == name
    assert not load_realism("none").degrade.active
    assert load_realism("sem").degrade.active and load_realism("strong").distractors.active
    # strong is wider than sem where it matters
    sem, strong = load_realism("sem"), load_realism("strong")
    assert strong.degrade.gauss_noise[1] > sem.degrade.gauss_noise[1]
    assert strong.degrade.invert_p > sem.degrade.invert_p


def test_every_knob_is_documented_and_extremes_build():
    for section, cls in SECTIONS.items():
        assert {f.name for f in dataclasses.fields(cls)} == {k for s, k in KNOBS if s == section}
    # Every value the validator accepts must be accepted by albumentations too.
    for end in (0, 1):
        changes = {}
        for (section, key), (kind, lo, hi) in KNOBS.items():
            if section != "degrade":
                continue
            v = (lo, hi)[end]
            changes[key] = (float(v), float(v)) if kind in ("range", "irange") else float(v)
        if end == 0:
            changes["motion_blur"] = (3.0, 3.0)
        d = dataclasses.replace(load_realism("none").degrade, **changes)
        _pipelines(d)


def test_none_is_identity():
    img, _ = scene()
    cfg = load_realism("none")
    out = degrade(img, np.random.default_rng(1), cfg)
    assert out.tobytes() == img.tobytes() and out.dtype == img.dtype
    bg = make_background(30, 40, np.random.default_rng(1), cfg)
    assert bg.shape == (30, 40) and bg.dtype == np.uint8 and not bg.any()
    drawn = draw_distractors(img, np.zeros(img.shape, bool), np.random.default_rng(1), cfg)
    assert drawn.tobytes() == img.tobytes()


@pytest.mark.parametrize("name", ["sem", "strong"])
def test_degrade_seeded(name):
    img, _ = scene()
    cfg = load_realism(name)
    a = degrade(img, np.random.default_rng(7), cfg)
    b = degrade(img, np.random.default_rng(7), cfg)
    c = degrade(img, np.random.default_rng(8), cfg)
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()
    bg1 = make_background(50, 60, np.random.default_rng(3), cfg)
    assert bg1.tobytes() == make_background(50, 60, np.random.default_rng(3), cfg).tobytes()
    assert bg1.tobytes() != make_background(50, 60, np.random.default_rng(4), cfg).tobytes()


def test_degrade_keeps_shape_dtype_and_mean_at_sem():
    sem = load_realism("sem")
    cfg = dataclasses.replace(sem, degrade=dataclasses.replace(sem.degrade, invert_p=0.0))
    for seed in range(15):
        img, _ = scene(seed, 96, 128)
        out = degrade(img, np.random.default_rng(seed), cfg)
        assert out.shape == img.shape and out.dtype == np.uint8
        assert abs(float(out.mean()) - float(img.mean())) < 45
        assert out.std() > 10  # particles still visible


def test_polarity_inversion_makes_particles_darker():
    cfg = load_realism("sem")
    cfg = dataclasses.replace(cfg, degrade=dataclasses.replace(cfg.degrade, invert_p=1.0))
    for seed in range(5):
        img, occ = scene(seed)
        out = degrade(img, np.random.default_rng(seed), cfg)
        assert out[occ].mean() + 60 < out[~occ].mean()


def test_line_jitter_is_subpixel():
    cfg = load_realism("none")
    d = dataclasses.replace(cfg.degrade, jitter_p=1.0, jitter_px=0.4)
    img = np.zeros((64, 64), np.uint8)
    img[:, 30:34] = 255
    out = degrade(img, np.random.default_rng(0), dataclasses.replace(cfg, degrade=d))
    # Intensity centroid of the stripe moves by at most jitter_px on every row.
    cols = np.arange(64)
    centroid = (out * cols).sum(1) / out.sum(1)
    assert np.all(np.abs(centroid - 31.5) <= 0.4 + 1e-3)


def test_background_is_textured_and_in_range():
    cfg = load_realism("sem")
    for seed in range(5):
        bg = make_background(120, 160, np.random.default_rng(seed), cfg)
        assert bg.shape == (120, 160) and bg.dtype == np.uint8
        assert 5 <= bg.mean() <= 130 and bg.std() > 0.5


def _fine_share(bg: np.ndarray, sigma: float) -> float:
    """Share of the substrate's variance left after removing structure coarser than `sigma` px."""
    x = bg.astype(np.float64)
    return float((x - cv2.GaussianBlur(x, (0, 0), sigma)).var() / x.var())


def _textured(octaves: tuple[float, float]) -> RealismConfig:
    flat = dataclasses.replace(
        load_realism("none").background, level=(120.0, 120.0), texture=(25.0, 25.0), texture_scale=(160.0, 160.0),
        texture_octaves=octaves,
    )  # fmt: skip
    return dataclasses.replace(load_realism("none"), background=flat)


def test_texture_octaves_add_finer_structure_at_the_same_contrast():
    one = [make_background(256, 256, np.random.default_rng(s), _textured((1.0, 1.0))) for s in range(4)]
    four = [make_background(256, 256, np.random.default_rng(s), _textured((4.0, 4.0))) for s in range(4)]
    for a, b in zip(one, four):
        assert abs(a.std() - 25) < 5 and abs(b.std() - 25) < 5  # the texture knob sets the contrast
        assert _fine_share(b, 20) > 2 * _fine_share(a, 20)  # octaves at 80, 40, 20 px hold the rest


def test_stem_preset_is_strong_on_a_cloudy_support_under_lifted_particles():
    stem, strong = load_realism("stem"), load_realism("strong")
    assert stem.name == "stem" and stem.background.texture_octaves == (3.0, 5.0)
    assert stem.background.texture[1] > 3 * strong.background.texture[1]  # the support rivals the particles
    assert stem.particles.lift_p == 1.0 and stem.degrade.invert_p < strong.degrade.invert_p
    for name in ("none", "sem", "strong", "wide"):
        assert load_realism(name).background.texture_octaves == (1.0, 1.0)
    bg = make_background(300, 400, np.random.default_rng(3), stem)
    assert bg.dtype == np.uint8 and bg.std() > 10


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), preset=st.sampled_from(["sem", "strong"]))
def test_distractors_never_touch_occupied(seed, preset):
    rng = np.random.default_rng(seed)
    cfg = load_realism(preset)
    d = dataclasses.replace(
        cfg.distractors, info_bar_p=0.5, scale_bar_p=1, letter_p=1, text_p=1, debris_p=1, debris_count=(20, 60)
    )
    cfg = dataclasses.replace(cfg, distractors=d)
    img, occ = scene(seed % 1000, 160, 200)
    rows = reserve_info_bar(160, rng, cfg) if rng.random() < 0.5 else None
    out = draw_distractors(img, occ, rng, cfg, rows)
    near = cv2.dilate(occ.astype(np.uint8), np.ones((2 * int(d.margin) + 1,) * 2, np.uint8)).astype(bool)
    assert np.array_equal(out[near], img[near])
    assert out.shape == img.shape and out.dtype == np.uint8


def test_distractors_draw_something_and_are_seeded():
    cfg = load_realism("strong")
    d = dataclasses.replace(cfg.distractors, scale_bar_p=1, letter_p=1, debris_p=1)
    cfg = dataclasses.replace(cfg, distractors=d)
    img = np.full((200, 260), 60, np.uint8)
    occ = np.zeros(img.shape, bool)
    a = draw_distractors(img, occ, np.random.default_rng(5), cfg, reserve_info_bar(200, np.random.default_rng(5), cfg))
    b = draw_distractors(img, occ, np.random.default_rng(5), cfg, reserve_info_bar(200, np.random.default_rng(5), cfg))
    assert a.tobytes() == b.tobytes()
    assert (a != img).sum() > 100


def test_info_bar_reserved_rows_are_drawn():
    cfg = load_realism("sem")
    only_bar = dataclasses.replace(cfg.distractors, info_bar_p=1.0, scale_bar_p=0, letter_p=0, text_p=0, debris_p=0)
    cfg = dataclasses.replace(cfg, distractors=only_bar)
    rows = reserve_info_bar(300, np.random.default_rng(0), cfg)
    assert 10 <= rows <= 75
    img = np.full((300, 400), 128, np.uint8)
    out = draw_distractors(img, np.zeros(img.shape, bool), np.random.default_rng(0), cfg, rows)
    assert (out[-rows:] != 128).mean() > 0.9 and np.array_equal(out[:-rows], img[:-rows])
    # an occupied bottom strip suppresses the bar
    occ = np.zeros(img.shape, bool)
    occ[-5:, 100] = True
    assert np.array_equal(draw_distractors(img, occ, np.random.default_rng(0), cfg, rows), img)


def test_footprint_mask_covers_polygon_pixels():
    m = footprint_mask(20, 30, [box(2, 3, 10, 8), Polygon([(20, 5), (28, 5), (24, 15)])])
    assert m[3:8, 2:10].all() and m[10, 24] and not m[18, 5]


def test_with_distractors():
    none = load_realism("none")
    assert not none.distractors.active
    on = with_distractors(none, True)
    assert on.distractors.active and on.degrade == none.degrade
    assert not with_distractors(load_realism("sem"), False).distractors.active
    assert with_distractors(none, None) is none


def test_yaml_file_overrides_base(tmp_path):
    p = tmp_path / "mine.yaml"
    p.write_text("base: sem\ndegrade:\n  invert_p: 1.0\n  blur_sigma: [0.5, 0.8]\n")
    cfg = load_realism(p)
    sem = load_realism("sem")
    assert cfg.name == "mine" and cfg.degrade.invert_p == 1.0 and cfg.degrade.blur_sigma == (0.5, 0.8)
    assert cfg.background == sem.background and cfg.degrade.gauss_noise == sem.degrade.gauss_noise


@pytest.mark.parametrize(
    "text, line, words",
    [
        ("degrade:\n  blur_p: 0.2\n  bogus_knob: 1\n", 3, ["bogus_knob", "degrade"]),
        ("base: sem\nnoise: 1\n", 2, ["noise"]),
        ("degrade:\n  blur_p: 1.5\n", 2, ["blur_p"]),
        ("background:\n  level: [90, 10]\n", 2, ["level"]),
        ("degrade:\n  defocus_radius: [1.5, 2]\n", 2, ["integers"]),
        ("background:\n  texture: 9\n  texture_octaves: 7\n", 3, ["texture_octaves"]),
        ("background:\n  texture_octaves: [2, 3.5]\n", 2, ["integers"]),
        ("base: extreme\n", 1, ["base"]),
        ("degrade: [1, 2\n", None, ["invalid YAML"]),
    ],
)
def test_bad_yaml_names_file_line_and_key(tmp_path, text, line, words):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(InputError) as e:
        load_realism(p)
    assert e.value.path == p
    if line is not None:
        assert e.value.line == line
        assert str(e.value).startswith(f"{p}:{line}: ")
    for w in words:
        assert w in str(e.value)


def test_unknown_preset_name():
    with pytest.raises(InputError, match="preset"):
        load_realism("no-such-preset")


def test_parse_empty_is_none():
    cfg = parse_realism("", "x.yaml")
    assert cfg.degrade == RealismConfig().degrade


# --------------------------------------------------------------------------- wide: light substrate, rims, halos, text


def _looks_cfg(**particles):
    wide = load_realism("wide")
    return dataclasses.replace(wide, particles=dataclasses.replace(wide.particles, **particles))


def test_wide_preset_loads_and_old_presets_keep_new_knobs_off():
    wide = load_realism("wide")
    assert "wide" in PRESETS and wide.name == "wide" and wide.background.level == (0.0, 200.0)
    assert wide.particles.active and wide.distractors.labels_p > 0 and wide.distractors.font_p > 0
    assert wide.degrade == load_realism("strong").degrade  # base: strong
    for name in ("none", "sem", "strong"):
        cfg = load_realism(name)
        assert not cfg.particles.active and cfg.distractors.labels_p == 0 and cfg.distractors.font_p == 0


def test_wide_labels_byte_identical_to_realism_off(tiny_pattern, tmp_path):
    from synthgen.generate import generate

    # everything of wide on but the info bar, the one element that reserves rows (so moves placement)
    on = _looks_cfg(lift_p=1.0, rim_p=1.0, halo_p=1.0)
    on = dataclasses.replace(on, distractors=dataclasses.replace(on.distractors, info_bar_p=0.0, labels_p=1.0))
    generate([tiny_pattern], tmp_path / "off", count=4, seed=3, max_particles=40)
    generate([tiny_pattern], tmp_path / "on", count=4, seed=3, max_particles=40, realism=on)
    for f in sorted((tmp_path / "off" / "labels").iterdir()):
        assert (tmp_path / "on" / "labels" / f.name).read_bytes() == f.read_bytes()
    assert (tmp_path / "on" / "annotations.json").read_bytes() == (tmp_path / "off" / "annotations.json").read_bytes()


def _looks_scene(seed, cfg, level):
    from synthgen.generate import shape_table
    from synthgen.pattern import load_pattern
    from synthgen.placement import place_particles
    from synthgen.realism import render_with_looks

    from conftest import write_pattern
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        pat = load_pattern(write_pattern(Path(d)))
    rng = np.random.default_rng(seed)
    parts = place_particles(shape_table(pat), [e.class_id for e in pat.entries], 160, 120, rng, GenerateOptions_placement())
    occ = footprint_mask(120, 160, [p.footprint for p in parts])
    canvas = np.full((120, 160), level, np.uint8)
    img = render_with_looks(160, 120, parts, pat.templates, canvas.copy(), occ, np.random.default_rng(seed), cfg)
    return img, parts, occ, pat


def GenerateOptions_placement():
    from synthgen.generate import GenerateOptions

    return GenerateOptions(max_particles=12, min_gap=6).placement


@pytest.mark.parametrize("level", [0, 120, 200, 255])
def test_lift_keeps_particles_brighter_than_substrate(level):
    cfg = _looks_cfg(lift_p=1.0, lift_margin=(1.0, 1.0), rim_p=0.0, halo_p=0.0)
    for seed in range(3):
        img, parts, occ, _ = _looks_scene(seed, cfg, level)
        for p in parts:
            one = footprint_mask(120, 160, [p.footprint])
            inner = cv2.erode(one.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
            ring = cv2.dilate(one.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool) & ~occ
            if inner.sum() < 5 or ring.sum() < 5:
                continue
            assert img[inner].mean() > img[ring].mean() + 5, (level, seed)


def test_halo_never_touches_footprints_and_rim_stays_inside():
    base = _looks_cfg(lift_p=0.0, rim_p=0.0, halo_p=0.0)
    halo = _looks_cfg(lift_p=0.0, rim_p=0.0, halo_p=1.0, halo_width=(1.0, 1.0), halo_strength=(80.0, 80.0))
    rim = _looks_cfg(lift_p=0.0, rim_p=1.0, halo_p=0.0, rim_strength=(1.0, 1.0))
    for seed in range(4):
        plain, parts, occ, _ = _looks_scene(seed, base, 90)
        with_halo, *_ = _looks_scene(seed, halo, 90)
        with_rim, *_ = _looks_scene(seed, rim, 90)
        changed = with_halo != plain
        assert changed.any() and not (changed & occ).any()
        changed = with_rim != plain
        assert changed.any() and np.all(occ[changed])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_text_negatives_never_touch_occupied(seed):
    cfg = load_realism("wide")
    d = dataclasses.replace(cfg.distractors, info_bar_p=0, scale_bar_p=1, letter_p=1, text_p=0, debris_p=0,
                            font_p=0.5, labels_p=1, labels_count=(6, 10), label_size=(0.02, 0.2))  # fmt: skip
    cfg = dataclasses.replace(cfg, distractors=d)
    img, occ = scene(seed % 1000, 160, 200)
    out = draw_distractors(img, occ, np.random.default_rng(seed), cfg)
    near = cv2.dilate(occ.astype(np.uint8), np.ones((2 * int(d.margin) + 1,) * 2, np.uint8)).astype(bool)
    assert np.array_equal(out[near], img[near])


def test_micro_sign_renders_in_every_font():
    from synthgen.distractors import _ttf_paths, pil_text_mask

    for k in range(len(_ttf_paths()) + 1):  # the index drawn picks the font; cover them all
        rng = np.random.default_rng(k)
        mu = pil_text_mask("µ", rng, 24, bold=False)
        assert (mu > 128).sum() > 10
    blank = np.random.default_rng(0)
    assert pil_text_mask("1 µm", blank, 16).any()


def test_text_negatives_drawn_on_empty_image():
    cfg = load_realism("wide")
    d = dataclasses.replace(cfg.distractors, info_bar_p=0, scale_bar_p=0, letter_p=0, text_p=0, debris_p=0,
                            labels_p=1, labels_count=(5, 5))  # fmt: skip
    img = np.full((300, 400), 120, np.uint8)
    a = draw_distractors(img, np.zeros(img.shape, bool), np.random.default_rng(2), dataclasses.replace(cfg, distractors=d))
    b = draw_distractors(img, np.zeros(img.shape, bool), np.random.default_rng(2), dataclasses.replace(cfg, distractors=d))
    assert a.tobytes() == b.tobytes() and (a != 120).sum() > 50
