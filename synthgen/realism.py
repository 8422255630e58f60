"""Photometric realism for synthetic micrographs: substrate texture and SEM/TEM image degradation.

Three stages, each a pure function of an image, an ``np.random.Generator`` and a ``RealismConfig``:

- ``make_background``: the substrate canvas (grey level, low-frequency texture, grain, gradient)
  that the renderer pastes particles on instead of a flat dark canvas;
- ``synthgen.distractors.draw_distractors``: unlabelled info bars, scale bars, letters, debris;
- ``degrade``: charging illumination, contrast polarity, blur, brightness/contrast/gamma, scan-line
  noise, line jitter, shot/Gaussian noise, JPEG artefacts.

``degrade`` never moves content: blurs are centred kernels and the only geometric effect is line
jitter, a per-row horizontal shift of at most ``jitter_px`` (<= 1, sub-pixel in the presets), so
labels stay exact to within that.

A fourth stage, ``render_with_looks`` (section ``particles``), renders the particles with a lift above a
light substrate, dark/bright rims inside and halos outside their footprints; it only repaints pixels
(rims inside the footprints, halos outside all of them), so labels never change either.

Presets ``none`` (identity), ``sem``, ``strong``, ``wide`` and ``stem`` live in ``synthgen/realism_presets/*.yaml``.
A user YAML file has the same three sections; ``base: <preset>`` (default ``none``) names the preset
it overrides, key by key. Every knob, its type and allowed range are listed in ``KNOBS``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, fields, replace
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import yaml

from synthgen.errors import InputError
from synthgen.render import render

Range = tuple[float, float]

PRESETS = ("none", "sem", "strong", "wide", "stem")


@dataclass(frozen=True)
class BackgroundConfig:
    """Substrate canvas. Grey levels are 0..255; a (lo, hi) range is drawn uniformly per image."""

    level: Range = (0.0, 0.0)  # mean substrate grey, 0..255
    texture: Range = (0.0, 0.0)  # std of smooth low-frequency variation (grey levels), 0..80
    texture_scale: Range = (16.0, 64.0)  # correlation length of that variation (px), 2..1024
    # octaves of that variation, each half the length and amplitude of the one before (1..6; 1: one
    # smooth scale; more: the cloudy, many-scale look of a catalyst support in HAADF-STEM)
    texture_octaves: Range = (1.0, 1.0)
    grain: Range = (0.0, 0.0)  # std of fine, slightly correlated grain (grey levels), 0..40
    gradient: Range = (0.0, 0.0)  # peak-to-peak linear ramp at a random angle (grey levels), 0..150


@dataclass(frozen=True)
class DegradeConfig:
    """Photometric degradation; every ``*_p`` is the per-image probability of that effect (0..1)."""

    illumination_p: float = 0.0  # charging / uneven illumination (albumentations Illumination)
    illumination: Range = (0.05, 0.2)  # its intensity, 0.01..0.2
    invert_p: float = 0.0  # contrast polarity: dark particles on light ground (bright-field TEM)
    blur_p: float = 0.0  # Gaussian beam blur
    blur_sigma: Range = (0.4, 1.2)  # px, 0.1..4
    defocus_p: float = 0.0  # disc (defocus) blur
    defocus_radius: Range = (1.0, 2.0)  # px, integers 1..6
    motion_blur_p: float = 0.0  # short, centred motion blur (kernel never shifted)
    motion_blur: Range = (3.0, 3.0)  # kernel size px, odd integers 3..9
    contrast_p: float = 0.0  # random brightness / contrast
    brightness: float = 0.0  # +- limit of the brightness change (fraction of 255), 0..0.5
    contrast: float = 0.0  # +- limit of the contrast change (fraction), 0..0.8
    gamma_p: float = 0.0  # random gamma
    gamma: Range = (80.0, 120.0)  # gamma x 100, 30..300
    scan_lines_p: float = 0.0  # per-row gain and offset (scan-line noise)
    scan_gain: Range = (0.0, 0.03)  # std of the per-row gain, 0..0.3
    scan_offset: Range = (0.0, 3.0)  # std of the per-row offset (grey levels), 0..40
    scan_streaks: Range = (0.0, 2.0)  # number of short bright charging streak rows, 0..50
    jitter_p: float = 0.0  # line jitter: per-row horizontal shift
    jitter_px: float = 0.0  # max |shift| in px (labels may be off by this much), 0..1
    gauss_noise_p: float = 0.0  # additive Gaussian noise
    gauss_noise: Range = (0.02, 0.06)  # its std as a fraction of 255, 0..0.4
    noise_grain: Range = (0.5, 1.0)  # noise resolution, either end per image (1: per pixel, 0.5: 2-px grain), 0.1..1
    shot_noise_p: float = 0.0  # signal-dependent Poisson (shot) noise
    # shot-noise variance per unit signal, x in 0..1 (0.01: std 18 grey levels at mid-grey), 0..0.1
    shot_noise: Range = (0.002, 0.015)
    jpeg_p: float = 0.0  # JPEG compression artefacts
    jpeg_quality: Range = (60.0, 95.0)  # JPEG quality, integers 10..100

    @property
    def active(self) -> bool:
        return any(getattr(self, f.name) > 0 for f in fields(self) if f.name.endswith("_p"))


@dataclass(frozen=True)
class DistractorConfig:
    """Unlabelled negatives (see ``synthgen.distractors``); sizes are fractions of the image unless px."""

    enabled: bool = False  # drawn at all (the CLI's --distractors/--no-distractors overrides it)
    info_bar_p: float = 0.0  # instrument information bar along the bottom edge
    info_bar_height: Range = (0.04, 0.08)  # its height, fraction of the image height, 0.02..0.2
    info_bar_dark_p: float = 0.7  # dark bar with light text (else light bar, dark text)
    scale_bar_p: float = 0.0  # a scale bar with its "200 nm" label inside the image
    scale_bar_length: Range = (0.1, 0.3)  # fraction of the image width, 0.03..0.5
    letter_p: float = 0.0  # a panel letter ("a", "(B)", ...) in a corner
    letter_size: Range = (0.04, 0.09)  # letter height, fraction of the image height, 0.01..0.25
    letter_box_p: float = 0.3  # letter on a filled box
    text_p: float = 0.0  # a short extra label ("SiO2", "WD14", "122 mrad")
    debris_p: float = 0.0  # small irregular blobs, specks and fibres
    debris_count: Range = (1.0, 15.0)  # items per image, integers 0..500
    debris_size: Range = (1.0, 8.0)  # item size px, 1..60
    margin: float = 4.0  # px kept clear around labelled particles, integer 0..30
    font_p: float = 0.0  # a scale bar / letter uses a Pillow font (DejaVu TTF or Pillow's default): "1 µm"
    labels_p: float = 0.0  # extra text anywhere: unit labels ("500 nm", "1 µm", +- a bar), panel letters ("(b)", "c)")
    labels_count: Range = (1.0, 4.0)  # how many, integers 0..40
    label_size: Range = (0.015, 0.1)  # their cap height, fraction of the image height, 0.005..0.3

    @property
    def active(self) -> bool:
        probs = (self.info_bar_p, self.scale_bar_p, self.letter_p, self.text_p, self.debris_p, self.labels_p)
        return self.enabled and any(p > 0 for p in probs)


@dataclass(frozen=True)
class ParticleConfig:
    """Particle looks (``render_with_looks``): pixels are repainted, never moved, so labels stay exact."""

    lift_p: float = 0.0  # remap particle greys onto [substrate + margin, 255]: bright particles on light ground
    lift_margin: Range = (20.0, 60.0)  # grey levels the darkest particle pixel sits above the local substrate, 1..120
    rim_p: float = 0.0  # a rim just inside the footprint edges
    rim_width: Range = (1.0, 4.0)  # px, 1..20 (at most 0.4 x the median particle radius)
    rim_strength: Range = (0.2, 0.6)  # fraction darkened (dark rim) or brightened toward 255, 0..1
    rim_dark_p: float = 0.7  # dark rim (else bright)
    halo_p: float = 0.0  # a soft ring just outside the footprints, never on any footprint
    halo_width: Range = (0.1, 0.3)  # fraction of the median particle radius (at least 2 px), 0.01..1
    halo_strength: Range = (10.0, 50.0)  # grey levels at the footprint edge, 0..150
    halo_dark_p: float = 0.4  # dark halo (else bright)

    @property
    def active(self) -> bool:
        return any(p > 0 for p in (self.lift_p, self.rim_p, self.halo_p))


@dataclass(frozen=True)
class RealismConfig:
    """Everything ``make_background``, ``degrade`` and ``draw_distractors`` need; ``name`` is for manifests."""

    name: str = "none"
    background: BackgroundConfig = field(default_factory=BackgroundConfig)
    degrade: DegradeConfig = field(default_factory=DegradeConfig)
    distractors: DistractorConfig = field(default_factory=DistractorConfig)
    particles: ParticleConfig = field(default_factory=ParticleConfig)


SECTIONS = {
    "background": BackgroundConfig,
    "degrade": DegradeConfig,
    "distractors": DistractorConfig,
    "particles": ParticleConfig,
}

# (section, key) -> (kind, lo, hi); kind is "p" (probability), "float", "int", "range", "irange", "bool".
_P = ("p", 0.0, 1.0)
KNOBS: dict[tuple[str, str], tuple[str, float, float]] = {
    ("background", "level"): ("range", 0, 255),
    ("background", "texture"): ("range", 0, 80),
    ("background", "texture_scale"): ("range", 2, 1024),
    ("background", "texture_octaves"): ("irange", 1, 6),
    ("background", "grain"): ("range", 0, 40),
    ("background", "gradient"): ("range", 0, 150),
    ("degrade", "illumination"): ("range", 0.01, 0.2),
    ("degrade", "blur_sigma"): ("range", 0.1, 4),
    ("degrade", "defocus_radius"): ("irange", 1, 6),
    ("degrade", "motion_blur"): ("irange", 3, 9),
    ("degrade", "brightness"): ("float", 0, 0.5),
    ("degrade", "contrast"): ("float", 0, 0.8),
    ("degrade", "gamma"): ("range", 30, 300),
    ("degrade", "scan_gain"): ("range", 0, 0.3),
    ("degrade", "scan_offset"): ("range", 0, 40),
    ("degrade", "scan_streaks"): ("irange", 0, 50),
    ("degrade", "jitter_px"): ("float", 0, 1),
    ("degrade", "gauss_noise"): ("range", 0, 0.4),
    ("degrade", "noise_grain"): ("range", 0.1, 1),
    ("degrade", "shot_noise"): ("range", 0, 0.1),
    ("degrade", "jpeg_quality"): ("irange", 10, 100),
    ("distractors", "enabled"): ("bool", 0, 1),
    ("distractors", "info_bar_height"): ("range", 0.02, 0.2),
    ("distractors", "info_bar_dark_p"): _P,
    ("distractors", "scale_bar_length"): ("range", 0.03, 0.5),
    ("distractors", "letter_size"): ("range", 0.01, 0.25),
    ("distractors", "letter_box_p"): _P,
    ("distractors", "debris_count"): ("irange", 0, 500),
    ("distractors", "debris_size"): ("range", 1, 60),
    ("distractors", "margin"): ("int", 0, 30),
    ("distractors", "labels_count"): ("irange", 0, 40),
    ("distractors", "label_size"): ("range", 0.005, 0.3),
    ("particles", "lift_margin"): ("range", 1, 120),
    ("particles", "rim_width"): ("range", 1, 20),
    ("particles", "rim_strength"): ("range", 0, 1),
    ("particles", "halo_width"): ("range", 0.01, 1),
    ("particles", "halo_strength"): ("range", 0, 150),
}
for _section, _cls in SECTIONS.items():
    for _f in fields(_cls):
        if _f.name.endswith("_p"):
            KNOBS.setdefault((_section, _f.name), _P)
assert all((s, f.name) in KNOBS for s, c in SECTIONS.items() for f in fields(c)), "undocumented knob"


# --------------------------------------------------------------------------- loading


def load_realism(name_or_path: str | Path) -> RealismConfig:
    """A preset by name (``none``, ``sem``, ``strong``, ``wide``, ``stem``) or a YAML file; InputError(file, line) if bad."""
    if str(name_or_path) in PRESETS:
        return _preset(str(name_or_path))
    path = Path(name_or_path)
    if not path.is_file():
        raise InputError(f"no such realism preset or file (presets: {', '.join(PRESETS)})", path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read realism file: {e}", path) from None
    return parse_realism(text, path, default_name=path.stem)


@functools.cache
def _preset(name: str) -> RealismConfig:
    if name == "none":
        return RealismConfig()
    ref = resources.files("synthgen") / "realism_presets" / f"{name}.yaml"
    return parse_realism(ref.read_text(encoding="utf-8"), f"<preset {name}>", default_name=name)


def parse_realism(text: str, source: str | Path, default_name: str = "custom") -> RealismConfig:
    """Pure parser of a realism YAML document (see the module docstring); ``source`` names it in errors."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise InputError(f"invalid YAML: {getattr(e, 'problem', e)}", source, mark.line + 1 if mark else None) from None
    if root is None:
        return replace(RealismConfig(), name=default_name)
    if not isinstance(root, yaml.MappingNode):
        raise InputError("a realism file must be a mapping of sections", source, root.start_mark.line + 1)
    base_name, sections = "none", {}
    for key_node, value_node in root.value:
        key, line = key_node.value, key_node.start_mark.line + 1
        if key == "base":
            if value_node.value not in PRESETS:
                raise InputError(f"base must be one of {', '.join(PRESETS)}, not {value_node.value!r}", source, line)
            base_name = value_node.value
        elif key == "name":
            default_name = str(value_node.value)
        elif key in SECTIONS:
            if not isinstance(value_node, yaml.MappingNode):
                raise InputError(f"section {key!r} must be a mapping", source, line)
            sections[key] = value_node
        else:
            raise InputError(f"unknown key {key!r} (expected base, name, {', '.join(SECTIONS)})", source, line)
    cfg = replace(_preset(base_name), name=default_name)
    for section, node in sections.items():
        changes = {}
        for key_node, value_node in node.value:
            key, line = key_node.value, key_node.start_mark.line + 1
            if (section, key) not in KNOBS:
                known = ", ".join(f.name for f in fields(SECTIONS[section]))
                raise InputError(f"unknown key {key!r} in section {section!r} (known: {known})", source, line)
            changes[key] = _value(section, key, value_node, source)
        cfg = replace(cfg, **{section: replace(getattr(cfg, section), **changes)})
    return cfg


