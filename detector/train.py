"""Train a YOLO-tiny detector: the only caller of ``YOLO(...).train``. Doesn't parse labels.

RUN_DIR layout (ultralytics writes most of it; ``data.yaml``, ``checkpoints/`` and ``done`` are ours)::

    RUN_DIR/
      data.yaml            the dataset YAML with absolute paths, as trained on (resume reuses it)
      args.yaml            every ultralytics training argument
      results.csv          per-epoch losses, precision/recall, mAP50, mAP50-95, learning rates
      weights/last.pt      latest epoch (with optimizer state until the run finishes: --resume uses it)
      weights/best.pt      best epoch by ultralytics' fitness (0.1 mAP50 + 0.9 mAP50-95)
      checkpoints/epochNNNN.pt   every K epochs and the last one, optimizer stripped (fp16)
      checkpoints.json     [{"epoch", "batches", "images", "path", "metrics"}...] for curves vs training progress
      done                 JSON summary written when the run finished; experiment() skips such runs
      base.json            a fine-tuned run's starting weights and the training they had already seen
      train.log            ultralytics' own log lines (the CLI prints one line per epoch instead)
      run.json             our own settings a resume must keep ({"checkpoint_every": K})
      *.png, *.jpg         ultralytics' plots (labels, batches, curves) when plots=True

``batches`` counts dataloader batches of size ``batch`` (ultralytics accumulates gradients up to a
nominal batch of 64, one optimizer step per 64 images, like one darknet iteration with batch=64);
``images`` = epochs x dataset length (the last batch of an epoch may be short), so it is exact.

Fine-tuning (``weights=``) starts from a checkpoint instead of the model YAML; its classes are matched
to the dataset's by name, so a model trained on (cube, sphere) adapts to a set that lists them in
another order or adds a class. ``images_total`` and ``seconds_total`` in checkpoints.json then count
the training the starting weights had seen too (cumulative, as the model card reports it).

Interrupted runs (``resume=True``) always recover. ultralytics' last.pt/best.pt saves are atomic
(yolo_env), so a kill leaves the previous epoch's file; should last.pt still be unloadable, resume falls
back to the newest loadable ``checkpoints/epochNNNN.pt`` (says so in one warning line). Those copies are
optimizer-stripped, so training continues from their weights (also as the EMA) at the next epoch with a
fresh SGD state: momentum buffers restart at zero, the learning-rate schedule continues from that epoch,
results.csv and checkpoints.json are cut back to it, the damaged file is kept as ``last.pt.damaged``.
A run killed after its last epoch (during the final validation) is finished, not resumable: resume
strips the optimizer as ultralytics would have, replaces a damaged best.pt by last.pt and writes ``done``.
Before a new run every label file of the dataset is checked (synthgen's YOLO parser): ultralytics
would skip a file with NaN or an unknown class and train on the rest without failing.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from detector import yolo_env
from synthgen.formats import IMAGE_SUFFIXES, image_size, parse_yolo
from detector.models import arch_for_task, model_cfg
from synthgen.atomic import write_text_atomic
from synthgen.classes import canonical_class
from synthgen.errors import InputError

log = logging.getLogger("nanosynth")

CHECKPOINTS_JSON = "checkpoints.json"
TRAIN_LOG = "train.log"
RUN_JSON = "run.json"
DEFAULT_CHECKPOINT_EVERY = 10
# Allowed ranges of the numeric training options (the CLI shows and checks the same ones).
LR_RANGE = (0.0, 1.0)  # exclusive of 0
IMGSZ_RANGE = (32, 8192)
DONE_MARKER = "done"
BASE_JSON = "base.json"
SHIPPED_NAME = "shipped"  # --weights shipped: the package's default model

# The paper's darknet settings (yolov*-tiny.cfg): SGD, momentum 0.9, decay 0.0005, learning rate 0.001.
# An explicit optimizer matters: ultralytics' optimizer="auto" ignores lr0 and picks its own.
PAPER_OPTIMIZER = {"optimizer": "SGD", "momentum": 0.9, "weight_decay": 0.0005}


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    best: Path
    last: Path
    checkpoints: list[dict] = field(default_factory=list)
    resumed_finished: bool = False  # resume asked on a run that had already finished: nothing was trained
    note: str = ""  # what resume found and did, when it was not a plain continuation


def default_workers(device: str, cores: int | None = None) -> int:
    """Dataloader worker processes: none on a small CPU box (they would steal the cores training uses)."""
    cores = cores or yolo_env.usable_cores()
    if device == "cpu":
        return 0 if cores <= 4 else min(4, cores // 4)
    return min(8, cores)


def _images_in(entry: str | Path) -> int:
    p = Path(entry)
    if p.is_dir():
        return sum(1 for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
    if p.is_file() and p.suffix == ".txt":  # ultralytics' list-of-images form
        return sum(1 for line in p.read_text().splitlines() if line.strip())
    return 0


def resolve_data_yaml(data_yaml: str | Path) -> dict:
    """The dataset YAML with `path` and every split made absolute, checked to hold images.

    Relative `path:` is taken from the YAML's folder (ultralytics would use its own datasets dir);
    `download:` is dropped because training never downloads.
    """
    data_yaml = Path(data_yaml)
    if not data_yaml.is_file():
        raise InputError("no such dataset YAML", data_yaml)
    try:
        data = yaml.safe_load(data_yaml.read_text())
    except yaml.YAMLError as e:
        raise InputError(f"not valid YAML: {e}".splitlines()[0], data_yaml) from None
    if not isinstance(data, dict):
        raise InputError("dataset YAML must be a mapping with train, val and names", data_yaml)
    missing = [k for k in ("train", "val", "names") if not data.get(k)]
    if missing:
        raise InputError(f"dataset YAML lacks {', '.join(missing)}", data_yaml)
    names = data["names"]
    if isinstance(names, list):
        names = dict(enumerate(names))
    if not isinstance(names, dict) or not names:
        raise InputError("names must be a list or an {id: name} mapping", data_yaml)
    root = Path(data.get("path") or ".")
    root = (root if root.is_absolute() else data_yaml.parent / root).resolve()
    out = {"path": str(root), "names": {int(k): str(v) for k, v in names.items()}, "nc": len(names)}
    for split in ("train", "val", "test"):
        entries = data.get(split)
        if not entries:
            continue
        entries = entries if isinstance(entries, list) else [entries]
        resolved = [str(Path(e) if Path(e).is_absolute() else root / e) for e in entries]
        if sum(_images_in(e) for e in resolved) == 0:
            raise InputError(f"{split} split has no images ({', '.join(resolved)})", data_yaml)
        out[split] = resolved if len(resolved) > 1 else resolved[0]
    return out


def _split_images(entry: str) -> list[Path]:
    p = Path(entry)
    if p.is_dir():
        return sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
    if p.is_file() and p.suffix == ".txt":
        lines = [ln.strip() for ln in p.read_text().splitlines() if ln.strip()]
        return [Path(ln) if Path(ln).is_absolute() else p.parent / ln for ln in lines]
    return []


def _label_path(image: Path) -> Path:
    """ultralytics' rule: the last /images/ in the path becomes /labels/, the suffix .txt."""
    parts = list(image.parts)
    idx = max((i for i, part in enumerate(parts[:-1]) if part == "images"), default=None)
    if idx is not None:
        parts[idx] = "labels"
    return Path(*parts).with_suffix(".txt")


