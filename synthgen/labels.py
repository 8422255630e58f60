"""PlacedParticle -> YOLO lines, COCO dict, ultralytics data.yaml and JSON text (generate.py writes them).

Labels describe ``PlacedParticle.shape``: the footprint, or its visible part when later particles
cover some of it (occlusion); boxes are the tight boxes of that geometry.

Class ids: YOLO and data.yaml use the project indices (0 cube, 1 sphere). COCO category ids are
those plus one (1 cube, 2 sphere), because COCO tools treat id 0 as background.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
import yaml
from shapely.geometry import MultiPolygon, Polygon

from synthgen import __version__
from synthgen.classes import CLASS_NAMES
from synthgen.placement import PlacedParticle

COCO_ID_OFFSET = 1


def clipped_box(footprint: Polygon | MultiPolygon, width: int, height: int) -> tuple[float, float, float, float]:
    """Tight axis-aligned box of a footprint, clipped to the image: (x0, y0, x1, y1) pixels."""
    x0, y0, x1, y1 = footprint.bounds
    return max(x0, 0.0), max(y0, 0.0), min(x1, float(width)), min(y1, float(height))


def clipped_boxes(particles: Sequence[PlacedParticle], width: int, height: int) -> np.ndarray:
    """(n, 4) ``clipped_box`` of every particle, in one vectorised call."""
    if not particles:
        return np.zeros((0, 4))
    b = shapely.bounds(np.array([p.shape for p in particles], dtype=object))
    return np.clip(b, 0.0, [width, height, width, height])


def yolo_lines(particles: Sequence[PlacedParticle], width: int, height: int) -> list[str]:
    """One ``class cx cy w h`` line per particle, normalised to [0, 1], 6 decimals."""
    b = clipped_boxes(particles, width, height)
    cxcywh = np.stack([(b[:, 0] + b[:, 2]) / 2 / width, (b[:, 1] + b[:, 3]) / 2 / height,
                       (b[:, 2] - b[:, 0]) / width, (b[:, 3] - b[:, 1]) / height], axis=1)
    return [f"{p.class_id} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}" for p, (cx, cy, w, h) in zip(particles, cxcywh.tolist())]


def yolo_text(particles: Sequence[PlacedParticle], width: int, height: int) -> str:
    lines = yolo_lines(particles, width, height)
    return "\n".join(lines) + "\n" if lines else ""


@dataclass(frozen=True, slots=True)
class LabelledImage:
    file_name: str  # relative to the dataset root, e.g. images/000001.png
    width: int
    height: int
    particles: tuple[PlacedParticle, ...]


def coco_dataset(images: Sequence[LabelledImage], description: str = "synthgen synthetic SEM micrographs") -> dict:
    """COCO instances dict (info, licenses, images, annotations, categories); ids start at 1."""
    out_images, annotations = [], []
    ann_id = 0
    for image_id, im in enumerate(images, start=1):
        out_images.append({"id": image_id, "file_name": im.file_name, "width": im.width, "height": im.height})
        boxes = np.round(clipped_boxes(im.particles, im.width, im.height), 2).tolist()
        shapes = np.array([p.shape for p in im.particles], dtype=object)
        areas = np.round(shapely.area(shapes), 2).tolist()
        for p, (x0, y0, x1, y1), area, seg in zip(im.particles, boxes, areas, segmentations(shapes)):
            ann_id += 1
            annotations.append(
                {
                    "id": ann_id,
                    "image_id": image_id,
                    "category_id": p.class_id + COCO_ID_OFFSET,
                    "segmentation": seg,
                    "area": area,
                    "bbox": [x0, y0, round(x1 - x0, 2), round(y1 - y0, 2)],
                    "iscrowd": 0,
                }
            )
    return {
        # No date: the file must be byte-identical for the same seed.
        "info": {"description": description, "version": __version__, "contributor": "synthgen"},
        "licenses": [],
        "images": out_images,
        "annotations": annotations,
        "categories": [
            {"id": i + COCO_ID_OFFSET, "name": name, "supercategory": "particle"} for i, name in enumerate(CLASS_NAMES)
        ],
    }


def segmentations(shapes: np.ndarray) -> list[list[list[float]]]:
    """COCO polygon list of each shape: the outline of each visible part (a particle partly under
    another may show as several parts), vertices rounded to 0.01 px; all rings in one pass."""
    parts, owner = shapely.get_parts(shapes, return_index=True)
    xy, ring = shapely.get_coordinates(shapely.get_exterior_ring(parts), return_index=True)
    xy = np.round(xy, 2)
    ends = np.cumsum(np.bincount(ring, minlength=len(parts)))[:-1]
    rings = [r[:-1].ravel().tolist() for r in np.split(xy, ends)]  # each ring closes on its first vertex
    out: list[list[list[float]]] = [[] for _ in range(len(shapes))]
    for k, r in zip(owner.tolist(), rings):
        out[k].append(r)
    return out


def data_yaml_text(root: str | Path) -> str:
    """Ultralytics dataset file; ``path`` is absolute because ultralytics resolves relative ones
    against its own datasets folder, not the YAML's."""
    doc = {
        "path": str(Path(root).resolve()),
        "train": "images",
        "val": "images",
        "names": dict(enumerate(CLASS_NAMES)),
    }
    return yaml.safe_dump(doc, sort_keys=False)


def class_counts(particles: Sequence[PlacedParticle]) -> dict[str, int]:
    ids = [p.class_id for p in particles]
    return {name: ids.count(i) for i, name in enumerate(CLASS_NAMES)}


def json_text(doc: dict, compact: bool = False) -> str:
    """JSON text; ``compact`` uses the C encoder (indenting falls back to slow pure Python)."""
    return (json.dumps(doc, separators=(",", ":")) if compact else json.dumps(doc, indent=1)) + "\n"
