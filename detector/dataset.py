"""Merge synthetic and real labelled folders into an ultralytics training set (``detector build-dataset``).

Stages, each a small function: load every folder with :mod:`synthgen.formats` (any label format),
clip boxes to the image, optionally cut the SEM information bar off real images (moving their labels),
balance object counts per class by sampling images, split train/val[/test] so that every split holds
every class, and write ``OUT/{train,val,test}/{images,labels}`` with ``data.yaml`` and ``stats.json``.
Nothing is written until all input has been read and checked; the tree is built in a temporary folder
beside ``OUT`` and renamed into place at the end, so bad input or a crash leaves nothing behind.
``--overwrite`` replaces only an earlier dataset folder (or an empty folder), never another file.

Flaws of real data (degenerate or duplicate boxes, corrupt or truncated images, label files without an
image, images without labels) are warnings (:mod:`synthgen.warnings_log`): the item is skipped, the
warnings are counted in ``BuildResult.warnings`` and stats.json; ``strict`` makes them errors.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import yaml

from synthgen.annotations import Detections, Sample
from synthgen.formats import image_size, read_labelled_folder
from synthgen.instance_masks import sample_polygons
from detector.info_bar import find_info_bar
from synthgen.classes import CLASS_NAMES
from synthgen.atomic import staging_dir, swap_in_dir
from synthgen.errors import InputError
from synthgen.warnings_log import collect

SPLIT_NAMES = ("train", "val", "test")
BALANCE_MODES = ("none", "objects")
TASKS = ("detect", "segment")  # label files: boxes (class cx cy w h) or outlines (class x1 y1 x2 y2 ...)
SYNTHETIC, REAL = "synthetic", "real"
SYNTHGEN_MARKER = "manifest.json"  # every `synthgen generate` output folder has one
MIN_VISIBLE = 0.5  # a box cut by the info bar is kept (clipped) when at least this much of its height stays
MIN_BOX_PX = 1.0  # boxes thinner than this after clipping carry no object

Track = Callable[[Sequence, str], Iterable]


def _no_track(items: Sequence, description: str) -> Iterable:
    return items


@dataclass(frozen=True)
class Source:
    """One input folder and whether it is synthetic (no info bar, never cropped) or real."""

    path: Path
    kind: str


@dataclass(frozen=True)
class Item:
    """One image on its way into the dataset; ``sample`` holds the boxes as they will be written."""

    sample: Sample
    source: int  # index into the list of sources
    keep_rows: int | None = None  # rows kept after cutting the info bar; None: image unchanged


@dataclass(frozen=True)
class DroppedLabel:
    image: str
    class_name: str
    xyxy: tuple[float, float, float, float]
    reason: str

    def to_json(self) -> dict:
        return {"image": self.image, "class": self.class_name, "xyxy": [round(v, 2) for v in self.xyxy], "reason": self.reason}


@dataclass(frozen=True)
class BuildOptions:
    split: tuple[float, ...] = (0.7, 0.15, 0.15)
    balance: str = "none"
    max_objects_per_class: int | None = None
    remove_info_bar: bool = False
    seed: int = 0
    copy: bool = False  # copy images instead of hard-linking them
    overwrite: bool = False
    strict: bool = False  # flaws of the data (synthgen.warnings_log) are errors
    task: str = "detect"  # "segment": ultralytics polygon labels (instance masks or COCO/labelme polygons)


@dataclass
class BuildResult:
    out: Path
    data_yaml: Path
    table: dict[str, dict]  # split (and "total") -> images / synthetic / real / per-class object counts
    stats: dict = field(repr=False)
    warnings: dict[str, int] = field(default_factory=dict)  # warning kind -> count (synthgen.warnings_log)
    warnings_summary: str = ""  # "1 label skipped, 2 images skipped"


# ---------------------------------------------------------------------------------------- options


def parse_split(text: str) -> tuple[float, ...]:
    """``"0.7,0.15,0.15"`` or ``"0.8,0.2"`` -> fractions for train/val[/test], normalised to sum to 1.

    The numbers are proportions: ``0.75,0.15,0.15`` (the paper's wording, summing to 1.05) means
    0.714/0.143/0.143.
    """
    parts = [p.strip() for p in str(text).split(",")]
    try:
        fractions = tuple(float(p) for p in parts)
    except ValueError:
        raise InputError(f"--split {text!r}: expected 2 or 3 comma-separated fractions, e.g. 0.7,0.15,0.15") from None
    if len(fractions) not in (2, 3):
        raise InputError(f"--split {text!r}: expected 2 (train,val) or 3 (train,val,test) fractions, got {len(fractions)}")
    if not all(np.isfinite(fractions)) or min(fractions) <= 0:
        raise InputError(f"--split {text!r}: every fraction must be a number > 0")
    total = sum(fractions)
    return tuple(f / total for f in fractions)


def detect_kind(folder: str | Path) -> str:
    """``synthetic`` for a `synthgen generate` output folder (it has manifest.json), else ``real``."""
    return SYNTHETIC if (Path(folder) / SYNTHGEN_MARKER).is_file() else REAL


def make_sources(synthetic: Sequence[Path] = (), real: Sequence[Path] = (), auto: Sequence[Path] = ()) -> list[Source]:
    """Sources from explicit synthetic / real folders and auto-detected ones; InputError on none or duplicates."""
    sources = [Source(Path(p), SYNTHETIC) for p in synthetic] + [Source(Path(p), REAL) for p in real]
    sources += [Source(Path(p), detect_kind(p)) for p in auto]
    if not sources:
        raise InputError("no input folders: give --synthetic DIR, --real DIR or DIR arguments")
    seen: set[Path] = set()
    out = []
    for s in sources:
        if not s.path.is_dir():
            raise InputError("no such folder", s.path)
        resolved = s.path.resolve()
        if resolved in seen:
            raise InputError("input folder given twice", s.path)
        seen.add(resolved)
        out.append(Source(resolved, s.kind))
    return out


# ---------------------------------------------------------------------------------------- labels


def class_counts(det: Detections) -> np.ndarray:
    """Objects per project class, shape (len(CLASS_NAMES),)."""
    return np.bincount(det.class_id, minlength=len(CLASS_NAMES))[: len(CLASS_NAMES)]


def _dropped(image: Path, det: Detections, mask: np.ndarray, reason: str) -> list[DroppedLabel]:
    return [
        DroppedLabel(str(image), CLASS_NAMES[int(c)], tuple(float(v) for v in box), reason)
        for box, c in zip(det.xyxy[mask], det.class_id[mask])
    ]


def clip_to_image(sample: Sample) -> tuple[Sample, list[DroppedLabel]]:
    """Clip boxes to the image; boxes left thinner than a pixel are dropped and reported."""
    det = sample.gt
    if not len(det):
        return sample, []
    xyxy = det.xyxy.copy()
    xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, sample.width)
    xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, sample.height)
    wh = xyxy[:, 2:] - xyxy[:, :2]
    keep = (wh >= MIN_BOX_PX).all(axis=1)
    drops = _dropped(sample.image_path, det, ~keep, "outside the image or thinner than 1 px")
    return _with_boxes(sample, Detections(xyxy, det.class_id)[keep], keep), drops


def _with_boxes(sample: Sample, det: Detections, keep: np.ndarray) -> Sample:
    polygons = tuple(p for p, k in zip(sample.polygons, keep) if k) if sample.polygons else ()
    return replace(sample, gt=det, polygons=polygons)


def crop_labels(sample: Sample, keep_rows: int, min_visible: float = MIN_VISIBLE) -> tuple[Sample, list[DroppedLabel], int]:
    """The sample cut to its top ``keep_rows`` rows: boxes in the cut strip are dropped, boxes straddling
    the cut are clipped, or dropped when less than ``min_visible`` of their height stays.

    Returns (sample, dropped labels, number of clipped boxes). Polygons are cut at the same row.
    """
    det = sample.gt
    y1, y2 = det.xyxy[:, 1], det.xyxy[:, 3]
    visible = (np.minimum(y2, keep_rows) - y1) / np.maximum(y2 - y1, 1e-9)
    inside = y1 >= keep_rows
    mostly = ~inside & (visible < min_visible)
    xyxy = det.xyxy.copy()
    xyxy[:, 3] = np.minimum(xyxy[:, 3], keep_rows)
    thin = (y2 > keep_rows) & ~inside & ~mostly & (xyxy[:, 3] - xyxy[:, 1] < MIN_BOX_PX)
    keep = ~(inside | mostly | thin)
    clipped = int((keep & (y2 > keep_rows)).sum())
    image = sample.image_path
    drops = (
        _dropped(image, det, inside, "inside the info bar")
        + _dropped(image, det, mostly, f"less than {min_visible:.0%} of it above the info bar")
        + _dropped(image, det, thin, "thinner than 1 px above the info bar")
    )
    polygons = ()
    if sample.polygons:
        polygons = tuple(
            None if p is None else np.column_stack([p[:, 0], np.minimum(p[:, 1], keep_rows)])
            for p, k in zip(sample.polygons, keep) if k
        )  # fmt: skip
    cropped = Sample(image, sample.width, keep_rows, Detections(xyxy, det.class_id)[keep], polygons)
    return cropped, drops, clipped


# ---------------------------------------------------------------------------------------- reading


def _read_image(path: Path) -> np.ndarray:
    """The 8-bit image as predict sees it (synthgen.readers: 16-bit/float stretched, vendor formats)."""
    from synthgen.readers import read_micrograph

    return read_micrograph(path).image


def _converted(path: Path) -> bool:
    """Written as an 8-bit PNG (through the reader) rather than linked: not an 8-bit raster, so that
    training sees the 8-bit mapping predict uses (ultralytics would cut 16 bits to their high byte)."""
    from synthgen.readers import is_8bit_raster

    return not is_8bit_raster(path)


def load_items(
    sources: Sequence[Source], remove_info_bar: bool = False, track: Track = _no_track, task: str = "detect"
) -> tuple[list[Item], list[DroppedLabel], dict]:
    """Every image of every source as an Item, boxes clipped to the image and, with ``remove_info_bar``,
    real images cut above their information bar. Returns (items, dropped labels, crop report).
    ``task="segment"``: each sample carries an outline per box (from its instance mask, else its polygon)."""
    items: list[Item] = []
    drops: list[DroppedLabel] = []
    crops = {"cropped": [], "clipped_labels": 0}
    for index, source in enumerate(sources):
        samples = read_labelled_folder(source.path)
        cut = remove_info_bar and source.kind == REAL
        for sample in track(samples, f"reading {source.path.name}"):
            width, height = image_size(sample.image_path)
            if (width, height) != (sample.width, sample.height):
                raise InputError(
                    f"labels are for a {sample.width}x{sample.height} image but the image is {width}x{height}",
                    sample.image_path,
                )
            if task == "segment":
                sample = replace(sample, polygons=tuple(sample_polygons(sample)))
            sample, dropped = clip_to_image(sample)
            drops += dropped
            keep_rows = find_info_bar(_read_image(sample.image_path)) if cut else None
            if keep_rows is not None:
                sample, dropped, clipped = crop_labels(sample, keep_rows)
                drops += dropped
                crops["clipped_labels"] += clipped
                crops["cropped"].append({"image": str(sample.image_path), "height": height, "kept_rows": keep_rows})
            items.append(Item(sample, index, keep_rows))
    return items, drops, crops


# ---------------------------------------------------------------------------------------- balance


def _counts(items: Sequence[Item]) -> np.ndarray:
    if not items:
        return np.zeros((0, len(CLASS_NAMES)), np.int64)
    return np.stack([class_counts(it.sample.gt) for it in items])


def _greedy_fill(counts: np.ndarray, order: np.ndarray, budget: np.ndarray) -> tuple[list[int], np.ndarray]:
    taken = np.zeros(counts.shape[1], np.int64)
    chosen = []
    for i in order:
        if np.all(taken + counts[i] <= budget):
            taken += counts[i]
            chosen.append(int(i))
    return chosen, taken


def select_within_budget(
    items: Sequence[Item], budget: np.ndarray, rng: np.random.Generator, tries: int = 32
) -> list[Item]:
    """Images sampled so that no class exceeds its object ``budget`` (images without objects are all kept).

    Images rich in the scarcest class are taken first; the others in random order, filling greedily.
    Images hold many objects, so the counts land up to one image short of the budget: of ``tries``
    random orders we keep the one with the most even, then the largest, class counts. Input order is kept.
    """
    if not len(items):
        return []
    counts = _counts(items)
    totals = counts.sum(axis=0)
    present = np.flatnonzero(totals)
    scarce = present[np.argmin(totals[present])] if len(present) else 0
    share = counts[:, scarce] / np.maximum(counts.sum(axis=1), 1)
    best, best_score = [], None
    for _ in range(tries):
        order = np.lexsort((rng.permutation(len(items)), -share))
        chosen, taken = _greedy_fill(counts, order, budget)
        got = np.minimum(taken, budget)[present]
        score = (int(got.max(initial=0) - got.min(initial=0)), -int(got.sum()))
        if best_score is None or score < best_score:
            best, best_score = chosen, score
    return [items[i] for i in sorted(best)]


def balance_items(
    items: Sequence[Item], mode: str, max_objects_per_class: int | None, rng: np.random.Generator
) -> list[Item]:
    """``none``: as they come (capped at ``max_objects_per_class``); ``objects``: sample images so every
    class present has (close to) the same number of objects, the smallest class total (or the cap)."""
    if mode not in BALANCE_MODES:
        raise InputError(f"--balance {mode!r}: expected one of {', '.join(BALANCE_MODES)}")
    if max_objects_per_class is not None and max_objects_per_class < 1:
        raise InputError(f"--max-objects-per-class {max_objects_per_class}: must be at least 1")
    totals = _counts(items).sum(axis=0)
    cap = np.iinfo(np.int64).max if max_objects_per_class is None else max_objects_per_class
    if mode == "objects" and (totals > 0).any():
        cap = min(cap, int(totals[totals > 0].min()))
    if cap >= totals.max(initial=0):
        return list(items)
    return select_within_budget(items, np.full(len(CLASS_NAMES), cap, np.int64), rng)


# ---------------------------------------------------------------------------------------- split


def split_items(items: Sequence[Item], fractions: Sequence[float], rng: np.random.Generator) -> list[list[Item]]:
    """Seeded split into len(fractions) parts, stratified: each image goes to the split that most lacks
    what it carries (its share of every class's objects, and of the images). Images holding a large
    share of a class are placed first, largest first (one image can hold 40 % of a class in real sets);
    the rest follow in seeded random order. Then every split is made to hold every class present
    (InputError when a class is in fewer images than there are splits)."""
    fractions = np.asarray(fractions, np.float64)
    n_splits = len(fractions)
    if len(items) < n_splits:
        raise InputError(f"{len(items)} image(s) cannot fill {n_splits} splits; add images or use --split 0.8,0.2")
    counts = _counts(items)
    share = np.hstack([counts / np.maximum(counts.sum(axis=0), 1), np.full((len(items), 1), 1 / len(items))])
    biggest = share[:, :-1].max(axis=1)
    big = biggest >= fractions.min() / 3
    order = np.lexsort((rng.permutation(len(items)), np.where(big, -biggest, 0.0)))
    load = np.zeros((n_splits, share.shape[1]))
    assignment = np.empty(len(items), np.int64)
    for i in order:
        s = int(np.argmax((fractions[:, None] - load) @ share[i]))
        assignment[i] = s
        load[s] += share[i]
    _ensure_every_split(assignment, counts, n_splits)
    _ensure_every_class(assignment, counts, n_splits)
    return [[items[i] for i in np.flatnonzero(assignment == s)] for s in range(n_splits)]


def _ensure_every_split(assignment: np.ndarray, counts: np.ndarray, n_splits: int) -> None:
    """Give an empty split the image with the fewest objects of the largest split (in place)."""
    for s in range(n_splits):
        if not (assignment == s).any():
            donor = int(np.argmax(np.bincount(assignment, minlength=n_splits)))
            members = np.flatnonzero(assignment == donor)
            assignment[members[np.argmin(counts[members].sum(axis=1))]] = s


def _ensure_every_class(assignment: np.ndarray, counts: np.ndarray, n_splits: int) -> None:
    """Move images so that every split holds every class present (in place): for a split lacking class c,
    move the image with the fewest c objects from a split holding c in two or more images, provided that
    split keeps every other class the image holds. InputError when no such move exists."""
    has = counts > 0
    for c in np.flatnonzero(has.any(axis=0)):
        for s in range(n_splits):
            if has[assignment == s, c].any():
                continue
            candidates = []
            for i in np.flatnonzero(has[:, c] & (assignment != s)):
                d = assignment[i]
                same = (assignment == d) & (np.arange(len(assignment)) != i)
                if all(has[same, k].any() for k in np.flatnonzero(has[i])):
                    candidates.append((counts[i, c], counts[i].sum(), i))
            if not candidates:
                raise InputError(
                    f"class {CLASS_NAMES[c]!r} is in only {int(has[:, c].sum())} image(s): too few to put it in "
                    f"each of the {n_splits} splits; add images or use fewer splits (--split 0.8,0.2)"
                )
            assignment[min(candidates)[2]] = s


# ---------------------------------------------------------------------------------------- table


def split_table(splits: Sequence[Sequence[Item]], sources: Sequence[Source]) -> dict[str, dict]:
    """Images (all / synthetic / real) and objects per class for each split and in total (paper's Table 2)."""
    table = {}
    for name, part in zip(SPLIT_NAMES, splits):
        counts = _counts(part).sum(axis=0) if part else np.zeros(len(CLASS_NAMES), np.int64)
        kinds = [sources[it.source].kind for it in part]
        table[name] = {
            "images": len(part),
            "synthetic_images": kinds.count(SYNTHETIC),
            "real_images": kinds.count(REAL),
            **{c: int(n) for c, n in zip(CLASS_NAMES, counts)},
        }
    table["total"] = {k: sum(row[k] for row in list(table.values())) for k in next(iter(table.values()))}
    return table


def class_totals(items: Sequence[Item]) -> dict[str, int]:
    counts = _counts(items).sum(axis=0) if items else np.zeros(len(CLASS_NAMES), np.int64)
    return {c: int(n) for c, n in zip(CLASS_NAMES, counts)}


def _source_stats(index: int, source: Source, loaded: Sequence[Item], used: Sequence[Item]) -> dict:
    mine = [it for it in used if it.source == index]
    return {
        "path": str(source.path),
        "kind": source.kind,
        "images_read": sum(it.source == index for it in loaded),
        "images_used": len(mine),
        "objects_used": class_totals(mine),
    }


# ---------------------------------------------------------------------------------------- writing


def yolo_lines(det: Detections, width: int, height: int) -> str:
    """YOLO label text ``class cx cy w h`` (normalised, 6 decimals), one box a line."""
    if not len(det):
        return ""
    xyxy = det.xyxy.astype(np.float64)
    cx = (xyxy[:, 0] + xyxy[:, 2]) / 2 / width
    cy = (xyxy[:, 1] + xyxy[:, 3]) / 2 / height
    w = (xyxy[:, 2] - xyxy[:, 0]) / width
    h = (xyxy[:, 3] - xyxy[:, 1]) / height
    return "".join(f"{c} {a:.6f} {b:.6f} {d:.6f} {e:.6f}\n" for c, a, b, d, e in zip(det.class_id, cx, cy, w, h))


def segment_lines(sample: Sample) -> tuple[str, int]:
    """ultralytics segment label text ``class x1 y1 x2 y2 ...`` (normalised, 6 decimals), one particle a
    line, and how many particles had no outline (written as their box's rectangle)."""
    w, h = sample.width, sample.height
    polys = list(sample.polygons) if sample.polygons else [None] * len(sample.gt)
    lines, boxes_only = [], 0
    for (x0, y0, x1, y1), c, poly in zip(sample.gt.xyxy.astype(np.float64), sample.gt.class_id, polys):
        if poly is None or len(poly) < 3:
            poly = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
            boxes_only += 1
        xy = np.clip(np.asarray(poly, np.float64) / [w, h], 0.0, 1.0)
        lines.append(f"{c} " + " ".join(f"{v:.6f}" for v in xy.ravel()) + "\n")
    return "".join(lines), boxes_only


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "img"


def output_names(items: Sequence[Item], sources: Sequence[Source]) -> list[str]:
    """A unique file name per item: ``<source folder>_<image stem><suffix>`` (cropped and converted images become .png)."""
    names, used = [], set()
    for it in items:
        stem = f"{_slug(sources[it.source].path.name)}_{_slug(it.sample.image_path.stem)}"
        suffix = ".png" if it.keep_rows is not None or _converted(it.sample.image_path) else it.sample.image_path.suffix.lower()
        name, k = stem + suffix, 1
        while name.lower() in used:
            k += 1
            name = f"{stem}-{k}{suffix}"
        used.add(name.lower())
        names.append(name)
    return names


def _jpeg_needs_repair(path: Path) -> bool:
    """A JPEG without its end-of-image marker: ultralytics rewrites such files in place, which through
    a hard link would modify the user's original, so they are copied instead."""
    if path.suffix.lower() not in (".jpg", ".jpeg"):
        return False
    with open(path, "rb") as f:
        f.seek(-2, os.SEEK_END)
        return f.read() != b"\xff\xd9"


def _place_image(item: Item, dest: Path, copy: bool) -> None:
    src = item.sample.image_path
    if item.keep_rows is not None or _converted(src):
        if not cv2.imwrite(str(dest), _read_image(src)[: item.keep_rows]):
            raise OSError(f"cannot write {dest}")
        return
    if not copy and not _jpeg_needs_repair(src):
        try:
            os.link(src, dest)
            return
        except OSError:
            pass  # another file system, or not allowed to link: copy instead
    shutil.copyfile(src, dest)


def data_yaml_text(out: Path, n_splits: int) -> str:
    """ultralytics dataset YAML with an absolute ``path:`` (a relative one is resolved against
    ultralytics' own datasets directory, not the YAML's folder)."""
    doc = {"path": str(Path(out).resolve())}
    doc.update({name: f"{name}/images" for name in SPLIT_NAMES[:n_splits]})
    doc["names"] = dict(enumerate(CLASS_NAMES))
    header = DATA_YAML_HEADER + "; counts and sources in stats.json\n"
    return header + yaml.safe_dump(doc, sort_keys=False)


def _write_tree(
    tmp: Path, out: Path, splits: Sequence[Sequence[Item]], sources: Sequence[Source], copy: bool, track: Track,
    task: str = "detect", counts: dict | None = None,
) -> dict[str, list[dict]]:
    files: dict[str, list[dict]] = {}
    for name, part in zip(SPLIT_NAMES, splits):
        (tmp / name / "images").mkdir(parents=True)
        (tmp / name / "labels").mkdir()
        files[name] = []
        for item, fname in zip(track(part, f"writing {name}"), output_names(part, sources)):
            s = item.sample
            _place_image(item, tmp / name / "images" / fname, copy)
            if task == "segment":
                text, boxes_only = segment_lines(s)
                if counts is not None:
                    counts["box_outlines"] = counts.get("box_outlines", 0) + boxes_only
            else:
                text = yolo_lines(s.gt, s.width, s.height)
            (tmp / name / "labels" / (Path(fname).stem + ".txt")).write_text(text)
            files[name].append({"file": fname, "source": str(s.image_path), **class_totals([item])})
    (tmp / "data.yaml").write_text(data_yaml_text(out, len(splits)))
    return files


# ---------------------------------------------------------------------------------------- pipeline


DATA_YAML_HEADER = "# ultralytics dataset written by `detector build-dataset`"


def is_dataset_folder(path: Path) -> bool:
    """A folder written by build-dataset (its stats.json or data.yaml says so), which --overwrite may replace."""
    try:
        stats = json.loads((path / "stats.json").read_text(encoding="utf-8"))
        if isinstance(stats, dict) and stats.get("created_by") == "detector build-dataset":
            return True
    except (OSError, ValueError):
        pass
    try:
        return (path / "data.yaml").read_text(encoding="utf-8").startswith(DATA_YAML_HEADER)
    except (OSError, ValueError):
        return False


def check_output(out: Path, overwrite: bool) -> None:
    """InputError unless ``out`` may be (re)placed: absent, or with --overwrite an earlier dataset or an
    empty folder; and its parent folder is writable."""
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise InputError("output folder already exists (use --overwrite to replace it)", out)
        if not out.is_dir() or out.is_symlink():
            raise InputError("--out is a file, not a dataset folder: --overwrite replaces only datasets, refusing to delete it", out)
        if any(out.iterdir()) and not is_dataset_folder(out):
            raise InputError(
                "--out is not a dataset folder written by build-dataset (no stats.json): "
                "--overwrite replaces only datasets, refusing to delete it",
                out,
            )
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InputError("cannot create the output folder: a file is in the way", parent)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError("cannot write the output folder here: permission denied", parent)


def build_dataset(sources: Sequence[Source], out: str | Path, options: BuildOptions, track: Track = _no_track) -> BuildResult:
    """Read, filter, balance, split and write the dataset; see the module docstring."""
    out = Path(out).absolute()
    if len(options.split) not in (2, 3) or abs(sum(options.split) - 1) > 1e-6:
        raise InputError(f"split {options.split}: expected 2 or 3 fractions summing to 1")
    if out.exists() and not options.overwrite:
        raise InputError("output folder already exists (use --overwrite to replace it)", out)
    target = out.resolve()
    if any(target == s.path or s.path in target.parents or target in s.path.parents for s in sources):
        # --overwrite replaces the output folder whole: an input inside it would be deleted
        raise InputError("output folder must not be an input folder, inside one, or hold one", out)
    check_output(out, options.overwrite)
    if options.task not in TASKS:
        raise InputError(f"unknown task {options.task!r}; choose one of {', '.join(TASKS)}")
    rng = np.random.default_rng(options.seed)

    with collect(strict=options.strict) as log:
        items, drops, crops = load_items(sources, options.remove_info_bar, track, options.task)
    loaded, before = items, class_totals(items)
    if sum(before.values()) == 0:
        raise InputError("no labelled particles in the inputs: the dataset would be empty", sources[0].path)
    items = balance_items(items, options.balance, options.max_objects_per_class, rng)
    after = class_totals(items)
    if not items or sum(after.values()) == 0:
        raise InputError("the dataset is empty after balancing (check --max-objects-per-class)")
    splits = split_items(items, options.split, rng)
    table = split_table(splits, sources)

    try:
        tmp = staging_dir(out)
    except OSError as e:
        raise InputError(f"cannot write the output folder: {e.strerror or e}", e.filename or out.parent) from None
    try:
        outline_counts: dict[str, int] = {}
        files = _write_tree(tmp, out, splits, sources, options.copy, track, options.task, outline_counts)
        stats = {
            "created_by": "detector build-dataset",
            "out": str(out),
            "seed": options.seed,
            "options": {
                "split": dict(zip(SPLIT_NAMES, options.split)),
                "balance": options.balance,
                "max_objects_per_class": options.max_objects_per_class,
                "remove_info_bar": options.remove_info_bar,
                "copy": options.copy,
                "task": options.task,
            },
            "classes": dict(enumerate(CLASS_NAMES)),
            "sources": [_source_stats(i, s, loaded, items) for i, s in enumerate(sources)],
            "objects_before_balance": before,
            "objects_after_balance": after,
            "table": table,
            "info_bar": {"cropped_images": crops["cropped"], "clipped_labels": crops["clipped_labels"]},
            "dropped_labels": [d.to_json() for d in drops],
            **({"outlines": {"from_box": outline_counts.get("box_outlines", 0)}} if options.task == "segment" else {}),
            "warnings": {"total": log.total, **dict(log.counts), "lines": log.lines},
            "files": files,
        }
        (tmp / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
        swap_in_dir(tmp, out)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise InputError(f"cannot write the dataset: {e.strerror or e}", e.filename or out) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return BuildResult(out, out / "data.yaml", table, stats, dict(log.counts), log.summary())