def check_labels(data: dict, task: str = "detect") -> int:
    """Parse every YOLO label file of the resolved dataset; the first defect is an InputError (file, line).

    An image without a label file is a background image (as ultralytics reads it). Returns the number
    of label files checked. ``task="segment"``: outline lines (detector.segmentation).
    """
    nc = int(data["nc"])
    checked = 0
    for split in ("train", "val", "test"):
        entries = data.get(split) or []
        for entry in entries if isinstance(entries, list) else [entries]:
            for image in _split_images(entry):
                label = _label_path(image)
                if not label.is_file():
                    continue
                try:
                    text = label.read_text(encoding="utf-8")
                except UnicodeDecodeError:
                    raise InputError("label file is not UTF-8 text", label) from None
                except OSError as e:
                    raise InputError(f"cannot read label file: {e.strerror}", label) from None
                if task == "segment":
                    from detector.segmentation import check_segment_text

                    check_segment_text(text, label, nc)
                    checked += 1
                    continue
                width, height = image_size(image)  # pixel sizes: sub-pixel boxes are judged as the parser does
                parse_yolo(text, width, height, source=label, n_classes=nc)
                checked += 1
    return checked


def read_checkpoints(run_dir: str | Path) -> list[dict]:
    """The run's checkpoint index (empty before the first checkpoint)."""
    p = Path(run_dir) / CHECKPOINTS_JSON
    if not p.is_file():
        return []
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"malformed json: {e.msg}", p, e.lineno) from None
    if not isinstance(data, list) or not all(isinstance(e, dict) and "path" in e for e in data):
        raise InputError("expected a list of {epoch, batches, path}", p)
    return data


