"""Procedural SEM-looking particle templates (Ag nanocubes, quasi-spheres) and the bundled patterns.

A particle is a signed distance function (rounded, truncated, elongated box; or a lumpy, possibly
faceted ellipsoid) ray-marched orthographically after a small tilt, then shaded like a secondary
electron image: brightness grows with the surface slope (secant law), edges glow (edge effect), one
side faces the detector. The result is downsampled (anti-aliasing), blurred, given shot and Gaussian
noise, and cut with a dark border margin. The alpha channel is the particle's footprint, slightly
dilated and feathered like the masks in real templates.

Randomness comes only from the `np.random.Generator` argument: same generator state, same pixels.
"""

from __future__ import annotations

import itertools
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from synthgen.atomic import staging_dir, swap_in_dir
from synthgen.errors import InputError
from synthgen.pattern import format_pattern, template_paths

KINDS: tuple[str, ...] = ("cube", "sphere")
SUPERSAMPLE = 3  # ray-march at 3x and area-average down: smooth outlines without aliasing
MARGIN_PX = 4  # dark border kept around the particle, in output pixels

# --------------------------------------------------------------------------- shape parameters

# Ranges a shape parameter is drawn from when the caller does not give it (uniform in [lo, hi]).
CUBE_RANGES: dict[str, tuple[float, float]] = {
    "rounding": (0.05, 0.3),  # corner/edge radius as a fraction of the half edge
    "truncation": (0.0, 0.25),  # corner cut, fraction of the half edge (1 = cuboctahedron)
    "aspect": (1.0, 1.15),  # second in-plane edge / first edge
    "depth": (0.9, 1.05),  # height / first edge
    "tilt_deg": (4.0, 22.0),  # view tilt, shows one or two side faces
    "tilt_azimuth_deg": (0.0, 360.0),
    "spin_deg": (0.0, 90.0),  # in-plane rotation of the cube about its own axis
}
SPHERE_RANGES: dict[str, tuple[float, float]] = {
    "ellipticity": (0.0, 0.12),  # 1 - minor/major radius
    "irregularity": (0.0, 0.05),  # amplitude of low-frequency outline bumps, fraction of radius
    # <= 0 smooth; (0, 1] a truncated octahedron (faceted quasi-sphere), corners trimmed less as
    # it grows. A range such as (-2, 1) makes a third of a pattern's spheres faceted.
    "faceting": (0.0, 0.0),
    "tilt_deg": (0.0, 30.0),
    "tilt_azimuth_deg": (0.0, 360.0),
    "spin_deg": (0.0, 180.0),
}
# Sphere parameters added after the bundled patterns p01-p08 were fixed. They are drawn after all the
# others, and only when their range is more than one value: the default (off) draws nothing, so
# older templates keep their random streams, and so their pixels.
SPHERE_LATE_RANGES: dict[str, tuple[float, float]] = {
    # <= 0: off (a smooth or `faceting` quasi-sphere). In (k - 1, k], k = 1..4: a polyhedral
    # quasi-sphere, POLYHEDRA[k - 1], randomly oriented but never seen with a square outline; the
    # fraction sets its truncation. It replaces `faceting`. (0, 4) draws the four alike.
    "polyhedron": (0.0, 0.0),
}
LOOK_RANGES: dict[str, tuple[float, float]] = {
    "face_level": (0.3, 0.47),  # brightness of a face seen head-on (0..1)
    "edge_gain": (0.6, 1.0),  # strength of the edge effect
    "detector_gain": (0.08, 0.25),  # brightness difference of faces towards/away from the detector
    "detector_azimuth_deg": (0.0, 360.0),
    "texture": (0.02, 0.06),  # surface mottling amplitude
    "background": (0.06, 0.16),  # dark substrate level
    "blur_px": (0.4, 0.8),  # Gaussian blur sigma of the beam/optics
    "dose": (80.0, 250.0),  # electrons per full-white pixel: shot noise is sqrt(dose)/dose
    "read_noise": (0.01, 0.03),  # additive Gaussian noise sigma
}


