"""CPU inference speed of one model in PyTorch, ONNX Runtime and OpenVINO, side by side in one run.

The model (default: the shipped one) is exported to ONNX and OpenVINO in a temporary folder with
`detector export`'s code, then every runtime predicts the same micrographs through `detector predict`'s
path (`predict_images`, whole image, `--tile off`) at 416 and 512 px, and the 2048 px frames of val-STEM
with fixed 512 px tiles (`--tile 512`: 25 tiles a frame); and the micrographs again with predict's
default `--tile auto` (small zoomed probe crops, then the plan it picks). Runtimes take turns, round after round, so a
busy machine slows them alike; the figure is the median over rounds of images/s (wall clock), and the
ratio against PyTorch in the same round set.

Same detections: each runtime's boxes are matched to PyTorch's (same class, IoU >= 0.5, greedy by
confidence, as `detector evaluate` matches); the table gives the boxes matched, how many of them have
every corner within 1 px of PyTorch's (and the worst corner difference), and the boxes either side has alone (confidences near the 0.25 cut).

A forward-pass-only line (one 1x3x512x512 tensor, no pre/post-processing) shows where the difference
comes from: OpenVINO on a CPU with bf16 units (AMX / AVX512-BF16) runs in bf16 unless told f32.

Run:  python bench/infer_speed.py [--rounds 3] [--images 8] [--frames 2] [--weights W.pt] [--shared DIR]
Needs ../shared (real micrographs); prints a message and exits 0 without it.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
RUNTIMES = ("torch", "onnx", "openvino")


def agreement(ref: list, other: list) -> tuple[int, int, int, int, int, float]:
    """(reference boxes, matched, matched within 1 px, alone in reference, alone in other, largest corner
    difference of a matched box in px)."""
    from detector.metrics import match_image

    n_ref = matched = close = only_other = 0
    worst = 0.0
    for a, b in zip(ref, other):
        m = match_image(a, b)
        hit = m.pred_gt >= 0
        n_ref, matched, only_other = n_ref + len(a), matched + int(hit.sum()), only_other + int((~hit).sum())
        if hit.any():
            diff = np.abs(b.xyxy[hit] - a.xyxy[m.pred_gt[hit]]).max(axis=1)
            close, worst = close + int((diff <= 1.0).sum()), max(worst, float(diff.max()))
    return n_ref, matched, close, n_ref - matched, only_other, worst


def timed(models: dict, images: list, rounds: int, **kw) -> tuple[dict, dict]:
    """Median images/s per runtime over `rounds` interleaved rounds, and each runtime's detections."""
    from detector.predict import predict_images

    speeds = {k: [] for k in models}
    dets = {}
    for name, model in models.items():  # warm-up: graph compilation, first-call allocations
        list(predict_images(model, images[:1], **kw))
    for _ in range(rounds):
        for name, model in models.items():
            t0 = time.perf_counter()
            dets[name] = list(predict_images(model, images, **kw))
            speeds[name].append(len(images) / (time.perf_counter() - t0))
    return {k: statistics.median(v) for k, v in speeds.items()}, dets


def forward_only(paths: dict, repeats: int) -> dict[str, float]:
    """ms per bare forward pass of a 1x3x512x512 tensor, per runtime configuration."""
    import onnxruntime as ort
    import openvino as ov
    import torch

    from detector.yolo_env import load_model

    x = np.random.default_rng(0).random((1, 3, 512, 512), np.float32)
    net = load_model(paths["torch"]).model.fuse().eval()
    core = ov.Core()
    ir = core.read_model(str(next(Path(paths["openvino"]).glob("*.xml"))))
    ov_bf = core.compile_model(ir, "CPU", {"PERFORMANCE_HINT": "LATENCY"})
    ov_32 = core.compile_model(ir, "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"})
    sess = ort.InferenceSession(str(paths["onnx"]), providers=["CPUExecutionProvider"])
    tx = torch.from_numpy(x)
    runs = {
        "PyTorch fp32": lambda: net(tx),
        "ONNX Runtime fp32": lambda: sess.run(None, {sess.get_inputs()[0].name: x}),
        f"OpenVINO default ({_type_name(ov_bf.get_property('INFERENCE_PRECISION_HINT'))})": lambda: ov_bf(x),
        "OpenVINO f32": lambda: ov_32(x),
    }
    times = {k: [] for k in runs}
    with torch.inference_mode():
        for fn in runs.values():
            fn()
        for _ in range(repeats):
            for k, fn in runs.items():
                t0 = time.perf_counter()
                fn()
                times[k].append(1000 * (time.perf_counter() - t0))
    return {k: statistics.median(v) for k, v in times.items()}


