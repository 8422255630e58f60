"""Cut particle templates from a labelled real micrograph and write a pattern file.

The paper's manual segmentation step (López Gutiérrez et al. 2022, §2.3), done in seconds: each
labelled particle that is whole (not cut by the image border) becomes an RGBA template, cropped
with `margin` px of background, whose alpha is its footprint: the polygon or instance mask when the
labels carry one, else an Otsu segmentation of the box.

Neighbours: with boxes or polygons only, a particle with a neighbour within `margin` px is skipped
(its crop would show part of the neighbour, and there is no telling which pixels are whose). With
an instance mask (the labels themselves, or `masks=` next to a label file) every particle is cut by
its own mask, however crowded: the alpha never reaches a neighbour's mask pixels, and the
neighbour pixels inside the crop are blanked (alpha 0, grey set to the local background level, the
median of the crop's pixels that belong to no particle) so nothing of them leaks in through the
feathered edge or later resampling. Particles that fail a test are skipped and counted by reason.
"""

from __future__ import annotations

import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from matplotlib.path import Path as MplPath
from shapely.geometry import Polygon, box

from synthgen.classes import CLASS_NAMES, canonical_class
from synthgen.atomic import staging_dir, swap_in_dir
from synthgen.errors import InputError
from synthgen.formats import read_label_file
from synthgen.pattern import format_pattern, template_paths
from synthgen.procedural import feather_alpha, write_png

MASK_SUFFIXES = {".png", ".tif", ".tiff", ".bmp"}  # lossless only: a JPEG cannot hold instance ids
SKIP_BORDER = "cut by the image border"
SKIP_SMALL = "smaller than 3 px"
SKIP_EMPTY = "empty footprint"
SKIP_NO_MASK = "no pixels in the instance mask"


def skip_neighbour(margin: int) -> str:
    return f"within {margin} px of a neighbour"


@dataclass(frozen=True)
class Particle:
    """One labelled particle in image pixels; `polygon` (k, 2) or `label` (mask id) when known."""

    xyxy: tuple[float, float, float, float]
    class_name: str
    polygon: np.ndarray | None = None
    label: int | None = None


@dataclass
class ExtractReport:
    """What `extract` did: where the pattern went and which particles were skipped, and why."""

    pattern_path: Path
    width: int
    height: int
    n_written: int
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (particle index, reason)
    n_blanked: int = 0  # templates whose crop held neighbour pixels, blanked to the background

    def skipped_counts(self) -> dict[str, int]:
        return dict(Counter(reason for _, reason in self.skipped))


# --------------------------------------------------------------------------- reading


def read_image(path: Path) -> np.ndarray:
    """The micrograph as uint8 grey (h, w) or BGR (h, w, 3) (synthgen.readers); InputError when unreadable."""
    from synthgen.readers import read_micrograph

    return read_micrograph(path).image  # vendor formats too; over 8 bits as the readers map them (bit depth, min..max or percentiles)


