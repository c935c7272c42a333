"""Image metadata returned by :func:`pipeline.io.read_image`, and format detection."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from astropy.io.fits import Header

__all__ = ["ImageMeta", "EXTENSIONS", "image_format"]

#: Recognised file name endings (lower case) and the format each one means.  Longer
#: endings come first so ``.fits.gz`` wins over ``.gz``.
EXTENSIONS: dict[str, str] = {
    ".fits.gz": "fits",
    ".fit.gz": "fits",
    ".fts.gz": "fits",
    ".fits.fz": "fits",
    ".fits": "fits",
    ".fit": "fits",
    ".fts": "fits",
    ".fz": "fits",
    ".tiff": "tiff",
    ".tif": "tiff",
    ".png": "png",
    ".jpeg": "jpeg",
    ".jpg": "jpeg",
    ".npy": "npy",
}


def _match_extension(path: str | os.PathLike[str]) -> tuple[str, str] | None:
    name = Path(path).name
    lower = name.lower()
    for ending, fmt in EXTENSIONS.items():
        if lower.endswith(ending) and len(lower) > len(ending):
            return name[len(name) - len(ending):], fmt
    return None


def image_format(path: str | os.PathLike[str]) -> str:
    """The format name (``fits``, ``tiff``, ``png``, ``jpeg``, ``npy``) for a file name.

    Case-insensitive on the extension.  Raises :class:`ValueError` naming the file and the
    supported extensions when the extension is not one of :data:`EXTENSIONS`.
    """
    match = _match_extension(path)
    if match is None:
        supported = ", ".join(sorted(EXTENSIONS))
        raise ValueError(f"{path}: unknown image file extension (supported: {supported})")
    return match[1]


@dataclass(frozen=True)
class ImageMeta:
    """What :func:`~pipeline.io.read_image` knows about the file an array came from.

    ``dtype`` is the element type the file decodes to (for FITS after astropy applied
    BZERO/BSCALE, e.g. ``uint16`` for BITPIX 16 with BZERO 32768; ``bitpix`` keeps the
    stored BITPIX).  ``file_shape`` is the array shape in the file; ``shape`` the shape of
    the returned array after plane selection and dropping alpha.  ``header`` is a detached
    copy of the FITS header of the chosen HDU (``None`` for other formats).  ``hdu`` is the
    index of that HDU and ``hdu_name`` its EXTNAME.  ``warnings`` holds non-fatal
    messages that came up while reading (e.g. astropy fixing a non-standard card).
    """

    path: Path
    format: str
    sha256: str
    dtype: np.dtype
    shape: tuple[int, ...]
    header: Header | None = None
    hdu: int | None = None
    hdu_name: str | None = None
    plane: int | None = None
    channel_axis: int | None = None
    file_shape: tuple[int, ...] = ()
    bitpix: int | None = None
    dropped_alpha: bool = False
    size_bytes: int = 0
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def is_rgb(self) -> bool:
        return self.channel_axis is not None

    def describe(self) -> str:
        """One line for logs: path, format, HDU/plane, shape and dtype."""
        parts = [f"{self.path}", self.format]
        if self.hdu is not None:
            parts.append(f"hdu={self.hdu}" + (f" ({self.hdu_name})" if self.hdu_name else ""))
        if self.plane is not None:
            parts.append(f"plane={self.plane}")
        parts.append("x".join(str(n) for n in self.shape))
        parts.append(str(self.dtype))
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (header left out; see ``header`` for it)."""
        return {
            "path": str(self.path),
            "format": self.format,
            "sha256": self.sha256,
            "dtype": str(self.dtype),
            "shape": list(self.shape),
            "hdu": self.hdu,
            "hdu_name": self.hdu_name,
            "plane": self.plane,
            "channel_axis": self.channel_axis,
            "file_shape": list(self.file_shape),
            "bitpix": self.bitpix,
            "dropped_alpha": self.dropped_alpha,
            "size_bytes": self.size_bytes,
            "warnings": list(self.warnings),
        }
