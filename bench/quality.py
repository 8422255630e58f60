"""Quality on real micrographs: synthetic training data -> detector -> val-I, val-II, val-III, val-STEM.

One command, run in the background (hours on a 2-core CPU; never in CI):

    python bench/quality.py --budget-min 60 [--ship]

For each method it generates a synthetic training set with `synthgen generate`, mixes in the real
quasi-sphere micrographs of ../shared/data/real-sem/spheres-train with `detector build-dataset`,
trains for a fixed wall-time budget (from scratch, or fine-tuning the shipped model), and scores
`weights/best.pt` with `detector evaluate`'s default options (tiled inference `auto`) on val-I..III and
val-STEM next to `detector baseline` (classical flooding) and the previously shipped model.

The headline ("dev score") is the mean mAP@0.5 over the sets that gave no templates: val-II and
val-III class-aware, val-STEM class-agnostic (its published labels are single-class). val-I is
reported apart as "template source, optimistic": the real templates were cut from its images.
Configurations are chosen on the headline, never on val-I.

Methods (``--methods``, comma-separated):
  full             bundled procedural + real templates (../shared/patterns-real), realism and
                   agglomerates on: the configuration we ship;
  no-realism       the same templates, plain dark canvas, no agglomerates (the paper's method);
  procedural-only  bundled procedural templates only, realism and agglomerates on;
  wide-ft          wider appearance (bundled p01-p10 incl. faceted quasi-spheres, real templates
                   of patterns-real and those `synthgen extract` cuts from spheres-train by their
                   instance masks, realism sem/strong/wide: light substrates, rims and halos,
                   scale-bar text; particle scale 0.3-4x), fine-tuned from the shipped model;
  mix-ft           fine-tuned from the shipped model on a mix that keeps what it was trained on: the
                   `full` recipe (p01-p08 + real templates, sem/strong) for 2/5 of the images, the
                   `wide-ft` appearance for 1/5, and mass-thickness (TEM / HAADF-STEM) contrast
                   patterns p11/p12 under strong and wide realism for 2/5 (`wide-ft` alone lost
                   val-III's cubes to the sphere class);
  stem-ft          fine-tuned from the shipped model at a lower learning rate on the `full` recipe
                   (3/5 of the images, so that it keeps what it was trained on) and the HAADF-STEM
                   look (realism `stem`: a cloudy many-scale support, particles a little brighter
                   than it, particle scale 0.25-1.5x) for 2/5, cubes and spheres alike (bundled
                   p01-p08 and p12, and the real templates);
  previous         the shipped model as found in detector/weights/ on the first run (no training).

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
VAL_SETS = {"I": REAL / "val-I", "II": REAL / "val-II", "III": REAL / "val-III", "STEM": REAL / "val-STEM"}
# The dev score: sets that gave no templates, with the class rule their labels support.
HEADLINE = {"II": "all", "III": "all", "STEM": "any"}

# Synthetic image counts per generated folder; realism and agglomerate options per method.
AGGLOMERATES = ["--max-particles", "300", "--scale-jitter", "0.1", "--scale-range", "0.5,2.5",
                "--density-range", "0.05,1", "--cluster-prob", "0.5", "--touching", "--occlusion", "0.2",
                "--drop-occluded", "0.6"]  # fmt: skip
WIDE_SCALE = ["--scale-range", "0.3,4"]  # after AGGLOMERATES' own range: the later option wins
ALL_METHODS = ("full", "no-realism", "procedural-only", "wide-ft", "mix-ft", "stem-ft", "previous")
UNTRAINED = ("previous",)
UNTILED = "previous --tile off"
OWN_SIZE = "its own input size (416 px from scratch, the starting model's when fine-tuning: 512 here)"  # table row: the previous model without tiled inference
FINETUNED = {"wide-ft": "shipped", "mix-ft": "shipped", "stem-ft": "shipped"}
FINETUNE_LR = {"wide-ft": 0.001, "mix-ft": 0.0007, "stem-ft": 0.0005}  # lower: to forget less of the starting model
REALISM = {
    "sem": ["--realism", "sem", *AGGLOMERATES],
    "strong": ["--realism", "strong", *AGGLOMERATES],
    "wide": ["--realism", "wide", *AGGLOMERATES, *WIDE_SCALE],
    "strong-wide": ["--realism", "strong", *AGGLOMERATES, *WIDE_SCALE],
    "stem": ["--realism", "stem", *AGGLOMERATES, "--scale-range", "0.25,1.5"],
    "none": [],
}


def extracted_patterns(work: Path, log: Path) -> list[str]:
    """Pattern files of real quasi-sphere templates cut from spheres-train by their instance masks."""
    out = work / "extracted"
    train = REAL / "spheres-train"
    for image in sorted((train / "images").iterdir()):
        dest = out / image.stem
        if (dest / "pattern.txt").is_file():
            continue
        labels, mask = train / "labels" / f"{image.stem}.txt", train / "masks" / f"{image.stem}.png"
        done = subprocess.run([bin_("synthgen"), "extract", str(image), "--labels", str(labels), "--masks", str(mask),
                               "--out", str(dest)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
        with log.open("a") as f:
            f.write(done.stdout)
    return sorted(str(p) for p in out.glob("*/pattern.txt"))


def synthetic_folders(method: str, n: int, work: Path, log: Path) -> list[tuple[str, list[str], int, list[str]]]:
    """(name, pattern files, image count, generate options) per synthetic folder of a method."""
    all_bundled = sorted(str(p) for p in (REPO / "patterns").glob("p*/pattern.txt"))
    bundled = [p for p in all_bundled if Path(p).parent.name <= "p08"]  # the first round's recipes
    se_bundled = [p for p in all_bundled if Path(p).parent.name <= "p10"]  # secondary-electron look
    thickness = [p for p in all_bundled if Path(p).parent.name in ("p11", "p12")]  # mass-thickness look
    real_tpl = sorted(str(p) for p in (SHARED / "patterns-real").glob("*/pattern.txt"))
    if method == "wide-ft":
        real_all = real_tpl + extracted_patterns(work, log)
        k = n // 5
        return [
            ("bundled-sem", all_bundled, k, REALISM["sem"]),
            ("bundled-strong", all_bundled, k, REALISM["strong-wide"]),
            ("bundled-wide", all_bundled, k, REALISM["wide"]),
            ("real-wide", real_all, k, REALISM["wide"]),
            ("real-strong", real_all, n - 4 * k, REALISM["strong-wide"]),
        ]
    if method == "mix-ft":
        real_all = real_tpl + extracted_patterns(work, log)
        k = n // 10
        return [
            ("bundled-sem", bundled, k, REALISM["sem"]),
            ("bundled-strong", bundled, k, REALISM["strong"]),
            ("real-sem", real_tpl, k, REALISM["sem"]),
            ("real-strong", real_tpl, k, REALISM["strong"]),
            ("bundled-wide", se_bundled, k, REALISM["wide"]),
            ("real-wide", real_all, k, REALISM["wide"]),
            ("thickness-strong", thickness, 2 * k, REALISM["strong-wide"]),
            ("thickness-wide", thickness, n - 8 * k, REALISM["wide"]),
        ]
    if method == "stem-ft":
        k = (3 * n // 5) // 4
        balanced = bundled + [p for p in thickness if Path(p).parent.name == "p12"]  # p11 is 7/8 spheres
        return [
            ("bundled-sem", bundled, k, REALISM["sem"]),
            ("bundled-strong", bundled, k, REALISM["strong"]),
            ("real-sem", real_tpl, k, REALISM["sem"]),
            ("real-strong", real_tpl, k, REALISM["strong"]),
            ("bundled-stem", balanced, (n - 4 * k) // 2, REALISM["stem"]),
            ("real-stem", real_tpl, n - 4 * k - (n - 4 * k) // 2, REALISM["stem"]),
        ]
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
    for i, (name, patterns, count, opts) in enumerate(synthetic_folders(method, n, work, log)):
        out = work / method / "synthetic" / name
        if not (out / "manifest.json").is_file():
            shutil.rmtree(out, ignore_errors=True)
            run([bin_("synthgen"), "generate", *patterns, "--out", str(out), "--count", str(count),
                 "--seed", str(seed + i), "--workers", "2", *opts], log)  # fmt: skip
        folders.append(str(out))
    run([bin_("detector"), "build-dataset", *folders, "--real", str(REAL / "spheres-train"), "--remove-info-bar",
         "--split", "0.9,0.1", "--seed", str(seed), "--out", str(data)], log)  # fmt: skip
    return data / "data.yaml"


def train_budgeted(data_yaml: Path, run_dir: Path, arch: str, imgsz: int, budget_min: float, seed: int,
                   weights: str | None = None, lr0: float = 0.001) -> None:
    """Train for a fixed wall-time budget (ultralytics' `time`, which fits the LR schedule to it).

    With `weights` the run fine-tunes that model (half the learning rate, one warm-up epoch) and resumes
    itself when it was interrupted.
    """
    from detector.train import is_finished, train
    from detector.yolo_env import usable_cores

    if is_finished(run_dir):
        return
    t0 = time.perf_counter()
    resume = (run_dir / "weights" / "last.pt").is_file()
    tune = {"lr0": lr0, "warmup_epochs": 1} if weights else {"lr0": 0.002}
    train(arch, data_yaml, run_dir, imgsz=imgsz, epochs=1000, batch=16, checkpoint_every=1 if weights else 5, seed=seed,
          plots=False, time=budget_min / 60, optimizer="AdamW", patience=1000, resume=resume,
          weights=None if resume else weights, **({} if resume else tune))  # fmt: skip
    timing = {"seconds": time.perf_counter() - t0, "cores": usable_cores()}
    (run_dir / "bench_time.json").write_text(json.dumps(timing))


def run_timing(run_dir: Path) -> dict:
    """{"seconds", "cores", "images"} of a finished run (images seen in training, from its checkpoints)."""
    from detector.train import read_checkpoints

    timing = json.loads((run_dir / "bench_time.json").read_text())
    timing.setdefault("cores", None)  # runs from before cores were recorded
    ckpts = read_checkpoints(run_dir)
    timing.setdefault("images", max((c.get("images", 0) for c in ckpts), default=0))
    if ckpts and "images_total" in ckpts[-1]:  # fine-tuned: the training of its starting weights too
        timing["images_total"] = ckpts[-1]["images_total"]
        timing["seconds_total"] = ckpts[-1].get("seconds_total")
    return timing


def describe_training(method: str, t: dict) -> str:
    if method in UNTRAINED:
        return f"{method} trained before ({t['seconds'] / 60:.1f} min, {t['images']} images seen)"
    text = f"{method} {t['seconds'] / 60:.1f} min on {t['cores'] or '?'} core(s), {t['images']} images seen"
    if "images_total" in t:
        text += f" (fine-tuned from {FINETUNED.get(method, 'a model')}: cumulative {(t.get('seconds_total') or 0) / 60:.1f} min, {t['images_total']} images)"
    return text


def snapshot_shipped(run_dir: Path) -> None:
    """Keep the shipped model as found on the first run, so the table compares against it after --ship."""
    from detector.weights import SHIPPED

    best = run_dir / "weights" / "best.pt"
    if best.is_file():
        return
    best.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SHIPPED, best)
    sidecar = SHIPPED.with_suffix(".json")
    prior = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    (run_dir / "bench_time.json").write_text(json.dumps({"seconds": prior.get("seconds") or 0, "cores": 2, "images": prior.get("images") or 0}))


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


def headline_table(rows: dict, methods: list[str]) -> str:
    """Method x dev set mAP@0.5 (class rule per set), their mean (the headline), and val-I apart."""
    head = "| method | val-II | val-III | val-STEM (class-agnostic) | **headline mean** | val-I (template source, optimistic) |"
    lines = [head, "|---|---:|---:|---:|---:|---:|"]
    for m in [*methods, "baseline"]:
        vals = [rows.get((s, m, cls)) for s, cls in HEADLINE.items()]
        if any(v is None for v in vals):
            continue
        maps = [float(v["map50"]) for v in vals]
        one = rows.get(("I", m, "all"))
        lines.append(f"| {m} | {' | '.join(f'{x:.3f}' for x in maps)} | **{sum(maps) / len(maps):.3f}** | "
                     f"{float(one['map50']):.3f} |" if one else "| - |")  # fmt: skip
    return "\n".join(lines)


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
    ap.add_argument("--imgsz", type=int, default=None, help="training size [default: 416 from scratch, the model's own when fine-tuning]")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=REPO / "bench" / "work" / "quality")
    ap.add_argument("--results", type=Path, default=REPO / "bench" / "results" / "quality.md")
    ap.add_argument("--jobs", type=int, default=1, help="train the ablations this many at once, each pinned to an equal share of the cores (`full` always trains alone)")
    ap.add_argument("--train-only", action="store_true", help=argparse.SUPPRESS)  # a --jobs worker
    ap.add_argument("--reuse-report", action="store_true", help="table (and --ship) from the reports of the last run instead of evaluating again")
    ap.add_argument("--ship", metavar="METHOD", help="copy METHOD's model into detector/weights/ with its model card (choose it on the headline)")
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

    if "previous" in methods:
        snapshot_shipped(work / "runs" / "previous")
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
        start = FINETUNED.get(m)
        imgsz = args.imgsz or (None if start else 416)
        print(f"training {m}: {start or args.arch} @ {imgsz or 'its own size'}, {args.budget_min:g} min budget", flush=True)
        train_budgeted(data_yaml, run_dir, args.arch, imgsz, args.budget_min, args.seed, start, FINETUNE_LR.get(m, 0.001))
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
    if not (args.reuse_report and (report / "metrics.csv").is_file()):
        shutil.rmtree(report, ignore_errors=True)
        # default options (each model at its own size, tiled inference auto): what a user gets
        run([bin_("detector"), "evaluate", *runs, *sets, "--predictions", f"baseline={baseline / 'predictions'}",
             "--out", str(report)], log)  # fmt: skip
    rows = read_rows(report / "metrics.csv")
    shown = [*done, *dict.fromkeys(equal.values())]
    if "previous" in done:  # what tiled inference alone adds: the same model with --tile off
        untiled = work / "report-untiled"
        if not (args.reuse_report and (untiled / "metrics.csv").is_file()):
            shutil.rmtree(untiled, ignore_errors=True)
            run([bin_("detector"), "evaluate", str(work / "runs" / "previous" / "weights" / "best.pt"), *sets,
                 "--tile", "off", "--out", str(untiled)], log)  # fmt: skip
        rows.update({(k[0], UNTILED, k[2]): v for k, v in read_rows(untiled / "metrics.csv").items()})
        shown.append(UNTILED)
    text = headline_table(rows, shown) + "\n\n" + table(rows, shown)
    argv = [a for a in sys.argv[1:] if a != "--reuse-report"]
    if "--ship" in argv:
        i = argv.index("--ship")
        argv = argv[:i] + argv[i + 2 :]
    command = "python bench/quality.py " + shlex.join(argv)
    header = [
        "# Quality on real micrographs",
        "",
        f"Command: `{command}`  ",
        f"Seed {args.seed}; {args.arch} at {f'{args.imgsz} px' if args.imgsz else OWN_SIZE}; {args.images} synthetic images per method + the 24 real "
        f"spheres-train micrographs; training budget {args.budget_min:g} min of wall time for the methods trained by "
        f"this command ({', '.join(todo) or 'none'}; others reused as trained before), on a {os.cpu_count()}-core CPU.  ",
        "Training: " + "; ".join(describe_training(m, t) for m, t in timing.items()) + ".  ",
        *(f"`{name}` is the `full` run's checkpoint with about as many images seen as `{m}`.  " for m, name in equal.items()),
        "Evaluated with `detector evaluate`'s default options (tiled inference `auto`, each model at its trained size). "
        "Headline: mean mAP@0.5 over val-II and val-III (class-aware) and val-STEM (class-agnostic: single-class labels); "
        "val-I gave the real templates and is optimistic. "
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
        ship(work, args.ship, out, command, args.imgsz)


def ship(work: Path, method: str, table_md: str, command: str, imgsz: int | None) -> None:
    """METHOD's model becomes the package's default: weights, cumulative training and model card."""
    from detector.weights import SHIPPED

    best = work / "runs" / method / "weights" / "best.pt"
    if method in UNTRAINED or not best.is_file():
        raise SystemExit(f"--ship {method}: needs a finished trained run of that method")
    t = run_timing(work / "runs" / method)
    start = FINETUNED.get(method)
    shutil.copyfile(best, SHIPPED)
    totals = {"images": t.get("images_total", t["images"]), "seconds": round(t.get("seconds_total") or t["seconds"])}
    SHIPPED.with_suffix(".json").write_text(json.dumps({**totals, "note": "training behind the shipped weights, cumulative "
        "over every run it was trained in (images seen, wall seconds on the 2-core CPU); read by `detector train --weights shipped`"}, indent=1) + "\n")  # fmt: skip
    stats = json.loads((work / method / "dataset" / "stats.json").read_text())["table"]["total"]
    origin = (f"fine-tuned from the previously shipped model ({t['seconds'] / 60:.0f} min, {t['images']} images in this run; "
              f"cumulative {totals['seconds'] / 60:.0f} min and {totals['images']} images seen)" if start
              else f"trained from scratch ({totals['seconds'] / 60:.0f} min, {totals['images']} images seen)")  # fmt: skip
    card = SHIPPED.with_name("MODEL_CARD.md")
    card.write_text(
        "# Default model: `nanosynth-yolov4-tiny.pt`\n\n"
        "Used by `detector predict` and `detector evaluate` when no weights are given.\n\n"
        f"- Architecture: our YOLOv4-tiny equivalent (`detector/models/yolov4-tiny.yaml`), {origin}, "
        f"2 classes (0 cube, 1 sphere), input {imgsz or 512} px (predict and evaluate use it by default, with tiled inference `auto`).\n"
        f"- Training data (method `{method}` of `bench/quality.py`): {stats['synthetic_images']} synthetic micrographs + "
        f"{stats['real_images']} real quasi-sphere micrographs (`shared/data/real-sem/spheres-train`); "
        f"{stats['cube']} cube and {stats['sphere']} sphere labels; 90/10 train/val split, best epoch chosen on that val "
        "split (never on val-I..III or val-STEM).\n"
        f"- Regenerate: `{command} --ship {method}` (generate, build-dataset, train, evaluate).\n\n"
        + table_md.split("\n", 1)[1]
    )
    print(f"shipped {SHIPPED} ({SHIPPED.stat().st_size / 1e6:.1f} MB) and {card}")


if __name__ == "__main__":
    main()
