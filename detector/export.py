"""Export a trained .pt model to ONNX or OpenVINO, for CPU runtimes; `predict`/`evaluate` load the result.

ultralytics' exporters do the work (through detector.yolo_env, offline); this module picks the output
name ultralytics recognises the format by (``.onnx``, ``*_openvino_model``), stages the export beside it
and renames it into place, so an interrupted or failed export leaves nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

from synthgen.atomic import OwnedStaging, output_lock, remove_dead_staging, swap_in_dir
from synthgen.errors import InputError

def default_out(weights: str | Path, fmt: str) -> Path:
    """Beside the weights: best.pt -> best.onnx or best_openvino_model/."""
    from detector.yolo_env import EXPORT_SUFFIXES

    weights = Path(weights)
    return weights.with_name(weights.stem + EXPORT_SUFFIXES[fmt])


def check_out(out: str | Path, fmt: str, overwrite: bool = False) -> Path:
    """`out` when it names a `fmt` model that may be written; InputError otherwise."""
    from detector.yolo_env import EXPORT_SUFFIXES, exported_format

    out = Path(out)
    if fmt not in EXPORT_SUFFIXES:
        raise InputError(f"unknown export format {fmt!r} (use {' or '.join(EXPORT_SUFFIXES)})")
    if exported_format(out) != fmt or out.suffix == ".xml":
        what = "a file name ending in .onnx" if fmt == "onnx" else f"a folder name ending in {EXPORT_SUFFIXES[fmt]}"
        raise InputError(f"--out of an {fmt} export must be {what} (that is how the model is recognised when loaded)", out)
    if out.exists() and not overwrite:
        raise InputError("already exists: pass --overwrite to replace it", out)
    if out.exists() and (out.is_dir() != (fmt == "openvino")):
        raise InputError(f"exists and is not a{' folder' if fmt == 'openvino' else ' file'}: will not replace it", out)
    return out


def export(weights: str | Path, fmt: str, out: str | Path | None = None, imgsz: int | None = None, overwrite: bool = False) -> Path:
    """Export `weights` (.pt) as `fmt` to `out` (default: beside the weights); returns `out`."""
    from detector import yolo_env

    weights = Path(weights)
    if not weights.is_file():
        raise InputError("no such weights file", weights)
    out = check_out(out if out is not None else default_out(weights, fmt), fmt, overwrite)
    with output_lock(out):
        remove_dead_staging(out, "export")
        staging = OwnedStaging(out, "export")
        try:
            made = yolo_env.export_model(weights, fmt, staging.path, imgsz=imgsz)
            staging.release()
            if fmt == "openvino":
                swap_in_dir(made, out)
            else:
                os.replace(made, out)
        finally:
            staging.discard()
    return out


RUNTIMES = ("auto", "torch", "onnx", "openvino")


def cache_dir() -> Path:
    """Where `--runtime onnx|openvino` keeps the exports it makes of .pt models ($NANOSYNTH_CACHE, else
    $XDG_CACHE_HOME/nanosynth/exports): an installed package's weights folder may not be writable."""
    if os.environ.get("NANOSYNTH_CACHE"):
        return Path(os.environ["NANOSYNTH_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nanosynth" / "exports"


def cached_export(weights: str | Path, fmt: str) -> Path:
    """The `fmt` export of `weights` in `cache_dir()`, made once; keyed by the file's content, so retrained
    weights under the same name get a fresh export."""
    import hashlib

    from detector.yolo_env import EXPORT_SUFFIXES

    weights = Path(weights)
    if not weights.is_file():
        raise InputError("no such weights file", weights)
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
    out = cache_dir() / f"{weights.stem}-{digest}{EXPORT_SUFFIXES[fmt]}"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            export(weights, fmt, out)
        except InputError:
            if not out.exists():  # another process may have made it meanwhile
                raise
    return out


def cpu_has_bf16() -> bool:
    """Whether OpenVINO runs on this CPU in bf16 by default (AMX / AVX512-BF16): where its 2x comes from."""
    from detector.yolo_env import missing_packages

    if missing_packages("openvino"):
        return False
    import openvino as ov

    try:
        return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except RuntimeError:
        return False


def auto_runtime(weights: str | Path, device: str) -> str:
    """`--runtime auto`: OpenVINO for a .pt on a CPU with bf16 units (bench/infer_speed.py: >= 2x PyTorch's
    images/s at 512 px, boxes within 1 px), else the model as given (PyTorch, or the export passed)."""
    from detector.yolo_env import exported_format

    fmt = exported_format(weights)
    if fmt is not None:
        return fmt
    if Path(weights).suffix == ".pt" and device == "cpu" and cpu_has_bf16():
        return "openvino"
    return "torch"


def load_for_runtime(weights: str | Path, runtime: str, device: str):
    """`weights` loaded to run on `runtime` (one of RUNTIMES): a .pt is exported once to the cache for onnx
    or openvino. A segmentation model, or an auto export that fails, stays on PyTorch (auto only)."""
    from detector.yolo_env import exported_format, load_model

    if runtime not in RUNTIMES:
        raise InputError(f"unknown runtime {runtime!r} (use {', '.join(RUNTIMES)})")
    weights = Path(weights)
    fmt = exported_format(weights)
    asked = runtime
    if runtime == "auto":
        runtime = auto_runtime(weights, device)
    if fmt is not None:
        if runtime != fmt:
            raise InputError(f"this is an {fmt} model: --runtime {runtime} needs the .pt it was exported from", weights)
        return load_model(weights)
    if runtime == "torch" or weights.suffix != ".pt":
        return load_model(weights)
    model = load_model(weights)
    if model.task != "detect":
        if asked == "auto":
            return model
        raise InputError(f"--runtime {runtime} runs detection models only; this one is a {model.task} model", weights)
    try:
        return load_model(cached_export(weights, runtime))
    except InputError:
        if asked == "auto":
            return model
        raise