def resolve_weights(weights: str | Path) -> Path:
    """A starting checkpoint: a .pt path, or ``shipped`` for the package's default model."""
    if str(weights) == SHIPPED_NAME:
        from detector.weights import shipped_weights

        return shipped_weights()
    path = Path(weights)
    if not path.is_file():
        raise InputError("no such weights file (pass a .pt checkpoint or 'shipped')", path)
    if path.suffix != ".pt":
        raise InputError("starting weights must be a .pt checkpoint", path)
    return path


def prior_training(weights: Path) -> dict:
    """{"images", "seconds"} of training behind a checkpoint (None where unknown).

    Read from a JSON beside it (the shipped model's card data) or from the run folder it belongs to
    (its base.json plus its own checkpoints.json), so fine-tuning a fine-tuned model keeps counting.
    """
    sidecar = weights.with_suffix(".json")
    if sidecar.is_file():
        try:
            data = json.loads(sidecar.read_text())
            return {"images": data.get("images"), "seconds": data.get("seconds")}
        except json.JSONDecodeError as e:
            raise InputError(f"malformed json: {e.msg}", sidecar, e.lineno) from None
    run = weights.parent.parent if weights.parent.name in ("weights", "checkpoints") else None
    if run is None or not (run / CHECKPOINTS_JSON).is_file():
        return {"images": None, "seconds": None}
    entries = read_checkpoints(run)
    mine = [e for e in entries if Path(str(e["path"])).name == weights.name] or entries[-1:]
    if not mine:
        return {"images": None, "seconds": None}
    last = mine[-1]
    if "images_total" in last:
        return {"images": last["images_total"], "seconds": last.get("seconds_total")}
    return {"images": last.get("images"), "seconds": last.get("seconds")}


def match_classes(model_names: dict[int, str], data_names: dict[int, str]) -> list[int | None]:
    """For each dataset class id (in order), the model class of the same name (aliases count), or None."""
    key = lambda n: canonical_class(str(n)) or str(n).strip().lower()  # noqa: E731
    by_name = {key(n): int(i) for i, n in model_names.items()}
    return [by_name.get(key(data_names[i])) for i in sorted(data_names)]


def adapt_head(model, data_names: dict[int, str]) -> list[int | None]:
    """Reorder/extend the classification outputs of a loaded YOLO model to the dataset's classes.

    Rows of the last classification conv are copied by class name, so training starts from what the
    model already knows; a class the model lacks starts from the mean of its other rows' biases.
    """
    import torch

    src = match_classes(model.names, data_names)
    if not any(j is not None for j in src):
        raise InputError(
            f"the starting weights know none of the dataset's classes "
            f"(weights: {', '.join(map(str, model.names.values()))}; dataset: {', '.join(data_names.values())})"
        )
    if src == list(range(len(model.names))):
        return src
    head = model.model.model[-1]
    for branch in [head.cv3, *([head.one2one_cv3] if hasattr(head, "one2one_cv3") else [])]:
        for seq in branch:
            old = seq[-1]
            new = torch.nn.Conv2d(old.in_channels, len(src), 1)
            with torch.no_grad():
                new.bias.fill_(float(old.bias.mean()))
                for i, j in enumerate(src):
                    if j is not None:
                        new.weight[i] = old.weight[j]
                        new.bias[i] = old.bias[j]
            seq[-1] = new
    head.nc, head.no = len(src), len(src) + head.reg_max * 4
    model.model.yaml["nc"] = len(src)
    model.model.names = {i: data_names[i] for i in sorted(data_names)}
    return src


