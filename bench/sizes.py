"""Known-truth size benchmark: a synthetic set with log-normal particle sizes, measured by the chain.

Generates `--count` micrographs of a pattern with ``synthgen generate --size-dist`` (every particle's
edge or ECD drawn from a log-normal distribution), predicts them with a model and measures the masks
(``--masks``, as ``detector predict``/``evaluate``: a box-only model's masks come from the threshold
fallback), and compares the recovered ECD distribution per class with two truths:

- the labels, as ``detector evaluate`` scores them: the pixels of the generator's exact outlines
  (annotations.json) -- bias of the mean (mean predicted / labelled - 1), the same over box-IoU >= 0.5
  matched pairs, and the KS distance;
- the particles: a template's footprint is its particle dilated by one pixel (patterns/README.md), so
  a particle's ECD is its footprint outline's (sqrt(4 * polygon area / pi)) less 2 px -- bias and KS
  against that (the target: within 2 %). The label pixels are exactly the pixels the outline covers
  (synthgen's outlines run along the pixel edges; synthgen.instance_masks.rasterize marks the pixels
  whose centres an outline holds, so either convention gives its own pixels).

Border particles are left out of both sides, as by default in predict and evaluate.

Run:  python bench/sizes.py [--pattern patterns/p04/pattern.txt] [--size-dist lognormal:32,6]
      [--count 8] [--realism sem] [--seed 11] [--weights W.pt] [--masks auto] [--refine none]
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DILATION_PX = 2.0  # a footprint is its particle dilated by one pixel: 2 px more across


def particle_ecds(samples, include_border: bool = False) -> dict[int, list[float]]:
    """Per class id the particles' ECD: their footprint outline's less the dilation (border ones left out)."""
    import math

    from shapely.geometry import Polygon

    from detector.measure import measure
    from synthgen.instance_masks import rasterize

    out: dict[int, list[float]] = {}
    for s in samples:
        for poly, c in zip(s.polygons, s.gt.class_id):
            if poly is None:
                continue
            m = measure(rasterize(poly, s.width, s.height), s.width, s.height)
            if m is None or (m.touches_border and not include_border):
                continue
            out.setdefault(int(c), []).append(math.sqrt(4 * Polygon(poly).area / math.pi) - DILATION_PX)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pattern", type=Path, default=REPO / "patterns" / "p04" / "pattern.txt")
    ap.add_argument("--size-dist", default="lognormal:32,6")
    ap.add_argument("--count", type=int, default=8)
    ap.add_argument("--max-particles", type=int, default=60)
    ap.add_argument("--realism", default="sem")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--weights", type=Path, default=None, help="default: the shipped model")
    ap.add_argument("--masks", default="auto", choices=["auto", "model", "threshold"])
    ap.add_argument("--refine", default="none", choices=["none", "gaussian"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=None, help="keep the generated set and report here (default: a temp folder)")
    args = ap.parse_args()

    from detector.evaluate import evaluate, model_specs
    from detector.report import write_evaluation
    from detector.weights import shipped_weights
    from synthgen.formats import read_labelled_folder
    from synthgen.generate import generate, parse_size_dist

    mean, spread = parse_size_dist(args.size_dist)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        data = root / "set"
        t0 = time.perf_counter()
        generate([args.pattern], data, count=args.count, seed=args.seed, max_particles=args.max_particles,
                 realism=args.realism, size_dist=args.size_dist, overwrite=True)  # fmt: skip
        samples = read_labelled_folder(data)
        kwargs = {"refine": args.refine} if args.refine != "none" else {}
        report = evaluate(model_specs([args.weights or shipped_weights()]), {"synthetic": samples}, device=args.device,
                          masks=args.masks, **kwargs)  # fmt: skip
        if args.out:
            write_evaluation(report, root / "report")
        elapsed = time.perf_counter() - t0
    m = report.results[0].masks
    print(f"command: python bench/{Path(__file__).name} {shlex.join(sys.argv[1:])}")
    print(f"pattern {args.pattern.name if args.pattern.stem != 'pattern' else args.pattern.parent.name}, {args.count} images, "
          f"realism {args.realism}, sizes drawn from log-normal mean {mean:g} px, std {spread:g} px; masks: {m.source}"
          + (f", refine {args.refine}" if args.refine != "none" else "") + f"; {elapsed:.0f} s")  # fmt: skip
    print(f"mask AP50 {m.map50['all']:.3f}, mask AP50-95 {m.map50_95['all']:.3f}, box AP50 {m.box_map50['all']:.3f}")
    from detector.mask_eval import ks_distance

    import numpy as np

    from synthgen.classes import CLASS_NAMES

    truth = particle_ecds(samples)
    print(f"{'':>36} {'against the labels':^31} {'against the particles':^24}")
    print(f"{'class':7} {'n label':>7} {'n pred':>6} {'mean pred':>10} | {'mean':>7} {'bias %':>7} {'matched %':>9} {'KS':>5} | "
          f"{'mean':>7} {'bias %':>7} {'KS':>5}")  # fmt: skip
    for s in m.sizes.values():
        if not s.n_true:
            continue
        particle = np.array(truth.get(CLASS_NAMES.index(s.name), [np.nan]))
        print(f"{s.name:7} {s.n_true:7d} {s.n_pred:6d} {s.mean_pred:10.2f} | {s.mean_true:7.2f} {100 * (s.accuracy - 1):+7.2f} "
              f"{100 * (s.matched_accuracy - 1):+9.2f} {s.ks:5.3f} | {particle.mean():7.2f} {100 * (s.mean_pred / particle.mean() - 1):+7.2f} "
              f"{ks_distance(particle, s.pred_sizes):5.3f}")  # fmt: skip
    if getattr(m, "refine", None):
        print(f"gaussian refinement: {m.refine}")


if __name__ == "__main__":
    main()
