"""Quality on real micrographs: synthetic training data -> detector -> val-I, val-II, val-III.

One command, run in the background (hours on a 2-core CPU; never in CI):

    python bench/quality.py --budget-min 60 [--ship]

For each method it generates a synthetic training set with `synthgen generate`, mixes in the real
quasi-sphere micrographs of ../shared/data/real-sem/spheres-train with `detector build-dataset`,
trains for a fixed wall-time budget, and scores `weights/best.pt` with `detector evaluate` on
val-I, val-II and val-III next to `detector baseline` (classical flooding) on the same sets.

Methods (``--methods``, comma-separated):
  full             bundled procedural + real templates (../shared/patterns-real), realism and
                   agglomerates on: the configuration we ship;
  no-realism       the same templates, plain dark canvas, no agglomerates (the paper's method);
  procedural-only  bundled procedural templates only, realism and agglomerates on.

Prints one table (set x method: mAP@0.5, class-agnostic mAP@0.5, mAP@[.5:.95], IoU, detected %,
precision, F1, cube<->sphere confusions) and writes it to bench/results/quality.md with the command,
seed and training time. ``best.pt`` is chosen by ultralytics on the build-dataset val split
(synthetic + spheres-train), never on val-I..III.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REAL = SHARED / "data" / "real-sem"
VAL_SETS = {"I": REAL / "val-I", "II": REAL / "val-II", "III": REAL / "val-III"}

# Synthetic image counts per generated folder; realism and agglomerate options per method.
AGGLOMERATES = ["--max-particles", "300", "--scale-jitter", "0.1", "--scale-range", "0.5,2.5",
                "--density-range", "0.05,1", "--cluster-prob", "0.5", "--touching", "--occlusion", "0.2",
                "--drop-occluded", "0.6"]  # fmt: skip
ALL_METHODS = ("full", "no-realism", "procedural-only")
REALISM = {
    "sem": ["--realism", "sem", *AGGLOMERATES],
    "strong": ["--realism", "strong", *AGGLOMERATES],
    "none": [],
}


def synthetic_folders(method: str, n: int) -> list[tuple[str, list[str], int, list[str]]]:
    """(name, pattern files, image count, generate options) per synthetic folder of a method."""
    bundled = sorted(str(p) for p in (REPO / "patterns").glob("p*/pattern.txt"))
    real_tpl = sorted(str(p) for p in (SHARED / "patterns-real").glob("*/pattern.txt"))
    if method == "full":
        return [
            ("bundled-sem", bundled, n // 4, REALISM["sem"]),
            ("bundled-strong", bundled, n // 4, REALISM["strong"]),
            ("real-sem", real_tpl, n // 4, REALISM["sem"]),
            ("real-strong", real_tpl, n - 3 * (n // 4), REALISM["strong"]),
        ]
    if method == "no-realism":
        return [("bundled", bundled, n // 2, REALISM["none"]), ("real", real_tpl, n - n // 2, REALISM["none"])]
    if method == "procedural-only":
        return [("bundled-sem", bundled, n // 2, REALISM["sem"]), ("bundled-strong", bundled, n - n // 2, REALISM["strong"])]
    raise SystemExit(f"unknown method {method!r}")


def run(cmd: list[str], log: Path) -> None:
    """Run a CLI step, its output appended to the log; stop the benchmark when it fails."""
    print("$", shlex.join(cmd), flush=True)
    with log.open("a") as f:
        f.write("$ " + shlex.join(cmd) + "\n")
        f.flush()
        done = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if done.returncode:
        raise SystemExit(f"step failed ({done.returncode}); see {log}")


def bin_(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def prepare(method: str, work: Path, n: int, seed: int, log: Path) -> Path:
    """Synthetic folders + spheres-train -> an ultralytics dataset; returns its data.yaml."""
    data = work / method / "dataset"
    if (data / "data.yaml").is_file():
        return data / "data.yaml"
    folders = []
    for i, (name, patterns, count, opts) in enumerate(synthetic_folders(method, n)):
        out = work / method / "synthetic" / name
        if not (out / "manifest.json").is_file():
            shutil.rmtree(out, ignore_errors=True)
            run([bin_("synthgen"), "generate", *patterns, "--out", str(out), "--count", str(count),
                 "--seed", str(seed + i), "--workers", "2", *opts], log)  # fmt: skip
        folders.append(str(out))
    run([bin_("detector"), "build-dataset", *folders, "--real", str(REAL / "spheres-train"), "--remove-info-bar",
         "--split", "0.9,0.1", "--seed", str(seed), "--out", str(data)], log)  # fmt: skip
    return data / "data.yaml"


def train_budgeted(data_yaml: Path, run_dir: Path, arch: str, imgsz: int, budget_min: float, seed: int) -> None:
    """Train for a fixed wall-time budget (ultralytics' `time`, which fits the LR schedule to it)."""
    from detector.train import is_finished, train
    from detector.yolo_env import usable_cores

    if is_finished(run_dir):
        return
    t0 = time.perf_counter()
    train(arch, data_yaml, run_dir, imgsz=imgsz, epochs=1000, batch=16, checkpoint_every=5, seed=seed,
          plots=False, time=budget_min / 60, optimizer="AdamW", lr0=0.002, patience=1000)  # fmt: skip
    timing = {"seconds": time.perf_counter() - t0, "cores": usable_cores()}
    (run_dir / "bench_time.json").write_text(json.dumps(timing))


def run_timing(run_dir: Path) -> dict:
    """{"seconds", "cores", "images"} of a finished run (images seen in training, from its checkpoints)."""
    from detector.train import read_checkpoints

    timing = json.loads((run_dir / "bench_time.json").read_text())
    timing.setdefault("cores", None)  # runs from before cores were recorded
    timing["images"] = max((c.get("images", 0) for c in read_checkpoints(run_dir)), default=0)
    return timing


def train_concurrently(methods: list[str], args: argparse.Namespace) -> None:
    """Train several methods at once, each in its own process pinned to an equal share of the cores."""
    cores = sorted(os.sched_getaffinity(0))
    share = max(1, len(cores) // len(methods))
    procs, logs = [], []
    for i, m in enumerate(methods):
        mine = set(cores[(i * share) % len(cores) :][:share])
        cmd = [sys.executable, __file__, "--train-only", "--methods", m, "--budget-min", str(args.budget_min),
               "--images", str(args.images), "--arch", args.arch, "--imgsz", str(args.imgsz), "--seed", str(args.seed),
               "--work", str(args.work)]  # fmt: skip
        print(f"training {m} on cores {sorted(mine)}", flush=True)
        logs.append((args.work / f"train-{m}.txt").open("a"))
        procs.append((m, subprocess.Popen(cmd, stdout=logs[-1], stderr=subprocess.STDOUT, preexec_fn=lambda c=mine: os.sched_setaffinity(0, c))))
    failed = [m for m, p in procs if p.wait()]
    for log in logs:
        log.close()
    if failed:
        raise SystemExit(f"training failed for {', '.join(failed)}; see {args.work}/train-<method>.txt")


def equal_images_checkpoint(work: Path, images: int) -> Path | None:
    """The `full` run's checkpoint whose images seen are closest to `images`, linked as a run of its own.

    Lets an ablation trained with less compute (e.g. on one core) be compared with `full` at the same
    amount of training, not only at the same wall time.
    """
    from detector.train import read_checkpoints

    run = work / "runs" / "full"
    ckpts = [c for c in read_checkpoints(run) if "images" in c]
    if not ckpts:
        return None
    best = min(ckpts, key=lambda c: abs(c["images"] - images))
    link = work / "equal-images" / f"full@{best['images']}" / "weights" / "best.pt"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.unlink(missing_ok=True)
    link.symlink_to(run / best["path"])
    return link


def read_rows(metrics_csv: Path) -> dict[tuple[str, str, str], dict]:
    """(set, model, class) -> row of metrics.csv (the best.pt checkpoint for trained models)."""
    rows = {}
    with metrics_csv.open() as f:
        for r in csv.DictReader(f):
            if r["checkpoint"] in ("best", "-"):
                rows[(r["set"], r["model"], r["class"])] = r
    return rows


def f1(p: float, r: float) -> float:
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def table(rows: dict, methods: list[str]) -> str:
    head = "| set | method | mAP@0.5 | mAP@0.5 class-agnostic | mAP@[.5:.95] | IoU | detected % | precision | F1 | cube→sphere | sphere→cube |"
    lines = [head, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in VAL_SETS:
        for m in [*methods, "baseline"]:
            a, anyc = rows.get((s, m, "all")), rows.get((s, m, "any"))
            if a is None:
                continue
            cube, sphere = rows.get((s, m, "cube"), {}), rows.get((s, m, "sphere"), {})
            p, r = float(a["precision"]), float(a["recall"])
            lines.append(
                f"| {s} | {m} | {float(a['map50']):.3f} | {float(anyc['map50']):.3f} | {float(a['map50_95']):.3f} "
                f"| {float(a['iou']):.3f} | {float(a['detected_pct']):.1f} | {p:.3f} | {f1(p, r):.3f} "
                f"| {cube.get('confused', '-')} | {sphere.get('confused', '-')} |"
            )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--methods", default=",".join(ALL_METHODS), help="methods to train (finished ones are reused)")
    ap.add_argument("--budget-min", type=float, default=60.0, help="training wall time per model, minutes")
    ap.add_argument("--images", type=int, default=800, help="synthetic images per method")
    ap.add_argument("--arch", default="yolov4-tiny")
    ap.add_argument("--imgsz", type=int, default=416)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=REPO / "bench" / "work" / "quality")
    ap.add_argument("--results", type=Path, default=REPO / "bench" / "results" / "quality.md")
    ap.add_argument("--jobs", type=int, default=1, help="train the ablations this many at once, each pinned to an equal share of the cores (`full` always trains alone)")
    ap.add_argument("--train-only", action="store_true", help=argparse.SUPPRESS)  # a --jobs worker
    ap.add_argument("--ship", action="store_true", help="copy the `full` model into detector/weights/ with its model card")
    args = ap.parse_args()
    if not all(p.is_dir() for p in VAL_SETS.values()):
        raise SystemExit(f"needs the real micrographs in {REAL} (val-I, val-II, val-III, spheres-train)")
    methods = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(methods) - set(ALL_METHODS))
    if unknown:
        raise SystemExit(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(ALL_METHODS)}")
    work = args.work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    log = work / (f"log-{methods[0]}.txt" if args.train_only else "log.txt")
    sets = [a for s, d in VAL_SETS.items() for a in ("--set", f"{s}={d}")]

    todo = [m for m in methods if not (work / "runs" / m / "bench_time.json").is_file()]
    # `full` (the model we ship) trains first, alone, on every core; the ablations after it, --jobs at a time
    todo.sort(key=lambda m: m != "full")
    ablations = [m for m in todo if m != "full"]
    for m in todo:
        if args.jobs > 1 and len(ablations) > 1 and m == ablations[0]:
            for i in range(0, len(ablations), args.jobs):  # trained there; the loop below finds them done
                train_concurrently(ablations[i : i + args.jobs], args)
        data_yaml = prepare(m, work, args.images, args.seed, log)
        run_dir = work / "runs" / m  # evaluate names a model after its run folder
        print(f"training {m}: {args.arch} @ {args.imgsz}, {args.budget_min:g} min budget", flush=True)
        train_budgeted(data_yaml, run_dir, args.arch, args.imgsz, args.budget_min, args.seed)
    if args.train_only:
        return

    baseline = work / "baseline"
    if not (baseline / "metrics.csv").is_file():
        run([bin_("detector"), "baseline", *sets, "--out", str(baseline)], log)
    # every finished method in the work folder goes into the table, so methods can be trained in separate runs
    done = [m for m in ALL_METHODS if (work / "runs" / m / "bench_time.json").is_file()]
    timing = {m: run_timing(work / "runs" / m) for m in done}
    runs = [str(work / "runs" / m / "weights" / "best.pt") for m in done]
    equal = {}  # ablation -> `full` checkpoint with as many images seen
    if "full" in done:
        for m in done:
            link = None
            if m != "full" and timing[m]["images"] < 0.8 * timing["full"]["images"]:
                link = equal_images_checkpoint(work, timing[m]["images"])
            if link is not None:
                equal[m] = link.parent.parent.name
                runs += [str(link)] if str(link) not in runs else []
    report = work / "report"
    shutil.rmtree(report, ignore_errors=True)
    run([bin_("detector"), "evaluate", *runs, *sets, "--predictions", f"baseline={baseline / 'predictions'}",
         "--imgsz", str(args.imgsz), "--out", str(report)], log)  # fmt: skip
    text = table(read_rows(report / "metrics.csv"), [*done, *dict.fromkeys(equal.values())])
    command = "python bench/quality.py " + shlex.join(a for a in sys.argv[1:] if a != "--ship")
    header = [
        "# Quality on real micrographs",
        "",
        f"Command: `{command}`  ",
        f"Seed {args.seed}; {args.arch} at {args.imgsz} px; {args.images} synthetic images per method + the 24 real "
        f"spheres-train micrographs; training budget {args.budget_min:g} min of wall time for the methods trained by "
        f"this command ({', '.join(todo) or 'none'}; others reused as trained before), on a {os.cpu_count()}-core CPU.  ",
        "Training: " + "; ".join(f"{m} {t['seconds'] / 60:.1f} min on {t['cores'] or '?'} core(s), {t['images']} images seen"
                                  for m, t in timing.items()) + ".  ",
        *(f"`{name}` is the `full` run's checkpoint with about as many images seen as `{m}`.  " for m, name in equal.items()),
        "Counts, IoU, precision and F1 at conf 0.25; mAPs over all detections. 'cube→sphere' counts labelled "
        "cubes detected as spheres (IoU ≥ 0.5), and vice versa.",
        "",
    ]
    out = "\n".join(header) + "\n" + text + "\n"
    print(out)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(out)
    print(f"wrote {args.results}; full report: {report / 'report.md'}")
    if args.ship:
        ship(work, out, command, args.imgsz)


def ship(work: Path, table_md: str, command: str, imgsz: int) -> None:
    """The `full` model becomes the package's default: weights + model card in detector/weights/."""
    from detector.weights import SHIPPED

    best = work / "runs" / "full" / "weights" / "best.pt"
    if not best.is_file():
        raise SystemExit("--ship needs a finished `full` run")
    shutil.copyfile(best, SHIPPED)
    card = SHIPPED.with_name("MODEL_CARD.md")
    stats = json.loads((work / "full" / "dataset" / "stats.json").read_text())["table"]["total"]
    card.write_text(
        "# Default model: `nanosynth-yolov4-tiny.pt`\n\n"
        "Used by `detector predict` and `detector evaluate` when no weights are given.\n\n"
        "- Architecture: our YOLOv4-tiny equivalent (`detector/models/yolov4-tiny.yaml`), trained from scratch, "
        f"2 classes (0 cube, 1 sphere), input {imgsz} px (predict and evaluate use it by default).\n"
        f"- Training data: {stats['synthetic_images']} synthetic micrographs (`synthgen generate` from the bundled "
        "procedural patterns and the real-template patterns of `shared/patterns-real`, realism `sem`/`strong`, "
        f"clusters, touching and occluded particles) + {stats['real_images']} real quasi-sphere micrographs "
        f"(`shared/data/real-sem/spheres-train`); {stats['cube']} cube and {stats['sphere']} sphere labels; "
        "90/10 train/val split, best epoch chosen on that val split (never on val-I..III).\n"
        f"- Regenerate: `{command} --ship` (the full pipeline: generate, build-dataset, train, evaluate).\n\n"
        + table_md.split("\n", 1)[1]
    )
    print(f"shipped {SHIPPED} ({SHIPPED.stat().st_size / 1e6:.1f} MB) and {card}")


if __name__ == "__main__":
    main()