@dataclass
class _TrainerSetup:
    """on_pretrain_routine_start: applied inside the trainer (and inside DDP workers, which unpickle it)."""

    workers: int

    def __call__(self, trainer) -> None:
        yolo_env.yolo_class()  # idempotent; in a DDP worker this installs the offline AMP check
        if trainer.device.type == "cpu":
            yolo_env.cpu_threads()
        trainer.args.workers = self.workers  # ultralytics forces 0 on CPU right before this hook


@dataclass
class _CheckpointKeeper:
    """on_model_save: every `every` epochs (and at the last one) keep an optimizer-free copy of last.pt."""

    run_dir: Path
    every: int
    base: dict = field(default_factory=dict)  # training the starting weights had seen (fine-tuning)
    started: float = field(default_factory=time.time)

    def __call__(self, trainer) -> None:
        epoch = trainer.epoch + 1  # epochs completed
        if epoch % self.every and epoch < trainer.epochs and not trainer.stop:
            return
        metrics = {k: float(v) for k, v in (trainer.metrics or {}).items() if isinstance(v, (int, float))}
        self._keep(trainer, epoch, metrics)

    def catch_up(self, trainer) -> None:
        """on_train_start of a resumed run: keep the copy a kill between last.pt and it prevented."""
        epoch = trainer.start_epoch  # epochs completed before this resume
        if epoch < 1 or (epoch % self.every and epoch < trainer.epochs):
            return
        if any(int(e["epoch"]) == epoch for e in read_checkpoints(self.run_dir)):
            return
        saved = yolo_env.read_checkpoint(trainer.last).get("train_metrics") or {}
        metrics = {k: float(v) for k, v in saved.items() if isinstance(v, (int, float)) and k != "fitness"}
        self._keep(trainer, epoch, metrics)

    def _keep(self, trainer, epoch: int, metrics: dict) -> None:
        ckdir = self.run_dir / "checkpoints"
        ckdir.mkdir(exist_ok=True)
        dst = ckdir / f"epoch{epoch:04d}.pt"
        tmp = ckdir / f".{dst.name}.tmp"
        strip_optimizer = yolo_env.ultralytics_module("utils.torch_utils").strip_optimizer
        strip_optimizer(trainer.last, str(tmp))
        os.replace(tmp, dst)
        nb = len(trainer.train_loader)
        n_images = len(trainer.train_loader.dataset)
        entry = {
            "epoch": epoch,
            "batches": epoch * nb,
            "batch_size": trainer.batch_size,
            "images": epoch * n_images,
            "path": str(dst.relative_to(self.run_dir)),
            "metrics": metrics,
            "seconds": round(time.time() - self.started, 1),
        }
        if self.base:
            entry["images_total"] = entry["images"] + int(self.base.get("images") or 0)
            entry["seconds_total"] = round(entry["seconds"] + float(self.base.get("seconds") or 0), 1)
        index = [e for e in read_checkpoints(self.run_dir) if e["epoch"] != epoch] + [entry]
        write_text_atomic(self.run_dir / CHECKPOINTS_JSON, json.dumps(sorted(index, key=lambda e: e["epoch"]), indent=1))


@dataclass
class _EpochReporter:
    """on_fit_epoch_end: one progress line per epoch through the project logger (ultralytics is quiet)."""

    started: float = field(default_factory=time.time)

    def __call__(self, trainer) -> None:
        if trainer.epoch >= trainer.epochs:  # final validation of best.pt (ultralytics calls this again)
            return
        losses = ""
        tloss = getattr(trainer, "tloss", None)
        try:
            if isinstance(tloss, dict):
                items = list(tloss.items())
            else:
                items = list(zip(trainer.loss_names, tloss.tolist())) if tloss is not None else []
            losses = " ".join(f"{str(n).replace('_loss', '')} {float(v):.3f}" for n, v in items)
        except (TypeError, ValueError, AttributeError):  # a layout we do not know: report without losses
            losses = ""
        m = trainer.metrics or {}
        maps = "".join(f"  {k} {float(m[key]):.3f}" for k, key in (("mAP50", "metrics/mAP50(B)"),
                                                                    ("mAP50-95", "metrics/mAP50-95(B)")) if key in m)
        log.info(f"epoch {trainer.epoch + 1}/{trainer.epochs}  {losses}{maps}  ({time.time() - self.started:.0f} s)")


