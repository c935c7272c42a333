"""Remove the stars of one image file and write the result: the orchestration layer.

:func:`remove_stars_file` ties :mod:`pipeline.io` (reading, writing, the Zarr store) to
:mod:`pipeline.tiling` (the Dask execution) for one frame.  The ``destar remove``
command and the batch runner call it.

Outputs, by the output's extension
----------------------------------
- ``.zarr``: the result store (:mod:`pipeline.io.store`): ``starless``, ``stars``,
  ``mask``, the per-tile metrics and the provenance (version, parameters, input path
  and SHA-256, chunking, halo, creation time, FITS header).
- ``.fits`` (``.fit``, ``.fts``, ``.fits.gz``): the starless image with the input's
  header (and so its WCS), a HISTORY line and the parameters as ``DS_*`` keywords
  (:data:`FITS_KEYWORDS`).
- ``.tif/.tiff``, ``.npy``: the starless image, floating point (see
  :func:`pipeline.io.write_image`).
- ``.png``, ``.jpg/.jpeg``: a display picture of the starless image.  For 8-bit and
  16-bit integer sources the values are written as they are, rounded and clipped to
  the format's range (a uint8 PNG in gives a comparable uint8 PNG out; see
  :func:`pipeline.io.write_image` for 16 bits).  Any other source (float, wider
  integers) has no natural 0..255 scale, so the starless image is mapped linearly from
  its own 0.5th..99.5th percentile (finite pixels) to 0..255 and clipped; NaN is 0.
  Use FITS, TIFF, NPY or Zarr when the numbers matter.

The input file is only ever read.
"""

from __future__ import annotations

import datetime as _dt
import math
import numbers
import os
import sys
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

__all__ = ["remove_stars_file", "format_summary", "frame_chunks", "FITS_KEYWORDS",
           "MAX_SINGLE_CHUNK", "DEFAULT_TILE"]

#: ``chunk=None`` keeps an axis whole up to this many pixels...
MAX_SINGLE_CHUNK = 4096
#: ...and cuts longer axes into tiles of this size.
DEFAULT_TILE = 2048

#: FITS keywords of the parameters (a field missing here is written as HIERARCH DESTAR).
FITS_KEYWORDS: dict[str, str] = {
    "n_iter": "DS_NITER",
    "gamma": "DS_GAMMA",
    "q": "DS_Q",
    "bavg": "DS_BAVG",
    "segmentation_window": "DS_SEGW",
    "signal_ratio": "DS_SIGR",
    "background_ratio": "DS_BKGR",
    "group_size": "DS_GRPSZ",
    "residue_history": "DS_RHIST",
    "formulation": "DS_FORM",
}

_FIELD_COMMENTS = {
    "n_iter": "diffusion iterations",
    "gamma": "diffusion step size",
    "q": "largest asymmetry scale [px]",
    "bavg": "background level (undefined: measured)",
    "segmentation_window": "signal/background window [px]",
    "signal_ratio": "signal threshold, mean/bavg",
    "background_ratio": "background threshold, mean/bavg",
    "group_size": "protected residue group [px]",
    "residue_history": "residues averaged for the stop",
    "formulation": "enhancement formulation",
}

_PICTURE_PERCENTILES = (0.5, 99.5)


# --------------------------------------------------------------------------- chunks
def frame_chunks(shape: tuple[int, int], chunk=None) -> tuple[int, int]:
    """The (rows, columns) chunk size for a frame of ``shape``.

    ``None``: each axis whole up to :data:`MAX_SINGLE_CHUNK` pixels, else tiles of
    :data:`DEFAULT_TILE`.  ``"full"``: one chunk.  An integer: square chunks of that
    side (cut at the frame's edges).
    """
    if chunk is None:
        return tuple(n if n <= MAX_SINGLE_CHUNK else DEFAULT_TILE for n in shape)
    if isinstance(chunk, str):
        if chunk.strip().lower() == "full":
            return tuple(shape)
        raise ValueError(f"chunk={chunk!r}: expected a positive integer, 'full' or None")
    if isinstance(chunk, (bool, np.bool_)) or not isinstance(chunk, numbers.Integral):
        raise TypeError(f"chunk must be a positive integer, 'full' or None, got {chunk!r}")
    if chunk < 1:
        raise ValueError(f"chunk={chunk} must be a positive number of pixels")
    return tuple(min(int(chunk), n) for n in shape)


# --------------------------------------------------------------------------- helpers
def _output_kind(path: Path) -> str:
    from pipeline.io import image_format

    if path.name.lower().endswith(".zarr") and len(path.name) > len(".zarr"):
        return "zarr"
    try:
        return image_format(path)
    except ValueError:
        raise ValueError(f"{path}: unknown output extension (use .zarr, .fits, .tif, "
                         ".png, .jpg or .npy)") from None


