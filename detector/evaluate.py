"""Score detectors on labelled sets: metrics.py counts/IoU/mAP@0.5 plus pycocotools mAP@[.5:.95].

What can be scored (a "model" row of the report):
- a run folder of `detector train`: every checkpoint listed in its ``checkpoints.json`` (with
  the number of training batches it had seen) plus ``weights/best.pt`` and ``weights/last.pt``;
- a weights file (.pt), or an export of one (.onnx file, ``*_openvino_model`` folder: `detector export`);
- detections made elsewhere (``--predictions``): a folder of YOLO txt files with a confidence column
  (``class cx cy w h conf``, one file per image, named like the image; an image without a file has
  no detections), or a COCO results json (a list of ``{image_id, category_id, bbox, score}``).
  With several sets the folder may hold one sub-folder (or ``<set>.json``) per set.

COCO ids. ``image_id`` may be the image's file name or stem; an integer id is looked up in a COCO
json of the set folder when there is one, otherwise it is the 1-based position of the image in the
set sorted by file name, the numbering of the ``coco/<set>_gt.json`` files `evaluate` writes for
other tools. ``category_id`` follows the categories of the results json when it has them, else the
set's COCO json, else ours: 1 cube, 2 sphere.

Everything returns data; nothing prints.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from synthgen.annotations import Detections, Sample
from synthgen.formats import parse_yolo, read_labelled_folder, read_text
from detector.metrics import RULES, SetMetrics, evaluate_set
from detector.train import CHECKPOINTS_JSON, read_checkpoints
from synthgen.classes import CLASS_NAMES, canonical_class
from synthgen.errors import InputError
from synthgen.warnings_log import collect

if TYPE_CHECKING:
    from detector.mask_eval import MaskEval

EVAL_CONF = 0.001  # detections kept for mAP, as ultralytics' val does; counts use the user's --conf


# ------------------------------------------------------------------ what to score


@dataclass(frozen=True)
class ModelSpec:
    """One row source: weights (with its training progress) or a predictions folder/json."""

    model: str  # run name, weights stem, or predictions folder name
    checkpoint: str  # "epoch0010", "best", "last", or "-" for predictions
    batches: int | None = None
    epoch: int | None = None
    weights: Path | None = None
    predictions: Path | None = None


def _resolve(path: str, run: Path) -> Path:
    p = Path(path)
    if p.is_absolute():
        return p
    for base in (run, run / "checkpoints"):
        if (base / p).is_file():
            return base / p
    return run / p


def _as_int(v) -> int | None:
    try:
        return None if v is None else int(v)
    except (TypeError, ValueError):
        return None


def run_models(run: str | Path) -> list[ModelSpec]:
    """Every checkpoint of a training run folder, in training order, then best and last."""
    run = Path(run)
    name = run.resolve().name
    entries = sorted(read_checkpoints(run), key=lambda e: (_as_int(e.get("batches")) or 0))
    specs = []
    for e in entries:
        path = _resolve(str(e["path"]), run)
        if not path.is_file():
            raise InputError(f"checkpoint {e['path']} listed but missing", run / CHECKPOINTS_JSON)
        epoch = _as_int(e.get("epoch"))
        label = f"epoch{epoch:04d}" if epoch is not None else path.stem
        specs.append(ModelSpec(name, label, _as_int(e.get("batches")), epoch, path))
    final = specs[-1] if specs else None
    for which in ("best", "last"):
        w = run / "weights" / f"{which}.pt"
        if w.is_file():
            # a finished run's last.pt is its final checkpoint; an interrupted run's may be later than any
            finished = (run / "done").is_file()
            batches = final.batches if which == "last" and final is not None and finished else None
            specs.append(ModelSpec(name, which, batches, None, w))
    if not specs:
        raise InputError("not a run folder: no checkpoints.json and no weights/best.pt or last.pt", run)
    return specs


def model_specs(paths: Sequence[str | Path]) -> list[ModelSpec]:
    """Run folders and weights files given on the command line -> rows to score."""
    specs: list[ModelSpec] = []
    from detector.yolo_env import exported_format

    for p in map(Path, paths):
        if p.exists() and (fmt := exported_format(p)):  # .onnx file, OpenVINO folder: one model, not a run folder
            specs.append(ModelSpec(p.name, fmt, None, None, p))
        elif p.is_dir():
            specs.extend(run_models(p))
        elif p.is_file() and p.suffix == ".pt":
            in_run = p.parent.name == "weights" and p.stem in ("best", "last")  # RUN/weights/best.pt: named after the run
            specs.append(ModelSpec(p.parent.parent.name if in_run else p.stem, p.stem, None, None, p))
        elif p.exists():
            raise InputError("expected a run folder or a .pt weights file", p)
        else:
            raise InputError("no such run folder or weights file", p)
    return specs


def parse_set_args(items: Sequence[str]) -> dict[str, Path]:
    """``NAME=DIR`` strings -> {name: folder}; a bare DIR is named after the folder."""
    sets: dict[str, Path] = {}
    for item in items:
        name, sep, folder = item.partition("=")
        if not sep:
            name, folder = Path(item).name, item
        name = name.strip()
        if not name or not folder:
            raise InputError(f"--set {item!r}: expected NAME=DIR, e.g. I=data/val-I")
        if name in sets:
            raise InputError(f"--set {name} given twice")
        sets[name] = Path(folder)
    if not sets:
        raise InputError("give at least one --set NAME=DIR")
    return sets


def load_sets(sets: dict[str, Path], strict: bool = False) -> dict[str, list[Sample]]:
    """Every set's usable images and labels (flaws of the data are warned about and skipped)."""
    return load_sets_counted(sets, strict)[0]