def read_instance_mask(path: Path, width: int, height: int) -> np.ndarray:
    """Instance-label image -> int64 (h, w) labels, 0 background; colour masks: one id per colour."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.size == 0:
        raise InputError("cannot read instance-mask image", path)
    if raw.ndim == 3:
        raw = raw[..., :3].astype(np.int64)
        if (raw[..., 0] == raw[..., 1]).all() and (raw[..., 1] == raw[..., 2]).all():
            labels = raw[..., 0]
        else:  # colour-coded instances: black is background, every other colour one particle
            labels = (raw[..., 0] << 16) | (raw[..., 1] << 8) | raw[..., 2]
    else:
        labels = raw.astype(np.int64)
    if labels.shape != (height, width):
        raise InputError(
            f"instance mask is {labels.shape[1]}x{labels.shape[0]} but the image is {width}x{height}", path
        )
    return labels


def mask_boxes(labels: np.ndarray) -> dict[int, tuple[float, float, float, float]]:
    """{label: pixel bounding box (x0, y0, x1, y1), exclusive ends} of every non-zero label."""
    ys, xs = np.nonzero(labels)
    if not len(ys):
        return {}
    ids, inv = np.unique(labels[ys, xs], return_inverse=True)
    big = np.iinfo(np.int64).max
    x0, y0 = np.full(len(ids), big), np.full(len(ids), big)
    x1, y1 = np.full(len(ids), -1), np.full(len(ids), -1)
    np.minimum.at(x0, inv, xs)
    np.minimum.at(y0, inv, ys)
    np.maximum.at(x1, inv, xs)
    np.maximum.at(y1, inv, ys)
    return {
        int(lab): (float(a), float(b), float(c) + 1.0, float(d) + 1.0) for lab, a, b, c, d in zip(ids, x0, y0, x1, y1)
    }


def particles_from_mask(labels: np.ndarray, class_name: str) -> list[Particle]:
    """One particle per non-zero label, with its pixel bounding box."""
    return [Particle(xyxy, class_name, label=lab) for lab, xyxy in sorted(mask_boxes(labels).items())]


def attach_mask(particles: list[Particle], labels: np.ndarray, mask_path: Path) -> list[Particle | None]:
    """Particles of a label file with their instance-mask footprints: line k is mask value k+1.

    Each particle's box becomes its mask's pixel box (the crop is cut around the footprint); a
    particle whose value does not occur in the mask is None. A mask value beyond the number of
    labelled particles means the mask does not belong to this label file: InputError.
    """
    boxes = mask_boxes(labels)
    extra = sorted(v for v in boxes if not 1 <= v <= len(particles))
    if extra:
        raise InputError(
            f"instance mask has value {extra[-1]} but the label file has {len(particles)} particles "
            "(expected value k+1 = the particle on line k, 0 = background)",
            mask_path,
        )
    return [
        Particle(boxes[k + 1], p.class_name, polygon=p.polygon, label=k + 1) if k + 1 in boxes else None
        for k, p in enumerate(particles)
    ]


def particles_from_labels(label_path: Path, image_path: Path, class_name: str | None) -> list[Particle]:
    """Particles of a YOLO / COCO / labelme / VOC label file."""
    det, polygons = read_label_file(label_path, image_path)
    out = []
    for xyxy, cid, poly in zip(det.xyxy, det.class_id, polygons):
        name = class_name or CLASS_NAMES[int(cid)]
        pts = None if poly is None else np.asarray(poly, np.float64).reshape(-1, 2)
        out.append(Particle(tuple(float(v) for v in xyxy), name, polygon=pts))
    return out


# --------------------------------------------------------------------------- selection


def _box_gap(a: tuple, b: tuple) -> float:
    """Chebyshev gap between two boxes: <= 0 when they touch or overlap."""
    return max(b[0] - a[2], a[0] - b[2], b[1] - a[3], a[1] - b[3])


def _close_pairs(particles: list[Particle], labels: np.ndarray | None, margin: int) -> set[int]:
    """Indices of particles with a neighbour closer than `margin` px (or touching when margin is 0)."""
    reach = max(margin, 1)
    close: set[int] = set()
    boxes = [p.xyxy for p in particles]
    shapes = [Polygon(p.polygon) if p.polygon is not None and len(p.polygon) >= 3 else box(*p.xyxy) for p in particles]
    shapes = [s if s.is_valid else s.buffer(0) for s in shapes]
    for i in range(len(particles)):
        for j in range(i + 1, len(particles)):
            if _box_gap(boxes[i], boxes[j]) >= reach + 1:
                continue  # far apart: the cheap box test settles it
            if labels is not None:
                near = _mask_near(labels, particles[i], particles[j], reach)
            else:
                near = shapes[i].distance(shapes[j]) < reach
            if near:
                close.update((i, j))
    return close


def _mask_near(labels: np.ndarray, a: Particle, b: Particle, reach: int) -> bool:
    """Whether mask b has a pixel within `reach` px of mask a (a dilated in a local window)."""
    h, w = labels.shape
    x0, y0 = max(int(a.xyxy[0]) - reach, 0), max(int(a.xyxy[1]) - reach, 0)
    x1, y1 = min(int(a.xyxy[2]) + reach, w), min(int(a.xyxy[3]) + reach, h)
    win = labels[y0:y1, x0:x1]
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
    grown = cv2.dilate((win == a.label).astype(np.uint8), kernel).astype(bool)
    return bool((grown & (win == b.label)).any())


def select_particles(
    particles: list[Particle],
    width: int,
    height: int,
    margin: int,
    labels: np.ndarray | None = None,
    skip_close: bool = True,
) -> tuple[list[int], list[tuple[int, str]]]:
    """(indices to cut, [(index, reason)] skipped): border-cut, tiny and (when `skip_close`) crowded
    particles are skipped. `skip_close=False` is for mask footprints, whose neighbours are blanked."""
    close = _close_pairs(particles, labels, margin) if skip_close else set()
    keep, skipped = [], []
    for i, p in enumerate(particles):
        x0, y0, x1, y1 = p.xyxy
        if x0 < 1 or y0 < 1 or x1 > width - 1 or y1 > height - 1:
            skipped.append((i, SKIP_BORDER))
        elif min(x1 - x0, y1 - y0) < 3:
            skipped.append((i, SKIP_SMALL))
        elif i in close:
            skipped.append((i, skip_neighbour(margin)))
        else:
            keep.append(i)
    return keep, skipped


# --------------------------------------------------------------------------- footprints


def crop_window(xyxy: tuple, margin: int, width: int, height: int) -> tuple[int, int, int, int]:
    """Integer window of the box grown by `margin`, clamped to the image."""
    x0, y0, x1, y1 = xyxy
    return (
        max(int(np.floor(x0)) - margin, 0),
        max(int(np.floor(y0)) - margin, 0),
        min(int(np.ceil(x1)) + margin, width),
        min(int(np.ceil(y1)) + margin, height),
    )


def polygon_footprint(polygon: np.ndarray, window: tuple[int, int, int, int]) -> np.ndarray:
    """Boolean mask of the pixels of the window whose centres lie inside the polygon (image px).

    A centre test, not cv2.fillPoly: fillPoly also paints the outline, one pixel too many per side.
    """
    x0, y0, x1, y1 = window
    xs, ys = np.meshgrid(np.arange(x0, x1) + 0.5, np.arange(y0, y1) + 0.5)
    inside = MplPath(polygon).contains_points(np.column_stack([xs.ravel(), ys.ravel()]))
    return inside.reshape(y1 - y0, x1 - x0)


def otsu_footprint(grey: np.ndarray, box_in_crop: tuple[int, int, int, int]) -> np.ndarray:
    """Particle vs. background inside the box by Otsu, polarity from the margin around the box.

    The largest connected component, holes filled (SEM particles with a dark centre and a bright
    rim stay whole), or its convex hull when the rim is open. Falls back to the whole box when
    Otsu finds nothing sensible.
    """
    bx0, by0, bx1, by1 = box_in_crop
    inside = np.zeros(grey.shape, bool)
    inside[by0:by1, bx0:bx1] = True
    roi = grey[by0:by1, bx0:bx1]
    fallback = inside.copy()
    if roi.size < 9 or int(roi.max()) - int(roi.min()) < 8:
        return fallback
    thr, _ = cv2.threshold(np.ascontiguousarray(roi), 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    ring = grey[~inside]
    if ring.size < 8:  # no margin: the box outline is the best background sample there is
        ring = np.concatenate([roi[0], roi[-1], roi[:, 0], roi[:, -1]])
    bright_particle = np.median(ring) <= thr
    fg = (roi > thr) if bright_particle else (roi <= thr)
    n, comp, stats, _ = cv2.connectedComponentsWithStats(fg.astype(np.uint8), connectivity=8)
    if n < 2:
        return fallback
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    part = (comp == best).astype(np.uint8)
    padded = np.pad(part, 1)
    outside = padded.copy()
    cv2.floodFill(outside, None, (0, 0), 1)
    filled = (padded | (1 - outside))[1:-1, 1:-1].astype(np.uint8)
    # A bright rim broken in one place does not fill; cubes and spheres are convex, so take the hull.
    contours, _ = cv2.findContours(filled, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull = np.zeros_like(filled)
    cv2.fillPoly(hull, [cv2.convexHull(np.vstack(contours))], 1)
    if filled.sum() < 0.8 * hull.sum():
        filled = hull
    filled = filled.astype(bool)
    if filled.sum() < 0.15 * roi.size:
        return fallback
    out = np.zeros(grey.shape, bool)
    out[by0:by1, bx0:bx1] = filled
    return out


def background_level(image: np.ndarray, labels: np.ndarray, window: tuple[int, int, int, int]) -> np.ndarray:
    """Median grey (or BGR) of the pixels of `window` that belong to no particle.

    Crowded windows with too few such pixels (< 16) are grown, up to 4 times, by their own size;
    failing that, the whole image's unlabelled pixels, then the window itself, are used.
    """
    height, width = image.shape[:2]
    x0, y0, x1, y1 = window
    for _ in range(5):
        win = image[y0:y1, x0:x1]
        free = labels[y0:y1, x0:x1] == 0
        if free.sum() >= 16:
            return np.median(win[free], axis=0)
        gx, gy = max(x1 - x0, 1), max(y1 - y0, 1)
        x0, y0, x1, y1 = max(x0 - gx, 0), max(y0 - gy, 0), min(x1 + gx, width), min(y1 + gy, height)
    free = labels == 0
    if free.any():
        return np.median(image[free], axis=0)
    x0, y0, x1, y1 = window
    return np.median(image[y0:y1, x0:x1].reshape(-1, *image.shape[2:]), axis=0)


def neighbours_in_window(labels: np.ndarray, particle: Particle, margin: int) -> bool:
    """Whether the particle's crop window holds pixels of another particle's mask."""
    x0, y0, x1, y1 = crop_window(particle.xyxy, margin, labels.shape[1], labels.shape[0])
    win = labels[y0:y1, x0:x1]
    return bool(((win != 0) & (win != particle.label)).any())


def cut_template(
    image: np.ndarray, particle: Particle, margin: int, labels: np.ndarray | None = None
) -> np.ndarray | None:
    """RGBA template (grey in RGB) of one particle, or None when its footprint is empty.

    With `labels` (an instance mask) the footprint is the particle's own mask; pixels of other
    particles in the crop get alpha 0 and the local background level as grey (`background_level`).
    """
    height, width = image.shape[:2]
    window = crop_window(particle.xyxy, margin, width, height)
    x0, y0, x1, y1 = window
    crop = image[y0:y1, x0:x1]
    others = None
    if labels is not None:
        win = labels[y0:y1, x0:x1]
        mask = win == particle.label
        others = (win != 0) & ~mask
        if others.any():
            crop = crop.copy()
            crop[others] = np.round(background_level(image, labels, window)).astype(np.uint8)
        grey = crop if crop.ndim == 2 else cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    else:
        grey = crop if crop.ndim == 2 else cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
        if particle.polygon is not None and len(particle.polygon) >= 3:
            mask = polygon_footprint(particle.polygon, window)
        else:
            bx = crop_window(particle.xyxy, 0, width, height)
            mask = otsu_footprint(grey, (bx[0] - x0, bx[1] - y0, bx[2] - x0, bx[3] - y0))
    if not mask.any():
        return None
    alpha = feather_alpha(mask)
    if others is not None:
        alpha[others] = 0  # the 1 px dilation and feathering never reach a neighbour
    rgb = np.dstack([grey] * 3) if crop.ndim == 2 else cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)
    return np.dstack([rgb, alpha])


# --------------------------------------------------------------------------- writing


def pattern_text(
    image_path: Path,
    label_path: Path,
    width: int,
    height: int,
    margin: int,
    entries,
    report,
    mask_path: Path | None = None,
) -> str:
    """pattern.txt with a header saying where the templates came from."""
    counts = ", ".join(f"{n} {r}" for r, n in report.skipped_counts().items()) or "none"
    masks = f", masks {mask_path.name}" if mask_path is not None else ""
    comments = [
        f"templates cut from {image_path.name} by synthgen extract "
        f"(labels {label_path.name}{masks}, margin {margin} px)",
        f"{len(entries)} written ({report.n_blanked} with neighbours blanked); skipped: {counts}",
    ]
    return format_pattern(comments, (width, height), entries)


def _prepare_out(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError("output exists and is not a folder", out_dir)
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not force:
            raise InputError("output folder is not empty (use --force to replace it)", out_dir)
        # --force replaces a previous pattern folder, never an arbitrary folder full of other files.
        if not {p.name for p in out_dir.iterdir()} <= {"pattern.txt", "templates"}:
            raise InputError("refusing to replace a folder that holds more than pattern.txt and templates/", out_dir)


def extract(
    image_path: str | Path,
    label_path: str | Path,
    out_dir: str | Path,
    margin: int = 4,
    class_name: str | None = None,
    force: bool = False,
    mask_path: str | Path | None = None,
    isolated_only: bool = False,
) -> ExtractReport:
    """Cut every whole labelled particle of `image_path` into `out_dir` as a pattern.

    Writes `out_dir/pattern.txt` (first item: the micrograph's `WIDTH HEIGHT`) and
    `out_dir/templates/tNN.png`, all at once (built in a temporary folder, then renamed), so bad
    input leaves nothing behind. `class_name` overrides the labels' classes (mask images: default cube).

    `label_path` is a label file (YOLO, COCO, labelme, VOC) or an instance-mask image. `mask_path`
    adds an instance mask to a label file (value k+1 = the particle on line k, 0 = background): the
    classes come from the labels, the footprints from the mask. With a mask, particles near or
    touching neighbours are cut by their own mask with the neighbours blanked (see the module
    docstring) unless `isolated_only`; without one they are skipped.
    """
    image_path, label_path, out_dir = Path(image_path), Path(label_path), Path(out_dir)
    mask_path = Path(mask_path) if mask_path is not None else None
    if margin < 0:
        raise InputError(f"margin must be >= 0, got {margin}")
    if class_name is not None and canonical_class(class_name) is None:
        raise InputError(f"unknown class {class_name!r}; expected one of {', '.join(CLASS_NAMES)}")
    cls = canonical_class(class_name) if class_name is not None else None
    _prepare_out(out_dir, force)
    image = read_image(image_path)
    height, width = image.shape[:2]
    if not label_path.is_file():
        raise InputError("no such label file", label_path)
    labels = None
    no_mask: list[int] = []
    if label_path.suffix.lower() in MASK_SUFFIXES:
        if mask_path is not None:
            raise InputError("--labels is already an instance mask; --masks goes with a label file", mask_path)
        labels = read_instance_mask(label_path, width, height)
        particles = particles_from_mask(labels, cls or "cube")
    else:
        particles = particles_from_labels(label_path, image_path, cls)
        if mask_path is not None:
            if not mask_path.is_file():
                raise InputError("no such instance-mask image", mask_path)
            if mask_path.suffix.lower() not in MASK_SUFFIXES:
                raise InputError(
                    f"instance mask must be a lossless image ({', '.join(sorted(MASK_SUFFIXES))})", mask_path
                )
            labels = read_instance_mask(mask_path, width, height)
            attached = attach_mask(particles, labels, mask_path)
            no_mask = [i for i, p in enumerate(attached) if p is None]
            particles = [p if p is not None else particles[i] for i, p in enumerate(attached)]
    if not particles:
        raise InputError("no labelled particles", label_path)

    # Particles without mask pixels are left out of the selection (their box would be checked
    # against masks they have none of) and reported on their own line.
    ids = sorted(set(range(len(particles))) - set(no_mask))
    keep_sub, skipped_sub = select_particles(
        [particles[i] for i in ids], width, height, margin, labels, skip_close=labels is None or isolated_only
    )
    keep = [ids[k] for k in keep_sub]
    skipped = [(ids[k], reason) for k, reason in skipped_sub] + [(i, SKIP_NO_MASK) for i in no_mask]
    templates = []
    n_blanked = 0
    for i in keep:
        rgba = cut_template(image, particles[i], margin, labels)
        if rgba is None:
            skipped.append((i, SKIP_EMPTY))
        else:
            templates.append((particles[i].class_name, rgba))
            n_blanked += int(labels is not None and neighbours_in_window(labels, particles[i], margin))
    skipped.sort()
    report = ExtractReport(out_dir / "pattern.txt", width, height, len(templates), skipped, n_blanked)
    if not templates:
        counts = ", ".join(f"{n} {r}" for r, n in report.skipped_counts().items())
        raise InputError(f"no particle could be cut out of {len(particles)} labelled ({counts})", label_path)

    entries = list(zip(template_paths(len(templates)), (c for c, _ in templates)))
    tmp = staging_dir(out_dir)
    try:
        (tmp / "templates").mkdir()
        for (rel, _), (_, rgba) in zip(entries, templates):
            write_png(tmp / rel, rgba)
        text = pattern_text(image_path, label_path, width, height, margin, entries, report, mask_path)
        (tmp / "pattern.txt").write_text(text)
        swap_in_dir(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report
