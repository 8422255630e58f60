"""The one door to ultralytics: an offline, all-cores environment set up before it is imported.

Everything else in `detector` calls `yolo_class()`, `load_model()`, `select_device()` and
`cpu_threads()` from here and never imports ultralytics itself. What is switched off, and why:

- network: ``YOLO_OFFLINE=1`` (ultralytics' ONLINE flag, which gates analytics, update checks and
  the AMP-check download), settings ``sync`` and every logger integration off, no Platform API key;
- pip: ``YOLO_AUTOINSTALL=0`` so a missing optional requirement is a warning, never ``pip install``;
- fonts: plots and dataset checks want ``Arial.ttf`` / ``Arial.Unicode.ttf`` in ultralytics' config
  dir and download them when missing; we copy matplotlib's bundled DejaVuSans there under both names;
- AMP check: on CUDA, ``check_amp`` downloads yolo26n.pt to compare fp32/fp16 outputs; we skip the
  comparison when that file is absent (AMP stays on, as ultralytics does when the download fails);
- threads: ``import ultralytics`` sets ``OMP_NUM_THREADS=1`` and ``select_device`` calls
  ``torch.set_num_threads(min(8, cpu_count - 1))``, i.e. ONE thread on a 2-core machine; we raise
  ultralytics' ``NUM_THREADS`` to every core the process may use, and ask OpenMP to sleep rather than
  spin while it waits (``OMP_WAIT_POLICY=PASSIVE``, set when this module is imported, before torch
  loads libgomp): on a busy machine spinning threads fight the other processes and two threads ran
  2-4x SLOWER than one; passive waiting keeps them about as fast as one at worst (docs/models.md).

- logging: ultralytics' own lines (banners, progress bars, tables, warnings) never reach the CLI's
  output: ``YOLO_VERBOSE=False`` switches its progress bars off, its console handler is removed, and
  ``ultralytics_log(path)`` sends its records to a file instead (``detector train`` keeps RUN_DIR/train.log);
- checkpoints: ultralytics writes weights/last.pt and best.pt in place (and rewrites them when it strips
  the optimizer at the end); a kill mid-write left a truncated file. Both saves are made atomic here
  (temp file beside the target + ``os.replace``), so a checkpoint is always the old one or the new one.

ultralytics keeps its settings in a config dir of its own; unless ``YOLO_CONFIG_DIR`` is already set
we point it at ``$XDG_CONFIG_HOME/nanosynth`` so our offline settings never touch the user's.
"""

from __future__ import annotations

import ast
import contextlib
import logging
import os
import pickle
import re
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from synthgen.atomic import write_bytes_atomic
from synthgen.errors import InputError

_FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")
_OFFLINE_SETTINGS = {
    "sync": False,
    "api_key": "",
    "clearml": False,
    "comet": False,
    "dvc": False,
    "mlflow": False,
    "raytune": False,
    "tensorboard": False,
    "wandb": False,
    "vscode_msg": False,
    "openvino_msg": False,
}
# GPUs on which ultralytics' check_amp disables AMP (NaN losses); kept so our offline check agrees.
_BAD_AMP_GPU = re.compile(
    r"(nvidia|geforce|quadro|tesla).*?(1660|1650|1630|t400|t550|t600|t1000|t1200|t2000|k40m)", re.IGNORECASE
)
_configured = False

# Read by the OpenMP runtime once, when torch is first imported: must precede it (see module docstring).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def usable_cores() -> int:
    """CPU cores this process may run on (cgroup/affinity aware where the OS tells us)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def _set_offline_env() -> None:
    """Environment read by ultralytics at import time; inherited by DDP worker processes too."""
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "0"
    os.environ["YOLO_VERBOSE"] = "False"  # no progress bars on stdout; our own logger reports progress
    os.environ.pop("ULTRALYTICS_API_KEY", None)  # Platform streaming would upload metrics and weights
    if not os.environ.get("YOLO_CONFIG_DIR"):
        base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
        os.environ["YOLO_CONFIG_DIR"] = str(base / "nanosynth")


def _install_fonts(config_dir: Path) -> None:
    """Give ultralytics local copies of the fonts it would otherwise download."""
    import matplotlib

    src = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in _FONT_NAMES:
        dst = config_dir / name
        if not dst.exists():
            tmp = dst.with_suffix(f".tmp{os.getpid()}")
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)  # atomic: a concurrent process never sees half a font


def _offline_check_amp(model) -> bool:
    """ultralytics' check_amp without its download: AMP on CUDA unless the GPU is known to fail."""
    import torch

    from ultralytics.utils import WEIGHTS_DIR
    from ultralytics.utils import checks

    device = next(model.parameters()).device
    if device.type != "cuda":
        return False
    if _BAD_AMP_GPU.search(torch.cuda.get_device_name(device)):
        return False
    if (Path(WEIGHTS_DIR) / "yolo26n.pt").is_file():  # the real comparison, when it needs no download
        return checks.check_amp(model)
    return True


