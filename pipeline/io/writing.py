"""Writing images, atomically, in the format the output extension names.

Precision by format
-------------------
- **FITS** is always floating point, never integer BITPIX (star-removed data is not
  integral): BITPIX -64 when the source was float64 or an integer type wider than 16
  bits (float32 cannot hold those exactly), else BITPIX -32 (float32 and <=16-bit
  integer sources).  The source is ``meta.dtype`` when ``meta`` is given, else
  ``data.dtype``.  Lossless for the diffusion output.
- **TIFF** float32 (float64 when the source was float64, for the same reason), lossless.
- **NPY** the array exactly as given.
- **PNG/JPEG** cannot hold floats: values are rounded, NaN becomes 0 and the result is
  clipped to the integer type's range (no rescaling).  PNG is 16-bit when the source was
  uint16 (grey; Pillow cannot write 16-bit colour PNG, so colour is reduced to 8 bits by
  /257 with a warning), otherwise 8-bit.  JPEG is always 8-bit, so a uint16 source is
  scaled by 255/65535 before rounding.  JPEG is also lossy (quality 95).  Use FITS, TIFF
  or NPY when the numbers matter.

FITS output carries the input header (and so its WCS) from ``meta.header``, minus the
structural keywords astropy regenerates and stale ones (DATAMIN/DATAMAX, BLANK, the
tile-compression keywords), then ``header_cards`` and ``history``.  Other formats have
no header: ``header_cards`` and ``history`` are ignored there.
"""

from __future__ import annotations

import gzip
import math
import os
import re
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.io.atomic import atomic_write
from pipeline.io.errors import ImageWriteError
from pipeline.io.meta import ImageMeta, _match_extension, image_format

__all__ = [
    "write_image",
    "fits_output_dtype",
    "clean_header",
    "drop_extra_wcs_axes",
    "STRUCTURAL_KEYWORDS",
]

#: Keywords dropped from the carried header: astropy writes the structural ones itself;
#: the rest would be wrong for the new data (range, integer BLANK, compression layout).
STRUCTURAL_KEYWORDS = re.compile(
    r"^(SIMPLE|BITPIX|NAXIS\d*|EXTEND|BZERO|BSCALE|BLANK|XTENSION|PCOUNT|GCOUNT|GROUPS"
    r"|CHECKSUM|DATASUM|DATAMIN|DATAMAX|INHERIT|END"
    r"|ZIMAGE|ZSIMPLE|ZBITPIX|ZNAXIS\d*|ZTILE\d+|ZCMPTYPE|ZNAME\d+|ZVAL\d+|ZQUANTIZ"
    r"|ZDITHER0|ZEXTEND|ZBLANK|ZSCALE|ZZERO|ZTENSION|ZPCOUNT|ZGCOUNT|ZHECKSUM|ZDATASUM"
    r"|ZBLOCKED|ZTHEAP|ZMASKCMP|TFIELDS|TTYPE\d+|TFORM\d+)$"
)

_STANDARD_KEYWORD = re.compile(r"^[A-Z0-9_-]{1,8}$")

# WCS keywords that mention axis ``n`` (primary or alternate, e.g. CTYPE3 / CTYPE3A).
_AXIS_KEY = r"(?:(?:CTYPE|CRVAL|CRPIX|CDELT|CUNIT|CROTA|CRDER|CSYER|CNAME){n}"
_AXIS_KEY += r"|(?:PC|CD|PV|PS){n}_\d+|(?:PC|CD){m}_{n})[A-Z]?"


def drop_extra_wcs_axes(header, naxis: int = 2) -> list[str]:
    """Remove WCS keywords of axes beyond ``naxis`` (in place); return the removed keys.

    Used when one plane of a cube is written as a 2-D image: the spectral/Stokes axis
    keywords would otherwise make the output WCS 3-D.  WCSAXES is lowered to match.
    """
    removed = []
    for key in list(dict.fromkeys(header.keys())):
        upper = key.upper()
        for axis in range(naxis + 1, 10):
            pattern = _AXIS_KEY.format(n=axis, m=r"\d+")
            if re.fullmatch(pattern, upper):
                header.remove(key, ignore_missing=True, remove_all=True)
                removed.append(key)
                break
    for key in [k for k in header.keys() if re.fullmatch(r"WCSAXES[A-Z]?", k.upper())]:
        if isinstance(header[key], int) and header[key] > naxis:
            header[key] = naxis
    return removed

CardValue = Any  # str | int | float | bool | None, or numpy scalars of those


def fits_output_dtype(source: np.dtype | type) -> np.dtype:
    """float64 for float64 / >16-bit integer sources, float32 otherwise (see module doc)."""
    source = np.dtype(source)
    if source.kind == "f":
        return np.dtype(np.float64) if source.itemsize >= 8 else np.dtype(np.float32)
    if source.kind in "iu" and source.itemsize > 2:
        return np.dtype(np.float64)
    return np.dtype(np.float32)


