"""Model -> Detections per image, and the particle sizes scientists measure from them. No plotting.

Size: the *equivalent diameter* of a box is the diameter of the circle with the area of the ellipse
inscribed in the box, sqrt(4*(pi*w*h/4)/pi) = sqrt(w*h): the geometric mean of width and height.
For a round particle it is its diameter, for a cube seen face-on its edge length (to within the
corner rounding of real nanocubes); it does not depend on the box orientation.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synthgen.annotations import Detections
from synthgen.formats import IMAGE_SUFFIXES, class_map_from_names, list_images
from synthgen.errors import InputError

MAX_DETECTIONS = 1000  # dense micrographs (val-II) hold hundreds of particles; ultralytics' default is 300


def model_class_map(names: dict[int, str] | Sequence[str], source: str | Path | None = None) -> dict[int, int]:
    """Map a model's class ids onto project ids by name (cube, sphere and their aliases)."""
    return class_map_from_names(names, source if source is not None else "model")


def collect_images(inputs: Sequence[str | Path]) -> list[Path]:
    """Image files named directly or found in folders (a folder's images/ subfolder when it has one)."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = list_images(p / "images" if (p / "images").is_dir() else p)
            if not found:
                raise InputError("no images in this folder", p)
            out.extend(found)
        elif p.is_file():
            if p.suffix.lower() not in IMAGE_SUFFIXES:
                raise InputError(f"not an image (expected one of {' '.join(sorted(IMAGE_SUFFIXES))})", p)
            out.append(p)
        else:
            raise InputError("no such file or folder", p)
    names: dict[str, Path] = {}
    for p in out:  # outputs are named after the image: two inputs of one name would overwrite each other
        if p.name in names and names[p.name] != p:
            raise InputError(f"two images named {p.name!r} (also {names[p.name]}); predict them in separate runs", p)
        names[p.name] = p
    return out


def _to_detections(result, class_map: dict[int, int]) -> Detections:
    boxes = result.boxes
    if boxes is None or len(boxes) == 0:
        return Detections.empty(with_confidence=True)
    cls = boxes.cls.cpu().numpy().astype(np.int64)
    keep = np.isin(cls, list(class_map))
    mapped = np.array([class_map[c] for c in cls[keep]], np.int64)
    return Detections(boxes.xyxy.cpu().numpy()[keep], mapped, boxes.conf.cpu().numpy()[keep])


def trained_imgsz(model, default: int = 416) -> int:
    """The input size a loaded YOLO model was trained at (a model YAML has none: `default`, the paper's 416)."""
    size = getattr(model, "overrides", {}).get("imgsz")
    if isinstance(size, (list, tuple)):  # rectangular training: the long side
        size = max(size)
    return int(size) if size else default


def predict_images(
    model,
    images: Sequence[str | Path],
    conf: float = 0.25,
    imgsz: int | None = None,
    device: str = "cpu",
    batch: int = 8,
    iou: float = 0.7,
) -> Iterator[Detections]:
    """Detections (absolute px, project class ids, confidences) for each image, in order.

    `model` is a YOLO object from `detector.yolo_env.load_model`. Images go in small batches so memory
    stays flat on large folders.
    """
    class_map = model_class_map(model.names)
    imgsz = imgsz or trained_imgsz(model)
    for start in range(0, len(images), batch):
        chunk = [str(p) for p in images[start : start + batch]]
        results = model.predict(
            chunk, conf=conf, iou=iou, imgsz=imgsz, device=device, max_det=MAX_DETECTIONS, verbose=False
        )
        for r in results:
            yield _to_detections(r, class_map)


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
