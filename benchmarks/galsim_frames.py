"""Survey benchmark frames whose stars and galaxies GalSim draws, not this project.

:func:`build_galsim_frame` builds a :class:`survey_frames.Frame` from the same
:class:`survey_frames.FrameSpec` as :func:`survey_frames.build_frame`, with the same
conventions, but with its stars and galaxies drawn by GalSim (Rowe et al. 2015), so that
the method's scores are not only measured on frames of the project's own generator:

- **stars**: ``galsim.Kolmogorov(fwhm=spec.fwhm)`` for ``spec.psf == "kolmogorov"``,
  else ``galsim.Moffat(beta=spec.moffat_beta, fwhm=spec.fwhm)``, sheared to the axis
  ratio ``1 - spec.ellipticity`` at the position angle ``spec.psf_theta`` (GalSim's
  shear keeps the area, so ``fwhm`` stays the geometric-mean FWHM), drawn with the
  pixel's response (GalSim's default) at one pixel per unit.  The centres and the
  power-law fluxes are :func:`survey_frames.draw_stars`' from the same random stream
  as ``build_frame``'s, so one spec gives the same star catalogue with either builder.
  Each star is drawn on a square stamp that reaches where its wings fall below 0.01
  effective sigma and that holds all but 0.2 % of its flux (at most 256 px out);
- **bright galaxies** (``spec.n_bright_galaxies``): Sersic profiles (n 0.6-4) or
  bulge + disk mixtures (de Vaucouleurs + exponential), sheared (ellipticity up to 0.7),
  half-light radius 3-30 px (of the disk for a mixture), surface brightness at the
  half-light radius 1.5-6 effective sigma, as ``build_frame``'s bright galaxies;
- **compact faint galaxies** (``spec.n_galaxies``, in place of the package's faint
  galaxies): Sersic profiles (n 0.6-2.5) of half-light radius 1-3 px, surface
  brightness at that radius 2-10 sigma; half of them are put 2-4 FWHM from a star, the
  hard case of a small galaxy beside a star;
- every galaxy is convolved with the stars' PSF, as in a real frame (``build_frame``
  convolves its bright galaxies only with ``spec.convolve_galaxies``; here that flag
  is ignored);
- the sky, its gradient, the nebula, the streak and the read noise are the package's
  (:func:`survey_frames.package_layers` with no galaxy) and the photon noise, the full
  well, the three scales, the catalogue, ``extended_mask`` and ``sigma`` are
  :func:`survey_frames.observe`'s, as for ``build_frame``.

A frame is deterministic in ``spec.seed``.  GalSim is an optional dependency
(``pip install -e ".[bench]"``).
"""

from __future__ import annotations

import math

import galsim
import numpy as np
from scipy.optimize import brentq
from scipy.special import gammainc, gammaincinv

from survey_frames import (Frame, FrameSpec, draw_stars, linear_sigma, observe,
                           package_layers, random_streams)

__all__ = ["build_galsim_frame", "galsim_psf", "stamp_radii", "render_galsim_stars",
           "render_galsim_galaxies"]

#: A star's stamp reaches where its wings fall below this many effective sigmas...
WING_SIGMAS = 0.01
#: ...and holds all but this fraction of its flux...
STAMP_FLUX_MISSED = 0.002
#: ...but reaches no further than this many pixels from its centre.
MAX_STAMP_RADIUS = 256

#: The stars' accuracy: GalSim's defaults cut a bright Moffat's wings (its real-space
#: profile is zero beyond where 1e-5 of the flux lies) and leave FFT ringing of 1e-7
#: of the flux, a fraction of sigma 100 px from a star of 5e7 ADU.  With these the
#: drawn wings follow the profile to 1e-10 of the flux.
STAR_GSPARAMS = galsim.GSParams(xvalue_accuracy=1e-12, kvalue_accuracy=1e-10,
                                maxk_threshold=1e-8)
#: The galaxies' accuracy: GalSim's defaults, with room for the FFT of a large
#: de Vaucouleurs profile.
GALAXY_GSPARAMS = galsim.GSParams(maximum_fft_size=16384)


def galsim_psf(spec: FrameSpec, gsparams: galsim.GSParams = STAR_GSPARAMS):
    """The stars' PSF of unit flux that ``spec`` names, sheared to its ellipticity.

    Parameters
    ----------
    spec : FrameSpec
        ``psf``, ``fwhm``, ``moffat_beta``, ``ellipticity`` and ``psf_theta``.
    gsparams : galsim.GSParams
        The accuracy of the drawing.

    Returns
    -------
    galsim.GSObject
    """
    if spec.psf == "kolmogorov":
        psf = galsim.Kolmogorov(fwhm=spec.fwhm, gsparams=gsparams)
    elif spec.psf == "moffat":
        psf = galsim.Moffat(beta=spec.moffat_beta, fwhm=spec.fwhm, gsparams=gsparams)
    else:
        raise ValueError(f"unknown psf {spec.psf!r}")
    return psf.shear(q=1.0 - spec.ellipticity, beta=spec.psf_theta * galsim.radians)


