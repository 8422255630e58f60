"""Pixel size from the scale bar drawn on a micrograph, and the choice of each image's scale.

The bar: a solid horizontal bar of one extreme grey (white or black), 4 to 60 % of the image wide,
at least 2.5 times longer than thick, allowing end ticks (``|----|``) and a label in a gap of the line;
when no white or black bar has a label, mid-grey bars 2 px or thicker (the hairline of a dark vendor
info bar). A piece of a split line whose other piece was not found is no bar. Its label is a number
and a length unit ("200 nm", "1 µm", "3.0 um"): text lines are found near the bar (letter-like parts
on the bar's own ground), the nearest OCR'd one by one (Tesseract through pytesseract); the whole
window as a block is the fallback. nm per px = label length / bar length in px.
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
_BRIGHT, _DARK = 200, 55  # grey levels of a white / black bar
# bar masks tried: the extremes first, then mid greys (a grey hairline in a dark vendor info bar)
_BAR_THRESHOLDS = ((True, _BRIGHT), (False, _DARK), (True, 128), (False, 100))
_ROUND_MANTISSAS = (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8)
NM_PER_PX_RANGE = (1e-3, 1e4)  # electron/probe micrographs: 1 pm to 10 µm per pixel; outside is a misread
_LETTER_PX = 32  # Tesseract reads letters about this tall best
_OCR_ZOOMS = (1.0, 0.67)  # relative to the zoom that brings the label's letters to _LETTER_PX (then a smaller one)
_BLOCK_ZOOMS = _OCR_ZOOMS[:1]  # the whole-window read is the slow fallback: one zoom
_LINE_LETTER_PX = (32, 48, 24)  # letter heights a text line is OCR'd at, in turn
_MAX_LINES = 2
_MAX_MID_BARS = 2  # mid-grey bar candidates read besides the white and black ones  # text lines nearest a bar that are OCR'd
# a number (not the tail of one: ".5 µm" is a cut "2.5 µm"), then a length unit; OCR reads µ as u or a Greek mu
_LABEL = re.compile(r"(?<![\d.,])(\d+(?:[.,]\d+)?)\s*(nm|nrn|nir|[uµμ]m|mm|pm|Å)(?![a-z])", re.IGNORECASE)
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
    threshold: int | None = None  # the grey level its mask was cut at (None: _BRIGHT or _DARK)

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
    """Scale-bar candidates in a uint8 grey image: white or black ones longest first, then mid-grey ones.

    A horizontal opening keeps only runs of bar colour at least the shortest bar long: letters touching
    the bar and end ticks fall away, the bar stays a solid rectangle (its ticks sit at its ends, so the
    length between the outer edges is unchanged)."""
    import cv2

    h, w = gray.shape
    min_len = int(max(_MIN_BAR_PX, _MIN_BAR_FRACTION * w)) | 1  # odd: an even kernel shifts the opened bar 1 px
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (min_len, 1))
    bars: list[ScaleBar] = []
    for bright, thr in _BAR_THRESHOLDS:
        mask = ((gray >= thr) if bright else (gray <= thr)).astype(np.uint8)
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
            if bh < 2 and thr not in (_BRIGHT, _DARK):  # a 1-px mid-grey line: the anti-aliased rim of a bar or an edge
                continue
            bar = ScaleBar(x, y, x + bw, y + bh, bright, None, thr)
            if not any(_same_bar(bar, b) for b in bars):  # a mid-grey mask finds the extreme bars again
                bars.append(bar)
    # the extreme greys first: a mid-grey mask also cuts stripes out of image content, which should not
    # push a real white or black bar out of the few candidates read
    return sorted(_joined(bars), key=lambda b: (b.threshold not in (_BRIGHT, _DARK), -b.length))


def _same_bar(a: ScaleBar, b: ScaleBar) -> bool:
    """One bar found at two thresholds: one polarity, overlapping rows, 80 % of the shorter's columns shared."""
    rows = min(a.y1, b.y1) - max(a.y0, b.y0)
    cols = min(a.x1, b.x1) - max(a.x0, b.x0)
    return a.bright == b.bright and rows > 0 and cols >= 0.8 * min(a.length, b.length)