def _value(section: str, key: str, node: yaml.Node, source) -> object:
    kind, lo, hi = KNOBS[(section, key)]
    line = node.start_mark.line + 1
    where = f"{section}.{key}"
    raw = yaml.safe_load(yaml.serialize(node))
    if kind == "bool":
        if not isinstance(raw, bool):
            raise InputError(f"{where} must be true or false, not {raw!r}", source, line)
        return raw
    if kind in ("range", "irange"):
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            raw = [raw, raw]
        ok = isinstance(raw, list) and len(raw) == 2 and all(_is_num(v) for v in raw)
        if not ok or raw[0] > raw[1] or raw[0] < lo or raw[1] > hi:
            msg = f"{where} must be a number or [lo, hi] with {lo} <= lo <= hi <= {hi}, not {raw!r}"
            raise InputError(msg, source, line)
        if kind == "irange" and not all(float(v).is_integer() for v in raw):
            raise InputError(f"{where} must be integers, not {raw!r}", source, line)
        return (float(raw[0]), float(raw[1]))
    if not _is_num(raw) or not lo <= raw <= hi:
        raise InputError(f"{where} must be a number in [{lo}, {hi}], not {raw!r}", source, line)
    if kind == "int" and not float(raw).is_integer():
        raise InputError(f"{where} must be an integer, not {raw!r}", source, line)
    return float(raw)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def with_distractors(cfg: RealismConfig, on: bool | None) -> RealismConfig:
    """``cfg`` with distractors forced on/off (None: keep the preset's choice). Turning them on
    with a preset that has none (``none``) uses the ``sem`` preset's distractor section."""
    if on is None:
        return cfg
    d = cfg.distractors
    if on and not replace(d, enabled=True).active:
        d = _preset("sem").distractors
    return replace(cfg, distractors=replace(d, enabled=on))


