"""Pattern files in, a labelled synthetic dataset out.

Output folder: ``images/``, ``labels/`` (YOLO), ``annotations.json`` (COCO), ``data.yaml``
(ultralytics) and ``manifest.json`` (patterns, run seed, options, per-image seed and counts).

Reproducibility: image ``i`` is drawn from ``np.random.default_rng(seed_i)`` where
``seed_i = image_seed(run_seed, i)`` (a ``SeedSequence`` child), so every image depends only on
the run seed and its index: the output is byte-identical for any number of workers, and
``synthesize(pattern, seed_i, options)`` regenerates any single image. Realism and the per-image
scale/density draws use their own streams (``default_rng([seed_i, 1])``, ``[seed_i, 2]``), so
with them off the output is exactly the plain mode's.

Atomicity: all input is validated before anything is written; files are written into a hidden
temp folder next to the destination, which is renamed into place at the end, and removed if the
run fails or is interrupted. A run holds a lock on its destination (a second run into the same
folder fails at once), and removes the staging folders of dead runs (killed with -9) it finds
beside it. An existing output is replaced only with ``overwrite``.

Streaming: images are written as they come (workers get a bounded window of jobs, results are
taken in order) and annotations.json / manifest.json are assembled from per-image parts at the
end, so memory does not grow with ``count``.
"""

from __future__ import annotations

import collections
import itertools
import json
import math
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from synthgen import __version__
from synthgen.classes import CLASS_NAMES
from synthgen.atomic import OwnedStaging, os_reason, output_lock, remove_dead_staging, swap_in_dir
from synthgen.errors import InputError
from synthgen.labels import LabelledImage, class_counts, coco_dataset, data_yaml_text, json_text, yolo_text
from synthgen.pattern import Pattern, load_patterns
from synthgen.distractors import draw_distractors, footprint_mask, reserve_info_bar
from synthgen.placement import (
    DEFAULT_MAX_FAILURES,
    PlacedParticle,
    PlacementOptions,
    ShapeTable,
    place_particles,
    visible_particles,
)
from synthgen.realism import (
    BackgroundConfig,
    RealismConfig,
    degrade,
    load_realism,
    make_background,
    render_with_looks,
    with_distractors,
)
from synthgen.render import render

IMAGE_FORMATS = ("png", "jpg")
JPEG_QUALITY = 95
MAX_COUNT = 10_000_000  # --count: images of a run (per pattern with --per-pattern)


