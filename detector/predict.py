"""Model -> Detections per image, and the particle sizes scientists measure from them. No plotting.

Size: the *equivalent diameter* of a box is the diameter of the circle with the area of the ellipse
inscribed in the box, sqrt(4*(pi*w*h/4)/pi) = sqrt(w*h): the geometric mean of width and height.
For a round particle it is its diameter, for a cube seen face-on its edge length (to within the
corner rounding of real nanocubes); it does not depend on the box orientation.
"""

from __future__ import annotations

import math

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from detector import tiling
from detector.tiling import TilePlan
from synthgen.annotations import Detections
from synthgen.formats import class_map_from_names
from synthgen.errors import InputError
from synthgen.readers import MICROGRAPH_SUFFIXES, Micrograph, as_bgr, is_micrograph_file, list_micrographs, read_micrograph

# per pass (whole image or tile): STEM frames hold thousands of particles; ultralytics' default is 300
MAX_DETECTIONS = 3000
TILE_BATCH = 8  # tiles per forward pass
MAX_PIXELS = 250_000_000  # larger images are refused (a 16k x 15k SEM mosaic fits; decoding needs ~1 GB)


def model_class_map(names: dict[int, str] | Sequence[str], source: str | Path | None = None) -> dict[int, int]:
    """Map a model's class ids onto project ids by name (cube, sphere and their aliases)."""
    return class_map_from_names(names, source if source is not None else "model")


