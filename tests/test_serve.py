"""`detector serve`: the JSON API (good and bad uploads, limits, concurrency, export zip), with the shipped model."""

from __future__ import annotations

import csv
import io
import json
import tempfile
import threading
import time
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("fastapi")
with warnings.catch_warnings():  # starlette's note that it prefers httpx2 over httpx
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient  # noqa: E402

from detector.cli import app as cli_app  # noqa: E402
from detector.serve import WORK_THREADS, Limits, Predictor, create_app, safe_name  # noqa: E402
from detector.weights import SHIPPED  # noqa: E402
from synthgen.formats import read_label_file, read_labelled_folder  # noqa: E402
from conftest import grid_micrograph as micrograph




def png_bytes(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return buf.tobytes()


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    if not SHIPPED.is_file():
        pytest.skip(f"this checkout ships no default model ({SHIPPED})")
    return Predictor(SHIPPED, device="cpu")


LIMITS = Limits(max_file_mb=1.0, max_files=3, max_megapixels=1.0, max_request_mb=4.0)


@pytest.fixture(scope="module")
def client(predictor):
    with TestClient(create_app(predictor, LIMITS)) as c:  # one event loop for every request, as under uvicorn
        yield c


@pytest.fixture(scope="module")
def image() -> bytes:
    return png_bytes(micrograph())


def post(client, files, **data):
    return client.post("/api/predict", files=[("files", f) for f in files], data={k: str(v) for k, v in data.items()})


def test_health(client):
    h = client.get("/api/health").json()
    assert h["status"] == "ok" and h["classes"] == ["cube", "sphere"] and h["model"] == SHIPPED.name
    assert h["limits"]["max_files"] == 3 and h["keep"] is False


def test_page_and_its_static_files_are_served_locally(client):
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    for name in ("app.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200
    # no CDN: every script and style sheet the page loads comes from this server
    assert "http://" not in page.text and "https://" not in page.text


def test_predict_one_image(client, image):
    r = post(client, [("grid.png", image, "image/png")])
    assert r.status_code == 200, r.text
    (im,) = r.json()["images"]
    assert (im["name"], im["width"], im["height"]) == ("grid.png", 512, 384)
    assert im["nm_per_px"] is None and im["scale_source"] == "none"
    parts = im["particles"]
    assert 25 <= len(parts) <= 45  # a grid of 35 particles
    assert im["counts"] == {c: sum(p["class"] == c for p in parts) for c in ("cube", "sphere")}
    assert im["counts"]["cube"] > 5 and im["counts"]["sphere"] > 5
    for p in parts:
        assert set(p) >= {"class", "class_id", "confidence", "box", "polygon", "width_px", "height_px", "diameter_px"}
        x1, y1, x2, y2 = p["box"]
        assert 0 <= x1 < x2 <= 512 and 0 <= y1 < y2 <= 384 and p["confidence"] >= 0.25
        assert p["diameter_px"] == pytest.approx(np.sqrt((x2 - x1) * (y2 - y1)), abs=0.02)
        assert 20 < p["diameter_px"] < 45 and "diameter_nm" not in p
    assert "preview" not in im


def test_predict_scale_conf_and_preview(client, image):
    low = post(client, [("g.png", image, "image/png")], conf=0.05, nm_per_px=2.5, preview="true").json()["images"][0]
    high = post(client, [("g.png", image, "image/png")], conf=0.6).json()["images"][0]
    assert low["nm_per_px"] == 2.5 and low["scale_source"] == "option"
    assert all(p["diameter_nm"] == pytest.approx(2.5 * p["diameter_px"], rel=1e-3) for p in low["particles"])
    # the slider of the page filters what a low threshold returned: the same as asking the server
    kept = [p["box"] for p in low["particles"] if p["confidence"] >= 0.6]
    assert sorted(kept) == sorted(p["box"] for p in high["particles"])
    assert low["preview"].startswith("data:image/jpeg;base64,") and low["preview_scale"] == 1.0
    import base64

    jpeg = np.frombuffer(base64.b64decode(low["preview"].split(",", 1)[1]), np.uint8)
    assert cv2.imdecode(jpeg, cv2.IMREAD_COLOR).shape == (384, 512, 3)


def test_predict_several_files_in_one_request(client, image):
    other = png_bytes(micrograph(320, 240, seed=1))
    r = post(client, [("a.png", image, "image/png"), ("b.png", other, "image/png")])
    assert r.status_code == 200
    assert [(i["name"], i["width"]) for i in r.json()["images"]] == [("a.png", 512), ("b.png", 320)]


def _truncated(image: bytes) -> bytes:
    return image[: len(image) // 2]


BIG_PIXELS = png_bytes(np.zeros((1100, 1000), np.uint8))  # 1.1 megapixels in a few kB


@pytest.mark.parametrize(
    ("files", "data", "status", "message"),
    [
        ([("notes.txt", b"just some text", "text/plain")], {}, 422, "notes.txt: cannot read image"),
        ([("half.png", "TRUNCATED", "image/png")], {}, 422, "half.png: cannot read image"),
        ([("empty.png", b"", "image/png")], {}, 422, "empty.png: empty file"),
        ([("huge.png", b"\x89PNG" + b"0" * (1 << 20), "image/png")], {}, 413, "huge.png: file too large"),
        ([("wide.png", BIG_PIXELS, "image/png")], {}, 413, "wide.png: image too large: 1000x1100"),
        ([(f"{i}.png", "GOOD", "image/png") for i in range(4)], {}, 413, "4 files in one request"),
        ([("a.png", "GOOD", "image/png"), ("a.png", "GOOD", "image/png")], {}, 422, "two uploads named 'a.png'"),
        ([("a.png", "GOOD", "image/png")], {"conf": "2"}, 422, "conf must lie in 0-1"),
        ([("a.png", "GOOD", "image/png")], {"conf": "many"}, 422, "conf: Input should be a valid number"),
        ([("a.png", "GOOD", "image/png")], {"nm_per_px": "-1"}, 422, "nm_per_px must be positive"),
        ([], {"conf": "0.3"}, 422, "files: Field required"),
    ],
)
def test_bad_uploads_get_a_4xx_json_error(client, image, files, data, status, message):
    files = [(n, image if c == "GOOD" else _truncated(image) if c == "TRUNCATED" else c, t) for n, c, t in files]
    r = post(client, files, **data)
    assert r.status_code == status, r.text
    assert message in r.json()["error"] and "Traceback" not in r.text


def test_a_bad_file_among_good_ones_names_it(client, image):
    r = post(client, [("ok.png", image, "image/png"), ("bad.jpg", b"\xff\xd8\xff garbage", "image/jpeg")])
    assert r.status_code == 422 and r.json()["error"].startswith("bad.jpg: ")


def test_request_over_the_size_limit_is_refused_before_parsing(client):
    r = client.post("/api/predict", content=b"0" * (5 << 20), headers={"content-type": "multipart/form-data; boundary=x"})
    assert r.status_code == 413 and "upload too large" in r.json()["error"]


def test_nothing_uploaded_is_kept(client, image, tmp_path, monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    assert post(client, [("a.png", image, "image/png")]).status_code == 200
    assert post(client, [("b.png", _truncated(image), "image/png")]).status_code == 422
    assert post(client, [("c.png", b"\x89PNG" + b"0" * (1 << 20), "image/png")]).status_code == 413
    assert list(scratch.iterdir()) == []


def test_keep_folder_holds_each_request(predictor, image, tmp_path):
    keep = tmp_path / "keep"
    with TestClient(create_app(predictor, LIMITS, keep=keep)) as c:
        assert c.get("/api/health").json()["keep"] is True
        answer = post(c, [("a.png", image, "image/png")], preview="true").json()
    (folder,) = keep.iterdir()
    assert (folder / "a.png").read_bytes() == image
    kept = json.loads((folder / "result.json").read_text())
    assert kept["images"][0]["particles"] == answer["images"][0]["particles"] and "preview" not in kept["images"][0]


def test_concurrent_requests_give_the_sequential_answers(client, image):
    other = png_bytes(micrograph(400, 300, seed=2))
    alone = {n: post(client, [(n, b, "image/png")]).json() for n, b in (("a.png", image), ("b.png", other))}
    jobs = [("a.png", image), ("b.png", other)] * 3
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda job: post(client, [(job[0], job[1], "image/png")]), jobs))
        health = pool.submit(client.get, "/api/health").result()
    assert health.status_code == 200
    for (name, _), r in zip(jobs, answers):
        assert r.status_code == 200 and r.json()["images"] == alone[name]["images"]


def test_health_and_page_answer_while_the_thread_pool_is_full_of_predictions(image):
    """More uploads in flight than the server has threads (40): the page and /api/health still answer
    (a real uvicorn server: a TestClient outside `with` gives every request its own event loop and thread pool)."""
    import socket
    from pathlib import Path

    import httpx
    import uvicorn

    from synthgen.annotations import Detections

    release, started = threading.Event(), threading.Semaphore(0)

    class Stalled:  # a model that takes as long as the test says
        weights, device = Path("stalled.pt"), "cpu"

        def __call__(self, paths, conf):
            started.release()
            release.wait(60)
            return [Detections.empty(True) for _ in paths]

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(Stalled(), LIMITS), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    while not srv.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"

    def upload(_):
        return httpx.post(f"{url}/api/predict", files=[("files", ("a.png", image, "image/png"))], timeout=120).status_code

    try:
        with ThreadPoolExecutor(45) as pool:
            jobs = [pool.submit(upload, i) for i in range(45)]
            try:
                for _ in range(WORK_THREADS):  # as many uploads as may be worked on are inside the model
                    assert started.acquire(timeout=60)
                time.sleep(1)  # the others reach the server and wait
                t0 = time.perf_counter()
                assert httpx.get(f"{url}/api/health", timeout=10).status_code == 200
                assert httpx.get(f"{url}/", timeout=10).status_code == 200
                assert time.perf_counter() - t0 < 5
            finally:
                release.set()
            assert [j.result() for j in jobs] == [200] * 45
    finally:
        srv.should_exit = True
        thread.join(10)


def test_export_zip_holds_the_report_of_the_kept_particles(client, image):
    res = post(client, [("a.png", image, "image/png")], nm_per_px=2.0).json()
    parts = [p for p in res["images"][0]["particles"] if p["class"] == "sphere"]  # the page's cube toggle off
    results = {"images": [{"name": "a.png", "nm_per_px": 2.0, "particles": parts}]}
    r = client.post("/api/export", files=[("files", ("a.png", image, "image/png"))], data={"results": json.dumps(results)})
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    z = zipfile.ZipFile(io.BytesIO(r.content))
    names = set(z.namelist())
    for n in ("detections.csv", "counts.csv", "summary.json", "sizes_cube.png", "sizes_sphere.png", "annotated/a.png",
              "coco/annotations.json", "coco/a.png", "labelme/a.json", "labelme/a.png"):  # fmt: skip
        assert f"particles/{n}" in names, n
    rows = list(csv.DictReader(io.StringIO(z.read("particles/detections.csv").decode())))
    assert len(rows) == len(parts) and {r["class"] for r in rows} == {"sphere"}
    assert [float(r["diameter_nm"]) for r in rows] == pytest.approx([2 * p["diameter_px"] for p in parts], rel=1e-3)
    summary = json.loads(z.read("particles/summary.json"))
    assert summary["classes"]["sphere"]["count"] == len(parts) and summary["classes"]["sphere"]["unit"] == "nm"


def test_export_reads_back_as_annotations(client, image, tmp_path):
    res = post(client, [("a.png", image, "image/png")]).json()
    results = {"images": [{"name": "a.png", "nm_per_px": None, "particles": res["images"][0]["particles"]}]}
    r = client.post("/api/export", files=[("files", ("a.png", image, "image/png"))], data={"results": json.dumps(results)})
    zipfile.ZipFile(io.BytesIO(r.content)).extractall(tmp_path)
    n = len(res["images"][0]["particles"])
    (coco,) = read_labelled_folder(tmp_path / "particles" / "coco")
    det, _ = read_label_file(tmp_path / "particles" / "labelme" / "a.json", tmp_path / "particles" / "labelme" / "a.png")
    assert len(coco.gt) == n and len(det) == n


def test_export_of_images_with_different_scales_adds_per_image_nm(client, image):
    other = png_bytes(micrograph(320, 240, seed=1))
    res = post(client, [("a.png", image, "image/png"), ("b.png", other, "image/png")]).json()["images"]
    results = {"images": [{**res[0], "nm_per_px": 1.0}, {**res[1], "nm_per_px": 3.0}]}
    files = [("files", ("a.png", image, "image/png")), ("files", ("b.png", other, "image/png"))]
    z = zipfile.ZipFile(io.BytesIO(client.post("/api/export", files=files, data={"results": json.dumps(results)}).content))
    rows = list(csv.DictReader(io.StringIO(z.read("particles/detections.csv").decode())))
    assert len(rows) == len(res[0]["particles"]) + len(res[1]["particles"])
    for row in rows:
        scale = 1.0 if row["image"] == "a.png" else 3.0
        assert float(row["diameter_nm"]) == pytest.approx(scale * float(row["diameter_px"]), rel=1e-4)


@pytest.mark.parametrize(
    ("results", "message"),
    [
        ("not json", "results must be JSON"),
        (json.dumps({"images": [{"name": "other.png", "particles": []}]}), "a.png: no results given for this image"),
        (json.dumps({"images": [{"name": "a.png", "particles": [{"box": [0, 0, 1], "class_id": 0}]}]}), "a.png: results: each particle"),
        (json.dumps({"images": [{"name": "a.png", "particles": [{"box": [0, 0, 1, 1], "class_id": 7}]}]}), "class_id outside"),
    ],
)
def test_export_with_bad_results_is_a_422(client, image, results, message):
    r = client.post("/api/export", files=[("files", ("a.png", image, "image/png"))], data={"results": results})
    assert r.status_code == 422 and message in r.json()["error"]


def test_safe_name():
    assert safe_name("../../etc/passwd", 0) == "passwd"
    assert safe_name("C:\\Users\\me\\my image (1).tif", 0) == "my_image__1_.tif"
    assert safe_name("", 3) == "upload-3" and safe_name("...", 1) == "upload-1"


def test_cli_serve_warns_on_a_public_host_and_refuses_a_busy_port(monkeypatch, tmp_path):
    import socket

    import detector.serve as serve

    if not SHIPPED.is_file():
        pytest.skip(f"this checkout ships no default model ({SHIPPED})")
    started = []
    monkeypatch.setattr(serve, "run", lambda app, host, port: started.append((host, port)))
    monkeypatch.setattr(serve.Predictor, "warm_up", lambda self: None)
    runner = CliRunner()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    res = runner.invoke(cli_app, ["serve", "--host", "0.0.0.0", "--port", str(free), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "warning: --host 0.0.0.0: anyone" in res.stderr and started == [("0.0.0.0", free)]
    res = runner.invoke(cli_app, ["serve", "--port", str(free), "--device", "cpu"])
    assert res.exit_code == 0 and "warning" not in res.stderr and started[-1] == ("127.0.0.1", free)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = runner.invoke(cli_app, ["serve", "--port", str(port)])
    assert res.exit_code == 2 and f"error: cannot listen on 127.0.0.1:{port}" in res.stderr and len(started) == 2
    res = runner.invoke(cli_app, ["serve", "--weights", str(tmp_path / "none.pt")])
    assert res.exit_code == 2 and "none.pt: no such model file" in res.stderr
