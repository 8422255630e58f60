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


# ------------------------------------------------------------------ `detector evaluate`: masks and sizes

MASK_METRIC_COLUMNS = [
    "set", "model", "checkpoint", "class", "mask_source", "mask_map50", "mask_map50_95", "box_map50_coco",
    "n_true", "n_pred", "mean_ecd_true_px", "mean_ecd_pred_px", "size_accuracy", "matched_size_accuracy",
    "n_matched", "ks", "border_true", "border_pred",
]  # fmt: skip


def mask_metric_rows(results) -> list[list]:
    """One row per set x model checkpoint x class (and "all" for the mAPs) of the results with mask scores."""
    rows = []
    for r in results:
        m = r.masks
        if m is None:
            continue
        for name in (*CLASS_NAMES, "all"):
            s = m.sizes.get(name)
            if s is None:
                sizes = [None] * 10
            elif s.n_true == 0 and s.n_pred == 0:
                continue
            else:
                sizes = [s.n_true, s.n_pred, s.mean_true, s.mean_pred, s.accuracy, s.matched_accuracy, s.n_matched, s.ks,
                         s.border_true, s.border_pred]  # fmt: skip
            rows.append([r.set_name, r.spec.model, r.spec.checkpoint, name, m.source, m.map50.get(name), m.map50_95.get(name),
                         m.box_map50.get(name), *sizes])  # fmt: skip
    return rows


def save_size_comparisons(results, folder: Path) -> list[str]:
    """sizes_<set>_<model>.png: per class the labelled and the predicted ECD histograms on shared bins."""
    from detector.report import _plt, _safe, save_figure

    plt = _plt()
    written = []
    for r in results:
        m = r.masks
        if m is None:
            continue
        shown = [s for s in m.sizes.values() if s.n_true or s.n_pred]
        if not shown:
            continue
        fig, axes = plt.subplots(1, len(shown), figsize=(5 * len(shown), 3.6), squeeze=False)
        for ax, s in zip(axes[0], shown):
            both = np.concatenate([s.true_sizes, s.pred_sizes])
            bins = np.linspace(both.min(), both.max() + 1e-9, min(30, max(6, len(both) // 8)) + 1)
            ax.hist(s.true_sizes, bins=bins, alpha=0.55, color="tab:grey", edgecolor="black", label=f"labelled (n={s.n_true})")
            ax.hist(s.pred_sizes, bins=bins, histtype="step", linewidth=2, color="tab:blue" if s.name == "cube" else "tab:orange",
                    label=f"{m.source} masks (n={s.n_pred})")  # fmt: skip
            ax.set_xlabel("ECD (px)")
            ax.set_ylabel("particles")
            ax.set_title(f"{r.set_name} {s.name}: accuracy {s.accuracy:.3f}, KS {s.ks:.3f}", fontsize=9)
            ax.legend(fontsize=7)
        name = f"sizes_{_safe(r.set_name)}_{_safe(r.spec.model)}_{_safe(r.spec.checkpoint)}.png"
        save_figure(fig, folder / name)
        written.append(name)
    return written


def mask_markdown(results, plots: Sequence[str] = ()) -> list[str]:
    """report.md's section on masks and sizes (empty when no set had ground-truth masks)."""
    from detector.report import _num

    rows = mask_metric_rows(results)
    if not rows:
        return []
    border = any(r.masks is not None and r.masks.include_border for r in results)
    lines = [
        "", "## Masks and sizes", "",
        "Mask AP by pycocotools `segm` (every detection), against the set's instance masks (`masks/`) or polygons; "
        "box AP@0.5 by pycocotools on the same detections beside it. Sizes: ECD sqrt(4·area/π) of every particle "
        "(detections with confidence ≥ --conf), "
        + ("border particles included" if border else "particles touching the image border left out")
        + "; size accuracy = mean predicted / mean labelled ECD over the two populations (Okunev 2020, Table 4), "
        "matched = the same over box-IoU ≥ 0.5 pairs; KS = two-sample Kolmogorov–Smirnov distance.", "",
        "| set | model | checkpoint | class | masks | mask AP50 | mask AP50-95 | box AP50 | labelled | predicted | mean ECD labelled | mean ECD predicted | size accuracy | matched | KS |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip

    def f(v, d=3):
        return "–" if v is None else _num(float(v), d)

    for r in rows:
        lines.append("| " + " | ".join([*map(str, r[:5]), f(r[5]), f(r[6]), f(r[7]), "–" if r[8] is None else str(r[8]),
                                         "–" if r[9] is None else str(r[9]), f(r[10], 1), f(r[11], 1), f(r[12]), f(r[13]), f(r[15])]) + " |")  # fmt: skip
    for r in results:
        if r.masks is not None and r.masks.refine:
            c = r.masks.refine
            lines.append(f"\nGaussian refinement (Okunev 2020, Eq. 2-5), set {r.set_name}, {r.spec.model} {r.spec.checkpoint}: "
                         f"{c['refined']} contours refined, {c['failed']} failed and kept their mask.")  # fmt: skip
    lines += [""] + [f"![{p}]({p})" for p in plots]
    return lines
