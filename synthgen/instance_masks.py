"""Per-particle pixel masks: from instance-mask images, from polygons, and back to polygons.

Conventions. A polygon's vertices are continuous image coordinates (pixel (row i, column j) covers
[j, j+1) x [i, i+1), its centre is (j + 0.5, i + 0.5)). A polygon made from a pixel mask runs through
the centres of the mask's boundary pixels; rasterising a polygon marks the pixels whose centres lie
inside or on it (an exact test). So mask -> polygon -> mask gives the same pixels back for a mask of
one part without holes, and sizes measured on either agree. An outline along the pixel edges (the
other common convention: synthgen's footprints, COCO polygons traced around pixels, boxes) passes no
pixel centre, so it too rasterises to exactly the pixels it covers: the area of the pixels is the
pixel count either way (ImageJ's convention), within the staircase of a slanted edge.

An instance-mask image (``masks/<stem>.png`` beside ``images/``, 16-bit, value k+1 = the particle on
line k of the label file, 0 = background) gives every labelled particle its exact pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from synthgen.annotations import Sample, box_iou

MASK_SUFFIX = ".png"


@dataclass(frozen=True)
class ParticleMask:
    """One particle's pixels: a boolean crop whose top-left pixel is (x0, y0) in the image."""

    x0: int
    y0: int
    mask: np.ndarray  # (h, w) bool

    @property
    def area(self) -> int:
        return int(self.mask.sum())

    def full(self, width: int, height: int) -> np.ndarray:
        """The mask on a (height, width) canvas (cropped where it lies outside)."""
        out = np.zeros((height, width), bool)
        h, w = self.mask.shape
        xa, ya = max(self.x0, 0), max(self.y0, 0)
        xb, yb = min(self.x0 + w, width), min(self.y0 + h, height)
        if xb > xa and yb > ya:
            out[ya:yb, xa:xb] = self.mask[ya - self.y0 : yb - self.y0, xa - self.x0 : xb - self.x0]
        return out


def mask_file_for(image: str | Path) -> Path | None:
    """``masks/<stem>.png`` beside the image's ``images/`` folder (or beside the image), when it exists."""
    image = Path(image)
    folders = [image.parent / "masks"]
    if image.parent.name == "images":
        folders.insert(0, image.parent.parent / "masks")
    return next((f / (image.stem + MASK_SUFFIX) for f in folders if (f / (image.stem + MASK_SUFFIX)).is_file()), None)


def gt_mask_values(labels: np.ndarray, gt_xyxy: np.ndarray) -> list[int | None]:
    """The mask value of each labelled box: k+1 for box k when the mask holds exactly that many values
    (the EMPS convention); otherwise (lines skipped as flawed, say) the value whose pixel box matches
    the labelled box best (IoU >= 0.5), or None."""
    from synthgen.extract import mask_boxes

    boxes = mask_boxes(labels)
    n = len(gt_xyxy)
    if n == 0:
        return []
    if boxes and max(boxes) == n:
        return [k + 1 if k + 1 in boxes else None for k in range(n)]
    if not boxes:
        return [None] * n
    values = np.array(sorted(boxes))
    iou = box_iou(gt_xyxy, np.array([boxes[v] for v in values], np.float64))
    out: list[int | None] = [None] * n
    used = set()
    for k in np.argsort(-iou.max(axis=1)):
        for j in np.argsort(-iou[k]):
            if iou[k, j] < 0.5:
                break
            if j not in used:
                out[k] = int(values[j])
                used.add(j)
                break
    return out


def masks_from_labels(labels: np.ndarray, values: list[int | None]) -> list[ParticleMask | None]:
    """A ParticleMask (tight crop) for each mask value; None where the value is None or absent."""
    from synthgen.extract import mask_boxes

    boxes = mask_boxes(labels)
    out: list[ParticleMask | None] = []
    for v in values:
        if v is None or v not in boxes:
            out.append(None)
            continue
        x0, y0, x1, y1 = (int(c) for c in boxes[v])
        out.append(ParticleMask(x0, y0, labels[y0:y1, x0:x1] == v))
    return out


