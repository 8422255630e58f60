"""Random non-overlapping placement of rotated template footprints. No pixels, no disk.

The sampler (López Gutiérrez et al. 2022, §2.3): an *attempt* draws a template uniformly at random,
an angle uniformly in [0, 360), a scale uniformly in [1 - jitter, 1 + jitter] and a position uniform
over the centres that keep the whole rotated footprint inside the canvas. It fails when the rotated
footprint cannot fit in the canvas at that angle and scale, or when it comes closer than ``min_gap``
pixels to (or overlaps) a footprint already placed; otherwise the particle is placed.

Stopping rule: the canvas is *full* ("no room left") after ``max_failures`` consecutive failed
attempts; generation also stops once ``max_particles`` are placed.

Agglomerates (``cluster_prob``, ``touching``, ``occlusion``; all off by default, and then the fast
sampler below runs unchanged): see ``place_agglomerates``. ``scale`` multiplies every particle's
scale (a per-image size factor, drawn by the caller).

Speed (the result is exactly that of a one-attempt-at-a-time loop over the same random numbers):
- attempts are drawn in blocks (``BATCH``, growing up to 16x during long runs of failures); a
  block's rotated bounding boxes, hence its positions, come from the templates' convex-hull
  support functions without touching every vertex;
- a raster of *doomed* centres (closer to a placed particle's centre than the two inscribed
  radii plus the gap) rejects most attempts on a crowded canvas with one array lookup;
- the survivors become shapely polygons in one call and meet the placed footprints through one
  bulk ``STRtree`` bounding-box query (rebuilt only after particles were added), so a candidate
  is only compared with footprints near it and the cost per attempt stays flat as the canvas
  fills; inscribed/enclosing disks settle most pairs, GEOS decides the rest exactly; then each
  survivor is checked, in order, against the particles accepted earlier in the same block.

Agglomerates run one attempt at a time (their random draws depend on earlier outcomes); each
shortcut only skips work whose outcome is certain, so the result is that of testing every attempt
with GEOS: without occlusion the doomed-centre raster rejects most uniform attempts at once, a slide
sure to end in a rejection is skipped, a slide without gap or cover reads its bisection steps from
overlap intervals computed once (``slide_overlaps``), and a candidate's polygon is built only when
the disk tests leave the exact GEOS test to decide.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon

BATCH = 64  # attempts drawn per block; part of the random stream, so changing it changes outputs
DEFAULT_MAX_FAILURES = 200
DOOM_CELL = 2  # px per cell of the doomed-centre raster
DOOM_MARGIN = 4.0  # px: > cell half-diagonal (1.4) + one cell of rasterisation error


@dataclass(frozen=True, slots=True)
class PlacedParticle:
    """One accepted particle. Canvas point q = A @ (p - c) + offset for template point p, where
    A = scale * rotation(angle_deg) and c is the template's centre (width/2, height/2)."""

    class_id: int
    template_index: int
    angle_deg: float
    scale: float
    footprint: Polygon  # canvas pixel coordinates, rotated and placed
    offset: tuple[float, float]  # canvas position of the template's centre
    # What stays visible under particles placed later (occlusion); None: the whole footprint.
    visible: Polygon | MultiPolygon | None = None

    @property
    def shape(self) -> Polygon | MultiPolygon:
        """The labelled geometry: the visible part of the footprint."""
        return self.footprint if self.visible is None else self.visible

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        return self.shape.bounds

    def matrix(self, template_size: tuple[int, int]) -> np.ndarray:
        """2x3 affine map from template pixel coordinates to canvas coordinates."""
        a = linear_part(self.angle_deg, self.scale)
        centre = np.array(template_size, np.float64) / 2.0
        return np.hstack([a, (np.asarray(self.offset) - a @ centre)[:, None]])


def linear_part(angle_deg: float, scale: float = 1.0) -> np.ndarray:
    """2x2 rotation (+ scale); positive angles turn clockwise on screen (y points down)."""
    t = np.deg2rad(angle_deg)
    c, s = np.cos(t), np.sin(t)
    return scale * np.array([[c, -s], [s, c]])


def log_normal_scales(rng: np.random.Generator, ti: np.ndarray, log_size: tuple[tuple[float, ...], float]) -> np.ndarray:
    """Scale factors exp(mu[t] + sigma * z) of attempts on templates `ti`, z standard normal cut at +-3."""
    mu, sigma = log_size
    z = np.clip(rng.standard_normal(len(ti)), -3.0, 3.0)
    return np.exp(np.asarray(mu, np.float64)[ti] + sigma * z)


