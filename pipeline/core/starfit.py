"""Star removal by fitting the image's own PSF: the ``survey`` preset (``star_model="psf"``).

The diffusion presets decide what is a star from the local asymmetry alone, which
cannot tell a star from a compact galaxy, and their enhancement factor protects bright
stars on linear data.  This module takes the route the survey issue asks for instead:

1. a background and noise *map* (photutils ``Background2D``, sigma-clipped, with the
   sources masked), so that every threshold is in units of the local noise and the
   method works on linear, sky-subtracted and 0..255 data alike; regions of one value
   at or below the sky (:func:`pipeline.core.background.noiseless_regions`: a
   zero-filled border, a sky clipped at the black point) have no noise and are masked
   data, like NaN, and so are pixels more than 20 sigma below the background (cold
   pixels, bad columns, sentinel values such as -32768);
2. the PSF measured on the image (:func:`pipeline.core.psf.measure_psf`);
3. every source brighter than 4 sigma, brightest first and in three rounds, then the
   fainter ones that a PSF-matched filter finds above 5 sigma away from the bright
   stars, fitted with that PSF (amplitude and position) on a local plane, the light
   of the scene under it, and judged by chi-squares in units of each pixel's whole
   noise, the sky's and the photon noise of its light (whose variance per unit of
   light the PSF's stars measure: on a faint sky, a bright star's own photon noise
   made the PSF miss its core, and the star was kept as a cusp or a galaxy):

   - a source that a wider profile fits much better (chi-square lower by 25) both
     over its window (width > 1.25 x PSF) and in its core within 0.8 FWHM (width >
     1.1 x PSF), without the plane, is a galaxy and stays, unless the PSF on its
     plane fits the core well, and better still (a star in front of a galaxy's
     inner light), and a source above 10 sigma of its pixels' own noise (measured
     on the differences of neighbouring pixels, which a nebula's knots do not raise
     as they raise the noise map) is judged above the level of a nebula it sits
     in front of; a star blended with a neighbour, wide only over the window,
     goes, and so do two stars that two PSFs fit better, with a dip in the light
     between them or five times better than any single profile, and three stars
     that three PSFs fit twenty times better (a star between two companions);
   - a source around which, its own PSF taken off, the light just outside its window
     exceeds the light further out by 0.5 sigma and 1 % of its peak, in every
     quadrant and centred on it, is a galaxy's nucleus and stays (convolved with the
     PSF, a concentrated galaxy's centre is no wider than a star);
   - a core that a profile narrower than 0.8 x PSF on its plane fits much better, and
     the PSF misses by more than 2 % of its peak, is no point source either (a
     galaxy's cusp, a cosmic ray) and stays, unless two PSFs fit it well (two stars
     closer than the PSF resolves, no dip between them), or three;
   - a bright source whose core the PSF misses, which no pair of stars fits, whose
     window is wider than the PSF, and whose core the profile of the best width
     still misses by more than 8 % of its peak is a galaxy's core of its own shape
     (an unconvolved Sersic cusp on its bulge) and stays;
   - a source more elongated than the PSF (second-moment ellipticity in a one-FWHM
     Gaussian window, larger by 0.25), fainter than 50 sigma and whose light goes
     on along its major axis on both sides, its own PSF (or two, where two fit)
     taken off, above the light across the axis (a nebula's), is a piece of a
     streak and stays (two stars side by side are as elongated, but end there);
   - saturated stars are fitted on their unclipped wings, together with the bright
     sources beside them, whose light is no part of the star; each lobe of a
     plateau (a disc joined to the rest by a neck 2 px shallower: two clipped stars
     whose plateaus touch) is a star of its own, and so is each of two PSFs
     centred on a plateau of one lobe that fit it five times better than one (two
     clipped stars whose plateaus merge without a neck).  A clipped source whose
     unclipped light a wider profile fits twice as well as the PSF is a galaxy, and
     stays whole, unless the PSF predicts its plateau, as it does a stretched star's;
     so is one that it fits 1.2 times as well with a plateau more elongated than the
     PSF and clear of the frame's edge, or short of what the PSF predicts; a
     plateau with a lobe that is a galaxy's core stays whole.  The stars' clipped
     cores are filled from the background map plus the
     light just around them (peaks on a clipped rim are no new stars);
   - after the first round, each clipped star and each star above 100 sigma gets a
     halo: what the models leave around it, ring by ring (the lowest of its four
     quadrants' medians, less that minimum's bias unless a source left in place is
     near, and less the level of a nebula under it, which does not fall with the
     wing, as far out as that stands above 3 sigma, and beyond with the wing's shape
     while no ring lies 3 sigma below it), but no more than
     twice its amplitude times the frame's wing: the median over the unclipped
     stars above 100 sigma (or, on a frame with none, over its clipped stars) of
     their rings per unit amplitude, where it stands out of their noise, carried on
     beyond as a power law (a PSF whose wings are no
     Moffat's, such as a Kolmogorov PSF's, whose wings fall as r^-11/3; where the
     Moffat fits, there is no wing, and a galaxy or nebula around one bright star
     is none; :mod:`pipeline.core.halos`);
   - each star's model is subtracted out to where it falls below 5 % of the noise,
     nowhere deeper than 3 sigma below the background map, and scaled down where
     its local mean exceeds that of the data by more than 3 sigma of that mean (PSF
     wings broader than the stars', as on stretched data);

4. the star-subtracted image denoised with non-local means in units of the noise map,
   with the photon noise of the subtracted stars and of the scene's own light added
   (measured on the stars' fit residuals and on the PSF's stars), since the starless
   scene is smooth where the stars were and the sky's map knows nothing of a
   galaxy's photon noise; under stars above 10 sigma, where that photon noise
   dominates, the scene is the average over one FWHM, but for the light of a source
   left in place (a galaxy's nucleus beside a bright star), which stands out from
   that average by more than the noise and the fits' mismatch;
5. where a display's black point clips the noise (a sky gradient through it on an
   8-bit picture), the denoised sky, which is the mean of the clipped noise and lies
   up to 0.4 sigma above the scene, taken to the scene's level behind it
   (:mod:`pipeline.core.censoring`).

The loop over stars is Python, but each fit is compiled
(:mod:`pipeline.core.profile_fit`): about 2-4 s for a 512 x 512 frame with 450-800
stars, far slower per pixel than the diffusion.  It runs on NumPy arrays only; the
tiled run is :mod:`pipeline.tiling.fitted`.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from astropy.stats import SigmaClip, sigma_clipped_stats
from photutils.background import Background2D, MedianBackground, StdBackgroundRMS
from scipy import ndimage
from skimage import morphology
from skimage.restoration import denoise_nl_means
from skimage.segmentation import watershed

from pipeline.core.background import noise_floor, noiseless_regions, silenced
from pipeline.core.censoring import find_black_point, uncensored
from pipeline.core.halos import (
    CLIPPED_WING_STARS,
    FAINT_WING_CLIPPED_STARS,
    HALO_CLEARANCE,
    HALO_MIN_SNR,
    HALO_REACH,
    HaloRings,
    halo_profile,
    quadrant_spread,
    quadrants_agree,
    scene_pedestal,
    stacked_wing,
)
from pipeline.core.peaks import local_maxima
from pipeline.core.profile_fit import N_PARAMS, fit_profile, profile_model
from pipeline.core.psf import (
    MEDIAN_NOISE,
    PHOTON_NOISE_MIN_SNR,
    PSFShape,
    light_variance,
    measure_psf,
    moffat_image,
)
from pipeline.core.validation import real_number, validate_plane

__all__ = ["StarFit", "defined_pixels", "fit_and_subtract_stars", "saturation_between",
           "saturation_level", "typical_level_step", "NO_DEFINED_PIXEL"]

#: Detection threshold, in units of the local noise.
DETECTION_SIGMAS = 4.0
#: A pixel further below the background map than this many noise sigmas is masked
#: data, like NaN ...
DEAD_SIGMAS = 20.0
#: ... and so is one of this magnitude or more (the squares of the background
#: statistics overflow).
OVERFLOW_LIMIT = 1e150
#: What the PSF star model says of a frame without a pixel it can use.
NO_DEFINED_PIXEL = (f"image has no finite pixel of magnitude below {OVERFLOW_LIMIT:g} "
                    "(the PSF star model masks NaN, inf and larger values)")
#: Fainter stars are found in a last round by a PSF-matched filter, at this
#: signal-to-noise ratio: a star of FWHM 3 px with a peak of 2 noise sigmas reaches
#: about 4.5.  Stretched frames put much of their star flux in such stars.
MATCHED_SIGMAS = 5.0
#: ... but not within this many FWHM of a star brighter than ``RESIDUE_MIN_SNR``
#: noise sigmas, where what its model leaves (PSF mismatch, above all on stretched
#: frames, whose bright stars are not Moffat profiles) would be taken for faint stars.
FAINT_CLEARANCE = 3.0
RESIDUE_MIN_SNR = 10.0
#: Where the subtracted stars exceed this many sigmas of the sky's noise, what the
#: denoising leaves is mostly their photon noise, and the scene is taken as the
#: average of the starless image over a Gaussian one PSF FWHM wide.  (Survey benchmark
#: frames: whole-frame RMSE on linear-mid 0.41 -> 0.23 sigma, 68 % of its squared
#: error sat under stars above 100 sigma; summed over 14 linear and sky-subtracted
#: frames 5.68 -> 4.81 sigma.  At 5 sigmas the average reached galaxies' edges.)
STAR_NOISE_SNR = 10.0
#: ... but not over the light of a source the fits left in place (a galaxy's nucleus
#: beside a bright star): within ``KEPT_LIGHT_REACH`` FWHM of its peak, a pixel that
#: stands out from the average by more than ``KEPT_LIGHT_SIGMAS`` of its noise
#: (photon noise included) is no noise, and by more than ``KEPT_LIGHT_SHARE`` of the
#: stars' model there no mismatch of their fits either, and keeps its value; not
#: within as many FWHM of a clipped core, whose filling is no measurement.  (A
#: galaxy's 140-sigma nucleus 4 px from a 900-sigma star was flattened to 30 sigma;
#: 144 scratch frames: +6.2 dB summed, extended-source RMSE better on 11, two frames
#: worse where the fits had left a star in place, which the average had hidden.)
KEPT_LIGHT_REACH = 2.0
KEPT_LIGHT_SIGMAS = 5.0
KEPT_LIGHT_SHARE = 0.3
#: The starless scene's light is smoothed over this many pixels before its photon
#: noise is added to the noise map that the denoising works in units of, so that the
#: noise itself does not raise it.  (Survey benchmark, 30 linear and sky-subtracted
#: frames: the photon noise of galaxies and nebulae in the map, not only the stars',
#: +1.3 dB summed, no frame worse by more than 0.002 dB; a bright galaxy on a faint
#: sky kept 1.6 sigma of noise without it, 0.75 with it.)
PHOTON_NOISE_SMOOTHING = 5
#: The non-local means cut-off ``h``, in units of the noise.  (skimage's example uses
#: 0.6 for this mode, fast with the noise given, hand-tuned on a photograph; a starless
#: sky is smoother.  186 benchmark frames: 0.6 -> 0.8, with the scene's photon
#: noise, took every one up, by 0.03 to 1.30 dB, +82.3 dB summed, and the mean
#: extended-source RMSE 0.411 -> 0.406 sigma; faint streaks of 4 sigma kept 91.0 ->
#: 87.7 % of their amplitude (one seed, 384 x 384).  1.0 gave about 35 dB more, but
#: kept 82.5 % of the streaks, 74.7 % of the worst, near the streak target of 80 %.)
DENOISE_CUTOFF = 0.8
#: A source is a galaxy when a profile wider than the PSF by ``GALAXY_WIDTH`` fits its
#: window, and one wider by ``CORE_WIDTH`` its core, each with a chi-square lower by
#: ``GALAXY_CHI2_GAIN``.
GALAXY_WIDTH = 1.25
CORE_WIDTH = 1.1
GALAXY_CHI2_GAIN = 25.0
#: A source brighter than this (peak, in sigmas of its pixels' noise,
#: :func:`_pixel_noise`) is judged above the level of the
#: light around it: the level just outside its window when that light is not centred
#: on it (a star in front of a nebula), the level further out when it is (brighter
#: just outside the window by ``CENTRED_LIGHT`` noise sigmas: a galaxy's nucleus, or
#: a star on a nebula's slope).  Fainter sources are judged as they are, since a faint
#: galaxy's own light falls off too little to tell.  (Against the RMS map, which a
#: nebula's knots raise, a 24-sigma star on the nebula of the benchmark's linear-wide
#: frame counted 9.4 and stayed as a galaxy.)
PEDESTAL_MIN_SNR = 10.0
CENTRED_LIGHT = 0.25
#: A source is a galaxy's nucleus (:meth:`_Fitter._nucleus`) when the light just
#: outside its window, its own PSF taken off, exceeds the light further out by this
#: many noise sigmas (stars of 10 sigmas and more on the benchmark frames: at most
#: 0.62; the measurement's own noise: about 0.1) ...
NUCLEUS_SIGMAS = 0.5
#: ... and by this fraction of its peak (those stars: at most 0.55 % beyond 50 sigmas,
#: 0.25 % beyond 80; a Kolmogorov star fitted with the best Moffat: 0.15 %; a Sersic
#: galaxy of index 3 and effective radius 6 px convolved with the PSF: 1.5 %, of
#: index 4 and radius 12 px: 0.7 %, whose nucleus still goes as a star).
NUCLEUS_MIN_FRACTION = 0.01
#: A source that looks wider than the PSF without the plane is still a star when the
#: PSF on its plane fits its core to within ``ON_PLANE_MAX_CHI2`` per pixel, with a
#: chi-square lower than the wider profile's by ``ON_PLANE_CHI2_GAIN``: a star in front
#: of a galaxy's inner light, which makes it look as wide as the galaxy.  (The plane
#: has three free parameters to the wider profile's one; 10 is beyond what three
#: parameters gain on noise, chi-square with 3 degrees of freedom, p = 0.02.)  A core
#: whose wider profile fits it better by less than that does not tell either way, and
#: the whole window decides.
ON_PLANE_MAX_CHI2 = 1.5
ON_PLANE_CHI2_GAIN = 10.0
#: Over the whole window, the PSF on its plane also wins where it fits this many times
#: better than the wider profile without it, however well: a galaxy's slope that
#: curves is no plane, but far nearer one than the wider profile is to a star.  (Over
#: the 162 scratch frames, 37 sources kept for a window fit above
#: ``ON_PLANE_MAX_CHI2`` per pixel alone: 5 stars and a star on a galaxy's light
#: fitted 3.1-11 times better, the galaxies 2.4 times at most; skysub-ellip kept a
#: 24-sigma star on a galaxy's edge.)
ON_PLANE_WINDOW_GAIN = 3.0
#: ... and, bright, wherever the PSF on its plane misses its core by less than this
#: fraction of its peak (RMS, :meth:`_Fitter._core_mismatch`), however well the wider
#: profile fits: a galaxy's core misses by its excess width at any brightness, a
#: bright star by the PSF model's own mismatch.  (Random scenes r0-r28, Moffat, and
#: r0-r25, Kolmogorov: the bright sources kept for a wider core missed by 2.4 % at
#: least, the galaxies' cores among them by 4.2 %; Kolmogorov r326, a star of 3.4e4 ADU
#: on a galaxy's slope 5 px from its cusp, by 1.3 % at 2.4 per pixel, was kept at 171
#: sigma.)
ON_PLANE_MAX_MISMATCH = 0.02
#: A bright source that passes as one star is fitted again as two (:meth:`_Fitter._pair`)
#: when the PSF on its plane fits its core to worse than this chi-square per pixel; the
#: second is left in place if it is a galaxy's nucleus (:meth:`_Fitter._nucleus`).  One
#: PSF took such a nucleus in with the star beside it (a 600-sigma star 2 px from a
#: 60-sigma nucleus: 19 per pixel; 328 bright sources of two random-scene frames: a
#: median of 1.0, 2.5 at the 95th percentile, 7 beyond 5).
BESIDE_NUCLEUS_CHI2 = 5.0
#: ... and when neither two PSFs nor a star beside a nucleus fit it, a source wider
#: than the PSF over its window (``CORE_WIDTH``) whose core the profile of the best
#: width misses by more than this chi-square per pixel and ``SHAPELESS_MISMATCH`` of
#: its peak (RMS) is no star: a galaxy's core of its own shape, an unconvolved Sersic
#: cusp on its bulge, which no Moffat of any width fits.  (Random scene r64, Moffat
#: and Kolmogorov PSFs, and Kolmogorov r61: galaxy cores of 60-66 sigma, windows
#: 1.23-1.32 PSF widths, missed by 11-13 % at 42-67 per pixel, were taken as stars
#: and their leftovers as more, 82-90 % of the frames' extended-source error.  The
#: stars that reach this test and miss by more than 20 per pixel on those 144 frames,
#: bright ones whose Moffat misses a Kolmogorov or photon-noisy core or stars beside a
#: nucleus, were missed by 6 % at most; a faint star of a stretched frame by 14 %, at
#: 12 per pixel and a window of 0.77; pieces of bright stars' wings by 29-59 %, at
#: 11-97 per pixel and windows of 0.58-1.0.)
SHAPELESS_CHI2 = 20.0
SHAPELESS_MISMATCH = 0.08
#: A source wider than the PSF is two stars if two PSFs fit it to within this
#: chi-square per pixel and its light dips between them by ``PAIR_DIP`` noise sigmas.
PAIR_MAX_CHI2 = 2.0
#: A bright source that no pair fits as :meth:`_Fitter._pair` asks is a star beside
#: a galaxy's nucleus if two PSFs, half a FWHM apart or more, fit it better than a
#: wider profile, the one at its peak at least ``STAR_BESIDE_NUCLEUS_RATIO`` times as
#: bright as the other and ``STAR_OVER_GALAXY`` times the galaxy's light under it (the
#: plane), and the other a nucleus (:meth:`_Fitter._star_beside_nucleus`).  Where the
#: galaxy's light is comparable, two PSFs can be carved out of its own core (random
#: scene r53: a galaxy's core split into PSFs of 16 and 8 sigma on a plane of 7 sigma,
#: -3.3 dB; r64: 11 and 4 sigma on 3 sigma, -0.24 dB).
STAR_BESIDE_NUCLEUS_RATIO = 2.0
STAR_OVER_GALAXY = 5.0
#: ... and where the source would otherwise be kept whole (wider than the PSF over its
#: window and in its core), the star goes even if the other is no nucleus, when the
#: two PSFs fit this many times better than the wider profile: the other is judged at
#: its own peak later.  (Moffat random scene r10: a star of 200 sigma 3 px from an
#: unconvolved galaxy's cusp, fitted 2.6 times better by two PSFs; the cusp, the
#: star's subtraction residue in its ring, missed the nucleus test's off-centre bound
#: by 26 %, and the star stayed whole with the galaxy: extended-source RMSE 2.63
#: sigma, 0.50 with this.  Where one PSF takes the source otherwise, the other is
#: still popped back: left to its own peak, a real star beside a bright one stayed,
#: -1.35 dB on r23.)
STAR_BESIDE_PAIR_GAIN = 2.0
#: A peak narrower than the PSF is fitted again with at most this many subtracted
#: stars around it (within 2 FWHM), and a clipped star with at most this many
#: sources beside it.
NEIGHBOURS_MAX = 3
PAIR_DIP = 2.0
#: ... or, without a dip, if they fit it ``PAIR_CLEAR_GAIN`` times better than the
#: best single profile, to within ``PAIR_CLEAR_MAX_CHI2`` per pixel: two stars about
#: one FWHM apart, or of unequal brightness, show no dip, and a third, faint
#: neighbour may keep their fit above ``PAIR_MAX_CHI2``.  (Measured on the survey
#: benchmark's frames and 48 frames of random scene settings: of 74 pairs that fit
#: 5 times better but were kept for want of a dip, 71 were two stars and 3 a star
#: and its fit's leftover; none was a galaxy.)
PAIR_CLEAR_GAIN = 5.0
PAIR_CLEAR_MAX_CHI2 = 10.0
#: Where two PSFs do not fit, three are taken if they fit to within ``PAIR_MAX_CHI2``
#: per pixel and this many times better than the best single profile: three PSFs on a
#: plane fit some galaxies well too.  (Taken at ``PAIR_CLEAR_GAIN``, over 144
#: benchmark frames 5 triples fitted 5.2-11.8 times better, one of them a 43-sigma
#: galaxy, -3.3 dB on its frame; stars of 2000-4000 DN between two companions 0.3 as
#: bright at 1.25 FWHM: 620 times and more.)
TRIPLE_CLEAR_GAIN = 20.0
#: A clipped source is a galaxy when the PSF fits its unclipped light to worse than
#: this chi-square per pixel and a wider profile (``GALAXY_WIDTH``) this many times
#: better; a clipped star's wings are the PSF's.
CLIPPED_GALAXY_CHI2 = 1.2
CLIPPED_GALAXY_GAIN = 2.0
#: ... or where a profile at least this many PSF widths wide fits it
#: ``CLIPPED_GALAXY_SOFT_GAIN`` times better and its clipped plateau covers less than
#: ``CLIPPED_GALAXY_PLATEAU_SHARE`` of the pixels where the PSF fitted to its unclipped
#: light reaches the clipping level: a galaxy's light falls more slowly than the PSF's,
#: so that PSF overshoots its peak.  (Faint stars in a clipped galaxy's window make
#: the PSF and a wider profile fit alike.  Over 54 stretched frames of the
#: benchmark's scratch sets, the plateaus of clipped stars cover a median 0.65 of that
#: area, those of clipped galaxies 0.26; the wide-profile test alone missed 52 clipped
#: galaxies there.)
CLIPPED_GALAXY_SOFT_WIDTH = 2.0
CLIPPED_GALAXY_SOFT_GAIN = 1.1
CLIPPED_GALAXY_PLATEAU_SHARE = 0.3
#: ... and where the wider profile fits it more than this many times better, a plateau
#: short of this share is a galaxy's.  (Moffat random scenes r27 and r60, stretched:
#: galaxy cores clipped over 29 and 36 pixels, fitted 1.96 and 1.84 times better by
#: profiles 3.9 and 4.1 PSF widths wide, their plateaus 0.38 and 0.41 of the PSF's
#: reach, were taken as clipped stars, 156 and 153 DN below the truth over the
#: plateau; fresh scene r216, round, 1.65 times and 0.38, 144 DN.  Over the stretched
#: random scenes r0-r287, Moffat and Kolmogorov, the clipped sources fitted 1.6-1.8
#: times better with plateaus of 0.3-0.45 were 12 galaxy cores and 4 stars, each of
#: them on a galaxy's light.  The clipped stars of the stretched Kolmogorov scenes r6,
#: and r66 with its galaxies convolved, that the wider profile fits 1.65-2.0 times
#: better cover 0.52-0.72 on their first fit.  With ``CLIPPED_GALAXY_GAIN`` itself at
#: 1.8, which leaves them the share of ``CLIPPED_STAR_PLATEAU_SHARE``, the one at 0.52
#: stayed whole: -0.26 dB on r6.)
CLIPPED_GALAXY_NEAR_GAIN = 1.6
CLIPPED_GALAXY_NEAR_SHARE = 0.45
#: ... and where it fits ``CLIPPED_GALAXY_ELONGATED_GAIN`` times better, a plateau
#: short of ``CLIPPED_GALAXY_ELONGATED_SHARE`` and more elongated than the PSF by
#: ``CLIPPED_GALAXY_ELONGATION`` (``1 - minor / major`` of its pixels' second
#: moments, over at least ``ELONGATED_PLATEAU_PIXELS``) is a galaxy's: a clipped
#: star's plateau has the PSF's shape, a galaxy's core its own.  (Over the stretched
#: random scenes r0-r287, Moffat and Kolmogorov, the clipped sources of at least 5
#: pixels that the soft test above took for stars, fitted 1.3-2 times better by the
#: wider profile, with plateaus short of 0.6 of the PSF's reach: the plateaus of 53
#: stars clear of galaxies were at most 0.08 more elongated than the PSF (0.18 for
#: one cut by the frame's edge), of 41 galaxy cores 30 more than 0.2, of 41 stars on
#: a galaxy's light 6; fitted 1.2-1.3 times better, of 39 stars clear of galaxies
#: one (a plateau of 6 pixels) 0.28, of 6 galaxy cores 5 more than 0.2, of 3 stars on
#: a galaxy's light none.  Fresh scenes r234 and r186, Moffat: galaxy cores clipped
#: over 33 and 32 pixels, 0.44 and 0.54 more elongated than the PSF, were taken as
#: stars, 148 and 158 DN below the truth; r279 and r237, fitted 1.27 and 1.29 times
#: better, 0.26 more elongated, 177 and 137 DN.  A plateau cut by the frame's edge
#: has no shape of its own: the edge-settings frame ``beta2``, stretched, kept a
#: clipped star of 1.1e4 ADU on the frame's edge whole, its plateau fitted 1.24
#: times better and 0.32 more elongated than the PSF, 21 DN above the truth over
#: 557 pixels.)
CLIPPED_GALAXY_ELONGATED_GAIN = 1.2
CLIPPED_GALAXY_ELONGATED_SHARE = 0.6
CLIPPED_GALAXY_ELONGATION = 0.2
ELONGATED_PLATEAU_PIXELS = 5
#: A clipped source that the wider profile fits ``CLIPPED_GALAXY_GAIN`` times better
#: is still a star if its plateau covers at least this share of the pixels where the
#: PSF fitted to its unclipped light reaches the clipping level (the PSF predicts its
#: plateau), the PSF fits that light to better than ``CLIPPED_STAR_MAX_CHI2`` per
#: pixel, and the wider profile is less than ``CLIPPED_STAR_MAX_WIDTH`` PSF widths
#: wide (short of the widest tried, 5).  Through an asinh stretch a bright star's
#: clipped core is ringed by its wings in the stretch's logarithmic part, which a
#: wider profile fits better than the PSF: with a Kolmogorov PSF, more than twice as
#: well, and the brighter the star the wider (2.6-4.8 PSF widths).  On the
#: benchmark's 58 stretched scratch frames (with and without galaxies convolved), 29
#: clipped stars were kept whole as galaxies (the PSF 2.1-3.7 times worse, 10th to
#: 90th percentile; their plateaus a median 0.63 of that area; the PSF's chi-square
#: 1.6-3.8 per pixel for 23 of them), and this saves 20 of them; the plateaus of the
#: 212 clipped galaxies cover a median 0.25, and of the 6 that cover 0.55 or more, 4
#: go with it (fitted best 4.5-4.7 PSF widths wide) and 2 stay (5 wide, as compact
#: exponential discs are).  A Gaussian disc clipped over 300 pixels, which the PSF
#: fits to 10-11 per pixel, stays.  (Over the stretched random scenes r0-r287, Moffat
#: and Kolmogorov, no galaxy core covered 0.55-1 of that area and was fitted twice as
#: well by a profile narrower than 4.9 PSF widths; the clipped stars that were, the
#: PSF fitted to at most 6.0 per pixel, or to 56-69 with a second clipped star in the
#: plateau.  With this at 5, Kolmogorov scene r246's clipped star of 5.8e6 ADU,
#: fitted to 6.0 per pixel with two fainter stars 5 and 11 px away, was kept whole,
#: 254 DN above the truth within 5 px.)
CLIPPED_STAR_PLATEAU_SHARE = 0.55
CLIPPED_STAR_MAX_CHI2 = 8.0
CLIPPED_STAR_MAX_WIDTH = 4.9
#: ... or, fitted best by the widest profile, if its plateau covers this share, and no
#: more than the PSF's reach.  (The brightest stars of a stretched Kolmogorov frame are
#: ringed widest: on random scene r126, two clipped stars of 2.6e7 and 4.1e7 ADU,
#: fitted best 5 PSF widths wide, their plateaus 0.68 and 0.90 of the PSF's reach,
#: were kept whole, 20 % of the frame's star flux.  Over the stretched random scenes
#: r0-r143, Moffat and Kolmogorov, and r0-r71 with galaxies convolved, the clipped
#: galaxies kept whole that are fitted best that wide cover 0.60-0.63, or 1.25 (a
#: flat top that the PSF does not reach); the clipped stars 0.63-0.91.)
CLIPPED_STAR_WIDEST_SHARE = 0.65
#: ... tested only where the clipping level is less than this many noise sigmas above
#: the background: a display's white level, which bright galaxies reach (15-40 sigma
#: on 8-bit frames).  A full well thousands of sigma up is reached by stars, whose
#: wings may be broader than the Moffat fitted to unsaturated cores (a Kolmogorov
#: PSF's fall as r^-11/3): on ``benchmarks/bench_kolmogorov.py``'s frames the test
#: kept saturated stars whole, and 39 % of the star flux stayed (3.8-4.6 % without it).
CLIPPED_GALAXY_MAX_SNR = 100.0
#: Nothing that went through the optics is narrower than the PSF: a core that a profile
#: narrower by this factor fits much better (chi-square lower by ``GALAXY_CHI2_GAIN``)
#: is the cusp of a galaxy (a Sersic nucleus not smoothed to the PSF) or a cosmic
#: ray, not a star, and stays ...
CUSP_WIDTH = 0.8
#: ... if the PSF on its plane misses its core by more than this fraction of its peak
#: (RMS): on a star of hundreds of sigmas, its own photon noise, which the sky's noise
#: map leaves out, passes a fixed chi-square gain.  (Of the sources kept as cusps on 72
#: frames below 3000 sigma, one star was missed by less than 5 %, by 0.4 %; every
#: other, star or not, by 5 % or more.)
CUSP_MIN_MISMATCH = 0.02
#: A peak that no unsaturated star within 2 FWHM can be fitted with, where the stars
#: already subtracted are brighter than what is left, is their wings' mismatch if what
#: is left is below this fraction of them (a saturated star's wings broader than the
#: Moffat fitted), and a source of its own otherwise: a galaxy's centre a few FWHM from
#: a saturated star, which the star's model outshines there.  (Before, every such peak
#: skipped the galaxy tests: random scene r22, a galaxy 5 px from a saturated star,
#: extended RMSE 1.07 -> 0.83 sigma with galaxies convolved.  With the galaxy tests for
#: every such peak, a test scene's saturated stars with broad wings left 13 % of their
#: flux.)
LEFTOVER_FRACTION = 0.5
#: A clipped peak's fit starts from the centre of its clipped region, and once stars
#: are fitted, also from the centre of what their models leave of the region; the
#: second fit is kept if it fits the window this many times better.  Two clipped stars
#: whose cores touch make one region, and the second, started from the whole region's
#: centre, was fitted beside the first and stayed (a saturated star of 3e6 ADU 7 px
#: from one of 1e7, up to 440 sigma, on a GalSim benchmark frame; the second start
#: fits it 11 times better).  A smaller gain is no second star: what a fitted clipped
#: star's model leaves of its own core is the mismatch of a core that is no Moffat
#: (or, on a stretched frame, of a stretched one), and kept whenever it fitted better
#: at all, such fits ate a clipped galaxy core beside two clipped stars (random scene
#: r66-stretched, -0.46 dB).  It is tried only where the first start fits: started
#: where nothing fitted, it carved a star out of such a core too.
CLIPPED_LEFT_OVER_GAIN = 1.5
#: Two clipped stars whose plateaus touch make one plateau of two lobes joined by a
#: neck.  A lobe whose deepest pixel lies this many pixels further from the
#: plateau's edge than the neck that joins it to the rest is fitted as a star of its
#: own, together with the other lobes of its plateau, unless one of them is a
#: galaxy's core (:meth:`_Fitter._a_lobe_beside_is_a_galaxy`).  (Started from the
#: whole plateau's centre, one PSF went between two clipped stars: Kolmogorov random
#: scene r174, stretched, stars of 1.4e7 and 1.0e7 ADU 19 px apart, the fainter
#: kept 9.6 sigma within 10 px.  Over the random scenes r0-r287 with Moffat and
#: with Kolmogorov stars, every scale, the plateaus of 8 and 7 frames split, all
#: stretched; in 7 and 6 each lobe held a star brighter than a twentieth of the
#: plateau's brightest, and the other was the cores of two galaxies side by side
#: (r228); no single star's plateau split.)
CLIPPED_LOBE_DEPTH = 2.0
#: A clipped plateau of one lobe (no neck: two clipped stars a PSF width or two
#: apart) is two stars where two PSFs on a plane, both centred on the plateau, fit its
#: window this many times better than one.  Started from the whole plateau's centre,
#: one PSF went between the two and the other stayed (GalSim frame g22-linear with
#: Kolmogorov stars: stars of 9.7e6 and 3.0e6 ADU 7.4 px apart, 70 sigma left over
#: 20 px; the pair fits it 6.1 times better).  A galaxy's clipped core is judged
#: with the companion's light taken off (:meth:`_Fitter._clipped_galaxy`).  On the
#: random scenes single clipped stars whose cores are no Moffat (Kolmogorov stars,
#: stretched frames) came to 4.75, and pairs of Kolmogorov stars to 3.2: left.
CLIPPED_PAIR_GAIN = 5.0
#: Star models never take a pixel further than this many noise sigma below the
#: background map: a scene has no light below its sky, so anything deeper is the
#: fitted profile overshooting (a PSF mismatch, e.g. on stretched data whose stars are
#: not Moffat profiles), and is clipped from the model.
SKY_FLOOR_SIGMAS = 3.0
#: A source more elongated than the PSF by this much (second-moment ellipticity) is a
#: piece of a streak, not a star.
STREAK_ELONGATION = 0.25
#: ... tested on sources up to this peak signal-to-noise ratio only: a bright star
#: blended with a neighbour is elongated too, and faint streaks are the ones a star
#: removal must not take for stars.
STREAK_MAX_SNR = 50.0
#: ... and whose light goes on along its major axis (to within 30 degrees) on both
#: sides, from 1.5 to 3 FWHM from its centre, its own PSF (or a pair's) taken off,
#: above the light across the axis by this many sigmas of the difference's noise:
#: two stars side by side are as elongated as a streak.
#: (On 48 benchmark frames the elongation test alone kept 118 sources of 6 to 50
#: sigmas, of which 116 were stars, and 427 stars among 1075 fainter ones.)
STREAK_REACH = (1.5, 3.0)
STREAK_SIGMAS = 2.0
STREAK_ANGLE_TOLERANCE = 30.0
#: A star's model is subtracted out to where it falls below this fraction of the noise.
MODEL_FLOOR = 0.05
#: A clipped core is filled with the light of a ring this many pixels wide around it,
#: as many pixels beyond the clipped pixels and their neighbours: next to them a
#: star's model matches its light least.  (The ring right beside them filled the
#: cores of random scenes r422 (Moffat, sky-subtracted) and r412 (Kolmogorov,
#: linear) 4.7 and 4.3 sigma too high on average, with the light that the models
#: leave at the rim, against 2.6 and 2.0 sigma; over four sets of 72 random scenes,
#: +35 dB summed, 211 frames better, 33 worse, by 0.44 dB at most.)
CORE_RING = 3
#: Plateaus of pixels at or above this fraction of the way from the frame's typical
#: level (its sky) to its maximum are saturated.  Measured from the sky, not from zero:
#: on a frame with a large pedestal (a bias level of 60000 under stars of a few
#: thousand counts) 98 % of the maximum lies below the sky itself.
SATURATION_FRACTION = 0.98
#: The typical level is the median of a regular subsample of about this many pixels,
#: so that a tiled run computes the same level from a frame too large for memory.
TYPICAL_LEVEL_SAMPLES = 100_000
#: ... and so are two such pixels within this relative difference, which leaves room
#: for a sky map subtracted after the clipping (sky-subtracted frames).
FLAT_TOLERANCE = 1e-4
#: ... and so is one such pixel whose neighbours are all below this fraction of it,
LONE_PEAK_FRACTION = 0.85
#: ... if it lies below the peak the PSF fitted to the pixels around it (within this
#: many, centred within the pixel on this grid of offsets) predicts, by more than this
#: fraction.  An unclipped frame's brightest star, sharp and centred on a pixel, stands
#: out as much, and was fitted as a clipped one, on its wings: a companion 1.25 FWHM
#: away kept 35-47 sigma of its light in 2 of 18 scratch pairs, none now.  (Those stars
#: came out 2 % above the prediction, the cores clipped on one pixel of four benchmark
#: frames 2.95-13.5 % below it; at 10 % and at 3 % some of those were fitted whole, up
#: to -0.67 dB.)
LONE_FIT_RADIUS = 2
LONE_FIT_OFFSETS = np.linspace(-0.5, 0.5, 11)
LONE_CLIP_SHORTFALL = 0.01
_ROUNDS = 3
_NO_JACOBIAN = np.empty((0, N_PARAMS))
#: Iterations and relative cost decrease at which a profile fit stops.
_LM_ITERATIONS = 100
_LM_TOLERANCE = 1e-8
_BOX = 32


@dataclass
class StarFit:
    """Result of :func:`fit_and_subtract_stars`.

    Attributes
    ----------
    starless : ndarray
        The input minus the fitted stars, saturated cores filled from the background
        and the light around them, denoised (unless asked not to); NaN where the
        input is not finite.
    stars : ndarray
        ``input - starless`` (NaN where the input is not finite).
    model : ndarray
        The sum of the fitted star profiles alone, clipped where it would take a
        pixel more than ``SKY_FLOOR_SIGMAS`` below the background map or its local
        mean above the data's.
    psf : PSFShape
    n_stars : int
        Stars subtracted (``len(centres)``).
    centres : (n_stars, 2) ndarray
        Their fitted centres ``(row, col)`` in pixels.
    n_extended : int
        Peaks of the first round left in place because a wider profile fits them
        much better or they are elongated: galaxies and streak pieces, but also some
        blends and knots of nebulosity.
    """

    starless: np.ndarray
    stars: np.ndarray
    model: np.ndarray
    psf: PSFShape
    n_stars: int
    centres: np.ndarray
    n_extended: int


def defined_pixels(image):
    """Where ``image`` holds data: finite and of magnitude below ``OVERFLOW_LIMIT``
    (larger values are masked like +-inf).  NumPy or Dask, as given."""
    # (A float64 bound: as a Python float it would be cast to float32 data's type,
    # and overflow.)
    return abs(image) < np.float64(OVERFLOW_LIMIT)


def typical_level_step(shape) -> int:
    """Stride of the regular subsample whose median is a frame's typical level."""
    return max(1, math.isqrt(math.prod(shape) // TYPICAL_LEVEL_SAMPLES))


def saturation_between(typical, largest) -> float:
    """The saturation level of a frame whose typical (sky) level and largest finite
    value are given: ``SATURATION_FRACTION`` of the way from one to the other."""
    return float(typical + SATURATION_FRACTION * (largest - typical))


def saturation_level(image) -> float:
    """The level at and above which a plateau of pixels is saturated: 98 % of the way
    from the frame's typical level (the median of its finite pixels on a regular grid
    of every :func:`typical_level_step`-th row and column) to its largest finite value,
    pixels beyond :func:`defined_pixels` left out; ``nan`` if there is none."""
    finite = np.where(defined_pixels(image), image, np.nan)
    step = typical_level_step(finite.shape)
    with silenced(RuntimeWarning):  # all-NaN: nan, said above
        return saturation_between(np.nanmedian(finite[::step, ::step]),
                                  np.nanmax(finite))


def _saturated(data, finite, level, psf: PSFShape):
    """Clipped pixels: connected plateaus of at least 3 pixels at or above ``level``,
    of 2 at the same value (to ``FLAT_TOLERANCE``), or of 1 whose neighbours are all
    below ``LONE_PEAK_FRACTION`` of it and that is lower than the ``psf`` fitted to
    the pixels around it below ``level`` predicts (:func:`_below_its_psf`).

    An unsaturated star has one or two pixels within a few per cent of its peak; a
    star clipped at the full well (or at 255) has a flat top of several.
    """
    near_max = finite & (data >= level)
    labels, count = ndimage.label(near_max)
    if count == 0:
        return near_max
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    index = np.arange(1, count + 1)
    # (Statistics over the labelled pixels alone: over the whole frame, the label
    # sort that ndimage does for them took 0.8 s of 20 on a 2048 x 2048 frame.)
    plateau_labels = labels[near_max]
    highest = ndimage.maximum(data[near_max], plateau_labels, index)
    flat = np.zeros(count + 1, bool)
    lowest = ndimage.minimum(data[near_max], plateau_labels, index)
    flat[1:] = np.isclose(highest, lowest, rtol=FLAT_TOLERANCE, atol=0)
    # Two pixels at the same level are clipped too (a sharp star's core clipped on
    # two pixels): an unclipped pair of pixels differs by its noise and its shape.
    # A single pixel is clipped when it stands out from all its neighbours (a sharp
    # star's core clipped on one pixel, which the fit would take for its peak); on a
    # broad source touching the white level (a galaxy on a stretched frame) its
    # neighbours come close.
    brightest_neighbour = ndimage.maximum_filter(
        np.where(near_max | ~finite, -np.inf, data), size=3)
    lone = np.zeros(count + 1, bool)
    lone[1:] = (ndimage.maximum(brightest_neighbour[near_max], plateau_labels, index)
                < LONE_PEAK_FRACTION * highest)
    plateau = (sizes >= 3) | ((sizes == 2) & flat)
    # A lone pixel is clipped only if it lies below its PSF: the brightest star of an
    # unclipped frame stands out as much when it is sharp and centred on a pixel.
    # (Pixels at the clip level around it, another star's clipped core, say nothing
    # of its PSF's level.)
    below_level = finite & ~near_max
    boxes = ndimage.find_objects(labels)
    for index in np.nonzero((sizes == 1) & lone)[0]:
        if index > 0:
            rows, cols = boxes[index - 1]
            plateau[index] = _below_its_psf(data, below_level, rows.start, cols.start,
                                            psf)
    plateau[0] = False
    return plateau[labels]


def _clipped_lobes(plateaus):
    """Labels (from 1; 0 off the plateaus) of the lobes of the clipped ``plateaus``
    (labels 1..n, as ``ndimage.label`` gives them): the catchment basins of the
    distance to a plateau's edge around the maxima that stand ``CLIPPED_LOBE_DEPTH``
    above the necks between them; a plateau without two such maxima is one lobe."""
    lobes = np.zeros(plateaus.shape, np.int32)
    count = 0
    for index, box in enumerate(ndimage.find_objects(plateaus), start=1):
        plateau = plateaus[box] == index
        # (The frame's edge is a plateau's edge too.)
        depth = ndimage.distance_transform_edt(np.pad(plateau, 1))[1:-1, 1:-1]
        found = 0
        # (A neck is at least 1 px deep.)
        if depth.max() >= CLIPPED_LOBE_DEPTH + 1:
            # The distance cut ``CLIPPED_LOBE_DEPTH`` below each maximum: a top for
            # each deep enough, one flat connected region (skimage's ``h_maxima``
            # marks the pixels of a top, which may not touch: two pixels of a
            # disc's ridge split it).
            cut = morphology.reconstruction(depth - CLIPPED_LOBE_DEPTH, depth)
            markers, found = ndimage.label(morphology.local_maxima(cut) & plateau,
                                           structure=np.ones((3, 3)))
        if found < 2:
            lobes[box][plateau] = count + 1
            count += 1
            continue
        basins = watershed(-depth, markers, mask=plateau)
        lobes[box][plateau] = basins[plateau] + count
        count += found
    return lobes


def _below_its_psf(data, finite, row, col, psf: PSFShape):
    """Whether pixel (row, col) lies below the peak that ``psf``, fitted to the pixels
    around it (within ``LONE_FIT_RADIUS``, on a constant level, centred within the
    pixel), predicts there, by more than ``LONE_CLIP_SHORTFALL`` of that peak."""
    box = tuple(slice(max(centre - LONE_FIT_RADIUS, 0), centre + LONE_FIT_RADIUS + 1)
                for centre in (row, col))
    stamp = data[box]
    peak = (row - box[0].start, col - box[1].start)
    around = finite[box].copy()
    around[peak] = False
    best_chi2, predicted, level = np.inf, 0.0, 0.0
    for dy, dx in itertools.product(LONE_FIT_OFFSETS, repeat=2):
        profile = moffat_image(stamp.shape, peak[1] + dx, peak[0] + dy, 1.0, psf)
        design = np.column_stack([profile[around], np.ones(int(around.sum()))])
        solution, *_ = np.linalg.lstsq(design, stamp[around], rcond=None)
        chi2 = float(np.sum((design @ solution - stamp[around]) ** 2))
        if chi2 < best_chi2:
            best_chi2 = chi2
            predicted = solution[0] * profile[peak]
            level = solution[1]
    return bool(stamp[peak] - level < (1.0 - LONE_CLIP_SHORTFALL) * predicted)


def _mesh_maps(image, mask):
    """Sigma-clipped median and RMS of ``_BOX`` meshes, filtered over 3 x 3 of them
    (photutils ``Background2D``); ``ValueError`` if every mesh is mostly masked.
    Its ``background`` and ``background_rms`` are interpolated to full size on each
    access, the costliest step, so each caller takes only the maps it uses."""
    with silenced():
        return Background2D(image, _BOX, filter_size=3, sigma_clip=SigmaClip(3.0),
                            bkg_estimator=MedianBackground(),
                            bkg_rms_estimator=StdBackgroundRMS(), mask=mask,
                            exclude_percentile=60)


def _background_maps(image, floor, mask=None):
    try:
        maps = _mesh_maps(image, mask)
        background, rms = maps.background, maps.background_rms
    except ValueError:
        background, rms = _flat_maps(image, mask)
    return background, np.maximum(rms, max(floor, np.finfo(float).tiny))


def _background_map(image, mask):
    """The background map of :func:`_background_maps` alone (its RMS map not
    interpolated)."""
    try:
        return _mesh_maps(image, mask).background
    except ValueError:
        return _flat_maps(image, mask)[0]


def _flat_maps(image, mask):
    """Flat background and RMS maps of what ``mask`` leaves (all of the image if it
    leaves nothing), sigma-clipped: the maps where every mesh is mostly masked."""
    left = None if mask is None or mask.all() else mask
    _, level, noise = sigma_clipped_stats(image, mask=left, sigma=3.0, maxiters=10)
    return np.full(image.shape, level), np.full(image.shape, noise)


def _pixel_noise(image, mask, background, rms, floor):
    """The noise of single pixels, without the scene's structure: no more than
    ``rms``, the RMS map of :func:`_background_maps`.

    A mesh's RMS counts the knots and slopes of a nebula or galaxy across it as noise
    (up to 2.35 times the pixels' noise, a median over the bright extended sources of
    a benchmark scene), which is right for what the noise might make of that
    structure, but not for how far a source stands above its own pixels' noise.  The
    differences of horizontally neighbouring pixels, over the square root of 2, see
    little of that structure; their mesh RMS, scaled to ``rms`` on the darker half of
    the frame (by ``background``), where there is little structure (the scale takes up
    any correlation of the noise between neighbours, as in a resampled frame), is
    that noise, no less than ``floor``.  It is ``rms`` where the differences cannot be
    measured (``mask``, as for ``rms``, covers every mesh)."""
    step = np.empty_like(image)
    step[:, :-1] = (image[:, 1:] - image[:, :-1]) / math.sqrt(2.0)
    step[:, -1] = step[:, -2] if image.shape[1] > 1 else 0.0
    unusable = mask.copy()
    unusable[:, :-1] |= mask[:, 1:]
    try:
        step_rms = _mesh_maps(step, unusable).background_rms
    except ValueError:
        return rms
    dark = (background <= np.median(background)) & (step_rms > 0)
    if not dark.any():
        return rms
    scale = float(np.median(rms[dark] / step_rms[dark]))
    if not np.isfinite(scale):
        return rms
    return np.minimum(rms, np.maximum(scale * step_rms, floor))


def _median(values) -> float:
    """The median of an array of finite values, as :func:`numpy.median` gives it (the
    same order statistics, the mean of the middle two for an even count; ``nan`` if
    empty) without its dispatch: the fits take tens of thousands of medians of a few
    hundred pixels, and that overhead was most of their cost (1.5 s of 20 on a
    2048 x 2048 frame)."""
    values = np.ravel(values)
    count = values.size
    if count == 0:
        return float("nan")
    half = count // 2
    if count % 2:
        return float(np.partition(values, half)[half])
    middle = np.partition(values, (half - 1, half))
    return float((middle[half - 1] + middle[half]) / 2)


class _WindowModel:
    """The PSF, scaled in width, on a local plane over one window.

    The parameters are ``(amplitude, x0, y0, sky, slope_x, slope_y, width)``: the
    profile's peak and centre (column, row) in window pixels, the plane's level at the
    window's centre and its slopes, and the width in PSF widths.  Residuals are
    weighted by the inverse noise of the sky, so that a bright star's core, which
    pins its amplitude and centre down, weighs as much as its sky-limited wings.  The
    fits are compiled (:mod:`pipeline.core.profile_fit`), with an analytic Jacobian.

    The chi-squares that judge the fits (:meth:`chi2`) are in units of each pixel's
    whole noise, of which the sky's is ``sky_share`` (1 by default): a bright star's
    pixels carry its photon noise too.
    """

    #: Bounds of the width, in PSF widths.
    WIDTH_RANGE = (0.5, 5.0)

    def __init__(self, cut, weights, psf: PSFShape, sky_share=None):
        self.cut, self.weights = cut, weights
        self.sky_share = np.ones_like(cut) if sky_share is None else sky_share
        rows, cols = np.mgrid[0:cut.shape[0], 0:cut.shape[1]].astype(np.float64)
        self.cols, self.rows = cols, rows
        self.plane_x = cols - (cut.shape[1] - 1) / 2.0
        self.plane_y = rows - (cut.shape[0] - 1) / 2.0
        self.shape = np.array([
            math.cos(psf.angle), math.sin(psf.angle),
            *psf.core_widths,
            psf.beta])

    def profile(self, x0, y0, width=1.0):
        """The unit-peak profile over the whole window."""
        return self.image(np.array([1.0, x0, y0, 0.0, 0.0, 0.0, width]))

    def image(self, params):
        """The model of ``params`` (one or more profiles on their plane) over the
        whole window."""
        return profile_model(np.asarray(params, dtype=np.float64), self.cols.ravel(),
                             self.rows.ravel(), self.plane_x.ravel(),
                             self.plane_y.ravel(), self.shape,
                             _NO_JACOBIAN).reshape(self.cut.shape)

    def residuals(self, params, pixels):
        """Weighted residuals over ``pixels`` (a boolean mask of the window)."""
        model = profile_model(np.asarray(params, dtype=np.float64), self.cols[pixels],
                              self.rows[pixels], self.plane_x[pixels],
                              self.plane_y[pixels], self.shape, _NO_JACOBIAN)
        return (model - self.cut[pixels]) * self.weights[pixels]

    def chi2(self, params, pixels):
        """The chi-square of the model of ``params`` over ``pixels``."""
        return self.chi2_of(self.residuals(params, pixels), pixels)

    def chi2_of(self, residuals, pixels):
        """The chi-square of ``residuals`` (from :meth:`residuals` or :meth:`fit`
        over ``pixels``)."""
        return float(np.sum((residuals * self.sky_share[pixels]) ** 2))

    def fit(self, start, pixels, free, lower, upper):
        """Least-squares fit of the parameters ``free`` (indices) over ``pixels``,
        the others held at ``start``, within ``lower`` and ``upper``; returns the full
        parameter vector and the weighted residuals
        (:func:`pipeline.core.profile_fit.fit_profile`)."""
        free = np.asarray(list(free), dtype=np.int64)
        bounds = [np.ascontiguousarray(np.broadcast_to(np.asarray(b, dtype=np.float64),
                                                       free.shape)) for b in (lower, upper)]
        return fit_profile(np.asarray(start, dtype=np.float64), free, *bounds,
                           self.cols[pixels], self.rows[pixels], self.plane_x[pixels],
                           self.plane_y[pixels], self.cut[pixels], self.weights[pixels],
                           self.shape, _LM_ITERATIONS, _LM_TOLERANCE)


class _TwoOnAPlane(NamedTuple):
    """Two PSF stars fitted on a free plane (``fitted``, parameters as
    :meth:`_Fitter._fit_pair` gives them, or ``None``; ``chi2``), and the chi-square
    of the profile of the best width on a free plane (``wide_chi2``), over the same
    window pixels."""
    fitted: np.ndarray | None
    chi2: float
    wide_chi2: float


class _Fitter:
    """Fits and subtracts one source at a time from a running model."""

    #: How far beyond the core the rings of :meth:`_nucleus` and :meth:`_pedestal`
    #: reach.
    _RING_REACH = 10

    def __init__(self, data, rms, saturated, finite, psf, pixel_noise=None):
        self.data, self.rms, self.saturated, self.psf = data, rms, saturated, psf
        # (:func:`_pixel_noise`: what a source's brightness is judged against.)
        self.pixel_noise = rms if pixel_noise is None else pixel_noise
        self.finite = finite
        self.clipped = ndimage.binary_dilation(saturated, iterations=2)
        self.plateaus, _ = ndimage.label(saturated)
        self.lobes = _clipped_lobes(self.plateaus)
        self._plateau_boxes = ndimage.find_objects(self.plateaus)
        self.extended_cores = np.zeros_like(saturated)   # clipped, but no star
        self.left_in_place = np.zeros_like(saturated)    # peaks judged no star
        self.kept_whole = np.zeros_like(saturated)       # galaxies no split took
        self.model = np.zeros_like(data)
        self.stars = []         # (amplitude, row, column) of each subtracted star
        self.core = max(2, math.ceil(1.2 * psf.fwhm))
        self.noise = float(np.median(rms))
        # The sky's share of each pixel's noise, the light's photon noise (the PSF
        # stars' light_variance) added; the light smoothed over 3 x 3 pixels so that
        # its own noise does not weigh the bright pixels' residuals down.
        light = _smoothed_light(data, 3)
        self.sky_share = 1.0 / np.sqrt(1.0 + psf.light_variance * light / rms ** 2)
        # max(|dy|, |dx|) from the centre of the largest ring window, cut to size for
        # each source (:meth:`_ring_distance`) rather than built for every one.
        offsets = np.abs(np.arange(-self._RING_REACH - self.core,
                                   self._RING_REACH + self.core + 1))
        self._ring_offsets = np.maximum(offsets[:, None], offsets[None, :])
        # A halo star's rings' noise and contact with clipped cores, by its centre:
        # they depend on the maps alone, and its rings are measured up to four times.
        self._ring_maps = {}

    def _ring_distance(self, row, col, box):
        """``max(|dy|, |dx|)`` from (row, col) over ``box``, a window around it of
        radius at most ``core + _RING_REACH``."""
        top = box[0].start - row + self.core + self._RING_REACH
        left = box[1].start - col + self.core + self._RING_REACH
        return self._ring_offsets[top:top + box[0].stop - box[0].start,
                                  left:left + box[1].stop - box[1].start]

    def _nearest_pixel(self, row, col):
        """The frame's pixel nearest to a fitted position, which may lie just beyond
        its edge (a star centred outside the frame whose wing is in it)."""
        return tuple(np.clip(np.round([row, col]), 0,
                             np.array(self.data.shape) - 1).astype(int))

    def _window(self, row, col, radius):
        h, w = self.data.shape
        return (slice(max(row - radius, 0), min(row + radius + 1, h)),
                slice(max(col - radius, 0), min(col + radius + 1, w)))

    def _profile(self, shape, x, y):
        return moffat_image(shape, x, y, 1.0, self.psf)

    def add(self, row, col):
        """Fit the source peaking near (row, col): ``True`` a star, subtracted;
        ``False`` extended (a galaxy or a piece of a streak), left; ``None`` nothing
        to fit."""
        saturated = bool(self.saturated[row, col])
        if saturated and self.kept_whole[row, col]:
            return False    # (galaxies' cores side by side: _a_lobe_beside_is_a_galaxy)
        # A peak where a star already subtracted is brighter than what is left is
        # that fit's leftover of a blend (a second star a pixel or two away): the two
        # are fitted again together.  Failing that, the galaxy tests below do not
        # apply, since the leftover's width measures the first fit's mismatch.  With
        # no unsaturated star near to fit it with, it is the mismatch of a saturated
        # star's wings only if it is faint beside them (LEFTOVER_FRACTION).  A peak
        # judged no star in an earlier round (a galaxy's nucleus beside a star) is
        # judged so again, not refitted as a leftover once a neighbour's model grows
        # under it.
        left = self.data[row, col] - self.model[row, col]
        outshone = (not saturated and not self.left_in_place[row, col]
                    and self.model[row, col] > left)
        partner = self._blend_partner(row, col) if outshone else None
        if partner is not None and self._refit_blend(row, col, partner):
            return True
        blend_leftover = outshone and (partner is not None or left
                                       < LEFTOVER_FRACTION * self.model[row, col])
        window = self._window(row, col, self.core * (4 if saturated else 1))
        cut = self.data[window] - self.model[window]
        # Clipped pixels and their neighbours say nothing of any source's light.
        usable = self.finite[window] & ~self.clipped[window]
        if saturated:
            light = self.lobes[window] == self.lobes[row, col]
        else:
            light = np.where(usable, np.clip(cut, 0, None), 0)
        # (No light at all, e.g. a peak already taken by a brighter star's model.)
        if usable.sum() < 5 or not np.any(light > 0):
            return None
        weights = 1.0 / self.rms[window]

        # Every profile sits on a local plane: the light of a galaxy or nebula under a
        # star is no part of it, and a galaxy's nucleus is judged against its own
        # surroundings.
        model = _WindowModel(cut, weights, self.psf, self.sky_share[window])
        params = self._fit_from(model, usable, ndimage.center_of_mass(light))
        companion = None
        if saturated and params is not None:
            # The other lobes of its plateau, other clipped stars (see
            # CLIPPED_LOBE_DEPTH), or on a plateau of one lobe a second clipped star
            # whose plateau merged with this one's without a neck (see
            # CLIPPED_PAIR_GAIN, the two then go or stay together): their light is
            # no part of this one's window.
            siblings = self._sibling_lobes(window, row, col)
            if siblings:
                group = self._fit_group(model, usable, [tuple(params[1:3]), *siblings])
                together = None if group is None else group[0].copy()
            else:
                together = self._clipped_pair(model, usable, params, window, row, col)
                if together is not None:
                    companion = together[3:6].copy()
            if together is not None:
                params = np.array([*together[:3], *together[-4:-1], 1.0])
                together[0] = 0.0       # (the others' PSFs alone, no plane)
                together[-4:-1] = 0.0
                cut = cut - model.image(together)
                model = _WindowModel(cut, weights, self.psf, self.sky_share[window])
        if saturated and self.stars and params is not None and companion is None:
            # (A second clipped star whose core touches a fitted one's: see
            # CLIPPED_LEFT_OVER_GAIN.)
            left_over = light & (cut > 0)
            if left_over.any():
                other = self._fit_from(model, usable, ndimage.center_of_mass(left_over))
                if other is not None and (CLIPPED_LEFT_OVER_GAIN
                                          * model.chi2(other, usable)
                                          < model.chi2(params, usable)):
                    params, light = other, left_over
        if params is None:
            return None
        amplitude, x0, y0 = params[:3]
        if saturated:
            params = self._without_companions(model, usable, params)
            amplitude, x0, y0 = params[:3]
        centre = self._nearest_pixel(window[0].start + y0, window[1].start + x0)
        if (partner is not None and self.left_in_place[centre]
                and self.data[centre] - self.model[centre] > self.model[centre]):
            # The fit went over from the leftover of an unclipped star's fit to a peak
            # judged no star before, which the stars' models do not outshine (as
            # ``outshone`` judges): a galaxy's nucleus beside the star, whose light
            # this is.  (A peak judged no star in a bright star's wing, which its
            # model outshines, may be the wing's mismatch with the Moffat, and its
            # light the star's.)
            return None
        if not saturated and self.clipped[centre]:
            # A peak on a clipped core's rim (what a saturated star's fit leaves
            # there) whose centre falls on unusable pixels: nothing bounds its
            # amplitude, which may come out at thousands of sigma.
            return None
        if saturated and self.data[row, col] < CLIPPED_GALAXY_MAX_SNR * self.rms[row, col]:
            if self._clipped_galaxy(model, usable, params, light, self.psf.ellipticity):
                self.extended_cores[window] |= light    # (its clipped plateau)
                return False
            if self._a_lobe_beside_is_a_galaxy(window, row, col, params):
                box = self._plateau_boxes[self.plateaus[row, col] - 1]
                plateau = self.plateaus[box] == self.plateaus[row, col]
                self.extended_cores[box] |= plateau
                self.kept_whole[box] |= plateau
                return False
        local_noise = _median(self.rms[window])
        faint = amplitude <= STREAK_MAX_SNR * local_noise
        if not saturated and faint:
            elongation, angle = self._elongation(cut, usable, amplitude, x0, y0)
            # Two stars side by side are as elongated as a streak, and the one PSF
            # fitted to them may leave light on both sides: where two PSFs fit, the
            # light must go on beyond both.
            if (elongation > STREAK_ELONGATION
                    and self._continues(window, [(amplitude, x0, y0)], angle)):
                pair = self._pair(model, usable, params, model.chi2(params, usable))
                if pair is None or self._continues(window, pair, angle):
                    return False
        if not saturated and not blend_leftover:
            if self._nucleus(row, col, window[0].start + y0, window[1].start + x0,
                             amplitude):
                return False
            dy, dx = np.ogrid[0:cut.shape[0], 0:cut.shape[1]]
            inner = usable & ((dy - y0) ** 2 + (dx - x0) ** 2
                              <= max(2.0, 0.8 * self.psf.fwhm) ** 2)
            # A galaxy is wider than the PSF over the whole window and already in its
            # core; a star blended with a neighbour looks wider over the window only.
            # Widths are judged without the plane, which would take up the broad light
            # that makes a galaxy a galaxy, but on the level of a nebula or disk that a
            # bright source sits in front of (:meth:`_pedestal`); a core narrower
            # than the PSF (CUSP_WIDTH) on its plane, a nucleus against its own galaxy.
            bright = amplitude > PEDESTAL_MIN_SNR * _median(self.pixel_noise[window])
            pedestal = self._pedestal(row, col) if bright else 0.0
            profile = model.profile(x0, y0)[usable] * weights[usable]
            flat = np.array([max(float(profile @ ((cut[usable] - pedestal)
                                                  * weights[usable])
                                       / (profile @ profile)), 1e-9),
                             x0, y0, pedestal, 0.0, 0.0, 1.0])
            # (The PSF on its plane over the core: judged against wider profiles below.)
            on_plane_chi2 = model.chi2(params, inner)
            plane_width, plane_chi2 = self._wider(model, inner, params)
            if plane_width < CUSP_WIDTH and self._core_mismatch(
                    model, inner, params, on_plane_chi2) > CUSP_MIN_MISMATCH:
                # ... or what the fits of stars beside it left of a companion, whose
                # light their planes and a leftover fit took in part ...
                if self._refit_with_neighbours(row, col):
                    return True
                # ... or two stars closer than the PSF resolves, which two PSFs fit
                # well, without a dip between them, where no single width does.
                narrow_chi2 = self._wider(model, usable, params)[1]
                pair = self._pair(model, usable, flat, narrow_chi2, dip=False)
                return self._split(window, pair)
            window_width, window_chi2 = self._wider(model, usable, flat, plane=False)
            if window_width > GALAXY_WIDTH:
                core_width, core_chi2 = self._wider(model, inner, flat, plane=False)
                # ... unless the PSF on its plane fits the core well, and better than
                # the wider profile: a star in front of a galaxy's smooth inner light.
                # A core of a dozen pixels may not tell, when the wider profile fits
                # it no better by more than the noise gives (ON_PLANE_CHI2_GAIN, as
                # the other way round): then the same test over the whole window,
                # where the light of a galaxy's slope is a plane and a galaxy is not.
                # (Not for faint sources, whose window the noise dominates, nor beside
                # clipped pixels, which cut the window's light short.)
                in_front = plane_width <= CORE_WIDTH and (
                    self._fits_on_its_plane(on_plane_chi2, inner.sum(), core_chi2)
                    or (bright and not self.clipped[window].any()
                        and core_chi2 > on_plane_chi2 - ON_PLANE_CHI2_GAIN
                        and self._window_on_its_plane(model, usable, params,
                                                      window_chi2))
                    or (bright and self._core_mismatch(model, inner, params,
                                                       on_plane_chi2)
                        < ON_PLANE_MAX_MISMATCH))
                if core_width > CORE_WIDTH and not in_front:
                    # Two stars closer than the window are as wide as a galaxy, but
                    # two. The one away from this peak may instead be a galaxy's cusp,
                    # which a PSF fits as well as a star: it goes only if it fails
                    # the nucleus test judged at its own centre.
                    two = self._two_on_a_plane(model, usable, flat)
                    stars = self._pair(model, usable, flat, window_chi2, on_a_plane=two)
                    if stars is None and bright:
                        # (A bright star a pixel or two from a galaxy's cusp was kept
                        # whole with the galaxy.)  Kept whole once, at this peak or a
                        # pixel from it, a source is not split so again: the halos
                        # of later rounds change the split of an elongated cusp,
                        # which may then pass.  (Fresh random scene r215: a galaxy's
                        # cusp of 61 sigma 10 px from a clipped star, split 1.75 : 1
                        # in the first round and 2.38 : 1 in the third, whose
                        # brighter half went, -56 sigma.)
                        if self.kept_whole[self._window(row, col, 1)].any():
                            return False
                        if self._star_beside_nucleus(model, two, window, row, col,
                                                     or_kept_whole=True):
                            return True
                        self.kept_whole[row, col] = True
                        return False
                    return self._split_beside_nucleus(window, stars, row, col)
            # A bright star whose core one PSF fits badly may have a galaxy's nucleus
            # beside it, which that PSF takes in: two are fitted, and the nucleus stays.
            if bright and on_plane_chi2 > BESIDE_NUCLEUS_CHI2 * inner.sum():
                two = self._two_on_a_plane(model, usable, flat)
                stars = self._pair(model, usable, flat, model.chi2(params, usable),
                                   on_a_plane=two)
                if stars is not None:
                    return self._split_beside_nucleus(window, stars, row, col)
                # (Taken as one, the star took the cusp beside it with it.)
                if self._star_beside_nucleus(model, two, window, row, col):
                    return True
                # No profile of any width fits its core either, and its window is
                # wider than the PSF: a galaxy's core of its own shape (a Sersic
                # cusp on its bulge), no star that a PSF mismatch or a neighbour
                # disturbs.
                if (window_width > CORE_WIDTH
                        and plane_chi2 > SHAPELESS_CHI2 * inner.sum()
                        and self._core_mismatch(model, inner, params, plane_chi2)
                        > SHAPELESS_MISMATCH):
                    return False
        self._subtract(window, amplitude, x0, y0)
        if companion is not None:
            self._subtract(window, *companion)
        return True

    def _clipped_pair(self, model: _WindowModel, usable, single, window, row, col):
        """Two clipped stars that one plateau of one lobe holds, or ``None``: the
        best fit of two PSFs on a plane (:meth:`_fit_pair`, ``(A1, x1, y1, A2, x2,
        y2, plane..., width)``) from the single star ``single``, taken if both
        amplitudes are positive, both centres lie on the plateau at (row, col), and
        it fits the window ``CLIPPED_PAIR_GAIN`` times better.  Tried only while no
        star is fitted on that plateau: once one is, what its model leaves is its
        own mismatch."""
        label = self.plateaus[row, col]
        if self.stars:
            centres = np.clip(np.round(np.array(self.stars)[:, 1:]), 0,
                              np.array(self.data.shape) - 1).astype(int)
            if np.any(self.plateaus[centres[:, 0], centres[:, 1]] == label):
                return None
        fitted, chi2 = self._fit_pair(model, usable, single, plane=True)
        if (fitted is None or min(fitted[0], fitted[3]) <= 0
                or CLIPPED_PAIR_GAIN * chi2 >= model.chi2(single, usable)):
            return None
        top, left = window[0].start, window[1].start
        for x, y in ((fitted[1], fitted[2]), (fitted[4], fitted[5])):
            if self.plateaus[self._nearest_pixel(top + y, left + x)] != label:
                return None
        return fitted

    def _a_lobe_beside_is_a_galaxy(self, window, row, col, params):
        """Whether another lobe of the clipped plateau at (row, col) is a galaxy's
        clipped core (:meth:`_clipped_galaxy`, fitted from its own centre, with the
        sources beside it), once the star of ``params`` (in ``window``) is taken off:
        the lobes of one plateau are clipped stars or the cores of galaxies side by
        side, and a lobe of a galaxy's core may pass for a star on its own (a
        stretched galaxy's core that the PSF fits to 1.0 per pixel, Kolmogorov
        random scene r228).  (See ``CLIPPED_LOBE_DEPTH``.)"""
        box = self._plateau_boxes[self.plateaus[row, col] - 1]
        lobes, others = self._other_lobes(box, row, col)
        if not others.size:
            return False
        self._subtract(window, *params[:3])
        try:
            for lobe in others:
                centre = np.add(ndimage.center_of_mass(lobes == lobe),
                                (box[0].start, box[1].start))
                lobe_window = self._window(*np.round(centre).astype(int),
                                           4 * self.core)
                cut = self.data[lobe_window] - self.model[lobe_window]
                usable = self.finite[lobe_window] & ~self.clipped[lobe_window]
                light = self.lobes[lobe_window] == lobe
                model = _WindowModel(cut, 1.0 / self.rms[lobe_window], self.psf,
                                     self.sky_share[lobe_window])
                fitted = self._fit_from(model, usable, ndimage.center_of_mass(light))
                if fitted is not None and self._clipped_galaxy(
                        model, usable, self._without_companions(model, usable, fitted),
                        light, self.psf.ellipticity):
                    return True
            return False
        finally:
            stamp, light = self._star_stamp(*self.stars.pop())
            self.model[stamp] -= light

    def _sibling_lobes(self, window, row, col):
        """Centres ((x, y) in ``window``) of the parts in ``window`` of the other
        lobes of the clipped plateau at (row, col)."""
        lobes, others = self._other_lobes(window, row, col)
        return [ndimage.center_of_mass(lobes == lobe)[::-1] for lobe in others]

    def _other_lobes(self, region, row, col):
        """``(lobes, others)``: the lobes' labels over ``region`` (slices of the
        frame), 0 off the clipped plateau at (row, col), and the labels there of that
        plateau's lobes other than the one at (row, col)."""
        lobes = np.where(self.plateaus[region] == self.plateaus[row, col],
                         self.lobes[region], 0)
        return lobes, np.unique(lobes[(lobes > 0) & (lobes != self.lobes[row, col])])

    @staticmethod
    def _fit_from(model: _WindowModel, usable, start):
        """The PSF on a local plane fitted to ``usable`` from ``start`` ((row, col) in
        the window): the amplitude and plane by linear least squares there, then
        everything but the width, kept if the centre moves by less than 2 px in each
        axis (else the linear fit); ``None`` if the amplitude is not positive."""
        y0, x0 = start
        plane = _Fitter._linear_fit(model, usable, [(x0, y0)])
        if plane[0] <= 0:
            return None
        # The plane is light of the scene, so not below the sky at the centre: a
        # negative one would only make up for a PSF whose wings are too broad.
        plane[1] = max(plane[1], 0.0)
        params = np.array([plane[0], x0, y0, *plane[1:], 1.0])
        fitted, _ = model.fit(params, usable, range(6),
                              [-np.inf] * 3 + [0.0] + [-np.inf] * 2, np.inf)
        if fitted[0] > 0 and abs(fitted[1] - x0) < 2 and abs(fitted[2] - y0) < 2:
            return fitted
        return params

    def _without_companions(self, model: _WindowModel, usable, params):
        """The parameters of a clipped star (from its own fit, ``params``) fitted
        again with the sources beside it in its window, so that their light is no
        part of its model: up to ``NEIGHBOURS_MAX`` peaks of the residual (the
        largest value within a FWHM) that stand out by ``RESIDUE_MIN_SNR`` noise
        sigmas, half a FWHM clear of unusable pixels, brightest first, each kept if
        the group with it still fits (:meth:`_fit_group`), to within
        ``PAIR_MAX_CHI2`` per pixel (a galaxy beside the star is no PSF, and fitted
        as one it changed the star's wings over the galaxy).  ``params`` if none is
        kept.  Only the clipped star is taken from the group: the others are judged
        later, as every peak is.  (Fitted on its wings alone, a clipped star took in
        the light of a companion 6-7 px away, whose rest looked narrower than the PSF
        and stayed as a cusp.)"""
        residual = model.cut - model.image(params)
        significance = np.where(usable, residual * model.weights, -np.inf)
        size = 2 * math.ceil(self.psf.fwhm) + 1
        reach = math.ceil(self.psf.fwhm / 2)
        offsets = np.arange(-reach, reach + 1)
        disk = np.hypot(offsets[:, None], offsets[None, :]) <= self.psf.fwhm / 2
        clear = ndimage.binary_erosion(usable, structure=disk, border_value=1)
        peaks = np.argwhere((significance == ndimage.maximum_filter(significance, size))
                            & (significance > RESIDUE_MIN_SNR) & clear)
        if not peaks.size:
            return params
        order = np.argsort(-significance[peaks[:, 0], peaks[:, 1]], kind="stable")
        positions, best = [tuple(params[1:3])], None
        for row, col in peaks[order[:NEIGHBOURS_MAX]]:
            group = self._fit_group(model, usable, positions + [(col, row)])
            if group is not None and group[1] <= PAIR_MAX_CHI2 * usable.sum():
                positions.append((col, row))
                best = group[0]
        if best is None:
            return params
        return np.array([*best[:3], *best[-4:-1], 1.0])

    @staticmethod
    def _core_mismatch(model: _WindowModel, inner, params, chi2):
        """RMS of the residuals of a fit of chi-square ``chi2`` over the core
        ``inner`` (the PSF's of ``params``, or another's), as a fraction of the PSF's
        fitted peak (in units of the sky's noise), the residuals in units of the whole
        noise."""
        peak = params[0] * _median(model.weights[inner])
        return math.sqrt(chi2 / inner.sum()) / peak

    def _split(self, window, stars):
        """Subtract the ``stars`` (from :meth:`_pair`, rows ``(amplitude, x, y)``) and
        return ``True``; ``False`` (the source stays) if there are none."""
        if stars is None:
            return False
        for amplitude, x0, y0 in stars:
            self._subtract(window, amplitude, x0, y0)
        return True

    @staticmethod
    def _fits_on_its_plane(on_plane_chi2, n_pixels, wider_chi2):
        """Whether the PSF on its plane, of chi-square ``on_plane_chi2`` over
        ``n_pixels``, fits to within ``ON_PLANE_MAX_CHI2`` per pixel and better than
        the wider profile (``wider_chi2``) by ``ON_PLANE_CHI2_GAIN``."""
        return (on_plane_chi2 <= ON_PLANE_MAX_CHI2 * n_pixels
                and wider_chi2 - on_plane_chi2 >= ON_PLANE_CHI2_GAIN)

    @staticmethod
    def _window_on_its_plane(model: _WindowModel, usable, params, window_chi2):
        """Whether the PSF on its plane (``params``) fits the whole window as
        :meth:`_fits_on_its_plane` asks, or ``ON_PLANE_WINDOW_GAIN`` times better
        than the wider profile without the plane (``window_chi2``)."""
        on_plane_chi2 = model.chi2(params, usable)
        return (_Fitter._fits_on_its_plane(on_plane_chi2, usable.sum(), window_chi2)
                or window_chi2 >= ON_PLANE_WINDOW_GAIN * on_plane_chi2)

    def _split_beside_nucleus(self, window, stars, row, col):
        """Subtract the star of ``stars`` (from :meth:`_pair`) nearest to the peak
        (row, col), and each other unless it is a galaxy's nucleus (:meth:`_nucleus`)
        or lies on a peak already judged no star (``left_in_place``, as :meth:`add`
        judges such a peak again), which is marked left in place, and return
        ``True``; ``False`` (the source stays) if there are none, as :meth:`_split`
        does.  (Random scene r50: a galaxy's nucleus of 175 sigma, left in place at
        its own peak, went as the partner of a star 4 px from it, since the nucleus
        test judged at the partner's centre failed: -11.7 sigma over it,
        extended-source RMSE 1.20 sigma.)"""
        if stars is None:
            return False
        top, left = window[0].start, window[1].start
        here, *others = self._nearest_first(window, stars, row, col)
        self._subtract(window, *here)
        for amplitude, x, y in others:
            centre_row, centre_col = top + y, left + x
            pixel = self._nearest_pixel(centre_row, centre_col)
            if self.left_in_place[pixel] or self._nucleus(*pixel, centre_row, centre_col,
                                                          amplitude):
                self.left_in_place[pixel] = True
            else:
                self._subtract(window, amplitude, x, y)
        return True

    @staticmethod
    def _nearest_first(window, stars, row, col):
        """``stars`` (rows ``(amplitude, x, y)`` in ``window``) in order of their
        distance to the peak (row, col), the nearest first."""
        top, left = window[0].start, window[1].start
        distance = [math.hypot(y - (row - top), x - (col - left)) for _, x, y in stars]
        return stars[np.argsort(distance, kind="stable")]

    def _star_beside_nucleus(self, model: _WindowModel, two: _TwoOnAPlane, window,
                             row, col, *, or_kept_whole=False):
        """For a bright source that no pair of stars fits as :meth:`_pair` asks (a
        star a pixel or two from a galaxy's cusp: the cusp is no PSF, and at that
        distance there is no dip between them): the two PSFs on a free plane of
        ``two`` (:meth:`_two_on_a_plane`, the fits that :meth:`_pair` judged), taken if
        they fit better than the wider profile on its plane and lie half a FWHM
        apart or more, the one nearer the peak (row, col) is
        ``STAR_BESIDE_NUCLEUS_RATIO`` times as bright as the other and
        ``STAR_OVER_GALAXY`` times the plane, and the other, once the first is
        subtracted, is a nucleus (:meth:`_nucleus`).  Then the first is
        subtracted, the other marked left in place, and ``True`` returned; with
        ``or_kept_whole`` (a source kept whole otherwise) the first also stays
        subtracted, and ``True`` is returned, when the other is no nucleus but the
        two fit ``STAR_BESIDE_PAIR_GAIN`` times better than the wider profile; else
        nothing changes and ``False``.  Two PSFs split an elongated galaxy's core
        into two of about the same brightness, neither a nucleus, and can be carved
        out of a galaxy's core whose light is comparable to theirs."""
        fitted = two.fitted
        if fitted is None or two.chi2 >= two.wide_chi2:
            return False
        stars = fitted[:6].reshape(2, 3)
        if stars[:, 0].min() <= 0 or not self._inside(model, stars[:, 1], stars[:, 2]):
            return False
        top, left = window[0].start, window[1].start
        here, other = self._nearest_first(window, stars, row, col)
        apart = math.hypot(here[1] - other[1], here[2] - other[2])
        if (here[0] < STAR_BESIDE_NUCLEUS_RATIO * other[0]
                or here[0] < STAR_OVER_GALAXY * fitted[6]
                or apart < 0.5 * self.psf.fwhm):
            return False
        self._subtract(window, *here)
        pixel = self._nearest_pixel(top + other[2], left + other[1])
        if self._nucleus(*pixel, top + other[2], left + other[1], other[0]):
            self.left_in_place[pixel] = True
            return True
        if or_kept_whole and STAR_BESIDE_PAIR_GAIN * two.chi2 < two.wide_chi2:
            return True     # (the other is judged at its own peak later)
        stamp, light = self._star_stamp(*self.stars.pop())
        self.model[stamp] -= light
        return False

    @staticmethod
    def _clipped_galaxy(model: _WindowModel, usable, params, plateau, psf_ellipticity):
        """Whether a clipped source is a galaxy (on stretched frames, bright galaxies
        reach the white level): the PSF fits its unclipped light badly
        (``CLIPPED_GALAXY_CHI2`` per pixel), and a profile wider by ``GALAXY_WIDTH``
        at least ``CLIPPED_GALAXY_GAIN`` times better; or one wider by
        ``CLIPPED_GALAXY_SOFT_WIDTH`` fits ``CLIPPED_GALAXY_SOFT_GAIN`` times better,
        and the plateau covers less than ``CLIPPED_GALAXY_PLATEAU_SHARE`` of the
        pixels where the PSF reaches the clipping level (less than
        ``CLIPPED_GALAXY_NEAR_SHARE`` where it fits ``CLIPPED_GALAXY_NEAR_GAIN`` times
        better, or where it fits ``CLIPPED_GALAXY_ELONGATED_GAIN`` times better and
        the plateau, short of ``CLIPPED_GALAXY_ELONGATED_SHARE`` of them and clear of
        the window's edge, is more elongated than ``psf_ellipticity`` by
        ``CLIPPED_GALAXY_ELONGATION``).  In the first case the source is still a
        star if the PSF's chi-square is below ``CLIPPED_STAR_MAX_CHI2`` per pixel and
        its plateau covers ``CLIPPED_STAR_PLATEAU_SHARE`` of them with the wider
        profile less than ``CLIPPED_STAR_MAX_WIDTH`` wide, or, that profile the
        widest tried, ``CLIPPED_STAR_WIDEST_SHARE`` of them and no more.
        The wider profile is centred on the clipped ``plateau`` (to within a pixel
        of its bounding box): free to move, with the clipped core unusable, it went
        over to a source beside the core and fitted that instead (two saturated
        stars 10 px apart on a stretched frame were kept as a galaxy, 12 % of the
        frame's star flux)."""
        psf_chi2 = model.chi2(params, usable)
        rows, cols = np.nonzero(plateau)
        within = ((cols.min() - 1.0, rows.min() - 1.0),
                  (cols.max() + 1.0, rows.max() + 1.0))
        width, wide_chi2 = _Fitter._wider(model, usable, params, within=within)
        if width <= GALAXY_WIDTH or psf_chi2 <= CLIPPED_GALAXY_CHI2 * usable.sum():
            return False
        # (A plateau visited again, under the model its first fit left, lies below
        # that model: then every pixel would count.)
        level = model.cut[plateau].min()
        reach = np.count_nonzero(model.image(params) >= level) if level > 0 else 0
        if psf_chi2 > CLIPPED_GALAXY_GAIN * wide_chi2:
            if width < CLIPPED_STAR_MAX_WIDTH:
                star_plateau = plateau.sum() >= CLIPPED_STAR_PLATEAU_SHARE * reach > 0
            else:
                star_plateau = reach >= plateau.sum() >= CLIPPED_STAR_WIDEST_SHARE * reach
            return not (star_plateau and psf_chi2 < CLIPPED_STAR_MAX_CHI2 * usable.sum())
        if (width <= CLIPPED_GALAXY_SOFT_WIDTH
                or psf_chi2 <= CLIPPED_GALAXY_SOFT_GAIN * wide_chi2):
            return False
        # (A plateau that reaches the window's edge, the frame's, is cut there: its
        # shape is not its own.)
        whole = (rows.min() > 0 and cols.min() > 0 and rows.max() < plateau.shape[0] - 1
                 and cols.max() < plateau.shape[1] - 1)
        if (whole and psf_chi2 > CLIPPED_GALAXY_ELONGATED_GAIN * wide_chi2
                and ELONGATED_PLATEAU_PIXELS <= plateau.sum()
                < CLIPPED_GALAXY_ELONGATED_SHARE * reach
                and _plateau_ellipticity(plateau)
                > psf_ellipticity + CLIPPED_GALAXY_ELONGATION):
            return True
        if psf_chi2 > CLIPPED_GALAXY_NEAR_GAIN * wide_chi2:
            return plateau.sum() < CLIPPED_GALAXY_NEAR_SHARE * reach
        return plateau.sum() < CLIPPED_GALAXY_PLATEAU_SHARE * reach

    def _ring_level(self, row, col, inner, outer):
        """Median light in a square ring ``inner < max(|dy|, |dx|) <= outer`` around
        (row, col), stars already fitted removed (``nan`` if no pixel)."""
        box = self._window(row, col, outer)
        ring = (self._ring_distance(row, col, box) > inner) & self.finite[box]
        values = (self.data[box] - self.model[box])[ring]
        return _median(values)

    def _nucleus(self, row, col, y0, x0, amplitude):
        """Whether the source centred at ``(y0, x0)``, of peak ``amplitude``, is the
        nucleus of a galaxy, which no width test tells from a star: convolved with the
        PSF, the centre of a concentrated galaxy (Sersic index 3 or 4) is as narrow
        as the PSF.

        Its own PSF taken off, the light in a ring just outside the source's window
        exceeds the light further out by ``NUCLEUS_SIGMAS`` of the noise and
        ``NUCLEUS_MIN_FRACTION`` of the peak, in each quadrant of the ring, and the
        ring's first harmonic (how far off the source that light is centred) is at
        most a quarter of that excess beyond twice its noise: the light falls off
        away from the source in every direction, as a galaxy's does around its
        nucleus.  A star beside a galaxy's centre or on a nebula's slope has that
        light on one side; an elongated galaxy is point-symmetric.
        """
        box = self._window(row, col, self.core + self._RING_REACH)
        rows, cols = np.ogrid[box[0], box[1]]
        shape = (box[0].stop - box[0].start, box[1].stop - box[1].start)
        own = moffat_image(shape, x0 - box[1].start, y0 - box[0].start, amplitude,
                           self.psf)
        residual = self.data[box] - self.model[box] - own
        distance = self._ring_distance(row, col, box)
        near = self.finite[box] & (distance > self.core) & (distance <= self.core + 4)
        far = self.finite[box] & (distance > self.core + 4)
        whole_ring = (2 * self.core + 9) ** 2 - (2 * self.core + 1) ** 2
        if near.sum() < whole_ring or not far.any():
            return False    # (on the frame's edge or beside masked pixels: unknown)
        far_level = _median(residual[far])
        excess = _median(residual[near]) - far_level
        if excess <= max(NUCLEUS_SIGMAS * self.rms[row, col],
                         NUCLEUS_MIN_FRACTION * amplitude):
            return False
        quadrants, noise = [], []
        for below in (rows < y0, rows >= y0):
            for left in (cols < x0, cols >= x0):
                quadrant = near & below & left
                quadrants.append(_median(residual[quadrant]) - far_level)
                noise.append(MEDIAN_NOISE * _median(self.rms[box][quadrant])
                             / math.sqrt(quadrant.sum()))
        # Quadrants 0 and 3, and 1 and 2, are opposite.
        off_centre = 0.5 * math.hypot(
            quadrants[1] + quadrants[3] - quadrants[0] - quadrants[2],
            quadrants[2] + quadrants[3] - quadrants[0] - quadrants[1])
        off_centre_noise = 0.5 * math.sqrt(sum(n * n for n in noise))
        return (min(quadrants) > 0.0
                and off_centre <= 2.0 * off_centre_noise + 0.25 * excess)

    def _pedestal(self, row, col):
        """The scene's light under a source that is not the source's own.

        Light as bright further out as just outside the source's window is a nebula
        or disk that a star sits in front of: its level just outside the window is
        taken off before the width is judged.  Light that falls off away from the
        source (brighter just outside the window than further out by
        ``CENTRED_LIGHT`` of the noise) may be the source's own, a galaxy's whose
        nucleus this is, or a nebula's slope: only the level further out is taken
        off, so that a galaxy's light near its nucleus stays and makes it wide, while
        a star on a slope is judged on little more than its own light.
        """
        near = self._ring_level(row, col, self.core, self.core + 4)
        far = self._ring_level(row, col, self.core + 4, self.core + self._RING_REACH)
        if not np.isfinite(near + far):
            return 0.0
        if near - far > CENTRED_LIGHT * self.rms[row, col]:
            return max(far, 0.0)
        return max(near, 0.0)

    def _elongation(self, cut, usable, amplitude, x0, y0):
        """``(excess, angle)``: how much more elongated the source is than the PSF,
        and the direction of its major axis (radians from the column axis).

        Ellipticities from second moments in a Gaussian window of one FWHM around the
        fitted centre, of the data and of the fitted PSF profile alike: a piece of a
        straight streak is far more elongated than any star.
        """
        rows, cols = np.mgrid[0:cut.shape[0], 0:cut.shape[1]].astype(np.float64)
        dy, dx = rows - y0, cols - x0
        window = np.exp(-(dx**2 + dy**2) / (2.0 * self.psf.fwhm**2)) * usable

        def ellipticity(light):
            weights = window * np.clip(light, 0.0, None)
            total = weights.sum()
            if total <= 0:
                return 0.0, 0.0
            xx, yy = (weights * dx**2).sum() / total, (weights * dy**2).sum() / total
            xy = (weights * dx * dy).sum() / total
            if xx + yy <= 0:
                return 0.0, 0.0     # all the light in one pixel at the centre: round
            return (math.hypot(xx - yy, 2.0 * xy) / (xx + yy),
                    0.5 * math.atan2(2.0 * xy, xx - yy))

        model = amplitude * self._profile(cut.shape, x0, y0)
        data_ellipticity, angle = ellipticity(cut)
        return data_ellipticity - ellipticity(model)[0], angle

    def _continues(self, window, stars, angle):
        """Whether the light of an elongated source, the ``stars`` fitted to it (rows
        ``(amplitude, x, y)`` in ``window``'s pixels, one or two), goes on along its
        major axis ``angle`` (radians from the column axis), on both sides, beyond
        them: a streak does, two stars side by side (as elongated as a streak) do
        not.

        On each side, the mean of the light (the stars' PSFs taken off) over a band
        three pixels wide along the axis, from ``STREAK_REACH[0]`` to
        ``STREAK_REACH[1]`` FWHM from the first star's centre, must exceed the light
        across the axis (the median over the two bands at right angles, the stars
        already fitted taken off too, if it is above the sky) by ``STREAK_SIGMAS``
        times the difference's noise, for some direction within
        ``STREAK_ANGLE_TOLERANCE`` of ``angle`` (the axis of a faint piece is known
        to about that).
        """
        fwhm = self.psf.fwhm
        y0, x0 = window[0].start + stars[0][2], window[1].start + stars[0][1]
        along = np.arange(STREAK_REACH[0] * fwhm, STREAK_REACH[1] * fwhm + 0.5)
        across = np.array([-1.0, 0.0, 1.0])
        box = self._window(int(round(y0)), int(round(x0)),
                           math.ceil(STREAK_REACH[1] * fwhm) + 2)
        top, left = box[0].start, box[1].start
        shape = (box[0].stop - top, box[1].stop - left)
        # (Stars already fitted stay in: a piece of a streak taken for a star must
        # not cut the streak short for its neighbours.)
        light = self.data[box].copy()
        for amplitude, x, y in stars:
            light -= moffat_image(shape, window[1].start + x - left,
                                  window[0].start + y - top, amplitude, self.psf)
        noise = _median(self.rms[box])
        tolerance = math.radians(STREAK_ANGLE_TOLERANCE)

        # (Across the axis, the stars already fitted are taken off too: their wings
        # are no light of a nebula.)
        cleaned = light - self.model[box]

        def band(direction, side, light=light):
            """The ``light`` over the band on one side of the centre along
            ``direction``, ``None`` if that band lies beyond the frame's edge."""
            cos, sin = math.cos(direction), math.sin(direction)
            t = side * along[:, None]
            rows = (y0 - top + t * sin + across[None, :] * cos).ravel()
            cols = (x0 - left + t * cos - across[None, :] * sin).ravel()
            inside = ((rows >= 0) & (rows <= shape[0] - 1)
                      & (cols >= 0) & (cols <= shape[1] - 1))
            if not inside.any():
                return None
            return ndimage.map_coordinates(light, [rows[inside], cols[inside]], order=1)

        def goes_on(sides, reference=0.0, reference_variance=0.0):
            # (About one independent value per pixel of a band.)
            return min((values.mean() - reference)
                       / (noise * math.sqrt(1.0 / values.size + reference_variance))
                       for values in sides) > STREAK_SIGMAS

        for direction in angle + np.linspace(-tolerance, tolerance, 13):
            sides = [band(direction, side) for side in (1.0, -1.0)]
            if sides[0] is None or sides[1] is None:
                return True     # (the frame's edge: nothing to tell)
            # (Judged against the sky first: the light across the axis can only make
            # the test stricter.)
            if not goes_on(sides):
                continue
            # Light smooth on this scale (a nebula, a galaxy's disk) lies across the
            # axis as much as along it: the sides are judged against the median of
            # the bands across the axis at the same distances (a median, since a
            # star may lie there), where that is above the sky.  (Below it, the sky
            # map is off there, and the light is judged against the sky, as it was:
            # measured against such a level, a pair of stars on a sky-subtracted
            # frame was kept as a streak.)
            crossing = [values for values in (band(direction + math.pi / 2, side, cleaned)
                                              for side in (1.0, -1.0))
                        if values is not None]
            if not crossing:
                return True     # (nothing across the axis within the frame to tell)
            crossing = np.concatenate(crossing)
            reference = float(np.median(crossing))
            if reference <= 0 or goes_on(sides, reference,
                                         MEDIAN_NOISE ** 2 / crossing.size):
                return True
        return False

    @staticmethod
    def _wide_fit(model: _WindowModel, pixels, params, plane=True, within=None):
        """``(width, chi2)`` of the profile of the best width (in PSF widths) over
        ``pixels``, fitted from ``params`` (its centre ``(x, y)`` between the
        corners ``within``, if given)."""
        # Amplitude, centre, the plane unless it is held at zero, and the width.
        free = [0, 1, 2, 3, 4, 5, 6] if plane else [0, 1, 2, 6]
        height, width = model.cut.shape
        lower = np.array([0.0, -5.0, -5.0, 0.0, -np.inf, -np.inf,
                          _WindowModel.WIDTH_RANGE[0]])
        upper = np.array([np.inf, width + 5.0, height + 5.0, np.inf, np.inf, np.inf,
                          _WindowModel.WIDTH_RANGE[1]])
        if within is not None:
            lower[1:3], upper[1:3] = within
        wide, residuals = model.fit(params, pixels, free, lower[free], upper[free])
        return float(wide[6]), model.chi2_of(residuals, pixels)

    @staticmethod
    def _wider(model: _WindowModel, pixels, params, plane=True, within=None):
        """``(width, chi2)``: the best width (in PSF widths) over ``pixels`` and its
        chi-square, or 1 and the PSF's if not significantly better."""
        psf_chi2 = model.chi2(params, pixels)
        if pixels.sum() < 8 or psf_chi2 <= GALAXY_CHI2_GAIN:
            return 1.0, psf_chi2    # (too few pixels, or no profile can do better)
        width, wide_chi2 = _Fitter._wide_fit(model, pixels, params, plane, within)
        if psf_chi2 - wide_chi2 > GALAXY_CHI2_GAIN:
            return width, wide_chi2
        return 1.0, psf_chi2

    @staticmethod
    def _two_on_a_plane(model: _WindowModel, usable, single) -> _TwoOnAPlane:
        """The fits that :meth:`_pair` judges with ``dip``: two PSF stars on a free
        plane, and the profile of the best width on a free plane, both from the
        single star ``single`` (made once where :meth:`_star_beside_nucleus` judges
        them too)."""
        fitted, chi2 = _Fitter._fit_pair(model, usable, single, plane=True)
        return _TwoOnAPlane(fitted, chi2, _Fitter._wide_fit(model, usable, single)[1])

    def _pair(self, model: _WindowModel, usable, single, wide_chi2, *, dip=True,
              on_a_plane: _TwoOnAPlane | None = None):
        """Two PSF stars for a source wider (or narrower) than the PSF, three where two
        do not fit (:meth:`_with_a_third_star`), or ``None``.

        The second star starts where the data most exceed the best single star
        ``single`` (parameters on the window's pedestal).  The pair is taken if it
        fits better than the best single profile (``wide_chi2``) and to within
        ``PAIR_MAX_CHI2`` per pixel, both centres lie in the window, and (with
        ``dip``) the light dips between them by ``PAIR_DIP`` noise sigmas: an
        elongated galaxy, which two stars side by side may fit as well, has its
        brightest light between them.  A cusp has no such shape to share with a
        pair, and a pair closer than the PSF resolves has no dip.  With ``dip``, a
        pair that fits ``PAIR_CLEAR_GAIN`` times better than the single profile, to
        within ``PAIR_CLEAR_MAX_CHI2`` per pixel, needs no dip: a galaxy's light is
        no sum of two PSFs.

        With ``dip`` the pair sits on a free plane, as a single star does: two stars
        on a galaxy's slope miss a flat pedestal by the slope, and were kept as a
        galaxy.  Its rival is then the wider profile on a free plane too, which
        fits a galaxy's curved light as well as two PSFs on a plane do.  Without
        ``dip`` (the pair of a cusp) the pedestal stays flat: with a free plane there
        too, a survey generator frame lost 5.7 dB (its extended sources' RMSE 0.30 ->
        0.77 sigma).  ``on_a_plane``: the fits with ``dip``
        (:meth:`_two_on_a_plane`), if already made.
        Returns the stars as rows ``(amplitude, x, y)``.
        """
        if dip:
            if on_a_plane is None:
                on_a_plane = self._two_on_a_plane(model, usable, single)
            fitted, chi2 = on_a_plane.fitted, on_a_plane.chi2
            wide_chi2 = min(wide_chi2, on_a_plane.wide_chi2)
        else:
            fitted, chi2 = self._fit_pair(model, usable, single, plane=False)
        if fitted is None:
            return None
        xs, ys = fitted[[1, 4]], fitted[[2, 5]]
        clear = dip and (PAIR_CLEAR_GAIN * chi2 <= wide_chi2
                         and chi2 <= PAIR_CLEAR_MAX_CHI2 * usable.sum())
        if (chi2 >= wide_chi2 or (chi2 > PAIR_MAX_CHI2 * usable.sum() and not clear)
                or min(fitted[0], fitted[3]) <= 0
                or not self._inside(model, xs, ys)):
            return self._with_a_third_star(model, usable, fitted, wide_chi2)
        if not dip or clear:
            return fitted[:6].reshape(2, 3)
        light = ndimage.map_coordinates(model.cut, [[*ys, ys.mean()], [*xs, xs.mean()]],
                                        order=1, mode="nearest")
        depth = (min(light[0], light[1]) - light[2]) * _median(model.weights)
        return fitted[:6].reshape(2, 3) if depth > PAIR_DIP else None

    @staticmethod
    def _fit_pair(model: _WindowModel, usable, single, *, plane):
        """The best fit of two PSF stars (:meth:`_pair`), on a free plane if
        ``plane`` (else on the pedestal of ``single``): ``(parameters, chi-square)``,
        or ``(None, inf)`` if the data nowhere exceed the single star."""
        # The single profile's centre lies between the two stars, and a fit from
        # there may stop in a local minimum; a second one starts from the window's
        # brightest pixel and its largest excess over a star there.
        brightest = np.unravel_index(np.argmax(np.where(usable, model.cut, -np.inf)),
                                     model.cut.shape)
        free = range(9) if plane else range(6)
        lower = np.array([0.0, -np.inf, -np.inf, 0.0, -np.inf, -np.inf,
                          0.0, -np.inf, -np.inf])[:len(free)]
        fitted, chi2 = None, np.inf
        for x0, y0 in ((single[1], single[2]), (brightest[1], brightest[0])):
            first = single[0] * model.profile(x0, y0) + single[3]
            excess = np.where(usable, model.cut - first, -np.inf)
            row, col = np.unravel_index(np.argmax(excess), excess.shape)
            if excess[row, col] <= 0:
                continue
            start = np.array([single[0], x0, y0, excess[row, col], col, row,
                              *single[3:]])
            trial, residuals = model.fit(start, usable, free, lower, np.inf)
            trial_chi2 = model.chi2_of(residuals, usable)
            if trial_chi2 < chi2:
                fitted, chi2 = trial, trial_chi2
        return fitted, chi2

    @staticmethod
    def _inside(model: _WindowModel, xs, ys):
        """Whether every centre ``(xs, ys)`` lies on the window's pixels."""
        height, width = model.cut.shape
        return bool(np.all((xs > -0.5) & (xs < width - 0.5)
                           & (ys > -0.5) & (ys < height - 0.5)))

    @staticmethod
    def _with_a_third_star(model: _WindowModel, usable, pair, wide_chi2):
        """Three PSF stars on a plane for a source that two do not fit (a star between
        two companions, which was kept whole as a galaxy, or as a cusp when their
        light on its plane made it look narrower than the PSF): the third starts where
        the data most exceed the ``pair``'s fit (parameters on its plane).  Taken, as
        ``(3, 3)`` stars, only if the three fit to within ``PAIR_MAX_CHI2`` per pixel
        and ``TRIPLE_CLEAR_GAIN`` times better than the best single profile (a galaxy's
        light is no sum of PSFs), every centre in the window; else ``None``."""
        excess = np.where(usable, model.cut - model.image(pair), -np.inf)
        row, col = np.unravel_index(np.argmax(excess), excess.shape)
        if excess[row, col] <= 0:
            return None
        start = np.concatenate([pair[:6], [excess[row, col], col, row], pair[6:]])
        fitted, residuals = model.fit(start, usable, range(12),
                                      np.array([0.0, -np.inf, -np.inf] * 4), np.inf)
        chi2 = model.chi2_of(residuals, usable)
        stars = fitted[:9].reshape(3, 3)
        if (chi2 > PAIR_MAX_CHI2 * usable.sum() or TRIPLE_CLEAR_GAIN * chi2 > wide_chi2
                or stars[:, 0].min() <= 0
                or not _Fitter._inside(model, stars[:, 1], stars[:, 2])):
            return None
        return stars

    def _stars_within_reach(self, row, col):
        """Indices in ``stars`` of the subtracted stars within 2 FWHM of (row, col),
        nearest first (the lower index first at equal distances)."""
        if not self.stars:
            return []
        centres = np.array([star[1:] for star in self.stars])
        distance = np.hypot(centres[:, 0] - row, centres[:, 1] - col)
        near = np.flatnonzero(distance <= 2.0 * self.psf.fwhm)
        return near[np.argsort(distance[near], kind="stable")].tolist()

    def _unsaturated_star(self, index):
        """Whether the subtracted star ``index`` is centred on an unclipped pixel."""
        _, star_row, star_col = self.stars[index]
        return not self.saturated[self._nearest_pixel(star_row, star_col)]

    def _blend_partner(self, row, col):
        """Index in ``stars`` of the subtracted star nearest to (row, col) if it lies
        within 2 FWHM and is unsaturated (one :meth:`_refit_blend` can fit again), else
        ``None``."""
        near = self._stars_within_reach(row, col)
        if not near or not self._unsaturated_star(near[0]):
            return None
        return near[0]

    def _refit_blend(self, row, col, nearest):
        """Fit the peak at (row, col) together with the subtracted star ``nearest``
        (from :meth:`_blend_partner`): ``True`` if both fit, their models then
        replacing the first one's; ``False`` with nothing changed otherwise."""
        first_amplitude, first_row, first_col = self.stars[nearest]
        distance = math.hypot(first_row - row, first_col - col)
        window = self._window(int(round((row + first_row) / 2)),
                              int(round((col + first_col) / 2)),
                              self.core + math.ceil(distance / 2))
        first_stamp, first = self._star_stamp(first_amplitude, first_row, first_col)
        self.model[first_stamp] -= first
        cut = self.data[window] - self.model[window]
        usable = self.finite[window]
        model = _WindowModel(cut, 1.0 / self.rms[window], self.psf)
        top, left = window[0].start, window[1].start
        fitted = self._fit_group(model, usable, [(first_col - left, first_row - top),
                                                (col - left, row - top)])
        if fitted is None:
            self.model[first_stamp] += first
            return False
        self._replace_with_group([nearest], window, fitted[0])
        return True

    def _refit_with_neighbours(self, row, col):
        """Fit the peak at (row, col) again with the unsaturated subtracted stars within
        2 FWHM (at most ``NEIGHBOURS_MAX``): ``True`` if, by linear least squares at
        the centres, the peak and exactly one of them have light, and the two then fit
        as a pair (to ``PAIR_MAX_CHI2`` per pixel, neither moving by 2 px); their
        models then replace the neighbours', whose others, at no light, were leftovers
        of the first fit.  ``False`` with nothing changed otherwise."""
        group = [index for index in sorted(self._stars_within_reach(row, col))
                 if self._unsaturated_star(index)]
        if not 0 < len(group) <= NEIGHBOURS_MAX:
            return False
        rows = np.array([row] + [self.stars[index][1] for index in group])
        cols = np.array([col] + [self.stars[index][2] for index in group])
        reach = float(np.max(np.hypot(rows - rows.mean(), cols - cols.mean())))
        window = self._window(int(round(rows.mean())), int(round(cols.mean())),
                              self.core + math.ceil(reach))
        removed = [self._star_stamp(*self.stars[index]) for index in group]
        for stamp, light in removed:
            self.model[stamp] -= light
        cut = self.data[window] - self.model[window]
        usable = self.finite[window]
        model = _WindowModel(cut, 1.0 / self.rms[window], self.psf)
        positions = list(zip(cols - window[1].start, rows - window[0].start))
        linear = self._linear_fit(model, usable, positions)
        lit = [k for k in range(1, len(positions)) if linear[k] > 0]
        fitted = None
        if linear[0] > 0 and len(lit) == 1:
            fitted = self._fit_group(model, usable, [positions[lit[0]], positions[0]])
        if fitted is None or fitted[1] > PAIR_MAX_CHI2 * usable.sum():
            for stamp, light in removed:
                self.model[stamp] += light
            return False
        self._replace_with_group(group, window, fitted[0])
        return True

    def _replace_with_group(self, indices, window, group):
        """Replace the subtracted stars ``indices`` (whose models are already taken
        off) by the stars of ``group`` (``A1, x1, y1, A2, x2, y2, ...`` in ``window``,
        then the plane)."""
        for index in sorted(indices, reverse=True):
            del self.stars[index]
        for first in range(0, len(group) - 4, 3):
            self._subtract(window, *group[first:first + 3])

    @staticmethod
    def _fit_group(model: _WindowModel, usable, positions):
        """PSFs starting at ``positions`` ((x, y) in the window) on a plane:
        amplitudes and plane by linear least squares, then everything but the width by
        the nonlinear fit.  ``(params, chi2)``, or ``None`` if an amplitude is not
        positive or a centre moves by 2 px."""
        count = len(positions)
        linear = _Fitter._linear_fit(model, usable, positions)
        if min(linear[:count]) <= 0:
            return None
        start = np.array([value for amplitude, (x, y) in zip(linear, positions)
                          for value in (amplitude, x, y)]
                         + [max(linear[count], 0.0), linear[count + 1],
                            linear[count + 2], 1.0])
        lower = np.array([0.0, -np.inf, -np.inf] * (count + 1))
        fitted, residuals = model.fit(start, usable, range(3 * count + 3), lower,
                                      np.inf)
        centres = 3 * np.arange(count)
        moved = np.hypot(fitted[centres + 1] - start[centres + 1],
                         fitted[centres + 2] - start[centres + 2])
        if fitted[centres].min() <= 0 or moved.max() >= 2.0:
            return None
        return fitted, model.chi2_of(residuals, usable)

    @staticmethod
    def _linear_fit(model: _WindowModel, usable, positions):
        """Amplitudes of PSFs at ``positions`` ((x, y) in the window) and a plane's
        three coefficients, by weighted linear least squares over ``usable``."""
        weights = model.weights[usable]
        design = np.column_stack(
            [model.profile(x, y)[usable] for x, y in positions]
            + [np.ones(int(usable.sum())), model.plane_x[usable], model.plane_y[usable]]
        ) * weights[:, None]
        solution, *_ = np.linalg.lstsq(design, model.cut[usable] * weights, rcond=None)
        return solution

    def _star_stamp(self, amplitude, row, col):
        """``(stamp, model)``: a star's model out to where it falls below
        ``MODEL_FLOOR`` of the noise."""
        psf = self.psf
        # The major axis reaches furthest.
        alpha = psf.core_widths[0]
        reach = alpha * math.sqrt((amplitude / (MODEL_FLOOR * self.noise))
                                  ** (1.0 / psf.beta))
        stamp = self._window(int(round(row)), int(round(col)),
                             int(min(reach + 2, max(self.data.shape))))
        shape = (stamp[0].stop - stamp[0].start, stamp[1].stop - stamp[1].start)
        return stamp, amplitude * self._profile(shape, col - stamp[1].start,
                                                row - stamp[0].start)

    def _subtract(self, window, amplitude, x0, y0):
        """Subtract a star fitted at (x0, y0) of ``window``."""
        row, col = window[0].start + y0, window[1].start + x0
        self.stars.append((amplitude, row, col))
        stamp, model = self._star_stamp(amplitude, row, col)
        self.model[stamp] += model

    def add_halos(self, wings_in_the_sky_map=None):
        """Add to the model the halo of each clipped star and each star above
        ``HALO_MIN_SNR``, brightest first: the light the models leave around it
        (:meth:`_halo_rings`, measured again after the brighter stars' halos, less
        the scene's light that does not fall with the wing,
        :func:`~pipeline.core.halos.scene_pedestal`), no more than
        ``HALO_WING_TOLERANCE`` times its amplitude times the frame's wing
        (:func:`~pipeline.core.halos.stacked_wing`), out to where that stands above
        ``HALO_SIGMAS`` of its noise, and never rising outwards from its brightest
        ring (the rings inside that are the rim of a clipped core, where the model
        overshoots); see :mod:`pipeline.core.halos`.  Where the unclipped stars are
        too faint to show the wing, it is measured on the clipped ones
        (``FAINT_WING_CLIPPED_STARS``).

        ``wings_in_the_sky_map``, if given, maps the model to how far the background
        map stands above the sky without the fitted stars (the same map measured on
        the data less the model).  Where only clipped stars measure the wing (a
        display stretch clips every bright star), their many overlapping wings, below
        the source mask, raise the background map, and the rings measured against it
        lie below the sky: that much is given back to the rings.  (Kolmogorov random
        scene r3, stretched, 121 clipped stars: their rings 6-29 px out lay 3.5-7.4 DN
        below the map, the stacked wing was 0, no star got a halo, and 10.0 % of the
        star flux stayed; 8.2 % with this.  Where unclipped stars measure the wing,
        the rings are left as they are: the light given back there, 0.1-0.2 sigma,
        made the wing of a frame whose stars have none stand out, and halos took a
        nebula under clipped stars, -57 DN within 12 px of them.)  The halos are
        then measured once more, with the map measured on the data less the model
        and its halos: the wings beyond the Moffat raise the map as well.

        A star's rings are taken unbiased (:func:`~pipeline.core.halos.halo_profile`)
        where no source is left in place near it, or where its four quadrants agree
        (:func:`~pipeline.core.halos.quadrants_agree`): the first round of fits,
        before the halos, may leave the peaks of a clipped star's own wing in place."""
        bright = [(amplitude, row, col, self._nearest_pixel(row, col))
                  for amplitude, row, col in sorted(self.stars, key=lambda s: -s[0])]
        bright = [(amplitude, row, col, pixel) for amplitude, row, col, pixel in bright
                  if self.saturated[pixel]
                  or amplitude >= HALO_MIN_SNR * self.rms[pixel]]
        # The wing is measured on unclipped stars, whose amplitudes are measured too,
        # or else on enough clipped ones (CLIPPED_WING_STARS), with no source left in
        # place (a galaxy's nucleus) near them.
        clear = [(amplitude, row, col, pixel) for amplitude, row, col, pixel in bright
                 if not self.left_in_place[self._window(*pixel, HALO_CLEARANCE)].any()]
        stack = [star for star in clear if not self.saturated[star[3]]]
        clipped = [star for star in clear if self.saturated[star[3]]]
        # (A wing measured on clipped stars, whose amplitudes come from a Moffat
        # fitted to their wings, through a display's stretch, which bends a bright
        # star's wing more than a faint one's, has no shape that every star shares.)
        wing_has_its_shape = bool(stack)
        if not stack:
            stack = clipped if len(clipped) >= CLIPPED_WING_STARS else []
        clear_pixels = {pixel for *_, pixel in clear}

        def add_all(sky_offset):
            self._add_halos_against(sky_offset, bright, stack, clipped, clear_pixels,
                                    wing_has_its_shape)

        against_the_sky = (stack and not wing_has_its_shape
                           and wings_in_the_sky_map is not None)
        if not against_the_sky:
            add_all(None)
            return
        without_halos = self.model.copy()
        add_all(wings_in_the_sky_map(self.model))
        # The wings beyond the Moffat raise the map too: measured again without the
        # halos as well.  (Kolmogorov random scene r78, stretched: the map stood
        # 11-20 DN above the sky 10-20 px around its brightest stars, 1-2 DN of it
        # given back against the models without halos.)
        with_halos, self.model = self.model, without_halos
        add_all(wings_in_the_sky_map(with_halos))

    def _add_halos_against(self, sky_offset, bright, stack, clipped, clear_pixels,
                           wing_has_its_shape):
        """The halos of :meth:`add_halos`, the rings measured with ``sky_offset``:
        the frame's wing measured on ``stack`` (or on ``clipped``, where the unclipped
        stars of ``stack`` show none), then each star of ``bright`` given its halo,
        unbiased if it is one of ``clear_pixels`` or its quadrants agree."""
        def wing_of(stars):
            return stacked_wing([amplitude for amplitude, *_ in stars],
                                [self._halo_rings(row, col, pixel, sky_offset)
                                 for _, row, col, pixel in stars])

        wing = wing_of(stack)
        if (wing_has_its_shape and not wing.any()
                and len(clipped) >= FAINT_WING_CLIPPED_STARS):
            # Too faint on the unclipped stars, the wing may stand out around the
            # clipped ones, whose light is far greater.  (No sky offset either way:
            # there are unclipped stars.)
            wing = wing_of(clipped)
        for amplitude, row, col, pixel in bright:
            measured = self._halo_rings(row, col, pixel, sky_offset)
            if measured is None:
                continue
            star_wing = amplitude * wing[measured.inner:]
            level = measured.level
            if wing_has_its_shape:
                level = level - scene_pedestal(star_wing, level, measured.error)
            # (A star whose four quadrants agree is clear of sources whatever was
            # left in place near it: on a stretched frame, peaks of its own wing,
            # judged before the halos.)
            unbiased = pixel in clear_pixels or quadrants_agree(measured.spread)
            profile = halo_profile(star_wing, measured.inner, level, measured.error,
                                   unbiased=unbiased)
            if profile is not None:
                self.model[measured.window] += profile[np.minimum(measured.ring,
                                                                  HALO_REACH)]

    def _halo_rings(self, row, col, pixel, sky_offset=None):
        """The light that the model leaves around the star at (row, col), ring by ring
        (one pixel wide, in the PSF's elliptical radius) from one FWHM, or from the
        first ring with pixels beyond the clipped cores in two quadrants, out to
        ``HALO_REACH``.

        Returns :class:`~pipeline.core.halos.HaloRings`, each ring's level the
        lowest median of its four quadrants, so that a galaxy or a neighbour on one
        side is no part of it; ``None`` if no ring has usable pixels in two
        quadrants.  ``sky_offset`` (an array like the frame), if given, is added to
        the light first."""
        window = self._window(*pixel, HALO_REACH)
        dy = np.arange(window[0].start, window[0].stop)[:, None] - row
        dx = np.arange(window[1].start, window[1].stop)[None, :] - col
        cos, sin = math.cos(self.psf.angle), math.sin(self.psf.angle)
        u, v = dx * cos + dy * sin, dy * cos - dx * sin
        major, minor = self.psf.core_widths
        mean_width = math.sqrt(major * minor)
        ring = np.hypot(u * (mean_width / major), v * (mean_width / minor)).astype(int)
        first = math.ceil(self.psf.fwhm)
        if first >= HALO_REACH:
            return None
        inside = (self.finite[window] & ~self.clipped[window] & (ring >= first)
                  & (ring < HALO_REACH))
        if not inside.any():
            return None
        labels = np.where(inside, 4 * ring + 2 * (u >= 0) + (v >= 0), -1)
        index = np.arange(4 * first, 4 * HALO_REACH)
        shape = (HALO_REACH - first, 4)
        counts = ndimage.sum_labels(inside, labels, index).reshape(shape)
        # The rings start where two quadrants have pixels beyond the clipped cores.
        measurable = np.count_nonzero(counts, axis=1) >= 2
        if not measurable.any():
            return None
        start = int(np.argmax(measurable))
        inner = first + start
        residual = (self.data[window] - self.model[window])[inside]
        if sky_offset is not None:
            residual = residual + sky_offset[window][inside]
        medians = np.where(counts > 0,
                           np.reshape(ndimage.median(residual, labels[inside], index),
                                      shape), np.inf)[start:]
        if (row, col) not in self._ring_maps:
            radii = np.arange(inner, HALO_REACH)
            noise = (self.rms[window] / self.sky_share[window])[inside]
            self._ring_maps[row, col] = (
                np.asarray(ndimage.median(noise, ring[inside], radii)),
                ndimage.sum_labels(self.clipped[window], ring, radii) > 0)
        ring_noise, near_clipped = self._ring_maps[row, col]
        quadrant_error = (MEDIAN_NOISE * ring_noise[:, None]
                          / np.sqrt(np.maximum(counts[start:], 1)))
        lowest = np.argmin(medians, axis=1)
        rows = np.arange(medians.shape[0])
        level = medians[rows, lowest]
        error = quadrant_error[rows, lowest]
        spread = quadrant_spread(medians, quadrant_error)
        return HaloRings(window, ring, inner, level, error, near_clipped, spread)


def _plateau_ellipticity(plateau) -> float:
    """``1 - minor / major`` of a clipped plateau (a boolean mask), from its pixels'
    second moments, each pixel a unit square."""
    rows, cols = np.nonzero(plateau)
    covariance = np.cov(np.vstack([rows, cols]).astype(np.float64)) + np.eye(2) / 12.0
    minor, major = np.linalg.eigvalsh(covariance)
    return 1.0 - math.sqrt(minor / major)


def _fill_clipped_cores(starless, holes, background, finite):
    """Fill each clipped core (in place) with the background map plus the median
    light above it in a ring ``CORE_RING`` pixels beyond the core (see there): a
    saturated star in front of a nebula or galaxy hides that light too, and the data
    say nothing of it inside."""
    labels, _ = ndimage.label(holes)
    above = starless - background
    reach = 2 * CORE_RING
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        grown = tuple(slice(max(s.start - reach, 0), s.stop + reach) for s in box)
        core = labels[grown] == index
        inside = ndimage.binary_dilation(core, iterations=CORE_RING)
        around = (ndimage.binary_dilation(inside, iterations=CORE_RING) & ~inside
                  & ~holes[grown] & finite[grown])
        level = _median(above[grown][around]) if around.any() else 0.0
        starless[grown][core] = background[grown][core] + max(level, 0.0)


def _average_under_bright_stars(starless, valid, under, scale, *, noise, model,
                                kept):
    """Replace ``starless`` (in place) on ``under`` by its Gaussian average of width
    ``scale`` over the ``valid`` pixels, but for the light of sources left in place:
    a ``kept`` pixel that stands out from the average by more than
    ``KEPT_LIGHT_SIGMAS`` of its ``noise`` and by more than ``KEPT_LIGHT_SHARE`` of
    the stars' ``model`` there keeps its value, and is left out of the average."""
    if not under.any():
        return

    def average_over(pixels):
        weight = ndimage.gaussian_filter(pixels.astype(np.float64), scale)
        total = ndimage.gaussian_filter(np.where(pixels, starless, 0.0), scale)
        return total / np.maximum(weight, np.finfo(float).tiny)

    average = average_over(valid)
    departure = np.abs(starless - average)
    light = kept & under & (departure > np.maximum(KEPT_LIGHT_SIGMAS * noise,
                                                   KEPT_LIGHT_SHARE * model))
    if light.any():
        average = average_over(valid & ~light)
    replaced = under & ~light
    starless[replaced] = average[replaced]


def _smoothed_light(image, size):
    """``image``'s light for its photon noise: averaged over ``size`` x ``size`` pixels,
    so that the noise of a pixel does not raise (or lower) its own estimate, and at
    least 0."""
    return np.maximum(ndimage.uniform_filter(image, size), 0.0)


def _with_photon_noise(residual, rms, model, usable, scene_light_variance):
    """The noise map with the photon noise of the light above the sky added: the
    subtracted stars' (``model``) and the scene's own (galaxies, nebulae:
    ``residual``, the starless image above the background map, smoothed over
    ``PHOTON_NOISE_SMOOTHING`` pixels and at least 0).

    On linear data a pixel's light carries its photon noise, ``light / gain`` in
    variance, which the sky's noise map does not know (the map is measured with the
    sources masked); the denoising would leave it.  Under the stars, the factor is
    measured on the residual where their models are bright
    (:func:`~pipeline.core.psf.light_variance`), so that no gain is needed and what
    the fits leave there counts too; on stretched data, whose stretch compresses the
    noise of bright pixels, it comes out at 0.  The scene's is
    ``scene_light_variance``, the PSF stars' (:attr:`PSFShape.light_variance`): a
    fit's mismatch is no noise of a galaxy's light.
    """
    scene = _smoothed_light(residual, PHOTON_NOISE_SMOOTHING)
    variance = rms ** 2 + scene_light_variance * scene
    bright = usable & (model > PHOTON_NOISE_MIN_SNR * rms)
    if np.count_nonzero(bright) >= 50:
        variance += max(light_variance(residual[bright], rms[bright], model[bright]),
                        0.0) * model
    return np.sqrt(variance)


def _faint_peaks(fitter: _Fitter, psf: PSFShape) -> np.ndarray:
    """``(row, col)`` of the sources below ``DETECTION_SIGMAS`` at their peak pixel that
    a PSF-matched filter finds above ``MATCHED_SIGMAS``, best first, clear of the
    stars already subtracted (their models' reach and the surroundings of the bright
    ones)."""
    half = int(math.ceil(2 * psf.fwhm))
    kernel = moffat_image((2 * half + 1,) * 2, half, half, 1.0, psf)
    # Zero-sum, so that light smooth on the kernel's scale (nebulae, galaxy disks)
    # adds nothing; unit norm, so that the filtered noise is that of the input.
    kernel -= kernel.mean()
    kernel /= np.sqrt(np.sum(kernel ** 2))
    residual = (fitter.data - fitter.model) / fitter.rms
    matched = ndimage.correlate(residual, kernel, mode="nearest")
    peaks = local_maxima(matched, min_distance=max(1, int(psf.fwhm // 2)),
                         threshold_abs=MATCHED_SIGMAS, exclude_border=False)
    rows, cols = peaks[:, 0], peaks[:, 1]
    keep = ((residual[rows, cols] < DETECTION_SIGMAS) & fitter.finite[rows, cols]
            & (fitter.model[rows, cols] <= MODEL_FLOOR * fitter.rms[rows, cols]))
    stars = np.array(fitter.stars).reshape(-1, 3)
    bright = stars[stars[:, 0] > RESIDUE_MIN_SNR * fitter.noise]
    if bright.size and peaks.size:
        distance = np.hypot(bright[:, 1][None] - rows[:, None],
                            bright[:, 2][None] - cols[:, None]).min(axis=1)
        keep &= distance > FAINT_CLEARANCE * psf.fwhm
    peaks = peaks[keep]
    return peaks[np.argsort(-matched[peaks[:, 0], peaks[:, 1]], kind="stable")]


def fit_and_subtract_stars(image, *, psf: PSFShape | None = None,
                           saturation: float | None = None,
                           black_point: float | None = None,
                           denoise: bool = True) -> StarFit:
    """Remove the stars of ``image`` by fitting its PSF (see the module notes).

    Parameters
    ----------
    image : (M, N) array_like
        The frame in any units: linear, sky-subtracted or stretched; NaN pixels are
        masked data.  It is not modified.
    psf : PSFShape, optional
        The PSF; by default measured on ``image`` (:func:`measure_psf`).
    saturation : float, optional
        Plateaus of 3 or more pixels at or above this level (or of 2 at the same
        value, or 1 pixel well above its neighbours and below the peak the PSF fitted
        to them predicts) are saturated; by default :func:`saturation_level` of
        ``image``; ``numpy.inf`` for a frame known to be unclipped.  A tile of a
        larger frame passes the frame's, since its own maximum may be that of an
        unsaturated star.
    black_point : float, optional
        The level at which a display stretch clips the noise below (an 8-bit
        picture whose black point cuts into the sky); by default
        :func:`pipeline.core.censoring.find_black_point` of ``image``;
        ``-numpy.inf`` for a frame known to be unclipped.  A tile passes the
        frame's.  The denoised starless image is taken from the mean of the
        clipped noise there to the scene's level behind it
        (:func:`pipeline.core.censoring.uncensored`).
    denoise : bool, optional
        Denoise the star-subtracted image (non-local means in units of the noise map).

    Returns
    -------
    StarFit

    Raises
    ------
    ValueError
        If the PSF cannot be measured (no bright, isolated star), or as
        :func:`pipeline.core.validation.validate_plane`.
    TypeError
        As :func:`pipeline.core.validation.validate_plane`.

    References
    ----------
    .. [1] P. B. Stetson, "DAOPHOT: a computer program for crowded-field stellar
       photometry", PASP 99, 191-222, 1987.
    .. [2] A. Buades, B. Coll and J.-M. Morel, "A non-local algorithm for image
       denoising", CVPR 2005.
    """
    plane = validate_plane(image, all_masked=True)   # (a tile: it comes out as NaN)
    data = plane.astype(np.float64)
    # Values whose squares overflow in the background statistics are masked, like
    # +-inf.
    finite = defined_pixels(data)
    if psf is None:
        psf = measure_psf(data)
    level = float(np.median(data[finite]))    # (not nanmedian: +-inf is masked too)
    noiseless = noiseless_regions(data)
    data[~finite] = level
    if saturation is None:
        saturation = saturation_level(data)
    elif saturation != math.inf:    # (+inf: a frame known to be unclipped)
        saturation = real_number(saturation, "saturation")
    if black_point is None:
        black_point = find_black_point(np.where(finite, plane, np.nan))
    elif black_point != -math.inf:
        black_point = real_number(black_point, "black_point")
    saturated = _saturated(data, finite, saturation, psf)
    noiseless &= ~saturated
    rms_floor = noise_floor(plane)
    background, rms = _background_maps(data, rms_floor, mask=~finite | noiseless)
    # A region of one value at or below the sky holds no light and no noise (a
    # mosaic's zero-filled border, a sky clipped at the black point): it is masked
    # data, like NaN, and comes out as it went in.
    no_data = noiseless & (data - background <= DETECTION_SIGMAS * rms)
    # So is a pixel far below the sky, which no light and no noise put there: a cold
    # pixel, a bad column, a sentinel value (-32768, -1e10).  Left in, it steers the
    # fits around it, and a value like -1e10 the denoising's patch distances over
    # the whole frame.
    no_data |= finite & (data - background < -DEAD_SIGMAS * rms)
    valid = finite & ~no_data
    data[no_data] = background[no_data]
    sources = ndimage.binary_dilation((data - background) / rms > 3.0, iterations=2)
    sky_mask = sources | saturated | noiseless | ~finite
    background, rms = _background_maps(data, rms_floor, mask=sky_mask)

    pixel_noise = _pixel_noise(data, sky_mask, background, rms, rms_floor)

    def wings_in_the_sky_map(model):
        """How far the background map stands above the same map measured without
        the stars' ``model`` (:meth:`_Fitter.add_halos`)."""
        return background - _background_map(data - model, sky_mask)

    fitter = _Fitter(data - background, rms, saturated, valid, psf, pixel_noise)
    n_extended = 0
    for round_ in range(_ROUNDS):
        peaks = local_maxima((fitter.data - fitter.model) / rms,
                             min_distance=max(1, int(psf.fwhm // 2)),
                             threshold_abs=DETECTION_SIGMAS, exclude_border=False)
        if round_ == 0:
            centres = ndimage.center_of_mass(saturated, fitter.lobes,
                                             range(1, fitter.lobes.max() + 1))
            cores = np.array([[round(r), round(c)] for r, c in centres], int)
            peaks = np.vstack([cores.reshape(-1, 2), peaks])
        strength = np.where(saturated[peaks[:, 0], peaks[:, 1]], np.inf,
                            fitter.data[peaks[:, 0], peaks[:, 1]])
        added = 0
        for row, col in peaks[np.argsort(-strength, kind="stable")]:
            if not valid[row, col]:
                continue
            outcome = fitter.add(row, col)
            added += outcome is True
            n_extended += outcome is False and round_ == 0
            fitter.left_in_place[row, col] |= outcome is False
        if round_ == 0:
            fitter.add_halos(wings_in_the_sky_map)
        if added == 0:
            break

    for row, col in _faint_peaks(fitter, psf):
        fitter.add(row, col)

    # Where the models would dig below the sky, they overshoot (SKY_FLOOR_SIGMAS).
    # The same test on local means, which sees a shallow overshoot spread over many
    # pixels (PSF wings broader than the stars'): the model is scaled down where its
    # local mean exceeds that of the data by more than the mean's noise.
    size = 2 * max(1, int(round(psf.fwhm / 2))) + 1
    light = ndimage.uniform_filter(data - background, size)
    mean_model = ndimage.uniform_filter(fitter.model, size)
    allowed = np.maximum(light + SKY_FLOOR_SIGMAS * rms / size, 0.0)
    over = mean_model > allowed
    # (Not next to clipped cores, whose data say nothing of the star's light.)
    over &= ~ndimage.binary_dilation(saturated, iterations=2 + size)
    scale = np.ones_like(data)
    scale[over] = allowed[over] / mean_model[over]
    floor = background - SKY_FLOOR_SIGMAS * rms
    model = np.minimum(fitter.model * scale, np.maximum(data - floor, 0.0))
    starless = data - model
    extended = ndimage.binary_dilation(fitter.extended_cores, iterations=2)
    _fill_clipped_cores(starless, fitter.clipped & ~extended, background, valid)
    original = np.asarray(plane, dtype=np.float64)
    if denoise:
        above = starless - background
        noisy = _with_photon_noise(above, rms, model, valid & ~fitter.clipped,
                                   psf.light_variance)
        normalised = above / noisy
        starless = background + noisy * denoise_nl_means(
            normalised, h=DENOISE_CUTOFF, sigma=1.0, patch_size=5, patch_distance=6,
            fast_mode=True)
        reach = max(1, int(round(KEPT_LIGHT_REACH * psf.fwhm)))
        kept = (ndimage.binary_dilation(fitter.left_in_place, iterations=reach)
                & ~ndimage.binary_dilation(fitter.clipped, iterations=reach))
        _average_under_bright_stars(starless, valid, model > STAR_NOISE_SNR * rms,
                                    psf.fwhm, noise=noisy, model=model, kept=kept)
        # (Denoised, it is the mean of the pixels, which noise clipped at a black
        # point lifts above the scene.)
        starless = uncensored(np.where(valid, starless, original), model, original,
                              black_point, step=math.sqrt(12.0) * rms_floor)
    starless[~valid] = original[~valid]
    stars = np.full(original.shape, np.nan)
    defined = np.isfinite(original)     # (pixels beyond OVERFLOW_LIMIT included)
    stars[defined] = original[defined] - starless[defined]
    # (One add() can subtract two or three stars, or refit a neighbour's: the count is
    # the stars in the model, not the calls that returned True.)
    star_centres = np.array([star[1:] for star in fitter.stars],
                            dtype=np.float64).reshape(-1, 2)
    return StarFit(starless=starless, stars=stars, model=model, psf=psf,
                   n_stars=len(star_centres), centres=star_centres,
                   n_extended=int(n_extended))