def _check_output(output: Path, kind: str, input_path: Path, overwrite: bool) -> None:
    """Fail before the work: missing folder, existing output, output == input."""
    if not output.parent.is_dir():
        raise FileNotFoundError(f"{output}: output directory {output.parent} does not exist")
    try:
        same = output.exists() and os.path.samefile(output, input_path)
    except OSError:
        same = False
    if same:
        raise ValueError(f"{output}: is the input file; choose another output")
    if kind == "zarr":
        resolved_in, resolved_out = input_path.resolve(), output.resolve()
        if resolved_out in resolved_in.parents:
            raise ValueError(f"{output}: the input {input_path} is inside this folder; "
                             "choose another output")
    if (output.exists() or output.is_symlink()) and not overwrite:
        raise FileExistsError(f"{output}: output exists; pass overwrite=True "
                              "(command line: --overwrite) to replace it")


def _header_string(header) -> str | None:
    if header is None:
        return None
    return header.tostring(sep="\n", endcard=False, padding=False)


def _provenance(meta, params, preset_name, chunks, halo, version) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "title": "destar star removal",
        "destar_version": version,
        "preset": preset_name,
        "parameters": params.as_dict(),
        "input_path": str(Path(meta.path).resolve()),
        "input_sha256": meta.sha256,
        "input_format": meta.format,
        "input_dtype": str(meta.dtype),
        "input_shape": list(meta.shape),
        "input_hdu": meta.hdu,
        "input_hdu_name": meta.hdu_name,
        "input_plane": meta.plane,
        "chunks": list(chunks),
        "halo": int(halo),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "stars_definition": "stars = input - starless; stars + starless == input where "
                            "the input is finite (see stars_inexact_pixels); stars is "
                            "NaN and starless the input value where mask is true",
    }
    header = _header_string(meta.header)
    if header is not None:
        attrs["fits_header"] = header
    if meta.warnings:
        attrs["input_warnings"] = list(meta.warnings)
    return attrs


def _fits_cards(params, preset_name, chunks, halo, version, meta) -> dict[str, Any]:
    cards: dict[str, Any] = {
        "DS_VERS": (version, "destar version"),
        "DS_PRST": (preset_name, "destar parameter preset"),
    }
    for field, value in params.as_dict().items():
        keyword = FITS_KEYWORDS.get(field, f"HIERARCH DESTAR {field.upper()}")
        cards[keyword] = (value, _FIELD_COMMENTS.get(field, field))
    cards["DS_CHUNK"] = ("x".join(str(c) for c in chunks), "Dask tile size [px]")
    cards["DS_HALO"] = (int(halo), "tile halo [px]")
    cards["DS_INSHA"] = (meta.sha256, "")  # 64 hex digits leave no room for a comment
    return cards


def _picture(starless: np.ndarray, source: np.dtype) -> tuple[np.ndarray, np.dtype]:
    """What goes into a PNG/JPEG, and the source dtype to hand to write_image."""
    if source in (np.dtype(np.uint8), np.dtype(np.uint16)):
        return starless, source  # values as they are, rounded and clipped
    finite = starless[np.isfinite(starless)]
    low, high = (np.percentile(finite, _PICTURE_PERCENTILES) if finite.size
                 else (0.0, 1.0))
    scale = 255.0 / (high - low) if high > low else 0.0
    with np.errstate(invalid="ignore"):
        mapped = np.clip((starless - low) * scale, 0.0, 255.0)
    return mapped, np.dtype(np.uint8)


