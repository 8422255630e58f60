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
      *.png, *.jpg         ultralytics' plots (labels, batches, curves) when plots=True

``batches`` counts dataloader batches of size ``batch`` (ultralytics accumulates gradients up to a
nominal batch of 64, one optimizer step per 64 images, like one darknet iteration with batch=64);
``images`` = epochs x dataset length (the last batch of an epoch may be short), so it is exact.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from detector import yolo_env
from synthgen.formats import IMAGE_SUFFIXES
from detector.models import model_cfg
from synthgen.atomic import write_text_atomic
from synthgen.errors import InputError

CHECKPOINTS_JSON = "checkpoints.json"
DONE_MARKER = "done"

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

    def __call__(self, trainer) -> None:
        epoch = trainer.epoch + 1  # epochs completed
        if epoch % self.every and epoch < trainer.epochs and not trainer.stop:
            return
        ckdir = self.run_dir / "checkpoints"
        ckdir.mkdir(exist_ok=True)
        dst = ckdir / f"epoch{epoch:04d}.pt"
        tmp = ckdir / f".{dst.name}.tmp"
        strip_optimizer = yolo_env.ultralytics_module("utils.torch_utils").strip_optimizer
        strip_optimizer(trainer.last, str(tmp))
        os.replace(tmp, dst)
        nb = len(trainer.train_loader)
        n_images = len(trainer.train_loader.dataset)
        metrics = {k: float(v) for k, v in (trainer.metrics or {}).items() if isinstance(v, (int, float))}
        entry = {
            "epoch": epoch,
            "batches": epoch * nb,
            "batch_size": trainer.batch_size,
            "images": epoch * n_images,
            "path": str(dst.relative_to(self.run_dir)),
            "metrics": metrics,
        }
        index = [e for e in read_checkpoints(self.run_dir) if e["epoch"] != epoch] + [entry]
        write_text_atomic(self.run_dir / CHECKPOINTS_JSON, json.dumps(sorted(index, key=lambda e: e["epoch"]), indent=1))


def _finished_result(run_dir: Path, resumed_finished: bool = False) -> TrainResult:
    w = run_dir / "weights"
    return TrainResult(run_dir, w / "best.pt", w / "last.pt", read_checkpoints(run_dir), resumed_finished)


def is_finished(run_dir: str | Path) -> bool:
    run_dir = Path(run_dir)
    return (run_dir / DONE_MARKER).is_file() and (run_dir / "weights" / "best.pt").is_file()


def train(
    arch: str,
    data_yaml: str | Path,
    out_dir: str | Path,
    *,
    imgsz: int = 416,
    epochs: int = 100,
    batch: int = 16,
    lr: float = 0.001,
    checkpoint_every: int = 10,
    device: str = "auto",
    resume: bool = False,
    workers: int | None = None,
    cache: str | bool = "ram",
    plots: bool = True,
    seed: int = 0,
    callbacks: dict[str, Callable[[Any], None]] | None = None,
    **overrides: Any,
) -> TrainResult:
    """Train `arch` on `data_yaml` into `out_dir` (layout in the module docstring), offline.

    cache="ram" decodes every image once (same pixels; mosaic then draws its partner images from
    the whole set rather than a buffer of recent ones); `workers` None picks `default_workers(device)`. `callbacks` are extra ultralytics callbacks {event: fn(trainer)};
    `overrides` go to ultralytics' train() as they are (e.g. val=False, close_mosaic=0).
    """
    out_dir = Path(out_dir).resolve()
    if checkpoint_every < 1:
        raise InputError(f"checkpoint_every must be >= 1 epoch, got {checkpoint_every}")
    if epochs < 1 or batch < 1 or imgsz < 32:
        raise InputError(f"need epochs >= 1, batch >= 1 and imgsz >= 32 (got {epochs}, {batch}, {imgsz})")
    dev = yolo_env.select_device(device)
    workers = default_workers(dev) if workers is None else workers
    last = out_dir / "weights" / "last.pt"
    if resume:
        if is_finished(out_dir):
            return _finished_result(out_dir, resumed_finished=True)
        if not last.is_file():
            raise InputError("nothing to resume: no weights/last.pt in the run folder", out_dir)
        model = yolo_env.load_model(last)
        kwargs = {"resume": str(last), "data": str(out_dir / "data.yaml"), "save_dir": str(out_dir), "plots": plots}
    else:
        cfg = model_cfg(arch)
        if last.is_file():
            raise InputError("run folder already holds a run: pass --resume to continue it, or choose another --out", out_dir)
        data = resolve_data_yaml(data_yaml)
        out_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out_dir / "data.yaml", yaml.safe_dump(data, sort_keys=False))
        model = yolo_env.load_model(cfg)
        kwargs = {
            "data": str(out_dir / "data.yaml"),
            "epochs": epochs,
            "imgsz": imgsz,
            "batch": batch,
            "lr0": lr,
            **PAPER_OPTIMIZER,
            "project": str(out_dir.parent),
            "name": out_dir.name,
            "exist_ok": True,
            "pretrained": False,
            "seed": seed,
            "plots": plots,
            "amp": dev != "cpu",  # on CUDA ultralytics' check runs, made offline by yolo_env
            **overrides,
        }
    kwargs.update(device=dev, workers=workers, cache=cache, save_period=-1)
    model.add_callback("on_pretrain_routine_start", _TrainerSetup(workers))
    model.add_callback("on_model_save", _CheckpointKeeper(out_dir, checkpoint_every))
    for event, fn in (callbacks or {}).items():
        model.add_callback(event, fn)
    model.train(**kwargs)
    yaml_file = getattr(model.model, "yaml", {}).get("yaml_file", "")
    summary = {
        "arch": Path(str(yaml_file)).stem or arch,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "checkpoints": len(read_checkpoints(out_dir)),
    }
    write_text_atomic(out_dir / DONE_MARKER, json.dumps(summary, indent=1))
    return _finished_result(out_dir)

