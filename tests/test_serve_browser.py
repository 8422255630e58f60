"""`detector serve` in a real headless Chromium (Debian's package) driven by playwright: upload, overlay, counts, histogram."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path

import cv2
import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]  # fmt: skip


@pytest.fixture(scope="module")
def server():
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not Path(CHROMIUM).is_file():
        pytest.skip("no chromium browser (apt-get install chromium): browser test skipped")
    import uvicorn

    from detector.serve import Predictor, create_app
    from detector.weights import SHIPPED

    if not SHIPPED.is_file():
        pytest.skip(f"this checkout ships no default model ({SHIPPED})")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(Predictor(SHIPPED, device="cpu")), host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    while not srv.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    t.join(10)


def test_upload_shows_overlay_counts_and_histogram(server, tmp_path):
    from playwright.sync_api import sync_playwright

    from test_serve import micrograph

    good, bad = tmp_path / "grid.png", tmp_path / "broken.png"
    cv2.imwrite(str(good), micrograph())
    bad.write_bytes(b"not an image at all")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        page.goto(server)
        page.wait_for_selector("body[data-ready='1']")
        page.set_input_files("#files", [str(good), str(bad)])
        page.wait_for_selector(".card canvas[data-drawn]", timeout=60000)
        page.wait_for_selector(".card .error", timeout=60000)
        drawn = int(page.get_attribute(".card canvas", "data-drawn"))
        assert drawn >= 20
        assert f"total {drawn}" in page.inner_text(".card .counts")
        page.wait_for_function(f"[...document.querySelectorAll('#pooled td.count')].reduce((a, c) => a + +c.textContent, 0) === {drawn}")
        assert int(page.get_attribute("#hist-cube", "data-n")) + int(page.get_attribute("#hist-sphere", "data-n")) == drawn
        assert "broken.png: cannot read image" in page.inner_text("#messages")
        # the slider filters: at confidence 1 nothing is drawn
        page.eval_on_selector("#conf", "e => { e.value = '1'; e.dispatchEvent(new Event('input')); }")
        page.wait_for_function("document.querySelector('.card canvas').dataset.drawn === '0'")
        browser.close()


def test_a_batch_shows_progress_and_pools_every_image(server, tmp_path):
    from playwright.sync_api import sync_playwright

    from test_serve import micrograph

    files = []
    for i in range(8):
        files.append(tmp_path / f"m{i}.png")
        cv2.imwrite(str(files[-1]), micrograph(seed=i))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        page.goto(server)
        page.wait_for_selector("body[data-ready='1']")
        page.set_input_files("#files", [str(f) for f in files])
        page.wait_for_selector("#progress-row:not([hidden])")
        assert page.locator(".card").count() == 8  # a card per file at once, results fill them as they come
        page.wait_for_function("document.querySelector('#progress').value === 8", timeout=120000)
        assert page.inner_text("#status").startswith("8 / 8 done")
        page.wait_for_function("document.querySelectorAll('.card canvas[data-drawn]').length === 8")
        totals = [int(t) for t in page.eval_on_selector_all(".card .counts", "es => es.map((e) => e.dataset.total)")]
        total = sum(totals)
        assert total > 200 and min(totals) > 0
        page.wait_for_function(f"[...document.querySelectorAll('#pooled td.count')].reduce((a, c) => a + +c.textContent, 0) === {total}")
        # the table shows one page of 200 rows; the pager reaches the rest
        assert page.locator("#particles tbody tr").count() == 200
        assert page.inner_text("#table-note") == f"rows 1–200 of {total} (the zip has all)"
        page.click("#table-next")
        assert page.locator("#particles tbody tr").count() == total - 200
        # sorting by diameter, largest first, starts again on the first page
        page.click("#particles th[data-key='diameter_px']")
        page.click("#particles th[data-key='diameter_px']")
        column = [float(v) for v in page.eval_on_selector_all("#particles tbody tr td:nth-child(7)", "es => es.map((e) => e.textContent)")]
        assert len(column) == 200 and column == sorted(column, reverse=True)
        browser.close()
