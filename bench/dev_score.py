"""The dev score of one model with `detector evaluate`'s default options, no training: mAP@0.5 per set and
the headline of bench/quality.py (mean of val-II and val-III class-aware and val-STEM class-agnostic;
val-I gave the real templates and is optimistic), and the size accuracy per set and class where the set
has instance masks (threshold masks inside the boxes, as evaluate's default). For checking a change to inference (e.g. `--tile auto`)
in minutes, where bench/quality.py retrains.

Run:  python bench/dev_score.py [WEIGHTS] [--sets I,II,III,STEM] [--tile auto]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "real-sem"
HEADLINE = {"II": "all", "III": "all", "STEM": "any"}  # as bench/quality.py


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("weights", nargs="?", default=None, help="model (default: the shipped one)")
    ap.add_argument("--sets", default="I,II,III,STEM")
    ap.add_argument("--tile", default="auto")
    args = ap.parse_args()
    if not REAL.is_dir():
        print(f"../shared not found at {REAL}: nothing to score")
        return
    from detector.evaluate import evaluate, load_sets, model_specs
    from detector.weights import shipped_weights

    weights = args.weights or str(shipped_weights())
    names = args.sets.split(",")
    sets = load_sets({n: REAL / f"val-{n}" for n in names})
    start = time.perf_counter()
    report = evaluate(model_specs([weights]), sets, tile=args.tile)
    took = time.perf_counter() - start
    print(f"command: python bench/dev_score.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"model: {weights}; tile {args.tile}; evaluate's defaults (conf 0.25 for counts, every detection for mAP)")
    print("| set | mAP@0.5 | class-agnostic | detected % (agnostic) |\n|---|---:|---:|---:|")
    got = {}
    for r in report.results:
        m = r.metrics
        got[r.set_name] = {"all": m.overall.ap50, "any": m.agnostic.ap50}
        print(f"| {r.set_name} | {m.overall.ap50:.3f} | {m.agnostic.ap50:.3f} | {m.agnostic.detected_pct:.1f} |")
    if all(k in got for k in HEADLINE):
        print(f"headline (II, III class-aware; STEM class-agnostic): {sum(got[k][v] for k, v in HEADLINE.items()) / 3:.3f}")
    sized = [r for r in report.results if r.masks is not None]
    if sized:
        print("\n| set | class | size accuracy | matched pairs | KS | particles true / predicted | mask AP@0.5 |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for r in sized:
            for name, c in r.masks.sizes.items():
                print(f"| {r.set_name} | {name} | {c.accuracy:.3f} | {c.matched_accuracy:.3f} | {c.ks:.3f} | "
                      f"{c.n_true} / {c.n_pred} | {r.masks.map50.get(name, float('nan')):.3f} |")
    print(f"{took:.0f} s")


if __name__ == "__main__":
    main()
