"""Image I/O for destar: FITS, TIFF, PNG/JPEG and NPY files.

- :func:`read_image` -> ``(data, meta)``: one 2-D (or RGB) image and its
  :class:`ImageMeta` (path, format, SHA-256 of the bytes, FITS header, HDU, plane, ...).
- :func:`write_image`: atomic output in the format of the extension; FITS output keeps
  the input header and WCS and adds parameter cards and HISTORY.
- :func:`sha256_file`: streaming hash of a file.
- :func:`write_store` / :func:`open_store` / :func:`store_is_complete`: one frame's
  result (starless, stars, mask, per-tile metrics, provenance) as a Zarr v3 store
  (:mod:`pipeline.io.store`).

Read failures raise :class:`ImageReadError` (a ``ValueError``; the missing-file and
non-numeric cases are also ``FileNotFoundError`` / ``TypeError``) with a one-line message
that starts with the path.  This layer does not import :mod:`pipeline.core`,
:mod:`pipeline.tiling` or :mod:`pipeline.cli`.
"""

from pipeline.io.atomic import atomic_write
from pipeline.io.errors import ImageNotFoundError, ImageReadError, ImageTypeError, ImageWriteError
from pipeline.io.hashing import sha256_file
from pipeline.io.meta import EXTENSIONS, ImageMeta, image_format
from pipeline.io.reading import read_image
from pipeline.io.store import open_store, split_stars, store_is_complete, write_store
from pipeline.io.writing import (
    STRUCTURAL_KEYWORDS,
    clean_header,
    drop_extra_wcs_axes,
    fits_output_dtype,
    write_image,
)

__all__ = [
    "read_image",
    "write_image",
    "sha256_file",
    "ImageMeta",
    "ImageReadError",
    "ImageNotFoundError",
    "ImageTypeError",
    "ImageWriteError",
    "image_format",
    "EXTENSIONS",
    "atomic_write",
    "clean_header",
    "drop_extra_wcs_axes",
    "fits_output_dtype",
    "STRUCTURAL_KEYWORDS",
    "write_store",
    "open_store",
    "store_is_complete",
    "split_stars",
]