def sample_params(kind: str, rng: np.random.Generator, **fixed: float) -> dict[str, float]:
    """Draw every shape and look parameter not given in `fixed` (the albumentations get_params idea)."""
    if kind not in KINDS:
        raise ValueError(f"unknown template kind {kind!r}; expected one of {KINDS}")
    ranges = {**(CUBE_RANGES if kind == "cube" else SPHERE_RANGES), **LOOK_RANGES}
    if kind == "sphere":
        ranges["face_level"] = (0.38, 0.62)  # quasi-spheres often look brighter overall than cube faces
    late = SPHERE_LATE_RANGES if kind == "sphere" else {}
    unknown = set(fixed) - set(ranges) - set(late)
    if unknown:
        raise ValueError(f"unknown {kind} parameters: {sorted(unknown)}")
    # Draw all values in a fixed order even when some are fixed, so fixing one parameter does not
    # shift the others' random stream.
    drawn = {name: float(rng.uniform(lo, hi)) for name, (lo, hi) in ranges.items()}
    drawn.update({name: float(rng.uniform(lo, hi)) if hi > lo else float(lo) for name, (lo, hi) in late.items()})
    return {**drawn, **{k: float(v) for k, v in fixed.items()}}


# --------------------------------------------------------------------------- geometry (SDFs)


@dataclass(frozen=True)
class _Bumps:
    """A smooth random 3-D field: a few random plane waves (cheap stand-in for Perlin noise)."""

    k: np.ndarray  # (n, 3) wave vectors
    phase: np.ndarray  # (n,)
    amp: np.ndarray  # (n,)

    @classmethod
    def draw(cls, rng: np.random.Generator, n: int, wavelength: float, amplitude: float) -> _Bumps:
        dirs = rng.normal(size=(n, 3))
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        freq = 2 * np.pi / (wavelength * rng.uniform(0.7, 1.4, size=n))
        return cls(dirs * freq[:, None], rng.uniform(0, 2 * np.pi, n), amplitude * rng.uniform(0.5, 1.0, n) / np.sqrt(n))

    def __call__(self, p: np.ndarray) -> np.ndarray:
        return np.sin(p @ self.k.T + self.phase) @ self.amp


_FACET_DIRS = np.vstack(
    [np.eye(3), -np.eye(3), np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1])).reshape(3, -1).T / np.sqrt(3)]
)


# Polyhedral quasi-spheres: the shapes of faceted fcc nanoparticles (Ag, Au; TiO2 and other
# faceted oxides look alike in SEM). Each is a set of facet planes (unit normal, distance).
POLYHEDRA: tuple[str, ...] = ("cuboctahedron", "truncated octahedron", "icosahedron", "decahedron")
_PHI = (1 + np.sqrt(5)) / 2


def _polyhedron_planes(shape: int, u: float) -> np.ndarray:
    """Facet planes (n, 4) of POLYHEDRA[shape]; u in (0, 1] sets the truncation.

    Scaled so that the mean of the inradius and the circumradius is 1 (a "diameter" of 2).
    """
    if shape in (0, 1):
        # {100} planes at 1, {111} planes at t: t = 2/sqrt(3) is the cuboctahedron (square and
        # triangular facets), t = sqrt(3)/2 the truncated octahedron (squares and hexagons).
        t = 2 / np.sqrt(3) - 0.07 * u if shape == 0 else np.sqrt(3) / 2 + 0.09 * u
        planes = np.column_stack([_FACET_DIRS, np.r_[np.ones(6), np.full(8, t)]])
    elif shape == 2:
        # Icosahedron: 20 {111} facets, normals along the vertices of a dodecahedron.
        dirs = [np.array(c, float) for c in itertools.product([-1, 1], repeat=3)]
        for a, b in itertools.product([-1, 1], repeat=2):
            for k in range(3):
                d = np.zeros(3)
                d[(k + 1) % 3], d[(k + 2) % 3] = a / _PHI, b * _PHI
                dirs.append(d)
        normals = np.array(dirs) / np.linalg.norm(dirs, axis=1, keepdims=True)
        planes = np.column_stack([normals, np.ones(len(normals))])
    elif shape == 3:
        # Ino decahedron: five twinned tetrahedra around the 5-fold axis z (a pentagonal bipyramid
        # of ten {111} facets, stretched 1.3x along the axis as grown particles often are), its
        # equatorial corners cut by five {100} facets.
        h, rho = 0.5 * 1.3, 0.5 / np.tan(np.radians(36))  # apex height, pentagon inradius
        rows = []
        for k in range(5):
            phi = np.radians(72 * k)
            for sz in (1, -1):
                n = np.array([h * np.cos(phi), h * np.sin(phi), sz * rho])
                rows.append([*(n / np.linalg.norm(n)), rho * h / np.linalg.norm(n)])
            phi += np.radians(36)
            rows.append([np.cos(phi), np.sin(phi), 0.0, (0.75 + 0.1 * u) * rho / np.cos(np.radians(36))])
        planes = np.array(rows)
    else:
        raise ValueError(f"unknown polyhedron {shape}")
    radius = np.linalg.norm(_polyhedron_vertices(planes), axis=1).max()
    return planes * np.r_[1, 1, 1, 2 / (radius + planes[:, 3].min())]


