"""Noise clipped at a display's black point: the scene's level behind it."""

import math

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage

from pipeline import remove_stars
from pipeline.core.censoring import (
    _censored_level,
    _censored_mean,
    find_black_point,
    uncensored,
)
from pipeline.core.psf import PSFShape, moffat_image
from pipeline.core.starfit import fit_and_subtract_stars
from pipeline.tiling import tile_warning_filters
from pipeline.tiling.fitted import frame_levels

SIGMA = 10.0
#: The scene's levels, in sigma, of the bands of :func:`_bands`.
LEVELS = (-1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 4.0)
BAND = 48


def _bands(seed=0, *, light=0.0):
    """``(clipped data, scene levels)``: bands of the levels ``LEVELS`` (plus
    ``light``, a star's), in Gaussian noise, clipped at 0 as a black point clips."""
    rng = np.random.default_rng(seed)
    levels = np.repeat(np.array(LEVELS) * SIGMA, BAND)[None, :] * np.ones((160, 1))
    data = np.maximum(levels + light + rng.normal(0.0, SIGMA, levels.shape), 0.0)
    return data, levels


def _band_medians(image):
    """Each band's median, away from its edges (the window's reach)."""
    return np.array([np.median(image[20:-20, k * BAND + 12:(k + 1) * BAND - 12])
                     for k in range(len(LEVELS))])


def _denoised(data):
    """A stand-in for the denoiser: the local mean."""
    return ndimage.uniform_filter(data, 9)


def test_the_black_point_is_a_lowest_value_that_the_noise_piles_up_at():
    rng = np.random.default_rng(1)
    noise = rng.normal(30.0, SIGMA, (200, 200))
    assert find_black_point(noise) == -math.inf           # one pixel at its minimum
    assert find_black_point(np.maximum(noise, 25.0)) == 25.0
    few = noise.copy()
    few[:3, :3] = noise.min() - 1.0                         # 9 pixels: a cold corner
    assert find_black_point(few) == -math.inf
    assert find_black_point(np.full((4, 4), np.nan)) == -math.inf
    with_nan = np.maximum(noise, 25.0)
    with_nan[::7] = np.nan
    assert find_black_point(with_nan) == 25.0


def test_the_scene_behind_clipped_noise_is_found_again():
    data, levels = _bands()
    mean = _denoised(data)
    truth = np.maximum(levels, 0.0)
    # The local mean lies above the scene by sigma g(t / sigma) - t: 0.40 sigma at 0.
    bias = _band_medians(mean - truth) / SIGMA
    expected = np.array([0.083, 0.198, 0.399, 0.198, 0.083, 0.008, 0.0])
    assert bias == pytest.approx(expected, abs=0.04)
    result = uncensored(mean, np.zeros_like(mean), data, 0.0)
    assert np.all(np.abs(_band_medians(result - truth)) < 0.06 * SIGMA)
    assert result.min() == 0.0                      # no scene below the black point
    # Two sigma above the black point the change is below 0.05 sigma, and further
    # out (beyond the window's reach) there is none.
    assert np.abs(result - mean)[:, 5 * BAND + 9:].max() < 0.05 * SIGMA
    assert np.array_equal(result[:, 6 * BAND + 9:], mean[:, 6 * BAND + 9:])


def test_light_subtracted_from_the_clipped_pixels_counts_as_theirs():
    # Sparse pixels of a sky half a sigma above the black point are lifted off it by
    # a star's light of 5 sigma: after its model is subtracted, their scene is the
    # sky's own level, with no clipping to correct, though the sky around them is
    # clipped.
    rng = np.random.default_rng(6)
    level, star = 0.5 * SIGMA, 5.0 * SIGMA
    data = np.maximum(level + rng.normal(0.0, SIGMA, (160, 160)), 0.0)
    scene = _denoised(data)
    lifted = np.zeros(data.shape, bool)
    lifted[::8, ::8] = True
    data[lifted] = level + star + rng.normal(0.0, SIGMA, lifted.sum())
    scene[lifted] = level           # the denoiser's mean, the star's model taken off
    model = np.where(lifted, star, 0.0)
    result = uncensored(scene, model, data, 0.0)
    inner = np.zeros(data.shape, bool)
    inner[20:-20, 20:-20] = True
    assert np.abs(result[lifted & inner] - level).max() < 1e-4 * SIGMA
    assert abs(np.median(result[~lifted & inner]) - level) < 0.06 * SIGMA
    # Without the model, they would have been taken down as clipped noise, by the
    # bias of 0.2 sigma.
    alone = uncensored(scene, np.zeros_like(scene), data, 0.0)
    assert np.median(alone[lifted & inner]) < 0.4 * SIGMA


def test_a_zero_border_beside_a_bright_sky_is_no_clipped_noise():
    rng = np.random.default_rng(2)
    sky = rng.normal(1000.0, 30.0, (160, 160))
    sky[:, :40] = 0.0                               # a mosaic's zero-filled border
    assert find_black_point(sky) == 0.0
    mean = _denoised(sky)
    result = uncensored(mean, np.zeros_like(sky), sky, 0.0)
    assert np.array_equal(result, mean)


