"""`synthgen generate --size-dist`: particle sizes drawn from a known log-normal distribution."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from detector.measure import measure, particle_size
from synthgen.cli import app
from synthgen.errors import InputError
from synthgen.generate import parse_size_dist
from synthgen.instance_masks import rasterize

PATTERNS = Path(__file__).resolve().parents[1] / "patterns"
runner = CliRunner()


def labelled_sizes(folder: Path) -> dict[str, list[float]]:
    """Per class the size (cube edge, sphere ECD) of every labelled footprint, measured on its pixels."""
    coco = json.loads((folder / "annotations.json").read_text())
    dims = {im["id"]: (im["width"], im["height"]) for im in coco["images"]}
    names = {c["id"]: c["name"] for c in coco["categories"]}
    out: dict[str, list[float]] = {}
    for a in coco["annotations"]:
        w, h = dims[a["image_id"]]
        poly = max(a["segmentation"], key=len)
        m = measure(rasterize(np.array(poly).reshape(-1, 2), w, h), w, h)
        out.setdefault(names[a["category_id"]], []).append(particle_size(m, names[a["category_id"]]))
    return out


def test_parse_size_dist():
    assert parse_size_dist("lognormal:30,5") == (30.0, 5.0)
    assert parse_size_dist(None) is None
    for bad in ("normal:30,5", "lognormal:30", "lognormal:a,b"):
        with pytest.raises(InputError, match="--size-dist"):
            parse_size_dist(bad)


@pytest.mark.parametrize("mean,spread", [(36.0, 6.0), (22.0, 0.0)])
def test_generated_sizes_follow_the_distribution(tmp_path, mean, spread):
    out = tmp_path / "set"
    done = runner.invoke(app, ["generate", str(PATTERNS / "p04" / "pattern.txt"), "--out", str(out), "--count", "4", "--seed", "7",
                               "--max-particles", "40", "--size-dist", f"lognormal:{mean},{spread}"])  # fmt: skip
    assert done.exit_code == 0, done.output
    sizes = labelled_sizes(out)
    assert set(sizes) == {"cube", "sphere"}
    for name, v in sizes.items():
        v = np.array(v)
        assert len(v) >= 30
        # the outline runs along the pixel edges and rasterize marks exactly the pixels it covers
        assert abs(v.mean() - mean) < 3 * spread / math.sqrt(len(v)) + 0.6, (name, v.mean())
        assert abs(v.std(ddof=1) - spread) < 0.3 * spread + 1.0, (name, v.std(ddof=1))


def test_size_dist_refuses_jitter_and_bad_values(tmp_path):
    for args, msg in ((["--size-dist", "lognormal:30,5", "--scale-jitter", "0.1"], "--scale-jitter"),
                      (["--size-dist", "lognormal:-3,5"], "MEAN > 0"), (["--size-dist", "gauss:3,5"], "lognormal:MEAN,SPREAD")):  # fmt: skip
        done = runner.invoke(app, ["generate", str(PATTERNS / "p04" / "pattern.txt"), "--out", str(tmp_path / "x"), "-n", "1", *args])
        assert done.exit_code == 2, done.output
        assert msg in done.output
        assert not (tmp_path / "x").exists()
