"""Tests of pipeline.io: read_image / write_image round trips, headers/WCS, errors, safety.

Every test file is made here in tmp_path; nothing is read from ../shared.
"""

from __future__ import annotations

import ast
import hashlib
import os
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
from astropy.io import fits
from astropy.wcs import WCS

from pipeline.io import (
    ImageMeta,
    ImageNotFoundError,
    ImageReadError,
    ImageTypeError,
    ImageWriteError,
    atomic_write,
    fits_output_dtype,
    image_format,
    read_image,
    sha256_file,
    write_image,
)

RNG = np.random.default_rng(1234)
IO_DIR = Path(__file__).resolve().parents[1] / "pipeline" / "io"


def _image(shape=(24, 32), dtype=np.float32, scale=1000.0):
    values = RNG.random(shape) * scale
    return values.astype(dtype)


def _wcs(naxis1=32, naxis2=24) -> WCS:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.1, 2.2]
    w.wcs.crpix = [naxis1 / 2, naxis2 / 2]
    w.wcs.cdelt = [-0.0002, 0.0002]
    w.wcs.cunit = ["deg", "deg"]
    return w


def _input_header() -> fits.Header:
    header = _wcs().to_header()
    header["OBJECT"] = ("M 101", "target")
    header["EXPTIME"] = (30.0, "seconds")
    header["DATAMIN"] = 0.0
    header.add_history("taken on a dark night")
    return header


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_one_line_naming(excinfo, path: Path) -> None:
    message = str(excinfo.value)
    assert str(path) in message
    assert "\n" not in message


# ----------------------------------------------------------------------------- FITS


def test_fits_float32_round_trip_keeps_header_wcs_cards_and_history(tmp_path):
    src = tmp_path / "in.fits"
    data = _image()
    fits.PrimaryHDU(data, header=_input_header()).writeto(src)
    before = _digest(src)

    image, meta = read_image(src)
    assert isinstance(meta, ImageMeta)
    assert meta.format == "fits" and meta.hdu == 0 and meta.dtype == np.float32
    assert meta.bitpix == -32 and meta.channel_axis is None and meta.plane is None
    assert meta.sha256 == before == sha256_file(src)
    assert meta.header["OBJECT"] == "M 101"
    np.testing.assert_array_equal(image, data)
    assert image.dtype.isnative and image.flags.writeable and type(image) is np.ndarray

    out = tmp_path / "out" / "clean.fits"
    out.parent.mkdir()
    cards = {
        "DSSIGMA": (1.5, "diffusion sigma"),
        "DSITER": (np.int64(40), "iterations"),
        "destar.preset": ("default", "parameter preset"),  # > 8 chars: HIERARCH
        "DSFLAG": True,
    }
    history = ["destar 0.1.0: stars removed", "x" * 150]
    write_image(out, image * 0.5, meta=meta, header_cards=cards, history=history)

    with fits.open(out, checksum=True) as hdul:
        assert len(hdul) == 1
        header = hdul[0].header
        assert header["BITPIX"] == -32
        np.testing.assert_array_equal(hdul[0].data, data * np.float32(0.5))
        assert header["OBJECT"] == "M 101" and header["EXPTIME"] == 30.0
        assert header["DSSIGMA"] == 1.5 and header.comments["DSSIGMA"] == "diffusion sigma"
        assert header["DSITER"] == 40 and header["DSFLAG"] is True
        assert header["HIERARCH destar.preset"] == "default"
        assert "DATAMIN" not in header  # stale after processing
        assert "CHECKSUM" in header and "DATASUM" in header
        assert list(header.keys()).count("BITPIX") == 1
        lines = [str(line) for line in header["HISTORY"]]
        assert "taken on a dark night" in lines
        assert "destar 0.1.0: stars removed" in lines
        assert "".join(lines).count("x") == 150  # long HISTORY wraps, nothing lost
        out_wcs = WCS(header)

    in_wcs = WCS(meta.header)
    for x, y in [(0, 0), (31, 23), (10.5, 7.25)]:
        a, b = in_wcs.pixel_to_world(x, y), out_wcs.pixel_to_world(x, y)
        assert a.separation(b).arcsec < 1e-9
    assert _digest(src) == before  # input untouched by read and write


