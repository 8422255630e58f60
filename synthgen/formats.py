"""Read labelled images in the formats scientists have: YOLO txt, Pascal VOC xml, COCO json, labelme json.

Pure ``parse_*`` functions turn text or decoded JSON into :class:`Detections`; the thin ``read_*``
functions find the files. Class names are mapped by name onto the project classes (cube, sphere);
an unknown name is an :class:`InputError` that lists every unknown name at once.

Malformed files (not numbers, coordinates out of range, inverted boxes, unknown classes, not UTF-8)
are errors. Flaws that real published data has are warnings (:mod:`synthgen.warnings_log`, one line
naming the file and line; errors under ``--strict``), and the flawed item is left out:

- a degenerate box (width or height under ``MIN_BOX_PX`` pixels, e.g. zero): the box is skipped;
- a duplicate box (same class and coordinates as an earlier box of the same image): skipped;
- an unreadable, corrupt or truncated image: the image is skipped (an error when none is left);
- a label file, or a COCO ``images`` entry, whose image is missing: its labels are skipped;
- an image without any label file: kept, as an image without particles.
"""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import yaml
from PIL import Image, UnidentifiedImageError
from shapely.geometry import Polygon

from synthgen.annotations import Detections, Sample
from synthgen.classes import CLASS_NAMES, canonical_class
from synthgen.errors import InputError
from synthgen.instance_masks import mask_file_for
from synthgen.warnings_log import (
    IMAGE_SKIPPED,
    IMAGE_WITHOUT_LABELS,
    LABEL_SKIPPED,
    LABELS_WITHOUT_IMAGE,
    warn,
)

# raster images, and the microscope files synthgen.readers reads (DM3/DM4, EMD, height maps)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dm3", ".dm4", ".emd", ".asc", ".gwy", ".sxm"}
_COORD_TOLERANCE = 1e-3  # labelling tools round; a hair outside [0, 1] is not a defect
MIN_BOX_PX = 1.0  # a labelled box thinner than this (in pixels) is degenerate: warned about and skipped


def read_text(path: str | Path) -> str:
    """A label/yaml/json file's text (UTF-8, BOM allowed); InputError naming the file when it cannot be
    read or is not UTF-8 text (UTF-16, binary)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError("no such file", path) from None
    except IsADirectoryError:
        raise InputError("is a folder, not a file", path) from None
    except OSError as e:
        raise InputError(f"cannot read file: {e.strerror or e}", path) from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError("file is UTF-16 encoded: save it as UTF-8", path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise InputError(f"not a UTF-8 text file (byte 0x{data[e.start]:02x}; binary?)", path, line) from None
    if "\x00" in text:
        raise InputError("not a text file (holds NUL bytes; binary or UTF-16 without BOM?)", path, text.count("\n", 0, text.index("\x00")) + 1)
    return text


def _degenerate(w_px: float, h_px: float, min_px: float = MIN_BOX_PX) -> bool:
    return w_px < min_px or h_px < min_px


def _skip_degenerate(w_px: float, h_px: float, what: str, source, line: int | None) -> None:
    warn(f"degenerate {what} ({w_px:.3g} x {h_px:.3g} px, under {MIN_BOX_PX:g} px): skipped", source, line, LABEL_SKIPPED)


def _skip_duplicate(what: str, first: str, source, line: int | None) -> None:
    warn(f"duplicate {what}: same class and box as {first}: skipped", source, line, LABEL_SKIPPED)


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file, read from its header; InputError when unreadable."""
    if Path(path).suffix.lower() in {".dm3", ".dm4", ".emd", ".asc", ".gwy", ".sxm"}:
        from synthgen.readers import micrograph_size

        return micrograph_size(path)
    try:
        with Image.open(path) as im:
            return im.size
    except FileNotFoundError:
        raise InputError("no such image", path) from None
    except (UnidentifiedImageError, OSError, ValueError, ImportError):
        # ImportError: once imported, ultralytics patches Image.open to reach for the pi-heif plugin
        # on any unidentified file
        raise InputError("cannot read image (corrupt or not an image)", path) from None