def collect_images(inputs: Sequence[str | Path]) -> list[Path]:
    """Image files named directly or found in folders (a folder's images/ subfolder when it has one)."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = list_micrographs(p / "images" if (p / "images").is_dir() else p)
            if not found:
                raise InputError("no images in this folder", p)
            out.extend(found)
        elif p.is_file():
            if not is_micrograph_file(p):
                raise InputError(f"not an image (expected one of {' '.join(sorted(MICROGRAPH_SUFFIXES))}, or a .txt height map)", p)
            out.append(p)
        else:
            raise InputError("no such file or folder", p)
    names: dict[str, Path] = {}
    for p in out:  # outputs are named after the image: two inputs of one name would overwrite each other
        if p.name in names and names[p.name] != p:
            raise InputError(f"two images named {p.name!r} (also {names[p.name]}); predict them in separate runs", p)
        names[p.name] = p
    return out


def check_out_outside_inputs(out: str | Path, inputs: Sequence[str | Path]) -> None:
    """InputError when results would land among the user's micrographs: --out is (inside) a folder given
    as input, or is the folder holding an image given as input."""
    dest = Path(out).resolve()
    for item in map(Path, inputs):
        folder = item.resolve() if item.is_dir() else item.resolve().parent
        if dest == folder or (item.is_dir() and folder in dest.parents):
            raise InputError(f"--out lies inside the input folder {folder}: choose a folder outside it", out)


def _to_detections(result, class_map: dict[int, int]) -> Detections:
    boxes = result.boxes
    if boxes is None or len(boxes) == 0:
        return Detections.empty(with_confidence=True)
    cls = boxes.cls.cpu().numpy().astype(np.int64)
    keep = np.isin(cls, list(class_map))
    mapped = np.array([class_map[c] for c in cls[keep]], np.int64)
    polygons = None
    if getattr(result, "masks", None) is not None:  # a segmentation model: outlines in the input's pixels
        # ultralytics' contour points are pixel indices; +0.5: through the boundary pixels' centres
        polygons = tuple(np.asarray(p, np.float64) + 0.5 if len(p) >= 3 else None for p, k in zip(result.masks.xy, keep) if k)
    return Detections(boxes.xyxy.cpu().numpy()[keep], mapped, boxes.conf.cpu().numpy()[keep], polygons)


def trained_imgsz(model, default: int = 416) -> int:
    """The input size a loaded YOLO model was trained at (a model YAML has none: `default`, the paper's 416)."""
    size = getattr(model, "overrides", {}).get("imgsz")
    if isinstance(size, (list, tuple)):  # rectangular training: the long side
        size = max(size)
    return int(size) if size else default


def checked_size(path: str | Path) -> tuple[int, int]:
    """(width, height) from the image header; InputError when unreadable or over ``MAX_PIXELS``."""
    from PIL import Image

    from synthgen.readers import micrograph_size

    try:
        w, h = micrograph_size(path)
    except Image.DecompressionBombError:
        raise InputError(f"image too large (over {MAX_PIXELS // 1_000_000} megapixels)", path) from None
    if w * h > MAX_PIXELS:
        raise InputError(f"image too large: {w}x{h} is over {MAX_PIXELS // 1_000_000} megapixels", path)
    return w, h


def read_image(path: str | Path) -> np.ndarray:
    """A micrograph as the 8-bit BGR array the model takes (synthgen.readers: vendor formats, 16-bit stretched)."""
    return as_bgr(read_micrograph(path).image)


def image_for_model(m: Micrograph, remove_info_bar: bool) -> tuple[np.ndarray, int]:
    """The BGR array the model sees and the rows of `m` kept: with `remove_info_bar`, the rows above a
    vendor information bar (detector.info_bar); detections stay in `m`'s pixel coordinates."""
    img = as_bgr(m.image)
    if remove_info_bar:
        from detector.info_bar import find_info_bar

        top = find_info_bar(m.image)
        if top is not None:
            return np.ascontiguousarray(img[:top]), top
    return img, img.shape[0]


def _padded(img: np.ndarray, size: int) -> np.ndarray:
    """`img` on a size x size canvas (bottom/right padding): ultralytics would otherwise enlarge a small
    image to the model input and undo the chosen scale. The padding takes the median of the image's
    outer frame, the substrate in most micrographs (the whole image's median is a particle's grey in
    a crowded one, and a bright pad would read as one huge particle)."""
    h, w = img.shape[:2]
    if h >= size and w >= size:
        return img
    frame = np.concatenate([img[:2].reshape(-1, 3), img[-2:].reshape(-1, 3), img[:, :2].reshape(-1, 3), img[:, -2:].reshape(-1, 3)])
    canvas = np.empty((max(h, size), max(w, size), 3), img.dtype)
    canvas[:] = np.median(frame, axis=0).astype(img.dtype)
    canvas[:h, :w] = img
    return canvas


def _read_or_none(path: Path, skip: bool, remove_info_bar: bool, on_image) -> np.ndarray | None:
    try:
        m = read_micrograph(path)
    except InputError:
        if skip:
            return None
        raise
    img, rows = image_for_model(m, remove_info_bar)
    if on_image:
        on_image(path, m, rows)
    return img


class _Runner:
    """Forward passes of one model with fixed settings; arrays in, project-class Detections out."""

    def __init__(self, model, conf: float, iou: float, imgsz: int, device: str):
        self.model, self.conf, self.iou, self.imgsz, self.device = model, conf, iou, imgsz, device
        self.class_map = model_class_map(model.names)

    def __call__(self, arrays: list[np.ndarray], conf: float | None = None, imgsz: int | None = None) -> list[Detections]:
        out = []
        for start in range(0, len(arrays), TILE_BATCH):
            results = self.model.predict(
                arrays[start : start + TILE_BATCH], conf=self.conf if conf is None else conf, iou=self.iou,
                imgsz=imgsz or self.imgsz, device=self.device, max_det=MAX_DETECTIONS, verbose=False,
            )  # fmt: skip
            out.extend(_to_detections(r, self.class_map) for r in results)
        return out

    def run_plan(self, img: np.ndarray, plan: TilePlan) -> Detections:
        """Detections in `img`'s pixels for a resize-and-tile plan."""
        scaled = _resized(img, plan.scale) if plan.scale != 1.0 else img
        h, w = scaled.shape[:2]
        if plan.tile is None:
            det = self([_padded(scaled, self.imgsz)])[0]
        else:
            windows = tiling.tile_grid(h, w, plan.tile, plan.overlap)
            crops = [scaled[y0:y1, x0:x1] for x0, y0, x1, y1 in windows]
            if plan.tile == self.imgsz:  # tiles at the model's scale: pad short border tiles, never enlarge
                crops = [_padded(c, self.imgsz) for c in crops]
            det = tiling.merge_tiles(self(crops), windows, h, w)
        return tiling.scale_detections(det, plan.scale)


def _resized(img: np.ndarray, scale: float) -> np.ndarray:
    """`img` resized by `scale` (area averaging to shrink, cubic to enlarge), at least 1 px a side."""
    h, w = img.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)