def test_fits_float64_written_as_bitpix_minus_64(tmp_path):
    src, out = tmp_path / "in.fit", tmp_path / "out.FITS"
    data = _image(dtype=np.float64)
    fits.PrimaryHDU(data).writeto(src)
    image, meta = read_image(src)
    assert meta.dtype == np.float64
    write_image(out, image, meta=meta)
    with fits.open(out) as hdul:
        assert hdul[0].header["BITPIX"] == -64
        np.testing.assert_array_equal(hdul[0].data, data)


def test_fits_uint16_with_bzero_reads_scaled_and_writes_float32(tmp_path):
    src, out = tmp_path / "in.fts", tmp_path / "out.fits"
    data = (RNG.random((20, 30)) * 65535).astype(np.uint16)
    data[0, 0], data[0, 1] = 0, 65535
    fits.PrimaryHDU(data).writeto(src)
    with fits.open(src, do_not_scale_image_data=True) as hdul:
        assert hdul[0].header["BITPIX"] == 16 and hdul[0].header["BZERO"] == 32768

    image, meta = read_image(src)
    assert meta.dtype == np.uint16 and meta.bitpix == 16
    np.testing.assert_array_equal(image, data)

    write_image(out, image.astype(np.float64) + 0.25, meta=meta)
    with fits.open(out) as hdul:
        header = hdul[0].header
        assert header["BITPIX"] == -32
        assert "BZERO" not in header and "BSCALE" not in header
        np.testing.assert_allclose(hdul[0].data, data + 0.25, rtol=1e-7)


def test_fits_int32_source_gets_float64(tmp_path):
    src, out = tmp_path / "in.fits", tmp_path / "out.fits"
    data = np.full((8, 9), 2**30 + 1, dtype=np.int32)
    fits.PrimaryHDU(data).writeto(src)
    image, meta = read_image(src)
    write_image(out, image, meta=meta)
    with fits.open(out) as hdul:
        assert hdul[0].header["BITPIX"] == -64
        assert hdul[0].data[0, 0] == 2**30 + 1


def _multi_extension(path: Path) -> tuple[np.ndarray, np.ndarray]:
    sci, err = _image(), _image(scale=1.0)
    header = _input_header()
    fits.HDUList([
        fits.PrimaryHDU(),
        fits.ImageHDU(sci, header=header, name="SCI"),
        fits.ImageHDU(err, name="ERR"),
        fits.BinTableHDU.from_columns([fits.Column(name="a", format="E", array=[1.0])],
                                      name="CAT"),
    ]).writeto(path)
    return sci, err


def test_multi_extension_empty_primary_and_extname_selection(tmp_path):
    src = tmp_path / "mef.fits"
    sci, err = _multi_extension(src)

    image, meta = read_image(src)
    assert meta.hdu == 1 and meta.hdu_name == "SCI"
    np.testing.assert_array_equal(image, sci)

    for selector in ("ERR", "err", 2):
        image, meta = read_image(src, hdu=selector)
        assert meta.hdu == 2 and meta.hdu_name == "ERR"
        np.testing.assert_array_equal(image, err)

    # The extension header (with XTENSION, PCOUNT, GCOUNT, EXTNAME) becomes a primary one.
    image, meta = read_image(src, hdu="SCI")
    out = tmp_path / "out.fits"
    write_image(out, image, meta=meta)
    with fits.open(out) as hdul:
        header = hdul[0].header
        assert header["SIMPLE"] is True and "XTENSION" not in header and "PCOUNT" not in header
        assert header["OBJECT"] == "M 101"
        sky_in = WCS(meta.header).pixel_to_world(3, 4)
        assert WCS(header).pixel_to_world(3, 4).separation(sky_in).arcsec < 1e-9


def test_compressed_image_hdu(tmp_path):
    src = tmp_path / "comp.fits"
    data = (RNG.random((40, 50)) * 3000).astype(np.int16)
    header = _input_header()
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, header=header, name="SCI")]
                 ).writeto(src)
    image, meta = read_image(src)
    assert meta.hdu == 1 and meta.hdu_name == "SCI" and meta.dtype == np.int16
    np.testing.assert_array_equal(image, data)  # Rice on integers is lossless

    out = tmp_path / "out.fits"
    write_image(out, image, meta=meta)
    with fits.open(out) as hdul:
        header = hdul[0].header
        assert header["BITPIX"] == -32
        assert not any(key.startswith(("ZIMAGE", "ZCMPTYPE", "ZBITPIX")) for key in header)
        np.testing.assert_array_equal(hdul[0].data, data.astype(np.float32))


