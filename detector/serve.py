"""`detector serve`: a local web page and JSON API over the predict and report core.

A thin layer: uploads are read with `detector.predict` (`checked_size`, `read_image`, `predict_images`),
sizes come from `detector.report.detection_rows`, and the download zip is `detector.report`'s
`write_predictions` output (CSV, COCO, labelme, annotated PNGs, histograms). The model is loaded once;
forward passes are serialised by a lock, so concurrent requests queue while `/api/health` and the page
stay responsive. Uploads live in a per-request temporary folder removed before the answer is sent,
unless a keep folder is given.

API (JSON; errors are ``{"error": "NAME: what is wrong"}`` with a 4xx status):
  GET  /api/health   -> status, model, classes, limits
  POST /api/predict  multipart: files (one or more), conf (0-1, default 0.25), nm_per_px (optional),
                     preview (0/1: add an 8-bit JPEG of each image as the model saw it)
                     -> {"images": [{name, width, height, nm_per_px, scale_source, counts, particles: [...]}]}
  POST /api/export   multipart: files (the same images), results (JSON: {"images": [{name, nm_per_px,
                     scale_source (optional), particles: [{class_id, confidence, box}]}]}) -> zip of CSV,
                     COCO, labelme, PNGs; each image in nm at its own scale
"""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Annotated, Optional

import anyio
import anyio.to_thread
import numpy as np
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from detector.predict import checked_size, predict_images, read_image
from synthgen.annotations import Detections
from synthgen.classes import CLASS_NAMES
from synthgen.errors import InputError

WEB_DIR = Path(__file__).with_name("web")
PREVIEW_MAX_SIDE = 2048  # previews larger than this are shrunk (the page draws boxes in image pixels)
LOOPBACK = ("127.0.0.1", "localhost", "::1")
WORK_THREADS = 4  # uploads read, predicted and answered at once (forward passes take turns on the model's lock)


@dataclass(frozen=True)
class Limits:
    """What one upload may be; anything over it is refused with a 4xx answer."""

    max_file_mb: float = 200.0
    max_files: int = 100
    max_megapixels: float = 100.0
    max_request_mb: float = 2048.0

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 1024 * 1024)


class UploadError(InputError):
    """A refused upload: `status` is the HTTP status to answer with (413 too large, 422 unreadable)."""

    def __init__(self, msg: str, path=None, status: int = 422):
        super().__init__(msg, path)
        self.status = status


def safe_name(filename: str | None, index: int) -> str:
    """A file name safe to create in a temp folder: the base name of the upload, odd characters replaced."""
    base = re.split(r"[\\/]", filename or "")[-1].strip()
    base = re.sub(r"[^A-Za-z0-9._+-]", "_", base).lstrip(".")
    return base[:120] or f"upload-{index}"


def scale_for(path: Path, nm_per_px: float | None) -> tuple[float | None, str]:
    """(nm per pixel, where it came from) for one image: the file's metadata (synthgen.readers: vendor
    TIFF, DM3/DM4, EMD, height maps), else the request's value ("option"), else unknown ("none").
    The scale bar is not read here (OCR would slow every answer): `detector predict` reads it."""
    from detector.scale_bar import resolve_scale
    from synthgen.readers import read_micrograph

    nm, source, _ = resolve_scale(read_micrograph(path), nm_per_px, None)
    return nm, source


def polygons_of(det: Detections) -> list | None:
    """Per detection a contour [[x, y], ...] when the model gives polygons (segmentation), else None."""
    polys = getattr(det, "polygons", None)
    if polys is None or len(polys) != len(det):
        return None
    return [None if p is None else np.asarray(p, np.float64).reshape(-1, 2).round(2).tolist() for p in polys]


