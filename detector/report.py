"""Everything evaluate/predict/baseline write: CSV, JSON, Markdown, plots (matplotlib Agg), overlays.

The only module that draws. Files are written into a staging folder inside the destination and moved
into place at the end (`staged_output`), so a failure never leaves half a report behind.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from synthgen.annotations import Detections, Sample
from detector.evaluate import EvalReport, EvalResult, coco_ground_truth
from detector.metrics import match_image
from detector.predict import SizeStats, equivalent_diameter, size_stats
from synthgen.classes import CLASS_NAMES
from synthgen.atomic import OwnedStaging, remove_dead_staging
from synthgen.errors import InputError

METRIC_COLUMNS = [
    "set", "model", "checkpoint", "batches", "epoch", "class", "iou", "map50", "map50_95",
    "precision", "recall", "tp", "fp", "fn", "labelled", "detected_pct", "confused",
    "conf", "iou_threshold", "rule",
]  # fmt: skip

COLOURS = {  # overlay colours (RGB)
    "TP": (0, 200, 0),
    "FP": (230, 0, 0),
    "FN": (40, 90, 255),
    "wrong class": (255, 210, 0),
}
CLASS_COLOURS = [(255, 140, 0), (0, 200, 255), (200, 0, 255), (120, 255, 0)]


# ------------------------------------------------------------------ staging


STAGING_NAME = "staging"  # staging folders inside `out` are `.staging.partial-*` (synthgen.atomic's naming)


@contextlib.contextmanager
def staged_output(out: str | Path) -> Iterator[Path]:
    """A temp folder inside `out`; on success its entries replace those of `out`, on error it goes.

    The temp folder is a ``synthgen.atomic.OwnedStaging`` (a locked owner file), so a later run
    removes it when its writer was killed, exactly as `synthgen generate` does with its own.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError("--out must be a folder, but this is a file", out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except PermissionError:
        raise InputError("cannot write here (permission denied)", out) from None
    remove_dead_staging(out / STAGING_NAME)
    staging = OwnedStaging(out / STAGING_NAME)
    tmp = staging.path
    try:
        yield tmp
    except BaseException:
        staging.discard()
        raise
    staging.release()
    for entry in sorted(tmp.iterdir()):
        dst = out / entry.name
        if dst.is_dir() and not dst.is_symlink():
            shutil.rmtree(dst)
        os.replace(entry, dst)
    tmp.rmdir()


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.6g}"
    return str(v)


def _finite(v: float) -> float | None:
    """JSON has no NaN: undefined statistics (fewer than two particles) become null."""
    return None if v is None or math.isnan(v) else float(v)


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence]) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for r in rows:
            w.writerow([_fmt(v) for v in r])


# ------------------------------------------------------------------ evaluation report


def metric_rows(report: EvalReport) -> list[list]:
    """One row per set x model checkpoint x class (each class, "all", and class-agnostic "any")."""
    rows = []
    for r in report.results:
        for m in r.metrics.rows():
            rows.append(
                [
                    r.set_name, r.spec.model, r.spec.checkpoint, r.spec.batches, r.spec.epoch, m.name,
                    m.iou, m.ap50, r.map50_95.get(m.name, float("nan")), m.precision, m.recall,
                    m.tp, m.fp, m.fn, m.labelled, m.detected_pct, m.confused,
                    report.conf, report.iou, report.rule,
                ]
            )  # fmt: skip
    return rows


def _pct(v: float) -> str:
    return "–" if math.isnan(v) else f"{100 * v:.1f}"


def _num(v: float, digits: int = 3) -> str:
    return "–" if isinstance(v, float) and math.isnan(v) else f"{v:.{digits}f}"


def _final_results(report: EvalReport) -> list[EvalResult]:
    """Per set and model, the row that stands for the finished model: last, else best, else the checkpoint with the most batches."""
    picked: dict[tuple[str, str], EvalResult] = {}
    rank = {"last": 0, "best": 1}
    for r in report.results:
        key = (r.set_name, r.spec.model)
        old = picked.get(key)
        if old is None or rank.get(r.spec.checkpoint, 2) < rank.get(old.spec.checkpoint, 2) or (
            r.spec.checkpoint not in rank and old.spec.checkpoint not in rank and (r.spec.batches or 0) > (old.spec.batches or 0)
        ):
            picked[key] = r
    return list(picked.values())


