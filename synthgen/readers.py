"""Micrographs straight from the microscope: one reader for every command that takes images.

`read_micrograph(path)` returns the 8-bit array the network and the classical tools take, the pixel
size when the file records it, and the raw data (16-bit, float, heights) when the file holds more
than 8 bits. Formats and where the pixel size comes from:

- PNG, JPEG, BMP: no pixel size (the scale bar, `detector.scale_bar`, or ``--nm-per-px``).
- TIFF (tifffile): Zeiss SmartSEM tag 34118 (CZ_SEM ``AP_PIXEL_SIZE`` / ``AP_IMAGE_PIXEL_SIZE``),
  FEI/Thermo tags 34680/34682 (``[Scan] PixelWidth`` in metres), ImageJ's ``unit`` with the
  XResolution tag (pixels per unit).
- Gatan DM3/DM4 and EMD (Velox and Berkeley/NCEM), through rosettasciio: the image axes' scale.
- Height maps from STM/AFM: an ASCII matrix with a header (Gwyddion's "Export ASCII data matrix"
  with its ``# Width:`` and ``# Value units:`` lines, or WSxM's ``X Amplitude:``), Gwyddion ``.gwy``
  (gwyfile) and Nanonis ``.sxm`` (nanonispy2). Heights are kept in nm; the 8-bit image is Eq. 1 of
  Okunev et al. 2020: ``I = 255 (z - z_min) / (z_max - z_min)``, a linear map of the height range.

Data over 8 bits are mapped to 8 bits as microscope and export software would export them
(`to_network_image`; `Micrograph.mapping` records which way):

- non-negative integers (a 10-, 12-, 14- or 16-bit detector, stored in a 16-bit file unscaled) are given
  their *effective bit depth* k, the smallest of `DETECTOR_BITS` (8, 10, 12, ... bits) with max < 2^k.
  When the data use at least ``FULL_RANGE`` (half) of 0..2^k-1 between their 0.1 and 99.9 percentiles they
  are scaled linearly from the bit depth, v x 255 / (2^k - 1) (``bit-depth:k``): what vendor software writes
  as the 8-bit version (16-bit: value / 257; a 12-bit camera's v >> 4 to within one grey level);
- integer data that leave most of their bit depth unused (a black-level offset, a low gain) are scaled
  linearly from their min..max (``min-max``) by ImageJ's 8-bit conversion with its default display range
  (`imagej_to_uint8`, its formula and rounding); nothing is clipped;
- float data, negative values, and integer data whose min..max is set by a few outliers (their 0.1-99.9
  percentile span under ``OUTLIER_SPAN`` of min..max: hot or dead pixels) get the robust stretch
  (``percentile``): the values at the ``STRETCH_PERCENTILES`` (0.1 % and 99.9 %) become 0 and 255, linearly
  in between. At most 0.1 % of the pixels at each end are saturated by it, never more: the fraction
  actually clipped is kept in `Micrograph.clipped`.

A dim k-bit image whose maximum stays under 2^(k-2) is indistinguishable from (k-2)-bit data and is
scaled as such (brighter than its k-bit export).

8-bit data are passed through unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from synthgen.errors import InputError

RASTER_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
VENDOR_SUFFIXES = {".dm3", ".dm4", ".emd"}
HEIGHT_MAP_SUFFIXES = {".asc", ".gwy", ".sxm"}
TEXT_HEIGHT_MAP_SUFFIXES = {".asc", ".txt"}  # .txt only when its header says it is a height map
MICROGRAPH_SUFFIXES = RASTER_SUFFIXES | VENDOR_SUFFIXES | HEIGHT_MAP_SUFFIXES
STRETCH_PERCENTILES = (0.1, 99.9)
DETECTOR_BITS = tuple(range(8, 65, 2))  # ADC depths integer data are taken to have: 8, 10, 12, 14, 16 ... bits
FULL_RANGE = 0.5  # of the bit depth's range: data spanning it are scaled from the bit depth, else from min..max
OUTLIER_SPAN = 0.5  # percentile span / min..max span under which outliers set min..max: percentile stretch
SCALE_SOURCES = ("metadata", "scale-bar", "option", "none")

# length units as vendors spell them -> nm (µ: micro sign U+00B5 and Greek mu U+03BC; "u" and mojibake)
_NM_PER_UNIT = {"pm": 1e-3, "a": 0.1, "å": 0.1, "nm": 1.0, "um": 1e3, "µm": 1e3, "μm": 1e3, "âµm": 1e3, "micron": 1e3,
                "microns": 1e3, "mm": 1e6, "cm": 1e7, "m": 1e9}  # fmt: skip


def nm_per_unit(unit: str) -> float | None:
    """Nanometres in one `unit` (nm, µm, um, pm, Å, mm, m ...); None for an unknown unit."""
    return _NM_PER_UNIT.get(unit.strip().lower().replace("\u00c2", "â"))


@dataclass(frozen=True)
class Micrograph:
    """One image as read: `image` is uint8, (h, w) grey or (h, w, 3) BGR, what the network takes."""

    image: np.ndarray
    nm_per_px: float | None = None
    scale_source: str = "none"  # "metadata" when the file gave the pixel size
    vendor: str | None = None  # zeiss, fei, imagej, digitalmicrograph, emd, gwyddion-ascii, wsxm-ascii, gwy, sxm
    raw: np.ndarray | None = field(default=None, repr=False)  # the data before the 8-bit map, when over 8 bits
    heights_nm: np.ndarray | None = field(default=None, repr=False)  # height maps: height in nm per pixel
    stretch: tuple[float, float] | None = None  # data values mapped to 0 and 255
    clipped: float = 0.0  # fraction of pixels the stretch saturated
    mapping: str = "8-bit"  # how the 8-bit image was made: 8-bit, bit-depth:K, min-max, percentile, binary, eq1

    @property
    def size(self) -> tuple[int, int]:
        return int(self.image.shape[1]), int(self.image.shape[0])


# ------------------------------------------------------------------ pure mapping to 8 bits


def stretch_to_uint8(data: np.ndarray, percentiles: tuple[float, float] = STRETCH_PERCENTILES) -> tuple[np.ndarray, tuple[float, float], float]:
    """Data of any depth -> uint8 by the robust stretch (module docstring); also (lo, hi) and the
    fraction of pixels clipped. Non-finite values become 0. A flat image maps to 0."""
    a = np.asarray(data, np.float64)
    finite = np.isfinite(a)
    if not finite.any():
        return np.zeros(a.shape, np.uint8), (0.0, 0.0), 0.0
    lo, hi = (float(v) for v in np.percentile(a[finite], percentiles))
    if hi <= lo:  # a (nearly) flat image: the full range, or nothing to show
        lo, hi = float(a[finite].min()), float(a[finite].max())
    if hi <= lo:
        return np.zeros(a.shape, np.uint8), (lo, hi), 0.0
    scaled = (np.where(finite, a, lo) - lo) * (255.0 / (hi - lo))
    clipped = float(((scaled < -0.5) | (scaled > 255.5)).mean())  # saturated, not just rounded to 0 or 255
    return np.round(np.clip(scaled, 0, 255)).astype(np.uint8), (lo, hi), clipped


def okunev_eq1(heights: np.ndarray) -> np.ndarray:
    """Okunev et al. 2020, Eq. 1: heights -> 8-bit, I = 255 (z - z_min) / (z_max - z_min)."""
    z = np.asarray(heights, np.float64)
    finite = np.isfinite(z)
    if not finite.any():
        return np.zeros(z.shape, np.uint8)
    zmin, zmax = float(z[finite].min()), float(z[finite].max())
    if zmax <= zmin:
        return np.zeros(z.shape, np.uint8)
    return np.round((np.where(finite, z, zmin) - zmin) * (255.0 / (zmax - zmin))).astype(np.uint8)


def bit_depth(data: np.ndarray) -> int:
    """Effective bit depth of non-negative integer data: the smallest of `DETECTOR_BITS` with max < 2^k."""
    top = int(np.max(data)) if np.size(data) else 0
    return next((k for k in DETECTOR_BITS if top < 1 << k), DETECTOR_BITS[-1])


def linear_to_uint8(data: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """lo -> 0, hi -> 255, linearly, rounded; values outside (none for the callers here) clamp."""
    scaled = (np.asarray(data, np.float64) - lo) * (255.0 / (hi - lo))
    return np.round(np.clip(scaled, 0, 255)).astype(np.uint8)


def imagej_to_uint8(data: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """ImageJ's 8-bit conversion of integer data over the display range lo..hi (its TypeConverter):
    floor((v - lo) x 256 / (hi - lo + 1) + 0.5), clamped to 0..255. Its own rounding, not 255 / (hi - lo),
    because a grey level's difference can move what `--tile auto` decides."""
    scaled = np.floor(np.maximum(np.asarray(data, np.float64) - lo, 0) * (256.0 / (hi - lo + 1)) + 0.5)
    return np.minimum(scaled, 255).astype(np.uint8)


