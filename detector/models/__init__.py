"""Model registry: architecture name -> ultralytics model YAML (resolved without importing ultralytics)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from synthgen.errors import InputError

MODELS_DIR = Path(__file__).resolve().parent
ARCHS = ("yolov3-tiny", "yolov4-tiny")


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
    raise InputError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
