"""`detector predict --save coco|labelme` writes the particles' outlines, and they read back."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from detector.report import write_predictions
from synthgen.annotations import Detections
from synthgen.formats import read_labelled_folder
from synthgen.instance_masks import rasterize


def _square(x0, y0, s):
    return np.array([[x0, y0], [x0 + s, y0], [x0 + s, y0 + s], [x0, y0 + s]], float)


@pytest.mark.parametrize("fmt", ["coco", "labelme"])
def test_saved_outlines_read_back(tmp_path, fmt):
    (tmp_path / "in").mkdir()
    path = tmp_path / "in" / "im0.png"
    cv2.imwrite(str(path), np.full((80, 80), 20, np.uint8))
    octagon = np.array([[50, 40], [57, 43], [60, 50], [57, 57], [50, 60], [43, 57], [40, 50], [43, 43]], float) + 0.5
    det = Detections(np.array([[5, 5, 25, 25], [40, 40, 61, 61], [2, 60, 12, 70]], float), np.array([0, 1, 1]),
                     np.array([0.9, 0.8, 0.7]), (_square(5.5, 5.5, 19), octagon, None))  # fmt: skip
    write_predictions([path], [(80, 80)], [det], tmp_path / "out", save=fmt)
    (sample,) = read_labelled_folder(tmp_path / "out" / fmt)
    assert sample.gt.class_id.tolist() == [0, 1, 1]
    assert sample.polygons[2] is None  # a detection without an outline stays a box
    np.testing.assert_allclose(sample.gt.xyxy[2], det.xyxy[2], atol=1e-4)
    for got, want in zip(sample.polygons[:2], det.polygons[:2]):
        np.testing.assert_allclose(got, want, atol=0.01)
        assert rasterize(got, 80, 80).area == rasterize(want, 80, 80).area
