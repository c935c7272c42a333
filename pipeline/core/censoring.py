"""The noise clipped at a display's black point, and the scene's level behind it.

A display stretch whose black point cuts into the sky (an 8-bit picture, a sky
gradient across it) sets every pixel below it to its lowest value: the noise there is
censored.  A denoiser estimates the mean of the pixels, and the mean of censored noise
lies above the scene: at a scene level ``t`` above the black point, in noise
``sigma``, the mean of ``max(t + sigma Z, 0)`` is ``sigma g(t / sigma)`` with
``g(a) = a Phi(a) + phi(a)`` (0.40 sigma at ``t = 0``, where the scene shows black),
and the share of its pixels at the black point is ``Phi(-t / sigma)``.  In a window,
that share gives ``t / sigma`` and, with the window's mean, ``sigma``: no noise map
is needed, which censoring would bias too (its RMS is 0.58 sigma at ``t = 0``).  The
scene's level behind the window's mean is ``sigma`` times ``g``'s inverse at it, and
each pixel moves by the difference.  (``g``'s inverse of each pixel's own denoised
value, that inverse being concave, also took the pixels down by their remaining
noise: on stretched random scenes, up to 0.34 dB less.)  No scene level lies below
the black point.

These are plain functions on NumPy arrays.

References
----------
.. [1] J. Tobin, "Estimation of relationships for limited dependent variables",
   Econometrica 26, 24-36 (1958).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage, special

__all__ = ["black_point_of", "find_black_point", "lowest_count", "uncensored"]

#: A frame's lowest value is a black point if at least this share of its defined
#: pixels, and ``BLACK_POINT_MIN_PIXELS``, hold it: the censored tail of its noise.
#: Unclipped noise puts one pixel or a few at its minimum.
BLACK_POINT_MIN_SHARE = 1e-3
BLACK_POINT_MIN_PIXELS = 10
#: Half the side of the square window in which the share of pixels at the black
#: point and their mean are measured: 17 x 17 pixels, a share known to about 0.03.
WINDOW_HALF = 8
#: Between these shares at the black point a window's noise is measured.  Below the
#: lower one the scene lies 1.64 sigma or more above the black point and the mean's
#: bias is under 0.021 sigma, and fewer than 15 of the 289 pixels measure the noise
#: too roughly (from a share of 0.02 on, the 512 x 512 demo frame, whose sky lies 3
#: sigma above its black point, lost 0.02 dB); above the upper one no level is
#: measured.
SHARE_RANGE = (0.05, 0.98)
#: A window measures clipped noise only where at least this share of its pixels at
#: the black point are lone, in no 3 x 3 square of them: clipped noise scatters
#: them (nearly all are lone at a share of 0.5, about 10 % at 0.9), but a zero-filled
#: border is one block, and beside a bright sky the window across its edge would
#: give a noise of the order of the sky's level.  (A bound on that noise of 3 times
#: the frame's, as first tried, made a tiled run disagree with the whole frame:
#: each tile measured the frame's noise on its own, low where its sky was clipped.)
MIN_LONE_SHARE = 0.05
#: A window's noise is at least this many steps of a quantised frame's values (a sky of a few
#: photon counts has real zeros, which are no clipped noise).
MIN_QUANTA = 4.0


def black_point_of(lowest: float, at_lowest: int, defined: int) -> float:
    """The black point of a frame whose lowest defined value is ``lowest``, held by
    ``at_lowest`` of its ``defined`` pixels (see ``BLACK_POINT_MIN_SHARE``), or
    ``-inf`` (nothing clipped) if its noise is not clipped there.  (The tiled run
    counts them on the frame.)"""
    if at_lowest >= max(BLACK_POINT_MIN_PIXELS, BLACK_POINT_MIN_SHARE * defined):
        return float(lowest)
    return -math.inf


def lowest_count(image: np.ndarray) -> tuple[float, int, int]:
    """``(lowest, at_lowest, finite)`` of ``image`` for :func:`black_point_of`: its
    lowest finite value (``inf`` if none), the pixels that hold it and its finite
    pixels.  Those of a frame's blocks combine into the frame's (the tiled run)."""
    values = np.asarray(image)
    finite = np.isfinite(values)
    if not finite.any():
        return math.inf, 0, 0
    lowest = float(np.min(values[finite]))
    return lowest, int(np.count_nonzero(values == lowest)), int(np.count_nonzero(finite))


def find_black_point(image: np.ndarray) -> float:
    """The black point of ``image`` (:func:`black_point_of`): its lowest finite
    value, if its noise is clipped there; ``-inf`` if not."""
    return black_point_of(*lowest_count(image))


def _censored_mean(a):
    """``g(a) = a Phi(a) + phi(a)``: the mean of ``max(a + Z, 0)``."""
    return a * special.ndtr(a) + np.exp(-0.5 * a * a) / math.sqrt(2.0 * math.pi)


def _tabulated_levels():
    """``g`` tabulated on levels from -9, where ``g = 1e-20`` and the level is black,
    to 8, beyond which ``g(a) = a`` to double precision (read-only arrays)."""
    levels = np.linspace(-9.0, 8.0, 17001)
    means = _censored_mean(levels)
    levels.flags.writeable = means.flags.writeable = False
    return levels, means


_LEVELS, _MEANS = _tabulated_levels()


def _censored_level(mean):
    """``g``'s inverse, interpolated in its table (within 1e-6; bisection to double
    precision took 20 times as long: 2.7 s per million pixels), ``-inf`` where the
    level is black."""
    level = np.interp(mean, _MEANS, _LEVELS, left=-np.inf)
    return np.where(mean > _MEANS[-1], mean, level)


def uncensored(scene, model, original, level, *, step=0.0):
    """The denoised starless ``scene`` with the bias of noise clipped at the black
    point ``level`` taken off (see the module notes).

    Parameters
    ----------
    scene : (M, N) ndarray
        Denoised starless image; NaN where the input is not finite.
    model : (M, N) ndarray
        The stars subtracted from the input to make it: a pixel's light, censored
        at ``level``, was the scene's plus the model's.
    original : (M, N) ndarray
        The input, whose pixels at ``level`` are the censored ones.
    level : float
        The black point (:func:`find_black_point`); ``-inf`` for none, and nothing
        changes.
    step : float, optional
        The step between the frame's values if quantised (``MIN_QUANTA``).

    Returns
    -------
    ndarray
        A new array: ``scene`` where the window measures no clipped noise, else
        ``scene`` moved by the window's censoring bias; nowhere below ``level``,
        which no scene seen through the display lies below.
    """
    result = np.array(scene, dtype=np.float64, copy=True)
    if not np.isfinite(level):
        return result
    defined = np.isfinite(scene)
    size = 2 * WINDOW_HALF + 1
    weight = ndimage.uniform_filter(defined.astype(np.float64), size)
    at = defined & (original == level)
    lone = at & ~ndimage.binary_opening(at, structure=np.ones((3, 3), bool))
    at_level = ndimage.uniform_filter(at.astype(np.float64), size)
    lone_at_level = ndimage.uniform_filter(lone.astype(np.float64), size)
    mean = ndimage.uniform_filter(np.where(defined, scene - level, 0.0), size)
    measurable = defined & (weight > 0.5)
    share = np.where(measurable, at_level / np.where(measurable, weight, 1.0), 0.0)
    measurable &= ((share > SHARE_RANGE[0]) & (share < SHARE_RANGE[1]) & (mean > 0)
                   & (lone_at_level >= MIN_LONE_SHARE * at_level))
    share = share[measurable]
    depth = -special.ndtri(share)      # the scene's level over the noise
    local = mean[measurable] / weight[measurable]
    sigma = local / _censored_mean(depth)
    usable = sigma >= MIN_QUANTA * step
    rows, cols = np.nonzero(measurable)
    rows, cols, sigma = rows[usable], cols[usable], sigma[usable]
    # The window's mean light where the pixels were clipped, the stars' included.
    lifted = local[usable] + model[rows, cols]
    result[rows, cols] += _censored_level(lifted / sigma) * sigma - lifted
    return np.maximum(result, level)
