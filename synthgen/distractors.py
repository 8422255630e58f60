"""Unlabelled negatives drawn into synthetic micrographs: info bars, scale bars, panel letters, debris.

Real micrographs and figure crops carry them, and a detector trained without them calls a letter
"C" a cube. Nothing here changes labels: no pixel of a labelled particle (``occupied`` mask, dilated
by ``DistractorConfig.margin`` px) is ever drawn on; an element that would touch one is skipped.

Call order in generation: ``rows = reserve_info_bar(h, rng, cfg)`` before placement (keep the
bottom ``rows`` free of particles), render, ``draw_distractors(image, occupied, rng, cfg, rows)``,
then ``realism.degrade`` so the distractors get the same noise as the particles.
"""

from __future__ import annotations

import functools
import glob
import math
from collections.abc import Iterable

import cv2
import numpy as np
import shapely
from PIL import Image, ImageDraw, ImageFont

from synthgen.realism import DistractorConfig, RealismConfig

FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_TRIPLEX)
LETTERS = tuple("abcdefghi") + tuple("ABCDEFGHI")
EXTRA_TEXT = ("SiO2", "Ag", "Au", "WD14", "122 mrad", "x50k", "SE", "InLens", "BSE", "TEM", "t = 2 h", "pH 9", "#3")
SCALE_LABELS = (
    "50 nm", "100 nm", "200 nm", "250 nm", "500 nm", "1 um", "1.0 um", "2 um", "5 um", "10 um", "100nm", "200nm"
)  # fmt: skip


# Pillow fonts (``DistractorConfig.font_p``, ``labels_p``): Hershey fonts have no "µ". DejaVu TTFs are
# used where installed (found by glob, never required; the draw then depends on the machine's fonts),
# Pillow's built-in default font everywhere.
FONT_GLOB = "/usr/share/fonts/truetype/dejavu/DejaVu*.ttf"
PANEL_TEXTS = tuple("abcdefgh") + tuple("ABCDEF") + tuple(f"({c})" for c in "abcdefAB") + tuple(f"{c})" for c in "abcdef") + (
    "(i)", "(ii)", "a.", "B.")  # fmt: skip
UNIT_LABELS = tuple(f"{v} nm" for v in (10, 20, 50, 100, 200, 250, 300, 500)) + tuple(
    f"{v} µm" for v in ("0.5", "1", "1.0", "2", "2.5", "5", "10", "20", "50"))  # fmt: skip


@functools.cache
def _ttf_paths() -> tuple[str, ...]:
    return tuple(sorted(p for p in glob.glob(FONT_GLOB) if "MathTeX" not in p))


@functools.lru_cache(maxsize=512)
def _pil_font(path: str, size: int):
    return ImageFont.truetype(path, size) if path else ImageFont.load_default(size=size)


def pil_text_mask(text: str, rng: np.random.Generator, cap: float, bold: bool | None = None) -> np.ndarray:
    """uint8 alpha (255: ink) of ``text`` in a random Pillow font with a cap height of about ``cap`` px,
    tight but for a 1-px border. The default font is always a candidate, so "µ" renders everywhere."""
    paths = ("",) + _ttf_paths()
    path = paths[int(rng.integers(len(paths)))]
    ref = _pil_font(path, 100).getbbox("H")
    size = max(6, round(cap * 100 / max(1, ref[3] - ref[1])))
    font = _pil_font(path, size)
    bold = rng.random() < 0.4 if bold is None else bold
    stroke = max(1, round(size / 18)) if bold else 0
    x0, y0, x1, y1 = font.getbbox(text, stroke_width=stroke)
    img = Image.new("L", (x1 - x0 + 2, y1 - y0 + 2), 0)
    ImageDraw.Draw(img).text((1 - x0, 1 - y0), text, font=font, fill=255, stroke_width=stroke, stroke_fill=255)
    return np.asarray(img, np.uint8).copy()


