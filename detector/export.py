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
