"""A 16-bit micrograph gives the detections of its 8-bit export (target: mAP@0.5 within 0.01).

Each image of a labelled set is written twice: as an 8-bit PNG (its grey levels) and as a 16-bit TIFF
whose 8-bit export that PNG is (grey x 257), and, as microscopes write it, a 16-bit TIFF using only
the middle of the range (grey x 64 + 8192: a 14-bit detector, not stretched). The shipped model scores
each against the labels; synthgen.readers maps the 16-bit files to 8 bits by its percentile stretch.

    python bench/sixteen_bit.py [--shared ../shared] [--set val-I]
"""

from __future__ import annotations

import argparse
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
    print(f"{'set':8s} {'8-bit PNG':>10s} {'16-bit x257':>12s} {'14-bit mid':>11s}  (mAP@0.5, VOC; shipped model, device {device})")
    worst = {"x257": 0.0, "mid": 0.0}
    for split in splits:
        samples = read_labelled_folder(data / split)
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            files = {"png": [], "x257": [], "mid": []}
            for s in samples:
                grey = as_gray(read_micrograph(s.image_path).image)
                stem = s.image_path.stem
                cv2.imwrite(str(tmp / f"{stem}.png"), grey)
                tifffile.imwrite(tmp / f"{stem}_x257.tif", grey.astype(np.uint16) * 257)
                tifffile.imwrite(tmp / f"{stem}_mid.tif", grey.astype(np.uint16) * 64 + 8192)
                for kind, suffix in (("png", ".png"), ("x257", "_x257.tif"), ("mid", "_mid.tif")):
                    files[kind].append(tmp / f"{stem}{suffix}")
            maps = {}
            for kind, paths in files.items():
                dets = list(predict_images(model, paths, conf=0.001, device=device))
                maps[kind] = evaluate_set([(s.gt, d) for s, d in zip(samples, dets)], CLASS_NAMES).overall.ap50
        for kind in worst:
            worst[kind] = max(worst[kind], abs(maps[kind] - maps["png"]))
        print(f"{split:8s} {maps['png']:10.4f} {maps['x257']:12.4f} {maps['mid']:11.4f}")
    for kind, what in (("x257", "16-bit whose 8-bit export is the PNG"), ("mid", "14-bit in 16 (stretched)")):
        print(f"{what}: largest |mAP@0.5 - PNG's| {worst[kind]:.4f} (target <= 0.01: {'met' if worst[kind] <= 0.01 else 'NOT met'})")
    print(f"command: python {Path(sys.argv[0]).as_posix()} --shared {args.shared}" + "".join(f" --set {s}" for s in splits))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