def _polyhedron_vertices(planes: np.ndarray) -> np.ndarray:
    """Corners of the convex polyhedron {p: n.p <= d for every plane (n, d)}."""
    triples = np.array(list(itertools.combinations(range(len(planes)), 3)))
    a, d = planes[triples, :3], planes[triples, 3]
    ok = np.abs(np.linalg.det(a)) > 1e-9
    p = np.linalg.solve(a[ok], d[ok][..., None])[..., 0]
    inside = (p @ planes[:, :3].T <= planes[:, 3] + 1e-7).all(axis=1)
    return p[inside]


def outline_metrics(points: np.ndarray) -> tuple[float, int, float]:
    """(fill, sides, aspect) of the convex hull of 2-D points.

    fill: hull area / minimum-area rectangle (1 for a square or rectangle, 0.83 for a regular octagon,
    0.75 for a hexagon, 0.79 for a disc); sides: of the hull simplified to 1.5 % of its perimeter;
    aspect: long / short side of the rectangle.
    """
    pts = np.asarray(points, np.float64)
    pts = ((pts - pts.mean(axis=0)) * (1000 / max(np.ptp(pts, axis=0).max(), 1e-9))).astype(np.float32)
    hull = cv2.convexHull(pts)
    (_, _), (w, h), _ = cv2.minAreaRect(hull)
    sides = len(cv2.approxPolyDP(hull, 0.015 * cv2.arcLength(hull, True), True))
    return float(cv2.contourArea(hull) / max(w * h, 1e-9)), sides, float(max(w, h) / max(min(w, h), 1e-9))


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A rotation matrix uniform over all orientations (QR of a Gaussian matrix)."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _polyhedron(value: float, rng: np.random.Generator, view: np.ndarray) -> tuple[np.ndarray, float]:
    """Facet planes (n, 4) of a randomly oriented polyhedral quasi-sphere, and its circumradius.

    `value` in (0, len(POLYHEDRA)] picks the shape (see SPHERE_LATE_RANGES). Orientations whose
    outline, seen through the object -> view rotation `view`, looks like a square or rectangle
    (fill > 0.85, fewer than 6 sides, aspect > 1.3) are drawn again: that outline is a cube's.
    """
    shape = min(int(np.ceil(value)), len(POLYHEDRA)) - 1
    base = _polyhedron_planes(shape, value - shape)
    best, best_fill = None, np.inf
    for _ in range(40):
        orient = _random_rotation(rng)
        jitter = 1 + 0.025 * rng.standard_normal(len(base))  # facets of slightly unequal size
        planes = np.column_stack([base[:, :3] @ orient.T, base[:, 3] * jitter])
        verts = _polyhedron_vertices(planes)
        fill, sides, aspect = outline_metrics((verts @ view.T)[:, :2])
        if fill <= 0.85 and sides >= 6 and aspect <= 1.3:
            best = (planes, verts)
            break
        if fill < best_fill:
            best, best_fill = (planes, verts), fill
    planes, verts = best
    return planes, float(np.linalg.norm(verts, axis=1).max())


def _cube_sdf(half: np.ndarray, radius: float, truncation: float, bumps: _Bumps):
    """Rounded box of half extents `half`, corners cut by the octahedron |x|+|y|+|z| <= k."""
    inner = half - radius
    k = half.sum() - truncation * half.min()

    def sdf(p: np.ndarray) -> np.ndarray:
        a = np.abs(p)
        q = a - inner
        box = np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(axis=1), 0) - radius
        octa = (a.sum(axis=1) - k) / np.sqrt(3)
        return np.maximum(box, octa) + bumps(p)

    return sdf


