"""Pixel size from the scale bar drawn on a micrograph, and the choice of each image's scale.

The bar: a solid horizontal bar of one extreme grey (white or black), 4 to 60 % of the image wide,
at least 4 times longer than thick, allowing end ticks (``|----|``). Its label, read by OCR
(Tesseract through pytesseract) in a window around the bar, is a number and a length unit ("200 nm",
"1 µm", "3.0 um"); the label nearest the bar wins. nm per px = label length / bar length in px.
No bar, no OCR engine, or no readable label next to a bar: no scale (never a guess).

Each image's scale (`resolve_scale`): the file's metadata first; else the scale bar (with a warning
line saying what was read, as OCR can misread a digit); else the ``--nm-per-px`` option; else none.
When metadata and scale bar disagree by more than `AGREEMENT` (5 %), a warning names both and the
metadata is used. Readings outside `NM_PER_PX_RANGE` are taken as misreads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from synthgen.readers import Micrograph, nm_per_unit

AGREEMENT = 0.05
_MIN_BAR_FRACTION, _MAX_BAR_FRACTION = 0.04, 0.6  # of the image width
_MIN_BAR_PX = 12
_MIN_ASPECT = 2.5
_FULL_ROW = 0.95  # the bar's solid rows cover this much of its bounding box
_SOLID = 0.8  # the opened bar fills its bounding box
_BRIGHT, _DARK = 200, 55
_ROUND_MANTISSAS = (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8)
NM_PER_PX_RANGE = (1e-3, 1e4)  # electron/probe micrographs: 1 pm to 10 µm per pixel; outside is a misread
_LETTER_PX = 32  # Tesseract reads letters about this tall best
_OCR_ZOOMS = (1.0, 0.67)  # relative to the zoom that brings the label's letters to _LETTER_PX (then a smaller one)  # grey levels of a white / black bar
# a number, then a length unit; OCR reads µ as u, p, y or a Greek mu
_LABEL = re.compile(r"(\d+(?:[.,]\d+)?)\s*(nm|nrn|nir|[uµμ]m|mm|pm|Å)(?![a-z])", re.IGNORECASE)
_LONE_ONE = re.compile(r"(?<![\w.])[Il|Tt]\s*([uµμ]m|nm)\b")  # OCR reads a lone "1" as I, l, | or T
_UNIT_READS = {"nrn": "nm", "nir": "nm", "um": "µm", "μm": "µm"}  # how OCR misreads a cut or thin "nm" and "µ"


@dataclass(frozen=True)
class ScaleBar:
    """A bar candidate: (x0, y0, x1, y1) pixel box, x1 - x0 = its length; polarity bright or dark."""

    x0: int
    y0: int
    x1: int
    y1: int
    bright: bool
    gap: tuple[int, int] | None = None  # a line in two pieces: the columns between them (the label's)

    @property
    def length(self) -> int:
        return self.x1 - self.x0


@dataclass(frozen=True)
class ScaleReading:
    nm_per_px: float
    bar: ScaleBar
    label: str  # as read, e.g. "200 nm"
    label_nm: float


def round_number(value: float) -> bool:
    """Scale bars are drawn at round lengths (1, 2, 2.5, 5 ... x 10^k): "208 nm" is a misread "200 nm"."""
    mantissa = value / 10 ** np.floor(np.log10(value))
    return any(abs(mantissa - r) < 1e-6 for r in _ROUND_MANTISSAS)


def parse_scale_label(text: str) -> list[tuple[str, float, int]]:
    """Every "number unit" in OCR text with a round number (`round_number`): (label, length in nm, offset)."""
    text = _LONE_ONE.sub(r"1 \1", text)
    out = []
    for m in _LABEL.finditer(text):
        unit = _UNIT_READS.get(m.group(2).lower(), m.group(2).lower())
        scale = nm_per_unit(unit)
        value = float(m.group(1).replace(",", "."))
        if scale and value > 0 and round_number(value):
            out.append((f"{m.group(1)} {unit}", value * scale, m.start()))
    return out


def find_bars(gray: np.ndarray) -> list[ScaleBar]:
    """Scale-bar candidates in a uint8 grey image, longest first.

    A horizontal opening keeps only runs of bar colour at least the shortest bar long: letters touching
    the bar and end ticks fall away, the bar stays a solid rectangle (its ticks sit at its ends, so the
    length between the outer edges is unchanged)."""
    import cv2

    h, w = gray.shape
    min_len = int(max(_MIN_BAR_PX, _MIN_BAR_FRACTION * w))
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (min_len, 1))
    bars = []
    for bright in (True, False):
        mask = ((gray >= _BRIGHT) if bright else (gray <= _DARK)).astype(np.uint8)
        opened = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(opened, connectivity=4)
        for k in range(1, n):
            x, y, bw, bh, area = (int(v) for v in stats[k])
            if bw > _MAX_BAR_FRACTION * w or bw < _MIN_ASPECT * bh or bh > 0.05 * h + 3:
                continue
            if x == 0 or x + bw == w:  # cut by the image's side: a band of the image, or a bar we cannot measure
                continue
            if area < _SOLID * bw * bh:  # a solid rectangle, not the rounded top of a blob
                continue
            if not _isolated(mask.astype(bool), x, y, bw, bh):
                continue
            bars.append(ScaleBar(x, y, x + bw, y + bh, bright))
    return sorted(_joined(bars), key=lambda b: -b.length)


def _joined(bars: list[ScaleBar]) -> list[ScaleBar]:
    """Two collinear pieces of one thickness with a gap shorter than themselves also as one bar:
    the |--- 1 µm ---| style, the label in the middle of the line (the pieces stay candidates too)."""
    out = list(bars)
    for a in bars:
        for b in bars:
            same_line = a.bright == b.bright and abs(a.y0 - b.y0) <= 1 and abs(a.y1 - b.y1) <= 1
            if same_line and a.x1 < b.x0 and b.x0 - a.x1 < min(a.length, b.length) and abs(a.length - b.length) <= 0.2 * max(a.length, b.length):
                out.append(ScaleBar(a.x0, min(a.y0, b.y0), b.x1, max(a.y1, b.y1), a.bright, (a.x1, b.x0)))
    return out


def _bar_rows(gray: np.ndarray, bar: ScaleBar) -> np.ndarray:
    """The bar's solid rows within its box (its ticks left out)."""
    box = gray[bar.y0 : bar.y1, bar.x0 : bar.x1]
    mask = box >= _BRIGHT if bar.bright else box <= _DARK
    return mask.mean(axis=1) >= _FULL_ROW