@dataclass(frozen=True)
class GenerateOptions:
    """Everything but the patterns, the output folder and the seed that decides the images."""

    count: int = 10
    per_pattern: bool = False  # count images per pattern file instead of shared round-robin
    max_particles: int = 1000
    min_gap: float = 0.0
    scale_jitter: float = 0.0
    background: int = 20  # grey level of the empty canvas
    image_format: str = "png"
    max_failures: int = DEFAULT_MAX_FAILURES
    realism: RealismConfig = field(default_factory=RealismConfig)  # "none": the plain dark canvas
    cluster_prob: float = 0.0
    touching: bool = False
    occlusion: float = 0.0  # max fraction of a particle one later particle may cover
    drop_occluded: float = 0.6  # particles hidden by more than this fraction are not labelled
    scale_range: tuple[float, float] = (1.0, 1.0)  # per-image scale factor drawn from [lo, hi]
    density_range: tuple[float, float] = (1.0, 1.0)  # per-image cap: [lo, hi] x max_particles
    size_dist: tuple[float, float] | None = None  # log-normal particle sizes: (mean, std) in px

    def check(self) -> None:
        """InputError for option values a user could mistype."""
        problems = []
        if not 1 <= self.count <= MAX_COUNT:
            problems.append(f"--count must be in 1..{MAX_COUNT} (got {self.count})")
        if self.max_particles < 1:
            problems.append(f"--max-particles must be at least 1 (got {self.max_particles})")
        if not (math.isfinite(self.min_gap) and self.min_gap >= 0):
            problems.append(f"--min-gap must be >= 0 pixels (got {self.min_gap})")
        if not 0 <= self.scale_jitter < 1:
            problems.append(f"--scale-jitter must be in [0, 1) (got {self.scale_jitter})")
        if not 0 <= self.background <= 255:
            problems.append(f"--background must be a grey level 0..255 (got {self.background})")
        if self.image_format not in IMAGE_FORMATS:
            problems.append(f"--format must be one of {', '.join(IMAGE_FORMATS)} (got {self.image_format!r})")
        if self.max_failures < 1:
            problems.append(f"--max-failures must be at least 1 (got {self.max_failures})")
        if not 0 <= self.cluster_prob <= 1:
            problems.append(f"--cluster-prob must be in [0, 1] (got {self.cluster_prob})")
        if not 0 <= self.occlusion < 1:
            problems.append(f"--occlusion must be in [0, 1) (got {self.occlusion})")
        if not 0 < self.drop_occluded <= 1:
            problems.append(f"--drop-occluded must be in (0, 1] (got {self.drop_occluded})")
        lo, hi = self.scale_range
        if not 0 < lo <= hi <= 10:
            problems.append(f"--scale-range must be LO,HI with 0 < LO <= HI <= 10 (got {lo},{hi})")
        lo, hi = self.density_range
        if not 0 < lo <= hi <= 1:
            problems.append(f"--density-range must be LO,HI with 0 < LO <= HI <= 1 (got {lo},{hi})")
        if self.size_dist is not None:
            mean, spread = self.size_dist
            if not (math.isfinite(mean) and math.isfinite(spread) and mean > 0 and spread >= 0):
                problems.append(f"--size-dist needs MEAN > 0 and SPREAD >= 0 px (got {mean:g},{spread:g})")
            if self.scale_jitter > 0:
                problems.append("--size-dist draws every particle's scale: leave out --scale-jitter")
        if problems:
            raise InputError("; ".join(problems))

    @property
    def placement(self) -> PlacementOptions:
        """Placement options of an image at scale factor 1 and the full --max-particles."""
        return PlacementOptions(
            self.max_particles,
            self.min_gap,
            self.scale_jitter,
            self.max_failures,
            cluster_prob=self.cluster_prob,
            touching=self.touching,
            occlusion=self.occlusion,
        )

    @property
    def varies(self) -> bool:
        return self.scale_range != (1.0, 1.0) or self.density_range != (1.0, 1.0)

    def image_placement(self, rng: np.random.Generator) -> PlacementOptions:
        """This image's placement options: scale factor and particle cap drawn from the ranges."""
        if not self.varies:
            return self.placement
        scale = float(rng.uniform(*self.scale_range))
        cap = max(1, round(float(rng.uniform(*self.density_range)) * self.max_particles))
        return replace(self.placement, scale=scale, max_particles=cap)


def parse_size_dist(text: str | None) -> tuple[float, float] | None:
    """'lognormal:MEAN,SPREAD' (px; SPREAD the standard deviation) -> (mean, spread); None for None/''."""
    if not text:
        return None
    kind, _, args = text.partition(":")
    try:
        values = [float(v) for v in args.replace(" ", "").split(",")]
    except ValueError:
        values = []
    if kind.strip().lower() != "lognormal" or len(values) != 2:
        raise InputError(f"--size-dist must be 'lognormal:MEAN,SPREAD' in px, e.g. lognormal:30,5 (got {text!r})")
    return values[0], values[1]


def template_size(polygon, class_name: str) -> float:
    """A template's particle size at scale 1 as detector.measure defines it: a cube's edge (geometric
    mean of the minimum rotated rectangle's sides), a quasi-sphere's ECD."""
    if class_name == "cube":
        rect = np.asarray(polygon.minimum_rotated_rectangle.exterior.coords)[:3]
        return float(math.sqrt(np.hypot(*(rect[1] - rect[0])) * np.hypot(*(rect[2] - rect[1]))))
    return math.sqrt(4 * polygon.area / math.pi)


