"""`detector serve` latency: first result for one 1024x768 micrograph, and a 50-micrograph upload with
the server and page kept responsive, against the bare model on the same image in the same run.

1. baseline: `predict_images` in this process on the single micrograph (the detection itself);
2. `detector serve` is started as a user would (its own process, model loaded once at start-up);
3. single upload: POST /api/predict with that micrograph as the page sends it (conf 0.05, preview),
   timed to the parsed answer, `--repeat` times; the first upload after start-up is reported apart;
4. batch: `--batch` micrographs, one request each with two in flight (what the page does), while
   GET /api/health is timed every 0.25 s;
5. in a real browser (headless Chromium + playwright, when both are installed): upload to first drawn
   overlay, then the batch dropped on the page, with the page's progress bar read and its main thread
   probed (a round trip of page.evaluate every 0.5 s; Chromium's long-task observer) throughout.

Micrographs: val-II of ../shared resized to 1024x768 (cycled, mirrored for distinct files), or a
synthetic set from the bundled patterns when ../shared is absent. Target: first result <= 2 s on the
2-core CPU; the batch finishes with /api/health and the page answering throughout.

Run:  python bench/serve_latency.py [--images DIR] [--repeat 5] [--batch 50] [--no-browser] [--md bench/results/serve_latency.md]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]
VAL_II = REPO.parent / "shared" / "data" / "real-sem" / "val-II" / "images"
SIZE = (1024, 768)
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def micrographs(folder: Path, n: int, source: Path = VAL_II) -> tuple[list[Path], str]:
    """`n` distinct 1024x768 PNGs in `folder` made from the PNGs of `source`, and where they came from."""
    sources = sorted(source.glob("*.png"))
    origin = f"{source} resized to {SIZE[0]}x{SIZE[1]}"
    if not sources:
        gen = folder / "synthetic"
        subprocess.run([str(Path(sys.executable).parent / "synthgen"), "generate", *map(str, sorted(REPO.glob("patterns/*/pattern.txt"))),
                        "--out", str(gen), "--count", "12", "--seed", "7"], check=True, capture_output=True)  # fmt: skip
        sources = sorted((gen / "images").glob("*.png"))
        origin = f"synthetic (bundled patterns, seed 7) resized to {SIZE[0]}x{SIZE[1]}"
    out = []
    for i in range(n):
        img = cv2.resize(cv2.imread(str(sources[i % len(sources)]), cv2.IMREAD_COLOR), SIZE, interpolation=cv2.INTER_CUBIC)
        flip = (i // len(sources)) % 4  # 0: as is, 1-3: mirrored, so every file of the batch differs
        if flip:
            img = cv2.flip(img, {1: 1, 2: 0, 3: -1}[flip])
        path = folder / f"m{i:03d}-{sources[i % len(sources)].stem}.png"
        cv2.imwrite(str(path), img)
        out.append(path)
    return out, origin


def baseline(image: Path, repeat: int) -> list[float]:
    """Seconds of the bare model (load once, warm up, then predict the image `repeat` times)."""
    from detector.predict import predict_images
    from detector.weights import shipped_weights
    from detector.yolo_env import load_model

    model = load_model(shipped_weights())
    list(predict_images(model, [image], device="cpu"))
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        list(predict_images(model, [image], device="cpu"))
        times.append(time.perf_counter() - t0)
    return times


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int) -> tuple[subprocess.Popen, float]:
    """`detector serve` in its own process; (process, seconds until /api/health answers)."""
    import httpx

    t0 = time.perf_counter()
    proc = subprocess.Popen([str(Path(sys.executable).parent / "detector"), "serve", "--port", str(port), "--device", "cpu"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ)  # fmt: skip
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"detector serve exited: {proc.stderr.read().decode(errors='replace')}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                return proc, time.perf_counter() - t0
        except httpx.TransportError:
            pass
        time.sleep(0.1)


def post(client, url: str, path: Path) -> float:
    """Seconds from sending one micrograph as the page does to its parsed answer."""
    t0 = time.perf_counter()
    r = client.post(f"{url}/api/predict", files={"files": (path.name, path.read_bytes(), "image/png")},
                    data={"conf": "0.05", "preview": "true"}, timeout=600)  # fmt: skip
    r.raise_for_status()
    assert r.json()["images"][0]["particles"] is not None
    return time.perf_counter() - t0


def api_batch(url: str, images: list[Path]) -> dict:
    """The batch as the page sends it (one file a request, two in flight) while /api/health is timed."""
    import httpx

    health, stop = [], threading.Event()

    def probe():
        with httpx.Client() as c:
            while not stop.is_set():
                t0 = time.perf_counter()
                c.get(f"{url}/api/health", timeout=60).raise_for_status()
                health.append(time.perf_counter() - t0)
                stop.wait(0.25)

    prober = threading.Thread(target=probe)
    prober.start()
    t0 = time.perf_counter()
    done = []
    with httpx.Client() as c, ThreadPoolExecutor(2) as pool:
        for _ in pool.map(lambda p: post(c, url, p), images):
            done.append(time.perf_counter() - t0)
    stop.set()
    prober.join()
    return {"total": done[-1], "first": done[0], "health": health}


def browser_run(url: str, single: Path, images: list[Path]) -> dict | None:
    """Upload in headless Chromium: seconds to the first drawn overlay, then the batch with the page probed."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("browser part skipped: playwright is not installed")
        return None
    if not Path(CHROMIUM).is_file():
        print("browser part skipped: no chromium (apt-get install chromium)")
        return None
    long_tasks = """window.__long = []; new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__long.push(e.duration); })
                    .observe({ entryTypes: ["longtask"] });"""  # fmt: skip
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.add_init_script(long_tasks)
        page.goto(url)
        page.wait_for_selector("body[data-ready='1']")
        t0 = time.perf_counter()
        page.set_input_files("#files", [str(single)])
        page.wait_for_selector(".card canvas[data-drawn]", timeout=120000)
        page.wait_for_selector("#histograms canvas", timeout=120000)
        first = time.perf_counter() - t0
        page.click("#clear")
        page.evaluate("window.__long = []")
        t0 = time.perf_counter()
        page.set_input_files("#files", [str(p) for p in images])
        probes, progress = [], []
        while True:
            t1 = time.perf_counter()
            value = page.evaluate("[document.querySelector('#progress').value, document.querySelector('#status').textContent]")
            probes.append(time.perf_counter() - t1)
            progress.append((time.perf_counter() - t0, value[0], value[1]))
            if value[0] >= len(images):
                break
            if time.perf_counter() - t0 > 1800:
                raise SystemExit("browser batch did not finish in 30 min")
            time.sleep(0.5)
        page.wait_for_function(f"document.querySelectorAll('.card canvas[data-drawn]').length === {len(images)}")
        total = time.perf_counter() - t0
        long = page.evaluate("window.__long")
        drawn = page.evaluate("document.querySelectorAll('.card canvas[data-drawn]').length")
        browser.close()
    values = [v for _, v, _ in progress]
    return {"first": first, "total": total, "probes": probes, "long": long, "drawn": drawn,
            "monotonic": all(a <= b for a, b in zip(values, values[1:])), "steps": len(set(values)), "status": progress[-1][2]}  # fmt: skip


