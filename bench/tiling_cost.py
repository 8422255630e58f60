"""Cost of `--tile auto` against untiled inference, measured side by side in one run.

For every micrograph of the given folders (default: ../shared val-I, val-II, val-III: 512-1024 px),
predicts with `--tile off` and `--tile auto` alternately, `--repeat` times each, and reports per plan
that auto chose (whole image / resized / tiled) the ratio of median wall times auto / off. The target
of the tiling issue: <= 1.5x where auto decides that no tiling is needed (the zoom probe is the only
extra work there).

Run:  python bench/tiling_cost.py [--repeat 3] [--weights W.pt] [FOLDER...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "real-sem"
DEFAULT = [REAL / "val-I", REAL / "val-II", REAL / "val-III"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="*", type=Path, default=DEFAULT)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--weights", type=Path, default=None, help="default: the shipped model")
    args = ap.parse_args()

    from detector.predict import collect_images, predict_images
    from detector.weights import shipped_weights
    from detector.yolo_env import load_model

    images = collect_images(args.folders)
    model = load_model(args.weights or shipped_weights())
    list(predict_images(model, images[:1], tile="off"))  # warm-up: model fusing, first-call allocations
    rows = []
    for p in images:
        plans, times = [], {"off": [], "auto": []}
        for _ in range(args.repeat):
            for mode in ("off", "auto"):
                t0 = time.perf_counter()
                list(predict_images(model, [p], tile=mode, on_plan=lambda _p, plan: plans.append(plan)))
                times[mode].append(time.perf_counter() - t0)
        plan = plans[-1]
        kind = "tiled" if plan.tile else ("resized" if plan.rescaled else "whole image")
        rows.append((kind, statistics.median(times["off"]), statistics.median(times["auto"])))
    print(f"command: python bench/tiling_cost.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"{len(images)} micrographs from {', '.join(str(f) for f in args.folders)}; median of {args.repeat} runs each\n")
    print("| auto chose | images | off ms/image | auto ms/image | auto / off |")
    print("|---|---:|---:|---:|---:|")
    for kind in ("whole image", "resized", "tiled"):
        sel = [r for r in rows if r[0] == kind]
        if not sel:
            continue
        off, auto = sum(r[1] for r in sel), sum(r[2] for r in sel)
        print(f"| {kind} | {len(sel)} | {1000 * off / len(sel):.0f} | {1000 * auto / len(sel):.0f} | **{auto / off:.2f}x** |")


if __name__ == "__main__":
    main()