# --------------------------------------------------------------------------- background


def _uniform(rng: np.random.Generator, r: Range) -> float:
    return float(r[0]) if r[0] == r[1] else float(rng.uniform(r[0], r[1]))


def make_background(height: int, width: int, rng: np.random.Generator, cfg: RealismConfig) -> np.ndarray:
    """(height, width) uint8 substrate: level + smooth texture + grain + linear gradient."""
    b = cfg.background
    level, texture, grain, gradient = (_uniform(rng, r) for r in (b.level, b.texture, b.grain, b.gradient))
    if texture == grain == gradient == 0:
        return np.full((height, width), round(level), np.uint8)
    out = np.full((height, width), level, np.float32)
    if texture > 0:
        scale = _uniform(rng, b.texture_scale)
        lo, hi = (int(v) for v in b.texture_octaves)
        octaves = lo if lo == hi else int(rng.integers(lo, hi + 1))  # no draw for a fixed count: same images
        smooth = _smooth_field(height, width, scale, rng)
        first_std = float(smooth[::4, ::4].std())
        for k in range(1, octaves):
            finer = _smooth_field(height, width, max(2.0, scale / 2**k), rng)
            finer *= np.float32(0.5**k * first_std / max(float(finer[::4, ::4].std()), 1e-6))
            smooth += finer
        smooth *= texture / max(float(smooth[::4, ::4].std()), 1e-6)  # in place: no full-size temporaries
        out += smooth
    if grain > 0:
        # Substrate grain is a little correlated (beam footprint), never pure per-pixel.
        small = rng.standard_normal((max(2, height // 2), max(2, width // 2)), dtype=np.float32)
        g = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
        g *= grain / max(float(g[::3, ::3].std()), 1e-6)
        out += g
    if gradient > 0:
        t = rng.uniform(0, 2 * math.pi)
        xs = np.linspace(-0.5, 0.5, width, dtype=np.float32)[None, :]
        ys = np.linspace(-0.5, 0.5, height, dtype=np.float32)[:, None]
        ramp = np.float32(math.cos(t)) * xs + np.float32(math.sin(t)) * ys
        ramp *= gradient / max(float(np.ptp(ramp)), 1e-6)
        out += ramp
    return _to_uint8(out)


def _smooth_field(height: int, width: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    """(height, width) float32 Gaussian noise with correlation length ~`scale` px (bicubic upsampling)."""
    small = rng.standard_normal((max(2, math.ceil(height / scale)) + 1, max(2, math.ceil(width / scale)) + 1))
    return cv2.resize(small.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)


# --------------------------------------------------------------------------- degradation


@functools.lru_cache(maxsize=32)
def _pipelines(d: DegradeConfig) -> tuple[A.Compose, A.Compose]:
    """albumentations stages before the hand-written scan-line/noise stages, and JPEG after them.
    Built once per config (per process) and re-seeded per image, as building a Compose is slow."""
    pre = A.Compose(
        [
            A.Illumination(mode="linear", intensity_range=d.illumination, p=d.illumination_p / 2),
            A.Illumination(mode="gaussian", intensity_range=d.illumination, p=d.illumination_p / 2),
            A.InvertImg(p=d.invert_p),
            A.GaussianBlur(sigma_limit=d.blur_sigma, blur_limit=0, p=d.blur_p),
            A.Defocus(radius=tuple(int(v) for v in d.defocus_radius), alias_blur=(0.1, 0.3), p=d.defocus_p),
            A.MotionBlur(blur_limit=tuple(int(v) for v in d.motion_blur), allow_shifted=False, p=d.motion_blur_p),
            A.RandomBrightnessContrast(brightness_limit=d.brightness, contrast_limit=d.contrast, p=d.contrast_p),
            A.RandomGamma(gamma_limit=d.gamma, p=d.gamma_p),
        ]
    )
    jpeg = A.Compose([A.ImageCompression(quality_range=tuple(int(v) for v in d.jpeg_quality), p=d.jpeg_p)])
    return pre, jpeg


def _run(pipeline: A.Compose, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    pipeline.set_random_seed(int(rng.integers(2**31)))
    return pipeline(image=image)["image"]


def degrade(image: np.ndarray, rng: np.random.Generator, cfg: RealismConfig) -> np.ndarray:
    """Photometric SEM/TEM degradation of a (h, w) uint8 image; returns a new (h, w) uint8 array.

    Order follows the instrument: charging, polarity, beam blur, contrast/gamma, scan lines, line
    jitter, detector noise, JPEG. With nothing active (preset ``none``) ``image`` itself is returned.
    """
    d = cfg.degrade
    if not d.active:
        return image
    if image.ndim != 2 or image.dtype != np.uint8:
        raise ValueError(f"degrade expects a (h, w) uint8 image, got {image.shape} {image.dtype}")
    pre, jpeg = _pipelines(d)
    out = _run(pre, image, rng)
    if rng.random() < d.scan_lines_p:
        gain, offset, streaks = (_uniform(rng, r) for r in (d.scan_gain, d.scan_offset, d.scan_streaks))
        out = scan_lines(out, rng, gain, offset, round(streaks))
    if rng.random() < d.jitter_p and d.jitter_px > 0:
        out = line_jitter(out, rng, d.jitter_px)
    gauss = _uniform(rng, d.gauss_noise) if rng.random() < d.gauss_noise_p else 0.0
    shot = _uniform(rng, d.shot_noise) if rng.random() < d.shot_noise_p else 0.0
    if gauss > 0 or shot > 0:
        out = detector_noise(out, rng, gauss, shot, d.noise_grain[int(rng.integers(2))])
    out = _run(jpeg, out, rng) if d.jpeg_p > 0 else out
    return np.ascontiguousarray(out.reshape(image.shape), dtype=np.uint8)


def detector_noise(
    image: np.ndarray, rng: np.random.Generator, gauss: float, shot: float, grain: float = 1.0
) -> np.ndarray:
    """Additive Gaussian (std ``gauss``) plus shot noise (variance ``shot * x``), x and std in units
    of 255, drawn at ``grain`` x the image resolution.

    Hand-written rather than A.ShotNoise + A.GaussNoise: the Gaussian approximation of the Poisson
    draw is ~10x faster (A.ShotNoise takes ~130 ms on a 1280x960 image) and both share one draw.
    """
    h, w = image.shape
    x = image.astype(np.float32)
    x *= np.float32(1 / 255)
    std = np.float32(shot) * x  # then, in place: sqrt(gauss^2 + shot * x) * n + x
    std += np.float32(gauss * gauss)
    np.sqrt(std, out=std)
    if grain >= 0.999:
        n = rng.standard_normal((h, w), dtype=np.float32)
    else:
        # Coarser-than-pixel noise looks like SEM grain (the beam footprint spans several pixels).
        small = rng.standard_normal((max(2, round(h * grain)), max(2, round(w * grain))), dtype=np.float32)
        n = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        n *= np.float32(1 / max(float(n[::3, ::3].std()), 1e-6))
    std *= n
    std += x
    std *= np.float32(255)
    return _to_uint8(std)


def scan_lines(
    image: np.ndarray, rng: np.random.Generator, gain_std: float, offset_std: float, streaks: int = 0
) -> np.ndarray:
    """Per-row gain and offset (a slow drift plus row-to-row noise) and a few bright streak segments."""
    h, w = image.shape
    drift = _smooth_column(rng.standard_normal(max(2, h // 16)), h)
    gain = 1.0 + gain_std * (0.6 * rng.standard_normal(h).astype(np.float32) + 0.8 * drift)
    offset = offset_std * rng.standard_normal(h).astype(np.float32)
    out = image.astype(np.float32)
    out *= gain[:, None]
    out += offset[:, None]
    for _ in range(streaks):
        # Charging streak: a row segment brightened, fading along the scan direction.
        r, c0 = int(rng.integers(h)), int(rng.integers(w))
        n = int(rng.integers(w // 8, w // 2 + 1))
        ramp = np.linspace(1.0, 0.0, n, dtype=np.float32)[: w - c0]
        out[r, c0 : c0 + ramp.size] += rng.uniform(15, 60) * ramp
    return _to_uint8(out)


def _to_uint8(values: np.ndarray) -> np.ndarray:
    """float32 grey values rounded half up and saturated to uint8 (``values`` is used up)."""
    values += np.float32(0.5)
    np.clip(values, 0, 255, out=values)
    return values.astype(np.uint8)


def line_jitter(image: np.ndarray, rng: np.random.Generator, max_px: float) -> np.ndarray:
    """Shift each row horizontally by a smooth random amount in [-max_px, max_px] (linear interpolation)."""
    h, w = image.shape
    walk = _smooth_column(rng.uniform(-1, 1, max(2, h // 4)), h)
    shift = np.clip(0.7 * walk + 0.3 * rng.uniform(-1, 1, h).astype(np.float32), -1, 1) * max_px
    map_x = np.arange(w, dtype=np.float32)[None, :] + shift[:, None]
    map_y = np.repeat(np.arange(h, dtype=np.float32)[:, None], w, axis=1)
    return cv2.remap(image, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _smooth_column(values: np.ndarray, n: int) -> np.ndarray:
    """``values`` linearly stretched to ``n`` samples (a slow per-row drift)."""
    return cv2.resize(values.astype(np.float32)[:, None], (1, n), interpolation=cv2.INTER_LINEAR)[:, 0]


# --------------------------------------------------------------------------- particle looks

# Under a lift the substrate is compressed above LIFT_KNEE so that it never exceeds LIFT_MAX: the
# particles always keep >= 40 grey levels of headroom above it and can never vanish into it.
LIFT_KNEE, LIFT_MAX = 190.0, 215.0


def render_with_looks(
    width: int,
    height: int,
    particles: Sequence,
    templates: Sequence,
    canvas: np.ndarray | None,
    occupied: np.ndarray,
    rng: np.random.Generator,
    cfg: RealismConfig,
    background: int = 0,
) -> np.ndarray:
    """``render`` plus the ``particles`` section: lift above the substrate, rims, halos.

    ``canvas``: the substrate (``make_background``) or None for a flat ``background``; ``occupied``:
    ``distractors.footprint_mask`` of every footprint (halos stay off it). Pixels are only repainted:
    the lift and rims change pixels render paints (coverage > 0, all inside footprints), halos only
    pixels outside ``occupied``. Draws from ``rng`` only for effects whose probability is > 0.
    """
    pc = cfg.particles
    lift = pc.lift_p > 0 and rng.random() < pc.lift_p
    margin = _uniform(rng, pc.lift_margin) if lift else 0.0
    rim = pc.rim_p > 0 and rng.random() < pc.rim_p
    if rim:
        rim_w, rim_s, rim_dark = _uniform(rng, pc.rim_width), _uniform(rng, pc.rim_strength), rng.random() < pc.rim_dark_p
    halo = pc.halo_p > 0 and rng.random() < pc.halo_p
    if halo:
        halo_w = _uniform(rng, pc.halo_width)
        halo_s = _uniform(rng, pc.halo_strength) * (-1 if rng.random() < pc.halo_dark_p else 1)
    if canvas is None:
        canvas = np.full((height, width), background, np.uint8)
    if lift:
        s = canvas.astype(np.float32)
        knee = LIFT_KNEE + (s - LIFT_KNEE) * ((LIFT_MAX - LIFT_KNEE) / (255.0 - LIFT_KNEE))
        canvas = np.where(s > LIFT_KNEE, knee + 0.5, s).astype(np.uint8)
    if not (lift or rim or halo) or not particles:
        return render(width, height, particles, templates, canvas=canvas)
    substrate = canvas.astype(np.float32)
    premult = render(width, height, particles, templates, canvas=np.zeros((height, width), np.uint8))
    white = render(width, height, particles, templates, canvas=np.full((height, width), 255, np.uint8))
    p = premult.astype(np.float32)
    cover = np.clip(1.0 - (white.astype(np.float32) - p) / 255.0, 0.0, 1.0)  # particle alpha, 0 off footprints
    cover[(white == 255) & (premult == 0)] = 0.0
    if lift:
        # particle grey v -> S + m + (255 - S - m) v / 255 (premultiplied by the coverage a)
        m = np.minimum(np.float32(margin), (255.0 - substrate) / 2)
        out = substrate + cover * m + (255.0 - substrate - m) * (p / 255.0)
    else:
        out = p + substrate * (1.0 - cover)
    radius = _median_radius(particles)
    if rim:
        solid = (cover > 0.5).astype(np.uint8)
        d_in = cv2.distanceTransform(solid, cv2.DIST_L2, 3)  # 1 on the edge pixels, 0 off the solid part
        rw = min(rim_w, max(1.0, 0.4 * radius))
        wgt = np.clip(1.0 - (d_in - 1.0) / rw, 0.0, 1.0) * cover * np.float32(rim_s)
        out = out * (1.0 - wgt) if rim_dark else out + (255.0 - out) * wgt
    if halo:
        d_out = cv2.distanceTransform((cover <= 0).astype(np.uint8), cv2.DIST_L2, 3)  # px to the nearest particle pixel
        hw = max(2.0, halo_w * radius)
        prof = np.clip(1.0 - (d_out - 1.0) / hw, 0.0, 1.0) ** 2
        prof[occupied] = 0.0
        out = out + np.float32(halo_s) * prof
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _median_radius(particles: Sequence) -> float:
    areas = [p.footprint.area for p in particles if p.footprint.area > 0]
    return math.sqrt(float(np.median(areas)) / math.pi) if areas else 4.0