def _sphere_sdf(radii: np.ndarray, planes: np.ndarray, bumps: _Bumps):
    """Lumpy ellipsoid (Quilez's distance bound) intersected with facet planes (n, 4): n.p <= d."""

    def sdf(p: np.ndarray) -> np.ndarray:
        k0 = np.linalg.norm(p / radii, axis=1)
        k1 = np.linalg.norm(p / radii**2, axis=1)
        d = k0 * (k0 - 1) / np.maximum(k1, 1e-9)
        if len(planes):
            d = np.maximum(d, (p @ planes[:, :3].T - planes[:, 3]).max(axis=1))
        return d + bumps(p)

    return sdf


def _rotation(tilt_deg: float, azimuth_deg: float, spin_deg: float) -> np.ndarray:
    """Object -> view rotation: spin about the object's z, then tilt about an in-plane axis."""
    s = np.radians(spin_deg)
    spin = np.array([[np.cos(s), -np.sin(s), 0], [np.sin(s), np.cos(s), 0], [0, 0, 1]])
    az, t = np.radians(azimuth_deg), np.radians(tilt_deg)
    axis = np.array([np.cos(az), np.sin(az), 0.0])
    kx = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    tilt = np.eye(3) + np.sin(t) * kx + (1 - np.cos(t)) * kx @ kx  # Rodrigues
    return tilt @ spin