def test_fits_gz_round_trip(tmp_path):
    src, out = tmp_path / "in.fits.gz", tmp_path / "out.FITS.GZ"
    data = _image()
    fits.PrimaryHDU(data).writeto(src)
    image, meta = read_image(src)
    np.testing.assert_array_equal(image, data)
    write_image(out, image, meta=meta)
    assert out.read_bytes()[:2] == b"\x1f\x8b"  # really gzip-compressed
    image2, meta2 = read_image(out)
    np.testing.assert_array_equal(image2, data)


def test_cube_requires_plane(tmp_path):
    src = tmp_path / "cube.fits"
    cube = _image((3, 10, 12))
    fits.PrimaryHDU(cube).writeto(src)

    with pytest.raises(ImageReadError) as excinfo:
        read_image(src)
    _assert_one_line_naming(excinfo, src)
    assert "(3, 10, 12)" in str(excinfo.value)
    assert "plane=" in str(excinfo.value) and "--plane" in str(excinfo.value)

    image, meta = read_image(src, plane=1)
    np.testing.assert_array_equal(image, cube[1])
    assert meta.plane == 1 and meta.file_shape == (3, 10, 12) and meta.shape == (10, 12)
    _, meta = read_image(src, plane=-1)
    assert meta.plane == 2

    with pytest.raises(ImageReadError, match="out of range"):
        read_image(src, plane=3)


def test_plane_of_a_cube_keeps_the_celestial_wcs(tmp_path):
    src, out = tmp_path / "cube.fits", tmp_path / "plane.fits"
    w = WCS(naxis=3)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN", "FREQ"]
    w.wcs.crval = [150.1, 2.2, 1.4e9]
    w.wcs.crpix = [6, 5, 1]
    w.wcs.cdelt = [-0.0002, 0.0002, 1e6]
    w.wcs.cunit = ["deg", "deg", "Hz"]
    header = w.to_header()
    assert header["WCSAXES"] == 3
    fits.PrimaryHDU(_image((3, 10, 12)), header=header).writeto(src)

    image, meta = read_image(src, plane=2)
    write_image(out, image, meta=meta)
    with fits.open(out) as hdul:
        header_out = hdul[0].header
        assert header_out["NAXIS"] == 2 and header_out["WCSAXES"] == 2
        assert "CTYPE3" not in header_out and "CRVAL3" not in header_out
        assert any("plane 2" in str(line) for line in header_out["HISTORY"])
        out_wcs = WCS(header_out)
    assert out_wcs.naxis == 2
    sky_in = WCS(meta.header).celestial.pixel_to_world(4, 7)
    assert out_wcs.pixel_to_world(4, 7).separation(sky_in).arcsec < 1e-9


def test_degenerate_axes_need_no_plane_and_plane_on_2d_is_refused(tmp_path):
    src = tmp_path / "deg.fits"
    data = _image((1, 1, 10, 12))
    fits.PrimaryHDU(data).writeto(src)
    image, meta = read_image(src)
    assert image.shape == (10, 12) and meta.plane is None
    np.testing.assert_array_equal(image, data[0, 0])

    flat = tmp_path / "flat.fits"
    fits.PrimaryHDU(_image()).writeto(flat)
    with pytest.raises(ImageReadError, match="plane=2"):
        read_image(flat, plane=2)


def test_returned_array_is_independent_of_the_file(tmp_path):
    src = tmp_path / "in.fits"
    data = _image()
    fits.PrimaryHDU(data).writeto(src)
    before = _digest(src)
    image, _ = read_image(src)
    image[:] = -1.0  # must not reach the file (no writeable memory map)
    again, _ = read_image(src)
    np.testing.assert_array_equal(again, data)
    assert _digest(src) == before


# ----------------------------------------------------------------------------- TIFF