def _joined(bars: list[ScaleBar]) -> list[ScaleBar]:
    """Two collinear pieces of one thickness with a gap shorter than themselves also as one bar:
    the |--- 1 µm ---| style, the label in the middle of the line (the pieces stay candidates too)."""
    out = list(bars)
    for a in bars:
        for b in bars:
            same_line = a.bright == b.bright and abs(a.y0 - b.y0) <= 1 and abs(a.y1 - b.y1) <= 1
            if same_line and a.x1 < b.x0 and b.x0 - a.x1 < min(a.length, b.length) and abs(a.length - b.length) <= 0.2 * max(a.length, b.length):
                out.append(ScaleBar(a.x0, min(a.y0, b.y0), b.x1, max(a.y1, b.y1), a.bright, (a.x1, b.x0), a.threshold))
    return out


def _bar_rows(gray: np.ndarray, bar: ScaleBar) -> np.ndarray:
    """The bar's solid rows within its box (its ticks left out)."""
    box = gray[bar.y0 : bar.y1, bar.x0 : bar.x1]
    thr = bar.threshold if bar.threshold is not None else (_BRIGHT if bar.bright else _DARK)
    mask = box >= thr if bar.bright else box <= thr
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


def _local_ground(gray: np.ndarray, bar: ScaleBar) -> float:
    """The grey the bar stands on: the median of a band around it. Not the label window's median, which
    image content can set, or which misses the label box a bar is drawn in."""
    h, w = gray.shape
    pad = max(3, 2 * (bar.y1 - bar.y0))
    y0, y1, x0, x1 = max(0, bar.y0 - pad), min(h, bar.y1 + pad), max(0, bar.x0 - pad), min(w, bar.x1 + pad)
    band = gray[y0:y1, x0:x1]
    inside = np.zeros(band.shape, bool)
    inside[bar.y0 - y0 : bar.y1 - y0, bar.x0 - x0 : bar.x1 - x0] = True
    return float(np.median(band[~inside]))


def text_lines(text: np.ndarray, inner: tuple[bool, bool, bool, bool] = (True, True, True, True)) -> list[tuple[int, int, int, int, float]]:
    """Lines of letter-like parts in a binary crop, as (x0, y0, x1, y1, letter height), in no order.

    A letter: a connected part not cut by an edge of the crop that lies inside the image (`inner`: left,
    top, right, bottom; image content running out of the window is not text, a label at the image's
    border is), 5 px or more tall, at most 8 times wider than tall (letters run together in a blurred
    label). Letters of similar height whose rows overlap and whose gaps are under 1.5 letter heights form a
    line; a line has two parts or more. Dots and thin strokes in the line's box go with it (the crop is
    cut from the grey image)."""
    import cv2

    h, w = text.shape
    n, _, stats, _ = cv2.connectedComponentsWithStats(text.astype(np.uint8), connectivity=8)
    parts = []
    for x, y, bw, bh, area in (tuple(int(v) for v in stats[k]) for k in range(1, n)):
        cut = (inner[0] and x == 0) or (inner[1] and y == 0) or (inner[2] and x + bw == w) or (inner[3] and y + bh == h)
        if not cut and bh >= 5 and area >= 10 and bw <= 8 * bh and bh <= 0.6 * h:
            parts.append((x, y, bw, bh))
    lines: list[list] = []  # [x0, y0, x1, y1, heights]
    for x, y, bw, bh in sorted(parts):
        for ln in lines:
            lh = float(np.median(ln[4]))
            overlap = min(y + bh, ln[3]) - max(y, ln[1])
            if overlap > 0.5 * min(bh, lh) and 0.4 < bh / lh < 2.5 and x - ln[2] < 1.5 * lh:
                ln[0], ln[1], ln[2], ln[3] = min(ln[0], x), min(ln[1], y), max(ln[2], x + bw), max(ln[3], y + bh)
                ln[4].append(bh)
                break
        else:
            lines.append([x, y, x + bw, y + bh, [bh]])
    out = []
    for x0, y0, x1, y1, hs in lines:
        lh = float(np.median(hs))
        if len(hs) >= 2 and not _open_left(stats[1:], x0, y0, y1, lh):
            out.append((x0, y0, x1, y1, lh))
    return out