def _raymarch(sdf, rot: np.ndarray, extent: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Orthographic sphere tracing along -z of the view over an n x n grid spanning +-extent.

    Returns (hit mask (n, n), view-space unit normals (n, n, 3)).
    """
    coords = (np.arange(n) + 0.5) / n * 2 * extent - extent
    u, v = np.meshgrid(coords, coords)
    origin_view = np.stack([u.ravel(), v.ravel(), np.full(u.size, extent)], axis=1)
    origin = origin_view @ rot  # view -> object is rot.T, applied to row vectors
    direction = np.array([0.0, 0.0, -1.0]) @ rot
    t = np.zeros(len(origin))
    hit = np.zeros(len(origin), bool)
    alive = np.ones(len(origin), bool)
    eps = extent * 2e-3
    for _ in range(96):
        idx = np.flatnonzero(alive)
        if idx.size == 0:
            break
        d = sdf(origin[idx] + t[idx, None] * direction)
        done = d < eps
        hit[idx[done]] = True
        t[idx] += np.where(done, 0.0, 0.8 * d)  # 0.8: the bump term makes the SDF only a bound
        alive[idx[done | (t[idx] > 2 * extent)]] = False
    normals = np.zeros((len(origin), 3))
    normals[:, 2] = 1.0
    idx = np.flatnonzero(hit)
    if idx.size:
        p = origin[idx] + t[idx, None] * direction
        h = extent * 1e-3
        grad = np.stack([sdf(p + h * e) - sdf(p - h * e) for e in np.eye(3)], axis=1)
        grad /= np.maximum(np.linalg.norm(grad, axis=1, keepdims=True), 1e-12)
        normals[idx] = grad @ rot.T  # object -> view
    return hit.reshape(n, n), normals.reshape(n, n, 3)


# --------------------------------------------------------------------------- shading


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Zero-mean, unit-std Gaussian-filtered white noise."""
    g = cv2.GaussianBlur(rng.standard_normal(shape), (0, 0), sigma)
    return g / max(float(g.std()), 1e-9)


def _shade(hit: np.ndarray, normals: np.ndarray, prm: dict[str, float], edge_sigma: float) -> np.ndarray:
    """Secondary-electron brightness of the hit pixels (0..~1.2); background is filled later."""
    cos = np.clip(normals[..., 2], 0.08, 1.0)
    slope = np.minimum(1.0 / cos - 1.0, 1.6)  # secant law, capped at grazing angles
    az = np.radians(prm["detector_azimuth_deg"])
    towards = normals[..., 0] * np.cos(az) + normals[..., 1] * np.sin(az)
    # Edge effect: where the normal turns quickly (face boundaries, silhouette) electrons escape
    # from two surfaces; a blurred normal-gradient magnitude marks those bands.
    gy, gx = np.gradient(normals, axis=(0, 1))
    turn = np.sqrt((gx**2 + gy**2).sum(axis=2))
    turn = cv2.GaussianBlur(turn, (0, 0), edge_sigma)
    turn = turn * edge_sigma / 0.5  # ~1 on a sharp 90-degree edge, whatever the blur width
    level = prm["face_level"] * (1 + 0.3 * slope) + prm["detector_gain"] * towards
    level = level + prm["edge_gain"] * np.clip(turn, 0, 1.0)
    level = 1.15 * np.tanh(level / 1.15)  # soft saturation of the detector
    return np.where(hit, level, 0.0)


def _finish(
    intensity: np.ndarray, coverage: np.ndarray, prm: dict[str, float], rng: np.random.Generator
) -> np.ndarray:
    """Background, blur, noise, footprint alpha, crop with margin -> (h, w, 4) uint8."""
    particle = coverage > 0.5
    ys, xs = np.nonzero(coverage > 0.02)
    y0, y1 = max(ys.min() - MARGIN_PX, 0), min(ys.max() + MARGIN_PX + 1, coverage.shape[0])
    x0, x1 = max(xs.min() - MARGIN_PX, 0), min(xs.max() + MARGIN_PX + 1, coverage.shape[1])
    shape = coverage.shape
    background = prm["background"] * (1 + 0.15 * _smooth_noise(rng, shape, 3.0))
    texture = 1 + prm["texture"] * _smooth_noise(rng, shape, 1.2)
    img = coverage * intensity * texture + (1 - coverage) * background
    img = cv2.GaussianBlur(img, (0, 0), prm["blur_px"])
    dose = prm["dose"]
    img = rng.poisson(np.clip(img, 0, None) * dose) / dose + rng.normal(0, prm["read_noise"], shape)
    # A slight blur after the noise: SEM noise is correlated along the scan, never pure per-pixel.
    img = cv2.GaussianBlur(img, (0, 0), 0.55)
    grey = np.clip(img * 255, 0, 255).round().astype(np.uint8)
    alpha = np.maximum(feather_alpha(particle), np.round(coverage * 255).astype(np.uint8))
    out = np.dstack([grey, grey, grey, alpha])[y0:y1, x0:x1]
    return np.ascontiguousarray(out)


def feather_alpha(mask: np.ndarray) -> np.ndarray:
    """Footprint alpha from a boolean mask: dilated by one pixel and feathered, like real templates."""
    grown = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8))
    alpha = np.clip(cv2.GaussianBlur(grown.astype(np.float64), (0, 0), 0.6) * 255, 0, 255)
    alpha = alpha.round().astype(np.uint8)
    alpha[alpha < 8] = 0  # no faint halo far from the particle
    alpha[mask.astype(bool)] = 255  # the particle itself stays fully opaque
    return alpha


def _thickness_level(hit: np.ndarray, prm: dict[str, float], edge_px: float) -> np.ndarray:
    """Mass-thickness (TEM/STEM) brightness of the hit pixels: grows with the particle's projected
    thickness, not its surface slope. Thickness is modelled from the distance d to the outline: a dome
    sqrt(1 - (1 - d/rho)^2) that reaches full thickness at d = rho (the inscribed radius for a
    quasi-sphere, the edge rounding for a cube: a flat-topped plateau). No edge glow, no detector side."""
    d = cv2.distanceTransform(hit.astype(np.uint8), cv2.DIST_L2, 5)
    rho = max(float(d.max()) if edge_px <= 0 else edge_px, 1.0)
    t = np.sqrt(np.clip(1 - (1 - np.minimum(d / rho, 1.0)) ** 2, 0, 1))
    level = prm["face_level"] * (0.35 + 0.65 * t) + 0.4 * prm["detector_gain"] * t
    return np.where(hit, level, 0.0)