def ms(s: float) -> str:
    return f"{1000 * s:.0f} ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5, help="single uploads timed (after the first)")
    ap.add_argument("--batch", type=int, default=50, help="micrographs in the batch upload")
    ap.add_argument("--images", type=Path, default=VAL_II, help="folder of PNG micrographs (default: ../shared val-II)")
    ap.add_argument("--no-browser", action="store_true", help="API figures only")
    ap.add_argument("--md", type=Path, default=None, help="also write the figures as markdown here")
    args = ap.parse_args()
    import httpx

    command = f"python bench/serve_latency.py {' '.join(sys.argv[1:])}".rstrip()
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        images, origin = micrographs(Path(tmp), max(args.batch, 1), args.images)
        single = images[0]
        base = baseline(single, args.repeat)
        port = free_port()
        proc, startup = start_server(port)
        url = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client() as c:
                first = post(c, url, single)
                again = [post(c, url, single) for _ in range(args.repeat)]
            batch = api_batch(url, images[: args.batch])
            page = None if args.no_browser else browser_run(url, single, images[: args.batch])
        finally:
            proc.terminate()
            proc.wait(30)
    b, a = statistics.median(base), statistics.median(again)
    h = sorted(batch["health"])
    load = os.getloadavg()
    lines = [
        f"command: `{command}`",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} CPU cores, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min);",
        f"micrographs: {origin}; the shipped model on CPU, `--tile auto`.",
        "",
        "| figure | value | target |",
        "|---|---|---|",
        f"| `detector serve` start-up to first /api/health answer (model load + warm-up) | {startup:.1f} s | |",
        f"| bare model on the 1024×768 micrograph (in-process `predict_images`, median of {args.repeat}) | {ms(b)} | |",
        f"| first upload after start-up → answer (API, as the page sends it) | {ms(first)} ({first / b:.2f}× bare) | ≤ 2 s: **{'met' if first <= 2 else 'not met'}** |",
        f"| later single uploads → answer (median of {args.repeat}) | {ms(a)} ({a / b:.2f}× bare) | ≤ 2 s: **{'met' if a <= 2 else 'not met'}** |",
        f"| batch of {args.batch} (API, one file a request, 2 in flight): all answered | {batch['total']:.1f} s ({batch['total'] / args.batch:.2f} s/image, {batch['total'] / args.batch / b:.2f}× bare) | |",
        f"| /api/health during the batch: median / 95th pct / max ({len(h)} probes) | {ms(statistics.median(h))} / {ms(h[int(0.95 * (len(h) - 1))])} / {ms(h[-1])} | responsive |",
    ]  # fmt: skip
    if page:
        pr, lt = sorted(page["probes"]), page["long"]  # long tasks: durations in ms, as Chromium gives them
        lines += [
            f"| page (Chromium): upload → overlay and histogram drawn | {ms(page['first'])} | ≤ 2 s: **{'met' if page['first'] <= 2 else 'not met'}** |",
            f"| page: batch of {args.batch} dropped → all {page['drawn']} drawn | {page['total']:.1f} s | |",
            f"| page main thread during the batch: probe round trip median / max ({len(pr)} probes) | {ms(statistics.median(pr))} / {ms(pr[-1])} | responsive |",
            f"| page long tasks (> 50 ms) during the batch: count / longest / total | {len(lt)} / {ms(max(lt, default=0) / 1000)} / {ms(sum(lt) / 1000)} | |",
            f"| page progress bar: rose monotonically / distinct values seen / last status | {page['monotonic']} / {page['steps']} / \"{page['status']}\" | |",
        ]  # fmt: skip
    text = "\n".join(lines)
    print(text)
    if args.md:
        args.md.parent.mkdir(parents=True, exist_ok=True)
        args.md.write_text(f"# `detector serve` latency: bench/serve_latency.py\n\n{text}\n")
        print(f"\nwritten to {args.md}")


if __name__ == "__main__":
    main()
