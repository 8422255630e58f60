"""Central data types: boxes of one image (labelled or detected) and a labelled image."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Detections:
    """Boxes of one image: absolute xyxy pixels, class ids, optional confidences."""

    xyxy: np.ndarray  # (n, 4) float32
    class_id: np.ndarray  # (n,) int64
    confidence: np.ndarray | None = None  # (n,) float32, None for labels
    # one (k, 2) float outline in absolute px (or None) per box; None: boxes only (a box-only model)
    polygons: tuple | None = None

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        cls = np.asarray(self.class_id, dtype=np.int64).reshape(-1)
        if len(cls) != len(xyxy):
            raise ValueError(f"{len(xyxy)} boxes but {len(cls)} class ids")
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "class_id", cls)
        if self.confidence is not None:
            conf = np.asarray(self.confidence, dtype=np.float32).reshape(-1)
            if len(conf) != len(xyxy):
                raise ValueError(f"{len(xyxy)} boxes but {len(conf)} confidences")
            object.__setattr__(self, "confidence", conf)
        if self.polygons is not None:
            polys = tuple(None if p is None else np.asarray(p, np.float64).reshape(-1, 2) for p in self.polygons)
            if len(polys) != len(xyxy):
                raise ValueError(f"{len(xyxy)} boxes but {len(polys)} polygons")
            object.__setattr__(self, "polygons", polys)

    @classmethod
    def empty(cls, with_confidence: bool = False) -> Detections:
        return cls(
            np.zeros((0, 4), np.float32),
            np.zeros((0,), np.int64),
            np.zeros((0,), np.float32) if with_confidence else None,
        )

    @classmethod
    def merge(cls, parts: list[Detections]) -> Detections:
        if not parts:
            return cls.empty()
        conf = None
        if all(p.confidence is not None for p in parts):
            conf = np.concatenate([p.confidence for p in parts])
        polys = None
        if any(p.polygons is not None for p in parts):
            polys = tuple(q for p in parts for q in (p.polygons if p.polygons is not None else (None,) * len(p)))
        return cls(
            np.concatenate([p.xyxy for p in parts]),
            np.concatenate([p.class_id for p in parts]),
            conf,
            polys,
        )

    def __len__(self) -> int:
        return len(self.class_id)

    def __getitem__(self, index) -> Detections:
        """A subset by boolean mask, index array or slice."""
        if isinstance(index, int):
            index = [index]
        polys = None
        if self.polygons is not None:
            holder = np.empty(len(self.polygons), dtype=object)
            for i, p in enumerate(self.polygons):  # one by one: equal-shaped arrays would be broadcast
                holder[i] = p
            polys = tuple(holder[index])
        return Detections(
            self.xyxy[index],
            self.class_id[index],
            None if self.confidence is None else self.confidence[index],
            polys,
        )

    @property
    def wh(self) -> np.ndarray:
        return self.xyxy[:, 2:4] - self.xyxy[:, 0:2]


@dataclass(frozen=True)
class Sample:
    """One labelled image: where it is, its size, and its labelled boxes."""

    image_path: Path
    width: int
    height: int
    gt: Detections = field(default_factory=Detections.empty)
    polygons: tuple = ()  # empty, or one (k, 2) float array (or None) per gt box
    mask_path: Path | None = None  # 16-bit instance mask beside images/ (masks/<stem>.png; value k+1 = gt box k)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (len(a), len(b)) of xyxy boxes; degenerate (zero-area) pairs give 0."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    return np.clip(iou, 0.0, 1.0)
