"""Model registry and the YOLOv4-tiny-equivalent YAML against darknet's yolov4-tiny.cfg."""

from __future__ import annotations

import pytest
import torch

from detector import yolo_env
from detector.models import ARCHS, model_cfg
from synthgen.errors import InputError

# darknet cfg/yolov4-tiny.cfg without its two linear 1x1 output convs: (c_in, c_out, k) of every
# conv+BN+leaky layer in order. The "route groups=2 group_id=1" layers take half of the previous conv.
DARKNET_V4_TINY_CONVS = [
    (3, 32, 3), (32, 64, 3),
    (64, 64, 3), (32, 32, 3), (32, 32, 3), (64, 64, 1),  # CSP 1
    (128, 128, 3), (64, 64, 3), (64, 64, 3), (128, 128, 1),  # CSP 2
    (256, 256, 3), (128, 128, 3), (128, 128, 3), (256, 256, 1),  # CSP 3
    (512, 512, 3), (512, 256, 1), (256, 512, 3),  # neck, P5
    (256, 128, 1), (384, 256, 3),  # upsample path, P4
]
DARKNET_V4_TINY_BODY = sum(k * k * ci * co + 2 * co for ci, co, k in DARKNET_V4_TINY_CONVS)  # conv + BN scale/shift


def _build(arch: str, nc: int = 2):
    yolo_env.yolo_class()
    tasks = yolo_env.ultralytics_module("nn.tasks")
    return tasks.DetectionModel(str(model_cfg(arch)), nc=nc, verbose=False)


def test_registry():
    assert model_cfg("yolov4-tiny").is_file() and model_cfg("yolov3-tiny").name == "yolov3-tiny.yaml"
    assert model_cfg("yolov3-tiny").is_file()  # ultralytics' own YAML, found without importing it
    assert set(ARCHS) == {"yolov3-tiny", "yolov4-tiny"}
    with pytest.raises(InputError, match="unknown architecture"):
        model_cfg("yolov4")


def test_yolov4_tiny_body_matches_darknet_layer_for_layer():
    m = _build("yolov4-tiny")
    detect = m.model[-1]
    body = sum(p.numel() for p in m.parameters()) - sum(p.numel() for p in detect.parameters())
    assert body == DARKNET_V4_TINY_BODY == 5_860_256
    convs = [mod for mod in m.modules() if isinstance(mod, torch.nn.Conv2d) and mod not in set(detect.modules())]
    assert len(convs) == len(DARKNET_V4_TINY_CONVS) + 3  # the three split convs are two half-width convs each


def test_yolov4_tiny_structure():
    m = _build("yolov4-tiny")
    assert m.stride.tolist() == [16.0, 32.0]  # two heads, as darknet's two [yolo] layers
    assert m.model[-1].nc == 2
    acts = {type(mod.act) for mod in m.modules() if hasattr(mod, "conv") and hasattr(mod, "act")}
    assert acts == {torch.nn.LeakyReLU}
    assert all(mod.act.negative_slope == 0.1 for mod in m.modules() if isinstance(getattr(mod, "act", None), torch.nn.LeakyReLU))
    maxpools = [mod for mod in m.model if isinstance(mod, torch.nn.MaxPool2d)]
    assert len(maxpools) == 3
    m.eval()
    with torch.no_grad():
        y = m(torch.zeros(1, 3, 64, 64))
    y = y[0] if isinstance(y, (list, tuple)) else y
    assert y.shape[1] == 4 + 2  # box + 2 class scores per anchor point
    assert y.shape[2] == (64 // 16) ** 2 + (64 // 32) ** 2


def test_documented_size_and_flops():
    """The figures in docs/models.md (nc=2, 416x416)."""
    get_flops = yolo_env.ultralytics_module("utils.torch_utils").get_flops
    v4, v3 = _build("yolov4-tiny"), _build("yolov3-tiny")
    assert sum(p.numel() for p in v4.parameters()) == 9_337_396
    assert sum(p.numel() for p in v3.parameters()) == 12_133_156
    assert 9.3 < get_flops(v4, 416) < 9.5
    assert 8.0 < get_flops(v3, 416) < 8.1