def load_sets_counted(sets: dict[str, Path], strict: bool = False) -> tuple[dict[str, list[Sample]], dict[str, dict[str, int]]]:
    """Like :func:`load_sets`, plus per set the warnings given while reading it, by kind
    (synthgen.warnings_log: "label skipped", "image skipped", ...); ``strict``: they are errors."""
    loaded, warnings = {}, {}
    for name, folder in sets.items():
        with collect(strict=strict) as log:
            loaded[name] = read_labelled_folder(folder)
        warnings[name] = dict(log.counts)
    return loaded, warnings


# ------------------------------------------------------------------ reading predictions


def _find_set_source(predictions: Path, set_name: str) -> Path:
    """The folder or json holding one set's detections inside --predictions."""
    if predictions.is_file():
        return predictions
    if not predictions.is_dir():
        raise InputError("no such predictions folder or json", predictions)
    for cand in (predictions / set_name, predictions / f"{set_name}.json"):
        if cand.exists():
            return cand
    return predictions


def read_yolo_predictions(folder: Path, samples: Sequence[Sample]) -> list[Detections]:
    """YOLO txt with confidences, one file per image (by stem); images without a file have none."""
    dirs = [d for d in (folder, folder / "labels") if d.is_dir()]
    out, found = [], 0
    for s in samples:
        txt = next((d / f"{s.image_path.stem}.txt" for d in dirs if (d / f"{s.image_path.stem}.txt").is_file()), None)
        if txt is None:
            out.append(Detections.empty(with_confidence=True))
            continue
        found += 1
        out.append(parse_yolo(read_text(txt), s.width, s.height, txt, with_confidence=True))
    if samples and not found:
        jsons = sorted(folder.glob("*.json"))
        if len(jsons) == 1:
            return read_coco_predictions(jsons[0], samples)
        names = ", ".join(s.image_path.stem for s in samples[:3])
        raise InputError(f"no prediction file for any image of this set (looked for {names}... .txt)", folder)
    return out