def _frame_image(shape) -> galsim.ImageD:
    """An empty GalSim image whose pixel (x, y) is numpy's ``[y, x]``, one unit per
    pixel (without ``scale`` GalSim would draw at the profile's Nyquist scale)."""
    h, w = shape
    return galsim.ImageD(w, h, xmin=0, ymin=0, scale=1.0)


def stamp_radii(psf, flux, wing_limit):
    """Each star's stamp half-size and the PSF's pixel value at its centre.

    The unit PSF is drawn once, centred on a pixel of a stamp of ``MAX_STAMP_RADIUS``;
    a star of flux ``F`` gets the smallest half-size beyond which ``F`` times the
    PSF stays below ``wing_limit`` and inside which all but ``STAMP_FLUX_MISSED`` of
    its flux lies.

    Parameters
    ----------
    psf : galsim.GSObject
        The stars' PSF of unit flux (:func:`galsim_psf`).
    flux : ndarray
        The stars' total fluxes.
    wing_limit : float
        The level the wings must fall below, in the fluxes' units.

    Returns
    -------
    radii : ndarray of int
        Half-sizes, 2 to ``MAX_STAMP_RADIUS``.
    unit_peak : float
        The unit PSF's value at the pixel it is centred on.
    """
    r = MAX_STAMP_RADIUS
    unit = _frame_image((2 * r + 1, 2 * r + 1))
    psf.drawImage(image=unit, center=galsim.PositionD(r, r))
    values = unit.array
    dy, dx = np.mgrid[-r:r + 1, -r:r + 1]
    ring = np.minimum(np.rint(np.hypot(dx, dy)).astype(int), r + 1)
    ring_max = np.zeros(r + 2)
    np.maximum.at(ring_max, ring.ravel(), np.abs(values).ravel())
    beyond = np.maximum.accumulate(ring_max[::-1])[::-1]     # max at distance >= k
    square = np.maximum(np.abs(dx), np.abs(dy))
    enclosed = np.cumsum(np.bincount(square.ravel(), weights=values.ravel()))
    wing_radius = np.searchsorted(-beyond[:r + 1], -wing_limit / flux)
    flux_radius = np.searchsorted(enclosed, 1.0 - STAMP_FLUX_MISSED)
    radii = np.clip(np.maximum(wing_radius, flux_radius), 2, r)
    return radii, float(values[r, r])


def render_galsim_stars(spec: FrameSpec, x, y, flux, *, wing_limit):
    """The stars' linear layer, drawn by GalSim star by star on stamps.

    Parameters
    ----------
    spec : FrameSpec
        The frame's shape and PSF (:func:`galsim_psf`).
    x, y, flux : ndarray
        Centres (column, row of the numpy array) and total fluxes.
    wing_limit : float
        Each stamp reaches where the star's wings fall below this (linear ADU).

    Returns
    -------
    layer : ndarray
        The sum of the stars, of ``spec.shape``.
    peak : ndarray
        Each star's pixel value if it were centred on a pixel.
    radii : ndarray
        Each star's stamp half-size, before the frame's edge cuts it.
    """
    psf = galsim_psf(spec)
    image = _frame_image(spec.shape)
    radii, unit_peak = stamp_radii(psf, flux, wing_limit)
    for cx, cy, f, r in zip(x, y, flux, radii):
        ix, iy = math.floor(cx + 0.5), math.floor(cy + 0.5)
        stamp = galsim.BoundsI(ix - r, ix + r, iy - r, iy + r) & image.bounds
        psf.withFlux(f).drawImage(image=image[stamp], center=galsim.PositionD(cx, cy),
                                  add_to_image=True)
    return image.array, flux * unit_peak, radii


def _sersic_enclosed(radius, n, half_light_radius):
    """The fraction of a Sersic profile's flux within ``radius``."""
    b = gammaincinv(2.0 * n, 0.5)
    return gammainc(2.0 * n, b * (radius / half_light_radius) ** (1.0 / n))