def log_size_params(pattern: Pattern, mean: float, spread: float) -> tuple[tuple[float, ...], float]:
    """PlacementOptions.log_size for sizes ~ log-normal with this mean and standard deviation (px):
    sigma^2 = ln(1 + (spread/mean)^2), median = mean / sqrt(1 + (spread/mean)^2), and each template's
    scale is the size over the template's own size."""
    from synthgen.classes import CLASS_NAMES

    var = math.log1p((spread / mean) ** 2)
    mu = math.log(mean) - var / 2
    own = [template_size(t.polygon, CLASS_NAMES[e.class_id]) for t, e in zip(pattern.templates, pattern.entries)]
    return tuple(mu - math.log(max(o, 1e-9)) for o in own), math.sqrt(var)


def parse_range(text: str | Sequence[float], option: str) -> tuple[float, float]:
    """'LO,HI' (or one number for both) -> (lo, hi); InputError naming ``option`` when malformed."""
    if not isinstance(text, str):
        values = list(text)
    else:
        try:
            values = [float(v) for v in text.replace(" ", "").split(",")]
        except ValueError:
            values = []
    if len(values) == 1:
        values *= 2
    if len(values) != 2 or not all(np.isfinite(values)) or values[0] > values[1]:
        raise InputError(f"{option} must be 'LO,HI' with LO <= HI (got {text!r})")
    return float(values[0]), float(values[1])


@dataclass(frozen=True)
class ImageRecord:
    index: int
    file: str  # relative to the output folder
    label: str
    pattern: int
    seed: int
    particles: tuple[PlacedParticle, ...] = field(repr=False)

    def summary(self) -> dict:
        return {
            "file": self.file,
            "label": self.label,
            "pattern": self.pattern,
            "seed": self.seed,
            "particles": len(self.particles),
            "counts": class_counts(self.particles),
        }


@dataclass(frozen=True)
class GenerateResult:
    out_dir: Path
    seed: int
    images: tuple[ImageRecord, ...]  # empty when generate(keep_images=False)
    options: GenerateOptions | None = None
    n_images: int | None = None  # images written (len(images) when they are kept)
    totals: dict[str, int] | None = None  # particles per class
    removed_stale: tuple[Path, ...] = ()  # staging folders of dead runs removed before this one

    @property
    def counts(self) -> dict[str, int]:
        if self.totals is not None:
            return dict(self.totals)
        return class_counts([p for im in self.images for p in im.particles])

    @property
    def count(self) -> int:
        return len(self.images) if self.n_images is None else self.n_images


def clock_seed() -> int:
    """A fresh run seed from the clock (recorded in manifest.json)."""
    return time.time_ns() // 1000 % 2**32


def image_seed(run_seed: int, index: int) -> int:
    """Seed of image ``index`` of a run: a SeedSequence child, independent of workers and order."""
    child = np.random.SeedSequence(run_seed, spawn_key=(index,))
    return int(child.generate_state(1, np.uint64)[0])


def shape_table(pattern: Pattern) -> ShapeTable:
    """Placement set-up of a pattern's templates (reusable for all its images)."""
    return ShapeTable([t.centred for t in pattern.templates])


