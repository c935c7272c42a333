"""Synthetic test images with a known starless truth.

- :func:`paper_synthetic` builds the test image of the paper's section 4 (Fig. 2) from a
  starless nebula and a star image;
- :func:`make_survey_frame` simulates a survey-like frame from scratch (Moffat stars with
  power-law fluxes, Sersic galaxies, a smooth nebula, an optional satellite streak, a sky
  gradient and noise) and returns every layer separately, so that a star-removal result
  can be scored against the truth, the star layer and the extended sources
  (:mod:`pipeline.metrics`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from astropy.modeling.models import Moffat2D, Sersic2D
from astropy.visualization import AsinhStretch, ManualInterval
from scipy import ndimage as ndi

from pipeline.core.validation import count, real_image, real_number

__all__ = ["paper_synthetic", "make_survey_frame", "SurveyFrame", "CATALOGUE_DTYPE",
           "power_law"]

#: Columns of :attr:`SurveyFrame.catalogue`: column ``x`` and row ``y`` of the centre
#: (pixel centres at integers), total ``flux`` and central ``peak`` of the Moffat profile.
CATALOGUE_DTYPE = np.dtype([("x", "f8"), ("y", "f8"), ("flux", "f8"), ("peak", "f8")])

_SCALES = ("linear", "sky-subtracted", "stretched")
# Stretched frames imitate the paper's 8-bit images: the mean sky lands on the
# background level the reference code hard-codes (46 of 255).
_STRETCH_A = 0.1
_STRETCH_SKY = 46.0 / 255.0
_STRETCH_BLACK_SIGMAS = 3.0


# --------------------------------------------------------------------------- validation
def _image(arr, name):
    a = real_image(arr, name, copy=True)  # a copy: the caller's array is never touched
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains non-finite values")
    return a


# --------------------------------------------------------------------------- paper
def paper_synthetic(nebula, stars, *, background=46.0, noise_sigma=17.1, seed=0):
    """The paper's synthetic test image (section 4, Fig. 2).

    A background of mean ``background`` with Gaussian noise of standard deviation
    ``noise_sigma`` is merged with the starless nebula by a per-pixel maximum (so the
    nebula keeps its brightness, and the ground truth is the nebula itself where it is
    brighter than the noisy sky), the star image is added, and the sum is clipped to
    0..255.

    Parameters
    ----------
    nebula : (M, N) array_like
        Starless image on the 0..255 scale (the paper: the HST Stingray nebula).
    stars : (M, N) array_like
        Star image on the same scale, added on top.
    background : float, optional
        Mean background level (the paper: 46).
    noise_sigma : float, optional
        Standard deviation of the background noise (the paper: 17.1).
    seed : int or numpy.random.Generator, optional
        Seed of the noise.

    Returns
    -------
    (M, N) ndarray of float64

    Notes
    -----
    The authors' script [2]_ worked on 8-bit images read with OpenCV, so its merged
    background was truncated to integers and its sum clipped only at 255; this version
    stays in float64 and clips to [0, 255].

    References
    ----------
    .. [1] M. Cohen and W. Lu, "A diffusion-based method for removing background stars
           from astronomical images", section 4 and Fig. 2.
    .. [2] https://github.com/maureenjcohen/diffusion-for-stars,
           ``src/synthetic_data_final.py``.
    """
    neb = _image(nebula, "nebula")
    st = _image(stars, "stars")
    if neb.shape != st.shape:
        raise ValueError(f"nebula and stars differ in shape: {neb.shape} vs {st.shape}")
    background = real_number(background, "background")
    noise_sigma = real_number(noise_sigma, "noise_sigma", nonnegative=True)
    rng = np.random.default_rng(seed)
    sky = background + rng.normal(0.0, noise_sigma, neb.shape)
    return np.clip(np.maximum(neb, sky) + st, 0.0, 255.0)


# --------------------------------------------------------------------------- survey frame
@dataclass(frozen=True)
class SurveyFrame:
    """A simulated frame and its known layers (arrays are read-only).

    Attributes
    ----------
    image : ndarray of float64
        The observation: ``truth + stars + noise`` (exactly so, except where clipped by
        ``saturate`` or by the 0..255 range of a stretched frame).
    truth : ndarray of float64
        Starless, noise-free scene: sky (unless sky-subtracted) + galaxies + nebula +
        streak.
    stars : ndarray of float64
        Noise-free star layer.  For a stretched frame it is
        ``stretch(truth_lin + stars_lin) - stretch(truth_lin)``.
    catalogue : structured ndarray, dtype :data:`CATALOGUE_DTYPE`
        One row per star, in linear (pre-stretch) units.
    extended_mask : ndarray of bool
        Where galaxies, nebula or streak exceed one noise sigma.
    streak_mask : ndarray of bool
        Within one streak FWHM of the streak's centre line (all False without a streak).
    noise_sigma : float
        Gaussian noise level in the units of ``image`` (for a stretched frame, the
        first-order level at the mean sky).
    scale : str
        ``"linear"``, ``"sky-subtracted"`` or ``"stretched"``.
    """

    image: np.ndarray
    truth: np.ndarray
    stars: np.ndarray
    catalogue: np.ndarray
    extended_mask: np.ndarray
    streak_mask: np.ndarray
    noise_sigma: float
    scale: str

    def __post_init__(self):
        for name in ("image", "truth", "stars", "catalogue", "extended_mask", "streak_mask"):
            getattr(self, name).flags.writeable = False


def power_law(rng, n, lo, hi, slope):
    """Draw n values with density proportional to F**slope on [lo, hi] (inverse CDF)."""
    u = rng.random(n)
    if slope == -1.0:
        return lo * (hi / lo) ** u
    e = slope + 1.0
    return (lo**e + u * (hi**e - lo**e)) ** (1.0 / e)


def _render_stars(shape, x, y, flux, gamma, beta, *, batch=2000):
    """Sum of Moffat profiles, each evaluated on a square stamp around its star.

    The stamp radius is where the profile's enclosed flux misses less than 1e-4 of the
    total, so the layer's flux equals the catalogue's to that precision (away from the
    image edges).  Each star is evaluated on its stamp's overlap with the frame only:
    with beta near 1 a stamp covers the frame several times over (beta 1.8, 400 stars
    on 512 x 512: stamps of 1025 x 1025 pixels, which took 38 s and a peak of 9.6 GiB
    evaluated whole; 0.9 s and 0.2 GiB so).  The stars' layers are summed ``batch`` at a
    time, the order in which the earlier renderer summed them, so that frames stay the
    same to the bit.
    """
    h, w = shape
    amp = flux * (beta - 1.0) / (math.pi * gamma**2)  # Moffat total flux -> amplitude
    # A stamp beyond the frame adds nothing; with beta near 1 (1.01) its radius would
    # overflow a float, so the frame's size is taken before it is computed.
    frame = max(h, w)
    if math.log(1e-4) / (1.0 - beta) >= math.log1p((frame / gamma) ** 2):
        r = frame
    else:
        r = int(math.ceil(gamma * math.sqrt(1e-4 ** (1.0 / (1.0 - beta)) - 1.0)))
        r = min(max(r, 2), frame)
    ix = np.floor(x + 0.5).astype(np.int64)
    iy = np.floor(y + 0.5).astype(np.int64)
    canvas = np.zeros(shape)
    for s in range(0, len(x), batch):
        layer = np.zeros(shape)
        for k in range(s, min(s + batch, len(x))):
            rows = slice(max(iy[k] - r, 0), min(iy[k] + r + 1, h))
            cols = slice(max(ix[k] - r, 0), min(ix[k] + r + 1, w))
            py = np.arange(rows.start, rows.stop, dtype=np.float64)[:, None]
            px = np.arange(cols.start, cols.stop, dtype=np.float64)[None, :]
            layer[rows, cols] += Moffat2D.evaluate(px, py, amp[k], x[k], y[k], gamma, beta)
        canvas += layer
    return canvas


def make_survey_frame(
    shape=(512, 512),
    *,
    seed=0,
    n_stars=400,
    sky=40.0,
    sky_gradient=(0.02, 0.01),
    noise_sigma=6.0,
    poisson_gain=None,
    fwhm=3.0,
    moffat_beta=3.5,
    flux_range=(50.0, 5.0e4),
    flux_slope=-2.0,
    n_galaxies=8,
    nebula=True,
    streak=None,
    streak_fwhm=3.0,
    scale="linear",
    saturate=None,
):
    """Simulate a survey frame with known star, extended-source and noise layers.

    The linear scene is ``sky + galaxies + nebula + streak`` (the truth) plus Moffat
    stars, observed with Gaussian read noise (and optionally photon noise).  Each
    component draws from its own random stream (spawned from ``seed``), so switching
    one component on or off leaves the others unchanged.

    Parameters
    ----------
    shape : tuple of 2 int, optional
        Frame shape (rows, columns), each at least 8.
    seed : int, optional
        Seed of everything random; the same seed gives the same frame.
    n_stars : int, optional
        Number of stars, placed uniformly over the frame (edges included).
    sky : float, optional
        Mean sky level (linear units).
    sky_gradient : tuple of 2 float, optional
        Sky slope per pixel along rows and columns, about the frame centre.
    noise_sigma : float, optional
        Standard deviation of the Gaussian (read) noise, >= 0.
    poisson_gain : float, optional
        If given, photon noise is added too: the noiseless scene times this gain is
        drawn from a Poisson law and divided back.
    fwhm : float, optional
        Full width at half maximum of the Moffat PSF, in pixels.
    moffat_beta : float, optional
        Moffat power index (> 1).
    flux_range : tuple of 2 float, optional
        Smallest and largest total star flux.
    flux_slope : float, optional
        Star fluxes are drawn with ``dN/dF ~ F**flux_slope``.
    n_galaxies : int, optional
        Number of Sersic galaxies (index 0.5-2.5, effective radius 4-20 px, surface
        brightness at that radius 0.5-3 noise sigma).
    nebula : bool or float, optional
        A smooth nebula from low-pass filtered noise; ``True`` gives a peak of 8 noise
        sigma, a float sets the peak.  ``False`` for none.
    streak : float, optional
        Peak amplitude of a straight satellite streak at a random angle through the
        central part of the frame, with a Gaussian cross-profile of ``streak_fwhm``.
    streak_fwhm : float, optional
        FWHM of the streak's cross-profile, in pixels.
    scale : {"linear", "sky-subtracted", "stretched"}, optional
        ``"linear"``: counts with the sky.  ``"sky-subtracted"``: the sky model (level
        and gradient) removed from image and truth.  ``"stretched"``: an 8-bit display
        version like the paper's images: an asinh stretch (``a = 0.1``) with the black
        point 3 noise sigma below the mean sky and the white point placed so the mean
        sky maps to 46, scaled to 0..255 and clipped.
    saturate : float, optional
        Full-well level: the linear observed image is clipped at this value.

    Returns
    -------
    SurveyFrame

    References
    ----------
    .. [1] A. F. J. Moffat, "A theoretical investigation of focal stellar images in the
           photographic emulsion", Astron. Astrophys. 3, 455-461 (1969).
    .. [2] J. L. Sersic, *Atlas de Galaxias Australes*, Observatorio Astronomico,
           Cordoba (1968).
    .. [3] R. H. Lupton et al., "Preparing red-green-blue images from CCD data",
           PASP 116, 133-137 (2004) (asinh stretch).
    """
    # ---- validation, all before any work
    if not isinstance(shape, (tuple, list)) or len(shape) != 2:
        raise ValueError(f"shape must be a pair (rows, columns), got {shape!r}")
    h, w = (count(v, "shape") for v in shape)
    if min(h, w) < 8:
        raise ValueError(f"shape must be at least 8x8, got {(h, w)}")
    n_stars = count(n_stars, "n_stars")
    n_galaxies = count(n_galaxies, "n_galaxies")
    sky = real_number(sky, "sky")
    if not isinstance(sky_gradient, (tuple, list)) or len(sky_gradient) != 2:
        raise ValueError(f"sky_gradient must be a pair (d/drow, d/dcol), got {sky_gradient!r}")
    gy, gx = (real_number(v, "sky_gradient") for v in sky_gradient)
    noise_sigma = real_number(noise_sigma, "noise_sigma", nonnegative=True)
    if poisson_gain is not None:
        poisson_gain = real_number(poisson_gain, "poisson_gain", positive=True)
    fwhm = real_number(fwhm, "fwhm", positive=True)
    moffat_beta = real_number(moffat_beta, "moffat_beta")
    if moffat_beta <= 1:
        raise ValueError(f"moffat_beta must be > 1 for a finite flux, got {moffat_beta}")
    if not isinstance(flux_range, (tuple, list)) or len(flux_range) != 2:
        raise ValueError(f"flux_range must be a pair (min, max), got {flux_range!r}")
    f_lo, f_hi = (real_number(v, "flux_range", positive=True) for v in flux_range)
    if f_lo > f_hi:
        raise ValueError(f"flux_range must be (min, max) with min <= max, got {flux_range}")
    flux_slope = real_number(flux_slope, "flux_slope")
    if isinstance(nebula, (bool, np.bool_)):
        nebula_peak = 8.0 * noise_sigma if nebula else 0.0
    else:
        nebula_peak = real_number(nebula, "nebula", nonnegative=True)
    streak_amp = 0.0 if streak is None else real_number(streak, "streak", positive=True)
    streak_fwhm = real_number(streak_fwhm, "streak_fwhm", positive=True)
    if scale not in _SCALES:
        raise ValueError(f"scale must be one of {_SCALES}, got {scale!r}")
    if scale == "stretched" and noise_sigma == 0:
        raise ValueError("a stretched frame needs noise_sigma > 0 to set its black point")
    if saturate is not None:
        saturate = real_number(saturate, "saturate")

    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(6)]
    rng_stars, rng_gal, rng_neb, rng_streak, rng_noise, rng_poisson = streams
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)

    # ---- stars
    gamma = fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / moffat_beta) - 1.0))
    sx = rng_stars.uniform(-0.5, w - 0.5, n_stars)
    sy = rng_stars.uniform(-0.5, h - 0.5, n_stars)
    flux = power_law(rng_stars, n_stars, f_lo, f_hi, flux_slope)
    stars = _render_stars((h, w), sx, sy, flux, gamma, moffat_beta)
    catalogue = np.empty(n_stars, dtype=CATALOGUE_DTYPE)
    catalogue["x"], catalogue["y"], catalogue["flux"] = sx, sy, flux
    catalogue["peak"] = flux * (moffat_beta - 1.0) / (math.pi * gamma**2)

    # ---- extended sources
    galaxies = np.zeros((h, w))
    for _ in range(n_galaxies):
        model = Sersic2D(
            amplitude=rng_gal.uniform(0.5, 3.0) * max(noise_sigma, 1.0),
            r_eff=rng_gal.uniform(4.0, 20.0),
            n=rng_gal.uniform(0.5, 2.5),
            x_0=rng_gal.uniform(0.1, 0.9) * w,
            y_0=rng_gal.uniform(0.1, 0.9) * h,
            ellip=rng_gal.uniform(0.0, 0.6),
            theta=rng_gal.uniform(0.0, math.pi),
        )
        galaxies += model(xx, yy)

    neb = np.zeros((h, w))
    if nebula_peak > 0:
        field = ndi.gaussian_filter(rng_neb.standard_normal((h, w)), min(h, w) / 12.0,
                                    mode="wrap")
        field /= field.std()
        # Only the upper tail of the smooth field lights up: patchy clouds on dark sky.
        neb = np.clip(field - 0.5, 0.0, None) ** 1.5
        if neb.max() > 0:
            neb *= nebula_peak / neb.max()

    # Streak geometry is drawn even without a streak, to keep the streams aligned.
    theta = rng_streak.uniform(0.0, math.pi)
    x0 = rng_streak.uniform(0.25, 0.75) * w
    y0 = rng_streak.uniform(0.25, 0.75) * h
    dist = np.abs((xx - x0) * math.sin(theta) - (yy - y0) * math.cos(theta))
    streak_layer = np.zeros((h, w))
    streak_mask = np.zeros((h, w), dtype=bool)
    if streak_amp > 0:
        sigma = streak_fwhm / (2.0 * math.sqrt(2.0 * math.log(2.0)))
        streak_layer = streak_amp * np.exp(-0.5 * (dist / sigma) ** 2)
        streak_mask = dist <= streak_fwhm

    extended = galaxies + neb + streak_layer
    extended_mask = extended > max(noise_sigma, np.finfo(float).tiny)

    # ---- observation in linear units
    sky_model = sky + gy * (yy - (h - 1) / 2.0) + gx * (xx - (w - 1) / 2.0)
    truth = sky_model + extended
    clean = truth + stars
    noise = rng_noise.normal(0.0, noise_sigma, (h, w)) if noise_sigma > 0 else 0.0
    if poisson_gain is not None:
        photons = rng_poisson.poisson(np.clip(clean, 0.0, None) * poisson_gain)
        noise = noise + (photons / poisson_gain - clean)
    image = clean + noise
    if saturate is not None:
        image = np.minimum(image, saturate)

    out_sigma = noise_sigma
    if scale == "sky-subtracted":
        truth = truth - sky_model
        image = image - sky_model
    elif scale == "stretched":
        vmin = sky - _STRETCH_BLACK_SIGMAS * noise_sigma
        # Where the mean sky must land (in 0..1 before the stretch), from a=0.1 and 46/255.
        u_sky = _STRETCH_A * math.sinh(_STRETCH_SKY * math.asinh(1.0 / _STRETCH_A))
        vmax = vmin + _STRETCH_BLACK_SIGMAS * noise_sigma / u_sky
        interval = ManualInterval(vmin, vmax)
        stretch = AsinhStretch(a=_STRETCH_A)

        def display(x):
            return 255.0 * stretch(interval(x, clip=True), clip=True)

        truth, stars, image = display(truth), display(clean) - display(truth), display(image)
        slope = 1.0 / (_STRETCH_A * math.sqrt(1.0 + (u_sky / _STRETCH_A) ** 2)
                       * math.asinh(1.0 / _STRETCH_A))
        out_sigma = 255.0 * slope * noise_sigma / (vmax - vmin)

    return SurveyFrame(
        image=np.asarray(image, dtype=np.float64),
        truth=truth,
        stars=stars,
        catalogue=catalogue,
        extended_mask=extended_mask,
        streak_mask=streak_mask,
        noise_sigma=float(out_sigma),
        scale=scale,
    )
