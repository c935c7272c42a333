"""Background level and noise measured on the image, and the noise floor of integer data."""

import warnings

import numpy as np
import pytest

from pipeline.core.background import (black_clipped, constant_regions, estimate_background,
                                      noise_floor, noiseless_regions)
from pipeline.core.psf import PSFShape, moffat_image
from pipeline.core.starfit import fit_and_subtract_stars
from pipeline.metrics import star_flux_left

ROUNDING_NOISE = 1.0 / np.sqrt(12.0)


def test_gaussian_sky_gives_its_level_and_sigma():
    rng = np.random.default_rng(0)
    level, noise = estimate_background(rng.normal(120.0, 7.0, (256, 256)))
    # The darkest quarter of the meshes sits a little low: within a tenth of sigma.
    assert level == pytest.approx(120.0, abs=0.7)
    assert noise == pytest.approx(7.0, rel=0.05)


@pytest.mark.parametrize("dtype", [np.uint8, np.float64])
def test_flat_integer_sky_has_the_rounding_noise(dtype):
    image = np.full((128, 128), 46, dtype=dtype)
    image[60:63, 60:63] = 200
    assert noise_floor(image) == pytest.approx(ROUNDING_NOISE)
    level, noise = estimate_background(image)
    assert level == 46.0
    assert noise == pytest.approx(ROUNDING_NOISE)


def test_non_integer_data_have_no_floor():
    image = np.full((64, 64), 46.5)
    image[0, 0] = np.nan
    assert noise_floor(image) == 0.0
    assert noise_floor(np.rint(np.random.default_rng(1).normal(0, 3, (64, 64)))) \
        == pytest.approx(ROUNDING_NOISE)


def test_quantised_frame_with_a_flat_sky_loses_its_stars_without_warnings():
    """An 8-bit frame whose sky rounds to one value: thresholds stay finite."""
    psf = PSFShape(fwhm=3.0, beta=3.0, ellipticity=0.0, angle=0.0, n_stars=0)
    rng = np.random.default_rng(3)
    stars = np.zeros((256, 256))
    for _ in range(40):
        x, y = rng.uniform(8, 248, 2)
        stars += moffat_image(stars.shape, x, y, rng.uniform(20, 150), psf)
    truth = np.full(stars.shape, 46.0)
    image = np.rint(truth + stars + rng.normal(0, 0.2, stars.shape)).astype(np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = fit_and_subtract_stars(image)
    assert np.isfinite(fit.starless).all()
    assert abs(star_flux_left(fit.starless, truth, image - truth)) < 0.1


def _black_clipped_frame(seed=0, shape=(256, 256)):
    """An 8-bit-like sky of noise 10 whose gradient takes its left part below the
    black point: 43 % of the pixels are 0."""
    rng = np.random.default_rng(seed)
    sky = np.linspace(-60.0, 80.0, shape[1])[None, :] * np.ones(shape)
    return np.round(np.clip(sky + rng.normal(0, 10, shape), 0, 255))


def test_a_sky_clipped_at_the_black_point_is_left_out():
    """Meshes in or next to the clipped region gave a level of 0 and only the
    rounding noise (0.29), and thresholds in that noise found stars everywhere."""
    image = _black_clipped_frame()
    level, noise = estimate_background(image)
    assert noise == pytest.approx(10.0, rel=0.1)
    # The darkest meshes left are a mesh or more from the clipped region, where the
    # sky is above the black point by a few sigma.
    assert 10.0 < level < 40.0


def test_only_clipped_regions_count_as_black_clipped():
    image = _black_clipped_frame()
    clipped = black_clipped(image)
    assert clipped[:, :80].mean() > 0.9 and not clipped[:, 128:].any()
    # A sky 4 sigma above the black point has a few lone pixels at 0: its noise's
    # clipped lower tail, no region.
    rng = np.random.default_rng(1)
    sky = np.round(np.clip(40.0 + rng.normal(0, 10, (256, 256)), 0, 255))
    assert (sky == 0).any() and not black_clipped(sky).any()
    image[0, 0] = np.nan
    assert not black_clipped(image)[0, 0]
    assert not black_clipped(np.full((8, 8), np.nan)).any()


def test_constant_regions_match_their_definition_on_random_small_images():
    """Every pixel of a 3 x 3 square (mirrored at the edges) of one finite value,
    checked square by square."""
    rng = np.random.default_rng(5)
    for _ in range(200):
        shape = tuple(rng.integers(1, 10, 2))
        image = rng.integers(0, 2, shape).astype(float)
        image[rng.random(shape) < 0.05] = np.nan
        image[rng.random(shape) < 0.03] = np.inf
        mirrored = np.pad(image, 1, mode="symmetric")
        expected = np.zeros(shape, bool)
        for row, col in np.ndindex(shape):
            square = mirrored[row:row + 3, col:col + 3]
            if np.isfinite(square).all() and (square == square[0, 0]).all():
                expected[max(row - 1, 0):row + 2, max(col - 1, 0):col + 2] = True
        np.testing.assert_array_equal(constant_regions(image),
                                      expected & np.isfinite(image))


def test_constant_regions_are_the_flat_squares_and_nothing_of_the_noise():
    rng = np.random.default_rng(2)
    image = rng.normal(0.0, 1.0, (64, 64))
    assert not constant_regions(image).any()
    image[:, :10] = 0.0          # a mosaic's zero-filled border
    image[30:34, 40:44] = 7.5    # a clipped core
    image[50, 50] = np.nan
    flat = constant_regions(image)
    expected = np.zeros(image.shape, bool)
    expected[:, :10] = True
    expected[30:34, 40:44] = True
    assert np.array_equal(flat, expected)
    # A 2-pixel-wide strip holds no 3 x 3 square; NaN never counts.
    image[:, 20:22] = 3.0
    assert not constant_regions(image)[:, 20:22].any()
    assert not constant_regions(np.full((8, 8), np.nan)).any()


def test_noiseless_regions_of_quantised_data_are_the_black_clipped_ones():
    rng = np.random.default_rng(5)
    sky = np.rint(46.0 + rng.normal(0.0, 0.2, (64, 64)))   # rounds to 46 almost everywhere
    assert constant_regions(sky).mean() > 0.5
    assert not noiseless_regions(sky).any()
    sky[:, :10] = 0.0
    assert noiseless_regions(sky)[:, :10].all() and noiseless_regions(sky).sum() == 640
    unquantised = rng.normal(0.0, 1.0, (64, 64))
    unquantised[20:30, 20:30] = 2.0
    assert noiseless_regions(unquantised).sum() == 100


def test_a_zero_filled_border_does_not_count_as_sky():
    """A float frame's zero border has an RMS of 0: it gave the frame a noise of 0."""
    rng = np.random.default_rng(4)
    image = rng.normal(0.0, 5.0, (256, 256))
    image[:, :96] = 0.0
    level, noise = estimate_background(image)
    assert noise == pytest.approx(5.0, rel=0.1)
    assert abs(level) < 1.0


def test_a_mosaic_with_a_small_footprint_falls_back_to_all_its_pixels():
    """Data only in the central 212 x 212 of 512 x 512, the rest zero-filled: no mesh
    kept half its pixels, and photutils refused the frame."""
    rng = np.random.default_rng(6)
    image = np.zeros((512, 512))
    image[150:-150, 150:-150] = 100.0 + rng.normal(0.0, 5.0, (212, 212))
    level, noise = estimate_background(image)
    assert level == pytest.approx(100.0, abs=0.5)
    assert noise == pytest.approx(5.0, rel=0.05)