def integer_to_uint8(data: np.ndarray) -> tuple[np.ndarray, tuple[float, float], float, str]:
    """Non-negative integer data -> uint8 by the bit depth, min..max or percentile rule (module docstring);
    also the (lo, hi) mapped to 0 and 255, the fraction clipped and the rule's name."""
    a = np.asarray(data)
    k = bit_depth(a)
    top = float((1 << k) - 1)
    p_lo, p_hi = (float(v) for v in np.percentile(a, STRETCH_PERCENTILES))
    if p_hi - p_lo >= FULL_RANGE * top:  # uses its bit depth: scaled from it, as its export is
        return linear_to_uint8(a, 0.0, top), (0.0, top), 0.0, f"bit-depth:{k}"
    v_lo, v_hi = float(a.min()), float(a.max())
    if v_hi > v_lo and p_hi - p_lo >= OUTLIER_SPAN * (v_hi - v_lo):  # an offset or low gain: min..max, as ImageJ
        return imagej_to_uint8(a, v_lo, v_hi), (v_lo, v_hi), 0.0, "min-max"
    img, lohi, clipped = stretch_to_uint8(a)  # a few outliers would grey out a min..max map (or a flat image)
    return img, lohi, clipped, "percentile"


def to_network_image(data: np.ndarray, rgb: bool = False) -> tuple[np.ndarray, tuple[float, float] | None, float, str]:
    """uint8 grey (h, w) or BGR (h, w, 3) from decoded data, with the (lo, hi) mapped to 0 and 255, the
    fraction clipped and the mapping's name (module docstring); colour channels are mapped together.
    `rgb`: the channels are in RGB order (tifffile), else BGR (OpenCV)."""
    a = np.asarray(data)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim == 3:
        a = a[..., :3]
        if rgb:
            a = a[..., ::-1]
        if (a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all():
            a = a[..., 0]  # a grey image stored as colour
    if a.ndim not in (2, 3) or a.size == 0:
        raise ValueError(f"not a 2-D image (shape {a.shape})")
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a), None, 0.0, "8-bit"
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255, (0.0, 1.0), 0.0, "binary"
    if np.issubdtype(a.dtype, np.integer) and a.min() >= 0:  # int16/int32 of a detector too (DM files)
        img, lohi, clipped, how = integer_to_uint8(a)
        return np.ascontiguousarray(img), lohi, clipped, how
    img, lohi, clipped = stretch_to_uint8(a)
    return np.ascontiguousarray(img), lohi, clipped, "percentile"