def _keeper(run_dir: Path, every: int) -> _CheckpointKeeper:
    """The checkpoint keeper, continuing the clock and totals of a resumed or fine-tuned run."""
    base = json.loads((run_dir / BASE_JSON).read_text()) if (run_dir / BASE_JSON).is_file() else {}
    done = read_checkpoints(run_dir)
    elapsed = float(done[-1].get("seconds") or 0) if done else 0.0
    return _CheckpointKeeper(run_dir, every, base, time.time() - elapsed)


def _finished_result(run_dir: Path, resumed_finished: bool = False) -> TrainResult:
    w = run_dir / "weights"
    return TrainResult(run_dir, w / "best.pt", w / "last.pt", read_checkpoints(run_dir), resumed_finished)


def _loadable(path: Path) -> tuple[dict | None, str]:
    """(checkpoint dict, "") or (None, why it cannot be used)."""
    if not path.is_file():
        return None, "missing"
    try:
        return yolo_env.read_checkpoint(path), ""
    except InputError as e:
        return None, e.msg


def _mark_done(run_dir: Path, arch: str, note: str = "") -> None:
    summary = {
        "arch": arch,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "checkpoints": len(read_checkpoints(run_dir)),
        **({"note": note} if note else {}),
    }
    write_text_atomic(run_dir / DONE_MARKER, json.dumps(summary, indent=1))


def _keep_final_checkpoint(run_dir: Path, last: Path, epochs: int) -> None:
    """The last epoch's copy and checkpoints.json entry, when the kill came between last.pt and them
    (what _CheckpointKeeper would have written; batches and images at the per-epoch rate of the
    entries before, which a kill cannot change)."""
    done = read_checkpoints(run_dir)
    if not done or any(int(e["epoch"]) == epochs for e in done):
        return
    prev = done[-1]
    ckdir = run_dir / "checkpoints"
    dst = ckdir / f"epoch{epochs:04d}.pt"
    shutil.copyfile(last, ckdir / f".{dst.name}.tmp")  # last.pt is optimizer-free by now
    os.replace(ckdir / f".{dst.name}.tmp", dst)
    saved = yolo_env.read_checkpoint(last).get("train_metrics") or {}
    entry = {
        "epoch": epochs,
        "batches": round(prev["batches"] / prev["epoch"] * epochs),
        "batch_size": prev.get("batch_size"),
        "images": round(prev["images"] / prev["epoch"] * epochs),
        "path": str(dst.relative_to(run_dir)),
        "metrics": {k: float(v) for k, v in saved.items() if isinstance(v, (int, float)) and k != "fitness"},
        "seconds": prev.get("seconds"),
    }
    for total, own in (("images_total", "images"), ("seconds_total", "seconds")):
        if total in prev and entry[own] is not None:
            entry[total] = round(prev[total] - prev[own] + entry[own], 1)
    write_text_atomic(run_dir / CHECKPOINTS_JSON, json.dumps([*done, entry], indent=1))