class _AtomicPath(type(Path())):
    """A path whose write_bytes never leaves a half-written file (ultralytics' last.pt / best.pt saves)."""

    def write_bytes(self, data) -> int:
        write_bytes_atomic(self, bytes(data))
        return len(data)


def _atomic_save_model(save_model):
    def save(trainer):
        last, best = trainer.last, trainer.best
        trainer.last, trainer.best = _AtomicPath(last), _AtomicPath(best)
        try:
            return save_model(trainer)
        finally:
            trainer.last, trainer.best = last, best

    save.__wrapped__ = save_model
    return save


def _atomic_strip_optimizer(strip):
    """strip_optimizer(f, s) that writes to a temp file and renames it onto ``s or f``."""

    def stripped(f="best.pt", s="", updates=None):
        target = Path(s or f)
        tmp = target.with_name(f".{target.name}.strip{os.getpid()}.tmp")
        try:
            out = strip(f, str(tmp), updates=updates)
            if tmp.is_file():
                os.replace(tmp, target)
            return out
        finally:
            tmp.unlink(missing_ok=True)

    stripped.__wrapped__ = strip
    return stripped


def ultralytics_tqdm() -> type:
    import ultralytics.utils.tqdm as ul_tqdm

    return ul_tqdm.TQDM


def _no_progress_bar(init):
    """TQDM.__init__ with disable=True: some bars (label caching) pass disable=False explicitly."""

    def quiet(self, *args, **kwargs):
        kwargs["disable"] = True
        init(self, *args, **kwargs)

    quiet.__wrapped__ = init
    return quiet


def _quiet_logger() -> None:
    """ultralytics' logger: no console output; records reach only the handlers ultralytics_log() adds."""
    logger = logging.getLogger("ultralytics")
    for h in list(logger.handlers):
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
            logger.removeHandler(h)
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())
    logger.setLevel(logging.INFO)
    logger.propagate = False


@contextlib.contextmanager
def ultralytics_log(path: str | Path) -> Iterator[None]:
    """Append ultralytics' log records (what it would print) to `path` while the block runs."""
    yolo_class()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("ultralytics")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()


def _patch_ultralytics() -> None:
    import ultralytics.data.dataset as ul_dataset
    import ultralytics.engine.trainer as ul_trainer
    import ultralytics.utils as ul_utils
    import ultralytics.utils.torch_utils as ul_torch_utils

    settings = ul_utils.SETTINGS
    if any(settings.get(k) != v for k, v in _OFFLINE_SETTINGS.items()):
        settings.update(_OFFLINE_SETTINGS)  # persisted in that config dir (ours unless YOLO_CONFIG_DIR was set)
    _install_fonts(Path(ul_utils.USER_CONFIG_DIR))
    ul_trainer.check_amp = _offline_check_amp
    if not hasattr(ul_trainer.BaseTrainer.save_model, "__wrapped__"):
        ul_trainer.BaseTrainer.save_model = _atomic_save_model(ul_trainer.BaseTrainer.save_model)
    for module in (ul_trainer, ul_torch_utils):
        if not hasattr(module.strip_optimizer, "__wrapped__"):
            module.strip_optimizer = _atomic_strip_optimizer(module.strip_optimizer)
    _quiet_logger()
    tqdm_cls = ultralytics_tqdm()
    if not hasattr(tqdm_cls.__init__, "__wrapped__"):
        tqdm_cls.__init__ = _no_progress_bar(tqdm_cls.__init__)
    # select_device() resets torch threads to NUM_THREADS; label caching uses a ThreadPool of that size.
    cores = usable_cores()
    ul_torch_utils.NUM_THREADS = cores
    ul_dataset.NUM_THREADS = cores


def yolo_class() -> type:
    """ultralytics.YOLO, imported inside the offline, all-cores environment (idempotent)."""
    global _configured
    if not _configured:
        _set_offline_env()
        import ultralytics  # noqa: F401  (first import reads the environment set above)

        _patch_ultralytics()
        _configured = True
    from ultralytics import YOLO

    return YOLO


def ultralytics_module(name: str) -> Any:
    """An ultralytics submodule (e.g. "utils.torch_utils"), imported after the offline set-up."""
    import importlib

    yolo_class()
    return importlib.import_module(f"ultralytics.{name}")


def cpu_threads(n: int | None = None) -> int:
    """Let torch use `n` (default: all usable) cores again after ultralytics pinned it to one."""
    import torch

    yolo_class()
    n = n or usable_cores()
    torch.set_num_threads(n)
    return n