def particles_json(path: Path, det: Detections, nm_per_px: float | None) -> list[dict]:
    """The particles of one image as JSON objects; sizes are report.detection_rows' (as in detections.csv)."""
    from detector.report import detection_rows

    rows = detection_rows([path], [det], nm_per_px)
    polys = polygons_of(det)
    out = []
    for i, (row, cid) in enumerate(zip(rows, det.class_id)):
        _, name, conf, x1, y1, x2, y2, w, h, d, *nm = row
        p = {
            "class": name, "class_id": int(cid), "confidence": round(float(conf), 4),
            "box": [round(float(v), 2) for v in (x1, y1, x2, y2)], "polygon": polys[i] if polys else None,
            "width_px": round(float(w), 3), "height_px": round(float(h), 3), "diameter_px": round(float(d), 3),
        }  # fmt: skip
        if nm:
            p.update(width_nm=round(float(nm[0]), 3), height_nm=round(float(nm[1]), 3), diameter_nm=round(float(nm[2]), 3))
        out.append(p)
    return out


def image_json(name: str, path: Path, size: tuple[int, int], det: Detections, nm_per_px: float | None, source: str) -> dict:
    return {
        "name": name,
        "width": int(size[0]),
        "height": int(size[1]),
        "nm_per_px": nm_per_px,
        "scale_source": source,
        "counts": {c: int((det.class_id == k).sum()) for k, c in enumerate(CLASS_NAMES)},
        "particles": particles_json(path, det, nm_per_px),
    }


def preview_data_url(path: Path) -> tuple[str, float]:
    """The image as the model reads it (8-bit), as a JPEG data URL, and the preview's scale (<= 1)."""
    import cv2

    img = read_image(path)
    h, w = img.shape[:2]
    scale = min(1.0, PREVIEW_MAX_SIDE / max(h, w))
    if scale < 1.0:
        img = cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise UploadError("cannot encode a preview of this image", path)
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode("ascii"), scale


def check_upload(path: Path, limits: Limits) -> tuple[int, int]:
    """(width, height) of a saved upload from its header; UploadError when unreadable or too large."""
    try:
        w, h = checked_size(path)
    except InputError as e:
        raise UploadError(e.msg, path.name, 413 if "too large" in e.msg else 422) from None
    if w * h > limits.max_megapixels * 1e6:
        raise UploadError(f"image too large: {w}x{h} is over this server's {limits.max_megapixels:g} megapixels", path.name, 413)
    return w, h


class Predictor:
    """The model, loaded once, and the one lock its forward passes take."""

    def __init__(self, weights: Path, device: str = "auto", tile: str | int = "auto", runtime: str = "torch"):
        from detector.export import load_for_runtime
        from detector.yolo_env import select_device

        self.weights = Path(weights)
        self.device = select_device(device)
        self.model = load_for_runtime(self.weights, runtime, self.device)
        self.tile = tile
        self.lock = threading.Lock()
        self.warm_up()

    def warm_up(self) -> None:
        """One forward pass on a blank image, so the first upload does not pay ultralytics' set-up."""
        from detector.predict import trained_imgsz

        size = trained_imgsz(self.model)
        with self.lock:
            self.model.predict([np.zeros((size, size, 3), np.uint8)], imgsz=size, device=self.device, verbose=False)

    def __call__(self, paths: Sequence[Path], conf: float) -> list[Detections | None]:
        with self.lock:
            return list(predict_images(self.model, list(paths), conf=conf, device=self.device, tile=self.tile, skip_unreadable=True))


def save_uploads(files, folder: Path, limits: Limits) -> list[tuple[str, Path]]:
    """Write each upload (objects with .filename and a binary .file) into `folder`, enforcing the limits;
    returns (name as uploaded, saved path) in upload order."""
    if not files:
        raise UploadError("no files uploaded: send one or more images in the form field 'files'")
    if len(files) > limits.max_files:
        raise UploadError(f"{len(files)} files in one request; this server takes at most {limits.max_files}", status=413)
    saved, taken = [], set()
    for i, up in enumerate(files):
        name = safe_name(up.filename, i)
        if name in taken:
            raise UploadError(f"two uploads named {name!r}: rename one", name)
        taken.add(name)
        path = folder / name
        written = 0
        with path.open("wb") as out:
            while chunk := up.file.read(1 << 20):
                written += len(chunk)
                if written > limits.max_file_bytes:
                    raise UploadError(f"file too large: over this server's {limits.max_file_mb:g} MB", name, 413)
                out.write(chunk)
        if written == 0:
            raise UploadError("empty file", name)
        saved.append((up.filename or name, path))
    return saved


