"""The point-spread function measured on the image itself.

A star has the shape of the point-spread function (PSF); a galaxy is wider.  This
module measures that shape from bright, isolated, unsaturated sources: each is fitted
with an elliptical Moffat profile on a constant local sky, and the shape is the median
over the sources of the narrowest family, so that the wider galaxies among the
candidates do not bias it.  It is the first piece of a star/galaxy separation; the
diffusion presets do not use it yet.

The profile is evaluated at pixel centres, as :mod:`pipeline.synthetic` renders its
stars:

.. math::

    I(x, y) = s + A \\left(1 + \\frac{u^2}{\\alpha_1^2} + \\frac{v^2}{\\alpha_2^2}\\right)^{-\\beta}

with :math:`(u, v)` the offsets rotated by the position angle, and a full width at
half maximum of :math:`2 \\alpha \\sqrt{2^{1/\\beta} - 1}` along each axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from pipeline.core.background import estimate_background, noiseless_regions
from pipeline.core.peaks import local_maxima
from pipeline.core.validation import count, validate_plane

__all__ = ["PSFShape", "light_variance", "measure_psf", "moffat_alpha", "moffat_image",
           "weighted_median"]

#: Half-side of the fitted cutout, in pixels.
_HALF = 10

#: Smallest Moffat power index of the measured PSF; a source whose free fit has a
#: smaller one is fitted again with it.  A Moffat's flux diverges for beta <= 1, and
#: seeing-limited PSFs have beta of about 2.5 to 5 (4.765 for Kolmogorov turbulence,
#: Trujillo et al. 2001): a free fit near 1 is a stretched (non-linear) star, whose
#: extrapolated wings would be subtracted far beyond the star's light.
MIN_BETA = 1.5

#: ... and for a source fainter than ``BETA_MIN_SNR`` (peak, noise sigmas), whose core
#: width and power index the noise leaves degenerate (a narrow core on broad wings fits
#: it as well as the PSF), the smallest is ``FAINT_MIN_BETA``, the bottom of the range
#: of seeing-limited PSFs.  This is the case of every star of a stretched (8-bit) frame
#: below the white level: the stretch flattens their cores, their free fits end near
#: beta = 1, and wings that broad took the light of the galaxies around the stars
#: (survey benchmark, stretched-soft at seed + 5000: star flux left -9.9 % and
#: extended RMSE 0.75 sigma with beta held at 1.5; -3.1 % and 0.66 sigma at 2).
#: Brighter sources measure it, so a PSF of beta below 2 is still measured on linear
#: data (1.8 to 0.01 on two benchmark frames rendered with it).
BETA_MIN_SNR = 30.0
FAINT_MIN_BETA = 2.0

#: Which sources are fitted, tried in turn until one gives ``MIN_PSF_SOURCES`` (else
#: the last, the loosest, is used): a neighbouring peak in or just outside the cutout
#: brighter than the fraction of the candidate's disqualifies it, and so does a peak
#: fainter than the signal-to-noise ratio.  Small or stretched frames may have few
#: isolated bright stars, and then a biased or noisier measurement that the median
#: over more sources absorbs is better than the median of two or three.
_CANDIDATE_RULES = ((0.02, 10.0), (0.2, 10.0), (0.2, 5.0))
MIN_PSF_SOURCES = 5

#: A cutout may have up to this fraction of masked (NaN) pixels, none next to its
#: peak: bad-pixel masks leave a percent or two of a frame NaN, and with no masked
#: pixel allowed at all, nearly every 21 x 21 cutout was refused.
MAX_MASKED_FRACTION = 0.1

#: The photon noise of a source is measured on its pixels brighter than this many
#: noise sigmas (fainter ones carry too little of it to measure).
PHOTON_NOISE_MIN_SNR = 5.0
#: The noise of the median of n Gaussian values is this times sigma / sqrt(n).
MEDIAN_NOISE = 1.2533

#: Median of a chi-square variable with one degree of freedom: the median of the
#: squared residuals is this fraction of their variance.
CHI2_1_MEDIAN = 0.4549


@dataclass(frozen=True)
class PSFShape:
    """An elliptical Moffat point-spread function.

    Attributes
    ----------
    fwhm : float
        Geometric mean of the major- and minor-axis FWHM, in pixels.
    beta : float
        Moffat power index (large: close to a Gaussian; small: broad wings).
    ellipticity : float
        ``1 - minor / major`` of the FWHM.
    angle : float
        Position angle of the major axis in radians, from the column (x) axis towards
        the row (y) axis, in ``[0, pi)``.
    n_stars : int
        Sources the shape is the median over.
    light_variance : float
        The variance of those sources' noise per unit of their light, beyond the
        sky's: their photon noise, ``1 / gain`` on linear data in ADU, about 0 on
        stretched data (whose stretch compresses the noise of bright pixels) and
        where the sky's noise dominates.  0 if not measured.
    """

    fwhm: float
    beta: float
    ellipticity: float
    angle: float
    n_stars: int
    light_variance: float = 0.0

    @property
    def core_widths(self) -> tuple[float, float]:
        """The Moffat core widths alpha along the major and the minor axis."""
        axis_ratio = math.sqrt(1.0 - self.ellipticity)
        return (moffat_alpha(self.fwhm / axis_ratio, self.beta),
                moffat_alpha(self.fwhm * axis_ratio, self.beta))


def moffat_image(shape, x0, y0, amplitude, psf: PSFShape) -> np.ndarray:
    """An elliptical Moffat of ``psf``'s shape, peak ``amplitude`` at column ``x0``,
    row ``y0``, evaluated at the pixel centres of an array of ``shape``."""
    # (A row and a column that broadcast: the fits call this for every source.)
    rows = np.arange(shape[0], dtype=np.float64)[:, None]
    cols = np.arange(shape[1], dtype=np.float64)[None, :]
    return _moffat(cols, rows, x0, y0, amplitude, *psf.core_widths, psf.angle, psf.beta)


def moffat_alpha(fwhm, beta):
    """The Moffat core width alpha of a profile with this FWHM and power index."""
    return fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0))


def _fwhm(alpha, beta):
    return 2.0 * alpha * math.sqrt(2.0 ** (1.0 / beta) - 1.0)


def _moffat(x, y, x0, y0, amplitude, alpha1, alpha2, angle, beta):
    c, s = math.cos(angle), math.sin(angle)
    u = (x - x0) * c + (y - y0) * s
    v = -(x - x0) * s + (y - y0) * c
    return amplitude * (1.0 + (u / alpha1) ** 2 + (v / alpha2) ** 2) ** (-beta)


def light_variance(residuals, noise, light) -> float:
    """The variance per unit of ``light`` beyond ``noise**2`` of fit ``residuals``
    (arrays alike): the median of ``(residuals**2 / CHI2_1_MEDIAN - noise**2) /
    light``, so that no gain is needed and a few outliers (a neighbour, a cosmic ray)
    do not count."""
    return float(np.median((residuals ** 2 / CHI2_1_MEDIAN - noise ** 2) / light))


def _fit_source(cutout, noise, min_beta=MIN_BETA):
    """Fit one cutout; ``(fwhm1, fwhm2, angle, beta, rms, light_variance)`` or
    ``None`` if the fit fails, ``rms`` the fit's residual RMS in units of the noise,
    ``light_variance`` (:func:`light_variance`, in units of the noise) that of its
    pixels above ``PHOTON_NOISE_MIN_SNR``, ``nan`` if it has fewer than 5.  A free fit
    with a power index below ``min_beta`` is fitted again at ``min_beta``.

    The fit runs in units of the noise, so that it is the same problem whatever the
    image's units.  NaN pixels (masked) are left out of it.
    """
    cutout = cutout / noise
    size = cutout.shape[0]
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    sky0 = float(np.nanmedian(np.concatenate([cutout[0], cutout[-1], cutout[:, 0],
                                              cutout[:, -1]])))
    peak = float(cutout[_HALF, _HALF]) - sky0
    usable = np.isfinite(cutout)
    x, y, cutout = x[usable], y[usable], cutout[usable]
    # Parameters: amplitude, x0, y0, sky, log alpha1, log alpha2, angle, log(beta - 1).
    start = np.array([peak, _HALF, _HALF, sky0, math.log(1.5), math.log(1.5), 0.0,
                      math.log(2.0)])

    def residual(p, beta=None):
        beta = 1.0 + math.exp(p[7]) if beta is None else beta
        model = p[3] + _moffat(x, y, p[1], p[2], p[0], math.exp(p[4]), math.exp(p[5]),
                               p[6], beta)
        return model - cutout

    try:
        # Trial steps may take a width to 0 or infinity; the optimiser rejects them
        # (non-finite costs), and a fit that ends there fails the checks below.
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            fit = least_squares(residual, start, x_scale="jac", max_nfev=400)
            beta = 1.0 + math.exp(fit.x[7])
            if beta < min_beta:
                beta = min_beta
                fit = least_squares(residual, fit.x[:7], x_scale="jac", max_nfev=400,
                                    kwargs={"beta": beta})
    except (ValueError, ArithmeticError):   # math.exp of a width run off to infinity
        return None
    amplitude, x0, y0, _, la1, la2, angle = fit.x[:7]
    if not (fit.success and amplitude > 0 and abs(x0 - _HALF) < 2 and abs(y0 - _HALF) < 2
            and 1.0 < beta < 50.0 and max(la1, la2) < 50.0):
        return None
    f1, f2 = _fwhm(math.exp(la1), beta), _fwhm(math.exp(la2), beta)
    if f1 < f2:
        f1, f2, angle = f2, f1, angle + math.pi / 2
    if not 0.5 < f2 <= f1 < _HALF:
        return None
    light = _moffat(x, y, x0, y0, amplitude, math.exp(la1), math.exp(la2), fit.x[6], beta)
    bright = light > PHOTON_NOISE_MIN_SNR
    variance = (light_variance(fit.fun[bright], 1.0, light[bright])
                if np.count_nonzero(bright) >= 5 else float("nan"))
    return (f1, f2, angle % math.pi, beta, float(np.sqrt(np.mean(fit.fun ** 2))),
            variance)


def measure_psf(image, *, max_sources=40) -> PSFShape:
    """Measure the PSF of ``image`` from its bright, isolated, unsaturated sources.

    Parameters
    ----------
    image : (M, N) array_like
        The frame, in any units, with any sky level; NaN pixels are masked data.
    max_sources : int, optional
        Brightest usable sources to fit.

    Returns
    -------
    PSFShape

    Raises
    ------
    ValueError
        If no source is bright, isolated and unsaturated enough to be fitted, and as
        :func:`pipeline.core.validation.validate_plane`.
    TypeError
        As :func:`pipeline.core.validation.validate_plane`.

    Notes
    -----
    Candidates are local maxima at least 10 noise sigmas above the
    sky, with no neighbour peak above 2 % of theirs (20 % if fewer than
    ``MIN_PSF_SOURCES`` are that isolated, as on small crowded frames; then 5 sigma
    if fewer are that bright, as on stretched frames whose bright stars are all
    clipped) within 3 pixels of
    their ``21 x 21`` cutout, at most ``MAX_MASKED_FRACTION`` of it masked and nothing
    next to the peak, and a peak below 98 % of the
    frame's largest value above the sky (where saturated stars are clipped).  A free
    fit with a power index below ``MIN_BETA`` (``FAINT_MIN_BETA`` below ``BETA_MIN_SNR``) is
    fitted again at that value.  Galaxies among
    them are wider than the stars: the shape is the median of the sources whose FWHM
    lies within 15 % of the narrowest family's median, found by iterating
    ``median -> keep fwhm < 1.15 median``; each source weighs as its peak's
    signal-to-noise ratio divided by its fit's chi-square per pixel (at least 1), so
    that a star on a nebula's slope or a blend, which the profile fits badly, counts
    little however bright it is.  On a stretched (non-linear) frame the result is the
    stretched profile's shape, not the optics'.  The photon noise
    (``light_variance``) is the median over the kept sources of
    :func:`light_variance` on their pixels above ``PHOTON_NOISE_MIN_SNR``, at least 0.

    References
    ----------
    .. [1] A. F. J. Moffat, "A theoretical investigation of focal stellar images in
       the photographic emulsion and application to photographic photometry",
       Astronomy and Astrophysics 3, 455-461, 1969.
    """
    data = np.asarray(validate_plane(image), dtype=np.float64)
    max_sources = count(max_sources, "max_sources", minimum=1)
    # Regions without noise (a zero-filled border) are as masked as NaN pixels.
    finite = np.isfinite(data) & ~noiseless_regions(data)
    level, noise = estimate_background(data)
    noise = max(noise, np.finfo(float).tiny)
    filled = np.where(finite, data, level) - level
    peaks = local_maxima(filled, min_distance=3, threshold_abs=5.0 * noise,
                         exclude_border=_HALF)
    brightness = filled[peaks[:, 0], peaks[:, 1]]
    order = np.argsort(brightness)[::-1]
    peaks, brightness = peaks[order], brightness[order]
    shapes = []
    for neighbour_fraction, min_snr in _CANDIDATE_RULES:
        shapes = _fit_candidates(filled, finite, noise, peaks, brightness, max_sources,
                                 neighbour_fraction, min_snr)
        if len(shapes) >= MIN_PSF_SOURCES:
            break
    if not shapes:
        raise ValueError("no bright (> 5 sigma), isolated, unsaturated source to measure "
                         "the PSF on")
    shapes = np.array(shapes)
    fwhm = np.sqrt(shapes[:, 0] * shapes[:, 1])
    keep = np.ones(len(fwhm), bool)
    for _ in range(10):
        narrow = fwhm < 1.15 * np.median(fwhm[keep])
        if np.array_equal(narrow, keep):
            break
        keep = narrow
    kept, fwhm = shapes[keep], fwhm[keep]
    # Bright sources are fitted better: each counts in proportion to its peak's SNR,
    # divided by its fit's chi-square per pixel, since a source whose residuals exceed
    # the noise (a star on a nebula's slope, a blend) is a poor sample of the PSF.
    weight = kept[:, 6] / np.maximum(kept[:, 4], 1.0) ** 2
    ellipticity = 1.0 - kept[:, 1] / kept[:, 0]
    # Position angles are axial: average 2 * angle, weighted by how elongated.
    doubled = np.angle(np.sum(weight * ellipticity * np.exp(2j * kept[:, 2])))
    # Photon noise in image units: the fits' variance per unit of light is in units
    # of the noise.
    measured = kept[:, 5][np.isfinite(kept[:, 5])]
    variance = max(float(np.median(measured)), 0.0) * noise if measured.size else 0.0
    return PSFShape(fwhm=weighted_median(fwhm, weight),
                    beta=weighted_median(kept[:, 3], weight),
                    ellipticity=weighted_median(ellipticity, weight),
                    angle=float((doubled / 2.0) % math.pi), n_stars=int(keep.sum()),
                    light_variance=variance)


def _fit_candidates(filled, finite, noise, peaks, brightness, max_sources,
                    neighbour_fraction, min_snr):
    """Fitted ``(major, minor, angle, beta, rms, light_variance, snr)`` of the usable
    peaks, brightest first."""
    # Saturated stars are clipped at the frame's largest value; a little below it
    # counts too (a clipped star's neighbour pixels, rounding).
    ceiling = 0.98 * float(np.max(filled))
    shapes = []
    for (row, col), peak in zip(peaks, brightness):
        if peak < min_snr * noise or len(shapes) >= max_sources:
            continue
        window = (slice(row - _HALF, row + _HALF + 1), slice(col - _HALF, col + _HALF + 1))
        core = (slice(row - 1, row + 2), slice(col - 1, col + 2))
        masked = ~finite[window]
        if masked.mean() > MAX_MASKED_FRACTION or not finite[core].all() \
                or peak >= ceiling:
            continue
        near = ((np.abs(peaks[:, 0] - row) <= _HALF + 3)
                & (np.abs(peaks[:, 1] - col) <= _HALF + 3)
                & (brightness > neighbour_fraction * peak))
        if np.count_nonzero(near) > 1:  # another source that would bias the fit
            continue
        min_beta = MIN_BETA if peak >= BETA_MIN_SNR * noise else FAINT_MIN_BETA
        fitted = _fit_source(np.where(masked, np.nan, filled[window]), noise, min_beta)
        if fitted is not None:
            shapes.append((*fitted, peak / noise))
    return shapes


def weighted_median(values, weights) -> float:
    """The value of ``values`` (1-d) at which the cumulative ``weights``, in the
    values' order, reach half their sum."""
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, 0.5 * cumulative[-1])])
