"""Find the information bar (text, scale bar, acquisition data) at the bottom of an SEM micrograph.

SEM software appends a strip below the micrograph: a flat background (black, white or grey) with
text on it, usually separated from the image by a straight, full-width edge. We look for a bottom
band whose rows are dominated by one grey level that is almost absent just above the band.
The test is conservative on purpose: when in doubt we report no bar, because cropping real image
content (and its labels) is worse than leaving a strip in.
"""

from __future__ import annotations

import numpy as np

# The bar's first row is mostly its background level, and so is the bar on average (text is sparse) ...
_BAR_ROW_FRACTION = 0.5
_BAR_MEAN_FRACTION = 0.5
# ... at least one bar row (a margin above/below the text) is nearly all background ...
_FLAT_ROW_FRACTION = 0.95
# ... and the image just above the bar barely contains that level (a straight, full-width edge).
_ABOVE_ROW_FRACTION = 0.25
_ABOVE_BAND_FRACTION = 0.30
_MAX_BAR_HEIGHT = 0.35  # of the image height
_MIN_BAR_ROWS = 4
_MAX_SEPARATOR_ROWS = 3  # thin uniform lines drawn between image and bar
_TOLERANCE = 8  # grey levels: JPEG ringing and anti-aliased text around the bar background


def to_gray8(image: np.ndarray) -> np.ndarray:
    """A 2-D uint8 view of any grey/colour, 8/16-bit/float image (colour -> channel mean)."""
    a = np.asarray(image)
    if a.ndim == 3:
        a = a[..., :3].mean(axis=2) if a.shape[2] >= 3 else a[..., 0]
    a = a.astype(np.float64)
    if np.issubdtype(np.asarray(image).dtype, np.integer) and np.asarray(image).dtype.itemsize == 1:
        return a.astype(np.uint8)
    lo, hi = float(a.min(initial=0.0)), float(a.max(initial=0.0))
    if hi <= lo:
        return np.zeros(a.shape, np.uint8)
    return np.round((a - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def _background_level(bottom: np.ndarray) -> int:
    """The dominant grey level of the bottom rows (histogram peak, smoothed over the tolerance)."""
    hist = np.bincount(bottom.ravel(), minlength=256).astype(np.float64)
    kernel = np.ones(2 * _TOLERANCE + 1)
    return int(np.argmax(np.convolve(hist, kernel, mode="same")))


def _level_fraction(gray: np.ndarray, level: int) -> np.ndarray:
    """Per row, the fraction of pixels within the tolerance of ``level``."""
    return (np.abs(gray.astype(np.int16) - level) <= _TOLERANCE).mean(axis=1)


def _is_uniform(row: np.ndarray) -> bool:
    return bool((np.abs(row.astype(np.int16) - int(np.median(row))) <= _TOLERANCE).mean() >= _FLAT_ROW_FRACTION)


def find_info_bar(image: np.ndarray) -> int | None:
    """Row index where the information bar starts (the height to keep), or None when there is no bar."""
    gray = to_gray8(image)
    if gray.ndim != 2 or gray.shape[0] < 4 * _MIN_BAR_ROWS or gray.shape[1] < 8:
        return None
    height = gray.shape[0]
    level = _background_level(gray[-max(8, height // 30) :])
    frac = _level_fraction(gray, level)
    # Suffix means of frac give the bar's mean background fraction for every candidate top row.
    suffix_mean = np.cumsum(frac[::-1])[::-1] / np.arange(height, 0, -1)
    suffix_max = np.maximum.accumulate(frac[::-1])[::-1]
    lowest = height - int(_MAX_BAR_HEIGHT * height)
    # The highest qualifying edge wins, so a bar with several text lines is removed whole.
    for top in range(max(lowest, 4), height - _MIN_BAR_ROWS + 1):
        if frac[top] < _BAR_ROW_FRACTION or frac[top - 1] > _ABOVE_ROW_FRACTION:
            continue
        if suffix_mean[top] < _BAR_MEAN_FRACTION or suffix_max[top] < _FLAT_ROW_FRACTION:
            continue
        band = max(4, min(height - top, top // 4))
        if frac[top - band : top].mean() > _ABOVE_BAND_FRACTION:
            continue
        return _absorb_separator(gray, top)
    return None


def _absorb_separator(gray: np.ndarray, top: int) -> int:
    """Move ``top`` up over a thin uniform line drawn between image and bar (a thick one is image content)."""
    lines = 0
    while lines <= _MAX_SEPARATOR_ROWS and top - lines > 0 and _is_uniform(gray[top - lines - 1]):
        lines += 1
    return top - lines if lines <= _MAX_SEPARATOR_ROWS else top