def test_tiff_round_trip_float32_and_uint16_source(tmp_path):
    src, out = tmp_path / "in.tiff", tmp_path / "out.TIF"
    data = (RNG.random((20, 30)) * 65535).astype(np.uint16)
    tifffile.imwrite(src, data)
    image, meta = read_image(src)
    assert meta.format == "tiff" and meta.dtype == np.uint16 and meta.header is None
    np.testing.assert_array_equal(image, data)

    write_image(out, image + 0.5, meta=meta)
    written = tifffile.imread(out)
    assert written.dtype == np.float32
    np.testing.assert_array_equal(written, data.astype(np.float32) + 0.5)
    back, meta2 = read_image(out)
    assert meta2.dtype == np.float32
    np.testing.assert_array_equal(back, written)


def test_tiff_rgb_and_stack(tmp_path):
    rgb = (RNG.random((12, 14, 3)) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    image, meta = read_image(tmp_path / "rgb.tif")
    assert meta.channel_axis == -1 and image.shape == (12, 14, 3)
    np.testing.assert_array_equal(image, rgb)

    stack = _image((4, 10, 12))
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")
    with pytest.raises(ImageReadError, match="plane="):
        read_image(tmp_path / "stack.tif")
    image, meta = read_image(tmp_path / "stack.tif", plane=2)
    np.testing.assert_array_equal(image, stack[2])


# ----------------------------------------------------------------------------- PNG / JPEG


def test_png_grey_round_trip(tmp_path):
    src, out = tmp_path / "in.png", tmp_path / "out.png"
    data = (RNG.random((20, 30)) * 255).astype(np.uint8)
    iio.imwrite(src, data)
    image, meta = read_image(src)
    assert image.ndim == 2 and meta.channel_axis is None and meta.dtype == np.uint8
    np.testing.assert_array_equal(image, data)
    write_image(out, image, meta=meta)
    np.testing.assert_array_equal(iio.imread(out), data)


def test_png_rgb_and_rgba(tmp_path):
    rgb = (RNG.random((20, 30, 3)) * 255).astype(np.uint8)
    iio.imwrite(tmp_path / "rgb.png", rgb)
    image, meta = read_image(tmp_path / "rgb.png")
    assert image.shape == (20, 30, 3) and meta.channel_axis == -1 and not meta.dropped_alpha
    np.testing.assert_array_equal(image, rgb)
    write_image(tmp_path / "out.png", image, meta=meta)
    np.testing.assert_array_equal(iio.imread(tmp_path / "out.png"), rgb)

    rgba = np.dstack([rgb, np.full((20, 30), 128, np.uint8)])
    iio.imwrite(tmp_path / "rgba.PNG", rgba)
    image, meta = read_image(tmp_path / "rgba.PNG")
    assert image.shape == (20, 30, 3) and meta.dropped_alpha and meta.file_shape == (20, 30, 4)
    np.testing.assert_array_equal(image, rgb)


def test_a_cmyk_jpeg_is_read_as_rgb_not_as_rgba(tmp_path):
    """Its fourth channel is black, which the picture needs, not an alpha to drop."""
    from PIL import Image

    yy, xx = np.mgrid[0:32, 0:48]
    rgb = np.dstack([60 + 2 * xx + yy, 200 - 3 * xx, 40 + 4 * yy]).astype(np.uint8)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    image, meta = read_image(tmp_path / "cmyk.jpg")
    assert image.shape == (32, 48, 3) and meta.channel_axis == -1
    assert not meta.dropped_alpha
    assert np.abs(image.astype(int) - rgb).mean() < 4


def test_png_16_bit_source_stays_16_bit_and_floats_are_rounded_and_clipped(tmp_path):
    data = (RNG.random((10, 12)) * 65535).astype(np.uint16)
    iio.imwrite(tmp_path / "in16.png", data)
    image, meta = read_image(tmp_path / "in16.png")
    assert meta.dtype == np.uint16
    np.testing.assert_array_equal(image, data)
    write_image(tmp_path / "out16.png", image.astype(np.float32), meta=meta)
    written = iio.imread(tmp_path / "out16.png")
    assert written.dtype == np.uint16
    np.testing.assert_array_equal(written, data)

    floats = np.array([[-3.2, 12.4, 12.6], [254.6, 300.0, np.nan]], dtype=np.float64)
    write_image(tmp_path / "clip.png", floats)
    np.testing.assert_array_equal(iio.imread(tmp_path / "clip.png"),
                                  [[0, 12, 13], [255, 255, 0]])


def test_jpeg_grey_round_trip(tmp_path):
    src, out = tmp_path / "in.jpg", tmp_path / "out.jpeg"
    yy, xx = np.mgrid[0:32, 0:48]
    data = (60 + 2 * xx + yy).astype(np.uint8)  # smooth: JPEG keeps it closely
    iio.imwrite(src, data, quality=95)
    image, meta = read_image(src)
    assert meta.format == "jpeg" and image.ndim == 2 and meta.channel_axis is None
    assert np.abs(image.astype(int) - data).max() <= 4
    write_image(out, image, meta=meta)
    back, _ = read_image(out)
    assert back.shape == data.shape and np.abs(back.astype(int) - image).max() <= 4


# ----------------------------------------------------------------------------- NPY


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.uint16])
def test_npy_round_trip_exact(tmp_path, dtype):
    src, out = tmp_path / "in.npy", tmp_path / "out.NPY"
    data = _image(dtype=dtype)
    np.save(src, data)
    image, meta = read_image(src)
    assert meta.format == "npy" and meta.dtype == dtype
    np.testing.assert_array_equal(image, data)
    write_image(out, image, meta=meta)
    back = np.load(out)
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, data)