def _vote_pass(runner: _Runner, img: np.ndarray, scale: float) -> tuple[Detections, float]:
    """Confident detections (original px) of `img` seen at `scale`, and the area (original px) seen:
    the whole image in one pass at its own size when it fits the model input, else a sample of at most
    VOTE_TILES of its tiles."""
    h, w = img.shape[:2]
    scaled = _resized(img, scale)
    sh, sw = scaled.shape[:2]
    if max(sh, sw) <= runner.imgsz:  # at its own size (a multiple of 32), not padded: a fraction of a pass
        side = min(runner.imgsz, max(64, 32 * math.ceil(max(sh, sw) / 32)))
        det = runner([_padded(scaled, side)], conf=tiling.ESTIMATE_CONF, imgsz=side)[0]
        return tiling.scale_detections(det, scale), float(h * w)
    overlap = int(min(runner.imgsz // 2, math.ceil(tiling.OVERLAP_PARTICLES * tiling.VOTE_TARGET_PX)))
    windows = tiling.sampled_windows(tiling.tile_grid(sh, sw, runner.imgsz, overlap), tiling.VOTE_TILES)
    crops = [_padded(scaled[y0:y1, x0:x1], runner.imgsz) for x0, y0, x1, y1 in windows]
    det = tiling.merge_tiles(runner(crops, conf=tiling.ESTIMATE_CONF), windows, sh, sw)
    return tiling.scale_detections(det, scale), tiling.union_area(windows) / scale**2


def plan_for(runner: _Runner, img: np.ndarray, first: Detections, imgsz: int) -> TilePlan:
    """`--tile auto`'s plan for an image, given the whole-image pass (see detector.tiling)."""
    h, w = img.shape[:2]
    fit = imgsz / max(h, w)
    if tiling.is_sure(first, fit):
        size, n = tiling.median_size(tiling.resolved(first, fit))
        return TilePlan(reason=f"sure: {n} particles ~{size * fit:.0f} px at the model input: whole image")
    scores = {fit: tiling.vote_score(first, fit, h * w)}
    seen = {fit: tiling.resolved(first, fit)}
    best = scores[fit]
    for ladder in tiling.vote_scales(fit):  # coarser, then finer scales, nearest first
        misses = 0
        for scale in ladder:
            det, area = _vote_pass(runner, img, scale)
            scores[scale], seen[scale] = tiling.vote_score(det, scale, area), tiling.resolved(det, scale)
            if scores[scale] > best:
                best, misses = scores[scale], 0
            elif best > 0:  # nothing resolved yet anywhere: the particles may only resolve further on
                misses += 1
                if misses >= tiling.VOTE_PATIENCE:
                    break
    winner = tiling.vote_winner(scores, {s: len(d) for s, d in seen.items()})
    if winner is None:
        return TilePlan(reason="too few particles to size at any scale: whole image")
    return tiling.plan_vote(tiling.median_size(seen[winner])[0], h, w, imgsz)


def predict_images(
    model,
    images: Sequence[str | Path],
    conf: float = 0.25,
    imgsz: int | None = None,
    device: str = "cpu",
    batch: int = 8,
    iou: float = 0.7,
    tile: str | int = "auto",
    on_plan: Callable[[Path, TilePlan], None] | None = None,
    skip_unreadable: bool = False,
    remove_info_bar: bool = False,
    on_image: Callable[[Path, Micrograph, int], None] | None = None,
    every_box: bool = False,
) -> Iterator[Detections | None]:
    """Detections (absolute px, project class ids, confidences) for each image, in order.

    `model` is a YOLO object from `detector.yolo_env.load_model`. `tile`: "auto" (scale-adaptive,
    see detector.tiling), "off" (whole image at the model input) or a tile size in px. `on_plan` is
    told how each image was run. An unreadable image raises InputError, or with `skip_unreadable`
    yields None in its place. Images go in small batches so memory stays flat on large folders.
    `remove_info_bar`: detect above a vendor information bar only. `on_image` is told each image as
    read (synthgen.readers.Micrograph: pixel size, raw data) and how many of its rows the model saw.
    The detections are the particles (`tiling.one_per_particle`: a box overlapping a more confident one
    by IoU > 0.5 is the same particle, whatever its class); `every_box` keeps every box the model
    gives, for ranking (evaluate's mAP).
    """
    imgsz = imgsz or trained_imgsz(model)
    tile = tiling.parse_tile(tile)
    runner = _Runner(model, conf, iou, imgsz, device)
    first_conf = min(conf, tiling.ESTIMATE_CONF)  # the first pass also feeds the size estimate
    for start in range(0, len(images), batch):
        paths = [Path(p) for p in images[start : start + batch]]
        arrays = [_read_or_none(p, skip_unreadable, remove_info_bar, on_image) for p in paths]
        readable = [(p, a) for p, a in zip(paths, arrays) if a is not None]
        if isinstance(tile, int):
            results = [runner.run_plan(img, _fixed_tiles(p, tile, imgsz, on_plan)) for p, img in readable]
        else:
            firsts = runner([a for _, a in readable], conf=first_conf) if readable else []
            results = [_auto_or_whole(runner, p, img, first, tile, conf, imgsz, on_plan) for (p, img), first in zip(readable, firsts)]
        done = iter(results)
        for a in arrays:  # in input order, None where an image could not be read
            if a is None:
                yield None
                continue
            det = next(done)
            yield det if every_box else det[tiling.one_per_particle(det, conf)]


def _fixed_tiles(path: Path, tile: int, imgsz: int, on_plan) -> TilePlan:
    plan = TilePlan(imgsz / tile, imgsz, imgsz // 4, f"{tile}-px tiles")
    if on_plan:
        on_plan(path, plan)
    return plan


def _auto_or_whole(runner: _Runner, path: Path, img: np.ndarray, first: Detections, tile: str, conf: float,
                   imgsz: int, on_plan) -> Detections:  # fmt: skip
    """One image's detections from its whole-image pass `first`, and the auto plan when `tile` is auto."""
    plan = plan_for(runner, img, first, imgsz) if tile == "auto" else TilePlan(reason="tiling off")
    result = runner.run_plan(img, plan) if plan.rescaled else None
    if on_plan:
        on_plan(path, plan)
    if result is None:
        keep = first.confidence >= conf if len(first) else np.zeros(0, bool)
        result = first[keep] if len(first) else first
    return result


def equivalent_diameter(det: Detections) -> np.ndarray:
    """Equivalent diameter in px of each box: sqrt(w*h) (see module docstring)."""
    wh = det.wh.astype(np.float64)
    return np.sqrt(np.clip(wh[:, 0] * wh[:, 1], 0, None))


@dataclass(frozen=True)
class SizeStats:
    """Size statistics of one class over a whole set (Okunev 2020, Tables 4-5)."""

    name: str
    count: int
    mean: float
    std: float  # sample standard deviation (ddof=1)
    sem: float  # std / sqrt(count)
    unit: str = "px"


def size_stats(name: str, sizes: np.ndarray, unit: str = "px") -> SizeStats:
    sizes = np.asarray(sizes, np.float64)
    n = len(sizes)
    mean = float(sizes.mean()) if n else float("nan")
    std = float(sizes.std(ddof=1)) if n > 1 else float("nan")
    sem = std / np.sqrt(n) if n > 1 else float("nan")
    return SizeStats(name, n, mean, std, float(sem), unit)
