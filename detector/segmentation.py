"""Segmentation training helpers: outline label checks and a Segment model seeded from detector weights.

`detector train --task segment` trains ``yolov3-tiny-seg`` / ``yolov4-tiny-seg`` (detector/models/) on
ultralytics outline labels (``class x1 y1 x2 y2 ...``, normalised; `build-dataset --task segment`).
Fine-tuning from a box-only detector (``--weights DET.pt``) builds the Segment model of the same
backbone and copies every layer whose name and shape match (backbone, neck and the box/class branches
of the head); only the mask branches start fresh.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synthgen.errors import InputError


def check_segment_text(text: str, source: Path, n_classes: int) -> int:
    """InputError (file, line) for the first malformed outline line; returns the number of particles."""
    n = 0
    for k, raw in enumerate(text.splitlines(), start=1):
        parts = raw.split()
        if not parts:
            continue
        try:
            cls = int(parts[0])
            xy = [float(v) for v in parts[1:]]
        except ValueError:
            raise InputError("expected 'class x1 y1 x2 y2 ...' (numbers)", source, k) from None
        if not 0 <= cls < n_classes:
            raise InputError(f"class {cls} out of range (the dataset has {n_classes} classes)", source, k)
        if len(xy) == 4:  # a box line among outlines: ultralytics would drop every outline of the file
            raise InputError("a box line (class cx cy w h) in a segment label file: give every particle an outline", source, k)
        if len(xy) < 6 or len(xy) % 2:
            raise InputError(f"an outline needs at least 3 x y pairs, got {len(xy)} numbers", source, k)
        if not all(-1e-6 <= v <= 1 + 1e-6 for v in xy):
            raise InputError("outline coordinates must be normalised to [0, 1]", source, k)
        n += 1
    return n


def segment_model_from(start: Path, arch: str | None) -> tuple[Any, str]:
    """A Segment model with every matching layer of the checkpoint `start`, and its architecture name.

    A checkpoint that already segments is loaded as it is. A detector's architecture comes from its
    model YAML's name (``yolov4-tiny`` -> ``yolov4-tiny-seg``) unless `arch` names one.
    """
    from detector import yolo_env
    from detector.models import arch_for_task, model_cfg

    det = yolo_env.load_model(start)
    if det.task == "segment":
        return det, arch or Path(str(det.model.yaml.get("yaml_file", ""))).stem
    stem = Path(str(getattr(det.model, "yaml", {}).get("yaml_file", ""))).stem
    name = arch_for_task(arch or stem, "segment")
    seg = yolo_env.load_model(model_cfg(name))
    if len(det.names) == seg.model.yaml.get("nc"):
        seg.model.names = dict(det.names)  # class rows copy over; adapt_head then matches them by name
    seg.load(str(start))
    return seg, name
