"""The paper's model grid (M1-M4 = architectures x training sets) from one YAML file.

Config (paths relative to the config file)::

    runs: runs/paper                  # one folder per run inside, e.g. runs/paper/M1-yolov3-tiny-A
    archs: [yolov3-tiny, yolov4-tiny]
    datasets:                         # name -> data.yaml from `detector build-dataset`
      A: sets/A/data.yaml
      B: sets/B/data.yaml
    train:                            # options of detector.train.train shared by every run
      imgsz: 416
      epochs: 100
      batch: 16
      lr: 0.001
      checkpoint_every: 10
      device: auto

Runs are numbered dataset-major (M1 = first arch on the first set, M2 = second arch on it, ...).
A finished run (``done`` marker) is skipped, an interrupted one (``weights/last.pt`` or
``checkpoints.json``) is resumed, falling back to its newest loadable checkpoint when last.pt is damaged.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from detector import train as train_mod
from detector.models import ARCHS
from synthgen.errors import InputError

# train() options a config may set; arch/data/out/resume/callbacks belong to the grid itself.
_TRAIN_OPTIONS = set(inspect.signature(train_mod.train).parameters) - {
    "arch", "data_yaml", "out_dir", "resume", "callbacks", "overrides",
}


@dataclass(frozen=True)
class PlannedRun:
    name: str  # e.g. "M1-yolov3-tiny-A"
    arch: str
    dataset: str
    data_yaml: Path
    run_dir: Path
    options: dict[str, Any] = field(default_factory=dict)

    def status(self) -> str:
        """"done" (skipped), "resume" (interrupted run) or "new"."""
        if train_mod.is_finished(self.run_dir):
            return "done"
        started = (self.run_dir / "weights" / "last.pt").is_file() or (self.run_dir / train_mod.CHECKPOINTS_JSON).is_file()
        return "resume" if started else "new"  # resume also recovers a damaged last.pt (train module docstring)


def parse_experiment(data: Any, config_path: Path) -> list[PlannedRun]:
    """Pure: the planned runs of a parsed config (paths resolved against the config's folder)."""
    if not isinstance(data, dict):
        raise InputError("experiment config must be a mapping with runs, archs, datasets", config_path)
    unknown = set(data) - {"runs", "archs", "datasets", "train"}
    if unknown:
        raise InputError(f"unknown key(s) {', '.join(sorted(unknown))}", config_path)
    missing = [k for k in ("runs", "archs", "datasets") if not data.get(k)]
    if missing:
        raise InputError(f"experiment config lacks {', '.join(missing)}", config_path)
    archs = data["archs"] if isinstance(data["archs"], list) else [data["archs"]]
    bad = [a for a in archs if a not in ARCHS]
    if bad:
        raise InputError(f"unknown architecture(s) {', '.join(map(str, bad))}; choose from {', '.join(ARCHS)}", config_path)
    datasets = data["datasets"]
    if not isinstance(datasets, dict):
        raise InputError("datasets must map a set name to its data.yaml, e.g. {A: sets/A/data.yaml}", config_path)
    options = data.get("train") or {}
    if not isinstance(options, dict):
        raise InputError("train must be a mapping of training options", config_path)
    bad = sorted(set(options) - _TRAIN_OPTIONS)
    if bad:
        raise InputError(f"unknown train option(s) {', '.join(bad)}; known: {', '.join(sorted(_TRAIN_OPTIONS))}", config_path)
    base = config_path.parent
    runs_dir = base / str(data["runs"])
    plan, k = [], 0
    for set_name, yaml_path in datasets.items():
        for arch in archs:
            k += 1
            name = f"M{k}-{arch}-{set_name}"
            plan.append(PlannedRun(name, arch, str(set_name), base / str(yaml_path), runs_dir / name, dict(options)))
    return plan


def load_experiment(config_path: str | Path) -> list[PlannedRun]:
    config_path = Path(config_path)
    if not config_path.is_file():
        raise InputError("no such experiment config", config_path)
    try:
        data = yaml.safe_load(config_path.read_text())
    except yaml.YAMLError as e:
        raise InputError(f"not valid YAML: {e}".splitlines()[0], config_path) from None
    plan = parse_experiment(data, config_path)
    for run in plan:  # fail before hours of training, not in the middle
        if run.status() == "new":
            train_mod.resolve_data_yaml(run.data_yaml)
    return plan


def run_experiment(plan: list[PlannedRun], **train_kwargs: Any) -> Iterator[tuple[PlannedRun, str]]:
    """Train every run not yet finished, in order; yields (run, "skipped" | "trained" | "resumed")."""
    for run in plan:
        status = run.status()
        if status == "done":
            yield run, "skipped"
            continue
        train_mod.train(
            run.arch, run.data_yaml, run.run_dir, resume=status == "resume", **{**run.options, **train_kwargs}
        )
        yield run, "resumed" if status == "resume" else "trained"