def _finish_interrupted(run_dir: Path, last_ok: Path, epochs: int) -> TrainResult:
    """All epochs were trained; the kill came during the final validation: finish the run's files."""
    w = run_dir / "weights"
    last, best = w / "last.pt", w / "best.pt"
    strip = yolo_env.ultralytics_module("utils.torch_utils").strip_optimizer  # atomic (yolo_env)
    if last_ok != last:
        if last.is_file():
            os.replace(last, last.with_name("last.pt.damaged"))
        shutil.copyfile(last_ok, w / ".last.pt.tmp")
        os.replace(w / ".last.pt.tmp", last)
    if (_loadable(last)[0] or {}).get("optimizer") is not None:
        strip(str(last))
    best_ckpt, _ = _loadable(best)
    if best_ckpt is None:
        if best.is_file():
            os.replace(best, best.with_name("best.pt.damaged"))
        shutil.copyfile(last, w / ".best.pt.tmp")
        os.replace(w / ".best.pt.tmp", best)
        best_note = "; best.pt was damaged or missing and is now a copy of last.pt"
    else:
        best_note = ""
        if best_ckpt.get("optimizer") is not None:
            strip(str(best))
    note = f"training to {epochs} epochs had finished; its final validation was interrupted: marked finished{best_note}"
    _keep_final_checkpoint(run_dir, last, epochs)
    args = (_loadable(last)[0] or {}).get("train_args") or {}
    _mark_done(run_dir, Path(str(args.get("model", ""))).stem, note)
    return TrainResult(run_dir, best, last, read_checkpoints(run_dir), resumed_finished=True, note=note)


def _resume_point(run_dir: Path) -> tuple[Path, dict, int | None, list[str]]:
    """The newest loadable checkpoint: (path, checkpoint, epoch for a stripped copy (else None), why
    each newer one was passed over). last.pt first, then checkpoints/epochNNNN.pt newest first."""
    last = run_dir / "weights" / "last.pt"
    try:
        entries = read_checkpoints(run_dir)
    except InputError:
        entries = []
    candidates: dict[Path, int] = {}
    for e in entries:
        candidates[(run_dir / str(e["path"])).resolve()] = int(e["epoch"])
    for f in (run_dir / "checkpoints").glob("epoch*.pt"):
        digits = f.stem[len("epoch"):]
        if digits.isdigit():
            candidates.setdefault(f.resolve(), int(digits))
    skipped = []
    ckpt, why = _loadable(last)
    if ckpt is not None:
        return last, ckpt, None, skipped
    if last.is_file() or candidates:
        skipped.append(f"weights/last.pt: {why}")
    for path, epoch in sorted(candidates.items(), key=lambda kv: -kv[1]):
        ckpt, why = _loadable(path)
        if ckpt is not None:
            return path, ckpt, epoch, skipped
        skipped.append(f"{path.relative_to(run_dir.resolve()) if path.is_relative_to(run_dir.resolve()) else path}: {why}")
    if not skipped:
        raise InputError("nothing to resume: no weights/last.pt in the run folder", run_dir)
    raise InputError(f"nothing to resume: no loadable checkpoint ({'; '.join(skipped)})", run_dir)


def _rewind_to(run_dir: Path, source: Path, ckpt: dict, epoch: int) -> None:
    """Make weights/last.pt a resumable checkpoint at `epoch` from an optimizer-stripped copy."""
    import torch

    w = run_dir / "weights"
    w.mkdir(exist_ok=True)
    last = w / "last.pt"
    entries = [e for e in read_checkpoints(run_dir) if int(e["epoch"]) <= epoch]
    entry = next((e for e in entries if int(e["epoch"]) == epoch), {})
    args = ckpt.get("train_args") or {}
    batch = int(entry.get("batch_size") or args.get("batch") or 16)
    accumulate = max(round(int(args.get("nbs") or 64) / max(batch, 1)), 1)
    model = ckpt["model"]
    ckpt.update(
        epoch=epoch - 1,  # ultralytics stores the last completed epoch 0-based
        ema=model,
        model=None,
        updates=int(entry.get("batches") or 0) // accumulate,  # EMA decay ramp as if never interrupted
        optimizer=None,  # not in the stripped copy: SGD restarts with empty momentum buffers
        scaler=None,
        best_fitness=None,  # unknown: the next epoch's weights become best.pt
        stopper=None,
    )
    if last.is_file():
        os.replace(last, w / "last.pt.damaged")
    tmp = w / ".last.pt.rewind.tmp"
    torch.save(ckpt, tmp)
    os.replace(tmp, last)
    write_text_atomic(run_dir / CHECKPOINTS_JSON, json.dumps(entries, indent=1))
    results = run_dir / "results.csv"
    if results.is_file():
        rows = list(csv.reader(results.read_text().splitlines()))
        keep = [rows[0]] + [r for r in rows[1:] if r and r[0].strip().isdigit() and int(r[0]) <= epoch]
        write_text_atomic(results, "".join(",".join(r) + "\n" for r in keep))