def _set_coco_json(samples: Sequence[Sample]) -> dict | None:
    """The COCO json a set folder was read from, if any (to resolve integer image/category ids)."""
    if not samples:
        return None
    img_dir = samples[0].image_path.parent
    # where read_labelled_folder looks: the set folder (the images' folder, or its parent for images/)
    for folder in [img_dir.parent if img_dir.name == "images" else img_dir]:
        for p in sorted(folder.glob("*.json")):
            try:
                data = json.loads(p.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if isinstance(data, dict) and "images" in data and "categories" in data:
                return data
    return None


def _category_map(categories: list[dict] | None) -> dict[int, int]:
    if not categories:
        return {i + 1: i for i in range(len(CLASS_NAMES))}
    out = {}
    for c in categories:
        canon = canonical_class(str(c.get("name", "")))
        if canon is not None:
            out[int(c["id"])] = CLASS_NAMES.index(canon)
    return out


def read_coco_predictions(path: Path, samples: Sequence[Sample]) -> list[Detections]:
    """A COCO results json -> Detections per sample (see the module docstring for id rules)."""
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"malformed json: {e.msg}", path, e.lineno) from None
    categories = None
    images_meta = None
    if isinstance(data, dict):  # a full COCO file whose annotations carry scores
        categories, images_meta = data.get("categories"), data.get("images")
        data = data.get("annotations", [])
    if not isinstance(data, list):
        raise InputError("expected a COCO results list [{image_id, category_id, bbox, score}, ...]", path)
    set_json = _set_coco_json(samples)
    if categories is None and set_json is not None:
        categories = set_json.get("categories")
    if images_meta is None and set_json is not None:
        images_meta = set_json.get("images")
    cat_map = _category_map(categories)

    index = {}
    for i, s in enumerate(samples):
        index[s.image_path.name] = index[s.image_path.stem] = i
    if images_meta:
        id_to_name = {im["id"]: Path(im["file_name"]).name for im in images_meta}
        int_index = {k: index[v] for k, v in id_to_name.items() if v in index}
    else:
        int_index = {i + 1: i for i in range(len(samples))}

    boxes: list[list] = [[] for _ in samples]
    for k, r in enumerate(data):
        try:
            img, cat = r["image_id"], int(r["category_id"])
            x, y, w, h = (float(v) for v in r["bbox"])
            score = float(r.get("score", 1.0))
        except (KeyError, TypeError, ValueError):
            raise InputError(f"result {k} needs image_id, category_id, bbox [x, y, w, h] and score", path) from None
        i = index.get(Path(img).name, index.get(img)) if isinstance(img, str) else int_index.get(img)
        if i is None:
            continue  # an image outside this set: results files often cover several sets
        if cat not in cat_map:
            raise InputError(f"result {k}: category_id {cat} is not a particle class (known: {sorted(cat_map)})", path)
        boxes[i].append((x, y, x + w, y + h, cat_map[cat], score))
    out = []
    for rows in boxes:
        if not rows:
            out.append(Detections.empty(with_confidence=True))
            continue
        a = np.array(rows, np.float64)
        out.append(Detections(a[:, :4], a[:, 4].astype(np.int64), a[:, 5]))
    return out


def read_predictions(predictions: Path, set_name: str, samples: Sequence[Sample]) -> list[Detections]:
    src = _find_set_source(Path(predictions), set_name)
    if src.is_file():
        if src.suffix.lower() != ".json":
            raise InputError("predictions must be a folder of YOLO txt files or a COCO results .json", src)
        return read_coco_predictions(src, samples)
    return read_yolo_predictions(src, samples)


# ------------------------------------------------------------------ COCO


