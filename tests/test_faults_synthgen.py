"""Faults a user meets with synthgen (issue 10): each gives one clear line and exit 2, never a
traceback, never a half-written or lost output; killed runs leave nothing a rerun does not clean."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import write_pattern
from synthgen.atomic import OwnedStaging, output_lock, remove_dead_staging
from synthgen.cli import app
from synthgen.errors import InputError
from synthgen.generate import MAX_COUNT, generate

runner = CliRunner()
SYNTHGEN = [str(Path(sys.executable).with_name("synthgen"))]


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def hidden(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def one_error(res, fragment: str) -> str:
    """Exit 2, no traceback, exactly one non-empty stderr line, an `error: ` line holding fragment."""
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], lines
    return lines[0]


def usage_error(res, option: str) -> None:
    """A click/typer usage error: exit 2, no traceback, one line naming the option."""
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    assert len([line for line in res.output.splitlines() if "Invalid value" in line and option in line]) == 1, res.output


def gen(pattern: Path, out: Path, *extra: str):
    return runner.invoke(app, ["generate", str(pattern), "--out", str(out), "-n", "2", "--seed", "3", "--max-particles", "10", *extra])


# --- 1. an existing output: refused unless --overwrite; one writer at a time ----------------------


def test_second_run_into_same_out_refused_first_output_kept(tiny_pattern, tmp_path):
    out = tmp_path / "out"
    assert gen(tiny_pattern, out).exit_code == 0
    before = files(out)
    one_error(gen(tiny_pattern, out, "--seed", "4"), "use --overwrite")
    assert files(out) == before and hidden(tmp_path) == []
    res = gen(tiny_pattern, out, "--seed", "4", "--overwrite")
    assert res.exit_code == 0, res.output
    assert files(out) != before and (out / "manifest.json").read_text().count('"seed": 4') == 1
    assert hidden(tmp_path) == []


def test_overwrite_only_replaces_a_generate_output(tiny_pattern, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    one_error(gen(tiny_pattern, mine, "--overwrite"), "replaces only a previous synthgen generate output")
    assert (mine / "thesis.tex").read_text() == "precious"
    a_file = tmp_path / "file.png"
    a_file.write_bytes(b"png")
    usage_error(gen(tiny_pattern, a_file, "--overwrite"), "--out")  # typer: file_okay=False
    with pytest.raises(InputError, match="not a folder"):
        generate([tiny_pattern], a_file, count=1, overwrite=True)
    assert a_file.read_bytes() == b"png"
    # an input inside the output folder would be deleted by the swap
    out = tmp_path / "out"
    assert gen(tiny_pattern, out).exit_code == 0
    inner = write_pattern(out / "pat")
    one_error(gen(inner, out, "--overwrite"), "input lies inside the output folder")
    assert inner.is_file() and hidden(tmp_path) == []


def test_concurrent_run_into_same_out_fails_at_once(tiny_pattern, tmp_path):
    out = tmp_path / "out"
    with output_lock(out):  # another live run holds it (flock: a second open file conflicts)
        t = time.monotonic()
        line = one_error(gen(tiny_pattern, out), "another run")
        assert f"(pid {os.getpid()})" in line and time.monotonic() - t < 5
        assert not out.exists()
    assert hidden(tmp_path) == []
    assert gen(tiny_pattern, out).exit_code == 0  # released: the next run works


# --- 2. stale staging of dead runs: removed; a live run's: never ---------------------------------


def test_only_provably_dead_staging_is_removed(tmp_path):
    out = tmp_path / "out"
    live = OwnedStaging(out)
    foreign = tmp_path / ".out.partial-foreign"  # no .owner (another tool, an older version): kept
    foreign.mkdir()
    dead = tmp_path / ".out.partial-dead"
    dead.mkdir()
    (dead / ".owner").write_text("999999\n")  # nobody holds its lock
    assert remove_dead_staging(out) == [dead]
    assert live.path.is_dir() and foreign.is_dir() and not dead.exists()
    live.discard()
    assert hidden(tmp_path) == [".out.partial-foreign"]


def _wait(predicate, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_kill_9_mid_run_leaves_no_output_and_rerun_cleans_up(tiny_pattern, tmp_path):
    """A run of the largest --count streams (images from the first one, flat memory), fails a
    concurrent run at once, and killed with -9 leaves no output; the rerun removes its staging."""
    out = tmp_path / "out"
    cmd = [*SYNTHGEN, "generate", str(tiny_pattern), "--out", str(out), "-n", str(MAX_COUNT), "--seed", "1", "--max-particles", "5"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        images = lambda: [p for s in tmp_path.glob(".out.partial-*") for p in (s / "images").glob("*.png")]  # noqa: E731
        _wait(lambda: len(images()) >= 20)  # streams: writes start at once, not after planning 1e7 images
        rss = _rss_mb(proc.pid)
        _wait(lambda: len(images()) >= 300)
        assert _rss_mb(proc.pid) - rss < 50, "memory grows with the images written"
        second = subprocess.run([*cmd[:-4], "-n", "1"], capture_output=True, text=True, timeout=60)
        assert second.returncode == 2 and "another run" in second.stderr and "Traceback" not in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert not out.exists()
    stale = list(tmp_path.glob(".out.partial-*"))
    assert len(stale) == 1  # the debris of the killed run
    res = subprocess.run([*cmd[:-5], "1", "--seed", "1", "--max-particles", "5"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "removed 1 staging folder" in res.stdout and "Traceback" not in res.stderr
    assert hidden(tmp_path) == [] and len(list((out / "images").iterdir())) == 1


# --- 3. streaming and --count range ----------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
def test_huge_count_reports_progress_from_the_first_image(tiny_pattern, tmp_path, workers):
    calls = []

    def progress(done, total):
        calls.append((done, total, time.monotonic()))
        if done == 3:
            raise KeyboardInterrupt

    t = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        generate([tiny_pattern], tmp_path / "out", count=MAX_COUNT, seed=1, max_particles=5, workers=workers, progress=progress)
    assert [c[:2] for c in calls] == [(1, MAX_COUNT), (2, MAX_COUNT), (3, MAX_COUNT)]
    assert calls[0][2] - t < 30  # planning 1e7 images up front took minutes
    assert not (tmp_path / "out").exists() and hidden(tmp_path) == []


def test_count_out_of_range_and_help(tiny_pattern, tmp_path):
    for count in ("0", "1000000000"):
        usage_error(gen(tiny_pattern, tmp_path / "out", "-n", count), "--count")
    assert not (tmp_path / "out").exists()
    with pytest.raises(InputError, match="--count must be in 1..10000000"):
        generate([tiny_pattern], tmp_path / "out", count=MAX_COUNT + 1)
    help_text = runner.invoke(app, ["generate", "--help"], env={"COLUMNS": "200"}).stdout
    assert "1<=x<=10000000" in help_text and "--overwrite" in help_text


# --- 4. unwritable output, negative seeds ---------------------------------------------------------


@pytest.fixture
def readonly_dir(tmp_path, monkeypatch):
    """A folder nobody may write into (root ignores the mode bits: then mkdir/open are refused too)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    if os.geteuid() == 0:
        real_mkdir, real_open = os.mkdir, os.open

        def refuse(path) -> None:
            p = Path(os.fsdecode(path)).absolute()
            if p != ro and p.is_relative_to(ro) and not p.exists():
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

        def mkdir(path, *a, **k):
            refuse(path)
            return real_mkdir(path, *a, **k)

        def open_(path, flags, *a, **k):
            if flags & os.O_CREAT:
                refuse(path)
            return real_open(path, flags, *a, **k)

        monkeypatch.setattr(os, "mkdir", mkdir)
        monkeypatch.setattr(os, "open", open_)
    yield ro
    ro.chmod(0o755)