def render_template(kind: str, rng: np.random.Generator, size_px: float, shading: str = "se", **params: float) -> np.ndarray:
    """One particle as an RGBA uint8 array (grey in RGB, footprint in alpha).

    `size_px` is the cube's edge (before tilt) or the sphere's diameter, in output pixels.
    Shape/look parameters not given are drawn from `rng` (see CUBE_RANGES, SPHERE_RANGES, LOOK_RANGES).
    `shading`: "se" (secondary-electron SEM look: slope, edge effect) or "thickness" (mass-thickness
    contrast of TEM and HAADF-STEM: bright in proportion to projected thickness, soft outline).
    """
    if shading not in ("se", "thickness"):
        raise ValueError(f"unknown shading {shading!r}; expected se or thickness")
    if not size_px >= 4:
        raise ValueError(f"size_px must be >= 4, got {size_px}")
    prm = sample_params(kind, rng, **params)
    s = SUPERSAMPLE
    half_edge = size_px * s / 2
    if kind == "cube":
        half = half_edge * np.array([1.0, prm["aspect"], prm["depth"]])
        radius = prm["rounding"] * half.min()
        bumps = _Bumps.draw(rng, 6, wavelength=half_edge * 0.8, amplitude=half_edge * 0.01)
        sdf = _cube_sdf(half, radius, prm["truncation"], bumps)
        extent = float(np.linalg.norm(half)) * 1.02
        edge_sigma = s * 0.6
    else:
        e, f = prm["ellipticity"], max(prm["faceting"], 0.0)
        polyhedral = prm["polyhedron"] > 0
        radii = half_edge * np.array([1.0, 1 - e * rng.uniform(0.6, 1.0), 1 - e * rng.uniform(0, 0.6)])
        # Faceted quasi-spheres (cuboctahedra, decahedra in SEM): the 14 planes of a truncated
        # octahedron, randomly oriented, cut a slightly larger ellipsoid; f = 0 leaves it smooth.
        facet_dirs = _FACET_DIRS @ _rotation(*rng.uniform(0, 360, 3)).T
        offsets = half_edge * (1 + 0.03 * rng.standard_normal(len(facet_dirs)))
        planes = np.zeros((0, 4))
        if polyhedral:
            # Random draws only here, after all the others: smooth and `faceting` spheres unchanged.
            view = _rotation(prm["tilt_deg"], prm["tilt_azimuth_deg"], prm["spin_deg"])
            planes, circumradius = _polyhedron(prm["polyhedron"], rng, view)
            planes[:, 3] *= half_edge
            # An ellipsoid just inside the corners rounds them, as on real particles.
            radii = radii * circumradius * rng.uniform(0.9, 0.97)
        elif f > 0:
            radii = radii * (1.2 + 0.15 * min(f, 1.0))  # >= 1.2: facets meet, no isolated flat "craters"
            planes = np.column_stack([facet_dirs, offsets])
        bumps = _Bumps.draw(rng, 8, wavelength=half_edge * 1.2, amplitude=half_edge * prm["irregularity"])
        sdf = _sphere_sdf(radii, planes, bumps)
        extent = float(radii.max()) * (1.05 + prm["irregularity"])
        edge_sigma = s * (0.9 if polyhedral else 1.3)  # sharper facet edges on polyhedra
    rot = _rotation(prm["tilt_deg"], prm["tilt_azimuth_deg"], prm["spin_deg"])
    pad = MARGIN_PX + 3  # output pixels of empty border before the final crop
    n_out = int(np.ceil(2 * extent / s)) + 2 * pad
    n = n_out * s
    hit, normals = _raymarch(sdf, rot, extent=n / 2, n=n)
    if shading == "thickness":  # drawn last: the SE templates keep their random streams
        level = _thickness_level(hit, prm, max(radius, s * 1.5) if kind == "cube" else 0.0)
    else:
        level = _shade(hit, normals, prm, edge_sigma)
    down = (n_out, n_out)
    intensity = cv2.resize(level, down, interpolation=cv2.INTER_AREA)
    coverage = cv2.resize(hit.astype(np.float64), down, interpolation=cv2.INTER_AREA)
    intensity = np.where(coverage > 0, intensity / np.maximum(coverage, 1e-9), 0.0)
    return _finish(intensity, coverage, prm, rng)


# --------------------------------------------------------------------------- bundled patterns