def _geometry(pts: np.ndarray):
    """The shapely geometry of a vertex list: a polygon, or for a degenerate one the line/point itself."""
    import shapely

    if len(pts) == 1:
        return shapely.Point(pts[0])
    if len(pts) >= 3:
        poly = shapely.Polygon(pts)
        if poly.area > 0:
            return poly
    return shapely.LineString(np.vstack([pts, pts[:1]]))


def rasterize(polygon: np.ndarray, width: int | None = None, height: int | None = None) -> ParticleMask:
    """The pixels whose centres lie inside or on `polygon` ((k, 2) image coordinates), as a tight crop
    (clipped to the image when its size is given).

    The test is exact (shapely's robust point-in-polygon), so both outline conventions give their own
    pixels back: an outline through the boundary pixels' centres (``mask_polygon``) and an outline
    along the pixel edges (synthgen's footprints, boxes): the edges pass no pixel centre. A pixel
    whose centre lies outside is never marked, unlike cv2.fillPoly, which also paints every pixel the
    outline crosses (about half a pixel all round: +1 px of ECD)."""
    import shapely

    pts = np.asarray(polygon, np.float64).reshape(-1, 2)
    # pixel j (centre j + 0.5) can be inside when min <= j + 0.5 <= max
    x0, y0 = int(np.ceil(pts[:, 0].min() - 0.5)), int(np.ceil(pts[:, 1].min() - 0.5))
    x1, y1 = int(np.floor(pts[:, 0].max() - 0.5)) + 1, int(np.floor(pts[:, 1].max() - 0.5)) + 1
    if width is not None:
        x0, x1 = max(x0, 0), min(x1, width)
    if height is not None:
        y0, y1 = max(y0, 0), min(y1, height)
    if x1 <= x0 or y1 <= y0:
        return ParticleMask(max(x0, 0), max(y0, 0), np.zeros((0, 0), bool))
    geom = _geometry(pts)
    shapely.prepare(geom)
    ys, xs = np.mgrid[y0:y1, x0:x1] + 0.5
    inside = shapely.intersects_xy(geom, xs.ravel(), ys.ravel()).reshape(xs.shape)
    return ParticleMask(x0, y0, inside)


def mask_polygon(pm: ParticleMask) -> np.ndarray | None:
    """The outline of the mask's largest part through its boundary pixels' centres, (k, 2) image
    coordinates; None for an empty mask."""
    if pm.mask.size == 0 or not pm.mask.any():
        return None
    padded = np.pad(pm.mask.astype(np.uint8), 1)
    contours, _ = cv2.findContours(padded, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    best = max(contours, key=lambda c: (cv2.contourArea(c), len(c)))
    pts = best.reshape(-1, 2).astype(np.float64) - 1 + [pm.x0, pm.y0] + 0.5
    return pts


def sample_masks(sample: Sample) -> list[ParticleMask | None]:
    """Every labelled particle's pixels: from the sample's instance-mask image when it has one, else
    rasterised from its polygon; None for a particle with neither."""
    n = len(sample.gt)
    if sample.mask_path is not None:
        from synthgen.extract import read_instance_mask

        labels = read_instance_mask(Path(sample.mask_path), sample.width, sample.height)
        return masks_from_labels(labels, gt_mask_values(labels, sample.gt.xyxy))
    polys = list(sample.polygons) if sample.polygons else [None] * n
    return [None if p is None else rasterize(p, sample.width, sample.height) for p in polys]


def sample_polygons(sample: Sample) -> list[np.ndarray | None]:
    """Every labelled particle's outline: from its instance mask when the sample has one, else its polygon."""
    if sample.mask_path is None:
        return list(sample.polygons) if sample.polygons else [None] * len(sample.gt)
    return [None if m is None else mask_polygon(m) for m in sample_masks(sample)]