@dataclass(frozen=True, slots=True)
class PlacementOptions:
    max_particles: int = 1000
    min_gap: float = 0.0  # pixels between footprints
    scale_jitter: float = 0.0  # scales drawn from [1 - j, 1 + j]
    max_failures: int = DEFAULT_MAX_FAILURES  # consecutive failed attempts meaning "no room left"
    scale: float = 1.0  # factor on every particle's scale (per-image size variety)
    cluster_prob: float = 0.0  # chance an attempt is placed against a placed particle
    touching: bool = False  # contact allowed (gap 0, no overlap); overrides min_gap
    occlusion: float = 0.0  # max fraction of a lower particle's area one later particle may cover
    # per-particle log-normal scales instead of the jitter: (log-median scale per template, sigma);
    # draws are truncated at +-3 sigma so the scale has bounds (synthgen generate --size-dist)
    log_size: tuple[tuple[float, ...], float] | None = None

    def __post_init__(self) -> None:
        if self.max_particles < 0 or self.min_gap < 0 or self.max_failures < 1:
            raise ValueError("max_particles and min_gap must be >= 0 and max_failures >= 1")
        if not 0.0 <= self.scale_jitter < 1.0:
            raise ValueError("scale_jitter must be in [0, 1)")
        if not (self.scale > 0 and 0 <= self.cluster_prob <= 1 and 0 <= self.occlusion < 1):
            raise ValueError("scale must be > 0, cluster_prob in [0, 1] and occlusion in [0, 1)")

    @property
    def scale_bounds(self) -> tuple[float, float]:
        """The smallest and largest scale an attempt can draw."""
        if self.log_size is not None:
            mu, sigma = self.log_size
            return math.exp(min(mu) - 3 * sigma) * self.scale, math.exp(max(mu) + 3 * sigma) * self.scale
        return (1.0 - self.scale_jitter) * self.scale, (1.0 + self.scale_jitter) * self.scale

    @property
    def agglomerates(self) -> bool:
        return self.cluster_prob > 0 or self.touching or self.occlusion > 0


class ShapeTable:
    """Template exteriors (centred on the crop centre) flattened for vectorised rotation, with the
    radii of each footprint's inscribed disk about the centre (-inf if the centre is outside it) and
    of its enclosing disk: two disks that overlap prove an overlap, two apart prove none.

    Rotated bounding boxes come from each convex hull's support function: for a direction
    angle phi the extreme hull vertex is found by one ``searchsorted`` over the hull's outward
    edge-normal angles (all templates in one sorted key array, template t at t * 16 + angle), so
    a block of attempts is bounded exactly without touching every vertex."""

    def __init__(self, shapes: Sequence[np.ndarray]):
        if not len(shapes):
            raise ValueError("no templates to place")
        shapes = [np.asarray(s, np.float64) for s in shapes]
        self.count = len(shapes)
        self.lengths = np.array([len(s) for s in shapes], np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.lengths)[:-1]])
        self.verts = np.concatenate(shapes)
        polys = [Polygon(s) for s in shapes]
        origin = shapely.Point(0.0, 0.0)
        # -inf when the centre lies outside the footprint: then no disk proves an overlap.
        self.r_in = np.array([p.exterior.distance(origin) if p.contains(origin) else -np.inf for p in polys])
        self.r_out = np.array([np.hypot(*s.T).max() for s in shapes])
        keys, extreme = [], []
        for t, p in enumerate(polys):
            hull = np.asarray(p.convex_hull.exterior.coords)[:-1]
            if shapely.Polygon(hull).exterior.is_ccw is False:
                hull = hull[::-1]
            edge = np.roll(hull, -1, axis=0) - hull  # edge j runs from vertex j to j + 1
            normal = np.arctan2(-edge[:, 0], edge[:, 1]) % (2 * np.pi)  # outward for CCW
            order = np.argsort(normal, kind="stable")
            ends = hull[(order + 1) % len(hull)]  # vertex extreme between normal[j] and the next
            keys += [t * 16 + normal[order[-1]] - 2 * np.pi, *(t * 16 + normal[order])]
            extreme += [ends[-1], *ends]
        self.keys, self.extreme = np.array(keys), np.array(extreme)

    def _support_vertex(self, ti, phi):
        idx = np.searchsorted(self.keys, ti * 16 + phi % (2 * np.pi), side="right") - 1
        return self.extreme[idx]

    def rotated_bounds(self, ti, angles, scales):
        """(n, 4) xmin, ymin, xmax, ymax of each template ``ti`` rotated by ``angles`` (degrees)
        and scaled about its centre, exactly as ``rotate`` transforms the vertices."""
        t = np.deg2rad(angles)
        c, s = np.cos(t) * scales, np.sin(t) * scales
        out = np.empty((len(ti), 4))
        for col, phi, fx, fy in (
            (0, np.pi - t, c, -s),
            (1, 1.5 * np.pi - t, s, c),
            (2, -t, c, -s),
            (3, 0.5 * np.pi - t, s, c),
        ):
            v = self._support_vertex(ti, phi)
            out[:, col] = fx * v[:, 0] + fy * v[:, 1]
        return out

    def candidates(self, ti, angles, scales, u, width, height):
        """Uniform in-canvas offsets of a block of attempts and which attempts fit at all."""
        b = self.rotated_bounds(ti, angles, scales)
        lo = -b[:, :2]
        hi = (width, height) - b[:, 2:]
        fits = np.all(hi >= lo, axis=1)
        return lo + u * (hi - lo), fits

    def polygons(self, ti, angles, scales, offsets, width, height):
        """shapely polygons of the given attempts: template exteriors rotated, scaled, placed."""
        lengths = self.lengths[ti]
        owner = np.repeat(np.arange(len(ti)), lengths)
        first = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        xy = self.verts[np.arange(lengths.sum()) - np.repeat(first - self.starts[ti], lengths)]
        t = np.deg2rad(angles)
        c, s = (np.cos(t) * scales)[owner], (np.sin(t) * scales)[owner]
        coords = np.empty_like(xy)
        coords[:, 0] = c * xy[:, 0] - s * xy[:, 1] + offsets[owner, 0]
        coords[:, 1] = s * xy[:, 0] + c * xy[:, 1] + offsets[owner, 1]
        # Rounding can push an extreme vertex a hair outside; clamp so "inside" holds exactly.
        np.minimum(np.maximum(coords, 0.0), (width, height), out=coords)
        return shapely.polygons(shapely.linearrings(coords, indices=owner))


