"""Tiled star removal by PSF fitting (``star_model="psf"``, the ``survey`` preset).

What makes the tiles agree with the whole-frame run
---------------------------------------------------
1. **The frame's values come from the frame.**  The PSF is measured once, on the
   frame's :func:`~pipeline.core.sampling.psf_region` (the whole frame up to
   ``threshold_sample`` pixels, else its central square), exactly as the whole-frame
   run measures it, and so is the saturation level (98 % of the way from the median
   of a regular subsample of the frame to its maximum, Dask reductions): a tile
   without a saturated star must not take the flat top of its brightest star for a
   clipped core.  So is the black point, if a display stretch clips the frame's
   noise there (:mod:`pipeline.core.censoring`).
2. **Every tile sees its stars' whole neighbourhood.**  A star is fitted in a window
   of at most ``4.8 x FWHM``, the background map is a median of 32 x 32 boxes
   filtered over 3 x 3 of them and interpolated, and the denoising compares 5 x 5
   patches 6 pixels apart.  A halo of :data:`FIT_HALO` pixels, a multiple of the
   box (:data:`~pipeline.tiling.tiles.FIT_HALO`), keeps the boxes on the frame's grid
   when the tiles start on it (chunks that are multiples of 32) and puts the tile's
   edge effects outside its core.
3. **What is left is approximate.**  The brightest stars' wings reach further than
   any halo, a star on a halo's edge is fitted on part of its window, and the
   source mask of the background depends on it: the tiled result equals the
   whole-frame one to within a small fraction of the noise, not bit for bit
   (``tests/test_fitted_tiles.py`` measures it).
"""

from __future__ import annotations

import time
from typing import NamedTuple

import dask
import dask.array as da
import numpy as np

from pipeline.core.censoring import black_point_of, lowest_count
from pipeline.core.params import DiffusionParameters
from pipeline.core.remove import frame_psf
from pipeline.core.starfit import (
    NO_DEFINED_PIXEL,
    defined_pixels,
    fit_and_subtract_stars,
    saturation_between,
    typical_level_step,
)
from pipeline.core.stretch import check_knee, linearize, restretch
from pipeline.core.validation import count
from pipeline.tiling.tiles import (
    FIT_HALO,
    TiledResult,
    TileMetrics,
    _core_in_block,
    independent_tiles,
)

__all__ = ["FrameLevels", "fit_tile", "fit_tiles", "frame_levels"]


class FrameLevels(NamedTuple):
    """The levels a tiled PSF run takes from the whole frame (:func:`frame_levels`)."""
    #: As :func:`pipeline.core.starfit.saturation_level` of the frame in memory.
    saturation: float
    #: As :func:`pipeline.core.censoring.find_black_point` of the frame in memory
    #: (``-inf``: no black point).
    black_point: float


def _block_levels(block, first_row, first_col, step):
    """``(sample, largest, lowest, at_lowest, defined)`` of a block's defined pixels,
    the block starting at (``first_row``, ``first_col``) of the frame: its pixels on
    the frame's every ``step``-th row and column, its largest value (``-inf`` if
    none) and :func:`~pipeline.core.censoring.lowest_count`."""
    values = np.where(defined_pixels(block), block, np.nan)
    sample = values[-first_row % step::step, -first_col % step::step].ravel()
    lowest, at_lowest, defined = lowest_count(values)
    largest = float(np.nanmax(values)) if defined else -np.inf
    return sample, largest, lowest, at_lowest, defined