def coco_ground_truth(samples: Sequence[Sample], class_names: Sequence[str] = CLASS_NAMES) -> dict:
    """COCO instances dict of a set: image ids 1..n in order, category ids 1..k."""
    images, anns = [], []
    for i, s in enumerate(samples, start=1):
        images.append({"id": i, "file_name": s.image_path.name, "width": int(s.width), "height": int(s.height)})
        for box, c in zip(s.gt.xyxy.astype(float), s.gt.class_id):
            w, h = box[2] - box[0], box[3] - box[1]
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "category_id": int(c) + 1,
                    "bbox": [box[0], box[1], w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    return {
        "info": {"description": "nanosynth evaluation set"},
        "licenses": [],
        "images": images,
        "annotations": anns,
        "categories": [{"id": k + 1, "name": n, "supercategory": "particle"} for k, n in enumerate(class_names)],
    }


def coco_results(predictions: Sequence[Detections]) -> list[dict]:
    out = []
    for i, det in enumerate(predictions, start=1):
        conf = det.confidence if det.confidence is not None else np.ones(len(det))
        for box, c, s in zip(det.xyxy.astype(float), det.class_id, conf):
            out.append(
                {
                    "image_id": i,
                    "category_id": int(c) + 1,
                    "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]],
                    "score": float(s),
                }
            )
    return out


def coco_map(
    samples: Sequence[Sample], predictions: Sequence[Detections], class_names: Sequence[str] = CLASS_NAMES
) -> dict[str, float]:
    """pycocotools bbox mAP@[.5:.95] per class name and for "all" (nan for a class without labels)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_dict = coco_ground_truth(samples, class_names)
    has_gt = {n: bool((np.concatenate([s.gt.class_id for s in samples]) == k).any()) if samples else False
              for k, n in enumerate(class_names)}
    out = {n: (0.0 if has_gt[n] else float("nan")) for n in class_names}
    out["all"] = 0.0 if any(has_gt.values()) else float("nan")
    results = coco_results(predictions)
    if not results or not gt_dict["annotations"]:
        return out  # loadRes([]) raises; with no detections every AP is 0
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):  # pycocotools prints progress
        gt = COCO()
        gt.dataset = gt_dict
        gt.createIndex()
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "bbox")
        most = max(100, max(len(p) for p in predictions))
        ev.params.maxDets = [1, 10, most]
        # only the "all" area range is read below; the small/medium/large ranges made evaluateImg
        # (pure Python, most of `evaluate`'s time on dense sets) 4x slower for figures nobody reads
        ev.params.areaRng, ev.params.areaRngLbl = [[0, 1e10]], ["all"]
        ev.evaluate()
        ev.accumulate()
    prec = ev.eval["precision"][:, :, :, 0, -1]  # [iou thr, recall, class, area all, max dets]
    per_class = []
    for k, cat_id in enumerate(ev.params.catIds):
        p = prec[:, :, k]
        p = p[p > -1]
        name = class_names[cat_id - 1]
        if p.size:
            out[name] = float(p.mean())
            per_class.append(out[name])
    out["all"] = float(np.mean(per_class)) if per_class else float("nan")
    return out


# ------------------------------------------------------------------ scoring


@dataclass(frozen=True)
class EvalResult:
    """One set scored for one model checkpoint (or predictions source)."""

    set_name: str
    spec: ModelSpec
    metrics: SetMetrics
    map50_95: dict[str, float]  # class name / "all" / "any" (class-agnostic) -> COCO mAP@[.5:.95]
    predictions: tuple[Detections, ...] = field(repr=False, default=())
    masks: MaskEval | None = None  # mask mAP and sizes (detector.mask_eval), when the set has masks


@dataclass(frozen=True)
class EvalReport:
    results: list[EvalResult]
    sets: dict[str, list[Sample]]
    conf: float
    iou: float
    rule: str
    class_names: tuple[str, ...] = CLASS_NAMES
    warnings: dict[str, dict[str, int]] = field(default_factory=dict)  # set -> warning kind -> count (load_sets_counted)


def score(
    set_name: str,
    spec: ModelSpec,
    samples: Sequence[Sample],
    predictions: Sequence[Detections],
    conf: float = 0.25,
    iou: float = 0.5,
    rule: str = "iou",
) -> EvalResult:
    """Metrics of one set's detections (every detection for mAP, those >= conf for the counts)."""
    if len(predictions) != len(samples):
        raise ValueError(f"{len(predictions)} predictions for {len(samples)} images")
    pairs = [(s.gt, p) for s, p in zip(samples, predictions)]
    metrics = evaluate_set(pairs, CLASS_NAMES, iou_threshold=iou, conf=conf, rule=rule)
    maps = coco_map(samples, predictions)
    maps["any"] = coco_map([_one_class(s) for s in samples], [_one_class(p) for p in predictions], ("any",))["any"]
    return EvalResult(set_name, spec, metrics, maps, tuple(predictions))


def _one_class(x):
    """The same boxes with every class merged into class 0 (class-agnostic scoring)."""
    if isinstance(x, Sample):
        return Sample(x.image_path, x.width, x.height, _one_class(x.gt), x.polygons)
    return Detections(x.xyxy, np.zeros(len(x), np.int64), x.confidence)


def evaluate(
    specs: Sequence[ModelSpec],
    sets: dict[str, list[Sample]],
    conf: float = 0.25,
    iou: float = 0.5,
    rule: str = "iou",
    imgsz: int | None = None,
    device: str = "cpu",
    on_step: Callable[[str], None] | None = None,
    tile: str | int = "auto",
    masks: str = "auto",
    include_border: bool = False,
    refine: str = "none",
) -> EvalReport:
    """Score every spec on every set. `on_step(description)` is called once per model loaded/read.

    `tile`: how models run on each image (detector.tiling: auto, off or a tile size in px).
    `masks`: where predicted masks come from for the sets with ground-truth masks (see
    :func:`with_masks`; "none": boxes only); `include_border`: keep border particles in the sizes;
    `refine`: "gaussian" refines the outlines of the detections >= conf (detector.refine).
    """
    if refine not in REFINE_METHODS:
        raise InputError(f"unknown refinement {refine!r} (use {' or '.join(REFINE_METHODS)})")
    if refine != "none" and masks == "none":
        raise InputError("--refine gaussian refines masks: leave out --masks none")
    if masks not in MASK_SOURCES:
        raise InputError(f"unknown mask source {masks!r} (use {', '.join(MASK_SOURCES)})")
    if rule not in RULES:
        raise InputError(f"unknown matching rule {rule!r} (use {' or '.join(RULES)})")
    if not 0 <= conf <= 1 or not 0 < iou <= 1:
        raise InputError("--conf must lie in [0, 1] and --iou in (0, 1]")
    results = []
    for spec in specs:
        if on_step:
            on_step(f"{spec.model} {spec.checkpoint}")
        if spec.predictions is not None:
            preds = {name: read_predictions(spec.predictions, name, s) for name, s in sets.items()}
        else:
            preds = _predict_sets(spec.weights, sets, imgsz, device, tile)
        for name, samples in sets.items():
            result = score(name, spec, samples, preds[name], conf, iou, rule)
            if masks != "none":
                result = score_masks(result, samples, masks, conf, include_border, spec.weights or spec.predictions, refine)
            results.append(result)
    return EvalReport(results, dict(sets), conf, iou, rule)


MASK_SOURCES = ("auto", "model", "threshold", "none")
REFINE_METHODS = ("none", "gaussian")


def with_masks(samples: Sequence[Sample], predictions: Sequence[Detections], mode: str, source: Path | None = None) -> tuple[list[Detections], str]:
    """The detections with outlines and where they came from, as `detector predict --masks`: the model's
    (``model``; InputError when it gave none), threshold masks inside each box (``threshold``), or the
    model's when it segments, else threshold (``auto``)."""
    from detector.measure import with_threshold_outlines
    from detector.predict import read_image

    segments = any(d.polygons is not None for d in predictions)
    if mode == "model" and not segments and any(len(d) for d in predictions):
        raise InputError("--masks model needs a segmentation model (or predictions with outlines); these are boxes only", source)
    if mode == "model" or (mode == "auto" and segments):
        return list(predictions), "model"
    return [with_threshold_outlines(read_image(s.image_path), d)[0] for s, d in zip(samples, predictions)], "threshold"


def refined(samples: Sequence[Sample], dets: Sequence[Detections], conf: float) -> tuple[list[Detections], dict]:
    """The detections >= conf with Gaussian-refined outlines (detector.refine) and the counts."""
    from detector.predict import read_image
    from detector.refine import RefineCounts, refine_gaussian

    out, total = [], RefineCounts()
    for s, d in zip(samples, dets):
        r, counts = refine_gaussian(read_image(s.image_path), d, conf)
        out.append(r)
        total = total + counts
    return out, total.as_dict()


def score_masks(result: EvalResult, samples: Sequence[Sample], mode: str, conf: float, include_border: bool = False,
                source: Path | None = None, refine: str = "none") -> EvalResult:  # fmt: skip
    """`result` with its mask scores (detector.mask_eval) when the set has ground-truth masks or polygons."""
    import dataclasses

    from detector.mask_eval import evaluate_masks, has_masks

    if not has_masks(samples):
        return result
    dets, where = with_masks(samples, result.predictions, mode, source)
    counts = None
    if refine == "gaussian":
        dets, counts = refined(samples, dets, conf)
        where += "+gaussian"
    scores = evaluate_masks(samples, dets, where, conf, include_border)
    return dataclasses.replace(result, masks=dataclasses.replace(scores, refine=counts))


def _predict_sets(
    weights: Path, sets: dict[str, list[Sample]], imgsz: int | None, device: str, tile: str | int = "auto"
) -> dict[str, list[Detections]]:
    from detector.predict import predict_images
    from detector.yolo_env import load_model, select_device

    model = load_model(weights)
    dev = select_device(device)
    return {
        name: list(predict_images(model, [s.image_path for s in samples], conf=EVAL_CONF, imgsz=imgsz, device=dev, tile=tile,
                                  every_box=True))
        for name, samples in sets.items()
    }