def synthesize(
    pattern: Pattern, seed: int, options: GenerateOptions, table: ShapeTable | None = None
) -> tuple[np.ndarray, list[PlacedParticle]]:
    """One image of ``pattern`` from its image seed: (grey uint8 array, labelled particles).
    ``table`` is ``shape_table(pattern)``, passed in to save its set-up on every image.

    Three independent random streams, so that turning an option on never moves what the others
    drew: ``default_rng(seed)`` places the particles (the paper's plain mode uses only this one),
    ``default_rng([seed, 1])`` draws the realism (info bar, substrate, distractors, degradation),
    ``default_rng([seed, 2])`` the per-image scale factor and particle cap."""
    rng = np.random.default_rng(seed)
    class_ids = [e.class_id for e in pattern.entries]
    table = table or shape_table(pattern)
    w, h = pattern.width, pattern.height
    placement = options.image_placement(np.random.default_rng([seed, 2])) if options.varies else options.placement
    if options.size_dist is not None:
        placement = replace(placement, log_size=log_size_params(pattern, *options.size_dist))
    cfg = options.realism
    realism = cfg != RealismConfig()
    rrng = np.random.default_rng([seed, 1]) if realism else None
    rows = reserve_info_bar(h, rrng, cfg) if realism else 0  # bottom rows kept free for the info bar
    # the bar keeps `margin` px (+1 px of mask dilation) from particles, so they stay clear of that too
    keep_clear = rows + int(cfg.distractors.margin) + 2 if rows else 0
    particles = place_particles(table, class_ids, w, h - keep_clear, rng, placement)
    canvas = make_background(h, w, rrng, cfg) if realism and cfg.background != BackgroundConfig() else None
    occupied = None
    if realism and (cfg.distractors.active or cfg.particles.active):
        occupied = footprint_mask(h, w, [p.footprint for p in particles])  # also the unlabelled hidden ones
    if realism and cfg.particles.active:  # lift above a light substrate, rims, halos: repaints only
        image = render_with_looks(w, h, particles, pattern.templates, canvas, occupied, rrng, cfg, options.background)
    else:
        image = render(w, h, particles, pattern.templates, options.background, canvas=canvas)
    if realism and cfg.distractors.active:
        image = draw_distractors(image, occupied, rrng, cfg, rows)
    if realism:
        image = degrade(image, rrng, cfg)
    labelled = visible_particles(particles, options.drop_occluded) if options.occlusion > 0 else particles
    return image, labelled


def encode(image: np.ndarray, image_format: str) -> bytes:
    """PNG (lossless, cv2's fast default level) or JPEG (quality 95) bytes."""
    if image_format == "jpg":
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    else:
        ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError(f"cv2 could not encode a {image.shape} image as {image_format}")
    return buf.tobytes()


def n_images(n_patterns: int, options: GenerateOptions) -> int:
    return options.count * n_patterns if options.per_pattern else options.count


def iter_plan(patterns: Sequence[Pattern], options: GenerateOptions, run_seed: int) -> Iterator[tuple[int, int, int]]:
    """(index, pattern index, image seed) per image, lazily: round-robin, or ``count`` each with per_pattern."""
    n = n_images(len(patterns), options)
    pick = (lambda i: i // options.count) if options.per_pattern else (lambda i: i % len(patterns))
    return ((i, pick(i), image_seed(run_seed, i)) for i in range(n))


def plan(patterns: Sequence[Pattern], options: GenerateOptions, run_seed: int) -> list[tuple[int, int, int]]:
    """``iter_plan`` as a list."""
    return list(iter_plan(patterns, options, run_seed))


# Worker state: set once per process so the templates are not re-sent with every image.
_WORKER: dict = {}


def _init_worker(patterns: Sequence[Pattern], options: GenerateOptions, one_thread: bool = True) -> None:
    if one_thread:  # the processes are the parallelism; OpenCV's own threads would compete
        cv2.setNumThreads(1)
    _WORKER["patterns"], _WORKER["options"] = patterns, options
    _WORKER["tables"] = [shape_table(p) for p in patterns]


def _make(job: tuple[int, int, int]) -> tuple[bytes, str, list[PlacedParticle]]:
    _, pattern_index, seed = job
    pattern, options = _WORKER["patterns"][pattern_index], _WORKER["options"]
    image, particles = synthesize(pattern, seed, options, _WORKER["tables"][pattern_index])
    return encode(image, options.image_format), yolo_text(particles, pattern.width, pattern.height), particles


def _results(
    jobs: Iterable[tuple[int, int, int]], patterns, options, workers: int, window: int = 4
) -> Iterator[tuple[bytes, str, list[PlacedParticle]]]:
    """Results in job order, as they come. With workers, at most ``window`` jobs per worker are in
    flight (Executor.map and Pool.imap would queue every job first: memory grows with the count)."""
    if workers <= 1:
        _init_worker(patterns, options, one_thread=False)
        yield from map(_make, jobs)
        return
    # "spawn": fresh workers, never a fork of a process running threads (e.g. a progress bar).
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=get_context("spawn"), initializer=_init_worker, initargs=(patterns, options)
    )
    try:
        jobs = iter(jobs)
        pending = collections.deque(pool.submit(_make, job) for job in itertools.islice(jobs, workers * window))
        while pending:
            result = pending.popleft().result()
            for job in itertools.islice(jobs, 1):
                pending.append(pool.submit(_make, job))
            yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def is_generate_output(folder: Path) -> bool:
    """A folder written by ``synthgen generate`` (its manifest.json names the generator first)."""
    try:
        with open(folder / "manifest.json", "rb") as f:
            head = f.read(200)
    except OSError:
        return False
    return head.replace(b" ", b"").replace(b"\n", b"").startswith(b'{"generator":"synthgen')