def frame_levels(array: da.Array) -> FrameLevels:
    """The saturation level and the black point of a whole Dask frame, as the frame
    in memory gives them, in one pass over its blocks (each read once: a frame read
    from disk, or a cluster's staged copy of it, is read once for both);
    ``ValueError`` if no pixel is defined
    (:func:`~pipeline.core.starfit.defined_pixels`).

    The saturation level lies between the median of a regular subsample and the
    largest value; each block counts the pixels at its own lowest value, so that no
    block is held in memory until the frame's lowest value is known."""
    step = typical_level_step(array.shape)
    starts = [np.cumsum((0,) + chunks[:-1]) for chunks in array.chunks]
    blocks = dask.compute(*(
        dask.delayed(_block_levels)(block, starts[0][i], starts[1][j], step)
        for (i, j), block in zip(np.ndindex(array.numblocks),
                                 array.to_delayed().ravel())))
    samples, largest, lowest, at_lowest, defined = zip(*blocks)
    if not np.isfinite(max(largest)):
        raise ValueError(NO_DEFINED_PIXEL)
    frame_lowest = min(lowest)
    return FrameLevels(
        saturation_between(np.nanmedian(np.concatenate(samples)), max(largest)),
        black_point_of(frame_lowest,
                       sum(n for low, n in zip(lowest, at_lowest) if low == frame_lowest),
                       sum(defined)))


def fit_tile(block, core, ext, psf, saturation, black_point, halo, asinh_knee=None):
    """Remove the stars of one tile: ``(core's starless, TileMetrics)``.

    A plain NumPy function (the per-tile kernel of :func:`fit_tiles`): ``block`` is
    the tile's extended block ``ext`` of the frame and ``core`` its core's bounds.
    With ``asinh_knee`` the block is fitted on its linear scale
    (:mod:`pipeline.core.stretch`; ``psf``, ``saturation`` and ``black_point`` are
    that scale's).
    """
    start = time.perf_counter()
    inner = _core_in_block(core, ext)
    original = np.asarray(block, dtype=np.float64)[inner]
    if asinh_knee is None:
        fit = fit_and_subtract_stars(np.asarray(block), psf=psf, saturation=saturation,
                                     black_point=black_point)
        starless = fit.starless[inner]
    else:
        linear = linearize(np.asarray(block), asinh_knee)
        fit = fit_and_subtract_stars(linear, psf=psf, saturation=saturation,
                                     black_point=black_point)
        starless = restretch(fit.starless[inner], linear[inner], original, asinh_knee)
    finite = np.isfinite(original)
    rows, cols = fit.centres[:, 0] + ext[0], fit.centres[:, 1] + ext[2]
    in_core = ((rows >= core[0] - 0.5) & (rows < core[1] - 0.5)
               & (cols >= core[2] - 0.5) & (cols < core[3] - 0.5))
    return starless, TileMetrics(
        row_start=core[0], row_stop=core[1], col_start=core[2], col_stop=core[3],
        halo=halo, iterations=0, stopped_fraction=float("nan"),
        flux_removed=float(np.sum(original[finite] - starless[finite])),
        seconds=time.perf_counter() - start, stars_fitted=float(np.sum(in_core)))


def fit_tiles(array: da.Array, params: DiffusionParameters, *, halo: int | None = None,
              checkpoint=None) -> tuple[TiledResult, object]:
    """Lazy PSF-fitting star removal of a 2-D Dask array, one task per chunk.

    The PSF (read from the frame's PSF region), the saturation level and the black
    point are measured now; the tiles run when the result is computed, independently, in any
    order (``checkpoint`` as for :func:`pipeline.tiling.tiles.stream_tiles`).

    Returns
    -------
    (TiledResult, PSFShape)

    Raises
    ------
    ValueError
        If ``params`` is not a PSF star model, or the PSF cannot be measured.
    """
    if params.star_model != "psf":
        raise ValueError(f"fit_tiles needs star_model='psf', got {params.star_model!r}")
    if array.ndim != 2:
        raise ValueError(f"expected a 2-D array, got shape {array.shape}")
    halo = FIT_HALO if halo is None else count(halo, "halo")
    knee = params.asinh_knee
    linear = array
    if knee is not None:
        check_knee(array, knee)
        linear = linearize(array, knee)
    # (First: its pass over the frame finds a frame with no pixel to use.)
    saturation, black_point = frame_levels(linear)
    psf = frame_psf(linear, params)
    result = independent_tiles(array, halo=halo, kernel=fit_tile,
                               args=(psf, saturation, black_point, halo, knee),
                               checkpoint=checkpoint)
    return result, psf