def test_real_zeros_of_a_few_photon_counts_are_no_clipped_noise():
    counts = np.random.default_rng(3).poisson(2.0, (160, 160)).astype(np.float64)
    assert find_black_point(counts) == 0.0
    mean = _denoised(counts)
    result = uncensored(mean, np.zeros_like(mean), counts, 0.0, step=1.0)
    assert np.array_equal(result, mean)


def test_masked_pixels_and_the_inputs_stay_as_they_are():
    data, _ = _bands()
    data[50:60, 100:110] = np.nan
    mean = _denoised(np.nan_to_num(data))
    mean[np.isnan(data)] = np.nan
    copies = data.copy(), mean.copy()
    result = uncensored(mean, np.zeros_like(mean), data, 0.0)
    assert np.array_equal(np.isnan(result), np.isnan(data))
    assert np.array_equal(data, copies[0], equal_nan=True)
    assert np.array_equal(mean, copies[1], equal_nan=True)
    assert np.array_equal(uncensored(mean, 0 * mean, data, -math.inf), mean,
                          equal_nan=True)


PSF = PSFShape(fwhm=3.0, beta=3.0, ellipticity=0.0, angle=0.0, n_stars=0)


def _display_frame(seed=4):
    """A sky falling through a display's black point (at 0) across the frame, with
    stars: ``(image, truth, stars)``, the noise clipped at the black point."""
    rng = np.random.default_rng(seed)
    shape = (192, 192)
    sky = np.linspace(3.0 * SIGMA, -1.5 * SIGMA, shape[1])[None, :] * np.ones((shape[0], 1))
    stars = np.zeros(shape)
    for _ in range(40):
        x, y = rng.uniform(5, 187, 2)
        stars += moffat_image(shape, x, y, 10 ** rng.uniform(1.5, 2.8), PSF)
    image = np.maximum(sky + stars + rng.normal(0.0, SIGMA, shape), 0.0)
    return image, np.maximum(sky, 0.0), stars


@pytest.mark.slow
def test_the_starless_sky_at_a_black_point_is_the_scene_not_the_clipped_mean():
    image, truth, stars = _display_frame()
    original = image.copy()
    fit = fit_and_subtract_stars(image, psf=PSF)
    assert np.array_equal(image, original)
    assert np.allclose(fit.stars + fit.starless, image, rtol=0, atol=1e-9)
    near_black = (truth < SIGMA) & (stars < 0.1 * SIGMA)
    near_black[:, :20] = near_black[:, -20:] = False
    error = (fit.starless - truth)[near_black] / SIGMA
    assert abs(np.mean(error)) < 0.05
    # Taken as unclipped, the same frame's sky comes out 0.15-0.17 sigma high
    # (seeds 4-6), with twice the RMSE.
    unclipped = fit_and_subtract_stars(image, psf=PSF, black_point=-math.inf)
    error_unclipped = (unclipped.starless - truth)[near_black] / SIGMA
    assert np.mean(error_unclipped) > 0.1
    assert np.sqrt(np.mean(error ** 2)) < 0.7 * np.sqrt(np.mean(error_unclipped ** 2))
    assert fit.starless.min() >= 0.0


def test_black_point_is_checked():
    image, _, _ = _display_frame()
    with pytest.raises(TypeError, match="black_point"):
        fit_and_subtract_stars(image, psf=PSF, black_point="0")
    with pytest.raises(ValueError, match="black_point"):
        fit_and_subtract_stars(image, psf=PSF, black_point=math.nan)


def test_the_tiled_run_takes_the_frame_s_black_point():
    image, _, _ = _display_frame()
    image[:5] = np.nan
    assert frame_levels(da.from_array(image, chunks=64)).black_point == 0.0
    assert find_black_point(image) == 0.0
    unclipped = image + 1.0 + np.random.default_rng(5).uniform(0, 1e-3, image.shape)
    assert frame_levels(da.from_array(unclipped, chunks=64)).black_point == -math.inf


def test_the_censored_mean_and_its_inverse():
    # g(a) = a Phi(a) + phi(a), the mean of max(a + Z, 0), against a direct sum over
    # the normal density, and its inverse.
    a = np.linspace(-4, 4, 17)
    z = np.linspace(-12, 12, 240001)
    density = np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    direct = [np.trapezoid(np.maximum(level + z, 0.0) * density, z) for level in a]
    assert _censored_mean(a) == pytest.approx(direct, abs=1e-6)
    assert _censored_level(_censored_mean(a)) == pytest.approx(a, abs=1e-6)
    assert _censored_level(np.array([20.0, 1e6])) == pytest.approx([20.0, 1e6])
    assert np.all(_censored_level(np.array([0.0, -1.0])) == -np.inf)


@pytest.mark.slow
def test_a_tiled_run_takes_the_clipped_sky_down_as_the_whole_frame_does():
    # Each tile measures its windows as the whole frame does.  (Bounded by the
    # noise each tile measured on its own, 0.49 % of the pixels differed by more
    # than 0.25 sigma, mean 0.0073 sigma.)
    image = np.tile(_display_frame()[0], (2, 2))
    whole = remove_stars(image, preset="survey")
    with tile_warning_filters():    # photutils' own filter, held across the threads
        tiled = remove_stars(da.from_array(image, chunks=192), preset="survey").compute()
    difference = np.abs(tiled - whole) / SIGMA
    assert np.mean(difference > 0.25) < 1e-3
    assert difference.mean() < 0.005