def test_npy_rgb_and_stack(tmp_path):
    rgb = _image((10, 12, 3))
    np.save(tmp_path / "rgb.npy", rgb)
    image, meta = read_image(tmp_path / "rgb.npy")
    assert meta.channel_axis == -1 and image.shape == (10, 12, 3)
    stack = _image((2, 10, 12))
    np.save(tmp_path / "stack.npy", stack)
    with pytest.raises(ImageReadError, match="plane="):
        read_image(tmp_path / "stack.npy")
    np.testing.assert_array_equal(read_image(tmp_path / "stack.npy", plane=1)[0], stack[1])


# ----------------------------------------------------------------------------- read errors


def test_missing_file(tmp_path):
    path = tmp_path / "nothere.fits"
    with pytest.raises(FileNotFoundError) as excinfo:
        read_image(path)
    assert isinstance(excinfo.value, ImageReadError)
    assert isinstance(excinfo.value, ImageNotFoundError)
    _assert_one_line_naming(excinfo, path)


def test_unknown_extension(tmp_path):
    path = tmp_path / "picture.bmp"
    path.write_bytes(b"BM" + bytes(100))
    with pytest.raises(ValueError) as excinfo:
        read_image(path)
    assert isinstance(excinfo.value, ImageReadError)
    _assert_one_line_naming(excinfo, path)
    assert "extension" in str(excinfo.value)


