"""Halos: the light of bright stars' wings beyond the PSF's Moffat profile.

A Moffat profile fits the core of most PSFs, but not always their wings: a
long-exposure Kolmogorov PSF's wings fall as r^-11/3, far above the Moffat that fits
its core, and around a clipped star of 5e7 ADU they leave tens of noise sigmas. After
the first round of fits (:meth:`pipeline.core.starfit._Fitter.add_halos`), each clipped
star and each star above ``HALO_MIN_SNR`` gets a halo: the light the models leave
around it, ring by ring, as far as it stands out of the noise, but no more than
``HALO_WING_TOLERANCE`` times its amplitude times the frame's wing.

- The frame's wing (:func:`stacked_wing`) is what the bright stars share in
  proportion to their light: the median of their rings per unit amplitude, carried on
  beyond the rings they measure as a power law. A galaxy or nebula around one bright
  star is none, and where the Moffat fits, the wing is 0 and there are no halos.
- Light under a star's rings that does not fall with the wing (a nebula that the
  background map leaves out) is the scene's (:func:`scene_pedestal`).
- A star's halo (:func:`halo_profile`) is its rings' light within that bound, never
  rising outwards, and carried on with the wing's shape beyond where it stands out.

These are plain functions of ring profiles (NumPy arrays); the rings themselves are
measured on the frame by :meth:`pipeline.core.starfit._Fitter._halo_rings`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from pipeline.core.psf import MEDIAN_NOISE, weighted_median

__all__ = ["CLIPPED_WING_STARS", "FAINT_WING_CLIPPED_STARS", "FLATTEST_WING_SLOPE",
           "HALO_CLEARANCE", "HALO_MIN_SNR", "HALO_REACH", "HALO_SIGMAS",
           "HALO_WING_TOLERANCE", "LOWEST_OF_FOUR", "QUADRANT_SPREAD", "HaloRings",
           "halo_profile", "quadrant_spread", "quadrants_agree", "scene_pedestal",
           "stacked_wing"]

#: A star this many noise sigmas at its peak, or a clipped one, gets a halo: the light
#: of its wings beyond the PSF's Moffat, measured around it after the first round of
#: fits, ring by ring out to ``HALO_REACH`` pixels, as far as it stands above
#: ``HALO_SIGMAS`` of its noise.  (A Kolmogorov PSF's wings fall as r^-11/3, far
#: above the Moffat that fits its core: around a clipped star of 5e7 ADU they left
#: 58 sigma 8 px out, 14 sigma at 14 px.)
HALO_MIN_SNR = 100.0
HALO_REACH = 64
HALO_SIGMAS = 3.0
#: The frame's wing (:func:`stacked_wing`) is measured on the stars (unclipped, or
#: clipped: ``CLIPPED_WING_STARS``) with no source left in place (a galaxy's nucleus)
#: within this many pixels, and only such stars' halos take their rings' levels
#: unbiased (:func:`halo_profile`).
HALO_CLEARANCE = 16
#: The lowest of four medians lies this many of their noise sigmas below their mean
#: (the expected minimum of four standard normal values).
LOWEST_OF_FOUR = 1.03
#: A star's four quadrants agree, and see its wing alone, where their medians scatter
#: about their mean by no more than this chi-square per degree of freedom, averaged
#: over the rings within ``HALO_CLEARANCE`` of it (:func:`quadrants_agree`).  Such a
#: star takes its rings' levels unbiased even with a source left in place near it:
#: on a stretched Kolmogorov frame the peaks of a clipped star's own wing, judged
#: before the halos, are left in place as galaxies or streak pieces.  (Over the
#: halo stars of twelve Kolmogorov random scenes, r72-r90: the scatter of the stars
#: with nothing left in place near them and no extended source within 16 px was
#: 1.19 at the median and 2.43 at the 90th percentile; of those with a galaxy left
#: in place near them, 10.4 at the median, and 20 % came under 3.)
QUADRANT_SPREAD = 3.0
#: A star's halo is no more than this many times its amplitude times the frame's
#: wing: a galaxy or nebula around one bright star is no wing.  On four Kolmogorov
#: frames (``bench_kolmogorov.py``) the stars' own rings stood at 0.72-1.13 times
#: that product for the unclipped stars and 0.19-1.07 times for the clipped ones,
#: whose amplitudes come from a Moffat fitted to their wings (10th to 90th
#: percentiles of each star's median over its rings).
HALO_WING_TOLERANCE = 2.0
#: A frame with no unclipped star above ``HALO_MIN_SNR`` (a stretched frame, whose
#: display clips its bright stars) measures the wing on its clipped stars, if it has
#: at least this many clear of sources left in place: their amplitudes come from a
#: Moffat fitted to their wings, but the median over many is the frame's.
CLIPPED_WING_STARS = 5
#: Where the unclipped stars show no wing, it is measured on the clipped stars if at
#: least this many are clear of sources left in place: its light is in proportion to
#: a star's, and theirs is far greater.  (Kolmogorov random scene r133, linear: six
#: unclipped stars above ``HALO_MIN_SNR``, of 6600-24000 ADU, measured no wing; a
#: clipped star of 4.3e6 ADU kept 1500 ADU, 30 sigma, 9 px out, and 6.6 % of the
#: frame's star flux stayed.)
FAINT_WING_CLIPPED_STARS = 3
#: Beyond the rings that the stars measure, the frame's wing falls as a power law no
#: flatter than this: r^-3, between the r^-2 of a scattered-light aureole and the
#: r^-11/3 of a Kolmogorov PSF.  Where the stars measure only one or two rings (a
#: noisy frame, r14 of the Kolmogorov random scenes: sigma 33 DN, two rings), it
#: falls with this slope from the last: cut there instead, the halo of a clipped
#: star of 5e7 ADU stopped 5 px out and left 38 sigma 6-10 px from it.  With r^-2,
#: the bound that the wing puts on a halo (``HALO_WING_TOLERANCE``) stood far above
#: a Kolmogorov star's real wing 10-30 px out, and a clipped star's halo took the
#: light of a galaxy around it (Kolmogorov random scene r34: 5 sigma of the galaxy
#: gone 10-30 px around the star, extended-source RMSE 0.96 sigma; 0.76 with r^-3).
FLATTEST_WING_SLOPE = -3.0


class HaloRings(NamedTuple):
    """The light that the models leave around one star, ring by ring, as
    ``starfit._Fitter._halo_rings`` measures it on the frame."""

    #: The (row, column) slices of the frame around the star.
    window: tuple
    #: The ring of each pixel of ``window`` (its elliptical radius, an integer).
    ring: np.ndarray
    #: The first ring measured: ``level`` and the arrays below start there.
    inner: int
    #: Each ring's light: the lowest of its four quadrants' medians (``inf`` where
    #: no pixel is usable).
    level: np.ndarray
    #: That median's noise.
    error: np.ndarray
    #: Whether the ring has clipped pixels (the model overshoots a clipped core's rim).
    near_clipped: np.ndarray
    #: How far the four quadrants' medians stand apart (:func:`quadrant_spread`).
    spread: np.ndarray


def scene_pedestal(star_wing, level, error) -> float:
    """The light of the scene under a star's rings that does not fall with the
    frame's wing (a nebula or a galaxy's disc, which the background map, measured
    with the sources masked, leaves out), to be taken off the rings' ``level``
    before the halo is (:func:`halo_profile`; arguments as there).

    ``level`` is fitted as ``scale * star_wing + pedestal`` by weighted least squares
    over the rings the halo may take: from the brightest ring out to the last where
    ``HALO_WING_TOLERANCE`` times the wing stands above ``HALO_SIGMAS`` of the noise.
    The pedestal counts where it stands ``HALO_SIGMAS`` above its own error, and is
    0 otherwise: a wing is the same around every star, in proportion to its light,
    and a level that falls more slowly than the wing is no part of it.  (Kolmogorov
    random scene r25, linear: a clipped star of 2.4e6 ADU on a nebula 280 ADU above
    the sky; its rings 10-20 px out stood 30 ADU above the wing, the halo took that
    too, and the nebula came out 1.5-3.4 sigma low over 33 x 33 px.)"""
    usable = np.isfinite(level)
    reach = np.flatnonzero(HALO_WING_TOLERANCE * star_wing > HALO_SIGMAS * error)
    if not usable.any() or reach.size == 0:
        return 0.0
    rings = np.zeros_like(usable)
    rings[int(np.argmax(np.where(usable, level, -np.inf))):reach[-1] + 1] = True
    rings &= usable
    # (Two parameters: with fewer than four rings the pedestal's error says little.)
    if np.count_nonzero(rings) < 4:
        return 0.0
    weights = 1.0 / error[rings]
    design = np.column_stack([star_wing[rings], np.ones(np.count_nonzero(rings))])
    design *= weights[:, None]
    (_, pedestal), *_ = np.linalg.lstsq(design, level[rings] * weights, rcond=None)
    pedestal_error = math.sqrt(np.linalg.pinv(design.T @ design)[1, 1])
    return float(pedestal) if pedestal > HALO_SIGMAS * pedestal_error else 0.0


def halo_profile(star_wing, inner, level, error, *, unbiased):
    """A star's halo by ring, from ring 0 to ``HALO_REACH`` (where it is 0), or
    ``None`` if no ring of it stands out.

    ``level`` and ``error`` are its rings' light and that light's noise from ring
    ``inner`` on (as the fitter measures them, ``starfit._Fitter._halo_rings``),
    ``star_wing`` the frame's wing times its amplitude over the same rings.  The halo is
    the level, no more than ``HALO_WING_TOLERANCE`` times ``star_wing``, over the first
    run of rings where that stands above ``HALO_SIGMAS`` of the noise, and it never
    rises outwards from its brightest ring.  Beyond that run it goes on with the shape
    of ``star_wing``, from its last ring, as far as no ring's level lies more than
    ``HALO_SIGMAS`` of its noise below it: too faint there to stand out of any one ring,
    the wing covers ever more pixels (cut at the run's end, the halos of a Kolmogorov
    scene's clipped stars left 0.69 sigma on average 24-48 px out).  Each level is the
    lowest of four quadrants' medians, which lies ``LOWEST_OF_FOUR`` of their noise
    below the ring's light when the four see the same wing; ``unbiased`` takes that bias
    off (the halos left 0.3-0.9 sigma per pixel 3-20 px around the clipped stars of
    stretched Kolmogorov frames).
    Around a star with a source left in place near it (a galaxy's nucleus), whose
    light may be in three quadrants of its rings, the levels are kept as measured
    unless the quadrants agree (:func:`quadrants_agree`): no galaxy is eaten into to
    take the last of a star's wing.
    """
    if unbiased:
        level = level + LOWEST_OF_FOUR * error
    halo = np.minimum(level, HALO_WING_TOLERANCE * star_wing)
    standing = np.append(halo > HALO_SIGMAS * error, False)
    if not standing.any():
        return None
    start = int(np.argmax(standing))
    stop = start + int(np.argmin(standing[start:]))
    peak = start + int(np.argmax(halo[start:stop]))
    profile = np.zeros(HALO_REACH + 1)
    profile[inner + start:inner + peak] = halo[start:peak]
    profile[inner + peak:inner + stop] = np.minimum.accumulate(halo[peak:stop])
    if stop < star_wing.size and star_wing[stop - 1] > 0:
        # Near a galaxy's nucleus, never above what the rings show.
        allowed = level[stop:] + (HALO_SIGMAS * error[stop:] if unbiased else 0.0)
        tail = profile[inner + stop - 1] * star_wing[stop:] / star_wing[stop - 1]
        profile[inner + stop:HALO_REACH] = np.minimum.accumulate(
            np.minimum(tail, np.maximum(allowed, 0.0)))
    return profile


def quadrant_spread(medians, errors):
    """The chi-square per degree of freedom of each ring's four quadrant
    ``medians`` about their weighted mean, given their ``errors`` (both
    (rings, 4)); NaN for a ring without light measured in all four."""
    weights = 1.0 / errors ** 2
    with np.errstate(invalid="ignore"):
        mean = np.sum(medians * weights, axis=1) / np.sum(weights, axis=1)
        chi2 = np.sum(((medians - mean[:, None]) / errors) ** 2, axis=1) / 3.0
    return np.where(np.isfinite(medians).all(axis=1), chi2, np.nan)


def quadrants_agree(spread) -> bool:
    """Whether a star's four quadrants see the same light around it, by their
    :func:`quadrant_spread` over its first ``HALO_CLEARANCE`` rings: its mean no more
    than ``QUADRANT_SPREAD``, over at least four rings measured in all quadrants."""
    near = spread[:HALO_CLEARANCE]
    near = near[np.isfinite(near)]
    return near.size >= 4 and float(np.mean(near)) <= QUADRANT_SPREAD


def stacked_wing(amplitudes, rings):
    """The frame's wing beyond the PSF's Moffat, per unit of a star's amplitude, ring
    by ring, from the stars' :class:`HaloRings` (or ``None``) as the fitter measures
    them (``starfit._Fitter._halo_rings``; rings beside clipped cores left out).

    Each ring's wing is the median of the stars' levels (corrected for the bias of
    the lowest of four medians, ``LOWEST_OF_FOUR``) over their amplitudes, each star
    weighted by its amplitude over the level's noise, but no more than the third
    largest weight, so that no one or two bright stars decide; it counts where it
    stands ``HALO_SIGMAS`` above the median's noise, and is 0 elsewhere.  Beyond the
    last ring that counts, it goes on as the power law fitted to those rings if
    three or more count, no flatter than ``FLATTEST_WING_SLOPE``, else with that
    slope, and it never rises outwards.  A PSF's wing is the same
    around every star, in proportion to its light; a galaxy or nebula that a bright
    star sits in is not."""
    ratios = np.full((len(rings), HALO_REACH), np.nan)
    weights = np.zeros((len(rings), HALO_REACH))
    for k, (amplitude, measured) in enumerate(zip(amplitudes, rings)):
        if measured is None:
            continue
        defined = np.isfinite(measured.level) & ~measured.near_clipped
        level, error = measured.level[defined], measured.error[defined]
        inner = measured.inner
        ratios[k, inner:][defined] = (level + LOWEST_OF_FOUR * error) / amplitude
        weights[k, inner:][defined] = amplitude / error
    wing = np.zeros(HALO_REACH)
    for radius in range(HALO_REACH):
        have = weights[:, radius] > 0
        if have.any():
            values, shares = ratios[have, radius], weights[have, radius]
            shares = np.minimum(shares, np.sort(shares)[-min(3, shares.size)])
            median = weighted_median(values, shares)
            # Only a wing that stands out of the stack's noise.
            if median > HALO_SIGMAS * MEDIAN_NOISE / math.sqrt(np.sum(shares ** 2)):
                wing[radius] = median
    # The clipped stars' halos reach beyond the rings that unclipped stars measure.
    # One or two rings fit no slope, so the wing goes on from them as the flattest
    # allowed: a wing cut at the last ring its stars measure leaves the wing of a
    # star a thousand times brighter than them in place.
    measured = np.flatnonzero(wing > 0)
    if measured.size:
        radius = np.arange(HALO_REACH) + 0.5
        slope = FLATTEST_WING_SLOPE
        if measured.size >= 3:
            fitted, _ = np.polyfit(np.log(radius[measured]), np.log(wing[measured]), 1)
            slope = min(fitted, FLATTEST_WING_SLOPE)
        last = measured[-1]
        wing[last + 1:] = wing[last] * (radius[last + 1:] / radius[last]) ** slope
    # A wing does not rise outwards: a ring that few stars measure well is lifted
    # to the level of the rings beyond it.
    return np.maximum.accumulate(np.maximum(wing, 0.0)[::-1])[::-1]
