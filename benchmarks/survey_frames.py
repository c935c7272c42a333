"""The frame set of the survey-mode quality benchmark: seeded frames with ground truth.

Each frame is described by a :class:`FrameSpec` (every setting, recorded in the
benchmark's JSON) and built by :func:`build_frame`:

- the sky (level + gradient), the package's faint Sersic galaxies, the nebula and the
  satellite streak come from :func:`pipeline.synthetic.make_survey_frame` run with
  ``n_stars=0`` in linear units (so its layers, read noise and masks are the package's);
- on top of that this module adds what the package generator lacks:

  * **elliptical Moffat stars** (axis ratio ``1 - ellipticity``, position angle
    ``psf_theta``; the geometric-mean FWHM is ``fwhm``; ``moffat_beta`` down to 2.5 gives
    the broad, Kolmogorov-like wings of real seeing-limited PSFs), or with
    ``psf="kolmogorov"`` long-exposure **Kolmogorov stars** (optical transfer function
    ``exp(-3.44 (f / f0)^(5/3))``, Fried 1966), whose core is close to a Moffat of
    large beta but whose wings fall as ``r^(-11/3)``, as GalSim's ``Kolmogorov`` does;
  * **brighter Sersic galaxies** whose surface brightness at the effective radius is set
    in units of the *effective* noise (the package scales its galaxies by the read noise
    only, so on sky-limited frames they sink into the photon noise); with
    ``convolve_galaxies`` they are convolved with the stars' PSF, as every galaxy of a
    real frame (or of GalSim's) is, and their centres are no sharper than a star;
  * nebula and streak amplitudes given in units of the effective noise;
  * **photon noise of the whole scene** (sky + sources + stars) with a gain, on top of
    the package's read noise;
  * **saturation** applied to the observed linear frame (full well, pedestal included),
    with the star layer defined as what is *observable*:
    ``min(truth + stars, saturate) - truth``, so that the untouched input leaves exactly
    100 % of the star flux;
  * the three scales: ``linear`` (ADU with the sky pedestal), ``sky-subtracted`` (sky
    model removed), ``stretched`` (the package's asinh display stretch to 0..255, black
    point 3 noise sigma below the sky, mean sky at 46, then rounded to integers like an
    8-bit image).

The detector's part (photon noise, saturation, the scales, the catalogue) is
:func:`observe`, which ``galsim_frames.py`` shares for frames whose stars and galaxies
GalSim draws.

The effective noise ``sigma`` of a frame (:attr:`Frame.sigma`) is the noise at the
mean sky, ``sqrt(read**2 + sky/gain)`` in linear units, times the first-order slope of
the stretch for a stretched frame.  Every "in units of sigma" number of the benchmark
uses it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
from astropy.modeling.models import Sersic2D
from astropy.visualization import AsinhStretch, ManualInterval
from scipy.signal import fftconvolve

from pipeline.synthetic import make_survey_frame, power_law

__all__ = ["FrameSpec", "Frame", "FRAME_SPECS", "QUICK_SPECS", "build_frame",
           "frame_set", "STAR_DTYPE", "linear_sigma", "package_layers", "random_streams",
           "draw_stars", "render_stars", "observe"]

# The package's stretch: asinh with a = 0.1, mean sky at 46/255, black point 3 sigma
# below the sky (pipeline/synthetic.py).  Repeated here because the package applies it
# inside make_survey_frame only.
STRETCH_A = 0.1
STRETCH_SKY = 46.0 / 255.0
STRETCH_BLACK_SIGMAS = 3.0

#: Per-star record: centre (column x, row y), total linear flux, elliptical-Moffat
#: central peak (linear), observed peak over the truth in the frame's units, whether the
#: star is saturated (its clean core reaches the full well / the white point) and
#: whether its centre sits on an extended source (galaxy, nebula or streak).
STAR_DTYPE = np.dtype([("x", "f8"), ("y", "f8"), ("flux", "f8"), ("peak", "f8"),
                       ("peak_obs", "f8"), ("saturated", "?"), ("in_extended", "?")])


@dataclass(frozen=True)
class FrameSpec:
    """Every setting of one benchmark frame (linear units unless said otherwise)."""

    name: str
    scale: str                      # "linear" | "sky-subtracted" | "stretched"
    seed: int
    shape: tuple = (512, 512)
    sky: float = 1000.0             # ADU, the pedestal
    sky_gradient: tuple = (0.2, -0.1)   # ADU per pixel along rows, columns
    read_noise: float = 5.0         # ADU
    gain: float = 1.0               # e-/ADU; photon noise of the whole scene
    fwhm: float = 3.0               # px, geometric mean of the two axes
    moffat_beta: float = 3.5
    ellipticity: float = 0.1        # 1 - b/a
    psf_theta: float = 0.5          # rad
    n_stars: int = 600
    flux_range: tuple = (300.0, 5.0e7)   # total flux, ADU
    flux_slope: float = -1.5
    n_galaxies: int = 8             # package's faint galaxies (0.5-3 read sigma at r_eff)
    n_bright_galaxies: int = 4      # this module's: 1.5-6 effective sigma at r_eff
    nebula_sigmas: float = 8.0      # nebula peak, effective sigma (0: none)
    streak_sigmas: float = 0.0      # streak peak, effective sigma (0: none)
    streak_fwhm: float = 3.0
    saturate: float | None = 60000.0    # full well in ADU, pedestal included
    convolve_galaxies: bool = False     # bright galaxies convolved with the PSF
    psf: str = "moffat"             # "moffat" | "kolmogorov" (moffat_beta unused)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Frame:
    """A built frame: observation, truth and layers in the frame's units."""

    spec: FrameSpec
    image: np.ndarray
    truth: np.ndarray
    stars: np.ndarray               # observable star layer (after saturation/stretch)
    extended_mask: np.ndarray       # extended layer > 1 effective sigma
    streak_mask: np.ndarray
    catalogue: np.ndarray           # STAR_DTYPE
    sigma: float                    # effective noise at the mean sky, frame units
    sigma_linear: float             # the same in linear ADU
    info: dict = field(default_factory=dict)

    @property
    def data_range(self) -> float:
        """PSNR/SSIM data range: 255 for stretched frames, else the truth's range."""
        if self.spec.scale == "stretched":
            return 255.0
        return float(self.truth.max() - self.truth.min())


