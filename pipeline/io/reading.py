"""Reading images: FITS (astropy), TIFF (tifffile), PNG/JPEG (imageio), NPY (NumPy).

:func:`read_image` never writes to the input: FITS files are opened read-only (memory
mapped where possible, so only the chosen HDU/plane is read), NPY files are memory mapped
read-only, and the returned array is always a fresh, writeable, C-contiguous array in
native byte order that shares no memory with the file.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from pipeline.io.errors import ImageNotFoundError, ImageReadError, ImageTypeError
from pipeline.io.hashing import sha256_file
from pipeline.io.meta import ImageMeta, image_format

__all__ = ["read_image"]

_NUMERIC_KINDS = "biuf"  # bool, signed, unsigned, float; not complex, strings, objects


def read_image(
    path: str | os.PathLike[str],
    *,
    hdu: int | str | None = None,
    plane: int | None = None,
) -> tuple[np.ndarray, ImageMeta]:
    """Read one 2-D image (or one RGB image) and its metadata.

    Parameters
    ----------
    path:
        ``.fits/.fit/.fts`` (also ``.gz``, ``.fz``), ``.tif/.tiff``, ``.png``,
        ``.jpg/.jpeg`` or ``.npy``; the extension decides, case-insensitively.
    hdu:
        FITS only: HDU index or EXTNAME.  By default the first HDU with 2-D (or more)
        image data, so an empty primary HDU in a multi-extension file is skipped and
        tile-compressed (``CompImageHDU``) extensions work.
    plane:
        For 3-D data (a FITS cube, a multi-page TIFF, a 3-D NPY array): the index along
        the first (slowest) axis of the 2-D plane to return.  Required for such data;
        length-1 leading axes are dropped first, so ``(1, H, W)`` needs no ``plane``.

    Returns
    -------
    data, meta:
        ``data`` is 2-D, or ``(H, W, 3)`` for colour images (``meta.channel_axis == -1``;
        alpha is dropped).  Values are as decoded: astropy applies BZERO/BSCALE.

    Raises
    ------
    ImageNotFoundError
        (a ``FileNotFoundError``) the file does not exist.
    ImageTypeError
        (a ``TypeError``) the data is not real numeric (strings, objects, complex).
    ImageReadError
        (a ``ValueError``) any other problem: unknown extension, corrupt or truncated
        file, no image data, missing HDU, a cube without ``plane``, bad ``plane``.
    """
    path = Path(path)
    # What the path is comes before what its name says: a folder or a missing file
    # with no image extension is reported as such, not as an unknown extension.
    if not path.exists():
        raise ImageNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise ImageReadError(f"{path}: is a directory, not an image file")
    try:
        fmt = image_format(path)
    except ValueError as exc:
        raise ImageReadError(str(exc)) from None
    if hdu is not None and fmt != "fits":
        raise ImageReadError(f"{path}: hdu= applies only to FITS files, this is {fmt}")
    if plane is not None and (isinstance(plane, bool) or not isinstance(plane, (int, np.integer))):
        raise ImageReadError(f"{path}: plane must be an integer, got {plane!r}")

    try:
        digest = sha256_file(path)
        size = path.stat().st_size
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot read file: {exc.strerror or exc}") from exc

    reader = {"fits": _read_fits, "tiff": _read_tiff, "png": _read_picture,
              "jpeg": _read_picture, "npy": _read_npy}[fmt]
    try:
        data, fields = reader(path, hdu=hdu, plane=plane)
    except ImageReadError:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # decoders raise many types for corrupt input
        raise ImageReadError(f"{path}: cannot read {fmt} file ({_one_line(exc)})") from exc

    meta = ImageMeta(path=path, format=fmt, sha256=digest, shape=tuple(data.shape),
                     size_bytes=size, **fields)
    return data, meta


# --------------------------------------------------------------------------- helpers


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


def _check_numeric(path: Path, dtype: np.dtype) -> None:
    if dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None:
        raise ImageTypeError(f"{path}: data type {dtype} is not a real numeric image type")


def _detach(array: np.ndarray) -> np.ndarray:
    """A writeable, C-contiguous, native-byte-order ndarray owning its memory."""
    native = array.dtype.newbyteorder("=")
    if (type(array) is np.ndarray and array.dtype == native and array.dtype.isnative
            and array.flags.c_contiguous and array.flags.writeable and array.flags.owndata):
        return array
    out = np.empty(array.shape, dtype=native)
    out[...] = array
    return out


def _select_plane(path: Path, array: np.ndarray, plane: int | None, core_ndim: int,
                  axis_name: str) -> tuple[np.ndarray, int | None]:
    """Reduce ``array`` to its last ``core_ndim`` axes, picking ``plane`` if needed."""
    shape = tuple(array.shape)
    if array.ndim < core_ndim:
        raise ImageReadError(f"{path}: data has shape {shape}, not a 2-D image")
    if 0 in shape:
        raise ImageReadError(f"{path}: data has shape {shape}, an empty image")
    lead = array.shape[: array.ndim - core_ndim]
    # Drop length-1 leading axes (e.g. FITS (1, 1, H, W) radio-style cubes).
    while lead and lead[0] == 1 and len(lead) > 1:
        array, lead = array[0], lead[1:]
    if len(lead) == 1 and lead[0] == 1 and plane is None:
        return array[0], None
    if not lead:
        if plane is not None:
            raise ImageReadError(f"{path}: plane={plane} given but the image has shape {shape},"
                                 " which has no planes to choose from")
        return array, None
    if len(lead) > 1:
        raise ImageReadError(f"{path}: data has shape {shape}; only 2-D images and 3-D cubes"
                             " (after dropping length-1 axes) are supported")
    n = lead[0]
    if plane is None:
        raise ImageReadError(
            f"{path}: {axis_name} has shape {shape}, a stack of {n} planes; choose one with"
            f" plane=<0..{n - 1}> (command line: --plane)")
    index = int(plane)
    if not -n <= index < n:
        raise ImageReadError(f"{path}: plane={plane} is out of range for shape {shape}"
                             f" (valid: 0..{n - 1})")
    index %= n
    return array[index], index


# --------------------------------------------------------------------------- FITS


def _is_truncation(message: str) -> bool:
    lowered = message.lower()
    return "truncat" in lowered or "smaller than the expected size" in lowered


def _read_fits(path: Path, *, hdu: int | str | None, plane: int | None):
    from astropy.io import fits

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            # memmap=None: astropy memory-maps where it can (plain files, unscaled data)
            # and reads into memory otherwise (gzip, BZERO/BSCALE/BLANK); memmap=True would
            # refuse scaled data.  Only the chosen HDU/plane is then read.
            hdul = fits.open(path, mode="readonly", memmap=None, lazy_load_hdus=True)
        except OSError as exc:
            raise ImageReadError(f"{path}: not a valid FITS file ({_one_line(exc)})") from exc
        try:
            data, fields = _read_fits_hdul(path, hdul, hdu, plane, caught, fits)
        finally:
            hdul.close()
    notes = tuple(dict.fromkeys(" ".join(str(w.message).split()) for w in caught))
    for note in notes:
        if _is_truncation(note):
            raise ImageReadError(f"{path}: truncated FITS file ({note})")
    fields["warnings"] = notes
    return data, fields


def _describe_hdus(hdul) -> str:
    return ", ".join(f"{i}:{h.name or '-'} {type(h).__name__}" for i, h in enumerate(hdul))


def _read_fits_hdul(path, hdul, hdu, plane, caught, fits):
    image_types = (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)
    try:
        count = len(hdul)  # loads every header, surfacing truncation/corruption now
    except Exception as exc:
        raise ImageReadError(f"{path}: corrupt FITS file ({_one_line(exc)})") from exc
    for w in caught:
        if _is_truncation(str(w.message)):
            detail = " ".join(str(w.message).split())
            raise ImageReadError(f"{path}: truncated FITS file ({detail})")
    if count == 0:
        raise ImageReadError(f"{path}: FITS file has no HDUs")

    def is_image(h) -> bool:
        return isinstance(h, image_types) and not isinstance(h, fits.GroupsHDU)

    def ndim(h) -> int:
        try:
            return len(h.shape)
        except Exception:
            return 0

    if hdu is None:
        candidates = [i for i, h in enumerate(hdul) if is_image(h) and ndim(h) >= 2]
        if not candidates:
            raise ImageReadError(f"{path}: FITS file has no image data of 2 or more axes"
                                 f" (HDUs: {_describe_hdus(hdul)})")
        index = candidates[0]
    else:
        if isinstance(hdu, (bool, np.bool_)) or not isinstance(hdu, (int, np.integer, str)):
            raise ImageReadError(f"{path}: hdu must be an index or an EXTNAME, got {hdu!r}")
        if isinstance(hdu, str):
            try:
                index = hdul.index_of(hdu)
            except (KeyError, ValueError):
                raise ImageReadError(f"{path}: no HDU named {hdu!r}"
                                     f" (HDUs: {_describe_hdus(hdul)})") from None
        else:
            index = int(hdu)
            if not 0 <= index < count:
                raise ImageReadError(f"{path}: no HDU {index}; the file has {count}"
                                     f" (HDUs: {_describe_hdus(hdul)})")
        chosen = hdul[index]
        if not is_image(chosen):
            raise ImageReadError(f"{path}: HDU {hdu!r} is a {type(chosen).__name__},"
                                 f" not image data (HDUs: {_describe_hdus(hdul)})")
        if ndim(chosen) < 2:
            raise ImageReadError(f"{path}: HDU {hdu!r} holds no 2-D image data"
                                 f" (shape {tuple(chosen.shape)})")

    chosen = hdul[index]
    header = chosen.header.copy()
    bitpix = header.get("BITPIX")
    try:
        raw = chosen.data  # astropy applies BZERO/BSCALE here
        if raw is None:
            raise ImageReadError(f"{path}: HDU {index} has no data")
        for w in caught:
            if _is_truncation(str(w.message)):
                raise ImageReadError(
                    f"{path}: truncated FITS file ({' '.join(str(w.message).split())})")
        _check_numeric(path, raw.dtype)
        file_shape = tuple(raw.shape)
        selected, plane_index = _select_plane(path, raw, plane, 2, "FITS data")
        data = _detach(selected)  # forces the read while the file is open
    except ImageReadError:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # astropy fails lazily on short or garbled data
        raise ImageReadError(f"{path}: corrupt or truncated FITS data in HDU {index}"
                             f" ({_one_line(exc)})") from exc
    name = chosen.name or None
    return data, {
        "dtype": data.dtype,
        "header": header,
        "hdu": index,
        "hdu_name": name,
        "plane": plane_index,
        "channel_axis": None,
        "file_shape": file_shape,
        "bitpix": int(bitpix) if bitpix is not None else None,
    }


# --------------------------------------------------------------------------- TIFF


def _read_tiff(path: Path, *, hdu, plane):
    import tifffile

    with tifffile.TiffFile(path) as tif:
        if not tif.series:
            raise ImageReadError(f"{path}: TIFF file has no images")
        series = tif.series[0]
        axes = series.axes
        raw = series.asarray()
    _check_numeric(path, raw.dtype)
    file_shape = tuple(raw.shape)
    array, channel_axis, dropped = raw, None, False
    if axes.endswith("S") and array.ndim >= 3:
        samples = array.shape[-1]
        if samples in (3, 4):
            array, channel_axis, dropped = array[..., :3], -1, samples == 4
        elif samples in (1, 2):  # grey (+ alpha)
            array, dropped = array[..., 0], samples == 2
        else:
            raise ImageReadError(f"{path}: TIFF has {samples} samples per pixel;"
                                 " only grey, grey+alpha, RGB and RGBA are supported")
    core = 3 if channel_axis is not None else 2
    selected, plane_index = _select_plane(path, array, plane, core, "TIFF data")
    data = _detach(selected)
    return data, {"dtype": raw.dtype.newbyteorder("="), "plane": plane_index,
                  "channel_axis": channel_axis, "file_shape": file_shape,
                  "dropped_alpha": dropped}


# --------------------------------------------------------------------------- PNG / JPEG


def _read_picture(path: Path, *, hdu, plane):
    import imageio.v3 as iio

    # A CMYK JPEG decodes to four channels whose last is black, not alpha: converted
    # to RGB, its picture is what was printed.
    cmyk = iio.immeta(path, index=0, plugin="pillow").get("mode") == "CMYK"
    raw = np.asarray(iio.imread(path, index=0, plugin="pillow",
                                **({"mode": "RGB"} if cmyk else {})))
    _check_numeric(path, raw.dtype)
    file_shape = tuple(raw.shape)
    array, channel_axis, dropped = raw, None, False
    if array.ndim == 3:
        channels = array.shape[-1]
        if channels == 1:
            array = array[..., 0]
        elif channels == 2:
            array, dropped = array[..., 0], True
        elif channels in (3, 4):
            array, channel_axis, dropped = array[..., :3], -1, channels == 4
        else:
            raise ImageReadError(f"{path}: image has {channels} channels;"
                                 " only grey, grey+alpha, RGB and RGBA are supported")
    elif array.ndim != 2:
        raise ImageReadError(f"{path}: decoded image has shape {file_shape}, not a picture")
    if array.dtype == np.bool_:  # 1-bit PNG: black/white as 0/255
        array = array.astype(np.uint8) * np.uint8(255)
    core = 3 if channel_axis is not None else 2
    selected, plane_index = _select_plane(path, array, plane, core, "image data")
    data = _detach(selected)
    return data, {"dtype": raw.dtype, "plane": plane_index, "channel_axis": channel_axis,
                  "file_shape": file_shape, "dropped_alpha": dropped}


# --------------------------------------------------------------------------- NPY


def _read_npy(path: Path, *, hdu, plane):
    with open(path, "rb") as handle:
        magic = handle.read(6)
    if magic != b"\x93NUMPY":  # np.load would otherwise try (and refuse) to unpickle it
        raise ImageReadError(f"{path}: not an NPY file (no NPY header)")
    try:
        raw = np.load(path, allow_pickle=False, mmap_mode="r")
    except ValueError as exc:
        if "object" in str(exc).lower():
            raise ImageTypeError(f"{path}: NPY file holds Python objects, not numbers") from exc
        raise ImageReadError(f"{path}: not a valid NPY file ({_one_line(exc)})") from exc
    _check_numeric(path, raw.dtype)
    file_shape = tuple(raw.shape)
    # (H, W, 3) is read as colour, the layout write_image uses for RGB; any other 3-D
    # array is a stack of planes along the first axis.
    rgb = raw.ndim == 3 and raw.shape[-1] == 3 and raw.shape[0] != 3
    core = 3 if rgb else 2
    selected, plane_index = _select_plane(path, raw, plane, core, "NPY array")
    data = _detach(selected)
    del raw
    return data, {"dtype": data.dtype, "plane": plane_index,
                  "channel_axis": -1 if rgb else None, "file_shape": file_shape}