def select_device(device: str = "auto") -> str:
    """Normalise a device request to ultralytics' string: "cpu", "0" or "0,1" (several GPUs -> DDP).

    "auto" picks CUDA device 0 when torch sees one, else the CPU. An unusable request is an InputError.
    """
    import torch

    dev = str(device).strip().lower().replace("cuda:", "").replace(" ", "")
    if dev in ("", "auto"):
        return "0" if torch.cuda.is_available() else "cpu"
    if dev == "cpu":
        return "cpu"
    ids = dev.split(",")
    if not all(i.isdigit() for i in ids) or len(set(ids)) != len(ids):
        raise InputError(f"unknown device {device!r}: use auto, cpu, a GPU index like 0, or 0,1 for two GPUs")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    missing = [i for i in ids if int(i) >= count]
    if missing:
        raise InputError(f"device {device!r}: no CUDA device {','.join(missing)} (this machine has {count})")
    return ",".join(ids)


# Exported models ultralytics' YOLO() runs (it tells them by name): an .onnx file, an OpenVINO IR folder.
EXPORT_SUFFIXES = {"onnx": ".onnx", "openvino": "_openvino_model"}
# What each export needs installed (ultralytics would pip-install a missing one; we never do).
EXPORT_REQUIREMENTS = {"onnx": ("onnx", "onnxslim", "onnxruntime"), "openvino": ("openvino",)}
RUNTIME_REQUIREMENTS = {"onnx": ("onnxruntime",), "openvino": ("openvino",)}


def exported_format(path: str | Path) -> str | None:
    """"onnx" or "openvino" when `path` names an exported model (by ultralytics' naming), else None."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        return "onnx"
    if path.name.endswith(EXPORT_SUFFIXES["openvino"]) or (path.suffix == ".xml" and path.parent.name.endswith(EXPORT_SUFFIXES["openvino"])):
        return "openvino"
    return None


def is_model_path(path: str | Path) -> bool:
    """A .pt checkpoint, an .onnx file or an OpenVINO folder (``*_openvino_model``): what `load_model` takes."""
    return Path(path).suffix == ".pt" or exported_format(path) is not None


def missing_packages(fmt: str, what: dict[str, tuple[str, ...]] = RUNTIME_REQUIREMENTS) -> list[str]:
    import importlib.util

    return [name for name in what[fmt] if importlib.util.find_spec(name) is None]


def _no_openvino_telemetry() -> None:
    """OpenVINO's converter sends usage events to Google Analytics unless a consent file says no (the
    default, with no file, is yes): decline consent and drop anything sent, before openvino loads it."""
    try:
        from openvino_telemetry.utils import opt_in_checker, sender
    except ImportError:
        return
    opt_in_checker.OptInChecker.check = lambda self, *a, **k: opt_in_checker.ConsentCheckResult.DECLINED
    sender.TelemetrySender.send = lambda self, *a, **k: None


def _exported_metadata(path: Path, fmt: str) -> dict:
    """ultralytics' metadata of an export (names, imgsz, args), read without loading the runtime."""
    base = ultralytics_module("nn.backends.base").BaseBackend
    meta = base.read_metadata(path.parent if fmt == "openvino" and path.suffix == ".xml" else path)
    return {k: ast.literal_eval(v) if k in ("imgsz", "names", "args") and isinstance(v, str) else v for k, v in meta.items()}


def _load_exported(path: Path, fmt: str) -> Any:
    """YOLO() on an export, which ultralytics loads lazily at the first predict: check it now, and give it
    the input size it was exported at (what `trained_imgsz` reads from a .pt)."""
    if fmt == "onnx" and not path.is_file():
        raise InputError("no such model file (weights are never downloaded)", path)
    if fmt == "openvino" and not (path.is_file() or (path.is_dir() and any(path.glob("*.xml")))):
        raise InputError("not an OpenVINO model: expected a folder *_openvino_model with a .xml and a .bin", path)
    missing = missing_packages(fmt)
    if missing:
        raise InputError(f"running a {fmt} model needs {' '.join(missing)}: pip install {' '.join(missing)}", path)
    meta = _exported_metadata(path, fmt)
    if not isinstance(meta.get("names"), dict) or not meta["names"]:
        raise InputError("no class names in this model (export it with `detector export`)", path)
    if meta.get("task", "detect") != "detect":
        raise InputError(f"not a detection model (task {meta['task']!r})", path)
    if fmt == "openvino":
        _no_openvino_telemetry()
    model = yolo_class()(str(path), task="detect")
    imgsz = meta.get("imgsz")
    if imgsz:
        model.overrides["imgsz"] = max(imgsz) if isinstance(imgsz, (list, tuple)) else int(imgsz)
    try:
        model.names  # builds the backend: a corrupt file fails here, not in the middle of a run
    except Exception as e:  # noqa: BLE001  (each runtime has its own errors for a bad file)
        raise InputError(f"cannot load model: {_first_line(e, path)}", path) from None
    return model