def predict_uploads(predictor: Predictor, files, limits: Limits, conf: float = 0.25, nm_per_px: float | None = None,
                    preview: bool = False, keep: Path | None = None) -> dict:  # fmt: skip
    """The /api/predict answer for a list of uploads; UploadError for the first bad one (nothing predicted)."""
    if not 0.0 <= conf <= 1.0:
        raise UploadError(f"conf must lie in 0-1, got {conf:g}")
    if nm_per_px is not None and not nm_per_px > 0:
        raise UploadError(f"nm_per_px must be positive, got {nm_per_px:g}")
    with tempfile.TemporaryDirectory(prefix="nanosynth-serve-") as tmp:
        saved = save_uploads(files, Path(tmp), limits)
        sizes = [check_upload(p, limits) for _, p in saved]
        dets = predictor([p for _, p in saved], conf)
        for (_, p), d in zip(saved, dets):
            if d is None:
                raise UploadError("cannot read image (corrupt, truncated or not an image)", p.name)
        images = []
        for (_, p), size, det in zip(saved, sizes, dets):
            scale, source = scale_for(p, nm_per_px)
            item = image_json(p.name, p, size, det, scale, source)
            if preview:
                item["preview"], item["preview_scale"] = preview_data_url(p)
            images.append(item)
        answer = {"images": images, "conf": conf, "model": predictor.weights.name}
        if keep is not None:
            keep_uploads([p for _, p in saved], answer, keep)
    return answer


def keep_uploads(paths: Sequence[Path], answer: dict, keep: Path) -> Path:
    """Copy a request's uploads and its answer (without previews) into a new folder under `keep`."""
    dest = Path(keep) / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
    dest.mkdir(parents=True)
    for p in paths:
        shutil.copyfile(p, dest / p.name)
    slim = {**answer, "images": [{k: v for k, v in im.items() if k != "preview"} for im in answer["images"]]}
    (dest / "result.json").write_text(json.dumps(slim, indent=1))
    return dest


def _detections_from_json(item: dict, name: str) -> Detections:
    try:
        parts = item.get("particles", [])
        boxes = np.array([p["box"] for p in parts], np.float64).reshape(-1, 4)
        cls = np.array([int(p["class_id"]) for p in parts], np.int64)
        conf = np.array([float(p.get("confidence", 1.0)) for p in parts], np.float64)
    except (KeyError, TypeError, ValueError):
        raise UploadError("results: each particle needs box [x1, y1, x2, y2], class_id and confidence", name) from None
    if len(cls) and (cls.min() < 0 or cls.max() >= len(CLASS_NAMES)):
        raise UploadError(f"results: class_id outside 0-{len(CLASS_NAMES) - 1}", name)
    if not np.isfinite(boxes).all():
        raise UploadError("results: a box is not finite", name)
    return Detections(boxes, cls, conf)


def export_zip(files, results_text: str, limits: Limits) -> bytes:
    """A zip of `report.write_predictions` for the uploads and the particles the page kept (its confidence
    and class filters applied): detections.csv, counts.csv, summary.json, sizes_<class>.png, annotated/,
    coco/ and labelme/, each image in nm at its own scale (statistics in nm pool the images that have one)."""
    from detector.report import write_predictions

    try:
        results = json.loads(results_text)
        by_name = {str(im["name"]): im for im in results["images"]}
    except (ValueError, KeyError, TypeError):
        raise UploadError("results must be JSON: {\"images\": [{\"name\": ..., \"particles\": [...]}]}") from None
    with tempfile.TemporaryDirectory(prefix="nanosynth-export-") as tmp:
        tmp = Path(tmp)
        (tmp / "in").mkdir()
        saved = save_uploads(files, tmp / "in", limits)
        images, sizes, dets, scales = [], [], [], []
        for _, p in saved:
            if p.name not in by_name:
                raise UploadError("no results given for this image", p.name)
            sizes.append(check_upload(p, limits))
            dets.append(_detections_from_json(by_name[p.name], p.name))
            s = by_name[p.name].get("nm_per_px")
            scales.append(float(s) if isinstance(s, (int, float)) and s > 0 else None)
            images.append(p)
        sources = [str(by_name[p.name].get("scale_source") or "option") if s else "none" for p, s in zip(images, scales)]
        out = tmp / "particles"
        try:  # each image's own scale: detections.csv carries nm_per_px and scale_source per row
            write_predictions(images, sizes, dets, out, nm_per_px=scales, scale_sources=sources, save=("coco", "labelme"))
        except InputError as e:
            raise UploadError(e.msg, Path(e.path).name if e.path else None) from None
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for f in sorted(out.rglob("*")):
                if f.is_file():
                    kind = zipfile.ZIP_STORED if f.suffix.lower() in (".png", ".jpg", ".jpeg") else zipfile.ZIP_DEFLATED
                    z.write(f, f"particles/{f.relative_to(out).as_posix()}", compress_type=kind)
    return buf.getvalue()