def _longest_run(flags: np.ndarray) -> int:
    best = run = 0
    for f in flags:
        run = run + 1 if f else 0
        best = max(best, run)
    return best


def _isolated(mask: np.ndarray, x: int, y: int, bw: int, bh: int) -> bool:
    """The bar stands on a contrasting ground: of the rows just above and below it at least one is
    mostly not bar-coloured (letters may touch one side), and so are the columns just left and right
    (a bright stripe in a bright region is an edge of image content)."""
    h, w = mask.shape
    above = mask[max(0, y - 2) : y, x : x + bw]
    below = mask[y + bh : min(h, y + bh + 2), x : x + bw]
    sides = np.concatenate([mask[y : y + bh, max(0, x - 2) : x].ravel(), mask[y : y + bh, x + bw : min(w, x + bw + 2)].ravel()])
    clear = [r.size == 0 or r.mean() < 0.5 for r in (above, below)]  # the image border is clear ground
    return any(clear) and (sides.size == 0 or sides.mean() < 0.5)


def label_window(gray: np.ndarray, bar: ScaleBar) -> tuple[int, int, int, int]:
    """Where the bar's label may be: a bar length (at least 15 % of the width: a short bar's label is
    wider than the bar) either side, a few text heights above and below."""
    h, w = gray.shape
    pad_x = max(bar.length, int(0.15 * w))
    pad_y = max(3 * (bar.y1 - bar.y0), 40, int(0.12 * h))
    return max(0, bar.x0 - pad_x), max(0, bar.y0 - pad_y), min(w, bar.x1 + pad_x), min(h, bar.y1 + pad_y)


def tesseract_ocr(crop: np.ndarray) -> str:
    """Text in a binarised crop, black on white: a uniform block first (psm 6), then sparse text (psm 11)."""
    import pytesseract

    text = pytesseract.image_to_string(crop, config="--psm 6")
    return text if parse_scale_label(text) else text + "\n" + pytesseract.image_to_string(crop, config="--psm 11")


def ocr_available() -> bool:
    """Whether pytesseract and the tesseract program are installed."""
    try:
        import pytesseract

        pytesseract.get_tesseract_version()
        return True
    except Exception:  # noqa: BLE001 - missing package or program: no OCR
        return False


