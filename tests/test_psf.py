"""The PSF measured on the image: Moffat shapes of known frames, galaxies ignored."""

import math

import numpy as np
import pytest

from pipeline.core.psf import PSFShape, light_variance, measure_psf, moffat_image
from pipeline.synthetic import make_survey_frame

TRUE = PSFShape(fwhm=3.5, beta=3.0, ellipticity=0.25, angle=0.6, n_stars=0)


def _field(seed=1, *, galaxies=30, saturate=2500.0):
    """Elliptical Moffat stars of shape TRUE, wider Gaussian galaxies, noise, clipping."""
    rng = np.random.default_rng(seed)
    image = np.full((512, 512), 100.0)
    for _ in range(150):
        x, y = rng.uniform(10, 502, 2)
        rows = slice(max(int(y) - 25, 0), int(y) + 26)
        cols = slice(max(int(x) - 25, 0), int(x) + 26)
        shape = image[rows, cols].shape
        image[rows, cols] += moffat_image(shape, x - cols.start, y - rows.start,
                                          10 ** rng.uniform(1.5, 3.5), TRUE)
    yy, xx = np.mgrid[0:512, 0:512]
    for _ in range(galaxies):
        x, y = rng.uniform(10, 502, 2)
        width = rng.uniform(3, 6)
        image += 300 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * width**2))
    image += rng.normal(0, 5, image.shape)
    return np.minimum(image, saturate)


def test_moffat_image_has_the_stated_fwhm_along_each_axis():
    image = moffat_image((101, 101), 50.0, 50.0, 1.0, TRUE)
    major = TRUE.fwhm / math.sqrt(1 - TRUE.ellipticity)
    minor = TRUE.fwhm * math.sqrt(1 - TRUE.ellipticity)
    c, s = math.cos(TRUE.angle), math.sin(TRUE.angle)
    # A one-pixel frame whose pixel lies half a FWHM from the centre along each axis.
    for half_width, (dx, dy) in ((major / 2, (c, s)), (minor / 2, (-s, c))):
        value = moffat_image((1, 1), -half_width * dx, -half_width * dy, 1.0, TRUE)[0, 0]
        assert value == pytest.approx(0.5, rel=1e-12)
    assert image[50, 50] == 1.0


def test_elliptical_stars_are_measured_and_galaxies_ignored():
    psf = measure_psf(_field())
    assert psf.fwhm == pytest.approx(TRUE.fwhm, rel=0.02)
    assert psf.beta == pytest.approx(TRUE.beta, rel=0.05)
    assert psf.ellipticity == pytest.approx(TRUE.ellipticity, abs=0.02)
    assert psf.angle == pytest.approx(TRUE.angle, abs=0.03)
    assert psf.n_stars >= 20


@pytest.mark.parametrize("fwhm, beta, scale", [(3.0, 3.5, "linear"), (4.5, 2.5, "linear"),
                                               (2.2, 4.5, "sky-subtracted"),
                                               (3.0, 1.8, "linear")])   # below FAINT_MIN_BETA
def test_survey_frames_of_known_psf(fwhm, beta, scale):
    frame = make_survey_frame((512, 512), seed=4, fwhm=fwhm, moffat_beta=beta, scale=scale)
    psf = measure_psf(frame.image)
    assert psf.fwhm == pytest.approx(fwhm, rel=0.03)
    assert psf.beta == pytest.approx(beta, rel=0.15)
    assert psf.ellipticity < 0.1  # round stars


def test_scattered_bad_pixels_do_not_hide_the_psf():
    """2 % of the pixels masked (a bad-pixel mask): a cutout with any masked pixel
    was refused, and the frame had "no bright source"."""
    frame = make_survey_frame((512, 512), seed=4, fwhm=3.0, moffat_beta=3.5)
    image = frame.image.copy()
    image[np.random.default_rng(0).random(image.shape) < 0.02] = np.nan
    psf = measure_psf(image)
    assert psf.fwhm == pytest.approx(3.0, rel=0.03)
    assert psf.beta == pytest.approx(3.5, rel=0.15)
    assert psf.n_stars >= 12    # of 19 without the mask


def test_units_and_sky_level_do_not_matter():
    image = _field(seed=2)
    psf = measure_psf(image)
    scaled = measure_psf(7.5 * image - 1234.0)
    # The same sources are chosen and fitted in noise units; what differs is the
    # sigma-clipped sky level, equal only to about 1e-5 sigma, which moves some fits'
    # optima a little and so the medians by up to about half a per cent.
    for name in ("fwhm", "beta", "ellipticity", "angle"):
        assert getattr(scaled, name) == pytest.approx(getattr(psf, name), rel=0.02)
    assert scaled.n_stars == psf.n_stars


def test_nan_pixels_are_masked_and_the_input_is_untouched():
    image = _field(seed=3)
    image[100:140, :] = np.nan
    before = image.copy()
    psf = measure_psf(image)
    assert np.array_equal(image, before, equal_nan=True)
    assert psf.fwhm == pytest.approx(TRUE.fwhm, rel=0.03)