# ------------------------------------------------------------------ pure metadata parsers


def zeiss_nm_per_px(sem: dict | None) -> float | None:
    """Pixel size in nm from tifffile's parsed CZ_SEM tag: {'ap_pixel_size': ('Pixel Size', 2.5, 'nm')}."""
    for key in ("ap_pixel_size", "ap_image_pixel_size"):
        item = (sem or {}).get(key)
        if isinstance(item, tuple) and len(item) >= 3 and isinstance(item[1], (int, float)):
            scale = nm_per_unit(str(item[2]))
            if scale and item[1] > 0:
                return float(item[1]) * scale
    return None


def fei_nm_per_px(fei: dict | None) -> float | None:
    """Pixel size in nm from tifffile's parsed FEI tag: [Scan] PixelWidth in metres (or [EScan], [Image])."""
    for section in ("Scan", "EScan", "Image"):
        value = ((fei or {}).get(section) or {}).get("PixelWidth")
        if isinstance(value, (int, float)) and value > 0:
            return float(value) * 1e9
    return None


def imagej_nm_per_px(imagej: dict | None, x_resolution) -> float | None:
    """Pixel size in nm from ImageJ's `unit` and the XResolution tag (pixels per unit, a rational)."""
    unit = (imagej or {}).get("unit")
    scale = nm_per_unit(str(unit)) if unit else None
    if not scale or not x_resolution:
        return None
    num, den = x_resolution if isinstance(x_resolution, tuple) else (x_resolution, 1)
    px_per_unit = num / den if den else 0
    return scale / px_per_unit if px_per_unit > 0 else None


