"""The README's screenshots of `detector serve`: a real micrograph's result on the page, in headless Chromium.

Starts the page with the shipped model (CPU) on a free local port, uploads one micrograph (default: a
semi-synthetic one generated from bundled pattern p04 with SEM realism, seed 7: the real micrographs of
../shared may not be copied into the repository, and a screenshot would copy one), waits for the overlay and histograms, and writes JPEGs:
  OUT/serve-page.jpg   the top of the page: controls, pooled statistics and histograms, the image's overlay
  OUT/serve-table.jpg  the sortable particle table, sorted by diameter (largest first)

Run:  python docs/screenshots.py [--image PATH] [--out docs/images]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SYNTHETIC = ["patterns/p04/pattern.txt", "--count", "1", "--seed", "7", "--realism", "sem", "--max-particles", "80"]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]  # fmt: skip
QUALITY = 80  # JPEG quality: each screenshot stays well under 300 KB


def serve(port: int):
    """The page with the shipped model in a background thread; returns the uvicorn server."""
    import uvicorn

    from detector.serve import Predictor, create_app
    from detector.weights import shipped_weights

    srv = uvicorn.Server(uvicorn.Config(create_app(Predictor(shipped_weights(), device="cpu")), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=srv.run, daemon=True).start()
    while not srv.started:
        time.sleep(0.05)
    return srv


def generated_micrograph(folder: Path) -> Path:
    """One semi-synthetic micrograph made by `synthgen generate` from a bundled pattern."""
    synthgen = Path(sys.executable).with_name("synthgen")
    subprocess.run([str(synthgen), "generate", *SYNTHETIC, "--out", str(folder / "set")], cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    return next(p for p in sorted((folder / "set").rglob("*")) if p.suffix.lower() in (".png", ".jpg", ".tif"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--image", type=Path, default=None, help="micrograph to show (default: a generated one, see above)")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    args = ap.parse_args()
    image = args.image or generated_micrograph(Path(tempfile.mkdtemp()))
    if not image.is_file():
        raise SystemExit(f"no micrograph at {image}")
    if not Path(CHROMIUM).is_file():
        raise SystemExit("no chromium browser: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = serve(port)
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("body[data-ready='1']")
            page.set_input_files("#files", [str(image)])
            page.wait_for_selector(".card canvas[data-drawn]", timeout=120000)
            page.wait_for_selector("#histograms canvas", timeout=120000)
            page.wait_for_timeout(300)  # one more frame: the card and summary are drawn on requestAnimationFrame
            page.screenshot(path=str(args.out / "serve-page.jpg"), type="jpeg", quality=QUALITY)
            for _ in range(2):  # diameter, largest first
                page.click("#particles th[data-key='diameter_px']")
            page.locator("#table-section").screenshot(path=str(args.out / "serve-table.jpg"), type="jpeg", quality=QUALITY)
            browser.close()
    finally:
        srv.should_exit = True
    for name in ("serve-page.jpg", "serve-table.jpg"):
        f = args.out / name
        print(f"{f}  {f.stat().st_size / 1024:.0f} KB")
    print(f"micrograph: {image}")


if __name__ == "__main__":
    main()
