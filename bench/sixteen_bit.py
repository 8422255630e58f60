"""A 16-bit micrograph gives the detections of its 8-bit export (target: mAP@0.5 within 0.01).

Each image of a labelled set (its 8-bit grey levels, the scene) is written as the data a microscope
stores in a 16-bit file, and beside it that data's 8-bit export as the export software makes it -
computed here by the software's own formula, never by synthgen.readers:

- ``x257``: full-range 16-bit (grey x 257); export value / 257 (Zeiss, FEI/Thermo 16-bit TIFFs).
- ``14-bit``: a 14-bit detector stored unscaled, 0..16383, with sub-grey-level detail (uniform dither);
  export linear over the bit depth, round(v x 255 / 16383).
- ``12-bit``: a 12-bit detector, 0..4095, with dither; export by dropping the low 4 bits (v >> 4), as
  camera software does.
- ``offset``: a detector whose black level and gain leave most of its range unused (grey x 64 + 8192
  + dither); export ImageJ's 8-bit conversion over its default display range, the data's min..max:
  (v - min) x 256 / (max - min + 1), clamped to 255.

The shipped model scores the 16-bit file read by synthgen.readers and the 8-bit export PNG against the
labels; the figure is |mAP@0.5(16-bit) - mAP@0.5(export)|.

    python bench/sixteen_bit.py [--shared ../shared] [--set val-I]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import tifffile

from detector.metrics import evaluate_set
from detector.predict import predict_images
from detector.weights import shipped_weights
from detector.yolo_env import load_model, select_device
from synthgen.classes import CLASS_NAMES
from synthgen.formats import read_labelled_folder
from synthgen.readers import as_gray, read_micrograph

ROOT = Path(__file__).resolve().parents[1]


def _dither(grey: np.ndarray, seed: int) -> np.ndarray:
    """The scene in float grey levels with detail below one 8-bit level (what the wider data hold)."""
    return grey.astype(np.float64) + np.random.default_rng(seed).uniform(-0.45, 0.45, grey.shape)


def variants(grey: np.ndarray, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """kind -> (16-bit data as stored, its 8-bit export as the export software computes it)."""
    g = _dither(grey, seed)
    x257 = grey.astype(np.uint16) * 257
    d14 = np.clip(np.round(g * 16383 / 255), 0, 16383).astype(np.uint16)
    d12 = np.clip(np.round(g * 4095 / 255), 0, 4095).astype(np.uint16)
    off = np.clip(np.round(g * 64 + 8192), 0, 65535).astype(np.uint16)
    lo, hi = int(off.min()), int(off.max())
    imagej = np.minimum(((off.astype(np.float64) - lo) * (256.0 / (hi - lo + 1)) + 0.5).astype(np.int64), 255)  # ImageJ TypeConverter
    return {
        "x257": (x257, np.round(x257 / 257).astype(np.uint8)),
        "14-bit": (d14, np.round(d14 * (255 / 16383)).astype(np.uint8)),
        "12-bit": (d12, (d12 >> 4).astype(np.uint8)),
        "offset": (off, imagej.astype(np.uint8)),
    }


KINDS = ("x257", "14-bit", "12-bit", "offset")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    ap.add_argument("--set", dest="split", action="append", help="split(s) of data/real-sem (default: val-I, val-II, val-III)")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    splits = args.split or ["val-I", "val-II", "val-III"]
    data = args.shared / "data" / "real-sem"
    if not data.is_dir():
        print(f"skipped: {data} not found")
        return 0
    model, device = load_model(shipped_weights()), select_device(args.device)
    print(f"mAP@0.5 (VOC), shipped model, device {device}: 16-bit file read by synthgen.readers / its 8-bit export PNG")
    print(f"{'set':8s} " + " ".join(f"{k:>15s}" for k in KINDS))
    worst = dict.fromkeys(KINDS, 0.0)
    for split in splits:
        samples = read_labelled_folder(data / split)
        cache: dict[str, float] = {}  # identical image sets (e.g. exports equal to the grey) are scored once

        def score(paths: list[Path], arrays: list[np.ndarray]) -> float:
            key = hashlib.sha1(b"".join(a.tobytes() + str(a.dtype).encode() for a in arrays)).hexdigest()
            if key not in cache:
                dets = list(predict_images(model, paths, conf=0.001, device=device))
                cache[key] = evaluate_set([(s.gt, d) for s, d in zip(samples, dets)], CLASS_NAMES).overall.ap50
            return cache[key]

        cells = []
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            made = {k: ([], [], [], []) for k in KINDS}  # 16-bit paths, arrays; export paths, arrays
            for i, s in enumerate(samples):
                grey = as_gray(read_micrograph(s.image_path).image)
                for kind, (wide, export) in variants(grey, seed=i).items():
                    tif, png = tmp / f"{s.image_path.stem}_{kind}.tif", tmp / f"{s.image_path.stem}_{kind}.png"
                    tifffile.imwrite(tif, wide)
                    cv2.imwrite(str(png), export)
                    for lst, item in zip(made[kind], (tif, wide, png, export)):
                        lst.append(item)
            for kind in KINDS:
                tifs, wides, pngs, exports = made[kind]
                m16, m8 = score(tifs, wides), score(pngs, exports)
                worst[kind] = max(worst[kind], abs(m16 - m8))
                cells.append(f"{m16:.4f}/{m8:.4f}")
        print(f"{split:8s} " + " ".join(f"{c:>15s}" for c in cells))
    for kind in KINDS:
        print(f"{kind:7s}: largest |mAP@0.5(16-bit) - mAP@0.5(export)| {worst[kind]:.4f} (target <= 0.01: {'met' if worst[kind] <= 0.01 else 'NOT met'})")
    print(f"command: python {Path(sys.argv[0]).as_posix()} --shared {args.shared}" + "".join(f" --set {s}" for s in splits))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