def create_app(predictor: Predictor, limits: Limits = Limits(), keep: Path | None = None):
    """The FastAPI application: the page (static files of detector/web) and the JSON API."""
    app = FastAPI(title="nanosynth detector", docs_url=None, redoc_url=None, openapi_url=None)  # no CDN-served docs

    @app.middleware("http")
    async def refuse_huge_bodies(request: Request, call_next):
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > limits.max_request_mb * 1024 * 1024:
            return JSONResponse({"error": f"upload too large: over this server's {limits.max_request_mb:g} MB per request"}, 413)
        return await call_next(request)

    @app.exception_handler(UploadError)
    async def upload_error(request: Request, e: UploadError):
        return JSONResponse({"error": str(e)}, e.status)

    @app.exception_handler(InputError)
    async def input_error(request: Request, e: InputError):
        return JSONResponse({"error": str(e)}, 422)

    @app.exception_handler(RequestValidationError)
    async def bad_form(request: Request, e: RequestValidationError):
        first = e.errors()[0] if e.errors() else {}
        field = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        return JSONResponse({"error": f"{field}: {first.get('msg', 'invalid request')}".strip(": ")}, 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException):
        return JSONResponse({"error": str(e.detail)}, e.status_code)

    # async: answered on the event loop, never queued behind predict requests in the thread pool
    @app.get("/api/health")
    async def health():
        return {
            "status": "ok", "model": predictor.weights.name, "device": predictor.device, "classes": list(CLASS_NAMES),
            "limits": asdict(limits), "keep": keep is not None,
        }  # fmt: skip

    # uploads are worked on in at most WORK_THREADS threads of their own: more requests wait without
    # holding a thread, so the page, its static files and /api/health always find one in the shared pool
    workers = anyio.CapacityLimiter(WORK_THREADS)

    @app.post("/api/predict")
    async def predict(
        files: Annotated[list[UploadFile], File()],
        conf: Annotated[float, Form()] = 0.25,
        nm_per_px: Annotated[Optional[float], Form()] = None,
        preview: Annotated[bool, Form()] = False,
    ):
        work = partial(predict_uploads, predictor, files, limits, conf, nm_per_px, preview, keep)
        return await anyio.to_thread.run_sync(work, limiter=workers)

    @app.post("/api/export")
    async def export(files: Annotated[list[UploadFile], File()], results: Annotated[str, Form()]):
        data = await anyio.to_thread.run_sync(partial(export_zip, files, results, limits), limiter=workers)
        return Response(data, media_type="application/zip", headers={"Content-Disposition": 'attachment; filename="particles.zip"'})

    @app.get("/")
    async def index():
        return FileResponse(WEB_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
    return app


def is_loopback(host: str) -> bool:
    return host in LOOPBACK or host.startswith("127.")


def check_port(host: str, port: int) -> None:
    """InputError when `host:port` cannot be listened on (in use, or not an address of this machine)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise InputError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None


def run(app, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve until Ctrl-C (uvicorn, one process: the model is loaded once)."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