def clean_header(header) -> Any:
    """A copy of ``header`` without :data:`STRUCTURAL_KEYWORDS`."""
    from astropy.io import fits

    out = fits.Header() if header is None else header.copy(strip=False)
    for key in list(dict.fromkeys(out.keys())):
        if STRUCTURAL_KEYWORDS.match(key.upper()):
            out.remove(key, ignore_missing=True, remove_all=True)
    return out


def write_image(
    path: str | os.PathLike[str],
    data: np.ndarray,
    *,
    meta: ImageMeta | None = None,
    header_cards: Mapping[str, CardValue | tuple[CardValue, str]] | None = None,
    history: str | Iterable[str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``data`` to ``path`` (format from the extension), atomically.

    Parameters
    ----------
    data:
        2-D, or ``(H, W, 3)`` colour (``(H, W, 4)`` allowed for PNG/TIFF).  FITS, TIFF and
        NPY also take 3-D stacks.
    meta:
        The :class:`ImageMeta` of the source image: its ``header`` is carried into FITS
        output and its ``dtype`` decides the output precision.  Writing onto the very file
        ``meta.path`` names is refused.
    header_cards:
        FITS only: ``{keyword: (value, comment)}`` or ``{keyword: value}``.  Keywords
        longer than 8 characters or with characters outside ``A-Z0-9_-`` are written as
        ``HIERARCH`` cards.  Keywords are upper-cased (FITS convention; astropy looks
        them up in upper case).
    history:
        FITS only: one string or several, each added as HISTORY (long ones wrap).
    overwrite:
        Replace an existing file; otherwise :class:`FileExistsError`.

    Returns the output path.  See the module docstring for the precision of each format.
    """
    path = Path(path)
    fmt = image_format(path)
    extension = _match_extension(path)[0]
    array = np.asarray(data)
    if array.dtype.kind not in "biuf" or array.dtype.fields is not None:
        raise TypeError(f"{path}: cannot write data of type {array.dtype} as an image")
    if array.ndim < 2 or 0 in array.shape:
        raise ImageWriteError(f"{path}: cannot write data of shape {array.shape} as an image")
    if extension.lower().endswith(".fz"):
        raise ImageWriteError(f"{path}: writing fpack (.fz) files is not supported;"
                              " use .fits or .fits.gz")
    if meta is not None and _same_file(path, meta.path):
        raise ImageWriteError(f"{path}: refusing to overwrite the input image it was read from")
    source = np.dtype(meta.dtype) if meta is not None else array.dtype

    if fmt == "fits":
        writer = _fits_writer(path, array, meta, source, header_cards, history)
    elif fmt == "tiff":
        writer = _tiff_writer(path, array, source)
    elif fmt in ("png", "jpeg"):
        writer = _picture_writer(path, array, source, fmt)
    else:
        def writer(tmp: Path) -> None:
            with open(tmp, "wb") as handle:
                np.save(handle, array, allow_pickle=False)

    return atomic_write(path, writer, extension=extension, overwrite=overwrite)


def _same_file(a: Path, b: Path | None) -> bool:
    if b is None:
        return False
    try:
        return a.exists() and Path(b).exists() and os.path.samefile(a, b)
    except OSError:
        return False


# --------------------------------------------------------------------------- FITS


def _card_keyword(key: str) -> str:
    # Upper case throughout: astropy looks keywords up in upper case, so a lower-case
    # HIERARCH keyword could be written but not found again by name.
    stripped = " ".join(str(key).split()).upper()
    if stripped.startswith("HIERARCH "):
        return "HIERARCH " + stripped[9:]
    if _STANDARD_KEYWORD.match(stripped):
        return stripped
    return "HIERARCH " + stripped


def _card_value(path: Path, key: str, value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ImageWriteError(f"{path}: header card {key!r}: FITS cannot store {value!r}")
        return value
    raise TypeError(f"{path}: header card {key!r}: value {value!r} is not str/int/float/bool")


def _build_header(path: Path, meta: ImageMeta | None,
                  header_cards: Mapping[str, Any] | None, history):
    from astropy.io import fits
    from astropy.io.fits.verify import VerifyWarning

    header = clean_header(meta.header if meta is not None else None)
    if meta is not None and meta.format == "fits" and len(meta.file_shape) > len(meta.shape):
        # One plane of a cube (or a squeezed (1, 1, H, W) array) becomes a 2-D image.
        if drop_extra_wcs_axes(header, len(meta.shape)) and meta.plane is not None:
            header.add_history(f"plane {meta.plane} of a {meta.file_shape} cube;"
                               " WCS axes beyond 2 dropped")
    for key, item in (header_cards or {}).items():
        if isinstance(item, tuple):
            if len(item) != 2:
                raise ImageWriteError(f"{path}: header card {key!r}: expected (value, comment)")
            value, comment = item
        else:
            value, comment = item, None
        keyword = _card_keyword(key)
        bare = keyword[9:] if keyword.startswith("HIERARCH ") else keyword
        if STRUCTURAL_KEYWORDS.match(bare.upper()):
            raise ImageWriteError(f"{path}: header card {key!r} is structural; astropy sets it")
        value = _card_value(path, key, value)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", VerifyWarning)  # long comments are truncated
                card = fits.Card(keyword, value, "" if comment is None else str(comment))
                card.verify("exception")
                str(card)  # formats the card: fails now if key + value cannot fit
                if keyword in header and keyword not in ("HISTORY", "COMMENT", ""):
                    header[keyword] = (value, card.comment)
                else:
                    header.append(card, end=True)
        except (ValueError, TypeError) as exc:
            raise ImageWriteError(f"{path}: header card {key!r}: {' '.join(str(exc).split())}"
                                  ) from exc
    lines = [history] if isinstance(history, str) else list(history or [])
    for line in lines:
        try:
            header.add_history(str(line))
        except ValueError as exc:
            raise ImageWriteError(f"{path}: HISTORY {line!r}: {' '.join(str(exc).split())}"
                                  ) from exc
    return header


def _fits_writer(path, array, meta, source, header_cards, history):
    from astropy.io import fits

    out = np.ascontiguousarray(array, dtype=fits_output_dtype(source))
    if out.ndim == 3 and meta is not None and meta.channel_axis == -1:
        out = np.ascontiguousarray(np.moveaxis(out, -1, 0))  # colour planes along NAXIS3
    header = _build_header(path, meta, header_cards, history)

    gzipped = path.name.lower().endswith(".gz")

    def writer(tmp: Path) -> None:
        hdu = fits.PrimaryHDU(data=out, header=header)
        if gzipped:  # explicit, so it does not depend on astropy's case-sensitive ".gz" check
            with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
                hdu.writeto(gz, checksum=True, output_verify="silentfix")
        else:
            hdu.writeto(tmp, overwrite=True, checksum=True, output_verify="silentfix")

    return writer


# --------------------------------------------------------------------------- TIFF


def _tiff_writer(path, array, source):
    import tifffile

    dtype = np.float64 if source == np.float64 else np.float32
    out = np.ascontiguousarray(array, dtype=dtype)
    colour = out.ndim == 3 and out.shape[-1] in (3, 4) and out.shape[0] > 4
    photometric = "rgb" if colour else "minisblack"
    extrasamples = ("unassalpha",) if colour and out.shape[-1] == 4 else None

    def writer(tmp: Path) -> None:
        tifffile.imwrite(tmp, out, photometric=photometric, extrasamples=extrasamples)

    return writer


# --------------------------------------------------------------------------- PNG / JPEG


def _to_integer_image(path: Path, array: np.ndarray, source: np.dtype, fmt: str) -> np.ndarray:
    channels = 1 if array.ndim == 2 else array.shape[-1]
    allowed = (1, 3, 4) if fmt == "png" else (1, 3)
    if array.ndim not in (2, 3) or channels not in allowed:
        raise ImageWriteError(f"{path}: {fmt.upper()} takes (H, W) or (H, W, 3)"
                              f"{' or (H, W, 4)' if fmt == 'png' else ''} data,"
                              f" got shape {array.shape}")
    values = np.array(array, dtype=np.float64)  # a copy: the caller's array is untouched
    wide = source == np.uint16
    if wide and fmt == "png" and channels > 1:
        warnings.warn(f"{path}: Pillow cannot write 16-bit colour PNG; reducing to 8 bits",
                      stacklevel=4)
    if wide and (fmt == "jpeg" or channels > 1):
        values *= 255.0 / 65535.0
        target = np.uint8
    else:
        target = np.uint16 if wide else np.uint8
    info = np.iinfo(target)
    values = np.rint(values, out=values)
    values[np.isnan(values)] = 0
    np.clip(values, info.min, info.max, out=values)
    return values.astype(target)


def _picture_writer(path, array, source, fmt):
    import imageio.v3 as iio

    out = _to_integer_image(path, array, source, fmt)
    if out.ndim == 3 and out.shape[-1] == 1:
        out = out[..., 0]
    options = {"quality": 95} if fmt == "jpeg" else {}
    extension = ".png" if fmt == "png" else ".jpg"

    def writer(tmp: Path) -> None:
        iio.imwrite(tmp, out, plugin="pillow", extension=extension, **options)

    return writer