def place_particles(
    shapes: Sequence[np.ndarray] | ShapeTable,
    class_ids: Sequence[int],
    width: int,
    height: int,
    rng: np.random.Generator,
    options: PlacementOptions = PlacementOptions(),
) -> list[PlacedParticle]:
    """Scatter rotated footprints on a ``width`` x ``height`` canvas without overlap.

    ``shapes[i]`` is template i's footprint exterior (k, 2) relative to the template centre (see
    ``Template.centred``); pass a ``ShapeTable(shapes)`` instead to reuse its set-up across canvases. Stops after ``options.max_particles`` particles or
    ``options.max_failures`` consecutive failed attempts (see the module docstring)."""
    table = shapes if isinstance(shapes, ShapeTable) else ShapeTable(shapes)
    if options.agglomerates:
        return place_agglomerates(table, class_ids, width, height, rng, options)
    gap = float(options.min_gap)
    jitter = options.scale_jitter
    containing = np.isfinite(table.r_in)  # templates whose centre lies inside their footprint
    r_in_min = float(table.r_in[containing].min()) * options.scale_bounds[0] if containing.any() else -np.inf
    # Pixels where an attempt's centre certainly overlaps (or comes within the gap of) a placed
    # particle: the inscribed disks of the two would meet. Checked for a whole block with one
    # lookup, before any polygon is built. Cells of DOOM_CELL px keep the disks cheap to draw; the
    # DOOM_MARGIN absorbs the cell size and rasterisation.
    doomed = np.zeros((-(-height // DOOM_CELL), -(-width // DOOM_CELL)), np.uint8)
    placed: list[PlacedParticle] = []
    polys: list[Polygon] = []
    placed_arrays = (np.empty((0, 2)), np.empty(0), np.empty(0))  # centres, r_in, r_out
    tree = None
    failures = 0
    while len(placed) < options.max_particles and failures < options.max_failures:
        # Long runs of failures mean a crowded canvas: draw bigger blocks to save per-block work.
        n = block_size(failures)
        ti = rng.integers(table.count, size=n)
        angles = rng.uniform(0.0, 360.0, size=n)
        scales = rng.uniform(1.0 - jitter, 1.0 + jitter, size=n) if jitter > 0 else np.ones(n)
        if options.log_size is not None:
            scales = log_normal_scales(rng, ti, options.log_size)
        if options.scale != 1.0:
            scales = scales * options.scale
        u = rng.random((n, 2))
        offsets, fits = table.candidates(ti, angles, scales, u, width, height)
        ix = np.minimum(np.maximum((offsets[:, 0] // DOOM_CELL).astype(np.int64), 0), doomed.shape[1] - 1)
        iy = np.minimum(np.maximum((offsets[:, 1] // DOOM_CELL).astype(np.int64), 0), doomed.shape[0] - 1)
        live = np.flatnonzero(fits & ~((doomed[iy, ix] != 0) & containing[ti]))
        if len(live):
            cands = table.polygons(ti[live], angles[live], scales[live], offsets[live], width, height)
            c_rin, c_rout = table.r_in[ti[live]] * scales[live], table.r_out[ti[live]] * scales[live]
            if tree is not None:
                ok = ~_blocked(cands, offsets[live], c_rin, c_rout, tree, placed_arrays, gap)
                live, cands, c_rin, c_rout = live[ok], cands[ok], c_rin[ok], c_rout[ok]
        fresh: list[tuple] = []  # (polygon, centre, r_in, r_out) accepted in this block, not yet in the tree
        last = -1
        if len(live):  # python scalars: cheaper than numpy ones in this loop
            off, c_rin, c_rout = offsets.tolist(), c_rin.tolist(), c_rout.tolist()
            ti_l, angles_l, scales_l = ti.tolist(), angles.tolist(), scales.tolist()
        for k, i in enumerate(live.tolist()):
            failures += i - last - 1  # the attempts between survivors all failed
            last = i
            if failures >= options.max_failures:
                failures = options.max_failures
                break
            centre = off[i]
            if fresh and _near_fresh(cands[k], centre, c_rin[k], c_rout[k], fresh, gap):
                failures += 1
                continue
            failures = 0
            fresh.append((cands[k], centre, c_rin[k], c_rout[k]))
            _doom(doomed, centre, c_rin[k] + r_in_min + gap)
            placed.append(
                PlacedParticle(
                    class_id=int(class_ids[ti_l[i]]),
                    template_index=ti_l[i],
                    angle_deg=angles_l[i],
                    scale=scales_l[i],
                    footprint=cands[k],
                    offset=(centre[0], centre[1]),
                )
            )
            if len(placed) >= options.max_particles:
                break
        else:
            failures = min(failures + n - last - 1, options.max_failures)
        if fresh:
            polys.extend(f[0] for f in fresh)
            tree = shapely.STRtree(polys)
            # the placed centres and radii as arrays for _blocked, extended rather than rebuilt
            # from the lists each block (which grew with the particle count)
            placed_arrays = (
                np.concatenate([placed_arrays[0], [f[1] for f in fresh]]),
                np.concatenate([placed_arrays[1], [f[2] for f in fresh]]),
                np.concatenate([placed_arrays[2], [f[3] for f in fresh]]),
            )
    return placed


def _doom(doomed: np.ndarray, centre, reach: float) -> None:
    """Mark the cells whose centres lie closer than ``reach`` px to ``centre`` (less the margin)."""
    radius = (reach - DOOM_MARGIN) / DOOM_CELL
    if radius >= 1:  # cell j's centre is at (j + 0.5) * DOOM_CELL px; cv2 puts it at j
        at = (round((centre[0] / DOOM_CELL - 0.5) * 16), round((centre[1] / DOOM_CELL - 0.5) * 16))
        cv2.circle(doomed, at, int(radius * 16), 1, -1, cv2.LINE_8, 4)


def block_size(failures: int) -> int:
    """Attempts per block: BATCH, growing with the current run of failures (up to 16x)."""
    return BATCH * min(16, 1 + failures // BATCH)


def _blocked(cands, offsets, c_rin, c_rout, tree, placed_arrays, gap) -> np.ndarray:
    """Which candidates overlap (or come within ``gap`` of) a particle in ``tree`` (whose centres,
    r_in and r_out are ``placed_arrays``): box query, then the disk bounds settle most pairs and
    GEOS decides only the rest."""
    centres, r_in, r_out = placed_arrays
    out = np.zeros(len(cands), bool)
    boxes = cands
    if gap > 0:  # bounding boxes grown by the gap
        boxes = shapely.box(*(shapely.bounds(cands) + (-gap, -gap, gap, gap)).T)
    a, b = tree.query(boxes)
    if not len(a):
        return out
    d = np.hypot(*(offsets[a] - centres[b]).T)
    p_rin, p_rout = r_in[b], r_out[b]
    sure = d - c_rin[a] - p_rin <= gap
    clear = d - c_rout[a] - p_rout > gap
    out[a[sure]] = True
    amb = ~sure & ~clear
    if amb.any():
        aa, bb = a[amb], b[amb]
        others = tree.geometries[bb]
        hit = shapely.dwithin(cands[aa], others, gap) if gap > 0 else shapely.intersects(cands[aa], others)
        out[aa[hit]] = True
    return out


def _near_fresh(poly, centre, rin, rout, fresh, gap: float) -> bool:
    """Whether ``poly`` overlaps (or comes within ``gap`` of) one of ``fresh``; disks first."""
    for other, c, orin, orout in fresh:
        d = math.hypot(centre[0] - c[0], centre[1] - c[1])
        if d - rin - orin <= gap:
            return True
        if d - rout - orout > gap:
            continue
        if (shapely.dwithin(poly, other, gap) if gap > 0 else shapely.intersects(poly, other)):
            return True
    return False


# --------------------------------------------------------------------------- agglomerates

SLIDE_TOL = 0.01  # px: a particle slid against its anchor ends this close to contact (or to the gap)
MIN_VISIBLE_PART = 1.0  # px^2: visible slivers smaller than this are not part of a label


def place_agglomerates(
    table: ShapeTable,
    class_ids: Sequence[int],
    width: int,
    height: int,
    rng: np.random.Generator,
    options: PlacementOptions,
) -> list[PlacedParticle]:
    """Sampler with clusters, contact and limited occlusion, one attempt at a time.

    An attempt draws a template, angle and scale as the plain sampler does. With probability
    ``cluster_prob`` (once a particle exists) it is then placed *against* a random placed particle,
    the anchor: from a random direction it is slid towards the anchor's centre (bisection) until
    it is just clear of it (within ``min_gap``, or in contact with ``touching``) or, when
    ``occlusion`` > 0, with probability 1/2 until it covers a fraction of the anchor drawn from
    [0, occlusion]. Otherwise its position is uniform, as in the plain sampler. Either way it is
    accepted only if it lies inside the canvas and, against every placed particle, it keeps the
    gap (``touching``: does not overlap; contact is fine) or, with ``occlusion``, covers at most
    ``occlusion`` of that particle's footprint area and not only its interior (no holes in labels).
    Later particles lie on top (render in list order); ``visible_particles`` gives the labels.
    Same stopping rule as ``place_particles``."""
    gap = 0.0 if options.touching else float(options.min_gap)
    jitter, occ = options.scale_jitter, options.occlusion
    verts = [table.verts[s : s + n] for s, n in zip(table.starts.tolist(), table.lengths.tolist())]
    table_r_in, table_r_out = table.r_in.tolist(), table.r_out.tolist()
    r_out_max = float(table.r_out.max()) * options.scale_bounds[1]
    grid = _Grid(max(8.0, 2.0 * r_out_max + gap))
    # Without occlusion, the plain sampler's raster of doomed centres (see place_particles) also
    # rejects most uniform attempts on a crowded canvas before any distance is computed.
    containing = np.isfinite(table.r_in)
    r_in_min = float(table.r_in[containing].min()) * options.scale_bounds[0] if containing.any() else -np.inf
    doomed = np.zeros((-(-height // DOOM_CELL), -(-width // DOOM_CELL)), np.uint8) if occ == 0 else None
    placed: list[PlacedParticle] = []
    polys: list[Polygon] = []
    coords: list[np.ndarray] = []  # their closed exteriors, (k + 1, 2)
    areas: list[float] = []
    centres: list[tuple[float, float]] = []
    r_in: list[float] = []
    r_out: list[float] = []
    failures = 0

    def conflicts(xy, bounds, centre, rin, rout) -> Polygon | None:
        """None if the footprint ``xy`` may not be placed, else its polygon (built only if needed)."""
        x0, y0, x1, y1 = bounds
        near = []
        for j in grid.query(x0 - gap, y0 - gap, x1 + gap, y1 + gap):
            d = math.hypot(centre[0] - centres[j][0], centre[1] - centres[j][1])
            if d - rout - r_out[j] > gap:
                continue
            if d - rin - r_in[j] < gap:  # inscribed disks meet: overlap for sure ...
                if occ == 0 or _lens_area(d, rin, r_in[j]) > occ * areas[j]:  # ... and too much of it
                    return None
            near.append(j)
        poly = _poly(xy)
        for j in near:  # the sure rejections above came first, so the exact tests run only for the rest
            if _conflict(poly, polys[j], areas[j], gap, options.touching, occ):
                return None
        return poly

    def doomed_slide(ax, ay, ux, uy, d_lo, d_hi, bounds, rin) -> bool:
        """Whether a particle (``bounds`` about its centre) slid to any distance in [d_lo, d_hi]
        from the anchor at (ax, ay) along (ux, uy) is sure to be rejected: outside the canvas at
        both ends on the same side, or with its inscribed disk in that of a placed particle at
        both ends (disks are convex: then all along)."""
        lx, ly, hx, hy = bounds
        ax, ay, bx, by = ax + d_lo * ux, ay + d_lo * uy, ax + d_hi * ux, ay + d_hi * uy
        if (ax + lx < 0 and bx + lx < 0) or (ay + ly < 0 and by + ly < 0):
            return True
        if (ax + hx > width and bx + hx > width) or (ay + hy > height and by + hy > height):
            return True
        if rin == -math.inf:
            return False
        x0, y0, x1, y1 = min(ax, bx) - r_out_max, min(ay, by) - r_out_max, max(ax, bx) + r_out_max, max(ay, by) + r_out_max
        for j in grid.query(x0, y0, x1, y1):
            reach = rin + r_in[j] + gap - 1e-6  # a margin for the rounding of the final centre
            cx, cy = centres[j]
            if math.hypot(ax - cx, ay - cy) < reach and math.hypot(bx - cx, by - cy) < reach:
                return True
        return False

    while len(placed) < options.max_particles and failures < options.max_failures:
        ti = int(rng.integers(table.count))
        angle = float(rng.uniform(0.0, 360.0))
        scale = (float(rng.uniform(1.0 - jitter, 1.0 + jitter)) if jitter > 0 else 1.0) * options.scale
        if options.log_size is not None:
            scale = float(log_normal_scales(rng, np.array([ti]), options.log_size)[0]) * options.scale
        u0, u1 = rng.random(2).tolist()
        # Scalar maths from here on (numpy's on two-element arrays costs more than it computes);
        # every number is the same as that of the vector expressions it replaces.
        t = math.radians(angle)  # linear_part(angle, scale)
        cs, sn = scale * math.cos(t), scale * math.sin(t)
        rel = verts[ti] @ np.array([[cs, sn], [-sn, cs]])
        lx, ly = rel.min(axis=0).tolist()
        hx, hy = rel.max(axis=0).tolist()
        rout = table_r_out[ti] * scale
        rin = table_r_in[ti] * scale  # -inf: centre outside the footprint
        if placed and rng.random() < options.cluster_prob:
            k = int(rng.integers(len(placed)))
            theta = rng.uniform(0.0, 2 * math.pi)
            cover = float(rng.uniform(0.0, occ)) if occ > 0 and rng.random() < 0.5 else 0.0
            ux, uy = math.cos(theta), math.sin(theta)
            ax, ay = centres[k]

            # d_hi: enclosing disks apart, certainly clear; d_lo: inscribed disks overlap, certainly not.
            d_lo = max(0.0, r_in[k] + rin + gap) if cover == 0 else 0.0
            d_hi = r_out[k] + rout + gap + SLIDE_TOL
            tol = SLIDE_TOL if cover == 0 else 0.25  # a drawn cover fraction needs no precise contact
            # Without a gap or a cover, a step's test is whether the interiors overlap: decided for
            # every distance at once (slide_overlaps), so the steps cost no polygons.
            spans = None
            if gap == 0 and cover == 0:
                if occ == 0 and doomed_slide(ax, ay, ux, uy, d_lo, d_hi, (lx, ly, hx, hy), rin):
                    failures += 1  # wherever the slide ends, the attempt fails: skip it
                    continue
                spans = slide_overlaps(np.vstack([rel, rel[:1]]) + (ax, ay), (ux, uy), coords[k], d_lo, d_hi)
                if spans is not None:
                    near = (spans[0] < d_hi) & (spans[1] > d_lo)  # only these can hold a step
                    spans = list(zip(spans[0][near].tolist(), spans[1][near].tolist()))
            while d_hi - d_lo > tol:
                mid = 0.5 * (d_lo + d_hi)
                if spans is not None:
                    hit = any(a < mid < b for a, b in spans)
                else:
                    xy = rel + (ax, ay) + mid * np.array((ux, uy))
                    hit = _conflict(_poly(xy), polys[k], areas[k], gap, options.touching, cover)
                if hit:
                    d_lo = mid
                else:
                    d_hi = mid
            cx, cy = ax + d_hi * ux, ay + d_hi * uy
        else:
            cx, cy = -lx + u0 * (width - hx + lx), -ly + u1 * (height - hy + ly)
            if doomed is not None and rin > -math.inf:
                ix = min(max(int(cx // DOOM_CELL), 0), doomed.shape[1] - 1)
                iy = min(max(int(cy // DOOM_CELL), 0), doomed.shape[0] - 1)
                if doomed[iy, ix]:
                    failures += 1
                    continue
        if cx + lx < 0 or cy + ly < 0 or cx + hx > width or cy + hy > height:
            failures += 1
            continue
        xy = rel + (cx, cy)
        c = (cx, cy)
        # the polygon's bounds, exactly: adding a constant keeps the order of the coordinates
        bounds = (lx + cx, ly + cy, hx + cx, hy + cy)
        poly = conflicts(xy, bounds, c, rin, rout)
        if poly is None:
            failures += 1
            continue
        failures = 0
        grid.add(len(polys), bounds)
        polys.append(poly)
        coords.append(np.vstack([xy, xy[:1]]))
        areas.append(poly.area)
        centres.append(c)
        r_in.append(rin)
        r_out.append(rout)
        if doomed is not None:
            _doom(doomed, c, rin + r_in_min + gap)
        placed.append(PlacedParticle(int(class_ids[ti]), ti, angle, scale, poly, c))
    return placed


def slide_overlaps(p: np.ndarray, u: np.ndarray, q: np.ndarray, t_lo: float, t_hi: float) -> tuple[np.ndarray, np.ndarray] | None:
    """(lo, hi): open intervals of t which, within [t_lo, t_hi], together make up the distances at
    which polygon ``p`` (closed exterior (k + 1, 2), last vertex = first) moved by t * ``u`` (a unit
    vector) and polygon ``q`` (closed too) have overlapping interiors, up to the t where they only
    touch (a finite set, where the answer may go either way); None in the degenerate case of a
    vertex's track through another vertex.

    Interiors overlap iff the outlines cross or one polygon contains the other. An edge of p and an
    edge of q cross for the t where t * u lies in the parallelogram of their differences (an
    interval; parallel edges can only touch); only pairs whose extents across the track overlap,
    and along it within [t_lo, t_hi], are solved. Containment holds where a vertex of p lies
    inside q or one of q inside p: on the spans between the pairs of crossings of its track with
    the other's outline (even-odd)."""
    ux, uy = float(u[0]), float(u[1])
    pa, pb = p[:-1], p[1:]
    qa, qb = q[:-1], q[1:]
    parts_lo, parts_hi = [], []
    with np.errstate(divide="ignore", invalid="ignore"):
        # extents across (n) and along (u) the track; moving p changes only the latter, by t
        pn, qn = p[:, 1] * ux - p[:, 0] * uy, q[:, 1] * ux - q[:, 0] * uy
        pu, qu = p[:, 0] * ux + p[:, 1] * uy, q[:, 0] * ux + q[:, 1] * uy
        pn_lo, pn_hi = np.minimum(pn[:-1], pn[1:]), np.maximum(pn[:-1], pn[1:])
        qn_lo, qn_hi = np.minimum(qn[:-1], qn[1:]), np.maximum(qn[:-1], qn[1:])
        pu_lo, pu_hi = np.minimum(pu[:-1], pu[1:]) + t_lo, np.maximum(pu[:-1], pu[1:]) + t_hi
        qu_lo, qu_hi = np.minimum(qu[:-1], qu[1:]), np.maximum(qu[:-1], qu[1:])
        near = (
            (pn_lo[:, None] <= qn_hi[None, :])
            & (pn_hi[:, None] >= qn_lo[None, :])
            & (pu_lo[:, None] <= qu_hi[None, :])
            & (pu_hi[:, None] >= qu_lo[None, :])
        )
        i, j = np.nonzero(near)
        if len(i):
            # t * u = o + lam * e1 + mu * e2 with lam, mu in [0, 1], by Cramer's rule per pair
            o = qa[j] - pa[i]
            e1 = qb[j] - qa[j]
            e2 = pa[i] - pb[i]
            inv = 1.0 / (e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])
            lo, hi = np.full(len(i), -np.inf), np.full(len(i), np.inf)
            for e, sign in ((e2, 1.0), (e1, -1.0)):
                # lam = cross(t u - o, e2) / det, mu = -cross(t u - o, e1) / det: alpha * t + beta
                alpha = sign * (ux * e[:, 1] - uy * e[:, 0]) * inv
                beta = -sign * (o[:, 0] * e[:, 1] - o[:, 1] * e[:, 0]) * inv
                a0, a1 = -beta / alpha, (1.0 - beta) / alpha
                still = alpha == 0  # constant along the track: always in (0, 1) or never
                never = still & ~((beta > 0) & (beta < 1))
                lo = np.maximum(lo, np.where(still, np.where(never, np.inf, -np.inf), np.minimum(a0, a1)))
                hi = np.minimum(hi, np.where(still, np.where(never, -np.inf, np.inf), np.maximum(a0, a1)))
            ok = lo < hi  # NaN (parallel edges: inv infinite) compares False
            parts_lo.append(lo[ok])
            parts_hi.append(hi[ok])
        for v, a, b, sign in ((p[0], qa, qb, 1.0), (q[0], pa, pb, -1.0)):
            ts = _track_crossings(v, sign * ux, sign * uy, a, b)
            if len(ts) % 2:  # the track passes exactly through a vertex: let GEOS decide instead
                return None
            parts_lo.append(ts[0::2])
            parts_hi.append(ts[1::2])
    return np.concatenate(parts_lo), np.concatenate(parts_hi)


def _track_crossings(v, ux: float, uy: float, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Sorted t at which the point v + t * (ux, uy) crosses the edges a[i] -> b[i] (each edge
    half-open, so a vertex on the track counts once). Call under np.errstate(divide/invalid)."""
    e = b - a
    w = a - v
    den = ux * e[:, 1] - uy * e[:, 0]
    t = (w[:, 0] * e[:, 1] - w[:, 1] * e[:, 0]) / den
    s = (w[:, 0] * uy - w[:, 1] * ux) / den
    return np.sort(t[(den != 0) & (s >= 0) & (s < 1)])


def _lens_area(d: float, r1: float, r2: float) -> float:
    """Area shared by two disks of radii r1, r2 whose centres are d apart."""
    if d >= r1 + r2:
        return 0.0
    if d <= abs(r1 - r2):
        return math.pi * min(r1, r2) ** 2
    a1 = r1 * r1 * math.acos((d * d + r1 * r1 - r2 * r2) / (2 * d * r1))
    a2 = r2 * r2 * math.acos((d * d + r2 * r2 - r1 * r1) / (2 * d * r2))
    return a1 + a2 - 0.5 * math.sqrt(max(0.0, (-d + r1 + r2) * (d + r1 - r2) * (d - r1 + r2) * (d + r1 + r2)))


def _poly(xy: np.ndarray) -> Polygon:
    return shapely.polygons(xy)


def _conflict(p: Polygon, q: Polygon, q_area: float, gap: float, touching: bool, occ: float) -> bool:
    """Whether a new footprint ``p`` may not lie next to / on top of the placed ``q``."""
    if not (shapely.dwithin(p, q, gap) if gap > 0 else shapely.intersects(p, q)):
        return False
    if not (touching or occ > 0):
        return True
    if not shapely.relate_pattern(p, q, "T********"):  # interiors apart: contact or a near miss
        return gap > 0
    if occ == 0:
        return True
    # Partial cover of q is allowed; a p inside q would leave a hole in q's label.
    return not (shapely.intersection(p, q).area <= occ * q_area and shapely.intersects(p, q.exterior))


class _Grid:
    """Uniform grid of bounding boxes: which placed footprints may be near a box."""

    def __init__(self, cell: float):
        self.cell, self.cells = cell, {}

    def _keys(self, x0, y0, x1, y1):
        c = self.cell
        for i in range(int(x0 // c), int(x1 // c) + 1):
            for j in range(int(y0 // c), int(y1 // c) + 1):
                yield i, j

    def add(self, index: int, bounds) -> None:
        for key in self._keys(*bounds):
            self.cells.setdefault(key, []).append(index)

    def query(self, x0, y0, x1, y1) -> list[int]:
        """Indices of the boxes sharing a cell with this box, in increasing order."""
        c, cells = self.cell, self.cells
        i0, i1, j0, j1 = int(x0 // c), int(x1 // c), int(y0 // c), int(y1 // c)
        if i0 == i1 and j0 == j1:  # one cell: its list is in the order of adding, increasing
            return list(cells.get((i0, j0), ()))
        found = set()
        for i in range(i0, i1 + 1):
            for j in range(j0, j1 + 1):
                found.update(cells.get((i, j), ()))
        return sorted(found)


def visible_particles(placed: Sequence[PlacedParticle], drop_occluded: float = 0.6) -> list[PlacedParticle]:
    """Labels of a stack rendered in list order: each particle with ``visible`` = its footprint
    minus the footprints of later particles (parts under ``MIN_VISIBLE_PART`` px^2 dropped), and
    without the particles hidden by more than ``drop_occluded`` of their area, as a labeller would
    leave them out. Unoccluded particles are returned unchanged."""
    if len(placed) < 2:
        return list(placed)
    geoms = np.array([p.footprint for p in placed], dtype=object)
    a, b = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    above: dict[int, list[int]] = {}
    for i, j in zip(a.tolist(), b.tolist()):
        if j > i:
            above.setdefault(i, []).append(j)
    out = []
    for i, p in enumerate(placed):
        if i not in above:
            out.append(p)
            continue
        rest = shapely.difference(p.footprint, shapely.union_all(geoms[above[i]]))
        parts = [g for g in shapely.get_parts(rest) if isinstance(g, Polygon) and g.area >= MIN_VISIBLE_PART]
        area = sum(g.area for g in parts)
        if area >= p.footprint.area * (1.0 - 1e-9):  # contact only
            out.append(p)
        elif parts and area >= (1.0 - drop_occluded) * p.footprint.area:
            vis = parts[0] if len(parts) == 1 else MultiPolygon(parts)
            out.append(PlacedParticle(p.class_id, p.template_index, p.angle_deg, p.scale, p.footprint, p.offset, vis))
    return out