_NUMBER = re.compile(r"^[\s,;]*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_KEY_VALUE = re.compile(r"^[#%\s]*([A-Za-z][\w ./()-]*?)\s*[:=]\s*(.*?)\s*$")
_QUANTITY = re.compile(r"^([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(\S+)?")


def _quantity_nm(value: str) -> float | None:
    """'1.000 µm' -> 1000.0 (nm); None when not a length."""
    m = _QUANTITY.match(value.strip())
    if not m or not m.group(2):
        return None
    scale = nm_per_unit(m.group(2))
    return float(m.group(1)) * scale if scale else None


def looks_like_height_map(head: str) -> bool:
    """A text file's first lines are a height-map header (Gwyddion ASCII '# Channel:'/'# Width:', WSxM)."""
    text = head.lstrip("\ufeff").lower()
    return text.startswith("wsxm") or bool(re.search(r"^#\s*(channel|width|height|value units)\s*:", text, re.M))


def parse_ascii_height_map(text: str, source: str | Path) -> tuple[np.ndarray, float | None, float]:
    """(heights, nm per px, nm per height unit) from an ASCII height matrix with a header.

    Header lines (``# Key: value`` or ``Key: value`` before the numbers) give the scan width
    (``Width``, ``X Amplitude``, ``X range``) and the unit of the values (``Value units``, ``Z units``, or
    the unit of ``Z Amplitude``; nm when none is given). Then one matrix row a line, numbers separated
    by blanks, tabs, commas or semicolons. InputError names the line of a malformed row."""
    header: dict[str, str] = {}
    rows: list[np.ndarray] = []
    for number, line in enumerate(text.lstrip("\ufeff").splitlines(), start=1):
        s = line.strip()
        if not s:
            continue
        if not rows and (s.startswith(("#", "%")) or not _NUMBER.match(s)):
            kv = _KEY_VALUE.match(s)
            if kv:
                header[kv.group(1).strip().lower()] = kv.group(2)
            continue
        try:
            values = np.array([float(v) for v in re.split(r"[\s,;]+", s) if v], np.float64)
        except ValueError:
            raise InputError(f"not a row of numbers: {s[:40]!r}", source, number) from None
        if rows and len(values) != len(rows[0]):
            raise InputError(f"row has {len(values)} values, the first row {len(rows[0])}", source, number)
        rows.append(values)
    if not rows or len(rows[0]) < 2 or len(rows) < 2:
        raise InputError("no height matrix (at least 2 x 2 numbers after the header)", source)
    heights = np.vstack(rows)
    width_nm = next((_quantity_nm(header[k]) for k in ("width", "x amplitude", "x range", "x length") if k in header), None)
    nm_per_px = width_nm / heights.shape[1] if width_nm else None
    unit = next((header[k].split()[0] for k in ("value units", "z units", "value unit") if header.get(k)), None)
    if unit is None and "z amplitude" in header:
        m = _QUANTITY.match(header["z amplitude"])
        unit = m.group(2) if m else None
    z_scale = nm_per_unit(unit) if unit else 1.0
    if z_scale is None:
        raise InputError(f"height unit {unit!r} is not a length (expected m, nm, µm, Å ...)", source)
    return heights, nm_per_px, z_scale


# ------------------------------------------------------------------ readers (disk)


def _from_data(data, nm_per_px, vendor, rgb=False, heights_nm=None) -> Micrograph:
    if heights_nm is not None:
        image, lohi, clipped = okunev_eq1(heights_nm), (float(np.nanmin(heights_nm)), float(np.nanmax(heights_nm))), 0.0
        raw, how = heights_nm, "eq1"
    else:
        image, lohi, clipped, how = to_network_image(data, rgb=rgb)
        raw = None if np.asarray(data).dtype == np.uint8 else np.asarray(data)
    source = "metadata" if nm_per_px else "none"
    return Micrograph(image, float(nm_per_px) if nm_per_px else None, source, vendor, raw, heights_nm, lohi, clipped, how)


def _read_tiff(path: Path) -> Micrograph:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        try:
            data = page.asarray()
        except ValueError:  # a compression tifffile cannot decode here: OpenCV's libtiff may
            import cv2

            data = cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_UNCHANGED)
            if data is None:
                raise
            if data.ndim == 3:
                data = data[..., ::-1]  # OpenCV's BGR(A) -> RGB(A), as tifffile gives
        if data.ndim == 3 and data.shape[0] in (3, 4) and data.shape[2] not in (3, 4):
            data = np.moveaxis(data, 0, -1)  # planar colour
        while data.ndim > 3 or (data.ndim == 3 and data.shape[2] not in (1, 3, 4)):
            data = data[0]  # a stack: its first frame
        nm, vendor = None, None
        for name, value in (("zeiss", zeiss_nm_per_px(tif.sem_metadata)), ("fei", fei_nm_per_px(tif.fei_metadata))):
            if value:
                nm, vendor = value, name
                break
        if nm is None and tif.is_imagej:
            nm = imagej_nm_per_px(tif.imagej_metadata, page.tags.valueof(282))
            vendor = "imagej" if nm else None
        rgb = page.photometric == tifffile.PHOTOMETRIC.RGB
    return _from_data(data, nm, vendor, rgb=rgb)


def _read_rsciio(path: Path) -> Micrograph:
    """DM3/DM4/EMD: the first 2-D image in the file; its axes' scale and units give the pixel size."""
    if path.suffix.lower() == ".emd":
        from rsciio.emd import file_reader
    else:
        from rsciio.digitalmicrograph import file_reader
    signals = file_reader(str(path))
    images = [s for s in signals if np.asarray(s["data"]).ndim == 2 or (np.asarray(s["data"]).ndim == 3 and np.asarray(s["data"]).shape[-1] in (3, 4))]
    if not images:
        raise InputError("no 2-D image in this file (spectra or stacks only)", path)
    sig = images[0]
    nm = None
    axes = [a for a in sig.get("axes", []) if a.get("navigate") is not True]
    if axes:
        x = axes[-1]
        scale = nm_per_unit(str(x.get("units") or ""))
        if scale and x.get("scale", 0) and float(x["scale"]) > 0 and x.get("units") not in ("", None):
            nm = float(x["scale"]) * scale
    vendor = "emd" if path.suffix.lower() == ".emd" else "digitalmicrograph"
    return _from_data(np.asarray(sig["data"]), nm, vendor)


def _read_text_height_map(path: Path) -> Micrograph:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", path) from None
    if not looks_like_height_map(text[:2000]):
        raise InputError("cannot read image (a .txt must be a height map with a Gwyddion '# Width:' or WSxM ASCII header)", path)
    heights, nm, z_scale = parse_ascii_height_map(text, path)
    vendor = "wsxm-ascii" if text.lstrip("\ufeff").lower().startswith("wsxm") else "gwyddion-ascii"
    return _from_data(None, nm, vendor, heights_nm=heights * z_scale)


def _read_gwy(path: Path) -> Micrograph:
    import gwyfile
    from gwyfile.util import get_datafields

    fields = get_datafields(gwyfile.load(str(path)))
    if not fields:
        raise InputError("no data field in this Gwyddion file", path)
    f = next(iter(fields.values()))
    xy = nm_per_unit(f["si_unit_xy"].unitstr if f.get("si_unit_xy") is not None else "m") or 1e9
    z = nm_per_unit(f["si_unit_z"].unitstr if f.get("si_unit_z") is not None else "m")
    data = np.asarray(f.data, np.float64)
    nm = float(f["xreal"]) * xy / data.shape[1] if f.get("xreal") else None
    return _from_data(None, nm, "gwy", heights_nm=data * (z or 1e9)) if z else _from_data(data, nm, "gwy")


def _read_sxm(path: Path) -> Micrograph:
    import nanonispy2 as nanonispy

    scan = nanonispy.read.Scan(str(path))
    if "Z" not in scan.signals:
        raise InputError("no Z (topography) channel in this Nanonis scan", path)
    z = np.asarray(scan.signals["Z"]["forward"], np.float64) * 1e9  # metres -> nm
    width_m = float(np.asarray(scan.header.get("scan_range", [0]))[0])
    return _from_data(None, width_m * 1e9 / z.shape[1] if width_m > 0 else None, "sxm", heights_nm=z)


def _read_raster(path: Path) -> Micrograph:
    import cv2

    data = cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_UNCHANGED)
    if data is None:
        raise InputError("cannot read image (corrupt, truncated or not an image)", path)
    return _from_data(data, None, None)