def _type_name(t) -> str:
    return t.get_type_name() if hasattr(t, "get_type_name") else str(t)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, default=None, help="a .pt model (default: the shipped one)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (default 3)")
    ap.add_argument("--images", type=int, default=8, help="micrographs of val-I/II/III for the whole-image test (default 8)")
    ap.add_argument("--frames", type=int, default=2, help="2048 px val-STEM frames for the tiled test (default 2)")
    ap.add_argument("--shared", type=Path, default=SHARED, help="the shared data folder (default ../shared)")
    args = ap.parse_args(argv)
    real = args.shared / "data" / "real-sem"
    if not real.is_dir():
        print(f"skipped: no real micrographs at {real} (the benchmark reads ../shared)")
        return 0

    from detector.export import export
    from detector.predict import checked_size, collect_images
    from detector.weights import shipped_weights
    from detector.yolo_env import cpu_threads, load_model

    weights = args.weights or shipped_weights()
    pool = collect_images([real / s for s in ("val-I", "val-II", "val-III")])
    step = max(1, len(pool) // args.images)
    images = pool[::step][: args.images]  # spread over the three sets
    frames = [p for p in collect_images([real / "val-STEM"]) if max(checked_size(p)) >= 2048][: args.frames]
    threads = cpu_threads()
    tmp = Path(tempfile.mkdtemp(prefix="infer-speed-"))
    try:
        paths = {"torch": weights, "onnx": export(weights, "onnx", tmp / "m.onnx"),
                 "openvino": export(weights, "openvino", tmp / "m_openvino_model")}  # fmt: skip
        models = {k: load_model(p) for k, p in paths.items()}
        rows = []
        for imgsz in (416, 512):
            speed, dets = timed(models, images, args.rounds, imgsz=imgsz, tile="off")
            rows.append((f"{len(images)} micrographs ~512x650, whole image at {imgsz} px", speed, dets))
        speed, dets = timed(models, images, args.rounds, tile="auto")
        rows.append((f"{len(images)} micrographs, `detector predict`'s default (--tile auto: zoom probes, then a plan)", speed, dets))
        if frames:
            speed, dets = timed(models, frames, args.rounds, imgsz=512, tile=512)
            rows.append((f"{len(frames)} val-STEM 2048x2048 frame(s), --tile 512 (25 tiles each)", speed, dets))
        fwd = forward_only(paths, 5 * args.rounds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"command: python bench/infer_speed.py {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip())
    print(f"model {weights.name}; CPU: {cpu_line()}; {threads} threads; median of {args.rounds} interleaved rounds\n")
    print("| test | PyTorch images/s | ONNX Runtime images/s | OpenVINO images/s | ONNX Runtime vs PyTorch boxes | OpenVINO vs PyTorch boxes |")
    print("|---|---:|---:|---:|---|---|")
    for what, speed, dets in rows:
        cells = [f"{speed['torch']:.2f}"] + [f"{speed[k]:.2f} (**{speed[k] / speed['torch']:.2f}x**)" for k in ("onnx", "openvino")]
        for k in ("onnx", "openvino"):
            n, hit, close, only_ref, only_k, worst = agreement(dets["torch"], dets[k])
            cells.append(f"{hit}/{n} matched, {close} within 1 px (worst {worst:.2f} px); {only_ref} PyTorch-only, {only_k} {k}-only")
        print(f"| {what} | " + " | ".join(cells) + " |")
    print("\nforward pass only, 1x3x512x512, ms (median): " + ", ".join(f"{k} {v:.0f}" for k, v in fwd.items()))
    return 0


def cpu_line() -> str:
    """The CPU's model name and whether it has bf16 units (what OpenVINO's default precision depends on)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    name = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), "unknown")
    flags = [f for f in ("amx_bf16", "avx512_bf16") if f" {f}" in text]
    return f"{name} ({', '.join(flags) if flags else 'no bf16 units'})"


if __name__ == "__main__":
    sys.exit(main())