def check_out_dir(out_dir: Path, overwrite: bool = False, inputs: Sequence[Path] = ()) -> None:
    """InputError unless ``out_dir`` is absent or empty, or (``overwrite``) a previous generate output
    that holds none of ``inputs``."""
    if not out_dir.exists() and not out_dir.is_symlink():
        return
    if not out_dir.is_dir():
        raise InputError("the output exists and is not a folder; choose a new --out folder", out_dir)
    try:
        empty = not any(out_dir.iterdir())
    except OSError as e:
        raise InputError(f"cannot read the output folder: {os_reason(e)}", out_dir) from None
    if empty:
        return
    if not overwrite:
        raise InputError("output folder already exists and is not empty (use --overwrite to replace it)", out_dir)
    if not is_generate_output(out_dir):
        raise InputError(
            "--overwrite replaces only a previous synthgen generate output (with its manifest.json); "
            "this folder holds other files: choose a new --out folder",
            out_dir,
        )
    root = out_dir.resolve()
    for path in inputs:
        if path.resolve().is_relative_to(root):
            raise InputError(f"an input lies inside the output folder ({path}); --overwrite would delete it", out_dir)


def generate(
    patterns: Sequence[str | Path | Pattern],
    out_dir: str | Path,
    count: int = 10,
    per_pattern: bool = False,
    max_particles: int = 1000,
    seed: int | None = None,
    min_gap: float = 0.0,
    scale_jitter: float = 0.0,
    background: int = 20,
    image_format: str = "png",
    max_failures: int = DEFAULT_MAX_FAILURES,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
    realism: str | Path | RealismConfig = "none",
    distractors: bool | None = None,
    cluster_prob: float = 0.0,
    touching: bool = False,
    occlusion: float = 0.0,
    drop_occluded: float = 0.6,
    scale_range: str | Sequence[float] = (1.0, 1.0),
    density_range: str | Sequence[float] = (1.0, 1.0),
    size_dist: str | tuple[float, float] | None = None,
    overwrite: bool = False,
    keep_images: bool = True,
) -> GenerateResult:
    """Generate ``count`` labelled images (see the module docstring) into the new folder ``out_dir``.

    ``realism``: a preset name (none, sem, strong, wide), a YAML file or a ``RealismConfig``;
    ``distractors`` forces its distractors on/off (None: as the preset says). ``cluster_prob``,
    ``touching``, ``occlusion``: agglomerates (``placement.place_agglomerates``); particles hidden by
    more than ``drop_occluded`` of their area are not labelled. ``scale_range``: per-image factor on
    the template scale (on top of ``scale_jitter``); ``density_range``: per-image particle cap as a
    fraction of ``max_particles`` (a canvas still stops earlier when it is full). ``size_dist``:
    ``"lognormal:MEAN,SPREAD"`` (or a (mean, std) pair, px) draws every particle's size (a cube's
    edge, a sphere's ECD, as detector.measure defines them, of its labelled outline, which runs along
    the pixel edges; synthgen.instance_masks rasterises it to exactly the pixels it covers) from a log-normal
    distribution cut at +-3 sigma, as a scale factor on its template (times the ``scale_range`` factor). All off by
    default: the output is then that of the paper's plain mode.

    ``overwrite``: replace an existing output of a previous run (only a folder with a synthgen
    manifest.json, and none of the inputs inside). ``keep_images=False`` keeps no per-image record
    in the result (``images`` is empty; ``count``/``counts`` still hold): memory flat in ``count``.

    ``progress(done, total)`` is called after each image. Raises InputError(s) before writing
    anything when a pattern, option or the output folder is unusable, or when another run is
    writing the same output folder."""
    fmt = image_format.lower().lstrip(".")
    fmt = {"jpeg": "jpg"}.get(fmt, fmt)
    cfg = realism if isinstance(realism, RealismConfig) else load_realism(realism)
    options = GenerateOptions(
        count,
        per_pattern,
        max_particles,
        min_gap,
        scale_jitter,
        background,
        fmt,
        max_failures,
        realism=with_distractors(cfg, distractors),
        cluster_prob=cluster_prob,
        touching=touching,
        occlusion=occlusion,
        drop_occluded=drop_occluded,
        scale_range=parse_range(scale_range, "--scale-range"),
        density_range=parse_range(density_range, "--density-range"),
        size_dist=parse_size_dist(size_dist) if isinstance(size_dist, str) or size_dist is None else tuple(map(float, size_dist)),
    )
    options.check()
    if workers < 1:
        raise InputError(f"--workers must be at least 1 (got {workers})")
    if seed is not None and seed < 0:
        raise InputError(f"--seed must be >= 0 (got {seed})")
    ready = [isinstance(p, Pattern) and bool(p.templates) for p in patterns]
    fresh = iter(load_patterns([p.source if isinstance(p, Pattern) else p for p, r in zip(patterns, ready) if not r]))
    pats = [p if r else next(fresh) for p, r in zip(patterns, ready)]
    if not pats:
        raise InputError("no pattern files given")
    out_dir = Path(out_dir)
    inputs = [p.source for p in pats] + [e.path for p in pats for e in p.entries]
    check_out_dir(out_dir, overwrite, inputs)  # early, before the lock: a clear answer without side effects
    run_seed = clock_seed() if seed is None else int(seed)
    total = n_images(len(pats), options)

    with output_lock(out_dir):
        check_out_dir(out_dir, overwrite, inputs)  # again: another run may have finished meanwhile
        removed = tuple(remove_dead_staging(out_dir))
        staging = OwnedStaging(out_dir)
        tmp = staging.path
        try:
            (tmp / "images").mkdir()
            (tmp / "labels").mkdir()
            parts = tmp / ".parts"  # per-image pieces of annotations.json and manifest.json
            parts.mkdir()
            records = []
            totals = dict.fromkeys(CLASS_NAMES, 0)
            ann_id = 0
            with open(parts / "images", "w") as coco_images, open(parts / "annotations", "w") as coco_anns, open(
                parts / "manifest", "w"
            ) as man_images:
                jobs = iter_plan(pats, options, run_seed)
                for done, (job, (data, label_text, particles)) in enumerate(
                    zip(iter_plan(pats, options, run_seed), _results(jobs, pats, options, workers)), start=1
                ):
                    index, pattern_index, image_seed_ = job
                    stem = f"{index:06d}"
                    image_file, label_file = f"images/{stem}.{options.image_format}", f"labels/{stem}.txt"
                    (tmp / image_file).write_bytes(data)
                    (tmp / label_file).write_text(label_text)
                    record = ImageRecord(index, image_file, label_file, pattern_index, image_seed_, tuple(particles))
                    pat = pats[pattern_index]
                    ann_id = _write_coco_parts(coco_images, coco_anns, done, ann_id, record, pat.width, pat.height)
                    summary = record.summary()
                    for name, n in summary["counts"].items():
                        totals[name] += n
                    sep = ",\n" if done > 1 else ""
                    man_images.write(sep + "\n".join("  " + line for line in json.dumps(summary, indent=1).split("\n")))
                    if keep_images:
                        records.append(record)
                    if progress is not None:
                        progress(done, total)
            _assemble(tmp / "annotations.json", _coco_frame(), {"images": parts / "images", "annotations": parts / "annotations"})
            (tmp / "data.yaml").write_text(data_yaml_text(out_dir))
            head = manifest(pats, options, run_seed, (), totals=totals, n=total)
            _assemble(tmp / "manifest.json", head, {"images": parts / "manifest"}, indent=True)
            shutil.rmtree(parts)
            staging.release()
            swap_in_dir(tmp, out_dir)  # out_dir is absent, empty or (overwrite) a previous output: checked above
        except BaseException:
            staging.discard()
            raise
    return GenerateResult(out_dir, run_seed, tuple(records), options, total, totals, removed)