def is_micrograph_file(path: str | Path) -> bool:
    """A file `read_micrograph` takes: by suffix, and a .txt only when its header is a height map's."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in MICROGRAPH_SUFFIXES:
        return True
    if suffix == ".txt" and p.is_file():
        with p.open("r", encoding="utf-8", errors="replace") as f:
            return looks_like_height_map(f.read(2000))
    return False


def list_micrographs(folder: str | Path) -> list[Path]:
    """Micrograph files directly in `folder` (`is_micrograph_file`), sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and is_micrograph_file(p))


def read_micrograph(path: str | Path) -> Micrograph:
    """The micrograph at `path` (module docstring); InputError naming the file when it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such image", path)
    suffix = path.suffix.lower()
    try:
        if suffix in (".tif", ".tiff"):
            return _read_tiff(path)
        if suffix in VENDOR_SUFFIXES:
            return _read_rsciio(path)
        if suffix in TEXT_HEIGHT_MAP_SUFFIXES:
            return _read_text_height_map(path)
        if suffix == ".gwy":
            return _read_gwy(path)
        if suffix == ".sxm":
            return _read_sxm(path)
        return _read_raster(path)
    except InputError:
        raise
    except MemoryError:
        raise InputError("image too large to decode", path) from None
    except Exception as e:  # noqa: BLE001 - each reader package raises its own types for a corrupt file
        raise InputError(f"cannot read image (corrupt, truncated or not a {suffix} file: {type(e).__name__})", path) from None


def micrograph_size(path: str | Path) -> tuple[int, int]:
    """(width, height) without decoding when the header tells (PIL raster, TIFF), else by reading."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in RASTER_SUFFIXES - {".tif", ".tiff"}:
        from synthgen.formats import image_size

        return image_size(path)
    if suffix in (".tif", ".tiff"):
        try:
            import tifffile

            with tifffile.TiffFile(path) as tif:
                page = tif.pages.first
                return int(page.imagewidth), int(page.imagelength)
        except FileNotFoundError:
            raise InputError("no such image", path) from None
        except Exception:  # noqa: BLE001 - corrupt TIFF
            raise InputError("cannot read image (corrupt or not an image)", path) from None
    return read_micrograph(path).size


def is_8bit_raster(path: str | Path) -> bool:
    """An 8-bit PNG/JPEG/BMP/TIFF that any image library reads as the network sees it (no stretch)."""
    from PIL import Image, UnidentifiedImageError

    if Path(path).suffix.lower() not in RASTER_SUFFIXES:
        return False
    try:
        with Image.open(path) as im:
            return im.mode in ("1", "L", "P", "RGB", "RGBA", "LA", "PA")
    except (OSError, UnidentifiedImageError, ValueError, ImportError):
        return True  # unreadable: left to the caller's own error


def as_bgr(image: np.ndarray) -> np.ndarray:
    """uint8 grey or BGR -> BGR (h, w, 3), what ultralytics takes."""
    return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image


def as_gray(image: np.ndarray) -> np.ndarray:
    """uint8 grey or BGR -> grey (h, w) (OpenCV's luminance weights)."""
    if image.ndim == 2:
        return image
    import cv2

    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