@dataclass(frozen=True)
class PatternSpec:
    """One bundled pattern: like one micrograph of Table 1 (López Gutiérrez et al. 2022)."""

    name: str
    resolution: tuple[int, int]
    n_cubes: int
    n_spheres: int
    size_px: tuple[float, float]  # particle size range at this resolution
    cube: dict[str, tuple[float, float]]  # overrides of CUBE_RANGES
    sphere: dict[str, tuple[float, float]]  # overrides of SPHERE_RANGES
    look: dict[str, tuple[float, float]]  # overrides of LOOK_RANGES
    # Sphere diameter / drawn size: > 1 gives quasi-spheres the footprint of the pattern's cubes
    # (a sphere of diameter d covers ~0.8 d squared, a slightly tilted cube of edge a ~1.2 a squared).
    sphere_scale: float = 1.0
    shading: str = "se"  # "thickness": TEM / HAADF-STEM mass-thickness contrast (see render_template)

    @property
    def n_templates(self) -> int:
        return self.n_cubes + self.n_spheres


_HI, _LO = (1280, 960), (640, 480)
PATTERN_SPECS: tuple[PatternSpec, ...] = (
    # Cubes only: sharp, then rounded, then truncated; one micrograph's particles look alike.
    PatternSpec("p01", _HI, 2, 0, (60, 72), {"rounding": (0.05, 0.1), "truncation": (0.0, 0.05)}, {}, {}),
    PatternSpec("p02", _LO, 4, 0, (24, 32), {"rounding": (0.2, 0.35)}, {}, {"blur_px": (0.6, 0.9)}),
    PatternSpec("p03", _HI, 6, 0, (44, 58), {"truncation": (0.2, 0.45), "rounding": (0.05, 0.15)}, {}, {}),
    # Cubes and quasi-spheres.
    PatternSpec("p04", _LO, 5, 5, (20, 30), {}, {}, {}),
    PatternSpec("p05", _HI, 12, 19, (44, 64), {}, {"faceting": (-2.0, 1.0)}, {}),
    PatternSpec("p06", _LO, 9, 8, (26, 38), {"rounding": (0.15, 0.4)}, {"ellipticity": (0.0, 0.2)}, {}),
    PatternSpec(
        "p07", _HI, 14, 15, (48, 78), {"tilt_deg": (10.0, 30.0)}, {"irregularity": (0.02, 0.08)},
        {"background": (0.1, 0.22), "dose": (25.0, 60.0)},
    ),
    # Cubes from many syntheses: the full range of rounding, truncation, elongation and tilt.
    PatternSpec(
        "p08", _HI, 57, 0, (40, 80),
        {"rounding": (0.03, 0.5), "truncation": (0.0, 0.5), "aspect": (1.0, 1.35), "tilt_deg": (0.0, 30.0)},
        {}, {"face_level": (0.3, 0.6), "dose": (25.0, 120.0)},
    ),
    # The hard class boundary: polyhedral quasi-spheres (cuboctahedra, truncated octahedra,
    # icosahedra, decahedra; 6-10 sided outlines, visible facets) beside rounded, truncated cubes of
    # the same size and brightness. Not in Table 1; large, then small particles.
    PatternSpec(
        "p09", _HI, 14, 18, (40, 90),
        {"rounding": (0.25, 0.5), "truncation": (0.2, 0.5), "tilt_deg": (0.0, 30.0)},
        {"polyhedron": (0.0, 4.0), "ellipticity": (0.0, 0.06), "irregularity": (0.0, 0.02)},
        {"face_level": (0.32, 0.55)}, sphere_scale=1.3,
    ),
    PatternSpec(
        "p10", _LO, 14, 18, (12, 24),
        {"rounding": (0.25, 0.5), "truncation": (0.2, 0.5), "tilt_deg": (0.0, 30.0)},
        {"polyhedron": (0.0, 4.0), "ellipticity": (0.0, 0.06), "irregularity": (0.0, 0.02)},
        {"face_level": (0.32, 0.55)}, sphere_scale=1.3,
    ),
    # Mass-thickness contrast (TEM, HAADF-STEM): not in Table 1. Small quasi-spheres of catalyst
    # frames (soft domes, bright on a dark support; dark on light after realism's inversion), then
    # cubes and quasi-spheres as a bright-field TEM shows them (flat-topped squares beside domes).
    PatternSpec(
        "p11", (1024, 1024), 4, 28, (10, 40), {"rounding": (0.1, 0.4), "tilt_deg": (0.0, 8.0)},
        {"ellipticity": (0.0, 0.25), "irregularity": (0.0, 0.1), "faceting": (-1.0, 1.0)},
        {"face_level": (0.35, 0.75), "texture": (0.04, 0.12), "background": (0.05, 0.3), "blur_px": (0.5, 1.2),
         "dose": (15.0, 120.0), "read_noise": (0.02, 0.06)}, shading="thickness",
    ),
    PatternSpec(
        "p12", _HI, 16, 16, (36, 90), {"rounding": (0.05, 0.4), "truncation": (0.0, 0.3), "tilt_deg": (0.0, 6.0)},
        {"ellipticity": (0.0, 0.15), "faceting": (-2.0, 1.0)},
        {"face_level": (0.4, 0.8), "texture": (0.02, 0.08), "background": (0.05, 0.25), "dose": (40.0, 200.0)},
        shading="thickness",
    ),
)