def check_image(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image that decodes completely; InputError when it is unreadable, corrupt or
    truncated. A JPEG that only lacks its end-of-image marker is complete (ultralytics repairs those)."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            size = im.size
            im.load()
        return size
    except FileNotFoundError:
        raise InputError("no such image", path) from None
    except PermissionError:
        raise InputError("cannot read image: permission denied", path) from None
    except (UnidentifiedImageError, OSError, ValueError, ImportError, SyntaxError) as e:
        if "truncated" in str(e) and path.suffix.lower() in (".jpg", ".jpeg") and _jpeg_only_lacks_eoi(path):
            return size
        what = "truncated" if "truncated" in str(e) else "corrupt or not an image"
        raise InputError(f"cannot read image ({what})", path) from None


def _jpeg_only_lacks_eoi(path: Path) -> bool:
    """True when the JPEG decodes completely once its end marker is added: libjpeg fills data it never
    got with flat mid-grey, so a truly truncated file ends in rows of exactly 128."""
    data = path.read_bytes()
    if data.endswith(b"\xff\xd9"):
        return False
    try:
        with Image.open(io.BytesIO(data + b"\xff\xd9")) as im:
            tail = np.asarray(im.convert("L"))[-8:]
    except Exception:  # noqa: BLE001 - any decoder failure means "not repairable"
        return False
    return not bool((tail == 128).all())


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def class_map_from_names(names: Sequence[str] | Mapping[int, str], source: str | Path) -> dict[int, int]:
    """Map a dataset's class ids onto project class ids by name; InputError listing unknown names."""
    items = names.items() if isinstance(names, Mapping) else enumerate(names)
    mapping, unknown = {}, []
    for idx, name in items:
        canon = canonical_class(str(name))
        if canon is None:
            unknown.append(str(name))
        else:
            mapping[int(idx)] = CLASS_NAMES.index(canon)
    if unknown:
        raise InputError(_unknown_names_msg(unknown), source)
    return mapping


def _unknown_names_msg(unknown: Sequence[str]) -> str:
    names = ", ".join(repr(n) for n in sorted(set(unknown)))
    return f"unknown class name(s) {names}; known: {', '.join(CLASS_NAMES)} (and aliases such as quasi-sphere, nanocube)"


def _project_class(name: str, unknown: list[str]) -> int:
    canon = canonical_class(name)
    if canon is None:
        unknown.append(name)
        return -1
    return CLASS_NAMES.index(canon)


def parse_yolo(
    text: str,
    width: int,
    height: int,
    source: str | Path | None = None,
    n_classes: int = len(CLASS_NAMES),
    with_confidence: bool = False,
    class_map: Mapping[int, int] | None = None,
) -> Detections:
    """YOLO lines ``class cx cy w h [conf]`` (normalised) -> absolute-pixel Detections.

    ``class_map`` maps the file's class ids onto project ids (from its data.yaml / classes.txt);
    without it ids must lie in ``0..n_classes-1``. A negative width or height is an error; a label box
    under ``MIN_BOX_PX`` pixels (a detection box of zero size) and a repeated label line are skipped
    with a warning.
    """
    boxes, classes, confs = [], [], []
    seen: dict[tuple, int] = {}
    n_fields = 6 if with_confidence else 5
    for lineno, raw in enumerate(text.splitlines(), start=1):
        parts = raw.split()
        if not parts:
            continue
        if len(parts) != n_fields:
            want = "class cx cy w h conf" if with_confidence else "class cx cy w h"
            raise InputError(f"expected {n_fields} numbers '{want}', got {len(parts)}", source, lineno)
        try:
            cls_f = float(parts[0])
            vals = [float(v) for v in parts[1:]]
        except ValueError:
            raise InputError(f"not a number in {raw.strip()!r}", source, lineno) from None
        if not np.isfinite(cls_f) or cls_f != int(cls_f):
            raise InputError(f"class {parts[0]} is not an integer", source, lineno)
        cls = int(cls_f)
        if class_map is not None:
            if cls not in class_map:
                raise InputError(f"class {cls} out of range (known ids: {sorted(class_map)})", source, lineno)
            cls = class_map[cls]
        elif not 0 <= cls < n_classes:
            raise InputError(f"class {cls} out of range 0..{n_classes - 1}", source, lineno)
        cx, cy, w, h = vals[:4]
        if not all(np.isfinite(vals)):
            raise InputError(f"non-finite value in {raw.strip()!r}", source, lineno)
        if w < 0 or h < 0:
            raise InputError(f"box width and height must not be negative, got {w:g} {h:g}", source, lineno)
        x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
        tol = _COORD_TOLERANCE
        if min(x1, y1) < -tol or max(x2, y2) > 1 + tol:
            raise InputError(
                f"box {cx:g} {cy:g} {w:g} {h:g} out of range: YOLO coordinates are normalised to [0, 1]",
                source,
                lineno,
            )
        box = [max(x1, 0) * width, max(y1, 0) * height, min(x2, 1) * width, min(y2, 1) * height]
        w_px, h_px = box[2] - box[0], box[3] - box[1]
        if _degenerate(w_px, h_px, 1e-9 if with_confidence else MIN_BOX_PX):
            _skip_degenerate(w_px, h_px, "detection box" if with_confidence else "box", source, lineno)
            continue
        if not with_confidence:
            key = (cls, cx, cy, w, h)
            if key in seen:
                _skip_duplicate("box", f"line {seen[key]}", source, lineno)
                continue
            seen[key] = lineno
        boxes.append(box)
        classes.append(cls)
        if with_confidence:
            confs.append(vals[4])
    if not boxes:
        return Detections.empty(with_confidence)
    return Detections(np.array(boxes), np.array(classes), np.array(confs) if with_confidence else None)


def parse_voc(xml_text: str, source: str | Path | None = None) -> tuple[int, int, Detections, list[str]]:
    """Pascal VOC xml (labelImg's default) -> (width, height, Detections, unknown class names)."""
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as e:
        raise InputError(f"malformed VOC xml: {e}", source, e.position[0]) from None
    size = root.find("size")
    try:
        width = int(float(size.findtext("width")))
        height = int(float(size.findtext("height")))
    except (AttributeError, TypeError, ValueError):
        width = height = 0  # labelImg sometimes writes 0; the caller reads the image header instead
    boxes, classes, unknown = [], [], []
    seen: dict[tuple, int] = {}
    lines = _tag_lines(xml_text, "<object")
    for i, obj in enumerate(root.iter("object")):
        name = (obj.findtext("name") or "").strip()
        bb = obj.find("bndbox")
        line = lines[i] if i < len(lines) else None
        try:
            box = [float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")]
        except (AttributeError, TypeError, ValueError):
            raise InputError(f"object {name!r} has no valid bndbox", source, line) from None
        if not all(np.isfinite(box)):
            raise InputError(f"object {name!r} has a non-finite bndbox {box}", source, line)
        if box[2] < box[0] or box[3] < box[1]:
            raise InputError(f"object {name!r} has an inverted bndbox {box} (xmax < xmin or ymax < ymin)", source, line)
        if _degenerate(box[2] - box[0], box[3] - box[1]):
            _skip_degenerate(box[2] - box[0], box[3] - box[1], f"bndbox of object {i + 1} ({name!r})", source, line)
            continue
        key = (name, *box)
        if key in seen:
            _skip_duplicate(f"object {i + 1} ({name!r})", f"object {seen[key] + 1}", source, line)
            continue
        seen[key] = i
        boxes.append(box)
        classes.append(_project_class(name, unknown))
    det = Detections(np.array(boxes).reshape(-1, 4), np.array(classes, dtype=np.int64))
    return width, height, det, unknown


def _tag_lines(text: str, tag: str) -> list[int]:
    """1-based line of each occurrence of ``tag`` in ``text`` (to name the line of a VOC object)."""
    out, start = [], 0
    while (k := text.find(tag, start)) >= 0:
        out.append(text.count("\n", 0, k) + 1)
        start = k + len(tag)
    return out


def _polygon_box(points: np.ndarray) -> list[float]:
    return [float(points[:, 0].min()), float(points[:, 1].min()), float(points[:, 0].max()), float(points[:, 1].max())]


def parse_labelme(data: dict, source: str | Path | None = None) -> tuple[int, int, Detections, list, list[str]]:
    """labelme json -> (width, height, Detections, polygons, unknown class names)."""
    boxes, classes, polys, unknown = [], [], [], []
    seen: dict[tuple, int] = {}
    try:
        width, height = int(data.get("imageWidth") or 0), int(data.get("imageHeight") or 0)
        shapes = data["shapes"]
        if not all(isinstance(shape, dict) for shape in shapes):
            raise TypeError
    except (KeyError, TypeError, ValueError, AttributeError):
        raise InputError("not a labelme json (needs 'shapes': a list of objects)", source) from None
    for i, shape in enumerate(shapes):
        try:
            pts = np.asarray(shape.get("points", []), dtype=np.float64).reshape(-1, 2)
        except (TypeError, ValueError):
            raise InputError(f"shape {i} ({shape.get('label')!r}) has malformed points", source) from None
        if not np.isfinite(pts).all():
            raise InputError(f"shape {i} ({shape.get('label')!r}) has non-finite points", source)
        kind = shape.get("shape_type") or "polygon"
        if len(pts) == 0:
            raise InputError(f"shape {i} ({shape.get('label')!r}) has no points", source)
        poly = None
        if kind == "circle" and len(pts) == 2:
            r = float(np.hypot(*(pts[1] - pts[0])))
            box = [pts[0, 0] - r, pts[0, 1] - r, pts[0, 0] + r, pts[0, 1] + r]
        elif kind in ("rectangle", "circle") or len(pts) < 3:
            box = _polygon_box(pts)
        else:
            box, poly = _polygon_box(pts), pts
        if _degenerate(box[2] - box[0], box[3] - box[1]):
            _skip_degenerate(box[2] - box[0], box[3] - box[1], f"shape {i} ({shape.get('label')!r})", source, None)
            continue
        key = (str(shape.get("label", "")), *(float(v) for v in box))
        if key in seen:
            _skip_duplicate(f"shape {i} ({shape.get('label')!r})", f"shape {seen[key]}", source, None)
            continue
        seen[key] = i
        boxes.append(box)
        polys.append(poly)
        classes.append(_project_class(str(shape.get("label", "")), unknown))
    det = Detections(np.array(boxes).reshape(-1, 4), np.array(classes, dtype=np.int64))
    return width, height, det, polys, unknown


def parse_coco(data: dict, source: str | Path | None = None) -> dict[str, tuple[int, int, Detections, list]]:
    """COCO instances json -> {file_name: (width, height, Detections, polygons)}; InputError on unknown names."""
    try:
        cats = {c["id"]: str(c["name"]) for c in data["categories"]}
        images = {im["id"]: im for im in data["images"]}
        anns = data.get("annotations", [])
    except (KeyError, TypeError):
        raise InputError("not a COCO instances json (needs 'images' and 'categories')", source) from None
    used = {a.get("category_id") for a in anns}
    unknown = [cats[c] for c in used if c in cats and canonical_class(cats[c]) is None]
    if unknown:
        raise InputError(_unknown_names_msg(unknown), source)
    per_image: dict[int, list] = {i: [] for i in images}
    for a in anns:
        if not isinstance(a, dict) or not isinstance(a.get("bbox"), list) or len(a["bbox"]) != 4:
            raise InputError(f"annotation {a.get('id') if isinstance(a, dict) else a!r} has no 'bbox' [x, y, w, h]", source)
        if a.get("image_id") not in per_image:
            raise InputError(f"annotation {a.get('id')} refers to unknown image_id {a.get('image_id')}", source)
        if a.get("category_id") not in cats:
            raise InputError(f"annotation {a.get('id')} has unknown category_id {a.get('category_id')}", source)
        per_image[a["image_id"]].append(a)
    out = {}
    for img_id, im in images.items():
        boxes, classes, polys = [], [], []
        seen: dict[tuple, object] = {}
        for a in per_image[img_id]:
            try:
                x, y, w, h = (float(v) for v in a["bbox"])
            except (TypeError, ValueError):
                raise InputError(f"annotation {a.get('id')} has a bbox that is not 4 numbers", source) from None
            if not all(np.isfinite([x, y, w, h])):
                raise InputError(f"annotation {a.get('id')} has a non-finite bbox", source)
            if w < 0 or h < 0:
                raise InputError(f"annotation {a.get('id')} has a negative bbox width or height", source)
            if _degenerate(w, h):
                _skip_degenerate(w, h, f"bbox of annotation {a.get('id')} (image {im.get('file_name')!r})", source, None)
                continue
            key = (a["category_id"], x, y, w, h)
            if key in seen:
                _skip_duplicate(f"annotation {a.get('id')} (image {im.get('file_name')!r})", f"annotation {seen[key]}", source, None)
                continue
            seen[key] = a.get("id")
            boxes.append([x, y, x + w, y + h])
            classes.append(CLASS_NAMES.index(canonical_class(cats[a["category_id"]])))
            seg = a.get("segmentation")
            polys.append(_largest_ring(seg))
        det = Detections(np.array(boxes).reshape(-1, 4), np.array(classes, dtype=np.int64))
        out[Path(im["file_name"]).name] = (int(im.get("width", 0)), int(im.get("height", 0)), det, polys)
    return out


def _largest_ring(seg) -> np.ndarray | None:
    """The largest polygon of a COCO segmentation (a particle partly covered shows as several parts)."""
    if not isinstance(seg, list):
        return None
    rings = []
    for r in seg:
        try:
            a = np.asarray(r, dtype=np.float64).reshape(-1, 2)
        except (TypeError, ValueError):
            continue
        if len(a) >= 3 and np.isfinite(a).all():
            rings.append((Polygon(a).area, a))
    return max(rings, key=lambda t: t[0])[1] if rings else None


def _load_json(path: Path) -> dict:
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise InputError(f"malformed json: {e.msg}", path, e.lineno) from None


def _is_coco(data) -> bool:
    return isinstance(data, dict) and "images" in data and "annotations" in data


def yolo_class_map(folder: Path) -> tuple[dict[int, int] | None, Path | None]:
    """Class-id map from a YOLO folder's data.yaml or classes.txt (labelImg), or None when neither exists."""
    for yml in (folder / "data.yaml", folder / "dataset.yaml"):
        if yml.is_file():
            try:
                names = (yaml.safe_load(read_text(yml)) or {}).get("names")
            except yaml.YAMLError as e:
                raise InputError(f"malformed yaml: {e}", yml) from None
            if names:
                return class_map_from_names(names, yml), yml
    for txt in (folder / "classes.txt", folder / "labels" / "classes.txt"):
        if txt.is_file():
            names = [ln.strip() for ln in read_text(txt).splitlines() if ln.strip()]
            return class_map_from_names(names, txt), txt
    return None, None


def read_label_file(label_path: str | Path, image_path: str | Path) -> tuple[Detections, list]:
    """One image's labels from a YOLO txt, VOC xml, COCO json or labelme json, plus a polygon per box (or None)."""
    label_path, image_path = Path(label_path), Path(image_path)
    if not label_path.is_file():
        raise InputError("no such label file", label_path)
    suffix = label_path.suffix.lower()
    if suffix == ".txt":
        width, height = image_size(image_path)
        cmap, _ = yolo_class_map(label_path.parent)
        if cmap is None:
            cmap, _ = yolo_class_map(label_path.parent.parent)
        det = parse_yolo(read_text(label_path), width, height, label_path, class_map=cmap)
        return det, [None] * len(det)
    if suffix == ".xml":
        _, _, det, unknown = parse_voc(read_text(label_path), label_path)
        if unknown:
            raise InputError(_unknown_names_msg(unknown), label_path)
        return det, [None] * len(det)
    if suffix == ".json":
        data = _load_json(label_path)
        if _is_coco(data):
            per_image = parse_coco(data, label_path)
            if image_path.name not in per_image:
                raise InputError(f"no image named {image_path.name!r} in this COCO file", label_path)
            _, _, det, polys = per_image[image_path.name]
            return det, polys
        _, _, det, polys, unknown = parse_labelme(data, label_path)
        if unknown:
            raise InputError(_unknown_names_msg(unknown), label_path)
        return det, polys
    raise InputError("unknown label format (expected .txt YOLO, .xml VOC, .json COCO or labelme)", label_path)


def _find_label(image: Path, folder: Path, suffix: str) -> Path | None:
    """The label file of ``image`` with ``suffix`` in the usual places, or None."""
    candidates = [
        image.with_suffix(suffix),
        folder / "labels" / (image.stem + suffix),
        folder / "Annotations" / (image.stem + suffix),
    ]
    if image.parent.name == "images":
        candidates.append(image.parent.parent / "labels" / (image.stem + suffix))
    return next((c for c in candidates if c.is_file()), None)


def read_labelled_folder(folder: str | Path, names: Sequence[str] | None = None) -> list[Sample]:
    """Every usable image of a labelled folder with its labels, whatever the format (see module docstring).

    Layouts: ``images/`` + ``labels/`` side by side, or label files beside the images, or a COCO json in the
    folder. YOLO class ids are mapped by name through ``names``, the folder's data.yaml or classes.txt, and
    default to the project order (0 cube, 1 sphere). Every image is decoded: an unreadable, corrupt or
    truncated one is skipped with a warning (InputError when none is usable). An image without a label file
    has no particles (warning); a label file without an image is skipped (warning).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("no such folder", folder)
    image_dir = folder / "images" if (folder / "images").is_dir() else folder
    images = list_images(image_dir)
    if not images:
        suffixes = " ".join(sorted(IMAGE_SUFFIXES))
        raise InputError(f"no images found (looked for {suffixes})", image_dir)

    coco_files = [p for p in sorted(folder.glob("*.json")) if _is_coco(_load_json(p))]
    coco = {}
    for p in coco_files:
        coco.update({name: (p, entry) for name, entry in parse_coco(_load_json(p), p).items()})

    if names is not None:
        cmap = class_map_from_names(list(names), folder)
    else:
        cmap, _ = yolo_class_map(folder)
    _warn_labels_without_image(folder, image_dir, images, coco)

    samples, unknown_by_file = [], {}
    for image in images:
        try:
            size = check_image(image)
        except InputError as e:
            warn(f"{e.msg}: image skipped", image, kind=IMAGE_SKIPPED)
            continue
        polys: list = []
        if image.name in coco:
            _, (w, h, det, polys) = coco[image.name]
            if not (w and h):
                w, h = size
        elif (lbl := _find_label(image, folder, ".txt")) is not None and lbl.name != "classes.txt":
            w, h = size
            det = parse_yolo(read_text(lbl), w, h, lbl, class_map=cmap)
        elif (lbl := _find_label(image, folder, ".xml")) is not None:
            w, h, det, unknown = parse_voc(read_text(lbl), lbl)
            if unknown:
                unknown_by_file[lbl] = unknown
            if not (w and h):
                w, h = size
        elif (lbl := _find_label(image, folder, ".json")) is not None:
            w, h, det, polys, unknown = parse_labelme(_load_json(lbl), lbl)
            if unknown:
                unknown_by_file[lbl] = unknown
            if not (w and h):
                w, h = size
        else:
            warn("image has no label file: taken as an image without particles", image, kind=IMAGE_WITHOUT_LABELS)
            w, h = size
            det = Detections.empty()
        samples.append(Sample(image, int(w), int(h), det, tuple(polys), mask_file_for(image)))
    if unknown_by_file:
        first = next(iter(unknown_by_file))
        all_unknown = [n for ns in unknown_by_file.values() for n in ns]
        more = f" (in {len(unknown_by_file)} files)" if len(unknown_by_file) > 1 else ""
        raise InputError(_unknown_names_msg(all_unknown) + more, first)
    if not samples:
        raise InputError(f"no usable image: all {len(images)} image(s) are unreadable, corrupt or truncated", image_dir)
    return samples


def _looks_like_yolo(path: Path) -> bool:
    """A .txt whose first non-blank line is 5 or 6 numbers (so a README.txt beside the images is no label)."""
    try:
        text = read_text(path)
    except InputError:
        return False
    for raw in text.splitlines():
        parts = raw.split()
        if parts:
            try:
                [float(v) for v in parts]
            except ValueError:
                return False
            return len(parts) in (5, 6)
    return False


def _is_labelme(path: Path) -> bool:
    try:
        data = _load_json(path)
    except InputError:
        return False
    return isinstance(data, dict) and "shapes" in data


def _warn_labels_without_image(folder: Path, image_dir: Path, images: Sequence[Path], coco: dict) -> None:
    """A warning for each label file, and each COCO ``images`` entry, whose image is not in the folder."""
    names = {p.name for p in images}
    stems = {p.stem for p in images}
    for name, (src, (_, _, det, _)) in coco.items():
        if name not in names:
            warn(
                f"COCO images entry {name!r} has no image file in {image_dir}: its {len(det)} label(s) skipped",
                src,
                kind=LABELS_WITHOUT_IMAGE,
            )
    dirs = dict.fromkeys(d for d in (folder / "labels", folder / "Annotations", image_dir, folder) if d.is_dir())
    for d in dirs:
        in_label_dir = d.name in ("labels", "Annotations")
        for p in sorted(d.iterdir()):
            if not p.is_file() or p.stem in stems or p.name in ("classes.txt",):
                continue
            suffix = p.suffix.lower()
            if suffix == ".txt":
                orphan = in_label_dir or _looks_like_yolo(p)
            elif suffix == ".xml":
                orphan = True
            elif suffix == ".json":
                orphan = _is_labelme(p)
            else:
                orphan = False
            if orphan:
                warn(f"label file has no image (no {p.stem}.* in {image_dir}): skipped", p, kind=LABELS_WITHOUT_IMAGE)
