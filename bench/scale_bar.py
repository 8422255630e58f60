"""Scale-bar reading: how many of the bars annotated by eye are read within 2 % (target: 80 %), how
many give a wrong number, and how many images without an annotated bar give a scale at all.

dev: the val-I/II/III/STEM micrographs (tests/data/scale_bars_dev.csv), on which the reader was
developed; heldout: spheres-train (tests/data/scale_bars_heldout.csv), annotated afterwards.

    python bench/scale_bar.py [--shared ../shared] [--list dev|heldout]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path


from detector.scale_bar import ocr_available, read_scale_bar
from synthgen.readers import as_gray, read_micrograph

ROOT = Path(__file__).resolve().parents[1]
LISTS = {"dev": ("scale_bars_dev.csv", ("val-I", "val-II", "val-III", "val-STEM")),
         "heldout": ("scale_bars_heldout.csv", ("spheres-train",))}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    ap.add_argument("--list", choices=sorted(LISTS), default="dev")
    args = ap.parse_args()
    truth_file, splits = LISTS[args.list]
    truth_path = ROOT / "tests" / "data" / truth_file
    data = args.shared / "data" / "real-sem"
    if not data.is_dir() or not ocr_available():
        print(f"skipped: needs {data} and the tesseract OCR program")
        return 0
    rows = list(csv.DictReader(line for line in truth_path.open(encoding="utf-8") if not line.startswith("#")))
    truth = {r["image"]: r for r in rows}
    right = wrong = missed = spurious = 0
    start = time.perf_counter()
    images = [p for s in splits for p in sorted((data / s / "images").iterdir())]
    for p in images:
        key = f"{p.parent.parent.name}/{p.stem}"
        reading = read_scale_bar(as_gray(read_micrograph(p).image))
        got = f"{reading.label} over {reading.bar.length} px = {reading.nm_per_px:.4g} nm/px" if reading else "no scale found"
        if key in truth:
            want = float(truth[key]["label_nm"]) / float(truth[key]["bar_px"])
            if reading is None:
                missed += 1
                verdict = "missed"
            elif abs(reading.nm_per_px / want - 1) <= 0.02:
                right += 1
                verdict = "right"
            else:
                wrong += 1
                verdict = f"WRONG (want {want:.4g})"
            print(f"{key:24s} {truth[key]['label']:>7s}/{truth[key]['bar_px']:>3s} px  {got:40s} {verdict}")
        elif reading is not None:
            spurious += 1
            print(f"{key:24s} (no annotated bar)  {got:40s} SPURIOUS")
    n = len(truth)
    print(f"\nannotated bars: {n}; read within 2 %: {right} ({right / n:.0%}, target 80 %); wrong number: {wrong}; "
          f"no scale found: {missed}; images without an annotated bar that gave a scale: {spurious} of {len(images) - n}")
    print(f"time per image: {(time.perf_counter() - start) / len(images):.2f} s")
    print(f"command: python {Path(sys.argv[0]).as_posix()} --shared {args.shared} --list {args.list}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