# --------------------------------------------------------------------------- the set
FRAME_SPECS: tuple[FrameSpec, ...] = (
    FrameSpec("stretched-sharp", "stretched", seed=101, fwhm=2.2, moffat_beta=3.5,
              ellipticity=0.08, psf_theta=0.3, n_stars=700, nebula_sigmas=10.0,
              streak_sigmas=2.0, sky_gradient=(0.15, 0.1)),
    FrameSpec("stretched-soft", "stretched", seed=102, fwhm=4.0, moffat_beta=2.8,
              ellipticity=0.2, psf_theta=1.2, n_stars=500, nebula_sigmas=20.0,
              n_bright_galaxies=6, streak_sigmas=0.0, sky_gradient=(-0.1, 0.25)),
    FrameSpec("linear-mid", "linear", seed=201, fwhm=3.0, moffat_beta=3.5,
              ellipticity=0.15, psf_theta=2.0, n_stars=600, nebula_sigmas=8.0,
              streak_sigmas=2.5, sky_gradient=(0.2, -0.1)),
    FrameSpec("linear-wide", "linear", seed=202, fwhm=4.5, moffat_beta=2.5,
              ellipticity=0.25, psf_theta=0.8, n_stars=450, nebula_sigmas=25.0,
              n_bright_galaxies=5, streak_sigmas=0.0, sky_gradient=(0.4, 0.3),
              sky=2000.0, gain=1.5, read_noise=8.0, saturate=40000.0),
    FrameSpec("skysub-sharp", "sky-subtracted", seed=301, fwhm=2.0, moffat_beta=4.5,
              ellipticity=0.05, psf_theta=0.0, n_stars=800, nebula_sigmas=6.0,
              n_bright_galaxies=6, streak_sigmas=1.5, sky_gradient=(-0.2, 0.2),
              sky=800.0, gain=2.0, read_noise=4.0),
    FrameSpec("skysub-ellip", "sky-subtracted", seed=302, fwhm=3.5, moffat_beta=3.0,
              ellipticity=0.3, psf_theta=2.6, n_stars=550, nebula_sigmas=15.0,
              streak_sigmas=3.0, sky_gradient=(0.1, 0.3), saturate=50000.0),
)