def test_unwritable_out_generate_and_preview(tiny_pattern, tmp_path, readonly_dir):
    one_error(gen(tiny_pattern, readonly_dir / "out"), "permission denied")
    one_error(gen(tiny_pattern, readonly_dir / "deeper" / "out"), "permission denied")
    good = tmp_path / "good"
    assert gen(tiny_pattern, good).exit_code == 0
    res = runner.invoke(app, ["preview", str(good), "--out", str(readonly_dir / "sheet.png")])
    one_error(res, "cannot write the sheet: permission denied")
    res = runner.invoke(app, ["render-templates", "--out", str(readonly_dir / "patterns")])
    one_error(res, "permission denied")
    assert list(readonly_dir.iterdir()) == []


@pytest.mark.parametrize("command", [["render-templates"], ["generate", "p.txt", "--out", "o"]])
def test_negative_seed_is_a_usage_error_with_range_in_help(command, tmp_path):
    usage_error(runner.invoke(app, [*command, "--seed", "-1"]), "--seed")
    assert not (tmp_path / "o").exists()
    help_text = runner.invoke(app, [command[0], "--help"], env={"COLUMNS": "200"}).stdout
    assert "x>=0" in help_text


# --- 5. preview of bad labels ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "line, fragment",
    [
        ("0 nan 0.5 0.1 0.1", "NaN or inf"),
        ("0 0.5 0.5 inf 0.1", "NaN or inf"),
        ("5 0.5 0.5 0.1 0.1", "class 5 out of range (classes 0..1)"),
        ("-1 0.5 0.5 0.1 0.1", "class -1 out of range"),
        ("1 1.5 0.5 0.1 0.1", "outside 0..1"),
        ("1 0.5 0.5", "malformed YOLO line"),
    ],
)
def test_preview_bad_label_names_file_and_line(tiny_pattern, tmp_path, line, fragment):
    out = tmp_path / "gen"
    assert gen(tiny_pattern, out).exit_code == 0
    label = out / "labels" / "000001.txt"
    label.write_text(label.read_text() + line + "\n")
    n = len(label.read_text().splitlines())
    sheet = tmp_path / "sheet.png"
    err = one_error(runner.invoke(app, ["preview", str(out), "--out", str(sheet)]), fragment)
    assert err.startswith(f"error: {label}:{n}: ")
    assert not sheet.exists() and hidden(tmp_path) == []


# --- 6. a truncated PNG template: only the project's line, no libpng/OpenCV line ------------------


@pytest.mark.parametrize("command", ["check", "generate"])
def test_truncated_png_template_one_line_only(tmp_path, command):
    path = write_pattern(tmp_path / "p")
    full = cv2.imencode(".png", np.random.default_rng(0).integers(0, 255, (40, 40), dtype=np.uint8))[1].tobytes()
    for cut, name in ((len(full) // 2, "half.png"), (len(full) - 20, "no_end.png")):
        (tmp_path / "p" / "templates" / name).write_bytes(full[:cut])
        path.write_text(f"160 120\ntemplates/{name} cube\n")
        extra = ["--out", str(tmp_path / "out"), "-n", "1"] if command == "generate" else []
        res = subprocess.run([*SYNTHGEN, command, str(path), *extra], capture_output=True, text=True, timeout=120)
        assert res.returncode == 2
        assert res.stdout == "" and "Traceback" not in res.stderr
        assert res.stderr.splitlines() == [f"error: {path}:2: cannot read the template image (corrupt or not an image): templates/{name}"] or (
            len(res.stderr.splitlines()) == 1 and "cannot read the template image" in res.stderr
        ), res.stderr
    assert not (tmp_path / "out").exists()
