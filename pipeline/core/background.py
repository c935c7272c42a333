"""Background level and noise measured on the image itself.

The paper asks for ``b_avg`` to be measured on "an area containing only stars and dark
background" of each image; the authors' code hard-codes 46 instead.  Here the frame is
cut into meshes, each mesh gets a sigma-clipped median and RMS (photutils'
``Background2D``), and the darkest quarter of the meshes stands for that star-and-sky
area: its median level is ``bavg`` and its median RMS the noise.  Nebulae and galaxies
raise the meshes they cover, so they do not bias the estimate as a global mean would.
"""

from __future__ import annotations

import contextlib
import threading
import warnings

import numpy as np
from astropy.stats import SigmaClip, sigma_clipped_stats
from photutils.background import Background2D, MedianBackground, StdBackgroundRMS
from scipy import ndimage

__all__ = ["estimate_background", "background_stride", "black_clipped", "constant_regions",
           "noiseless_regions", "noise_floor", "silenced", "MAX_BACKGROUND_PIXELS"]

#: ``warnings.catch_warnings`` saves the process's filter list on entry and restores it
#: on exit: two threads silencing a warning at once (tiles on Dask's threads) restore
#: each other's lists and let it through.  Blocks of :func:`silenced` take turns.
_SILENCING = threading.RLock()


@contextlib.contextmanager
def silenced(category=Warning):
    """Ignore ``category`` warnings in this block, one thread at a time."""
    with _SILENCING, warnings.catch_warnings():
        warnings.simplefilter("ignore", category)
        yield


#: Fraction of meshes, darkest first, taken to be star-and-sky only.
_DARK_FRACTION = 0.25

#: Frames larger than this are measured on a regular subsample of about this many
#: pixels: the background is smooth, and the subsample depends only on the frame, so
#: a tiled run measures exactly what a whole-frame run does.
MAX_BACKGROUND_PIXELS = 4_000_000


def background_stride(shape: tuple[int, int]) -> int:
    """Step of the regular subsample on which :func:`estimate_background` measures."""
    pixels = shape[0] * shape[1]
    return max(1, int(np.ceil(np.sqrt(pixels / MAX_BACKGROUND_PIXELS))))


def noise_floor(image: np.ndarray) -> float:
    """The smallest noise that data with these values can have.

    Integer-valued data (8-bit pictures, raw counts) carry at least the rounding noise
    of a unit step, ``1/sqrt(12)``; for other data the floor is 0.  A flat sky stored
    as integers has a sigma-clipped RMS of exactly 0, and every threshold in units of
    the noise would then be infinite.  Non-finite pixels are ignored.
    """
    image = np.asarray(image)
    if image.dtype.kind in "ui":
        return 1.0 / np.sqrt(12.0)
    stride = background_stride(image.shape)
    values = image[::stride, ::stride]
    values = values[np.isfinite(values)]
    integral = values.size > 0 and bool(np.all(values == np.round(values)))
    return 1.0 / np.sqrt(12.0) if integral else 0.0


def black_clipped(image: np.ndarray) -> np.ndarray:
    """Pixels of regions clipped at the frame's lowest value.

    A display stretch whose black point cuts into the sky (a sky gradient on an 8-bit
    picture) sets whole regions to its lowest level, where the noise is gone: meshes
    there would give a level and an RMS of about 0, and every threshold in units of
    that noise would find stars in the noise elsewhere.  Lone pixels at the lowest
    level are the noise's clipped lower tail, which any stretched frame has; a
    clipped region is the lowest pixels that a 3 x 3 opening keeps.  Non-finite
    pixels are never clipped.
    """
    finite = np.isfinite(image)
    if not finite.any():
        return np.zeros(image.shape, bool)
    lowest = finite & (image == np.min(image[finite]))
    return ndimage.binary_opening(lowest, structure=np.ones((3, 3), bool))