#: The smoke set: one stretched and one linear frame at 256 x 256.
QUICK_SPECS: tuple[FrameSpec, ...] = tuple(
    dataclasses.replace(s, shape=(256, 256), n_stars=s.n_stars // 4,
                        n_galaxies=max(2, s.n_galaxies // 4),
                        n_bright_galaxies=max(1, s.n_bright_galaxies // 2))
    for s in (FRAME_SPECS[0], FRAME_SPECS[2])
)


# --------------------------------------------------------------------------- pieces
def moffat_alpha(fwhm: float, beta: float) -> float:
    """Moffat core width alpha of a given FWHM."""
    return fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0))


def render_elliptical_moffat(shape, x, y, flux, *, fwhm, beta, ellipticity, theta,
                             missing=1e-3, max_radius=120, batch=256):
    """Sum of elliptical Moffat profiles on square stamps (vectorised with bincount).

    The profile is ``A (1 + (u/a)**2 + (v/b)**2)**-beta`` in axes rotated by
    ``theta``, with ``a = alpha / sqrt(q)``, ``b = alpha * sqrt(q)``, ``q = 1 -
    ellipticity`` (so the geometric-mean FWHM is ``fwhm``) and total flux
    ``A pi a b / (beta - 1)``.  The stamp reaches where less than ``missing`` of the
    flux lies outside the major-axis radius (capped at ``max_radius``).

    Returns the layer and the central peak ``A`` of each star.
    """
    h, w = shape
    alpha = moffat_alpha(fwhm, beta)
    q = 1.0 - ellipticity
    a, b = alpha / math.sqrt(q), alpha * math.sqrt(q)
    amp = flux * (beta - 1.0) / (math.pi * a * b)
    r = int(math.ceil(a * math.sqrt(missing ** (1.0 / (1.0 - beta)) - 1.0)))
    r = min(max(r, 2), max_radius)
    off = np.arange(-r, r + 1)
    hp, wp = h + 2 * r, w + 2 * r
    canvas = np.zeros(hp * wp)
    ix = np.floor(x + 0.5).astype(np.int64)
    iy = np.floor(y + 0.5).astype(np.int64)
    ct, st = math.cos(theta), math.sin(theta)
    for s in range(0, len(x), batch):
        sl = slice(s, s + batch)
        py = (iy[sl, None, None] + off[None, :, None]).astype(np.float64)
        px = (ix[sl, None, None] + off[None, None, :]).astype(np.float64)
        dx = px - x[sl, None, None]
        dy = py - y[sl, None, None]
        u = dx * ct + dy * st
        v = -dx * st + dy * ct
        vals = amp[sl, None, None] * (1.0 + (u / a) ** 2 + (v / b) ** 2) ** (-beta)
        flat = (py.astype(np.int64) + r) * wp + (px.astype(np.int64) + r)
        canvas += np.bincount(flat.ravel(), weights=vals.ravel(), minlength=hp * wp)
    return canvas.reshape(hp, wp)[r:r + h, r:r + w], amp


def kolmogorov_cutoff(fwhm: float, size: int = 128) -> float:
    """The cutoff frequency ``f0`` (cycles per pixel) of a Kolmogorov PSF whose FWHM,
    measured through its centre on a periodic pixel grid of ``size`` x ``size``, is
    ``fwhm`` pixels."""
    frequency = np.hypot(np.fft.fftfreq(size)[:, None], np.fft.fftfreq(size)[None, :])

    def measured_fwhm(cutoff):
        row = np.fft.fftshift(np.real(np.fft.ifft2(
            np.exp(-3.44 * (frequency / cutoff) ** (5.0 / 3.0)))))[size // 2]
        half = row.max() / 2.0
        above = np.flatnonzero(row >= half)
        left, right = above.min(), above.max()
        return (right + (row[right] - half) / (row[right] - row[right + 1])
                - left + (row[left] - half) / (row[left] - row[left - 1]))

    low, high = 0.01, 2.0   # the FWHM falls as the cutoff rises
    for _ in range(50):
        cutoff = 0.5 * (low + high)
        if measured_fwhm(cutoff) > fwhm:
            low = cutoff
        else:
            high = cutoff
    return cutoff


def render_elliptical_kolmogorov(shape, x, y, flux, *, fwhm, ellipticity, theta,
                                 pad=128, oversample=2):
    """Sum of elliptical long-exposure Kolmogorov PSFs, rendered in Fourier space.

    Each star is a point of its flux at its exact position (a phase ramp; the
    ramps' sum is one matrix product), times the transfer function
    ``exp(-3.44 (f / f0)^(5/3))`` with the frequencies scaled along the PSF's axes
    (axis ratio ``1 - ellipticity``, position angle ``theta``) and ``f0`` from
    :func:`kolmogorov_cutoff`.  The layer is drawn on a grid ``oversample`` times
    finer and summed over each pixel, as a detector integrates it: on the pixel grid
    itself the transfer function is cut at the Nyquist frequency, which rings along
    the axes through every bright star.  The grid is padded by ``pad`` pixels on
    every side, so that the wings wrap around only beyond that.

    ``fwhm`` is that of the PSF before the pixels' integration.  Returns the layer
    and the central peak of each star (the pixel-integrated PSF's value at its
    centre).
    """
    h, w = shape
    rows, cols = (h + 2 * pad) * oversample, (w + 2 * pad) * oversample
    ky = np.fft.fftfreq(rows, d=1.0 / oversample)[:, None]    # cycles per pixel
    kx = np.fft.rfftfreq(cols, d=1.0 / oversample)[None, :]
    q = 1.0 - ellipticity
    ct, st = math.cos(theta), math.sin(theta)
    ku, kv = kx * ct + ky * st, -kx * st + ky * ct
    # The PSF stretched by 1 / sqrt(q) along its major axis (u), its transform
    # squeezed by as much.
    frequency = np.hypot(ku / math.sqrt(q), kv * math.sqrt(q))
    transfer = np.exp(-3.44 * (frequency / kolmogorov_cutoff(fwhm)) ** (5.0 / 3.0))
    # Positions on the fine grid: pixel centres at (k + 0.5) / oversample - 0.5.
    fine_y = (y + pad + 0.5) * oversample - 0.5
    fine_x = (x + pad + 0.5) * oversample - 0.5
    along_rows = np.exp(-2j * np.pi * np.outer(fine_y, ky[:, 0] / oversample))
    along_cols = np.exp(-2j * np.pi * np.outer(fine_x, kx[0] / oversample))
    points = (along_rows * flux[:, None]).T @ along_cols
    fine = np.fft.irfft2(points * transfer, s=(rows, cols))
    binned = fine.reshape(rows // oversample, oversample,
                          cols // oversample, oversample).sum(axis=(1, 3))
    layer = binned[pad:pad + h, pad:pad + w]
    centred = np.exp(-2j * np.pi * (ky * ((oversample - 1) / 2.0 / oversample)
                                    + kx * ((oversample - 1) / 2.0 / oversample)))
    peak = np.fft.irfft2(transfer * centred, s=(rows, cols))[:oversample, :oversample]
    return layer, flux * peak.sum()


def render_stars(spec: FrameSpec, shape, x, y, flux):
    """The stars' layer and central peaks, with the PSF that ``spec`` names."""
    if spec.psf == "kolmogorov":
        return render_elliptical_kolmogorov(shape, x, y, flux, fwhm=spec.fwhm,
                                            ellipticity=spec.ellipticity,
                                            theta=spec.psf_theta)
    if spec.psf != "moffat":
        raise ValueError(f"unknown psf {spec.psf!r}")
    return render_elliptical_moffat(shape, x, y, flux, fwhm=spec.fwhm,
                                    beta=spec.moffat_beta,
                                    ellipticity=spec.ellipticity, theta=spec.psf_theta)


def _stretch_params(sky, sigma):
    vmin = sky - STRETCH_BLACK_SIGMAS * sigma
    u_sky = STRETCH_A * math.sinh(STRETCH_SKY * math.asinh(1.0 / STRETCH_A))
    vmax = vmin + STRETCH_BLACK_SIGMAS * sigma / u_sky
    slope = 1.0 / (STRETCH_A * math.sqrt(1.0 + (u_sky / STRETCH_A) ** 2)
                   * math.asinh(1.0 / STRETCH_A))
    return vmin, vmax, 255.0 * slope / (vmax - vmin)


def _psf_kernel(spec: FrameSpec) -> np.ndarray:
    """The stars' PSF on a stamp holding all but 0.1 % of its flux, summing to 1."""
    stamp = 2 * 60 + 1
    kernel, _ = render_stars(spec, (stamp, stamp), np.array([60.0]), np.array([60.0]),
                             np.array([1.0]))
    return kernel / kernel.sum()


# --------------------------------------------------------------------------- builder
def linear_sigma(spec: FrameSpec) -> float:
    """The effective noise at the mean sky in linear ADU, ``sqrt(read**2 + sky/gain)``."""
    return math.sqrt(spec.read_noise**2 + max(spec.sky, 0.0) / spec.gain)


def package_layers(spec: FrameSpec, n_galaxies: int):
    """The package's layers of a frame: sky + gradient, ``n_galaxies`` faint galaxies,
    nebula, streak and read noise (:func:`pipeline.synthetic.make_survey_frame` with no
    star, in linear units, unsaturated)."""
    sigma_lin = linear_sigma(spec)
    return make_survey_frame(
        spec.shape, seed=spec.seed, n_stars=0, sky=spec.sky,
        sky_gradient=spec.sky_gradient, noise_sigma=spec.read_noise, poisson_gain=None,
        fwhm=spec.fwhm, n_galaxies=n_galaxies,
        nebula=spec.nebula_sigmas * sigma_lin if spec.nebula_sigmas > 0 else False,
        streak=spec.streak_sigmas * sigma_lin if spec.streak_sigmas > 0 else None,
        streak_fwhm=spec.streak_fwhm, scale="linear", saturate=None,
    )


def random_streams(spec: FrameSpec):
    """This module's own random streams for the galaxies, the stars and the photon noise,
    independent of the package's."""
    return tuple(np.random.default_rng(s) for s in
                 np.random.SeedSequence([spec.seed, 7]).spawn(3))


def draw_stars(spec: FrameSpec, rng: np.random.Generator):
    """The stars' centres (column x, row y, uniform over the frame) and their power-law
    total fluxes."""
    h, w = spec.shape
    sx = rng.uniform(-0.5, w - 0.5, spec.n_stars)
    sy = rng.uniform(-0.5, h - 0.5, spec.n_stars)
    flux = power_law(rng, spec.n_stars, *spec.flux_range, spec.flux_slope)
    return sx, sy, flux


def observe(spec: FrameSpec, base, galaxies, sx, sy, flux, stars_lin, peak,
            rng_phot) -> Frame:
    """The frame seen through the detector, from its linear layers.

    Parameters
    ----------
    spec : FrameSpec
        The frame's settings (noise, full well, scale).
    base : pipeline.synthetic.SurveyFrame
        The package's layers (:func:`package_layers`): its truth, read noise and streak
        mask.
    galaxies : ndarray
        The builder's own galaxies, linear ADU, added to the package's truth.
    sx, sy, flux : ndarray
        The stars' centres and total fluxes (:func:`draw_stars`).
    stars_lin, peak : ndarray
        The stars' linear layer and each star's central peak.
    rng_phot : numpy.random.Generator
        The photon noise's stream.

    Returns
    -------
    Frame
        Photon noise of the whole scene on top of the read noise, the full well, then
        the frame's scale; the truth, the observable star layer, the extended mask and
        the catalogue in the same units.
    """
    h, w = spec.shape
    sigma_lin = linear_sigma(spec)
    read_noise = base.image - base.truth
    # (A plane: a column of rows and a row of columns broadcast to the frame.)
    rows, cols = np.ogrid[0:h, 0:w]
    gy, gx = spec.sky_gradient
    sky_model = (spec.sky + gy * (rows.astype(np.float64) - (h - 1) / 2.0)
                 + gx * (cols.astype(np.float64) - (w - 1) / 2.0))
    truth_lin = base.truth + galaxies
    extended = truth_lin - sky_model
    extended_mask = extended > sigma_lin

    clean = truth_lin + stars_lin
    photons = rng_phot.poisson(np.clip(clean, 0.0, None) * spec.gain)
    image = clean + read_noise + (photons / spec.gain - clean)
    full_well = np.inf if spec.saturate is None else spec.saturate
    image = np.minimum(image, full_well)
    observable = np.minimum(clean, full_well)

    if spec.scale == "linear":
        truth, stars_layer, out = truth_lin, observable - truth_lin, image
        sigma, white = sigma_lin, full_well
    elif spec.scale == "sky-subtracted":
        truth, stars_layer, out = truth_lin - sky_model, observable - truth_lin, \
            image - sky_model
        sigma, white = sigma_lin, full_well
    elif spec.scale == "stretched":
        vmin, vmax, gain_display = _stretch_params(spec.sky, sigma_lin)
        interval, stretch = ManualInterval(vmin, vmax), AsinhStretch(a=STRETCH_A)

        def display(x):
            return 255.0 * stretch(interval(x, clip=True), clip=True)

        truth = display(truth_lin)
        stars_layer = display(observable) - truth
        out = np.round(display(image))      # 8-bit-like: integer levels 0..255
        sigma, white = gain_display * sigma_lin, min(full_well, vmax)
    else:
        raise ValueError(f"unknown scale {spec.scale!r}")

    ix = np.clip(np.floor(sx + 0.5).astype(int), 0, w - 1)
    iy = np.clip(np.floor(sy + 0.5).astype(int), 0, h - 1)
    cat = np.empty(spec.n_stars, dtype=STAR_DTYPE)
    cat["x"], cat["y"], cat["flux"], cat["peak"] = sx, sy, flux, peak
    cat["peak_obs"] = stars_layer[iy, ix]
    cat["saturated"] = clean[iy, ix] >= white
    cat["in_extended"] = extended_mask[iy, ix]

    info = {
        "sigma": float(sigma), "sigma_linear_adu": float(sigma_lin),
        "read_noise_adu": spec.read_noise,
        "n_saturated": int(cat["saturated"].sum()),
        "n_stars_above_5sigma": int((cat["peak_obs"] > 5 * sigma).sum()),
        "n_stars_in_extended": int(cat["in_extended"].sum()),
        "extended_fraction": float(extended_mask.mean()),
        "saturated_pixel_fraction": float((clean >= white).mean()),
        "truth_min": float(truth.min()), "truth_max": float(truth.max()),
        "image_min": float(out.min()), "image_max": float(out.max()),
    }
    for a in (out, truth, stars_layer, extended_mask, base.streak_mask, cat):
        a.flags.writeable = False
    return Frame(spec=spec, image=out, truth=truth, stars=stars_layer,
                 extended_mask=extended_mask, streak_mask=base.streak_mask,
                 catalogue=cat, sigma=float(sigma), sigma_linear=float(sigma_lin),
                 info=info)


def build_frame(spec: FrameSpec) -> Frame:
    """Build one frame, deterministically from ``spec`` (its seed included)."""
    h, w = spec.shape
    sigma_lin = linear_sigma(spec)
    base = package_layers(spec, n_galaxies=spec.n_galaxies)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    rng_gal, rng_stars, rng_phot = random_streams(spec)
    bright = np.zeros((h, w))
    for _ in range(spec.n_bright_galaxies):
        bright += Sersic2D(
            amplitude=rng_gal.uniform(1.5, 6.0) * sigma_lin,
            r_eff=rng_gal.uniform(6.0, 30.0), n=rng_gal.uniform(0.6, 3.0),
            x_0=rng_gal.uniform(0.1, 0.9) * w, y_0=rng_gal.uniform(0.1, 0.9) * h,
            ellip=rng_gal.uniform(0.0, 0.7), theta=rng_gal.uniform(0.0, math.pi),
        )(xx, yy)
    if spec.convolve_galaxies:
        bright = fftconvolve(bright, _psf_kernel(spec), mode="same")
    sx, sy, flux = draw_stars(spec, rng_stars)
    stars_lin, peak = render_stars(spec, (h, w), sx, sy, flux)
    return observe(spec, base, bright, sx, sy, flux, stars_lin, peak, rng_phot)


def frame_set(quick: bool = False) -> list[Frame]:
    """The benchmark's frames: six of 512 x 512, or two of 256 x 256 with ``quick``."""
    return [build_frame(s) for s in (QUICK_SPECS if quick else FRAME_SPECS)]