def _inked(mask: np.ndarray, ink: float, box: float | None, pad: int):
    """(value, alpha) patch of an ink ``mask`` with ``pad`` px around it, on a filled box if ``box``."""
    alpha = cv2.copyMakeBorder(mask, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    value = np.full(alpha.shape, ink, np.float32)
    if box is not None:
        a = alpha.astype(np.float32) / 255.0
        value = ink * a + box * (1 - a)
        alpha = np.full(alpha.shape, 255, np.uint8)
    return value, alpha


def _r(rng: np.random.Generator, r: tuple[float, float]) -> float:
    return float(r[0]) if r[0] == r[1] else float(rng.uniform(*r))


def reserve_info_bar(height: int, rng: np.random.Generator, cfg: RealismConfig) -> int:
    """Rows at the bottom to keep free of particles for this image's info bar (0: no bar).
    Pass the result to ``draw_distractors(..., info_bar_rows=)``."""
    d = cfg.distractors
    if not d.active or d.info_bar_p <= 0 or rng.random() >= d.info_bar_p:
        return 0
    return int(min(max(10, round(_r(rng, d.info_bar_height) * height)), height // 4))


def footprint_mask(height: int, width: int, polygons: Iterable) -> np.ndarray:
    """(height, width) bool mask of the pixels whose centres lie in any of the shapely polygons."""
    mask = np.zeros((height, width), np.uint8)
    parts = shapely.get_parts(np.asarray(list(polygons), dtype=object))
    # all outlines converted at once; filled one by one (one fillPoly call would leave overlaps empty)
    xy, ring = shapely.get_coordinates(shapely.get_exterior_ring(parts), return_index=True)
    points = np.round((xy - 0.5) * 16).astype(np.int32)  # continuous coords: pixel centres at +0.5
    for pts in np.split(points, np.cumsum(np.bincount(ring, minlength=len(parts)))[:-1]):
        if len(pts):
            cv2.fillPoly(mask, [pts], 1, lineType=cv2.LINE_8, shift=4)
    # fillPoly's rounding can miss a boundary pixel; one px of dilation makes the mask conservative.
    return cv2.dilate(mask, np.ones((3, 3), np.uint8)).astype(bool)


def draw_distractors(
    image: np.ndarray,
    occupied: np.ndarray,
    rng: np.random.Generator,
    cfg: RealismConfig,
    info_bar_rows: int | None = None,
) -> np.ndarray:
    """A copy of the (h, w) uint8 ``image`` with distractors drawn where ``occupied`` (bool, h x w;
    True on labelled particles) is False, even after dilation by ``margin`` px.

    ``info_bar_rows`` from ``reserve_info_bar``; None lets this function decide (the bar is then
    drawn only if the bottom strip happens to be free).
    """
    d = cfg.distractors
    out = image.copy()
    if not d.active:
        return out
    h, w = image.shape
    m = int(d.margin)
    occ = occupied.astype(np.uint8)
    blocked = cv2.dilate(occ, np.ones((2 * m + 1, 2 * m + 1), np.uint8)).astype(bool) if m > 0 else occ > 0
    canvas = _Canvas(out, blocked)
    bg = float(np.median(image[::4, ::4]))

    if info_bar_rows is None:
        info_bar_rows = reserve_info_bar(h, rng, cfg)
    if info_bar_rows > 0:
        canvas.place(*_info_bar(w, info_bar_rows, rng, d), 0, h - info_bar_rows)
    usable_h = h - info_bar_rows
    if rng.random() < d.scale_bar_p:
        patch = _scale_bar(w, rng, d, bg)
        canvas.place_somewhere(patch, rng, usable_h, prefer="bottom")
    if rng.random() < d.letter_p:
        canvas.place_somewhere(_letter(h, rng, d, bg, rng.choice(_letter_texts())), rng, usable_h, prefer="top-left")
    if rng.random() < d.text_p:
        patch = _letter(h, rng, d, bg, str(rng.choice(EXTRA_TEXT)), small=True)
        canvas.place_somewhere(patch, rng, usable_h, prefer="top")
    if rng.random() < d.debris_p:
        for _ in range(round(_r(rng, d.debris_count))):
            canvas.place_somewhere(_debris(rng, d, bg), rng, usable_h, prefer=None, tries=3)
    if d.labels_p > 0 and rng.random() < d.labels_p:  # drawn last: presets without it are unchanged
        for _ in range(round(_r(rng, d.labels_count))):
            canvas.place_somewhere(_text_negative(h, rng, d), rng, usable_h, prefer=None, tries=6)
    return out


def _letter_texts() -> list[str]:
    return list(LETTERS) + [f"({c})" for c in LETTERS[:6] + LETTERS[9:15]] + ["i", "ii", "iii", "I", "II"]


class _Canvas:
    """Composites (value, alpha) patches into ``image`` unless they touch ``blocked``."""

    def __init__(self, image: np.ndarray, blocked: np.ndarray):
        self.image, self.blocked = image, blocked

    def place(self, value: np.ndarray, alpha: np.ndarray, x0: int, y0: int) -> bool:
        h, w = self.image.shape
        ph, pw = alpha.shape
        if x0 < 0 or y0 < 0 or x0 + pw > w or y0 + ph > h:
            return False
        region = (slice(y0, y0 + ph), slice(x0, x0 + pw))
        if np.any(self.blocked[region] & (alpha > 0)):
            return False
        a = alpha.astype(np.float32) / 255.0
        dst = self.image[region].astype(np.float32)
        self.image[region] = np.clip(value * a + dst * (1 - a) + 0.5, 0, 255).astype(np.uint8)
        return True

    def place_somewhere(
        self, patch, rng: np.random.Generator, usable_h: int, prefer: str | None, tries: int = 12
    ) -> bool:
        """Try ``tries`` positions above row ``usable_h`` (half of them near ``prefer``); False if none fits."""
        value, alpha = patch
        ph, pw = alpha.shape
        w = self.image.shape[1]
        if pw >= w or ph >= usable_h:
            return False
        pad = int(rng.integers(2, max(3, min(w, usable_h) // 40 + 3)))
        for i in range(tries):
            corner = prefer if i < tries // 2 else None
            if corner in ("top-left",):
                x0, y0 = pad, pad
                if rng.random() < 0.3:
                    x0 = w - pw - pad if rng.random() < 0.5 else x0
                    y0 = usable_h - ph - pad if rng.random() < 0.3 else y0
            elif corner == "bottom":
                side = rng.random()
                x0 = w - pw - pad if side < 0.6 else pad if side < 0.85 else int(rng.integers(0, w - pw))
                y0 = usable_h - ph - pad
            elif corner == "top":
                x0, y0 = int(rng.integers(0, w - pw)), pad
            else:
                x0, y0 = int(rng.integers(0, w - pw)), int(rng.integers(0, usable_h - ph))
            if self.place(value, alpha, x0, y0):
                return True
        return False


def _contrast_colour(rng: np.random.Generator, bg: float) -> tuple[float, float]:
    """(ink, box) greys: ink mostly opposite to the background, box opposite to the ink."""
    light = bg < 128 if rng.random() < 0.85 else bg >= 128
    ink = rng.uniform(225, 255) if light else rng.uniform(0, 30)
    return ink, 255.0 - ink + rng.uniform(-15, 15)


def _text_patch(text: str, font: int, scale: float, thick: int, ink: float, pad: int, box: float | None):
    (tw, th), base = cv2.getTextSize(text, font, scale, thick)
    ph, pw = th + base + 2 * pad, tw + 2 * pad
    alpha = np.zeros((ph, pw), np.uint8)
    value = np.full((ph, pw), ink, np.float32)
    org = (pad, pad + th)
    if box is None:
        cv2.putText(alpha, text, org, font, scale, 255, thick, cv2.LINE_AA)
    else:
        alpha[:] = 255
        value[:] = box
        ink_mask = np.zeros((ph, pw), np.uint8)
        cv2.putText(ink_mask, text, org, font, scale, 255, thick, cv2.LINE_AA)
        a = ink_mask.astype(np.float32) / 255.0
        value = ink * a + box * (1 - a)
    return value, alpha


def _letter(h: int, rng: np.random.Generator, d: DistractorConfig, bg: float, text: str, small: bool = False):
    size = _r(rng, d.letter_size) * h * (0.6 if small else 1.0)  # cap height in px
    if d.font_p > 0 and rng.random() < d.font_p:  # a Pillow font (never drawn when font_p is 0)
        ink, box = _contrast_colour(rng, bg)
        boxed = rng.random() < d.letter_box_p
        return _inked(pil_text_mask(text, rng, size), ink, box if boxed else None, max(2, round(size * 0.25)))
    font = int(rng.choice(FONTS))
    scale = max(0.3, size / cv2.getTextSize("H", font, 1.0, 1)[0][1])
    thick = max(1, round(scale * rng.uniform(1.2, 2.8)))  # bold, as in figure panels
    ink, box = _contrast_colour(rng, bg)
    boxed = rng.random() < d.letter_box_p
    return _text_patch(text, font, scale, thick, ink, max(2, round(size * 0.25)), box if boxed else None)


def _scale_bar(w: int, rng: np.random.Generator, d: DistractorConfig, bg: float):
    if d.font_p > 0 and rng.random() < d.font_p:  # a Pillow font, "µm" (never drawn when font_p is 0)
        length = max(8, round(_r(rng, d.scale_bar_length) * w))
        cap = max(6.0, min(length * rng.uniform(0.12, 0.3), w * 0.05))
        ink, box = _contrast_colour(rng, bg)
        return _unit_label(rng, cap, ink, box if rng.random() < 0.25 else None, length)
    length = max(8, round(_r(rng, d.scale_bar_length) * w))
    thick = max(2, round(length * rng.uniform(0.02, 0.08)))
    font = int(rng.choice(FONTS))
    label = str(rng.choice(SCALE_LABELS))
    cap = max(6.0, length * rng.uniform(0.12, 0.3))
    scale = max(0.3, min(cap, w * 0.05) / cv2.getTextSize("H", font, 1.0, 1)[0][1])
    tthick = max(1, round(scale * rng.uniform(1.0, 2.2)))
    (tw, th), base = cv2.getTextSize(label, font, scale, tthick)
    gap = max(2, thick)
    pad = 3
    pw = max(length, tw) + 2 * pad
    ph = th + base + gap + thick + 2 * pad
    ink, box = _contrast_colour(rng, bg)
    alpha = np.zeros((ph, pw), np.uint8)
    label_above = rng.random() < 0.6
    bar_y = ph - pad - thick if label_above else pad
    text_y = pad + th if label_above else pad + thick + gap + th
    bx = (pw - length) // 2
    cv2.rectangle(alpha, (bx, bar_y), (bx + length - 1, bar_y + thick - 1), 255, -1)
    if rng.random() < 0.25:  # end ticks
        for x in (bx, bx + length - 1):
            cv2.line(alpha, (x, max(0, bar_y - thick)), (x, min(ph - 1, bar_y + 2 * thick)), 255, max(1, thick // 2))
    cv2.putText(alpha, label, ((pw - tw) // 2, text_y), font, scale, 255, tthick, cv2.LINE_AA)
    value = np.full((ph, pw), ink, np.float32)
    if rng.random() < 0.25:  # on a box, as pasted by figure tools
        a = alpha.astype(np.float32) / 255.0
        value = ink * a + box * (1 - a)
        alpha[:] = 255
    return value, alpha


def _info_bar(w: int, rows: int, rng: np.random.Generator, d: DistractorConfig):
    dark = rng.random() < d.info_bar_dark_p
    fill = rng.uniform(0, 40) if dark else rng.uniform(215, 255)
    ink = rng.uniform(215, 255) if dark else rng.uniform(0, 40)
    value = np.full((rows, w), fill, np.float32)
    ink_mask = np.zeros((rows, w), np.uint8)
    font = int(rng.choice((cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_DUPLEX)))
    two_lines = rows >= 28 and rng.random() < 0.4
    line_h = rows * (0.32 if two_lines else 0.45)
    scale = max(0.3, line_h / cv2.getTextSize("H", font, 1.0, 1)[0][1])
    thick = 1 if scale < 1.2 else int(rng.integers(1, 3))
    fields = _info_fields(rng)
    lines = [fields[: len(fields) // 2], fields[len(fields) // 2 :]] if two_lines else [fields]
    bar_len = round(w * rng.uniform(0.08, 0.18))
    text_w = w - bar_len - 30
    for i, parts in enumerate(lines):
        text = "  ".join(parts)
        while len(parts) > 1 and cv2.getTextSize(text, font, scale, thick)[0][0] > text_w:
            parts = parts[:-1]
            text = "  ".join(parts)
        y = round(rows * ((i + 1) / (len(lines) + 0.0)) - rows * (0.22 if len(lines) == 1 else 0.12))
        cv2.putText(ink_mask, text, (int(rng.integers(3, 12)), y), font, scale, 255, thick, cv2.LINE_AA)
    # A scale bar with its label at the right end of the bar.
    x1 = w - int(rng.integers(6, 20))
    x0 = x1 - bar_len
    bar_t = max(2, rows // 10)
    label = str(rng.choice(SCALE_LABELS))
    (tw, th), _ = cv2.getTextSize(label, font, scale, thick)
    if rng.random() < 0.5:
        cv2.rectangle(ink_mask, (x0, rows // 2 - bar_t), (x1, rows // 2), 255, -1)
        cv2.putText(ink_mask, label, (x0 - tw - 8, rows // 2 + th // 2), font, scale, 255, thick, cv2.LINE_AA)
    else:
        cv2.rectangle(ink_mask, (x0, rows - 3 - bar_t), (x1, rows - 3), 255, -1)
        org = ((x0 + x1 - tw) // 2, rows - bar_t - 6)
        cv2.putText(ink_mask, label, org, font, 0.9 * scale, 255, thick, cv2.LINE_AA)
    if rng.random() < 0.4:  # separator line along the top edge of the bar
        ink_mask[0, :] = 255
    a = ink_mask.astype(np.float32) / 255.0
    return ink * a + value * (1 - a), np.full((rows, w), 255, np.uint8)


def _info_fields(rng: np.random.Generator) -> list[str]:
    kv = rng.choice([1.0, 2.0, 3.0, 5.0, 10.0, 15.0, 20.0, 30.0])
    wd = rng.uniform(2, 15)
    mag = rng.choice([5, 10, 20, 25, 30, 50, 80, 100, 150, 200])
    day, year = int(rng.integers(1, 29)), int(rng.integers(2010, 2025))
    styles = [
        [f"SEM HV: {kv:.1f} kV", f"WD: {wd:.1f} mm", f"{mag} kX", f"Det: {rng.choice(['SE', 'InBeam', 'BSE'])}"],
        [f"EHT = {kv:.2f} kV", f"WD = {wd:.1f} mm", f"Mag = {mag:.2f} K X", "Signal A = InLens",
         f"Date :{day} Jan {year}"],
        [f"S4800 {kv:.1f}kV {wd:.1f}mm x{mag:.1f}k SE(U)"],
        [f"SEI {kv:.1f}kV", f"X{mag * 1000:,}", f"WD {wd:.1f}mm"],
        [f"HV {kv:.2f} kV", f"mag {mag * 1000:,} x", f"HFW {rng.uniform(0.5, 20):.2f} um", f"WD {wd:.1f} mm", "TLD"],
    ]
    return list(styles[int(rng.integers(len(styles)))])


def _debris(rng: np.random.Generator, d: DistractorConfig, bg: float):
    size = _r(rng, d.debris_size)
    kind = rng.choice(["speck", "blob", "fibre"], p=[0.5, 0.35, 0.15])
    brighter = rng.random() < 0.75  # SEM debris charges and shows bright
    grey = min(255.0, bg + rng.uniform(40, 160)) if brighter else max(0.0, bg - rng.uniform(30, 90))
    if kind == "speck":
        r = max(0.6, size * 0.35)
        n = int(math.ceil(r)) * 2 + 3
        alpha = np.zeros((n, n), np.uint8)
        cv2.circle(alpha, (n * 8, n * 8), round(r * 16), 255, -1, cv2.LINE_AA, shift=4)
    elif kind == "blob":
        r = max(1.5, size / 2)
        k = int(rng.integers(5, 10))
        ang = np.sort(rng.uniform(0, 2 * math.pi, k))
        rad = r * rng.uniform(0.4, 1.0, k)  # irregular, not a particle-like disc
        n = int(math.ceil(2 * r)) + 4
        pts = np.stack([n / 2 + rad * np.cos(ang), n / 2 + rad * np.sin(ang)], 1)
        alpha = np.zeros((n, n), np.uint8)
        cv2.fillPoly(alpha, [np.round(pts * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    else:
        length = size * rng.uniform(3, 8)
        t = rng.uniform(0, 2 * math.pi)
        steps = 8
        turn = np.cumsum(rng.normal(0, 0.25, steps))
        seg = length / steps
        xy = np.cumsum(np.stack([np.cos(t + turn), np.sin(t + turn)], 1) * seg, 0)
        xy -= xy.min(0)
        n = np.ceil(xy.max(0)).astype(int) + 5
        alpha = np.zeros((n[1], n[0]), np.uint8)
        pts = [np.round((xy + 2) * 16).astype(np.int32)]
        cv2.polylines(alpha, pts, False, 255, int(rng.integers(1, 3)), cv2.LINE_AA, shift=4)
    return np.full(alpha.shape, grey, np.float32), alpha


def _text_negative(h: int, rng: np.random.Generator, d: DistractorConfig):
    """A unit label (standalone, beside or above/below a bar) or a panel letter, in a Hershey or
    Pillow font, either polarity, cap height ``label_size`` x ``h``."""
    cap = max(5.0, _r(rng, d.label_size) * h)
    light = rng.random() < 0.5
    ink = rng.uniform(200, 255) if light else rng.uniform(0, 50)
    box = 255.0 - ink + rng.uniform(-20, 20) if rng.random() < d.letter_box_p else None
    if rng.random() < 0.5:
        bar = None if rng.random() < 0.4 else round(cap * rng.uniform(1.5, 6))
        return _unit_label(rng, cap, ink, box, bar)
    text = str(rng.choice(PANEL_TEXTS))
    if rng.random() < 0.5:
        font = int(rng.choice(FONTS))
        scale = max(0.3, cap / cv2.getTextSize("H", font, 1.0, 1)[0][1])
        thick = max(1, round(scale * rng.uniform(0.8, 2.8)))
        (tw, th), base = cv2.getTextSize(text, font, scale, thick)
        mask = np.zeros((th + base + 2 * thick + 2, tw + 2 * thick + 2), np.uint8)
        cv2.putText(mask, text, (thick + 1, th + thick + 1), font, scale, 255, thick, cv2.LINE_AA)
    else:
        mask = pil_text_mask(text, rng, cap)
    return _inked(mask, ink, box, max(2, round(cap * 0.2)))


def _unit_label(rng: np.random.Generator, cap: float, ink: float, box: float | None, bar: int | None):
    """A scale label ("500 nm", "1 µm", Pillow font) alone or with a bar of ``bar`` px beside,
    above or below it."""
    label = str(rng.choice(UNIT_LABELS))
    if rng.random() < 0.2:
        label = label.replace(" ", "")
    text = pil_text_mask(label, rng, cap)
    if bar is None:
        return _inked(text, ink, box, max(2, round(cap * 0.2)))
    th, tw = text.shape
    t = max(2, round(cap * rng.uniform(0.15, 0.45)))
    gap = max(2, round(cap * rng.uniform(0.2, 0.6)))
    if rng.random() < 0.5:  # beside: bar left or right of the label, vertically centred
        mask = np.zeros((max(th, t), tw + gap + bar), np.uint8)
        ty, by = (mask.shape[0] - th) // 2, (mask.shape[0] - t) // 2
        if rng.random() < 0.5:
            mask[by : by + t, :bar] = 255
            mask[ty : ty + th, bar + gap :] = text
        else:
            mask[ty : ty + th, :tw] = text
            mask[by : by + t, tw + gap :] = 255
    else:  # label above or below the bar, centred
        wd = max(tw, bar)
        mask = np.zeros((th + gap + t, wd), np.uint8)
        tx, bx = (wd - tw) // 2, (wd - bar) // 2
        if rng.random() < 0.6:
            mask[:th, tx : tx + tw] = text
            mask[th + gap :, bx : bx + bar] = 255
        else:
            mask[:t, bx : bx + bar] = 255
            mask[t + gap :, tx : tx + tw] = text
    return _inked(mask, ink, box, max(2, round(cap * 0.2)))