def _open_left(stats: np.ndarray, x0: int, y0: int, y1: int, lh: float) -> bool:
    """Something letter-sized or bigger just left of a line, in its rows, that is not one of its letters
    (a digit merged with noise or image content): the line's start is uncertain, and "2.5 µm" read as
    "5 µm" would be a wrong number, so such a line is not read."""
    x, y, bw, bh, area = (stats[:, i] for i in range(5))
    rows = np.minimum(y + bh, y1) - np.maximum(y, y0)
    near = (x + bw <= x0) & (x + bw >= x0 - 1.5 * lh) & (rows > 0.5 * lh)
    return bool(np.any(near & (bh >= 0.5 * lh) & (area >= 0.1 * lh * lh)))


def _line_image(crop: np.ndarray, line: tuple, thr: float, bright_text: bool, letter_px: int) -> np.ndarray:
    """One text line for OCR, black on white: the grey crop around it resized so its letters measure
    `letter_px`, then thresholded (resizing grey, not the binary mask, keeps the strokes' anti-aliased
    shape: thin or bold letters stay apart). Parts cut by the margin's edge are clutter, dropped."""
    import cv2

    x0, y0, x1, y1, lh = line
    m = int(0.4 * lh) + 2
    sub = crop[max(0, y0 - m) : y1 + m, max(0, x0 - m) : x1 + m].astype(np.float32)
    f = float(np.clip(letter_px / max(lh, 1.0), 0.5, 6.0))
    sub = cv2.resize(sub, None, fx=f, fy=f, interpolation=cv2.INTER_CUBIC if f > 1 else cv2.INTER_AREA)
    text = ((sub >= thr) if bright_text else (sub <= thr)).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(text, connectivity=8)
    hh, ww = text.shape
    x, y, bw, bh = (stats[:, i] for i in range(4))
    cut = np.flatnonzero((x == 0) | (y == 0) | (x + bw == ww) | (y + bh == hh))
    small = (bh < 0.35 * letter_px) & (bw < 0.35 * letter_px)
    letters = np.setdiff1d(np.flatnonzero(~small), np.append(cut, 0))
    if len(letters):  # a speck is noise unless it sits on the baseline between letters (a decimal point)
        base = float(np.median(y[letters] + bh[letters]))
        left, right = x[letters].min(), (x[letters] + bw[letters]).max()
        stray = small & ((np.abs(y + bh - base) > 0.2 * letter_px) | (x < left) | (x + bw > right))
        cut = np.union1d(cut, np.flatnonzero(stray))
    text[np.isin(labels, cut[cut > 0])] = 0
    img = np.where(text > 0, 0, 255).astype(np.uint8)
    return cv2.copyMakeBorder(img, 12, 12, 12, 12, cv2.BORDER_CONSTANT, value=255)


def tesseract_line(img: np.ndarray) -> str:
    """Text of one line image (Tesseract's single-line mode, psm 7)."""
    import pytesseract

    return pytesseract.image_to_string(img, config="--psm 7")


def _nearest_lines(lines: list, bar_box: tuple[int, int, int, int]) -> list:
    """Lines by their distance to the bar (rows and columns apart; 0 where they overlap), widest first on ties."""
    bx0, by0, bx1, by1 = bar_box

    def gap(ln):
        dy = max(0, by0 - ln[3], ln[1] - by1)
        dx = max(0, bx0 - ln[2], ln[0] - bx1)
        return dy + dx, -(ln[2] - ln[0])

    return sorted(lines, key=gap)


def _usable(labels: list, bar: ScaleBar) -> list:
    return [lab for lab in labels if NM_PER_PX_RANGE[0] <= lab[1] / bar.length <= NM_PER_PX_RANGE[1]]


def scale_bar_readings(gray: np.ndarray, ocr=tesseract_ocr, max_bars: int = 4, ocr_line=tesseract_line) -> list[ScaleReading]:
    """A reading for every bar candidate with a label next to it: the longest `max_bars` white or black
    ones; when none has a label, the longest `_MAX_MID_BARS` mid-grey ones.

    The label is looked for first as a text line near the bar (`text_lines`, nearest first, each OCR'd
    on its own at a few letter sizes); then, when no line reads, the whole window is OCR'd as a block."""
    bars = find_bars(gray)
    extreme = [b for b in bars if b.threshold in (_BRIGHT, _DARK)]
    out = _readings(gray, extreme[:max_bars], ocr, ocr_line)
    # mid-grey candidates only when no white or black bar has a label: strokes of a noisy label pass a mid mask
    return out or _readings(gray, [b for b in bars if b not in extreme][:_MAX_MID_BARS], ocr, ocr_line)