def is_finished(run_dir: str | Path) -> bool:
    run_dir = Path(run_dir)
    return (run_dir / DONE_MARKER).is_file() and (run_dir / "weights" / "best.pt").is_file()


def train(
    arch: str,
    data_yaml: str | Path,
    out_dir: str | Path,
    *,
    imgsz: int | None = None,
    epochs: int = 100,
    batch: int = 16,
    lr: float = 0.001,
    checkpoint_every: int | None = None,
    device: str = "auto",
    resume: bool = False,
    weights: str | Path | None = None,
    workers: int | None = None,
    cache: str | bool = "ram",
    plots: bool = True,
    seed: int = 0,
    callbacks: dict[str, Callable[[Any], None]] | None = None,
    task: str = "detect",
    **overrides: Any,
) -> TrainResult:
    """Train `arch` on `data_yaml` into `out_dir` (layout in the module docstring), offline.

    cache="ram" decodes every image once (same pixels; mosaic then draws its partner images from
    the whole set rather than a buffer of recent ones); `workers` None picks `default_workers(device)`. `callbacks` are extra ultralytics callbacks {event: fn(trainer)};
    `overrides` go to ultralytics' train() as they are (e.g. val=False, close_mosaic=0).
    `weights` (a .pt or "shipped") fine-tunes that model instead of training `arch` from scratch;
    `imgsz` None is the paper's 416 from scratch, the starting model's own size when fine-tuning.
    `task` "segment" trains the ``-seg`` model of `arch` on outline labels; with `weights` from a
    detector, the Segment model of its backbone starts from every matching layer (detector.segmentation).
    """
    if task not in ("detect", "segment"):
        raise InputError(f"unknown task {task!r}; choose detect or segment")
    if arch.endswith("-seg"):
        task = "segment"
    out_dir = Path(out_dir).resolve()
    if checkpoint_every is None:  # a resumed run keeps its own (run.json), a new one gets the default
        saved = {}
        if resume and (out_dir / RUN_JSON).is_file():
            try:
                saved = json.loads((out_dir / RUN_JSON).read_text())
            except json.JSONDecodeError:
                saved = {}
        checkpoint_every = int(saved.get("checkpoint_every") or DEFAULT_CHECKPOINT_EVERY)
    if checkpoint_every < 1:
        raise InputError(f"checkpoint_every must be >= 1 epoch, got {checkpoint_every}")
    if not resume:
        if epochs < 1 or batch < 1:
            raise InputError(f"need epochs >= 1 and batch >= 1 (got epochs {epochs}, batch {batch})")
        if imgsz is not None and not IMGSZ_RANGE[0] <= imgsz <= IMGSZ_RANGE[1]:
            raise InputError(f"imgsz must be {IMGSZ_RANGE[0]}..{IMGSZ_RANGE[1]} pixels, got {imgsz}")
        if not (LR_RANGE[0] < lr <= LR_RANGE[1]):  # also rejects NaN
            raise InputError(f"lr must be > {LR_RANGE[0]:g} and <= {LR_RANGE[1]:g}, got {lr}")
    if workers is not None and workers < 0:
        raise InputError(f"workers must be >= 0, got {workers}")
    dev = yolo_env.select_device(device)
    workers = default_workers(dev) if workers is None else workers
    last = out_dir / "weights" / "last.pt"
    if resume:
        if is_finished(out_dir):
            return _finished_result(out_dir, resumed_finished=True)
        if not (out_dir / "data.yaml").is_file():
            raise InputError("nothing to resume: no run in this folder (no data.yaml)", out_dir)
        for folder in ("weights", "checkpoints"):  # temp files of saves the interruption cut short
            for tmp in (out_dir / folder).glob(".*.tmp") if (out_dir / folder).is_dir() else ():
                tmp.unlink(missing_ok=True)
        source, ckpt, stripped_epoch, skipped = _resume_point(out_dir)
        run_epochs = int((ckpt.get("train_args") or {}).get("epochs") or 0)
        done_epochs = stripped_epoch if stripped_epoch is not None else int(ckpt.get("epoch", -1)) + 1
        if ckpt.get("epoch", -1) == -1 and stripped_epoch is None or (run_epochs and done_epochs >= run_epochs):
            return _finish_interrupted(out_dir, source, run_epochs or done_epochs)  # killed in final validation
        if stripped_epoch is not None:
            log.warning(
                f"{'; '.join(skipped)}: resuming from {source.relative_to(out_dir)} (epoch {stripped_epoch}; "
                f"optimizer state restarts)"
            )
            _rewind_to(out_dir, source, ckpt, stripped_epoch)
        best = out_dir / "weights" / "best.pt"
        if best.is_file() and _loadable(best)[0] is None:
            os.replace(best, best.with_name("best.pt.damaged"))
            shutil.copyfile(last, best.with_name(".best.pt.tmp"))
            os.replace(best.with_name(".best.pt.tmp"), best)
            log.warning(f"{best}: damaged; replaced by a copy of last.pt (epoch {done_epochs})")
        model = yolo_env.load_model(last)
        kwargs = {"resume": str(last), "data": str(out_dir / "data.yaml"), "save_dir": str(out_dir), "plots": plots}
    else:
        start = resolve_weights(weights) if weights is not None else None
        if task == "segment" and start is None:
            arch = arch_for_task(arch, "segment")
        cfg = model_cfg(arch) if start is None else None
        if last.is_file() or (out_dir / CHECKPOINTS_JSON).is_file():
            raise InputError("run folder already holds a run: pass --resume to continue it, or choose another --out", out_dir)
        data = resolve_data_yaml(data_yaml)
        check_labels(data, task)
        if task == "segment" and start is not None:
            from detector.segmentation import segment_model_from

            model, arch = segment_model_from(start, arch or None)
        else:
            model = yolo_env.load_model(start or cfg)
        if start is not None:
            from detector.predict import trained_imgsz

            src = adapt_head(model, data["names"])
            imgsz = imgsz or trained_imgsz(model)
            # dataset class name -> the starting model's class id its outputs were copied from (None: new)
            copied = {data["names"][i]: src[k] for k, i in enumerate(sorted(data["names"]))}
            base = {"weights": str(start.resolve()), **prior_training(start), "classes": copied}
        out_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out_dir / "data.yaml", yaml.safe_dump(data, sort_keys=False))
        write_text_atomic(out_dir / RUN_JSON, json.dumps({"checkpoint_every": checkpoint_every}))
        if start is not None:
            write_text_atomic(out_dir / BASE_JSON, json.dumps(base, indent=1))
        kwargs = {
            "data": str(out_dir / "data.yaml"),
            "epochs": epochs,
            "imgsz": imgsz or 416,
            "batch": batch,
            "lr0": lr,
            **PAPER_OPTIMIZER,
            "project": str(out_dir.parent),
            "name": out_dir.name,
            "exist_ok": True,
            "pretrained": start is not None,  # True: the trainer copies the loaded model's weights
            "seed": seed,
            "plots": plots,
            "amp": dev != "cpu",  # on CUDA ultralytics' check runs, made offline by yolo_env
            **overrides,
        }
    kwargs.update(device=dev, workers=workers, cache=cache, save_period=-1)
    model.add_callback("on_pretrain_routine_start", _TrainerSetup(workers))
    keeper = _keeper(out_dir, checkpoint_every)
    model.add_callback("on_model_save", keeper)
    if resume:
        model.add_callback("on_train_start", keeper.catch_up)
    model.add_callback("on_fit_epoch_end", _EpochReporter())
    for event, fn in (callbacks or {}).items():
        model.add_callback(event, fn)
    with yolo_env.ultralytics_log(out_dir / TRAIN_LOG):
        model.train(**kwargs)
    yaml_file = getattr(model.model, "yaml", {}).get("yaml_file", "")
    _mark_done(out_dir, Path(str(yaml_file)).stem or arch)
    return _finished_result(out_dir)

