"""synthgen.readers on files the tests write: vendor TIFFs (tifffile), EMD (rosettasciio), ASCII and
Gwyddion height maps, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from synthgen.errors import InputError
from synthgen.readers import (
    STRETCH_PERCENTILES,
    bit_depth,
    is_micrograph_file,
    micrograph_size,
    okunev_eq1,
    parse_ascii_height_map,
    read_micrograph,
    stretch_to_uint8,
    to_network_image,
)

RNG = np.random.default_rng(12)
DATA16 = (RNG.random((48, 64)) * 60000 + 1000).astype(np.uint16)


def zeiss_tiff(path, data, pixel_line: str = "Pixel Size = 2.345 nm", key: str = "AP_PIXEL_SIZE"):
    """A TIFF with a Zeiss SmartSEM CZ_SEM tag (34118) as the microscope writes it (latin-1 bytes)."""
    text = f"0\n0\nAP_WD\nWD = 5.1 mm\n{key}\n{pixel_line}\nDP_DETECTOR_TYPE\nSignal A = InLens\n".encode("latin-1")
    tifffile.imwrite(path, data, extratags=[(34118, 1, len(text), text, True)])
    return path


def fei_tiff(path, data, pixel_width: str = "1.2345e-009"):
    """A TIFF with an FEI/Thermo metadata tag (34682), [Scan] PixelWidth in metres."""
    text = f"[User]\r\nDate=12/01/2020\r\n[Scan]\r\nPixelWidth={pixel_width}\r\nPixelHeight={pixel_width}\r\n"
    tifffile.imwrite(path, data, extratags=[(34682, "s", 0, text, True)])
    return path


def test_zeiss_tiff_pixel_size_and_16_bit(tmp_path):
    m = read_micrograph(zeiss_tiff(tmp_path / "z.tif", DATA16))
    assert (m.nm_per_px, m.scale_source, m.vendor) == (2.345, "metadata", "zeiss")
    assert m.image.dtype == np.uint8 and m.image.shape == DATA16.shape
    assert m.raw is not None and m.raw.dtype == np.uint16
    # it uses its range: scaled as its 8-bit export (value / 257), nothing clipped
    assert m.stretch == (0.0, 65535.0) and m.clipped == 0.0 and m.mapping == "bit-depth:16"
    assert np.array_equal(m.image, np.round(DATA16 / 257).astype(np.uint8))
    assert micrograph_size(tmp_path / "z.tif") == (64, 48)


def test_twelve_bit_data_in_16_bits_are_scaled_from_their_bit_depth(tmp_path):
    data = (DATA16 // 16).astype(np.uint16)  # a 12-bit detector: 0-4095 of 65535, stored unscaled
    tifffile.imwrite(tmp_path / "d.tif", data)
    m = read_micrograph(tmp_path / "d.tif")
    assert (m.mapping, m.stretch, m.clipped) == ("bit-depth:12", (0.0, 4095.0), 0.0)
    assert np.array_equal(m.image, np.round(data * (255 / 4095)).astype(np.uint8))


@pytest.mark.parametrize(("top", "k"), [(0, 8), (255, 8), (256, 10), (1023, 10), (4095, 12), (4096, 14), (16383, 14), (16384, 16), (65535, 16)])
def test_bit_depth_is_the_smallest_detector_depth_holding_the_max(top, k):
    assert bit_depth(np.array([[0, top]], np.uint16)) == k


def scene(draw_grey):
    """uint8 grey levels spanning at least 40..200 (two pixels at each end, so the 0.1/99.9 percentiles are
    those ends) and a dither below one grey level: the detail the wider data hold."""
    grey, lo, hi, dither = draw_grey
    g = np.clip(grey, lo, hi).astype(np.float64)
    g.flat[:2], g.flat[-2:] = lo, hi
    return g, g + dither


SCENES = st.integers(4, 24).flatmap(lambda n: st.tuples(
    arrays(np.uint8, (n, n)), st.integers(0, 40), st.integers(200, 255),
    arrays(np.float64, (n, n), elements=st.floats(-0.45, 0.45))))  # fmt: skip


@settings(max_examples=80, deadline=None)
@given(SCENES, st.sampled_from([10, 12, 14, 16]))
@example((np.full((4, 4), 255, np.uint8), 0, 255, np.full((4, 4), 0.45)), 12)  # the top level dithered up: clipped at 4095
def test_n_bit_data_in_16_bits_map_to_their_linear_export(draw, n):
    """An N-bit detector's data in a uint16 file give its 8-bit export as vendor software writes it
    (linear over the bit depth; for a camera, dropping the low bits) to within one grey level."""
    top = (1 << n) - 1
    _, g = scene(draw)
    v = np.clip(np.round(g * top / 255), 0, top).astype(np.uint16)
    img, lohi, clipped, how = to_network_image(v)
    assert (how, lohi, clipped) == (f"bit-depth:{n}", (0.0, float(top)), 0.0)
    for export in (np.round(v * (255 / top)), v >> (n - 8)):
        assert np.abs(img.astype(int) - export.astype(int)).max() <= 1
    assert np.abs(img.astype(int) - np.round(g)).max() <= 1  # and the scene's own grey levels


@settings(max_examples=60, deadline=None)
@given(SCENES, st.integers(2, 12), st.sampled_from([4, 16, 64]))
@example((np.zeros((4, 4), np.uint8), 0, 200, np.zeros((4, 4))), 2, 64)  # 32768 + 64 x 200: 16-bit with 80 % unused
def test_offset_data_map_to_imagej_min_max_export(draw, factor, gain):
    """Data that leave most of their bit depth unused (black level, low gain) give ImageJ's 8-bit
    conversion over min..max, floor((v - min) x 256 / (max - min + 1) + 0.5) clamped (ij TypeConverter)."""
    offset = factor * gain * 256  # at least twice the data's span: most of the bit depth unused
    assume(offset + gain * 256 <= 65535)
    _, g = scene(draw)
    v = np.round(g * gain + offset).astype(np.uint16)
    img, lohi, clipped, how = to_network_image(v)
    assert (how, lohi, clipped) == ("min-max", (float(v.min()), float(v.max())), 0.0)
    imagej = np.minimum(((v.astype(float) - v.min()) * (256 / (float(v.max()) - v.min() + 1)) + 0.5).astype(int), 255)
    assert np.array_equal(img, imagej)  # ImageJ's own rounding (a grey level can move --tile auto's choice)
    assert img.min() == 0 and img.max() == 255


def test_hot_pixels_get_the_percentile_stretch():
    data = (DATA16 // 64 + 3000).astype(np.uint16)  # 3015..3952: an offset 16-bit ... 12-bit range
    data.flat[7] = 60000  # one hot pixel sets max: a min..max map would grey the image out
    img, (lo, hi), clipped, how = to_network_image(data)
    assert how == "percentile" and hi < 5000 and 0 < clipped <= 2 * STRETCH_PERCENTILES[0] / 100 + 1 / data.size
    assert img.max() == 255 and np.percentile(img, 50) > 64


def test_float_and_signed_data_get_the_percentile_stretch():
    for data in (DATA16.astype(np.float32), DATA16.astype(np.int32) - 30000):
        assert to_network_image(data)[3] == "percentile"
    assert to_network_image(DATA16.astype(np.int16 if DATA16.max() < 32768 else np.int32))[3] == "bit-depth:16"


@pytest.mark.parametrize(("line", "key", "nm"), [
    ("Image Pixel Size = 1.562 \u00b5m", "AP_IMAGE_PIXEL_SIZE", 1562.0),
    ("Pixel Size = 856.3 pm", "AP_PIXEL_SIZE", 0.8563),
    ("Pixel Size = 0.04417 um", "AP_PIXEL_SIZE", 44.17),
])  # fmt: skip
def test_zeiss_units(tmp_path, line, key, nm):
    m = read_micrograph(zeiss_tiff(tmp_path / "z.tif", DATA16.astype(np.uint8), line, key))
    assert m.nm_per_px == pytest.approx(nm, rel=1e-4)  # the issue's target: 4 significant digits


def test_fei_tiff_pixel_size(tmp_path):
    m = read_micrograph(fei_tiff(tmp_path / "f.tif", DATA16))
    assert m.vendor == "fei" and m.nm_per_px == pytest.approx(1.2345, rel=1e-4)


def test_plain_and_imagej_tiffs(tmp_path):
    tifffile.imwrite(tmp_path / "plain.tif", DATA16)
    assert (read_micrograph(tmp_path / "plain.tif").nm_per_px, read_micrograph(tmp_path / "plain.tif").scale_source) == (None, "none")
    tifffile.imwrite(tmp_path / "ij.tif", DATA16, imagej=True, resolution=(2.0, 2.0), metadata={"unit": "nm"})
    m = read_micrograph(tmp_path / "ij.tif")
    assert (m.vendor, m.nm_per_px) == ("imagej", 0.5)


def test_rgb_tiff_is_bgr_and_grey_colour_is_grey(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = 200  # red
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    assert read_micrograph(tmp_path / "rgb.tif").image[0, 0].tolist() == [0, 0, 200]
    tifffile.imwrite(tmp_path / "grey.tif", np.repeat(DATA16[..., None] // 257, 3, 2).astype(np.uint8), photometric="rgb")
    assert read_micrograph(tmp_path / "grey.tif").image.ndim == 2


def test_eight_bit_passes_unchanged(tmp_path):
    import cv2

    img = (DATA16 // 257).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), img)
    m = read_micrograph(tmp_path / "a.png")
    assert np.array_equal(m.image, img) and m.raw is None and m.stretch is None


def test_emd_via_rosettasciio(tmp_path):
    from rsciio.emd import file_writer

    axes = [{"name": n, "size": s, "scale": 0.25, "offset": 0.0, "units": "nm", "navigate": False} for n, s in (("y", 48), ("x", 64))]
    file_writer(str(tmp_path / "s.emd"), {"data": DATA16.astype(np.float32), "axes": axes, "metadata": {"General": {"title": "t"}, "Signal": {}}, "original_metadata": {}})
    m = read_micrograph(tmp_path / "s.emd")
    assert (m.vendor, m.nm_per_px, m.image.shape) == ("emd", 0.25, (48, 64))


GWY_ASCII = """# Channel: Topography
# Width: 200.0 nm
# Height: 100.0 nm
# Value units: m
1e-9 2e-9 3e-9 4e-9
4e-9 3e-9 2e-9 1e-9
"""


def test_ascii_height_map_okunev_eq1(tmp_path):
    p = tmp_path / "stm.txt"
    p.write_text(GWY_ASCII)
    assert is_micrograph_file(p)
    m = read_micrograph(p)
    assert m.vendor == "gwyddion-ascii" and m.nm_per_px == pytest.approx(50.0)
    assert m.heights_nm == pytest.approx(np.array([[1, 2, 3, 4], [4, 3, 2, 1]], float))
    assert m.image.tolist() == [[0, 85, 170, 255], [255, 170, 85, 0]]  # Eq. 1: linear over the height range


def test_wsxm_ascii_header(tmp_path):
    text = "WSxM file copyright UAM\nWSxM ASCII Matrix file\nX Amplitude: 1 \u00b5m\nY Amplitude: 1 \u00b5m\nZ Amplitude: 3 nm\n\n0 1 2\n2 1 0\n"
    heights, nm, z = parse_ascii_height_map(text, "w.txt")
    assert heights.shape == (2, 3) and nm == pytest.approx(1000 / 3) and z == 1.0


def test_ascii_height_map_errors(tmp_path):
    with pytest.raises(InputError) as e:
        parse_ascii_height_map("# Width: 1 nm\n1 2 3\n1 2\n", "h.asc")
    assert str(e.value).startswith("h.asc:3:")
    with pytest.raises(InputError, match=r"h.asc:2: not a row of numbers"):
        parse_ascii_height_map("# Width: 1 nm\n1 2 x\n", "h.asc")
    labels = tmp_path / "labels.txt"
    labels.write_text("0 0.5 0.5 0.1 0.1\n")
    assert not is_micrograph_file(labels)  # YOLO label files are not height maps


def test_gwyddion_gwy(tmp_path):
    from gwyfile.objects import GwyContainer, GwyDataField, GwySIUnit

    c = GwyContainer()
    c["/0/data/title"] = "Height"
    z = RNG.random((32, 48)) * 2e-9
    c["/0/data"] = GwyDataField(z, xreal=96e-9, yreal=64e-9, si_unit_xy=GwySIUnit(unitstr="m"), si_unit_z=GwySIUnit(unitstr="m"))
    c.tofile(str(tmp_path / "h.gwy"))
    m = read_micrograph(tmp_path / "h.gwy")
    assert m.nm_per_px == pytest.approx(2.0) and m.heights_nm == pytest.approx(z * 1e9)


@pytest.mark.parametrize("name", ["bad.tif", "bad.png", "bad.emd", "bad.gwy", "bad.dm3", "bad.dm4", "bad.sxm", "bad.asc"])
def test_corrupt_files_are_input_errors(tmp_path, name):
    p = tmp_path / name
    p.write_bytes(b"not an image at all" * 10)
    with pytest.raises(InputError, match="cannot read image"):
        read_micrograph(p)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such image"):
        read_micrograph(tmp_path / "none.tif")


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(2, 12), st.integers(2, 12)), elements=st.floats(-1e6, 1e6)))
@example(np.array([[0.0, 1.0], [15.0, 15.0]]))  # float rounding put the top value a hair over 255: not clipped
def test_stretch_is_monotone_and_clips_only_the_tails(data):
    img, (lo, hi), clipped = stretch_to_uint8(data)
    order = np.argsort(data, axis=None)
    assert (np.diff(img.ravel()[order].astype(int)) >= 0).all()  # never reorders grey levels
    assert clipped <= 2 * STRETCH_PERCENTILES[0] / 100 + 2 / data.size  # percentile tails only


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(2, 8), st.integers(2, 8)), elements=st.floats(-100, 100)))
def test_eq1_spans_the_range(z):
    img = okunev_eq1(z)
    if np.ptp(z) > 0:
        assert img.min() == 0 and img.max() == 255
    else:
        assert (img == 0).all()


def nanonis_sxm(path, z_m: np.ndarray, range_m: float) -> None:
    """A minimal Nanonis .sxm scan: text header up to SCANIT_END, then big-endian float32 Z (both directions)."""
    ny, nx = z_m.shape
    header = (
        ":NANONIS_VERSION:\n2\n:SCAN_PIXELS:\n" f"{nx} {ny}\n:SCAN_RANGE:\n{range_m:e} {range_m * ny / nx:e}\n"
        ":SCAN_OFFSET:\n0 0\n:SCAN_TIME:\n1 1\n:BIAS:\n0.1\n:ACQ_TIME:\n60\n:SCAN_DIR:\nup\n"
        ":DATA_INFO:\n\tChannel\tName\tUnit\tDirection\tCalibration\tOffset\n\t14\tZ\tm\tboth\t1\t0\n\n:SCANIT_END:\n"
    )
    data = np.stack([z_m, z_m]).astype(">f4").tobytes()
    path.write_bytes(header.encode() + b"\n\n\x1a\x04" + data)


def test_nanonis_sxm(tmp_path):
    z = RNG.random((24, 32)) * 1e-9
    nanonis_sxm(tmp_path / "s.sxm", z, 64e-9)
    m = read_micrograph(tmp_path / "s.sxm")
    assert m.vendor == "sxm" and m.nm_per_px == pytest.approx(2.0)
    assert m.heights_nm == pytest.approx(z * 1e9, rel=1e-5)


def test_dm4_axes_through_rosettasciio(tmp_path, monkeypatch):
    """No DM writer exists and rosettasciio ships no sample files: its reader is stood in for by what it
    returns for a DM4 image (a list of signal dicts with calibrated axes), to test the pixel size we take."""
    import rsciio.digitalmicrograph as dm

    axes = [{"name": "y", "size": 48, "scale": 0.0125, "offset": 0.0, "units": "µm", "navigate": False},
            {"name": "x", "size": 64, "scale": 0.0125, "offset": 0.0, "units": "µm", "navigate": False}]  # fmt: skip
    monkeypatch.setattr(dm, "file_reader", lambda name: [{"data": DATA16.astype(np.float32), "axes": axes, "metadata": {}}])
    (tmp_path / "a.dm4").write_bytes(b"stand-in")
    m = read_micrograph(tmp_path / "a.dm4")
    assert (m.vendor, m.nm_per_px, m.image.shape, m.scale_source) == ("digitalmicrograph", 12.5, (48, 64), "metadata")
    axes[1]["units"] = "<undefined>"  # an uncalibrated image: no pixel size
    assert read_micrograph(tmp_path / "a.dm4").nm_per_px is None
