"""Mask-based columns, statistics and histograms for `detector predict` (report.py calls these)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from detector.measure import SizeSummary, particle_size, size_summary
from detector.predict import equivalent_diameter
from synthgen.annotations import Detections
from synthgen.classes import CLASS_NAMES

MASK_COLUMNS = [
    "mask_source", "area_px", "ecd_px", "feret_max_px", "feret_min_px", "rect_long_px", "rect_short_px",
    "aspect_ratio", "circularity", "touches_border", "size_px", "size_basis",
]  # fmt: skip
NM_COLUMNS = ["area_nm2", "ecd_nm", "feret_max_nm", "feret_min_nm", "size_nm"]


def mask_columns(dets: Sequence[Detections], measurements: Sequence[Sequence], scales: Sequence[float | None],
                 source: str) -> tuple[list[str], list[list]]:  # fmt: skip
    """Header and one row per detection (in detection_rows' order); a detection without a mask gets its
    box-based size (size_basis ``box``). `scales`: nm per px of each image (None: no scale, empty nm cells)."""
    with_nm = any(scales)
    header = MASK_COLUMNS + (NM_COLUMNS if with_nm else [])
    rows = []
    for det, ms, nm_per_px in zip(dets, measurements, scales):
        for c, m, box_size in zip(det.class_id, ms, equivalent_diameter(det)):
            name = CLASS_NAMES[int(c)]
            if m is None:
                size = float(box_size)
                row = ["box", None, None, None, None, None, None, None, None, None, size, "box"]
                nm = [None, None, None, None, size * nm_per_px if nm_per_px else None] if with_nm else []
            else:
                size = particle_size(m, name)
                row = [source, m.area_px, m.ecd_px, m.feret_max_px, m.feret_min_px, m.rect_long_px, m.rect_short_px,
                       m.aspect_ratio, m.circularity, int(m.touches_border), size, "mask"]  # fmt: skip
                s = nm_per_px or 0.0
                nm = [m.area_px * s * s, m.ecd_px * s, m.feret_max_px * s, m.feret_min_px * s, size * s] if nm_per_px else [None] * 5
                nm = nm if with_nm else []
            rows.append(row + nm)
    return header, rows


def class_sizes(dets, measurements, k: int, include_border: bool, factors: Sequence[float | None] | None = None) -> tuple[np.ndarray, int]:
    """Mask-based sizes of class k over every image, and how many border particles were left out.
    `factors`: per image, px -> output unit (nm per px), None to leave the image out; default px."""
    sizes, border = [], 0
    for det, ms, f in zip(dets, measurements, factors if factors is not None else [1.0] * len(dets)):
        if not f:
            continue
        for c, m in zip(det.class_id, ms):
            if int(c) != k or m is None:
                continue
            if m.touches_border and not include_border:
                border += 1
                continue
            sizes.append(particle_size(m, CLASS_NAMES[k]) * f)
    return np.array(sizes, np.float64), border


def mask_size_stats(class_sizes_out: Sequence[tuple[np.ndarray, int]], unit: str) -> list[SizeSummary]:
    """Per class (CLASS_NAMES order) statistics of `class_sizes`' output (already in `unit`)."""
    return [size_summary(name, sizes, border, unit) for name, (sizes, border) in zip(CLASS_NAMES, class_sizes_out)]


def save_mask_histograms(stats: Sequence[SizeSummary], class_sizes_out: Sequence[tuple[np.ndarray, int]], folder: Path) -> list[str]:
    """mask_sizes_<class>.png: histogram of the class's size (SIZE_DEFINITION) with mean, 95 % CI, median."""
    from detector.report import save_size_histogram

    written = []
    for k, (name, st, (sizes, _)) in enumerate(zip(CLASS_NAMES, stats, class_sizes_out)):
        title = f"{name}: n={st.count}" + (f", mean {st.mean:.1f} (95% CI {st.ci95_low:.1f}-{st.ci95_high:.1f}), median {st.median:.1f}" if st.count > 1 else "")
        title += f"; {st.border_excluded} at the border left out" if st.border_excluded else ""
        xlabel = f"{'edge length' if name == 'cube' else 'ECD'} from masks ({st.unit})"
        written.append(save_size_histogram(folder / f"mask_sizes_{name}.png", sizes, k, xlabel, title, fontsize=8))
    return written