class _Silent:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# --------------------------------------------------------------------------- main
def remove_stars_file(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    preset: str = "paper",
    overrides: Mapping[str, Any] | None = None,
    chunk: int | str | None = None,
    hdu: int | str | None = None,
    plane: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Remove the stars of one image file and write the result by the output extension.

    Parameters
    ----------
    input_path:
        FITS, TIFF, PNG/JPEG or NPY image (:func:`pipeline.io.read_image`); one 2-D
        plane (choose ``hdu``/``plane`` for multi-extension files and cubes).  Colour
        images are refused.
    output_path:
        ``.zarr`` (store with metrics and provenance), ``.fits``, ``.tif/.tiff``,
        ``.png``, ``.jpg/.jpeg`` or ``.npy`` (see the module notes).
    preset, overrides:
        Parameter preset and field overrides, e.g. ``{"n_iter": 100}``.
    chunk:
        ``None`` (default: whole axes up to 4096 px, else 2048-px tiles), ``"full"``
        (one chunk) or a square tile side in pixels.  The tiles of the Dask run and the
        chunks of a Zarr output.
    overwrite:
        Replace an existing output; otherwise :class:`FileExistsError` before any work.
    progress:
        Show a Dask progress bar on stderr (local schedulers only).

    Returns
    -------
    dict
        ``input``, ``output``, ``format``, ``shape``, ``chunks``, ``tiles``, ``halo``,
        ``preset``, ``n_iter``, ``seconds`` (wall time, read to write),
        ``mpx_iter_per_s`` (megapixels times iterations per second) and, for Zarr,
        ``stars_inexact_pixels``.

    Raises
    ------
    FileNotFoundError, FileExistsError, ValueError, TypeError, OSError
        Missing input or output folder, existing output, unreadable input (an
        :class:`~pipeline.io.ImageReadError`), bad parameters or chunk.
    """
    start = time.perf_counter()
    import dask
    import dask.array as da

    from pipeline import __version__
    from pipeline.core.params import resolve_parameters
    from pipeline.core.remove import validate_image
    from pipeline.io import read_image, split_stars, write_image, write_store
    from pipeline.tiling import remove_stars_dask

    input_path, output = Path(input_path), Path(output_path)
    if not isinstance(preset, str):
        raise TypeError(f"preset must be a preset name, got {type(preset).__name__}")
    params = resolve_parameters(preset, **dict(overrides or {}))
    if chunk is not None:
        frame_chunks((1, 1), chunk)  # validate before reading
    kind = _output_kind(output)
    _check_output(output, kind, input_path, overwrite)

    data, meta = read_image(input_path, hdu=hdu, plane=plane)
    if meta.is_rgb:
        raise ValueError(f"{input_path}: is a colour image of shape {data.shape}; "
                         "destar remove takes one plane (convert it to grey first)")
    image = validate_image(data)
    chunks = frame_chunks(image.shape, chunk)
    array = da.from_array(image, chunks=chunks)
    result = remove_stars_dask(array, params)
    n_tiles = math.prod(len(c) for c in array.chunks)

    def bar():
        if not progress:
            return _Silent()
        from dask.diagnostics import ProgressBar

        return ProgressBar(out=sys.stderr)

    summary: dict[str, Any] = {}
    if kind == "zarr":
        starless, stars, mask, inexact = split_stars(array, result.starless)
        attrs = _provenance(meta, params, preset, chunks, result.halo, __version__)
        attrs["stars_inexact_pixels"] = inexact
        with bar():
            write_store(output, starless, stars, mask, result.metrics, attrs,
                        overwrite=overwrite)
        from pipeline.io import open_store

        summary["stars_inexact_pixels"] = int(open_store(output).attrs["stars_inexact_pixels"])
    else:
        with bar():
            starless, _ = dask.compute(result.starless, result.metrics)
        history = (f"destar {__version__}: stars removed with preset '{preset}' "
                   f"(n_iter={params.n_iter}) from {input_path.name} "
                   f"sha256 {meta.sha256}")
        if kind in ("png", "jpeg"):
            picture, source = _picture(starless, np.dtype(meta.dtype))
            from dataclasses import replace

            write_image(output, picture, meta=replace(meta, dtype=source),
                        overwrite=overwrite)
        else:
            cards = (_fits_cards(params, preset, chunks, result.halo, __version__, meta)
                     if kind == "fits" else None)
            write_image(output, starless, meta=meta, header_cards=cards,
                        history=history if kind == "fits" else None, overwrite=overwrite)

    seconds = time.perf_counter() - start
    megapixels = image.size / 1e6
    summary = {
        "input": str(input_path),
        "output": str(output),
        "format": kind,
        "shape": tuple(int(n) for n in image.shape),
        "chunks": tuple(int(c) for c in chunks),
        "tiles": int(n_tiles),
        "halo": int(result.halo),
        "preset": preset,
        "n_iter": int(params.n_iter),
        "seconds": seconds,
        "mpx_iter_per_s": megapixels * params.n_iter / seconds if seconds > 0 else math.inf,
        **summary,
    }
    return summary


def format_summary(summary: Mapping[str, Any]) -> str:
    """One line for the command line."""
    shape = "x".join(str(n) for n in summary["shape"])
    chunks = "x".join(str(n) for n in summary["chunks"])
    tiles = summary["tiles"]
    line = (f"{summary['input']} -> {summary['output']}: {shape} px, "
            f"{tiles} tile{'s' if tiles != 1 else ''} of {chunks} (halo {summary['halo']}), "
            f"preset {summary['preset']}, n_iter {summary['n_iter']}, "
            f"{summary['seconds']:.2f} s, {summary['mpx_iter_per_s']:.3g} Mpx*iter/s")
    inexact = summary.get("stars_inexact_pixels")
    if inexact:
        line += f", stars+starless inexact at {inexact} px"
    return line