def _coco_frame() -> dict:
    return coco_dataset([])


def _write_coco_parts(images_f, anns_f, image_id: int, ann_id: int, record: ImageRecord, width: int, height: int) -> int:
    """Append this image's COCO entries (compact JSON, comma-separated) to the part files; returns
    the last annotation id. The same bytes as coco_dataset over all images."""
    doc = coco_dataset([LabelledImage(record.file, width, height, record.particles)])
    (im,) = doc["images"]
    im["id"] = image_id
    images_f.write(("," if image_id > 1 else "") + json.dumps(im, separators=(",", ":")))
    anns = doc["annotations"]
    for ann in anns:
        ann_id += 1
        ann["id"], ann["image_id"] = ann_id, image_id
    if anns:  # one encoder call for the image: a compact list is its items joined by ","
        anns_f.write(("," if ann_id > len(anns) else "") + json.dumps(anns, separators=(",", ":"))[1:-1])
    return ann_id


def _assemble(path: Path, frame: dict, lists: dict[str, Path], indent: bool = False) -> None:
    """Write ``frame`` as json_text does, with each key of ``lists`` (an empty list in ``frame``)
    filled from its part file: compact, or (``indent``) a list of indent=1 items of the top mapping."""
    marks = {key: f"@@part:{key}@@" for key in lists}
    text = json_text({k: (marks[k] if k in marks else v) for k, v in frame.items()}, compact=not indent)
    with open(path, "w") as out:
        for key, mark in marks.items():
            before, text = text.split(json.dumps(mark), 1)
            out.write(before)
            with open(lists[key]) as part:
                if indent:
                    out.write("[\n")
                    shutil.copyfileobj(part, out)
                    out.write("\n ]")
                else:
                    out.write("[")
                    shutil.copyfileobj(part, out)
                    out.write("]")
        out.write(text)