def load_model(weights_or_cfg: str | Path) -> Any:
    """A YOLO model from a local .pt checkpoint, a model YAML or an export (.onnx file, OpenVINO folder
    ``*_openvino_model``, see `export_model`); never downloads."""
    path = Path(weights_or_cfg)
    fmt = exported_format(path)
    if fmt is not None:
        return _load_exported(path, fmt)
    if not path.is_file():
        raise InputError("no such model file (weights are never downloaded)", path)
    if path.suffix not in (".pt", ".yaml", ".yml"):
        raise InputError("a model is a .pt checkpoint, an .onnx file, a *_openvino_model folder or a .yaml model config", path)
    YOLO = yolo_class()
    if path.suffix == ".pt":
        task = None  # a checkpoint knows its task (detect or segment)
    else:
        from detector.models import yaml_task

        task = yaml_task(path)
    try:
        return YOLO(str(path), task=task)
    except (RuntimeError, KeyError, ValueError, EOFError, TypeError, pickle.UnpicklingError) as e:  # a bad file
        raise InputError(f"cannot load model: {_first_line(e, path)}", path) from None


def export_model(weights: str | Path, fmt: str, folder: str | Path, imgsz: int | None = None) -> Path:
    """Export a .pt checkpoint with ultralytics' exporter into `folder` (which it fills; the caller
    stages and renames it). Dynamic input shape, so one export serves every size and batch `predict`
    uses (whole image, tiles, vote scales); fp32; ONNX simplified by onnxslim. Returns the model's path.

    Offline: the packages must be installed (ultralytics' pip auto-install is off), OpenVINO telemetry
    is declined, and nothing is downloaded (no calibration data: no int8)."""
    if fmt not in EXPORT_SUFFIXES:
        raise InputError(f"unknown export format {fmt!r} (use {' or '.join(EXPORT_SUFFIXES)})")
    weights = Path(weights)
    if weights.suffix != ".pt":
        raise InputError("export takes a .pt checkpoint", weights)
    missing = missing_packages(fmt, EXPORT_REQUIREMENTS)
    if missing:
        raise InputError(f"{fmt} export needs {' '.join(missing)}: pip install {' '.join(missing)}")
    # ultralytics writes the export beside the checkpoint it loaded: give it a copy inside `folder`
    src = Path(folder) / weights.name
    shutil.copyfile(weights, src)
    model = load_model(src)
    names = dict(model.names)
    if fmt == "openvino":
        _no_openvino_telemetry()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.")  # torch.jit.trace's deprecation
            out = model.export(format=fmt, dynamic=True, simplify=True, device="cpu", imgsz=imgsz or model.overrides.get("imgsz") or 416,
                               batch=1, verbose=False)  # fmt: skip
    except Exception as e:  # noqa: BLE001  (ultralytics wraps exporter failures in its own types)
        raise InputError(f"{fmt} export failed: {_first_line(e, weights)}", weights) from None
    finally:
        src.unlink(missing_ok=True)
    out = Path(out)
    meta = _exported_metadata(out, fmt)
    if meta.get("names") != names:  # class names are what predict maps classes by
        raise InputError(f"{fmt} export lost the class names ({meta.get('names')} instead of {names})", weights)
    return out


def _first_line(e: BaseException, path: Path) -> str:
    """ultralytics' load error without its emoji prefix, the repeated path and the second line
    (which advises ``yolo predict model=yolo26n.pt``, i.e. a download)."""
    text = (str(e).strip().splitlines() or [type(e).__name__])[0]
    text = re.sub(r"^ERROR\W*", "", text).strip()
    for p in (str(path), path.name):
        if text.startswith(p + " "):
            text = text[len(p) + 1 :]
            break
    return text or type(e).__name__


def read_checkpoint(path: str | Path) -> dict:
    """The raw ultralytics checkpoint dict of a .pt file (no model built); InputError when unreadable."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such checkpoint", path)
    torch_load = ultralytics_module("utils.patches").torch_load
    try:
        ckpt = torch_load(str(path), map_location="cpu")
    except Exception as e:  # noqa: BLE001  (truncated zip, empty file, bytes that are no pickle, ...)
        raise InputError(f"not a loadable checkpoint ({type(e).__name__}: {_first_line(e, path)})", path) from None
    if not isinstance(ckpt, dict) or (ckpt.get("model") is None and ckpt.get("ema") is None):
        raise InputError("not an ultralytics checkpoint (no model inside)", path)
    return ckpt
