"""Training speed on CPU: `detector train` settings vs stock ultralytics defaults, same data, same run.

    python bench/train_speed.py                      # both archs, 48 synthetic 416x416 images, 2 epochs
    python bench/train_speed.py --arch yolov4-tiny --images 32 --epochs 1

"ours"  = detector.train.train: torch on every usable core, cache="ram", default_workers().
"stock" = YOLO(cfg).train(...) with ultralytics' defaults: 1 torch thread on a 2-core box
          (NUM_THREADS = cpu_count - 1), no image cache, workers forced to 0 on CPU.
Both use the same model YAML, SGD lr0=0.001, imgsz, batch, epochs, seed, val=False, plots=False.
Each configuration runs in its own process (ours patches ultralytics process-wide). Images/s is
timed over training batches only (from the end of the first batch to the end of the last one, so
start-up, caching and validation are excluded). The machine's load average is printed with the
result because other processes on a shared box slow both sides.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ARCHS = ("yolov3-tiny", "yolov4-tiny")


def make_dataset(root: Path, n: int, size: int = 416, seed: int = 0) -> Path:
    """n synthetic SEM-like images (bright squares and discs on a noisy dark field) with YOLO labels."""
    import cv2

    rng = np.random.default_rng(seed)
    for split, count in (("train", n), ("val", max(2, n // 8))):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            img = rng.normal(30, 8, (size, size)).clip(0, 255).astype(np.uint8)
            lines = []
            for _ in range(int(rng.integers(8, 20))):
                cls = int(rng.integers(0, 2))
                r = int(rng.integers(8, 24))
                cx, cy = (int(v) for v in rng.integers(r, size - r, 2))
                if cls == 0:
                    img[cy - r : cy + r, cx - r : cx + r] = 190
                else:
                    cv2.circle(img, (cx, cy), r, 210, -1)
                lines.append(f"{cls} {cx / size:.6f} {cy / size:.6f} {2 * r / size:.6f} {2 * r / size:.6f}")
            cv2.imwrite(str(root / "images" / split / f"s{i:03d}.png"), img)
            (root / "labels" / split / f"s{i:03d}.txt").write_text("\n".join(lines) + "\n")
    data = root / "data.yaml"
    data.write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames: {{0: cube, 1: sphere}}\n")
    return data


class BatchTimer:
    """ultralytics callback: timestamps at the end of every training batch."""

    def __init__(self) -> None:
        self.ends: list[float] = []
        self.batch = 0
        self.threads = 0
        self.workers = -1

    def __call__(self, trainer) -> None:
        import torch

        self.ends.append(time.perf_counter())
        self.batch = trainer.batch_size
        self.threads = torch.get_num_threads()
        self.workers = trainer.train_loader.num_workers

    def result(self) -> dict:
        span = self.ends[-1] - self.ends[0]
        images = (len(self.ends) - 1) * self.batch
        return {"images_per_s": images / span, "timed_batches": len(self.ends) - 1, "seconds": span,
                "torch_threads": self.threads, "workers": self.workers}


def worker(mode: str, arch: str, data: str, out: str, epochs: int, batch: int, imgsz: int) -> dict:
    from detector import yolo_env
    from detector.models import model_cfg

    timer = BatchTimer()
    common = {"epochs": epochs, "batch": batch, "imgsz": imgsz, "plots": False, "val": False, "seed": 0}
    if mode == "ours":
        from detector.train import train

        train(arch, data, out, device="cpu", checkpoint_every=epochs, callbacks={"on_train_batch_end": timer},
              **common)
    else:  # stock ultralytics; only made offline (environment + local fonts), which does not change speed
        yolo_env._set_offline_env()
        import ultralytics
        from ultralytics.utils import USER_CONFIG_DIR

        yolo_env._install_fonts(Path(USER_CONFIG_DIR))
        model = ultralytics.YOLO(str(model_cfg(arch)))
        model.add_callback("on_train_batch_end", timer)
        model.train(data=data, device="cpu", lr0=0.001, optimizer="SGD", project=str(Path(out).parent),
                    name=Path(out).name, exist_ok=True, pretrained=False, **common)
    return timer.result()


def run_child(mode: str, arch: str, data: Path, work: Path, args, rep: int = 0) -> dict:
    cmd = [sys.executable, __file__, "--_worker", mode, "--arch", arch, "--_data", str(data),
           "--_out", str(work / f"{mode}-{arch}-{rep}"), "--epochs", str(args.epochs), "--batch", str(args.batch),
           "--imgsz", str(args.imgsz)]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}  # each side chooses
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"{mode} {arch} failed")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", choices=ARCHS, action="append", help="architecture (repeatable; default both)")
    ap.add_argument("--images", type=int, default=48, help="synthetic training images")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--imgsz", type=int, default=416)
    ap.add_argument("--repeat", type=int, default=1, help="stock/ours pairs per arch (median ratio reported)")
    ap.add_argument("--_worker", help=argparse.SUPPRESS)
    ap.add_argument("--_data", help=argparse.SUPPRESS)
    ap.add_argument("--_out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._worker:
        res = worker(args._worker, args.arch[0], args._data, args._out, args.epochs, args.batch, args.imgsz)
        print(json.dumps(res))
        return

    archs = args.arch or list(ARCHS)
    print(f"cpu cores: {os.cpu_count()}, load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="train_speed_") as tmp:
        work = Path(tmp)
        data = make_dataset(work / "data", args.images, size=args.imgsz)
        rows = []
        for arch, rep in [(a, r) for r in range(args.repeat) for a in archs]:  # alternate: load drifts
            stock = run_child("stock", arch, data, work, args, rep)
            ours = run_child("ours", arch, data, work, args, rep)
            ratio = ours["images_per_s"] / stock["images_per_s"]
            rows.append((arch, stock, ours, ratio))
            print(f"[{rep + 1}/{args.repeat}] load {os.getloadavg()[0]:.2f} ", end="")
            print(f"{arch}: stock {stock['images_per_s']:.2f} img/s (threads {stock['torch_threads']}, "
                  f"workers {stock['workers']}, {stock['timed_batches']} batches) | ours {ours['images_per_s']:.2f} "
                  f"img/s (threads {ours['torch_threads']}, workers {ours['workers']}, cache ram) | "
                  f"ratio {ratio:.2f}x", flush=True)
    if args.repeat > 1:
        for arch in archs:
            ratios = sorted(r for a, _, _, r in rows if a == arch)
            print(f"{arch}: median ratio {float(np.median(ratios)):.2f}x over {len(ratios)} pairs {[round(r, 2) for r in ratios]}")
    print(f"load average after: {os.getloadavg()}")
    print("reproduce: python bench/train_speed.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