def _fits_bytes() -> bytes:
    import io

    buffer = io.BytesIO()
    fits.PrimaryHDU(_image((60, 80))).writeto(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("cut", ["half", "header_only", "inside_header", "empty", "random"])
def test_corrupt_or_truncated_fits(tmp_path, cut):
    raw = _fits_bytes()
    content = {
        "half": raw[: len(raw) // 2],
        "header_only": raw[:2880],
        "inside_header": raw[:1000],
        "empty": b"",
        "random": np.random.default_rng(7).bytes(6000),
    }[cut]
    path = tmp_path / f"{cut}.fits"
    path.write_bytes(content)
    with pytest.raises(ImageReadError) as excinfo:
        read_image(path)
    _assert_one_line_naming(excinfo, path)
    assert path.read_bytes() == content


def test_corrupt_tiff_and_png(tmp_path):
    for name in ("bad.tif", "bad.png", "bad.jpg", "bad.npy"):
        path = tmp_path / name
        path.write_bytes(np.random.default_rng(3).bytes(500))
        with pytest.raises(ImageReadError) as excinfo:
            read_image(path)
        assert not isinstance(excinfo.value, TypeError)  # corrupt, not "non-numeric"
        _assert_one_line_naming(excinfo, path)


def test_fits_without_image_data(tmp_path):
    table = tmp_path / "table.fits"
    fits.HDUList([
        fits.PrimaryHDU(),
        fits.BinTableHDU.from_columns([fits.Column(name="x", format="E", array=[1.0, 2.0])]),
    ]).writeto(table)
    with pytest.raises(ImageReadError, match="no image data") as excinfo:
        read_image(table)
    _assert_one_line_naming(excinfo, table)

    empty = tmp_path / "empty_primary.fits"
    fits.PrimaryHDU().writeto(empty)
    with pytest.raises(ImageReadError, match="no image data") as excinfo:
        read_image(empty)
    _assert_one_line_naming(excinfo, empty)


@pytest.mark.parametrize("selector", [7, "NOPE", 3, 0, -1])
def test_requested_hdu_missing_or_not_an_image(tmp_path, selector):
    path = tmp_path / "mef.fits"
    _multi_extension(path)  # 0 empty primary, 1 SCI, 2 ERR, 3 table CAT
    with pytest.raises(ImageReadError) as excinfo:
        read_image(path, hdu=selector)
    _assert_one_line_naming(excinfo, path)
    assert "HDU" in str(excinfo.value)


@pytest.mark.parametrize("kind", ["strings", "objects", "complex", "structured"])
def test_non_numeric_data(tmp_path, kind):
    path = tmp_path / f"{kind}.npy"
    if kind == "strings":
        np.save(path, np.array([["a", "b"], ["c", "d"]]))
    elif kind == "objects":
        np.save(path, np.array([[{}, None], [1, 2]], dtype=object), allow_pickle=True)
    elif kind == "complex":
        np.save(path, np.ones((3, 3), dtype=np.complex64))
    else:
        np.save(path, np.zeros((3, 3), dtype=[("a", "f4"), ("b", "i4")]))
    with pytest.raises(TypeError) as excinfo:
        read_image(path)
    assert isinstance(excinfo.value, ImageTypeError) and isinstance(excinfo.value, ImageReadError)
    _assert_one_line_naming(excinfo, path)


def test_hdu_argument_only_for_fits(tmp_path):
    path = tmp_path / "a.npy"
    np.save(path, _image())
    with pytest.raises(ImageReadError, match="hdu="):
        read_image(path, hdu=1)


# ----------------------------------------------------------------------------- write safety


def test_overwrite_refused_then_allowed(tmp_path):
    out = tmp_path / "out.fits"
    out.write_bytes(b"precious")
    with pytest.raises(FileExistsError) as excinfo:
        write_image(out, _image())
    _assert_one_line_naming(excinfo, out)
    assert out.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.fits"]

    write_image(out, _image(), overwrite=True)
    assert read_image(out)[0].shape == (24, 32)


def test_atomic_write_leaves_no_temp_files(tmp_path):
    data = _image()
    names = ["a.fits", "b.fits.gz", "c.tif", "d.png", "e.jpg", "f.npy"]
    for name in names:
        write_image(tmp_path / name, data if not name.endswith((".png", ".jpg")) else data / 4)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)
    mode = (tmp_path / "a.fits").stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask  # an ordinary new file, not mkstemp's 0600


def test_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    out = tmp_path / "out.tif"

    def broken_imwrite(path, *args, **kwargs):
        Path(path).write_bytes(b"II*\x00half written")
        raise RuntimeError("disk full")

    monkeypatch.setattr(tifffile, "imwrite", broken_imwrite)
    with pytest.raises(RuntimeError, match="disk full"):
        write_image(out, _image())
    assert list(tmp_path.iterdir()) == []

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "x.npy", lambda p: (_ for _ in ()).throw(RuntimeError()),
                     extension=".npy")
    assert list(tmp_path.iterdir()) == []


def test_write_refuses_to_overwrite_its_own_input(tmp_path):
    src = tmp_path / "in.fits"
    fits.PrimaryHDU(_image()).writeto(src)
    before = _digest(src)
    image, meta = read_image(src)
    with pytest.raises(ImageWriteError, match="input"):
        write_image(src, image, meta=meta, overwrite=True)
    assert _digest(src) == before