def _draw(ranges: dict[str, tuple[float, float]], rng: np.random.Generator) -> dict[str, float]:
    return {name: float(rng.uniform(lo, hi)) for name, (lo, hi) in ranges.items()}


def render_pattern_templates(spec: PatternSpec, seed: int, index: int) -> list[tuple[str, np.ndarray]]:
    """(class, RGBA template) for every template of one pattern; its own stream from (seed, index)."""
    out = []
    kinds = ["cube"] * spec.n_cubes + ["sphere"] * spec.n_spheres
    for j, kind in enumerate(kinds):
        rng = np.random.default_rng([seed, index, j])
        size = float(rng.uniform(*spec.size_px)) * (spec.sphere_scale if kind == "sphere" else 1.0)
        fixed = _draw({**(spec.cube if kind == "cube" else spec.sphere), **spec.look}, rng)
        out.append((kind, render_template(kind, rng, size, shading=spec.shading, **fixed)))
    return out


def write_png(path: Path, rgba: np.ndarray) -> None:
    """Save a template: grey+alpha PNG when R == G == B (half the bytes), else RGBA."""
    if (rgba[..., 0] == rgba[..., 1]).all() and (rgba[..., 1] == rgba[..., 2]).all():
        Image.fromarray(np.ascontiguousarray(rgba[..., [0, 3]]), "LA").save(path, optimize=True)
    else:
        Image.fromarray(rgba, "RGBA").save(path, optimize=True)


def pattern_text(spec: PatternSpec, classes: list[str], seed: int) -> str:
    """The pattern.txt of a bundled pattern, with a header saying how it was made."""
    comments = [
        f"bundled pattern {spec.name}: procedural SEM templates, made by",
        f"  synthgen render-templates --out patterns/ --seed {seed}",
        f"{classes.count('cube')} cube(s), {classes.count('sphere')} quasi-sphere(s); do not edit, regenerate",
    ]
    return format_pattern(comments, spec.resolution, list(zip(template_paths(len(classes)), classes)))


def render_pattern(spec: PatternSpec, seed: int, index: int, out_dir: Path) -> None:
    """Write `out_dir/pattern.txt` and `out_dir/templates/tNN.png` for one pattern (dir must exist)."""
    items = render_pattern_templates(spec, seed, index)
    (out_dir / "templates").mkdir(parents=True, exist_ok=True)
    for rel, (_, rgba) in zip(template_paths(len(items)), items):
        write_png(out_dir / rel, rgba)
    (out_dir / "pattern.txt").write_text(pattern_text(spec, [c for c, _ in items], seed))


def render_pattern_set(out_dir: str | Path, seed: int = 2022, specs=PATTERN_SPECS, progress=None) -> list[Path]:
    """Write the bundled patterns under `out_dir/pNN/`; returns the pattern files.

    Each pattern is built in a temporary folder beside its destination and swapped in with
    os.replace, so an interrupted run leaves every pNN either old or new, never half-written.
    Other files in `out_dir` (e.g. README.md) are left alone.
    """
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"--seed must be an integer >= 0 (got {seed!r})")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError("output exists and is not a folder", out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for i, spec in enumerate(specs):
        tmp = staging_dir(out_dir / spec.name)
        try:
            render_pattern(spec, seed, i + 1, tmp)
            swap_in_dir(tmp, out_dir / spec.name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        written.append(out_dir / spec.name / "pattern.txt")
        if progress is not None:
            progress(spec)
    return written