def _bright_galaxy(rng, sigma_lin):
    """One bright galaxy, ``1.5-6 sigma_lin`` at its half-light radius: a Sersic
    profile or a bulge + disk mixture, sheared (ellipticity up to 0.7)."""
    if rng.uniform() < 0.5:
        n, half_light = rng.uniform(0.6, 4.0), rng.uniform(3.0, 30.0)
        galaxy = galsim.Sersic(n, half_light_radius=half_light, gsparams=GALAXY_GSPARAMS)
    else:
        disk_radius = rng.uniform(3.0, 30.0)
        bulge_radius = rng.uniform(0.2, 0.5) * disk_radius
        bulge_fraction = rng.uniform(0.1, 0.6)
        galaxy = galsim.Add(
            galsim.DeVaucouleurs(half_light_radius=bulge_radius, flux=bulge_fraction,
                                 gsparams=GALAXY_GSPARAMS),
            galsim.Exponential(half_light_radius=disk_radius, flux=1.0 - bulge_fraction,
                               gsparams=GALAXY_GSPARAMS))
        half_light = brentq(
            lambda r: bulge_fraction * _sersic_enclosed(r, 4.0, bulge_radius)
            + (1.0 - bulge_fraction) * _sersic_enclosed(r, 1.0, disk_radius) - 0.5,
            bulge_radius, disk_radius)
    return _scaled_and_sheared(galaxy, half_light, rng.uniform(1.5, 6.0) * sigma_lin,
                               rng.uniform(0.0, 0.7), rng)


def _compact_galaxy(rng, sigma_lin):
    """One compact faint galaxy: a Sersic profile (n 0.6-2.5) of half-light radius
    1-3 px, ``2-10 sigma_lin`` at that radius, sheared (ellipticity up to 0.5)."""
    half_light = rng.uniform(1.0, 3.0)
    galaxy = galsim.Sersic(rng.uniform(0.6, 2.5), half_light_radius=half_light,
                           gsparams=GALAXY_GSPARAMS)
    return _scaled_and_sheared(galaxy, half_light, rng.uniform(2.0, 10.0) * sigma_lin,
                               rng.uniform(0.0, 0.5), rng)


def _scaled_and_sheared(galaxy, half_light, brightness, ellipticity, rng):
    """``galaxy`` (round, unit flux) scaled to ``brightness`` at ``half_light`` and
    sheared at a random position angle; the shear keeps the area, so the brightness
    holds on the isophote of the half-light radius."""
    at_half_light = galaxy.xValue(galsim.PositionD(half_light, 0.0))
    return (galaxy.withFlux(brightness / at_half_light)
            .shear(q=1.0 - ellipticity, beta=rng.uniform(0.0, math.pi) * galsim.radians))


def render_galsim_galaxies(spec: FrameSpec, rng, sigma_lin, star_x, star_y):
    """The galaxies' linear layer: bright and compact galaxies convolved with the PSF.

    Parameters
    ----------
    spec : FrameSpec
        The frame's shape, PSF and galaxy counts (``n_bright_galaxies`` bright ones,
        ``n_galaxies`` compact ones).
    rng : numpy.random.Generator
        The galaxies' stream.
    sigma_lin : float
        The effective noise (linear ADU), the unit of their brightness.
    star_x, star_y : ndarray
        The stars' centres; half the compact galaxies are put 2-4 FWHM from one.

    Returns
    -------
    ndarray
        The layer, of ``spec.shape``.
    """
    h, w = spec.shape
    psf = galsim_psf(spec, GALAXY_GSPARAMS)
    image = _frame_image(spec.shape)
    for _ in range(spec.n_bright_galaxies):
        galaxy = _bright_galaxy(rng, sigma_lin)
        centre = galsim.PositionD(rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h)
        galsim.Convolve(galaxy, psf).drawImage(image=image, center=centre,
                                               add_to_image=True)
    for k in range(spec.n_galaxies):
        galaxy = _compact_galaxy(rng, sigma_lin)
        if k % 2 and len(star_x):
            star = rng.integers(len(star_x))
            distance, angle = rng.uniform(2.0, 4.0) * spec.fwhm, rng.uniform(0, 2 * math.pi)
            cx = float(np.clip(star_x[star] + distance * math.cos(angle), 0, w - 1))
            cy = float(np.clip(star_y[star] + distance * math.sin(angle), 0, h - 1))
        else:
            cx, cy = rng.uniform(0, w - 1), rng.uniform(0, h - 1)
        galsim.Convolve(galaxy, psf).drawImage(image=image,
                                               center=galsim.PositionD(cx, cy),
                                               add_to_image=True)
    return image.array


def build_galsim_frame(spec: FrameSpec) -> Frame:
    """Build one frame with GalSim's stars and galaxies, deterministically from
    ``spec`` (its seed included); the rest as :func:`survey_frames.build_frame`."""
    sigma_lin = linear_sigma(spec)
    base = package_layers(spec, n_galaxies=0)
    rng_gal, rng_stars, rng_phot = random_streams(spec)
    sx, sy, flux = draw_stars(spec, rng_stars)
    galaxies = render_galsim_galaxies(spec, rng_gal, sigma_lin, sx, sy)
    stars_lin, peak, _ = render_galsim_stars(spec, sx, sy, flux,
                                             wing_limit=WING_SIGMAS * sigma_lin)
    return observe(spec, base, galaxies, sx, sy, flux, stars_lin, peak, rng_phot)