def _prepared(crop: np.ndarray, bar_level: float, same_as_bar: bool = True, zoom: float = _OCR_ZOOMS[0]) -> np.ndarray:
    """Crop for OCR: the label black on white, resized so its letters (the median height of the text's
    connected parts) measure `zoom` x _LETTER_PX. The label has the bar's grey (`same_as_bar`, threshold halfway between bar and ground) or
    the opposite extreme (a white bar over black text)."""
    import cv2

    ground = float(np.median(crop))
    bright_text = (bar_level > ground) == same_as_bar
    thr = (bar_level + ground) / 2 if same_as_bar else (ground + (0.0 if bar_level > ground else 255.0)) / 2
    text = (crop >= thr if bright_text else crop <= thr).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(text, connectivity=8)
    specks = np.flatnonzero((stats[:, cv2.CC_STAT_AREA] < 6) | (stats[:, cv2.CC_STAT_HEIGHT] < 5))
    text[np.isin(labels, specks[specks > 0])] = 0  # noise specks, not letters
    heights = stats[1:, cv2.CC_STAT_HEIGHT][np.isin(np.arange(1, n), specks, invert=True)]
    letters = float(np.median(heights)) if len(heights) else 10.0
    factor = float(np.clip(zoom * _LETTER_PX / max(letters, 1.0), 0.5, 4.0))
    img = np.where(text > 0, 0, 255).astype(np.uint8)
    img = cv2.resize(img, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC)
    return cv2.copyMakeBorder(img, 12, 12, 12, 12, cv2.BORDER_CONSTANT, value=255)


def scale_bar_readings(gray: np.ndarray, ocr=tesseract_ocr, max_bars: int = 4) -> list[ScaleReading]:
    """A reading for every bar candidate (longest first, at most `max_bars`) with a label next to it."""
    out = []
    for bar in find_bars(gray)[:max_bars]:
        if any(r.bar.gap and r.bar.x0 <= bar.x0 and bar.x1 <= r.bar.x1 and abs(r.bar.y0 - bar.y0) <= 1 for r in out):
            continue  # a piece of a split line already read whole
        x0, y0, x1, y1 = label_window(gray, bar)
        box, rows = gray[bar.y0 : bar.y1, bar.x0 : bar.x1], _bar_rows(gray, bar)
        level = float(np.median(box[rows] if rows.any() else box))
        crop = gray[y0:y1, x0:x1].copy()
        # the bar (and its anti-aliased rim) would read as a dash or a "|"
        ground = np.median(crop)
        rows = slice(max(0, bar.y0 - y0 - 2), bar.y1 - y0 + 2)
        for a, b in ([(bar.x0, bar.gap[0]), (bar.gap[1], bar.x1)] if bar.gap else [(bar.x0, bar.x1)]):
            crop[rows, max(0, a - x0 - 2) : b - x0 + 2] = ground
        for same, zoom in ((same, zoom) for same in (True, False) for zoom in _OCR_ZOOMS):
            labels = parse_scale_label(ocr(_prepared(crop, level, same, zoom)))
            labels = [lab for lab in labels if NM_PER_PX_RANGE[0] <= lab[1] / bar.length <= NM_PER_PX_RANGE[1]]
            if labels:
                label, nm, _ = labels[0]
                out.append(ScaleReading(nm / bar.length, bar, label, nm))
                break
    return out


def choose_reading(readings: list[ScaleReading]) -> tuple[ScaleReading | None, str | None]:
    """The reading, or None and why, when bars with labels disagree (more than 2 %): no guess."""
    if not readings:
        return None, None
    first = readings[0]
    others = [r for r in readings[1:] if abs(r.nm_per_px / first.nm_per_px - 1) > 0.02]
    if others:
        found = "; ".join(f"{r.label} over {r.bar.length} px" for r in [first, *others])
        return None, f"scale bar ambiguous ({found}): no scale taken from it"
    return first, None


def read_scale_bar(gray: np.ndarray, ocr=tesseract_ocr, max_bars: int = 4) -> ScaleReading | None:
    """The scale from the bars with a readable length label next to them, or None (none, or they disagree)."""
    return choose_reading(scale_bar_readings(gray, ocr, max_bars))[0]


def resolve_scale(m: Micrograph, option: float | None, reading: ScaleReading | None) -> tuple[float | None, str, str | None]:
    """(nm per px, source, warning or None) for one image: metadata, else scale bar, else option, else none."""
    if m.nm_per_px:
        warning = None
        if reading is not None and abs(reading.nm_per_px / m.nm_per_px - 1) > AGREEMENT:
            warning = (f"the metadata says {m.nm_per_px:.4g} nm/px but the scale bar ({reading.label} over "
                       f"{reading.bar.length} px) says {reading.nm_per_px:.4g} nm/px; using the metadata")  # fmt: skip
        return m.nm_per_px, "metadata", warning
    if reading is not None:  # OCR can misread a digit: say what was read, so a wrong number never passes unseen
        return reading.nm_per_px, "scale-bar", (f"pixel size {reading.nm_per_px:.4g} nm/px from the scale bar: "
                                                f"'{reading.label}' read over {reading.bar.length} px (OCR; check it)")
    if option:
        return float(option), "option", None
    return None, "none", None