def _readings(gray: np.ndarray, bars: list[ScaleBar], ocr, ocr_line) -> list[ScaleReading]:
    out = []
    for bar in bars:
        if any(r.bar.gap and r.bar.x0 <= bar.x0 and bar.x1 <= r.bar.x1 and abs(r.bar.y0 - bar.y0) <= 1 for r in out):
            continue  # a piece of a split line already read whole
        x0, y0, x1, y1 = label_window(gray, bar)
        box, rows = gray[bar.y0 : bar.y1, bar.x0 : bar.x1], _bar_rows(gray, bar)
        level = float(np.median(box[rows] if rows.any() else box))
        crop = gray[y0:y1, x0:x1].copy()
        # the bar (and its anti-aliased rim) would read as a dash or a "|"
        ground = _local_ground(gray, bar)
        if _continues(gray, bar, level, ground):
            continue
        rows = slice(max(0, bar.y0 - y0 - 2), bar.y1 - y0 + 2)
        for a, b in ([(bar.x0, bar.gap[0]), (bar.gap[1], bar.x1)] if bar.gap else [(bar.x0, bar.x1)]):
            crop[rows, max(0, a - x0 - 2) : b - x0 + 2] = ground
        bar_box, inner = (bar.x0 - x0, bar.y0 - y0, bar.x1 - x0, bar.y1 - y0), (x0 > 0, y0 > 0, x1 < gray.shape[1], y1 < gray.shape[0])
        reading, lines = _read_lines(crop, bar, bar_box, inner, level, ground, ocr_line)
        if reading is None and lines:  # no text line near the bar: no label for the block read either
            crop = gray[y0:y1, x0:x1].copy()
            for a, b in ([(bar.x0, bar.gap[0]), (bar.gap[1], bar.x1)] if bar.gap else [(bar.x0, bar.x1)]):
                crop[rows, max(0, a - x0 - 2) : b - x0 + 2] = np.median(crop)
            for same, zoom in ((same, zoom) for same in (True, False) for zoom in _BLOCK_ZOOMS):
                labels = _usable(parse_scale_label(ocr(_prepared(crop, level, same, zoom))), bar)
                if labels:
                    label, nm, _ = labels[0]
                    reading = ScaleReading(nm / bar.length, bar, label, nm)
                    break
        if reading is not None:
            out.append(reading)
    return out


def _continues(gray: np.ndarray, bar: ScaleBar, level: float, ground: float) -> bool:
    """The bar's line goes on, as thin as the bar, past a gap on one side: one piece of a split
    ``|-- label --|`` line whose other piece was not found, so its length is not the scale's."""
    h, w = gray.shape
    like = np.abs(gray.astype(np.float32) - level) < 0.5 * abs(level - ground)
    mid, above, below = (bar.y0 + bar.y1) // 2, max(0, bar.y0 - 2), min(h - 1, bar.y1 + 1)
    thin = like[mid] & ~like[above] & ~like[below]
    reach = 2 * bar.length  # the label's gap may be as long as the piece
    left, right = thin[max(0, bar.x0 - reach) : max(0, bar.x0 - 3)], thin[min(w, bar.x1 + 3) : bar.x1 + reach]
    return max(_longest_run(left), _longest_run(right)) >= 0.3 * bar.length


def _read_lines(crop, bar: ScaleBar, bar_box, inner, level: float, ground: float, ocr_line) -> tuple[ScaleReading | None, int]:
    """The first label read from the text lines nearest the bar (and how many lines were tried): text of
    the bar's grey, then of the opposite extreme (a white bar over black text), each thresholded halfway
    to the bar's ground. The nearest line is tried at every letter size, the next at the first only."""
    tried = 0
    for same in (True, False):
        bright_text = (level > ground) == same
        text_level = level if same else (0.0 if level > ground else 255.0)
        thr = (text_level + ground) / 2
        mask = crop >= thr if bright_text else crop <= thr
        for i, line in enumerate(_nearest_lines(text_lines(mask, inner), bar_box)[:_MAX_LINES]):
            tried += 1
            for letter_px in _LINE_LETTER_PX if i == 0 else _LINE_LETTER_PX[:1]:
                labels = _usable(parse_scale_label(ocr_line(_line_image(crop, line, thr, bright_text, letter_px))), bar)
                if labels:
                    label, nm, _ = labels[0]
                    return ScaleReading(nm / bar.length, bar, label, nm), tried
    return None, tried


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