def manifest(
    patterns: Sequence[Pattern],
    options: GenerateOptions,
    run_seed: int,
    records: Sequence[ImageRecord],
    totals: dict[str, int] | None = None,
    n: int | None = None,
) -> dict:
    """What was generated and how to regenerate it (no paths of the output, no worker count).
    ``totals``/``n``: the class counts and image count when ``records`` are not kept."""
    totals = class_counts([p for r in records for p in r.particles]) if totals is None else totals
    return {
        "generator": f"synthgen {__version__}",
        "seed": run_seed,
        "seed_rule": "image i places particles with np.random.default_rng(seed_i), realism with default_rng([seed_i, 1]), scale/density with default_rng([seed_i, 2]); seed_i = SeedSequence(seed, spawn_key=(i,)).generate_state(1, uint64)[0]",
        "classes": dict(enumerate(CLASS_NAMES)),
        "options": asdict(options),
        "patterns": [
            {
                "path": str(p.source.resolve()),
                "name": p.name,
                "width": p.width,
                "height": p.height,
                "templates": len(p.entries),
                "templates_per_class": p.counts_per_class(),
            }
            for p in patterns
        ],
        "totals": {"images": len(records) if n is None else n, "particles": sum(totals.values()), "per_class": totals},
        "images": [r.summary() for r in records],
    }