def warnings_text(report: EvalReport) -> dict[str, str]:
    """Per set with warnings while reading it: ``"1 label skipped, 2 images skipped"``."""
    from synthgen.warnings_log import summarize

    out = {name: summarize(counts) for name, counts in getattr(report, "warnings", {}).items()}
    return {name: text for name, text in out.items() if text}


def markdown_report(report: EvalReport, plots: Sequence[str] = ()) -> str:
    """report.md: settings, a side-by-side summary of every model per set, and detailed tables."""
    set_names = list(report.sets)
    models = list(dict.fromkeys(r.spec.model for r in report.results))
    final = {(r.set_name, r.spec.model): r for r in _final_results(report)}
    rule = "centre inside a labelled box" if report.rule == "center" else f"IoU ≥ {report.iou:g}"
    lines = [
        "# Detection report",
        "",
        f"Matching: {rule}, greedy by confidence (Cartucho/mAP, Pascal VOC). Counts, IoU, precision and "
        f"recall use detections with confidence ≥ {report.conf:g}; mAP@0.5 (VOC all-point) and "
        "mAP@[.5:.95] (pycocotools) use every detection. IoU is the mean over matched detections; "
        "detected % = TP / labelled (the paper's “correctly detected NPs”).",
        "",
        "| set | images | " + " | ".join(f"{c} labelled" for c in report.class_names) + " |",
        "|---|---|" + "---|" * len(report.class_names),
    ]
    for s in set_names:
        counts = [sum(int((x.gt.class_id == k).sum()) for x in report.sets[s]) for k in range(len(report.class_names))]
        lines.append(f"| {s} | {len(report.sets[s])} | " + " | ".join(map(str, counts)) + " |")
    skipped = warnings_text(report)
    if skipped:
        lines += ["", "Flaws of the data, warned about while reading the sets and left out (`--strict` makes them errors): "
                  + "; ".join(f"set {s}: {text}" for s, text in skipped.items()) + "."]  # fmt: skip
    lines += ["", "## Summary (final checkpoint of each model)", ""]
    head = "| model | " + " | ".join(f"{s}: IoU | {s}: mAP@0.5 | {s}: mAP@[.5:.95] | {s}: detected %" for s in set_names) + " |"
    lines += [head, "|---|" + "---|---|---|---|" * len(set_names)]
    for m in models:
        cells = []
        for s in set_names:
            r = final.get((s, m))
            if r is None:
                cells += ["–"] * 4
                continue
            o = r.metrics.overall
            cells += [_num(o.iou), _num(o.ap50), _num(r.map50_95.get("all", float("nan"))), _pct(o.recall)]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += ["", "## Correctly detected particles per class (final checkpoints)", ""]
    lines += ["| set | model | class | labelled | TP | FP | FN | detected % | precision % | wrong class |", "|---|---|---|---|---|---|---|---|---|---|"]
    for s in set_names:
        for m in models:
            r = final.get((s, m))
            if r is None:
                continue
            for c in (*r.metrics.per_class.values(), r.metrics.overall, r.metrics.agnostic):
                if c.labelled == 0 and c.tp + c.fp == 0:
                    continue
                lines.append(
                    f"| {s} | {m} | {c.name} | {c.labelled} | {c.tp} | {c.fp} | {c.fn} | {_pct(c.recall)} | {_pct(c.precision)} | {c.confused} |"
                )
    if any(r.spec.checkpoint not in ("last", "best", "-") for r in report.results):
        lines += ["", "## Every checkpoint (all classes)", ""]
        lines += ["| set | model | checkpoint | batches | IoU | mAP@0.5 | mAP@[.5:.95] | P | R | TP | FP | FN |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in report.results:
            o = r.metrics.overall
            lines.append(
                f"| {r.set_name} | {r.spec.model} | {r.spec.checkpoint} | {r.spec.batches if r.spec.batches is not None else ''} | "
                f"{_num(o.iou)} | {_num(o.ap50)} | {_num(r.map50_95.get('all', float('nan')))} | {_num(o.precision)} | {_num(o.recall)} | {o.tp} | {o.fp} | {o.fn} |"
            )
    lines += ["", "Class `any` merges the classes (a particle found whatever its class); “wrong class” counts labelled particles of this class found by a detection of the other class."]
    if plots:
        lines += ["", "## Training curves", ""] + [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_curves(report: EvalReport, folder: Path) -> list[str]:
    """IoU, mAP@0.5 and mAP@[.5:.95] against training batches, one PNG per set, one line per model (paper Figs 8-10)."""
    plt = _plt()
    written = []
    for s in report.sets:
        rows = [r for r in report.results if r.set_name == s and r.spec.batches is not None and r.spec.checkpoint not in ("best", "last")]
        if not rows:
            continue
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
        for model in dict.fromkeys(r.spec.model for r in rows):
            pts = sorted((r.spec.batches, r) for r in rows if r.spec.model == model)
            x = [b for b, _ in pts]
            axes[0].plot(x, [r.metrics.overall.iou for _, r in pts], "o-", label=model)
            axes[1].plot(x, [r.metrics.overall.ap50 for _, r in pts], "o-", label=model)
            axes[2].plot(x, [r.map50_95.get("all", float("nan")) for _, r in pts], "o-", label=model)
        for ax, title in zip(axes, ("mean IoU of matched detections", "mAP@0.5 (VOC)", "mAP@[.5:.95] (COCO)")):
            ax.set_xlabel("training batches")
            ax.set_title(f"set {s}: {title}", fontsize=10)
            ax.set_ylim(0, 1)
            ax.grid(alpha=0.3)
        axes[1].legend(fontsize=8)
        name = f"curves_{_safe(s)}.png"
        save_figure(fig, folder / name)
        written.append(name)
    return written


def save_figure(fig, path: Path) -> None:
    """Every report figure's layout and resolution; the figure is closed (plots are made in loops)."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _load_rgb(path: Path) -> Image.Image:
    """The image as the model saw it (synthgen.readers: 16-bit stretched, vendor formats), as RGB."""
    from synthgen.readers import as_bgr, read_micrograph

    return Image.fromarray(np.ascontiguousarray(as_bgr(read_micrograph(path).image)[..., ::-1]))


def _legend(draw: ImageDraw.ImageDraw, items: Sequence[tuple[str, tuple]], scale: int) -> None:
    font = ImageFont.load_default()
    pad, sw = 4 * scale, 10 * scale
    y = pad
    width = max(draw.textlength(t, font=font) for t, _ in items) + sw + 3 * pad
    draw.rectangle([0, 0, width, pad + len(items) * (sw + pad)], fill=(0, 0, 0))
    for text, colour in items:
        draw.rectangle([pad, y, pad + sw, y + sw], outline=colour, width=max(1, scale))
        draw.text((2 * pad + sw, y), text, fill=(255, 255, 255), font=font)
        y += sw + pad


def overlay_image(sample: Sample, pred: Detections, conf: float, iou: float, rule: str) -> Image.Image:
    """The image with TP green, FP red, wrong-class detections yellow, missed labels (FN) blue."""
    im = _load_rgb(sample.image_path)
    pred = pred if pred.confidence is None else pred[pred.confidence >= conf]
    match = match_image(sample.gt, pred, iou, rule)
    agnostic = match_image(sample.gt, pred, iou, rule, class_agnostic=True)
    draw = ImageDraw.Draw(im)
    lw = max(1, round(max(im.size) / 400))
    for j, box in enumerate(sample.gt.xyxy):
        if not match.gt_matched[j]:
            draw.rectangle(box.tolist(), outline=COLOURS["FN"], width=lw)
    for i, box in enumerate(pred.xyxy):
        kind = "TP" if match.pred_gt[i] >= 0 else ("wrong class" if agnostic.pred_gt[i] >= 0 else "FP")
        draw.rectangle(box.tolist(), outline=COLOURS[kind], width=lw)
    _legend(draw, [(f"{k}", c) for k, c in COLOURS.items()], lw)
    return im


def save_overlays(report: EvalReport, folder: Path) -> int:
    """overlays/<set>/<model>/<image>.png for each model's final checkpoint; returns how many."""
    n = 0
    for r in _final_results(report):
        sub = folder / "overlays" / _safe(r.set_name) / _safe(r.spec.model)
        sub.mkdir(parents=True, exist_ok=True)
        for sample, pred in zip(report.sets[r.set_name], r.predictions):
            overlay_image(sample, pred, report.conf, report.iou, report.rule).save(sub / f"{sample.image_path.stem}.png")
            n += 1
    return n


def write_evaluation(
    report: EvalReport, out: str | Path, overlays: bool = False, extra: Callable[[Path], None] | None = None
) -> Path:
    """metrics.csv, report.md, curves_<set>.png, coco/<set>_gt.json, confusion.json, optional overlays/;
    with mask scores also masks.csv and sizes_<set>_<model>_<checkpoint>.png (labelled vs predicted ECD).

    `extra(staging_folder)` may add files that must appear together with the report.
    """
    with staged_output(out) as tmp:
        if extra is not None:
            extra(tmp)
        _write_csv(tmp / "metrics.csv", METRIC_COLUMNS, metric_rows(report))
        plots = save_curves(report, tmp)
        text = markdown_report(report, plots)
        if any(r.masks is not None for r in report.results):
            from detector.mask_report import MASK_METRIC_COLUMNS, mask_markdown, mask_metric_rows, save_size_comparisons

            _write_csv(tmp / "masks.csv", MASK_METRIC_COLUMNS, mask_metric_rows(report.results))
            text += "\n".join(mask_markdown(report.results, save_size_comparisons(_final_results(report), tmp))) + "\n"
        (tmp / "report.md").write_text(text)
        (tmp / "coco").mkdir()
        for name, samples in report.sets.items():
            (tmp / "coco" / f"{_safe(name)}_gt.json").write_text(json.dumps(coco_ground_truth(samples)))
        confusion = {
            f"{r.set_name}/{r.spec.model}/{r.spec.checkpoint}": r.metrics.confusion.tolist() for r in report.results
        }
        (tmp / "confusion.json").write_text(
            json.dumps({"axes": "rows labelled class, columns detected class; last index = none", "classes": list(report.class_names), "matrices": confusion}, indent=1)
        )
        if overlays:
            save_overlays(report, tmp)
    return Path(out)


# ------------------------------------------------------------------ predictions and sizes


def annotate(image_path: Path, det: Detections, class_names: Sequence[str] = CLASS_NAMES) -> Image.Image:
    """The image with each detection's box in its class colour and a legend of classes."""
    im = _load_rgb(image_path)
    draw = ImageDraw.Draw(im)
    lw = max(1, round(max(im.size) / 400))
    for box, c in zip(det.xyxy, det.class_id):
        draw.rectangle(box.tolist(), outline=CLASS_COLOURS[int(c) % len(CLASS_COLOURS)], width=lw)
    counts = [int((det.class_id == k).sum()) for k in range(len(class_names))]
    _legend(draw, [(f"{n}: {k}", CLASS_COLOURS[i]) for i, (n, k) in enumerate(zip(class_names, counts))], lw)
    return im


def detection_header(with_nm: bool) -> list[str]:
    """The columns of detection_rows (and of detections.csv before any mask columns)."""
    header = ["image", "class", "confidence", "x1", "y1", "x2", "y2", "width_px", "height_px", "diameter_px"]
    return header + (["width_nm", "height_nm", "diameter_nm"] if with_nm else [])


def per_image_scales(nm_per_px: float | Sequence[float | None] | None, n: int) -> list[float | None]:
    """One nm-per-px value (or None) per image from a single value for all, or a per-image sequence."""
    if nm_per_px is None or isinstance(nm_per_px, (int, float)):
        return [float(nm_per_px) if nm_per_px else None] * n
    scales = [float(s) if s else None for s in nm_per_px]
    if len(scales) != n:
        raise ValueError(f"{len(scales)} scales for {n} images")
    return scales


def detection_rows(images: Sequence[Path], dets: Sequence[Detections], nm_per_px: float | Sequence[float | None] | None) -> list[list]:
    """One row per detection (detection_header's columns); nm columns when any image has a scale
    (empty for the images without one)."""
    scales = per_image_scales(nm_per_px, len(images))
    with_nm = any(scales)
    rows = []
    for path, det, scale in zip(images, dets, scales):
        diam = equivalent_diameter(det)
        conf = det.confidence if det.confidence is not None else np.ones(len(det))
        for box, c, s, d in zip(det.xyxy.astype(float), det.class_id, conf, diam):
            w, h = box[2] - box[0], box[3] - box[1]
            row = [path.name, CLASS_NAMES[int(c)], float(s), *box.tolist(), w, h, float(d)]
            if with_nm:
                row += [w * scale, h * scale, float(d) * scale] if scale else [None, None, None]
            rows.append(row)
    return rows


def _size_unit(scales: Sequence[float | None]) -> tuple[str, list[float | None]]:
    """("nm", per-image factor, None for unscaled images: left out) when any image has a scale, else
    ("px", 1 for every image): statistics in nm pool only the images that have a scale."""
    return ("nm", list(scales)) if any(scales) else ("px", [1.0] * len(scales))


def pooled_sizes(dets: Sequence[Detections], scales: Sequence[float | None], k: int) -> tuple[np.ndarray, str]:
    """Equivalent diameters of class k over the images, in nm from the scaled images only, else in px."""
    unit, factors = _size_unit(scales)
    parts = [equivalent_diameter(d)[d.class_id == k] * f for d, f in zip(dets, factors) if f]
    return (np.concatenate(parts) if parts else np.zeros(0)), unit


def prediction_stats(dets: Sequence[Detections], nm_per_px: float | Sequence[float | None] | None) -> list[SizeStats]:
    """Equivalent-diameter statistics per class over every image (in nm over the images with a scale)."""
    scales = per_image_scales(nm_per_px, len(dets))
    return [size_stats(name, *pooled_sizes(dets, scales, k)) for k, name in enumerate(CLASS_NAMES)]


def save_histograms(dets: Sequence[Detections], nm_per_px: float | Sequence[float | None] | None, folder: Path) -> list[str]:
    """sizes_<class>.png: histogram of equivalent diameters with mean ± std in the title."""
    scales = per_image_scales(nm_per_px, len(dets))
    written = []
    for k, name in enumerate(CLASS_NAMES):
        sizes, unit = pooled_sizes(dets, scales, k)
        st = size_stats(name, sizes, unit)
        if st.count == 0:
            title = f"{name}: no particles detected"
        elif st.count == 1:
            title = f"{name}: one particle, {st.mean:.1f} {unit}"
        else:
            title = f"{name}: n={st.count}, mean {st.mean:.1f} ± {st.std:.1f} {unit} (SEM {st.sem:.2f})"
        unscaled = sum(1 for s in scales if not s) if unit == "nm" else 0
        if unscaled:
            title += f"\n{unscaled} image(s) without a scale left out"
        written.append(save_size_histogram(folder / f"sizes_{name}.png", sizes, k, f"equivalent diameter ({unit})", title))
    return written


def save_size_histogram(path: Path, sizes: np.ndarray, class_id: int, xlabel: str, title: str, fontsize: int = 9) -> str:
    """One class's size histogram as a PNG (the figure of sizes_<class>.png and mask_sizes_<class>.png); its file name."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    if len(sizes):
        ax.hist(sizes, bins=min(30, max(5, len(sizes) // 5)), color="tab:blue" if class_id == 0 else "tab:orange", edgecolor="black")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("particles")
    ax.set_title(title, fontsize=fontsize)
    save_figure(fig, path)
    return path.name


def coco_predictions_dict(images: Sequence[Path], sizes: Sequence[tuple[int, int]], dets: Sequence[Detections]) -> dict:
    """A COCO instances json of detections (with scores) that annotation tools and formats.py read."""
    samples = [Sample(p, w, h, Detections(d.xyxy, d.class_id)) for p, (w, h), d in zip(images, sizes, dets)]
    data = coco_ground_truth(samples)
    k = 0
    for d in dets:
        conf = d.confidence if d.confidence is not None else np.ones(len(d))
        polys = d.polygons if d.polygons is not None else (None,) * len(d)
        for s, poly in zip(conf, polys):
            ann = data["annotations"][k]
            ann["score"] = float(s)
            if poly is not None and len(poly) >= 3:  # the outline, so contours can be corrected in the tool
                from shapely.geometry import Polygon

                ann["segmentation"] = [[round(float(v), 2) for v in np.asarray(poly).ravel()]]
                ann["area"] = float(Polygon(poly).area)
            k += 1
    data["info"] = {"description": "detector predict: boxes to correct and reuse as training labels"}
    return data


def labelme_dict(image_name: str, width: int, height: int, det: Detections) -> dict:
    """A labelme json with one polygon per detection with an outline, else its rectangle (labelme 5 layout)."""
    polys = det.polygons if det.polygons is not None else (None,) * len(det)
    shapes = [
        {
            "label": CLASS_NAMES[int(c)],
            "points": [[float(b[0]), float(b[1])], [float(b[2]), float(b[3])]]
            if poly is None or len(poly) < 3
            else [[round(float(x), 2), round(float(y), 2)] for x, y in np.asarray(poly)],
            "group_id": None,
            "description": "",
            "shape_type": "rectangle" if poly is None or len(poly) < 3 else "polygon",
            "flags": {},
        }
        for b, c, poly in zip(det.xyxy, det.class_id, polys)
    ]
    return {
        "version": "5.4.1",
        "flags": {},
        "shapes": shapes,
        "imagePath": image_name,
        "imageData": None,
        "imageHeight": int(height),
        "imageWidth": int(width),
    }


class PredictionStats(NamedTuple):
    """What `write_predictions` summarised: box-based statistics, and mask-based ones when measured."""

    boxes: list[SizeStats]
    masks: list | None  # detector.measure.SizeSummary per class, or None without measurements


def write_predictions(
    images: Sequence[Path],
    sizes: Sequence[tuple[int, int]],
    dets: Sequence[Detections],
    out: str | Path,
    nm_per_px: float | Sequence[float | None] | None = None,
    save: str | Sequence[str] | None = None,
    annotated: bool = True,
    measurements: Sequence[Sequence] | None = None,
    mask_source: str | None = None,
    include_border: bool = False,
    scale_sources: Sequence[str] | None = None,
    extra_columns: tuple[Sequence[str], Sequence[Sequence]] | None = None,
    refine: dict | None = None,
) -> PredictionStats:
    """detections.csv, counts.csv, sizes_<class>.png, summary.json, annotated/ and coco/ and/or labelme/
    (`save`: one format or several).

    `measurements` (detector.measure.Measurement or None, per detection of each image) add the mask
    columns (area, ECD, Feret, rectangle, circularity, touches_border, size, mask_source) and the
    mask-based size statistics (border-touching particles left out unless `include_border`).
    `nm_per_px`: one scale for all images or one per image (None: no scale), with `scale_sources`
    (metadata, scale-bar, option, none) per image; both go into every row of detections.csv and into
    summary.json's ``per_image``. Statistics in nm pool only the images that have a scale.
    `extra_columns`: (header, one row of values per detection) appended to detections.csv.
    Returns the statistics written to summary.json: per class from the boxes, and from the masks."""
    scales = per_image_scales(nm_per_px, len(images))
    sources = list(scale_sources) if scale_sources is not None else ["option" if s else "none" for s in scales]
    stats = prediction_stats(dets, scales)
    with staged_output(out) as tmp:
        header = detection_header(any(scales))
        rows = detection_rows(images, dets, scales)
        mask_stats = None
        if measurements is not None:
            from detector.mask_report import class_sizes, mask_columns, mask_size_stats, save_mask_histograms

            extra_header, extra = mask_columns(dets, measurements, scales, mask_source or "model")
            header, rows = header + extra_header, [r + e for r, e in zip(rows, extra)]
            unit, factors = _size_unit(scales)
            per_class = [class_sizes(dets, measurements, k, include_border, factors) for k in range(len(CLASS_NAMES))]
            mask_stats = mask_size_stats(per_class, unit)
            save_mask_histograms(mask_stats, per_class, tmp)
        if extra_columns is not None:
            header, rows = header + list(extra_columns[0]), [r + list(e) for r, e in zip(rows, extra_columns[1])]
        image_scale = [(s, src) for d, s, src in zip(dets, scales, sources) for _ in range(len(d))]
        header, rows = header + ["nm_per_px", "scale_source"], [r + [s, src] for r, (s, src) in zip(rows, image_scale)]
        _write_csv(tmp / "detections.csv", header, rows)
        _write_csv(
            tmp / "counts.csv",
            ["image", *CLASS_NAMES, "total"],
            [[p.name, *[int((d.class_id == k).sum()) for k in range(len(CLASS_NAMES))], len(d)] for p, d in zip(images, dets)],
        )
        save_histograms(dets, scales, tmp)
        common = scales[0] if len(set(scales)) == 1 else None
        summary = {
            "images": len(images),
            "nm_per_px": common,  # the one scale of every image; per_image has each image's
            "scale_source": sources[0] if len(set(sources)) == 1 else "mixed",
            "size_unit": _size_unit(scales)[0],
            "images_with_scale": sum(1 for s in scales if s),
            "images_without_scale": sum(1 for s in scales if not s),
            "per_image": [{"image": p.name, "nm_per_px": s, "scale_source": src} for p, s, src in zip(images, scales, sources)],
            "diameter": "equivalent diameter sqrt(w*h) of each box (circle with the area of the inscribed ellipse)",
            "classes": {
                s.name: {"count": s.count, "mean": _finite(s.mean), "std": _finite(s.std), "sem": _finite(s.sem), "unit": s.unit}
                for s in stats
            },
        }
        if mask_stats is not None:
            from detector.measure import SIZE_DEFINITION

            summary["mask_source"] = mask_source
            summary["size_definition"] = SIZE_DEFINITION
            summary["include_border"] = include_border
            if refine is not None:
                summary["refine"] = {"method": "gaussian", **refine}
            summary["mask_sizes"] = {
                s.name: {"count": s.count, "border_excluded": s.border_excluded, "mean": _finite(s.mean), "std": _finite(s.std),
                         "sem": _finite(s.sem), "median": _finite(s.median), "ci95": [_finite(s.ci95_low), _finite(s.ci95_high)], "unit": s.unit}
                for s in mask_stats
            }  # fmt: skip
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2))
        if annotated:
            (tmp / "annotated").mkdir()
            for p, d in zip(images, dets):
                annotate(p, d).save(tmp / "annotated" / f"{p.stem}.png")
        saves = (save,) if isinstance(save, str) else tuple(save or ())
        if "coco" in saves:
            (tmp / "coco").mkdir()
            for p in images:
                shutil.copyfile(p, tmp / "coco" / p.name)
            (tmp / "coco" / "annotations.json").write_text(json.dumps(coco_predictions_dict(images, sizes, dets)))
        if "labelme" in saves:
            (tmp / "labelme").mkdir()
            for p, (w, h), d in zip(images, sizes, dets):
                shutil.copyfile(p, tmp / "labelme" / p.name)
                (tmp / "labelme" / f"{p.stem}.json").write_text(json.dumps(labelme_dict(p.name, w, h, d), indent=1))
    return PredictionStats(stats, mask_stats)


def write_yolo_predictions(samples: Sequence[Sample], dets: Sequence[Detections], folder: Path) -> None:
    """One `class cx cy w h conf` txt per image (what `evaluate --predictions` reads)."""
    folder.mkdir(parents=True, exist_ok=True)
    for s, d in zip(samples, dets):
        lines = []
        conf = d.confidence if d.confidence is not None else np.ones(len(d))
        for (x1, y1, x2, y2), c, p in zip(d.xyxy.astype(float), d.class_id, conf):
            cx, cy = (x1 + x2) / 2 / s.width, (y1 + y2) / 2 / s.height
            lines.append(f"{int(c)} {cx:.8f} {cy:.8f} {(x2 - x1) / s.width:.8f} {(y2 - y1) / s.height:.8f} {float(p):.8f}")
        (folder / f"{s.image_path.stem}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