def test_no_star_and_bad_input():
    noise = np.random.default_rng(0).normal(100, 5, (256, 256))
    with pytest.raises(ValueError, match="no bright"):
        measure_psf(noise)
    with pytest.raises(TypeError, match="real"):
        measure_psf(noise + 1j)
    with pytest.raises(ValueError, match="2-D"):
        measure_psf(noise[None])
    with pytest.raises(ValueError, match="max_sources"):
        measure_psf(noise, max_sources=0)
    with pytest.raises(TypeError, match="dtype bool"):
        measure_psf(noise > 100)
    with pytest.raises(ValueError, match="too small"):
        measure_psf(noise[:1, :1])
    with pytest.raises(ValueError, match="no finite pixel"):
        measure_psf(np.full((64, 64), np.nan))


def test_stretched_frame_whose_bright_stars_are_clipped_still_has_a_psf():
    """Few stars above 10 sigma and those clipped at 255: fainter ones (> 5 sigma)
    are measured instead of refusing the frame."""
    frame = make_survey_frame((384, 384), seed=1, scale="stretched", fwhm=4.0,
                              moffat_beta=2.8, n_stars=250)
    psf = measure_psf(frame.image)
    # The stretch compresses the cores, so the measured FWHM is the stretched
    # profile's, wider than the optics' 4 px.
    assert 4.0 <= psf.fwhm <= 7.0


def test_bright_stars_on_nebula_knots_do_not_bias_the_shape():
    """Stars on a knot's slope are fitted badly (the sky is not flat under them);
    being the brightest, they would outweigh the clean stars by their SNR alone."""
    true = PSFShape(fwhm=4.5, beta=2.5, ellipticity=0.25, angle=0.8, n_stars=0)
    rng = np.random.default_rng(0)
    image = np.full((256, 256), 100.0)
    yy, xx = np.mgrid[0:256, 0:256]
    for x, y in ((40, 40), (128, 40), (216, 40), (40, 216), (128, 216), (216, 216)):
        image += moffat_image(image.shape, x + rng.uniform(-0.5, 0.5),
                              y + rng.uniform(-0.5, 0.5), rng.uniform(250, 750), true)
    for x, y in ((50, 128), (128, 128), (206, 128)):
        image += 200 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 5.0 ** 2))
        angle = rng.uniform(0, 2 * np.pi)
        image += moffat_image(image.shape, x + 5 * np.cos(angle), y + 5 * np.sin(angle),
                              rng.uniform(1500, 2500), true)
    image += rng.normal(0, 5, image.shape)
    psf = measure_psf(image)
    # Weighted by SNR alone: FWHM 4.66, beta 1.71.
    assert psf.fwhm == pytest.approx(true.fwhm, rel=0.02)
    assert psf.beta == pytest.approx(true.beta, rel=0.05)
    assert psf.ellipticity == pytest.approx(true.ellipticity, abs=0.02)


def test_a_psf_rests_on_several_sources_when_the_strict_rule_finds_few():
    """Two sources above 10 sigma and eight of 6-9 sigma: the median of two would be
    as noisy as each fit, so the looser rule that admits all ten is used."""
    true = PSFShape(fwhm=3.5, beta=3.0, ellipticity=0.1, angle=0.5, n_stars=0)
    rng = np.random.default_rng(3)
    image = np.full((256, 256), 50.0)
    centres = [(x, y) for x in (30, 80, 130, 180, 226) for y in (40, 200)]
    for index, (x, y) in enumerate(centres):
        snr = 14.0 if index < 2 else rng.uniform(6, 9)
        image += moffat_image(image.shape, x + rng.uniform(-0.5, 0.5),
                              y + rng.uniform(-0.5, 0.5), snr * 4.0, true)
    image += rng.normal(0, 4.0, image.shape)
    psf = measure_psf(image)
    assert psf.n_stars >= 8
    assert psf.fwhm == pytest.approx(true.fwhm, rel=0.1)


def _faint_sky_field(seed, *, gain):
    """Isolated stars of 30-300 sigma on a faint sky (50 ADU, read noise 5 ADU), with
    the photon noise of ``gain`` e-/ADU (``None``: the same noise level, Gaussian and
    alike everywhere)."""
    rng = np.random.default_rng(seed)
    noise = math.sqrt(5.0**2 + 50.0)
    light = np.full((256, 256), 50.0)
    for _ in range(40):
        x, y = rng.uniform(10, 246, 2)
        light += moffat_image(light.shape, x, y, rng.uniform(30, 300) * noise, TRUE)
    if gain is None:
        return light + rng.normal(0, noise, light.shape)
    return rng.poisson(light * gain) / gain + rng.normal(0, 5.0, light.shape)


def test_light_variance_of_residuals_with_photon_noise():
    rng = np.random.default_rng(0)
    light = rng.uniform(50.0, 5000.0, 200_000)
    for per_unit in (0.0, 0.3, 2.0):
        residuals = rng.normal(0.0, np.sqrt(25.0 + per_unit * light))
        measured = light_variance(residuals, 5.0, light)
        assert measured == pytest.approx(per_unit, abs=0.005 + 0.02 * per_unit)


@pytest.mark.parametrize("gain", [0.5, 2.0])
def test_the_stars_photon_noise_is_measured(gain):
    """Photon noise adds ``light / gain`` to a star's variance in ADU."""
    for seed in range(2):
        psf = measure_psf(_faint_sky_field(seed, gain=gain))
        assert psf.light_variance == pytest.approx(1.0 / gain, rel=0.3)


def test_noise_that_does_not_grow_with_the_light_has_no_photon_noise():
    for seed in range(2):
        assert measure_psf(_faint_sky_field(seed, gain=None)).light_variance < 0.05