def test_input_bytes_unchanged_after_reading_and_writing_every_format(tmp_path):
    sources = {
        "in.fits": lambda p: fits.PrimaryHDU(_image(), header=_input_header()).writeto(p),
        "in.tif": lambda p: tifffile.imwrite(p, _image()),
        "in.png": lambda p: iio.imwrite(p, _image(dtype=np.uint8, scale=255)),
        "in.npy": lambda p: np.save(p, _image()),
    }
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    for name, make in sources.items():
        src = tmp_path / name
        make(src)
        before, mtime = _digest(src), src.stat().st_mtime_ns
        image, meta = read_image(src)
        assert meta.sha256 == before
        write_image(out_dir / name, image, meta=meta, history="processed")
        assert _digest(src) == before and src.stat().st_mtime_ns == mtime


# ----------------------------------------------------------------------------- header cards


def test_bad_header_cards_are_reported(tmp_path):
    out = tmp_path / "out.fits"
    with pytest.raises(ImageWriteError, match="BITPIX"):
        write_image(out, _image(), header_cards={"BITPIX": 8})
    with pytest.raises(ImageWriteError, match="DSNAN"):
        write_image(out, _image(), header_cards={"DSNAN": float("nan")})
    with pytest.raises(TypeError, match="DSLIST"):
        write_image(out, _image(), header_cards={"DSLIST": [1, 2]})
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_write_rejects_unknown_extension_and_bad_data(tmp_path):
    with pytest.raises(ValueError, match="extension"):
        write_image(tmp_path / "out.bmp", _image())
    with pytest.raises(TypeError):
        write_image(tmp_path / "out.fits", np.array([["a", "b"]]))
    with pytest.raises(ImageWriteError):
        write_image(tmp_path / "out.jpg", _image((5, 6, 4)))
    with pytest.raises(ImageWriteError, match="fpack"):
        write_image(tmp_path / "out.fits.fz", _image())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [(np.float32, np.float32), (np.uint8, np.float32), (np.int16, np.float32),
     (np.uint16, np.float32), (np.float64, np.float64), (np.int32, np.float64)],
)
def test_fits_output_dtype(source, expected):
    assert fits_output_dtype(source) == expected


def test_image_format_is_case_insensitive():
    assert image_format("A.FITS.GZ") == "fits"
    assert image_format("b.Tiff") == "tiff"
    assert image_format("c.JPEG") == "jpeg"
    with pytest.raises(ValueError):
        image_format("d.gz")


def test_io_layer_does_not_import_other_layers():
    forbidden = ("pipeline.core", "pipeline.tiling", "pipeline.cli")
    for source in IO_DIR.glob("*.py"):
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert not name.startswith(forbidden), f"{source.name} imports {name}"


def test_uint16_colour_to_8_bit_formats_is_scaled(tmp_path):
    rgb = np.zeros((6, 7, 3), dtype=np.uint16)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 65535, 32896, 0
    tifffile.imwrite(tmp_path / "in.tif", rgb, photometric="rgb")
    image, meta = read_image(tmp_path / "in.tif")
    with pytest.warns(UserWarning, match="16-bit colour PNG"):
        write_image(tmp_path / "out.png", image, meta=meta)
    written = iio.imread(tmp_path / "out.png")
    assert written.dtype == np.uint8
    np.testing.assert_array_equal(written[0, 0], [255, 128, 0])

    grey = np.full((16, 16), 65535, dtype=np.uint16)
    np.save(tmp_path / "grey.npy", grey)
    image, meta = read_image(tmp_path / "grey.npy")
    write_image(tmp_path / "out.jpg", image, meta=meta)
    assert read_image(tmp_path / "out.jpg")[0].min() >= 250  # scaled, not clipped to junk


def test_rgb_to_fits_puts_colours_on_the_third_axis(tmp_path):
    rgb = (RNG.random((8, 9, 3)) * 255).astype(np.uint8)
    iio.imwrite(tmp_path / "in.png", rgb)
    image, meta = read_image(tmp_path / "in.png")
    write_image(tmp_path / "out.fits", image, meta=meta)
    with fits.open(tmp_path / "out.fits") as hdul:
        assert hdul[0].data.shape == (3, 8, 9) and hdul[0].header["BITPIX"] == -32
        np.testing.assert_array_equal(hdul[0].data[1], rgb[..., 1])
