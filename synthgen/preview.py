"""Contact sheet of generated images with their YOLO labels drawn (class colours, legend)."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import yaml

from synthgen.classes import CLASS_NAMES, canonical_class
from synthgen.errors import InputError
from synthgen.atomic import os_reason, write_bytes_atomic
from synthgen.templates import decode_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
# BGR; colour-blind-safe orange / sky blue, then fallbacks for unexpected class ids
COLOURS = [(0, 159, 230), (233, 180, 86), (115, 158, 0), (66, 228, 240), (167, 121, 204)]
TILE_WIDTH = 480
LEGEND_HEIGHT = 36


def read_yolo_boxes(
    label_path: Path, width: int, height: int, n_classes: int | None = None
) -> list[tuple[int, float, float, float, float]]:
    """(class, x0, y0, x1, y1) in pixels from a YOLO txt; InputError naming the bad line.

    Every value must be a finite number, the class an integer in 0..n_classes-1 and cx, cy, w, h
    fractions of the image in [0, 1]: a sheet never draws a label the training would reject."""
    boxes = []
    if not label_path.is_file():
        return boxes
    try:
        text = label_path.read_text()
    except UnicodeDecodeError:
        raise InputError("not a text file (expected YOLO 'class cx cy w h' lines)", label_path) from None
    for n, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        try:
            if len(parts) < 5:
                raise ValueError
            c, cx, cy, w, h = int(parts[0]), *map(float, parts[1:5])
        except (ValueError, TypeError):
            raise InputError(f"malformed YOLO line {line!r}: expected 'class cx cy w h'", label_path, n) from None
        if not all(math.isfinite(v) for v in (cx, cy, w, h)):
            raise InputError(f"not a finite number in {line.strip()!r} (NaN or inf)", label_path, n)
        if c < 0 or (n_classes is not None and c >= n_classes):
            known = f"0..{n_classes - 1}" if n_classes else "none"
            raise InputError(f"class {c} out of range (classes {known})", label_path, n)
        if not all(0 <= v <= 1 for v in (cx, cy, w, h)):
            raise InputError(f"box values outside 0..1 in {line.strip()!r} (YOLO uses fractions of the image)", label_path, n)
        boxes.append((c, (cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height))
    return boxes


def class_names(folder: Path) -> list[str]:
    """Class names from the dataset's data.yaml when present, else the project's."""
    y = folder / "data.yaml"
    if y.is_file():
        try:
            doc = yaml.safe_load(y.read_text())
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise InputError(f"malformed YAML: {str(e).splitlines()[0]}", y) from None
        if not isinstance(doc, dict):
            raise InputError("expected a mapping with 'names' (an ultralytics data.yaml)", y)
        names = doc.get("names")
        if isinstance(names, dict):
            return [str(names[k]) for k in sorted(names)]
        if isinstance(names, list):
            return [str(n) for n in names]
    return list(CLASS_NAMES)


def draw_labels(image: np.ndarray, boxes, thickness: int = 2) -> np.ndarray:
    """BGR copy of ``image`` with each box outlined in its class colour."""
    out = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image.copy()
    for c, x0, y0, x1, y1 in boxes:
        cv2.rectangle(out, (round(x0), round(y0)), (round(x1) - 1, round(y1) - 1), COLOURS[c % len(COLOURS)], thickness)
    return out


def contact_sheet(folder: str | Path, n: int = 12, cols: int = 4, tile_width: int = TILE_WIDTH) -> np.ndarray:
    """BGR sheet of the first ``n`` images of a YOLO folder (images/ + labels/) with labels drawn."""
    folder = Path(folder)
    image_dir = folder / "images" if (folder / "images").is_dir() else folder
    label_dir = folder / "labels" if (folder / "labels").is_dir() else image_dir
    images = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if image_dir.is_dir() else []
    if not images:
        raise InputError("no images found (expected images/ and labels/ as written by synthgen generate)", folder)
    if n < 1 or cols < 1:
        raise InputError("--n and --cols must be at least 1")
    names = class_names(folder)
    tiles = []
    for path in images[:n]:
        img = decode_image(path, cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise InputError("cannot read image (corrupt or not an image)", path)
        h, w = img.shape
        boxes = read_yolo_boxes(label_dir / f"{path.stem}.txt", w, h, len(names))
        tile = draw_labels(img, boxes, thickness=max(1, round(2 * w / tile_width)))
        tile = cv2.resize(tile, (tile_width, max(1, round(h * tile_width / w))), interpolation=cv2.INTER_AREA)
        cv2.putText(tile, f"{path.name}  {len(boxes)}", (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(tile)
    tile_h = max(t.shape[0] for t in tiles)
    cols = min(cols, len(tiles))
    rows = -(-len(tiles) // cols)
    sheet = np.full((LEGEND_HEIGHT + rows * (tile_h + 4), cols * (tile_width + 4), 3), 255, np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, cols)
        y, x = LEGEND_HEIGHT + r * (tile_h + 4), c * (tile_width + 4)
        sheet[y : y + tile.shape[0], x : x + tile_width] = tile
    x = 8
    for i, name in enumerate(names):
        colour = COLOURS[i % len(COLOURS)]
        cv2.rectangle(sheet, (x, 10), (x + 16, 26), colour, -1)
        label = canonical_class(name) or name
        cv2.putText(sheet, f"{i} {label}", (x + 22, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
        x += 40 + 12 * len(label)
    return sheet


def write_preview(folder: str | Path, out: str | Path, n: int = 12, cols: int = 4) -> Path:
    """Write the contact sheet atomically (format from the suffix of ``out``); returns ``out``."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".png", ".jpg", ".jpeg"):
        raise InputError("the sheet must be a .png or .jpg file", out)
    if out.is_dir():
        raise InputError("the sheet must be a file, not a folder", out)
    sheet = contact_sheet(folder, n, cols)
    ok, buf = cv2.imencode(suffix, sheet)
    if not ok:
        raise RuntimeError("cv2 could not encode the contact sheet")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(out, buf.tobytes())
    except OSError as e:
        raise InputError(f"cannot write the sheet: {os_reason(e)}", out) from None
    return out