def constant_regions(image: np.ndarray) -> np.ndarray:
    """Pixels of regions of one exact value: the union of the 3 x 3 squares whose
    pixels are all equal.

    Such regions carry no noise: the zero-filled borders of a mosaic, a sky clipped at
    a display stretch's black point, a clipped star core.  A mesh over one has an RMS
    of 0, and a threshold in units of that RMS would be infinite.  Non-finite pixels
    never belong to one.
    """
    finite = np.isfinite(image)
    # A square (mirrored at the frame's edges) is of one value when each of its rows
    # is equal along it and its centre column down it: comparisons of neighbours,
    # ten times faster than a 3 x 3 maximum and minimum filter.
    padded = np.pad(image, 1, mode="symmetric")
    defined = np.pad(finite, 1, mode="symmetric")
    along = padded[:, :-1] == padded[:, 1:]
    rows = (along[:, :-1] & along[:, 1:]
            & defined[:, :-2] & defined[:, 1:-1] & defined[:, 2:])
    down = padded[:-1, 1:-1] == padded[1:, 1:-1]
    centres = rows[:-2] & rows[1:-1] & rows[2:] & down[:-1] & down[1:]
    return ndimage.binary_dilation(centres, structure=np.ones((3, 3), bool)) & finite


def noiseless_regions(image: np.ndarray) -> np.ndarray:
    """Regions whose values carry no noise, hence say nothing of the sky's.

    In unquantised data no noise leaves a 3 x 3 square at one value, so every
    :func:`constant_regions` counts.  In quantised data (:func:`noise_floor` above 0)
    a sky whose noise is below the rounding step rounds to one value, and only
    regions at the frame's lowest value count (:func:`black_clipped`): a sky clipped
    at the black point, a zero-filled border.
    """
    if noise_floor(image) > 0:
        return black_clipped(image)
    return constant_regions(image)


def estimate_background(image: np.ndarray, *, mask: np.ndarray | None = None,
                        box_size: int | None = None) -> tuple[float, float]:
    """Return ``(level, noise)`` of the sky background of ``image``.

    Parameters
    ----------
    image : ndarray
        2-D image; non-finite pixels are ignored.
    mask : ndarray of bool, optional
        Extra pixels to ignore.
    box_size : int, optional
        Mesh side; by default an eighth of the shorter side, between 16 and 256.
        Frames above ``MAX_BACKGROUND_PIXELS`` are measured on a regular subsample
        (``background_stride``) and the mesh is in subsample pixels.

    Returns
    -------
    level, noise : float
        Median sigma-clipped level and RMS of the darkest quarter of the meshes.  Images
        too small for two meshes, or with no mesh at least half unmasked, fall back to
        sigma-clipped statistics of all unmasked pixels.
        The noise is at least :func:`noise_floor` of the image.  Pixels within a
        mesh of a region clipped at the black point (:func:`black_clipped`) and the
        other :func:`noiseless_regions` are left out, unless nothing else is left.

    References
    ----------
    .. [1] Bertin & Arnouts 1996, A&AS 117, 393 (mesh background estimation).
    """
    floor = noise_floor(image)
    image = np.asarray(image, dtype=float)
    stride = background_stride(image.shape)
    image = image[::stride, ::stride]
    bad = ~np.isfinite(image)
    if mask is not None:
        bad |= mask[::stride, ::stride]
    shorter = min(image.shape)
    box = box_size or int(np.clip(shorter // 8, 16, 256))
    clipped = black_clipped(image)
    if clipped.any():
        clipped = ndimage.maximum_filter(clipped, size=2 * box + 1)
    if floor == 0:
        clipped |= constant_regions(image)
    if not (bad | clipped).all():
        bad |= clipped
    bkg = None
    if shorter >= 2 * box:
        try:
            # Meshes that are mostly masked are excluded by photutils with a warning.
            with silenced():
                bkg = Background2D(
                    image, box, mask=bad, filter_size=1, sigma_clip=SigmaClip(sigma=3.0),
                    bkg_estimator=MedianBackground(), bkg_rms_estimator=StdBackgroundRMS(),
                    exclude_percentile=50.0,
                )
        except ValueError:  # every mesh mostly masked: a mosaic's small footprint
            bkg = None
    if bkg is None:
        _, median, std = sigma_clipped_stats(image[~bad], sigma=3.0, maxiters=10)
        return float(median), max(float(std), floor)
    levels = np.asarray(bkg.background_mesh, float).ravel()
    noises = np.asarray(bkg.background_rms_mesh, float).ravel()
    usable = np.isfinite(levels) & np.isfinite(noises)
    levels, noises = levels[usable], noises[usable]
    darkest = np.argsort(levels)[: max(1, int(round(levels.size * _DARK_FRACTION)))]
    return float(np.median(levels[darkest])), max(float(np.median(noises[darkest])), floor)
