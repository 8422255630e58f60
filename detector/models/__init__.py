"""Model registry: architecture name -> ultralytics model YAML (resolved without importing ultralytics)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from synthgen.errors import InputError

MODELS_DIR = Path(__file__).resolve().parent
ARCHS = ("yolov3-tiny", "yolov4-tiny")
SEG_ARCHS = ("yolov3-tiny-seg", "yolov4-tiny-seg")  # the same backbones with ultralytics' Segment head
SEG_SUFFIX = "-seg"


def _ultralytics_cfg(rel: str) -> Path:
    spec = importlib.util.find_spec("ultralytics")  # locates the package without running its __init__
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("ultralytics is not installed")
    return Path(spec.origin).parent / "cfg" / "models" / rel


def model_cfg(arch: str) -> Path:
    """The YAML for `arch`: ultralytics' own yolov3-tiny.yaml, or our YOLOv4-tiny-equivalent."""
    if arch == "yolov3-tiny":
        return _ultralytics_cfg("v3/yolov3-tiny.yaml")
    if arch == "yolov4-tiny":
        return MODELS_DIR / "yolov4-tiny.yaml"
    if arch in SEG_ARCHS:
        return MODELS_DIR / f"{arch}.yaml"
    raise InputError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS + SEG_ARCHS)}")


def arch_for_task(arch: str, task: str) -> str:
    """The architecture name for a task: ``yolov4-tiny`` + segment -> ``yolov4-tiny-seg`` (and back for detect)."""
    base = arch.removesuffix(SEG_SUFFIX)
    return base + SEG_SUFFIX if task == "segment" else base


def yaml_task(path: str | Path) -> str:
    """``segment`` for a model YAML whose head is ultralytics' Segment, else ``detect``."""
    import re

    return "segment" if re.search(r"\bSegment\b", Path(path).read_text(encoding="utf-8", errors="replace")) else "detect"
