"""Star removal by fitting the image's PSF: stars go, galaxies and the sky stay."""

import dataclasses
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from pipeline import remove_stars
from pipeline.core.background import black_clipped
from pipeline.core.psf import PSFShape, measure_psf, moffat_image
from pipeline.core.starfit import (_background_maps, _clipped_lobes, _pixel_noise,
                                    fit_and_subtract_stars)
from pipeline.metrics import extended_rmse, rmse, star_flux_left
from pipeline.synthetic import make_survey_frame

PSF = PSFShape(fwhm=3.2, beta=3.0, ellipticity=0.15, angle=0.4, n_stars=0)


def _scene(seed=0, *, sky=200.0, saturate=None):
    """``(image, truth, stars, galaxy mask)``: PSF stars, wide galaxies, noise."""
    rng = np.random.default_rng(seed)
    shape = (256, 256)
    stars = np.zeros(shape)
    for _ in range(80):
        x, y = rng.uniform(5, 251, 2)
        rows = slice(max(int(y) - 30, 0), int(y) + 31)
        cols = slice(max(int(x) - 30, 0), int(x) + 31)
        stars[rows, cols] += moffat_image(stars[rows, cols].shape, x - cols.start,
                                          y - rows.start, 10 ** rng.uniform(1.3, 3.5), PSF)
    yy, xx = np.mgrid[0:256, 0:256]
    galaxies = np.zeros(shape)
    for x, y, width in ((60, 70, 6.0), (190, 80, 8.0), (120, 200, 5.0)):
        galaxies += 60 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * width**2))
    truth = sky + galaxies
    image = truth + stars + rng.normal(0, 5, shape)
    if saturate is not None:
        image = np.minimum(image, saturate)
        stars = np.minimum(truth + stars, saturate) - truth
    return image, truth, stars, galaxies > 10


def _stars_beside(centres, distance, amplitudes, rng, shape=(256, 256)):
    """PSF stars ``distance`` pixels from each of ``centres`` (x, y), in random
    directions, with peaks drawn from ``amplitudes`` (low, high)."""
    layer = np.zeros(shape)
    for x, y in centres:
        angle = rng.uniform(0, 2 * np.pi)
        layer += moffat_image(shape, x + distance * np.cos(angle),
                              y + distance * np.sin(angle), rng.uniform(*amplitudes), PSF)
    return layer


def test_stars_go_and_galaxies_stay():
    image, truth, stars, galaxy = _scene()
    fit = fit_and_subtract_stars(image)
    assert fit.psf.fwhm == pytest.approx(PSF.fwhm, rel=0.05)
    assert abs(star_flux_left(fit.starless, truth, stars)) < 0.05
    galaxy_flux = np.sum(truth[galaxy] - 200.0)
    assert np.sum(fit.starless[galaxy] - 200.0) == pytest.approx(galaxy_flux, rel=0.1)
    # Better than the input by far, and below the noise (5) once denoised.
    assert rmse(fit.starless, truth) < 0.2 * rmse(image, truth)
    assert rmse(fit.starless, truth) < 5.0


def test_cosmic_ray_hits_are_no_stars_and_stay():
    """Cosmic-ray hits of 20-400 sigma, one or two pixels each, narrower than the PSF
    and clear of the stars, are no stars: the starless image keeps each hit's light
    (to within 5 % or 3 sigma; the stars layer, the input less the starless image,
    takes none of it), and the starless image 2-6 px around a hit moves by less than
    3 sigma.  (Hits on stars: the next test.)"""
    image, _, stars, _ = _scene(seed=1)
    rng = np.random.default_rng(7)
    near_a_star = ndimage.maximum_filter(stars, size=9) > 25.0     # 5 sigma, 4 px
    hits, places = np.zeros_like(image), []
    for row, col in zip(rng.integers(10, 246, 60), rng.integers(10, 245, 60)):
        if near_a_star[row, col] or any(abs(row - r) < 10 and abs(col - c) < 10
                                        for r, c in places):
            continue
        places.append((row, col))
        peak = rng.uniform(20, 400) * 5.0
        hits[row, col] += peak
        if rng.random() < 0.5:
            hits[row, col + 1] += 0.5 * peak
    assert len(places) >= 15
    before = fit_and_subtract_stars(image)
    after = fit_and_subtract_stars(image + hits)
    for row, col in places:
        hit = (slice(row, row + 1), slice(col, col + 2))
        kept = np.sum(after.starless[hit] - before.starless[hit])
        # (The denoising takes up to a few sigma off a sharp spike.)
        assert abs(kept - np.sum(hits[hit])) < max(0.05 * np.sum(hits[hit]), 3 * 5.0), \
            (row, col)
        around = (slice(row - 6, row + 7), slice(col - 6, col + 8))
        moved = np.abs(after.starless[around] - before.starless[around])
        moved[4:9, 4:11] = 0.0      # (the hit and the pixels next to it)
        assert moved.max() < 3 * 5.0, (row, col)


@pytest.mark.xfail(strict=True, reason=(
    "known limitation: a hit on a star's brightest pixel makes the source sharper than "
    "the PSF, a cusp, and the star stays (here the first keeps 99 % of its flux; "
    "bench_cosmic_rays.py: 106 stars of 120). Masking pixels sharper than the PSF "
    "fixes it but takes the pixel-centred cusps of galaxies drawn without the PSF "
    "for hits (benchmarks/README.md)"))
def test_stars_hit_by_cosmic_rays_go_and_the_hits_stay():
    """A hit of 1-3 times a star's peak on its brightest pixel: the star should go and
    the hit stay (within 6 px, at most 5 % of the star's flux left or taken beyond
    the hit's own light)."""
    image, truth, stars, _ = _scene(seed=1)
    brightest = ((stars == ndimage.maximum_filter(stars, size=7)) & (stars > 100.0)
                 & (stars < 1500.0))
    rng = np.random.default_rng(3)
    hits = np.zeros_like(image)
    hit_stars = list(zip(*np.nonzero(brightest)))[::4]
    for row, col in hit_stars:
        hits[row, col] = rng.uniform(1, 3) * stars[row, col]
    fit = fit_and_subtract_stars(image + hits)
    rows, cols = np.mgrid[0:256, 0:256]
    assert len(hit_stars) >= 10
    for row, col in hit_stars:
        disk = (rows - row) ** 2 + (cols - col) ** 2 <= 36
        left = np.sum((fit.starless - hits - truth)[disk]) / np.sum(stars[disk])
        assert abs(left) < 0.05, (row, col, left)


def test_a_large_pedestal_is_not_saturation():
    """A coadd's sky of 200 000 e- under stars of a few thousand: 98 % of the
    frame's maximum lies below its sky, and every sky pixel counted as clipped."""
    image, truth, stars, _ = _scene(seed=1)
    pedestal = 2e5
    fit = fit_and_subtract_stars(image + pedestal)
    plain = fit_and_subtract_stars(image)
    assert abs(star_flux_left(fit.starless - pedestal, truth, stars)) < 0.05
    # 4.6 with the level measured from zero, 1.3 without the pedestal.
    assert rmse(fit.starless - pedestal, truth) < 1.05 * rmse(plain.starless, truth)


def test_sky_subtracted_and_scaled_data_work_alike():
    image, truth, stars, _ = _scene(seed=1)
    for offset, scale in ((-200.0, 1.0), (-200.0, 0.01)):
        fit = fit_and_subtract_stars((image + offset) * scale)
        assert abs(star_flux_left(fit.starless, (truth + offset) * scale,
                                  stars * scale)) < 0.05


@pytest.mark.xfail(strict=True, reason=(
    "known limitation: the PSF's fits stop at scipy's default tolerance on a flat "
    "valley of their cost (a faint source's core width against its beta), where "
    "rounding decides the stop: beta 3.87 or 3.54, and the starless images differ by "
    "up to 26 DN (noise 6).  Converged fits (tolerance 1e-12) pass this, but on "
    "stretched frames they end at beta 8-17 and leave 25-31 % of the star flux"))
def test_a_pedestal_moves_the_starless_image_by_that_pedestal_only():
    """Linear data and the same data less a constant sky are one scene: the starless
    images should differ by the constant."""
    frame = make_survey_frame((256, 256), seed=3, n_stars=150, n_galaxies=6)
    starless = remove_stars(frame.image)
    for pedestal in (1000.0, -37.5):
        moved = remove_stars(frame.image + pedestal) - pedestal
        assert np.max(np.abs(moved - starless)) < 0.25 * frame.noise_sigma


def test_saturated_stars_are_removed_with_their_wings():
    image, truth, stars, _ = _scene(seed=2, saturate=2000.0)
    assert (image >= 2000.0).sum() > 10
    fit = fit_and_subtract_stars(image)
    assert abs(star_flux_left(fit.starless, truth, stars)) < 0.1


def test_layers_add_up_nan_stays_and_input_is_untouched():
    image, _, _, _ = _scene(seed=3)
    image[10:14, 100:140] = np.nan
    before = image.copy()
    fit = fit_and_subtract_stars(image, denoise=False)
    assert np.array_equal(image, before, equal_nan=True)
    finite = np.isfinite(image)
    assert np.array_equal(np.isnan(fit.starless), ~finite)
    assert np.array_equal(np.isnan(fit.stars), ~finite)
    np.testing.assert_allclose(fit.stars[finite] + fit.starless[finite], image[finite],
                               rtol=1e-12, atol=1e-9)
    # Without denoising, stars are the fitted models alone.
    np.testing.assert_allclose(fit.stars[finite], fit.model[finite], atol=1e-9)
    assert fit.n_stars >= 40


def test_the_star_count_is_the_number_of_fitted_centres():
    """A source split into two stars counts two: ``n_stars`` was the number of
    sources judged stars, one fewer than ``centres`` on this frame."""
    fit = fit_and_subtract_stars(make_survey_frame((256, 256), seed=0).image)
    assert fit.n_stars == len(fit.centres) == fit.centres.shape[0]
    assert fit.centres.shape == (fit.n_stars, 2)


@pytest.mark.parametrize("sky", [0.0, 200.0])
def test_a_zero_filled_border_is_masked_data(sky):
    """A mosaic's zero-filled border has no noise: its RMS of 0 made the fits'
    weights overflow (LinAlgError on a sky-subtracted frame)."""
    image, truth, stars, _ = _scene(seed=4, sky=sky)
    image[:, :48] = 0.0
    before = image.copy()
    fit = fit_and_subtract_stars(image)
    assert np.array_equal(image, before)
    assert np.array_equal(fit.starless[:, :48], image[:, :48])
    assert not fit.stars[:, :48].any()
    np.testing.assert_allclose(fit.stars + fit.starless, image, rtol=1e-12, atol=1e-9)
    inside = (slice(None), slice(56, None))
    assert abs(star_flux_left(fit.starless[inside], truth[inside], stars[inside])) < 0.05


def test_a_mosaic_with_a_small_footprint_works():
    """Data in the central 212 x 212 of 512 x 512 only: no background mesh kept half
    its pixels, and photutils refused the frame."""
    frame = make_survey_frame((512, 512), seed=1)
    image = np.zeros((512, 512))
    inside = (slice(150, -150), slice(150, -150))
    image[inside] = frame.image[inside]
    fit = fit_and_subtract_stars(image)
    outside = np.ones(image.shape, bool)
    outside[inside] = False
    assert np.array_equal(fit.starless[outside], image[outside])
    assert abs(star_flux_left(fit.starless[inside], frame.truth[inside],
                              frame.stars[inside])) < 0.1


def test_an_unquantised_display_frame_clipped_at_its_black_point_works():
    """A stretched frame stored as floats in 0..1, whose sky gradient is clipped at 0
    over a corner, crashed as the zero border did."""
    frame = make_survey_frame((256, 256), seed=5, scale="stretched", fwhm=3.0,
                              sky_gradient=(0.2, 0.2), n_stars=400)
    clipped = black_clipped(frame.image)
    assert clipped.mean() > 0.1
    fit = fit_and_subtract_stars(frame.image / 255.0)
    assert not fit.starless[clipped].any() and not fit.stars[clipped].any()
    starless = 255.0 * fit.starless
    assert rmse(starless, frame.truth) < 0.5 * rmse(frame.image, frame.truth)


def test_infinite_pixels_are_masked_however_many():
    """With +inf on most of the frame, the median that fills masked pixels was +inf,
    and the denoising spread it into the finite pixels beside them."""
    image, _, _, _ = _scene(seed=5)
    image[:, 120:] = np.inf
    fit = fit_and_subtract_stars(image)
    finite = np.isfinite(image)
    assert np.isfinite(fit.starless[finite]).all()
    assert np.array_equal(fit.starless[~finite], image[~finite])


@pytest.mark.parametrize("value, dtype", [(-32768.0, np.float32), (-1e10, np.float32),
                                          (-1e10, np.float64), (-1e160, np.float64)])
def test_pixels_far_below_the_sky_are_masked_data(value, dtype):
    """A sentinel value or a cold column, far below the sky, comes out as it went in
    and changes nothing around it.  Before, the fits and the denoising took them for
    data: -32768 changed the starless image elsewhere by up to 78 ADU (noise 5),
    -1e10 by 2e7, and -1e160 overflowed the background statistics."""
    image, _, _, _ = _scene(seed=3)
    image = image.astype(dtype)
    clean = fit_and_subtract_stars(image)
    bad = np.zeros(image.shape, bool)
    bad[128, 60] = True
    bad[30:60, 200] = True
    holed = np.where(bad, dtype(value), image)
    before = holed.copy()
    fit = fit_and_subtract_stars(holed, psf=clean.psf)
    assert np.array_equal(holed, before)
    assert np.array_equal(fit.starless[bad], holed[bad])
    assert not fit.stars[bad].any()
    # Beside them, what a masked pixel changes (the patches that hold it): a small
    # fraction of the noise.
    assert np.abs(fit.starless - clean.starless)[~bad].max() < 0.5 * 5.0


def test_bad_input():
    with pytest.raises(TypeError, match="real"):
        fit_and_subtract_stars(np.ones((64, 64)) * 1j)
    with pytest.raises(ValueError, match="no bright"):
        fit_and_subtract_stars(np.random.default_rng(0).normal(0, 1, (128, 128)))
    with pytest.raises(TypeError, match="dtype bool"):
        fit_and_subtract_stars(np.ones((64, 64), bool))
    with pytest.raises(ValueError, match="too small"):
        fit_and_subtract_stars(np.ones((1, 1)))
    with pytest.raises(ValueError, match="2-D"):
        fit_and_subtract_stars(np.ones((64, 64, 3)))


def test_masked_array_entries_are_masked_data():
    image, _, _, _ = _scene(seed=3)
    mask = np.zeros(image.shape, bool)
    mask[40:50, 60:75] = True
    masked = np.ma.masked_array(image, mask=mask)
    holed = np.where(mask, np.nan, image)
    assert measure_psf(masked) == measure_psf(holed)
    fit = fit_and_subtract_stars(masked)
    np.testing.assert_array_equal(fit.starless, fit_and_subtract_stars(holed).starless)
    assert np.isnan(fit.starless[mask]).all()


@pytest.mark.parametrize("angle", [20.0, 75.0])
def test_a_faint_streak_is_not_a_row_of_stars(angle):
    from pipeline.streaks import streak_amplitude_kept, streak_layer

    image, truth, stars, _ = _scene(seed=4)
    layer, mask, _ = streak_layer(image.shape, angle=angle, amplitude=8 * 5.0, fwhm=3.0)
    fit = fit_and_subtract_stars(image + layer)
    kept = streak_amplitude_kept(fit.starless, truth + layer, mask,
                                 exclude=stars > 2.5)
    assert kept >= 0.8
    assert abs(star_flux_left(fit.starless, truth + layer, stars)) < 0.05


#: A 4 x 4 grid of (x, y) over a 256 x 256 frame.
_GRID = [(x, y) for x in (30.0, 95.0, 160.0, 225.0) for y in (30.0, 95.0, 160.0, 225.0)]


def _pairs_side_by_side(shape, rng, half_separation, amplitudes):
    """Around each point of the ``_GRID``, two PSF stars
    ``2 * half_separation`` px apart at a random angle, with peaks drawn from
    ``amplitudes`` (low, high)."""
    layer = np.zeros(shape)
    for x, y in _GRID:
        angle = rng.uniform(0, np.pi)
        for offset in (-half_separation, half_separation):
            layer += moffat_image(shape, x + offset * np.cos(angle),
                                  y + offset * np.sin(angle), rng.uniform(*amplitudes), PSF)
    return layer


def test_two_stars_side_by_side_are_no_piece_of_a_streak():
    """Pairs of stars of 10-50 noise sigmas 1.4 FWHM apart are as elongated as a
    streak (second moments), but their light does not go on beyond them along that
    axis: both stars go.  Kept as streak pieces before: 2 of the 16 pairs, 192 and 75
    ADU left (noise 5)."""
    image, truth, _, _ = _scene(seed=7)
    pairs = _pairs_side_by_side(image.shape, np.random.default_rng(2), 2.25, (50, 250))
    fit = fit_and_subtract_stars(image + pairs)
    for centre in _GRID:
        assert _worst_residual(fit, truth, centre) < 3 * 5.0, centre
    assert abs(star_flux_left(fit.starless, truth, pairs)) < 0.03


def _nebula_blobs(shape, centres, amplitude, width):
    """Smooth light: a Gaussian of ``amplitude`` and ``width`` at each of ``centres``."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    return sum(amplitude * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * width ** 2))
               for x, y in centres)


@pytest.mark.parametrize("seed", [3, 4])
def test_two_stars_side_by_side_on_a_nebula_are_no_piece_of_a_streak(seed):
    """Pairs of stars of 20-50 noise sigmas 1.25 FWHM apart, each on a nebula of 2
    sigmas: the one PSF fitted to a pair leaves light on both sides along its axis,
    and the nebula lies there too.  Judged beyond the pair's two PSFs and against
    the light across the axis, the light does not go on: both stars go.  Kept as
    streak pieces before: 3 and 2 of the 16 pairs, up to 225 ADU left (noise 5); a
    frame of the survey benchmark kept such a pair of 45 and 34 sigmas (its
    extended-source RMSE 0.68 sigma, 0.36 without it)."""
    rng = np.random.default_rng(seed)
    pairs = _pairs_side_by_side((256, 256), rng, 2.0, (100, 250))
    truth = 200.0 + _nebula_blobs((256, 256), _GRID, 10.0, 20.0)
    fit = fit_and_subtract_stars(truth + pairs + rng.normal(0, 5, truth.shape), psf=PSF)
    for centre in _GRID:
        assert _worst_residual(fit, truth, centre) < 3 * 5.0, centre
    assert abs(star_flux_left(fit.starless, truth, pairs)) < 0.03


def test_a_faint_streak_across_nebulae_and_beside_bright_stars_stays():
    """The light across a streak piece's axis, which tells a nebula from a streak, is
    taken without the stars already fitted: a 5-sigma streak between two stars of
    about 300 sigmas lost a tenth more of its amplitude with their wings in it."""
    from pipeline.streaks import streak_amplitude_kept, streak_layer

    image, truth, stars, _ = _scene(seed=4)
    nebula = _nebula_blobs(image.shape, _GRID, 10.0, 20.0)
    layer, mask, _ = streak_layer(image.shape, angle=130.0, amplitude=5 * 5.0, fwhm=3.0)
    fit = fit_and_subtract_stars(image + nebula + layer)
    assert streak_amplitude_kept(fit.starless, truth + nebula + layer, mask,
                                 exclude=stars > 2.5) >= 0.85


@pytest.mark.parametrize("separation", [1.2, 1.6])
def test_close_pairs_of_bright_stars_both_go(separation):
    """A pair closer than the FWHM: the first fit's leftover is the second star, not
    a galaxy's cusp (the scene's field stars give the PSF)."""
    image, truth, stars, _ = _scene(seed=5)
    rng = np.random.default_rng(6)
    pairs = np.zeros_like(image)
    for x, y in ((70.0, 150.0), (180.0, 170.0), (140.0, 40.0)):
        for dx, amplitude in ((0.0, 3000.0), (separation, 1000.0)):
            pairs += moffat_image(image.shape, x + dx + rng.uniform(-0.5, 0.5),
                                  y + rng.uniform(-0.5, 0.5), amplitude, PSF)
    fit = fit_and_subtract_stars(image + pairs)
    near = pairs > 5.0
    # Every pair goes to within a few noise sigmas (5) at worst, on average to ~1.
    residual = fit.starless[near] - truth[near]
    assert np.abs(residual).max() < 25.0
    assert np.sqrt(np.mean(residual ** 2)) < 6.0


def _pairs_on_the_scene(image, seed, separation, ratio, companions=1):
    """``(stars, centres)``: six stars of 2000-4000 DN (the brightest of the frame,
    which is not clipped) on ``_CLEAR``'s places, each with a companion ``ratio`` as
    bright ``separation`` px away in a random direction; with ``companions=2`` a
    second one too, 0.6-1.4 pi round from the first, each companion 0.7-1.3 times
    ``ratio`` as bright."""
    rng = np.random.default_rng(seed)
    stars, centres = np.zeros_like(image), []
    for x, y in _CLEAR:
        angle = rng.uniform(0, 2 * np.pi)
        amplitude = rng.uniform(2000, 4000)
        x, y = x + rng.uniform(-0.5, 0.5), y + rng.uniform(-0.5, 0.5)
        stars += moffat_image(image.shape, x, y, amplitude, PSF)
        if companions == 1:
            around = [(angle, ratio)]
        else:
            around = [(angle, ratio * rng.uniform(0.7, 1.3)),
                      (angle + rng.uniform(0.6 * np.pi, 1.4 * np.pi),
                       ratio * rng.uniform(0.7, 1.3))]
        for direction, share in around:
            stars += moffat_image(image.shape, x + separation * np.cos(direction),
                                  y + separation * np.sin(direction), share * amplitude,
                                  PSF)
        centres.append((x, y))
    return stars, centres


def _worst_near(starless, truth, centres, radius, noise=5.0):
    """The largest ``|starless - truth|`` within ``radius`` px of each of ``centres``
    (x, y), in units of ``noise``."""
    rows, cols = np.indices(truth.shape)
    return [np.abs(starless - truth)[(cols - x) ** 2 + (rows - y) ** 2 <= radius ** 2]
            .max() / noise for x, y in centres]


def _worst_left_by_pairs(seeds, separation, ratio, companions=1):
    """The largest error (in noise sigmas) within ``separation`` + 4 px of each
    group's first star, over the groups of ``seeds`` (:func:`_pairs_on_the_scene`)."""
    image, truth, _, _ = _scene(seed=0)
    worst = []
    for seed in seeds:
        stars, centres = _pairs_on_the_scene(image, seed, separation, ratio, companions)
        fit = fit_and_subtract_stars(image + stars)
        worst += _worst_near(fit.starless, truth, centres, separation + 4.0)
    return np.array(worst)


def test_an_infinite_saturation_level_means_an_unclipped_frame():
    """``saturation=numpy.inf`` says no pixel is clipped: the result is that of a level
    above the frame's largest value; NaN and -inf stay errors."""
    image, _, _, _ = _scene(seed=0, saturate=1500.0)
    assert np.count_nonzero(image == 1500.0) >= 10
    unclipped = fit_and_subtract_stars(image, psf=PSF, saturation=np.inf)
    above = fit_and_subtract_stars(image, psf=PSF, saturation=2.0 * image.max())
    np.testing.assert_array_equal(unclipped.starless, above.starless)
    clipped = fit_and_subtract_stars(image, psf=PSF)
    assert not np.array_equal(clipped.starless, unclipped.starless)
    for bad in (np.nan, -np.inf):
        with pytest.raises(ValueError, match="saturation must be finite"):
            fit_and_subtract_stars(image, psf=PSF, saturation=bad)


def test_the_brightest_stars_of_an_unclipped_frame_are_not_clipped_cores():
    """A sharp star centred on a pixel stands out from its neighbours as a core clipped
    on one pixel does, but its peak is what the PSF predicts.  Taken for clipped, the
    frame's brightest stars were fitted on their wings, and a companion 1.25 FWHM away
    (0.4 as bright) kept 35 and 47 sigma in 2 of these 18 pairs."""
    worst = _worst_left_by_pairs((0, 1, 2), 4.0, 0.4)
    assert worst.max() < 10.0, np.round(worst)


def test_pairs_a_little_wider_than_the_fwhm_both_go():
    """Companions a fifth as bright 3.5 px (1.1 FWHM) away: the first star's fit (on
    its plane) and a leftover fit beside it took part of the companion's light, what
    was left looked narrower than the PSF and stayed as a cusp (67 sigma in 1 of 12
    pairs).  Fitted again with the stars around it, it goes."""
    worst = _worst_left_by_pairs((0, 1), 3.5, 0.2)
    assert worst.max() < 10.0, np.round(worst)


@pytest.mark.parametrize("ratio, seeds", [(0.3, (0, 1)), (0.6, (1, 2))])
def test_a_star_between_two_companions_goes(ratio, seeds):
    """A star with two companions 0.3 as bright 4 px (1.25 FWHM) away on either side
    is as wide as a galaxy, and no pair of PSFs fits it: the three were kept whole (468
    and 732 sigma left in 2 of the 12 groups of seeds 0 and 1).  With companions 0.6
    as bright, on its plane it looks narrower than the PSF, a cusp, and no pair fits
    that either (607 and 501 sigma left in 2 of the 12 of seeds 1 and 2).  Three PSFs
    fit both to within noise."""
    worst = _worst_left_by_pairs(seeds, 4.0, ratio, companions=2)
    assert worst.max() < 10.0, np.round(worst)


def _clipped_with_companions(shape, rng, brightness, distance, companion):
    """``(stars, companions)``: at each of ``_CLEAR``'s places a star of peak ``10 **
    U(*brightness)`` and a companion ``distance`` px away in a random direction, of
    the peak that ``companion(rng)`` draws, and the companions' centres (x, y)."""
    stars, companions = np.zeros(shape), []
    for x, y in _CLEAR:
        amplitude = 10 ** rng.uniform(*brightness)
        x, y = x + rng.uniform(-0.5, 0.5), y + rng.uniform(-0.5, 0.5)
        stars += moffat_image(shape, x, y, amplitude, PSF)
        angle = rng.uniform(0, 2 * np.pi)
        x, y = x + distance * np.cos(angle), y + distance * np.sin(angle)
        stars += moffat_image(shape, x, y, companion(rng), PSF)
        companions.append((x, y))
    return stars, companions


def test_companions_of_clipped_stars_go():
    """Clipped stars (peaks of 20000-63000 DN clipped at 4000) with a companion of
    500-2000 DN 7 px away: fitted on its wings alone, the clipped star took in part of
    the companion's light, and the rest looked narrower than the PSF and stayed
    (9 of these 18 kept 15-34 sigma).  Fitted with its companion, it leaves 3."""
    image, truth, _, _ = _scene(seed=0)
    worst = []
    for seed in range(3):
        rng = np.random.default_rng(100 + seed)
        stars, companions = _clipped_with_companions(
            image.shape, rng, (4.3, 4.8), 7.0, lambda rng: rng.uniform(500, 2000))
        fit = fit_and_subtract_stars(np.minimum(image + stars, 4000.0))
        worst += _worst_near(fit.starless, truth, companions, 2.5)
    assert np.count_nonzero(np.array(worst) > 10.0) <= 3, np.round(worst)


def test_clipped_stars_whose_cores_touch_both_go():
    """Clipped stars (peaks of 40000-100000 DN clipped at 4000) with a second clipped
    star (16000-32000 DN) 5 px away, whose clipped cores merge into one region: the
    second star's visit started from the centre of the whole region, its fit stayed
    near the first star, and the second kept 13-47 sigma within 6 px (17 of these 18)
    and 2.5-3.5 % of the star flux.  Fitted also from the centre of what the first
    star's model leaves of the region, and kept where that fits better by
    ``CLIPPED_LEFT_OVER_GAIN``, it is fitted where it is (6 keep 17-36 sigma; 1.0-1.7
    % of the star flux left)."""
    image, truth, _, _ = _scene(seed=0)
    worst = []
    for seed in range(3):
        rng = np.random.default_rng(200 + seed)
        stars, seconds = _clipped_with_companions(
            image.shape, rng, (4.6, 5.0), 5.0, lambda rng: 10 ** rng.uniform(4.2, 4.5))
        fit = fit_and_subtract_stars(np.minimum(image + stars, 4000.0))
        observable = np.minimum(truth + stars, 4000.0) - truth
        assert abs(star_flux_left(fit.starless, truth, observable)) < 0.022
        worst += _worst_near(fit.starless, truth, seconds, 6.0)
    assert np.count_nonzero(np.array(worst) > 10.0) <= 8, np.round(worst)


def _pairs_at_clear_places(shape, rng, *, brightness, ratio, distance):
    """``(stars, centres)``: at each of ``_CLEAR``'s places a star of peak ``10 **
    U(*brightness)`` and a second ``U(*ratio)`` times as bright ``distance`` px away
    in a random direction, and the centres (x, y) of both."""
    stars, centres = np.zeros(shape), []
    for x, y in _CLEAR:
        x, y = x + rng.uniform(-0.5, 0.5), y + rng.uniform(-0.5, 0.5)
        amplitude = 10 ** rng.uniform(*brightness)
        angle = rng.uniform(0, 2 * np.pi)
        second = (x + distance * np.cos(angle), y + distance * np.sin(angle))
        stars += moffat_image(shape, x, y, amplitude, PSF)
        stars += moffat_image(shape, *second, amplitude * rng.uniform(*ratio), PSF)
        centres += [(x, y), second]
    return stars, centres


def test_a_plateau_of_two_discs_joined_by_a_neck_is_two_lobes():
    """Two clipped cores that touch make one plateau; each disc is a lobe of its own,
    while a single disc with a ragged rim and an elongated core (a galaxy's) are one
    lobe each."""
    shape = (60, 120)
    pair = _within(shape, (30, 20), 7.3) | _within(shape, (34, 34), 7.3)
    ragged = _within(shape, (30, 80), 8.0)
    rim = ragged & ~ndimage.binary_erosion(ragged)
    ragged &= ~(rim & (np.random.default_rng(0).random(shape) < 0.5))
    rows, cols = np.indices(shape)
    ellipse = ((rows - 30) / 4.0) ** 2 + ((cols - 105) / 12.0) ** 2 <= 1.0
    plateaus, count = ndimage.label(pair | ragged | ellipse)
    assert count == 3
    lobes = _clipped_lobes(plateaus)
    assert lobes[30, 20] != lobes[34, 34]
    assert set(np.unique(lobes[pair])) == {lobes[30, 20], lobes[34, 34]}
    assert np.unique(lobes[ragged]).size == 1
    assert np.unique(lobes[ellipse]).size == 1
    assert np.unique(lobes).size == 5     # (0 and four lobes)
    assert np.array_equal(lobes > 0, plateaus > 0)


@pytest.mark.parametrize("seeds, brightness, ratio, distance, one_lobe", [
    pytest.param(300, (5.5, 6.0), (0.5, 1.0), 15.0, False, id="with a neck"),
    pytest.param(400, (4.6, 5.2), (0.3, 1.0), 8.0, True, id="without a neck"),
])
def test_clipped_stars_whose_plateaus_join_both_go(seeds, brightness, ratio, distance,
                                                   one_lobe):
    """Pairs of clipped stars (clipped at 4000) whose plateaus join in one.

    With a neck: peaks of 3e5-1e6 DN and half to as bright again, 15 px apart.
    Fitted from the whole plateau's centre, one PSF went between them, and 4 of these
    36 stars kept 11-46 sigma within 6 px (0.4-1.9 % of the star flux left).  Each
    lobe of the plateau fitted as a star, together with the other, all go (at most 6
    sigma; 0.15-0.25 %).

    Without a neck: peaks of 4e4-1.6e5 DN and 0.3 to 1 times as bright, 8 px apart,
    a plateau of a single lobe.  One PSF went between them and no later visit found
    the other (no positive amplitude from there): 28 of these 36 stars kept 25-172
    sigma within 6 px (6.0-9.4 % of the star flux left).  Fitted as two PSFs
    (``CLIPPED_PAIR_GAIN``), all go (at most 6 sigma; 0.03-0.20 %)."""
    image, truth, _, _ = _scene(seed=0)
    worst = []
    for seed in range(3):
        stars, centres = _pairs_at_clear_places(
            image.shape, np.random.default_rng(seeds + seed), brightness=brightness,
            ratio=ratio, distance=distance)
        plateaus, count = ndimage.label(image + stars >= 4000.0)
        assert count < 2 * len(_CLEAR)      # (some plateaus join)
        if one_lobe:
            assert np.unique(_clipped_lobes(plateaus)).size == count + 1
        fit = fit_and_subtract_stars(np.minimum(image + stars, 4000.0))
        observable = np.minimum(truth + stars, 4000.0) - truth
        assert abs(star_flux_left(fit.starless, truth, observable)) < 0.005
        worst += _worst_near(fit.starless, truth, centres, 6.0)
    assert max(worst) < 10.0, np.round(worst)


def test_stars_centred_on_the_frame_edge_go():
    """Bright stars centred half a pixel beyond the last column or row, a little wider
    than the field's PSF, so that each fit leaves a peak that is refitted with it: a
    fitted centre beyond the edge is no pixel index (an IndexError before)."""
    image, truth, _, _ = _scene(seed=5)
    wider = dataclasses.replace(PSF, fwhm=3.6)
    edge = np.zeros_like(image)
    for k, along in enumerate(np.linspace(20, 236, 10)):
        amplitude, beyond = 10 ** (2.8 + 0.2 * k), 255.5 + 0.02 * (k % 3)
        edge += moffat_image(image.shape, beyond, along, amplitude, wider)
        edge += moffat_image(image.shape, along, beyond, amplitude, wider)
    fit = fit_and_subtract_stars(image + edge)
    assert abs(star_flux_left(fit.starless, truth, edge)) < 0.05
    assert np.allclose(fit.starless + fit.stars, image + edge)


@pytest.fixture(scope="module")
def blends_without_dip():
    """``(fit, truth, centres)``: at each centre a star of 150 noise sigmas, one of 80
    at 1.2 FWHM (no dip between them) and one of 12 beside both, as found on a frame
    of random scene settings, turned at random; fitted once for the two tests below."""
    image, truth, _, _ = _scene(seed=5)
    rng = np.random.default_rng(1)
    centres = ((60.0, 120.0), (150.0, 60.0), (200.0, 200.0), (100.0, 230.0),
               (200.0, 130.0), (40.0, 40.0))
    blends = np.zeros_like(image)
    for x, y in centres:
        angle = rng.uniform(0, 2 * np.pi)
        cos, sin = np.cos(angle), np.sin(angle)
        for dx, dy, amplitude in ((0.0, 0.0, 765.0), (-1.84, 3.5, 410.0),
                                  (4.14, 1.2, 60.0)):
            blends += moffat_image(image.shape, x + cos * dx - sin * dy,
                                   y + sin * dx + cos * dy, amplitude, PSF)
    return fit_and_subtract_stars(image + blends), truth, centres


def _worst_residual(fit, truth, centre):
    x, y = int(centre[0]), int(centre[1])
    box = (slice(y - 7, y + 8), slice(x - 7, x + 8))
    return float(np.abs(fit.starless[box] - truth[box]).max())


def test_bright_pairs_without_a_dip_between_them_go(blends_without_dip):
    """Two PSFs fit such a blend far better than any single profile, so it is two
    stars although its light does not dip between them; the pair fit also starts
    from the brightest pixel, since from the blend's centroid it may stop in a
    local minimum (the blend at (200, 200) stayed whole, 160 sigma, before)."""
    fit, truth, centres = blends_without_dip
    for centre in centres[:3] + centres[4:]:
        assert _worst_residual(fit, truth, centre) < 3 * 5.0, centre


@pytest.mark.xfail(strict=True, reason="the second star lies on the edge of the 9 x 9 "
                   "fit window, and two PSFs fit only to 46 per pixel: the blend stays")
def test_a_bright_pair_on_the_edge_of_its_fit_window_goes(blends_without_dip):
    fit, truth, centres = blends_without_dip
    assert _worst_residual(fit, truth, centres[3]) < 3 * 5.0


def test_bright_sharp_stars_with_photon_noise_are_not_cusps():
    """Stars of peak 10000 (over 1000 noise sigmas) with their photon noise, on a
    sharp PSF: the sky's noise map does not know that noise, a profile narrower than
    the PSF fits it a little better, and a fixed chi-square gain took 3 of the 12 for
    galaxies' cusps, kept whole.  The PSF misses their cores by well under 2 % of the
    peak; a cusp's by 5 % or more."""
    frame = make_survey_frame((256, 256), seed=3, fwhm=2.26, moffat_beta=4.8,
                              scale="sky-subtracted", nebula=False, n_galaxies=0)
    sharp = PSFShape(fwhm=2.26, beta=4.8, ellipticity=0.0, angle=0.0, n_stars=0)
    rng = np.random.default_rng(2)
    centres = rng.uniform(20, 236, (12, 2))
    bright = sum(moffat_image(frame.image.shape, x, y, 10000.0, sharp) for x, y in centres)
    fit = fit_and_subtract_stars(frame.image + rng.poisson(bright))
    residual = np.abs(fit.starless - frame.truth) / frame.noise_sigma
    for x, y in centres:
        assert residual[int(y) - 5:int(y) + 6, int(x) - 5:int(x) + 6].max() < 10, (x, y)


def test_bright_stars_on_a_faint_sky_are_not_cusps_or_galaxies():
    """Isolated stars of 20-300 sigma with their photon noise on a sky of 10 e- (read
    noise 3 e-): there a star's own photon noise dominates its pixels' noise, the
    PSF misses its core by more than 2 % of the peak on noise alone, and judged in
    units of the sky's noise, 6 stars of these 300 were kept as cusps (one, 51
    sigma, at seed 0 of a scene like this)."""
    sky, read = 10.0, 3.0
    noise = math.sqrt(sky + read**2)
    star_psf = PSFShape(fwhm=3.0, beta=3.5, ellipticity=0.1, angle=0.5, n_stars=0)
    kept = 0
    for seed in range(6):
        rng = np.random.default_rng(seed)
        centres = []
        while len(centres) < 50:
            x, y = rng.uniform(8, 248, 2)
            if all(math.hypot(x - a, y - b) > 12 for a, b in centres):
                centres.append((x, y))
        stars = sum(moffat_image((256, 256), x, y, rng.uniform(20, 300) * noise, star_psf)
                    for x, y in centres)
        image = rng.poisson(sky + stars) + rng.normal(0, read, stars.shape)
        fit = fit_and_subtract_stars(image)
        assert fit.psf.light_variance == pytest.approx(1.0, rel=0.3)
        kept += ndimage.label(np.abs(fit.starless - sky) > 10 * noise)[1]
    assert kept == 0


def test_stretched_stars_do_not_dig_the_sky():
    """On a stretched frame a free Moffat fit gives beta near 1 (a compressed core
    with linear wings, beta 1.05 here); its wings, subtracted far out, would dig the
    sky.  The measured PSF keeps beta >= FAINT_MIN_BETA, since every star of the frame
    below the white level is faint."""
    from pipeline.core.psf import FAINT_MIN_BETA

    frame = make_survey_frame((512, 512), seed=2, scale="stretched", fwhm=4.0,
                              moffat_beta=2.8, n_stars=400)
    fit = fit_and_subtract_stars(frame.image)
    assert fit.psf.beta >= FAINT_MIN_BETA
    sky = ~frame.extended_mask & (frame.stars < 0.5 * frame.noise_sigma)
    bias = np.mean(fit.starless[sky] - frame.truth[sky]) / frame.noise_sigma
    # -0.055 sigma with the free beta of 1.05, -0.033 with beta held at 1.5 and -0.012
    # with the faint sources' floor of 2.
    assert bias > -0.025


def test_bright_stars_in_front_of_a_nebula_go_and_galaxies_stay():
    """A nebula's light under a bright star is no part of the star: judged without it
    the star looks wider than the PSF and would be kept as a galaxy."""
    image, truth, stars, galaxy = _scene(seed=7)
    yy, xx = np.mgrid[0:256, 0:256]
    nebula = 100.0 * np.exp(-((xx - 128) ** 2 + (yy - 128) ** 2) / (2 * 70.0 ** 2))
    rng = np.random.default_rng(8)
    on_nebula = np.zeros_like(image)
    for x, y in rng.uniform(90, 166, (6, 2)):
        on_nebula += moffat_image(image.shape, x, y, rng.uniform(80, 250), PSF)
    fit = fit_and_subtract_stars(image + nebula + on_nebula)
    truth = truth + nebula
    assert abs(star_flux_left(fit.starless, truth, on_nebula, threshold=5.0)) < 0.05
    galaxy_flux = np.sum(truth[galaxy] - 200.0 - nebula[galaxy])
    assert np.sum(fit.starless[galaxy] - 200.0 - nebula[galaxy]) \
        == pytest.approx(galaxy_flux, rel=0.1)


def _convolved_sersic(shape, centres, amplitude, n, r_eff, *, ellip=0.0, theta=0.0):
    """Sersic galaxies at ``centres`` (x, y) convolved with the scene's PSF, as every
    galaxy in a real frame is."""
    from astropy.modeling.models import Sersic2D
    from scipy.signal import fftconvolve

    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    kernel = moffat_image((21, 21), 10.0, 10.0, 1.0, PSF)
    galaxies = sum(Sersic2D(amplitude=amplitude, r_eff=r_eff, n=n, x_0=x, y_0=y,
                            ellip=ellip, theta=theta)(xx, yy)
                   for x, y in centres)
    return fftconvolve(galaxies, kernel / kernel.sum(), mode="same")


#: Places in ``_scene(seed=0)`` at least 12 px from any star above 2 sigma and 15 px
#: from its galaxies.
_CLEAR = ((177.0, 211.0), (33.0, 55.0), (202.0, 175.0), (113.0, 80.0), (80.0, 175.0),
          (46.0, 118.0))


def test_nuclei_of_concentrated_galaxies_stay():
    """Sersic index 3, effective radius 6 px, 40 sigma at the centre once convolved
    with the PSF: its core is as narrow as a star, and only the light around it,
    centred on it, tells.  (3 of the 6 cores went as stars before, 91 % of their
    light within 4 px taken.)"""
    image, truth, stars, _ = _scene(seed=0)
    galaxies = _convolved_sersic(image.shape, _CLEAR, 8.0, 3.0, 6.0)
    assert galaxies.max() == pytest.approx(40 * 5.0, rel=0.02)
    fit = fit_and_subtract_stars(image + galaxies)
    yy, xx = np.mgrid[0:256, 0:256]
    for x, y in _CLEAR:
        core = (xx - x) ** 2 + (yy - y) ** 2 <= 16
        kept = np.sum(fit.starless[core] - truth[core]) / np.sum(galaxies[core])
        assert kept == pytest.approx(1.0, abs=0.1), (x, y)
    assert abs(star_flux_left(fit.starless, truth + galaxies, stars)) < 0.05


def test_a_bright_star_beside_a_galaxy_centre_goes():
    """A star of 300 sigma 3 px from the centre of such a galaxy: the galaxy's light
    around it is on one side, so it is no nucleus.  (Its fit takes the galaxy's
    nucleus too: 17 % of its flux over-subtracted, a limitation of the fit on a local
    plane, which a galaxy's peak is not.)"""
    image, truth, stars, _ = _scene(seed=0)
    galaxies = _convolved_sersic(image.shape, _CLEAR, 8.0, 3.0, 6.0)
    beside = sum(moffat_image(image.shape, x + 3.0, y, 1500.0, PSF) for x, y in _CLEAR)
    fit = fit_and_subtract_stars(image + galaxies + beside)
    assert star_flux_left(fit.starless, truth + galaxies, beside, threshold=5.0) < 0.05


def _stars_beside_cusps(*, galaxy_amplitude, galaxy_peak_sigmas, star_peak,
                        distance=4.0):
    """Stars of peak ``star_peak`` ``distance`` px from the centres of unconvolved
    Sersic galaxies
    (index 2.6, effective radius 15 px, centre pixel ``galaxy_peak_sigmas``) on
    ``_CLEAR``'s places, two draws of the stars' directions: for each of the twelve,
    ``(kept, star_left)``, the share of the galaxy's light within 2 px that the
    starless image keeps and the share of the star's flux within 10 px it leaves."""
    from astropy.modeling.models import Sersic2D

    image, truth, _, _ = _scene(seed=0)
    yy, xx = np.mgrid[0:256, 0:256]
    centres = [(x + 0.94, y + 0.31) for x, y in _CLEAR]
    galaxies = sum(Sersic2D(amplitude=galaxy_amplitude, r_eff=15.0, n=2.6, ellip=0.16,
                            theta=2.9, x_0=x, y_0=y)(xx, yy) for x, y in centres)
    assert galaxies.max() == pytest.approx(galaxy_peak_sigmas * 5.0, rel=0.02)
    outcomes = []
    for seed in (4, 5):
        beside = _stars_beside(centres, distance, (star_peak, star_peak),
                               np.random.default_rng(seed))
        fit = fit_and_subtract_stars(image + galaxies + beside)
        for x, y in centres:
            distance2 = (xx - x) ** 2 + (yy - y) ** 2
            core = distance2 <= 4
            kept = np.sum(fit.starless[core] - truth[core]) / np.sum(galaxies[core])
            star = (distance2 <= 100) & (beside > 5.0)
            star_left = np.sum(fit.starless[star] - truth[star] - galaxies[star]) \
                / np.sum(beside[star])
            outcomes.append((kept, star_left))
    return outcomes


def test_a_bright_star_beside_a_cuspy_galaxy_centre_takes_only_itself():
    """Stars of 108 sigma 4 px from the centres of unconvolved Sersic galaxies
    (index 2.6, effective radius 15 px, the centre pixel 81 sigma), twelve of them:
    the window is as wide as a galaxy, and two PSFs, the star and the cusp, fit it.
    Both went (10 of 12; the galaxy's light within 2 px 12-22 % kept, about 60 % of
    the star's flux over-subtracted); only the star at the peak goes now (8 of 12),
    and the cusp, judged at its own peak, stays.  Of the rest, two cusps still go,
    taken for stars at their own peaks before the star beside them was fitted, and
    two stars stay, with the galaxy, in both versions.  (The pattern was seen on a
    held-out survey frame, linear-mid at seed 35201; this change does not recover
    that frame, where the partners judged alone do not pass as nuclei.)"""
    outcomes = _stars_beside_cusps(galaxy_amplitude=10.0, galaxy_peak_sigmas=81,
                                   star_peak=540.0)
    only_the_star = sum(0.7 < kept < 1.05 and abs(star_left) < 0.2
                        for kept, star_left in outcomes)
    both = sum(kept < 0.3 for kept, _ in outcomes)
    assert only_the_star >= 7
    assert both <= 3


def test_a_bright_star_two_pixels_from_a_cusp_goes_and_the_cusp_stays():
    """Stars of 300 sigma 2 px from the cusps of unconvolved Sersic galaxies (the
    centre pixel 142 sigma), twelve of them.  At 2 px there is no dip between the
    two, and the cusp is no PSF, so no pair fits as the pair rule asks: the star went
    as one PSF, and the cusp, left as its leftover, went with it (12 of 12; 14-19 %
    of the galaxy's light within 2 px kept).  Two PSFs fitted beside each other, the
    star nearer the peak at least twice as bright as the other and five times the
    galaxy's light under it, the other judged a nucleus once the star is taken off,
    now split them: the star goes and the cusp stays (8 of 12).  The rest still go
    together."""
    outcomes = _stars_beside_cusps(galaxy_amplitude=17.5, galaxy_peak_sigmas=142,
                                   star_peak=1500.0, distance=2.0)
    only_the_star = sum(0.8 < kept < 1.3 and abs(star_left) < 0.1
                        for kept, star_left in outcomes)
    assert only_the_star >= 7


def test_a_bright_star_beside_an_elongated_galaxy_s_cusp_is_not_kept_whole():
    """Stars of 200 sigma 2.8 px from the cusps of elongated unconvolved Sersic
    galaxies (index 3.5, axis ratio 0.25, the centre pixel 109 sigma), eighteen of
    them.  Two PSFs fit each such source far better than any single profile, but once
    the star is taken off, what it leaves in the cusp's ring puts the ring's light off
    the cusp's centre, and the cusp failed the nucleus test: the star was then kept
    whole, with the galaxy (2 of 18, as on Moffat random scene r10, 2.63 sigma on its
    extended sources).  Where the source would be kept whole otherwise, the star now
    goes, and the cusp is judged at its own peak (none kept whole, the star alone
    gone and the galaxy's core kept on 17 of 18)."""
    from astropy.modeling.models import Sersic2D

    image, truth, _, _ = _scene(seed=0)
    yy, xx = np.mgrid[0:256, 0:256]
    centres = [(x + 0.3, y + 0.2) for x, y in _CLEAR]
    galaxies = sum(Sersic2D(amplitude=8.0, r_eff=25.0, n=3.5, ellip=0.75, theta=0.1,
                            x_0=x, y_0=y)(xx, yy) for x, y in centres)
    assert galaxies.max() == pytest.approx(109 * 5.0, rel=0.01)
    kept_whole = only_the_star = 0
    for seed in (4, 5, 6):
        beside = _stars_beside(centres, 2.8, (1000.0, 1000.0), np.random.default_rng(seed))
        starless = fit_and_subtract_stars(image + galaxies + beside).starless
        for x, y in centres:
            distance2 = (xx - x) ** 2 + (yy - y) ** 2
            core = distance2 <= 4
            kept = np.sum(starless[core] - truth[core]) / np.sum(galaxies[core])
            star = (distance2 <= 100) & (beside > 5.0)
            left = (np.sum(starless[star] - truth[star] - galaxies[star])
                    / np.sum(beside[star]))
            kept_whole += left > 0.5
            only_the_star += 0.7 < kept < 1.3 and abs(left) < 0.2
    assert kept_whole <= 1
    assert only_the_star >= 16


def test_a_galaxy_core_that_no_profile_fits_stays():
    """Unconvolved Sersic galaxies (index 2.4, effective radius 11.5 px, axis ratio
    0.32, centred between pixels: cores of 70 and 90 sigma), six at a time, as on a
    random benchmark scene (r64, where one such core was 90 % of the frame's
    extended-source error).  The PSF misses the core, no pair of stars fits it, and
    no profile of any width fits it either (on the benchmark scenes, by 11-13 % of its
    peak): it went as a star and its leftovers as more (4 of the 12 cores, 17-27 % of
    their light within 3 px kept).  Now such a core, on a window wider than the PSF,
    stays (12 of 12 on the machine where the rule was written)."""
    from astropy.modeling.models import Sersic2D

    image, truth, _, _ = _scene(seed=0)
    yy, xx = np.mgrid[0:256, 0:256]
    centres = [(x + 0.5, y + 0.1) for x, y in _CLEAR]
    kept = []
    for amplitude, peak_sigmas in ((27.5, 70.9), (35.0, 90.2)):
        galaxies = sum(Sersic2D(amplitude=amplitude, r_eff=11.5, n=2.4, ellip=0.68,
                                theta=1.71, x_0=x, y_0=y)(xx, yy) for x, y in centres)
        assert galaxies.max() == pytest.approx(peak_sigmas * 5.0, rel=0.01)
        fit = fit_and_subtract_stars(image + galaxies)
        for x, y in centres:
            core = (xx - x) ** 2 + (yy - y) ** 2 <= 9
            kept.append(np.sum(fit.starless[core] - truth[core]) / np.sum(galaxies[core]))
    assert sum(0.9 < share < 1.1 for share in kept) >= 11    # (8 before)


def test_a_partner_on_a_peak_judged_no_star_stays():
    """When a star's window splits into two PSFs, the partner away from its peak goes
    only if it is no galaxy's nucleus; one that lies on a peak already judged no star
    (a nucleus that a wider profile fits, left in place at its own peak) stays, as
    that peak is judged again when it comes up.  It went whenever the nucleus test
    judged at the partner's centre failed: a 175-sigma nucleus 4 px from a star, on a
    random scene, -11.7 sigma over it."""
    from pipeline.core.starfit import _Fitter

    shape = (64, 64)
    star, partner = (30.0, 31.0), (34.5, 33.0)   # (x, y)
    data = (moffat_image(shape, *star, 500.0, PSF)
            + moffat_image(shape, *partner, 800.0, PSF))
    fitter = _Fitter(data, np.full(shape, 5.0), np.zeros(shape, bool),
                     np.ones(shape, bool), PSF)
    fitter.left_in_place[33, 34] = True
    window = fitter._window(31, 30, 3 * fitter.core)
    top, left = window[0].start, window[1].start
    pair = np.array([[500.0, star[0] - left, star[1] - top],
                     [800.0, partner[0] - left, partner[1] - top]])
    assert fitter._split_beside_nucleus(window, pair, 31, 30)
    assert [(row, col) for _, row, col in fitter.stars] == [(star[1], star[0])]
    assert fitter.left_in_place[33, 34]


@pytest.mark.parametrize("star, galaxy_amplitude", [((35.4, 34.9), 30.0),
                                                     ((29.0, 34.0), 30.0),
                                                     ((35.5, 33.0), 60.0)])
def test_a_blend_leftover_does_not_take_a_nucleus_judged_no_star(star, galaxy_amplitude):
    """A star 3-4 px from the cusp of an unconvolved Sersic galaxy, fitted 10 % too
    faint, whose peak comes up again as the leftover of that fit: the leftover's fit,
    started at the centroid of what is left, went over to the galaxy's cusp (a peak
    judged no star before) and took it as a star of 1050-2010 units, with no galaxy
    test.  A Kolmogorov random scene, r8-sky-subtracted, lost its brightest galaxy
    that way (its extended-source RMSE 2.31 sigma, 0.86 without).  Such a peak in a
    bright star's wing, which the model outshines, is no nucleus (next test)."""
    from astropy.modeling.models import Sersic2D

    from pipeline.core.starfit import _Fitter

    shape = (64, 64)
    yy, xx = np.mgrid[0:64, 0:64]
    galaxy = Sersic2D(amplitude=galaxy_amplitude, r_eff=6.0, n=2.5, ellip=0.5, theta=1.0,
                      x_0=32.0, y_0=32.0)(xx, yy)
    data = galaxy + moffat_image(shape, *star, 1500.0, PSF)
    fitter = _Fitter(data, np.full(shape, 36.0), np.zeros(shape, bool),
                     np.ones(shape, bool), PSF)
    fitter.left_in_place[32, 32] = True
    window = fitter._window(int(star[1]), int(star[0]), fitter.core)
    fitter._subtract(window, 0.9 * 1500.0, star[0] - window[1].start,
                     star[1] - window[0].start)
    near_star = np.hypot(yy - star[1], xx - star[0]) < 1.5
    peak = np.unravel_index(np.argmax(np.where(near_star, data, 0)), shape)
    assert fitter.model[peak] > 2 * (data - fitter.model)[peak]    # a leftover
    # Nothing to fit, or (on some CPUs, the fit being chaotic there) the star fitted
    # again with its leftover, the two at its place: never a star at the cusp.
    assert fitter.add(*peak) in (None, True)
    assert all(math.hypot(row - star[1], col - star[0]) < 1.0
               for _, row, col in fitter.stars)
    assert fitter.model[32, 32] < 0.2 * galaxy[32, 32]


@pytest.mark.parametrize("star", [(35.4, 34.9), (29.0, 34.0), (35.5, 33.0)])
def test_a_blend_leftover_takes_the_rest_of_a_peak_the_models_outshine(star):
    """The same leftover beside a peak judged no star that the models outshine there
    (a star of 3000 units fitted at 80 %, as the peaks judged no star in a bright
    star's wing are, where its model does not match the wing): the leftover's fit
    takes the rest of that light, as it did before.  (Kept in place, such peaks cost
    a Kolmogorov random scene 0.51 dB, r44-sky-subtracted.)"""
    from pipeline.core.starfit import _Fitter

    shape = (64, 64)
    yy, xx = np.mgrid[0:64, 0:64]
    data = (moffat_image(shape, 32.0, 32.0, 3000.0, PSF)
            + moffat_image(shape, *star, 1500.0, PSF))
    fitter = _Fitter(data, np.full(shape, 36.0), np.zeros(shape, bool),
                     np.ones(shape, bool), PSF)
    fitter.left_in_place[32, 32] = True
    for (x, y), amplitude in (((32.0, 32.0), 0.8 * 3000.0), (star, 0.9 * 1500.0)):
        window = fitter._window(int(y), int(x), fitter.core)
        fitter._subtract(window, amplitude, x - window[1].start, y - window[0].start)
    near_star = np.hypot(yy - star[1], xx - star[0]) < 1.5
    peak = np.unravel_index(np.argmax(np.where(near_star, data, 0)), shape)
    assert data[32, 32] < 2 * fitter.model[32, 32]
    assert fitter.add(*peak) is True
    amplitude, row, col = fitter.stars[-1]
    assert math.hypot(row - 32.0, col - 32.0) < 0.5
    assert amplitude == pytest.approx(0.2 * 3000.0, rel=0.1)


def test_the_average_under_a_bright_star_keeps_a_galaxy_nucleus_beside_it():
    """Stars of 900 sigma 4 px from the centres of unconvolved Sersic galaxies whose
    centre pixel is 142 sigma: the fits leave the cusp in place as a nucleus, but the
    average that takes the stars' photon noise off under them flattened it (45 % of
    the light within 2 px kept at most, in all twelve).  It now keeps the cusp's
    light, which stands out from the average by far more than the noise there."""
    outcomes = _stars_beside_cusps(galaxy_amplitude=17.5, galaxy_peak_sigmas=142,
                                   star_peak=4500.0)
    kept_nuclei = sum(0.7 < kept < 1.1 and abs(star_left) < 0.05
                      for kept, star_left in outcomes)
    assert kept_nuclei >= 9


def test_bright_stars_on_the_slope_of_a_nebula_knot_go():
    """Around a star on a knot's slope the light falls off as around a galaxy's
    nucleus; above the knot's level further out, the star is no wider than the PSF."""
    image, truth, stars, galaxy = _scene(seed=11)
    yy, xx = np.mgrid[0:256, 0:256]
    rng = np.random.default_rng(12)
    centres = ((70, 150), (140, 120), (200, 190), (150, 40))
    knots = sum(60.0 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 20.0 ** 2))
                for x, y in centres)
    on_slopes = _stars_beside(centres, 12, (150, 400), rng)
    fit = fit_and_subtract_stars(image + knots + on_slopes)
    # (Judged with the knot's light, they stay whole: 101 % left.)
    assert abs(star_flux_left(fit.starless, truth + knots, on_slopes,
                              threshold=5.0)) < 0.1
    galaxy_flux = np.sum(truth[galaxy] - 200.0)
    # 10.7 % of it lost (9.8 % with the weaker denoising before DENOISE_CUTOFF 0.8,
    # which takes a little more of the faint outskirts): nearly all from the widest
    # galaxy (8 px, 12 sigma), which the fits cut into stars and dig by up to 4 sigma.
    assert np.sum(fit.starless[galaxy] - 200.0 - knots[galaxy]) \
        == pytest.approx(galaxy_flux, rel=0.12)


def _structured_nebula(shape, seed, *, level, knots, knot_size, radius=60.0):
    """A nebula of ``level`` at its centre whose knots (smoothed noise over
    ``knot_size`` pixels, of standard deviation ``knots`` there) fade with it (a
    Gaussian of ``radius`` pixels)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    envelope = np.exp(-((xx - shape[1] / 2) ** 2 + (yy - shape[0] / 2) ** 2)
                      / (2 * radius ** 2))
    field = ndimage.gaussian_filter(rng.normal(0, 1, shape), knot_size)
    return envelope * (level + knots * field / field.std())


def test_the_pixel_noise_leaves_out_the_structure_of_the_scene():
    """A mesh's RMS over a nebula's knots counts them as noise; the noise of the
    pixels themselves does not, and on correlated noise it is still the sky's."""
    rng = np.random.default_rng(3)
    shape = (256, 256)
    nebula = _structured_nebula(shape, 4, level=150.0, knots=30.0, knot_size=8,
                                radius=40.0)
    on_nebula = nebula > 100.0
    for noise in (rng.normal(0, 5.0, shape),
                  ndimage.uniform_filter(rng.normal(0, 15.0, shape), 3)):
        sky_noise = noise.std()
        image = 200.0 + nebula + noise
        mask = np.zeros(shape, bool)
        background, rms = _background_maps(image, 0.0, mask)
        pixel_noise = _pixel_noise(image, mask, background, rms, 0.0)
        assert np.median(rms[on_nebula]) > 1.5 * sky_noise
        assert np.median(pixel_noise[on_nebula]) == pytest.approx(sky_noise, rel=0.1)
        assert np.all(pixel_noise <= rms)


def test_stars_on_a_knotty_nebula_are_judged_against_their_pixels_noise():
    """A nebula's knots raise the RMS map over it several times: a star of 14-22
    sigma there counted as too faint to be judged above the nebula's level, and the
    nebula's light under it made it look as wide as a galaxy.  (Judged against the
    RMS map, 9-39 % of these stars' light was left, 22 % on average; now 8 %.)"""
    left = []
    for seed in range(4):
        image, truth, _, _ = _scene(seed=seed)
        nebula = _structured_nebula(image.shape, 100 + seed, level=120.0, knots=30.0,
                                    knot_size=8)
        rng = np.random.default_rng(100 + seed)
        on_nebula = np.zeros_like(image)
        for x, y in rng.uniform(100, 156, (6, 2)):
            on_nebula += moffat_image(image.shape, x, y, rng.uniform(70, 110), PSF)
        fit = fit_and_subtract_stars(image + nebula + on_nebula)
        left.append(star_flux_left(fit.starless, truth + nebula, on_nebula,
                                   threshold=5.0))
    assert np.mean(left) < 0.15


def test_faint_stars_go_and_noise_is_not_taken_for_stars():
    """Stars with peaks of 2.5-3.5 sigma, below the 4-sigma detection, are found by
    the matched filter; on noise alone it finds nothing that the 4-sigma detection
    does not (about 2 noise peaks above 4 sigma in 256 x 256 pixels)."""
    rng = np.random.default_rng(5)
    shape = (256, 256)
    bright_at = rng.uniform(10, 246, (12, 2))
    bright = sum(moffat_image(shape, x, y, rng.uniform(300, 1000), PSF)
                 for x, y in bright_at)
    faint = sum(moffat_image(shape, x, y, rng.uniform(2.5, 3.5) * 5.0, PSF)
                for x, y in rng.uniform(10, 246, (60, 2)))
    fit = fit_and_subtract_stars(100.0 + bright + faint + rng.normal(0, 5, shape))
    near = faint > 2.5
    # 28 % before the matched filter (what non-local means takes of them alone).
    assert np.sum(fit.starless[near] - 100.0) / np.sum(faint[near]) < 0.15

    fit = fit_and_subtract_stars(100.0 + bright + rng.normal(0, 5, shape))
    distance = np.hypot(fit.centres[:, 1][:, None] - bright_at[:, 0],
                        fit.centres[:, 0][:, None] - bright_at[:, 1]).min(axis=1)
    assert np.count_nonzero(distance < 1) == len(bright_at)
    assert np.count_nonzero(distance > 3) <= 5


def test_bright_pairs_that_look_like_one_wide_source_go():
    """Two bright stars 1.2 FWHM apart fit a profile wider than the PSF, in the core
    too, much better than the PSF; two PSFs with a dip between them fit better still."""
    image, truth, stars, galaxy = _scene(seed=5)
    rng = np.random.default_rng(6)
    pairs = np.zeros_like(image)
    offset = 0.6 * PSF.fwhm
    for x, y in ((70.0, 150.0), (180.0, 170.0), (140.0, 40.0), (40.0, 120.0),
                 (220.0, 220.0)):
        angle = rng.uniform(0, np.pi)
        for sign in (-1, 1):
            pairs += moffat_image(image.shape, x + sign * offset * np.cos(angle),
                                  y + sign * offset * np.sin(angle),
                                  400 * rng.uniform(0.8, 1.2), PSF)
    fit = fit_and_subtract_stars(image + pairs)
    # 99 % left when a wide source was always a galaxy.
    assert star_flux_left(fit.starless, truth, pairs, threshold=5.0) < 0.4
    galaxy_flux = np.sum(truth[galaxy] - 200.0)
    assert np.sum(fit.starless[galaxy] - 200.0) == pytest.approx(galaxy_flux, rel=0.1)


#: Centres (x, y) of the galaxies of :func:`_discs`.
_DISC_CENTRES = ((50, 60), (130, 70), (210, 60), (60, 190), (140, 180), (210, 200))


def _discs(shape):
    """Exponential discs at ``_DISC_CENTRES``: 150 at the centre, scale length 10 px."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    return sum(150.0 * np.exp(-np.hypot(xx - x, yy - y) / 10.0)
               for x, y in _DISC_CENTRES)


def _assert_stars_go_and_discs_stay(image, truth, galaxies, stars, *, max_flux_left,
                                    disc_tolerance):
    """Fit ``image`` (truth + galaxies + stars, noisy): at most ``max_flux_left`` of
    the stars' flux left, and the discs' inner light (> 20) kept within the relative
    ``disc_tolerance``."""
    fit = fit_and_subtract_stars(image)
    assert abs(star_flux_left(fit.starless, truth + galaxies, stars,
                              threshold=5.0)) < max_flux_left
    inner = galaxies > 20.0
    assert np.sum(fit.starless[inner] - truth[inner]) \
        == pytest.approx(np.sum(galaxies[inner]), rel=disc_tolerance)


def test_bright_pairs_on_the_slope_of_a_galaxy_go_and_the_galaxy_stays():
    """Two stars 1.4 FWHM apart (30 and 13 sigma) on the slope of a galaxy: two PSFs on
    a flat pedestal miss by the slope, and the pair was kept as a galaxy (54 % of the
    stars' flux left); on the window's plane they fit.  The galaxy's curved light,
    once the pair is gone, is no second pair: a wider profile on the same plane fits
    it as well."""
    image, truth, stars, _ = _scene(seed=15)
    rng = np.random.default_rng(16)
    galaxies = _discs(image.shape)
    pairs = np.zeros_like(image)
    for x, y in _DISC_CENTRES:
        on_slope = rng.uniform(0, 2 * np.pi)
        x, y = x + 8 * np.cos(on_slope), y + 8 * np.sin(on_slope)
        along = rng.uniform(0, np.pi)
        dx, dy = 0.7 * PSF.fwhm * np.cos(along), 0.7 * PSF.fwhm * np.sin(along)
        pairs += moffat_image(image.shape, x + dx, y + dy, 150.0, PSF)
        pairs += moffat_image(image.shape, x - dx, y - dy, 65.0, PSF)
    _assert_stars_go_and_discs_stay(image + galaxies + pairs, truth, galaxies, pairs,
                                    max_flux_left=0.15, disc_tolerance=0.05)


def test_galaxies_beside_saturated_stars_are_judged_as_galaxies():
    """A galaxy's centre 6.5 px from a saturated star (peak 1e5, clipped at 3000),
    where the star's model outshines what is left of the galaxy: a peak there used to
    be taken for the leftover of a blend that could not be fitted again, which skipped
    the galaxy tests, and the centre went as stars (42 % of the light within 4 px
    kept, on average over the six).  The star's fit on a plane still takes some of the
    galaxy's light under its wings (50 % kept now)."""
    image, truth, _, _ = _scene(seed=15)
    rng = np.random.default_rng(5)
    galaxies = _discs(image.shape)
    saturated = np.zeros_like(image)
    for x, y in _DISC_CENTRES:
        angle = rng.uniform(0, 2 * np.pi)
        saturated += moffat_image(image.shape, x + 6.5 * np.cos(angle),
                                  y + 6.5 * np.sin(angle), 1e5, PSF)
    fit = fit_and_subtract_stars(np.minimum(image + galaxies + saturated, 3000.0))
    yy, xx = np.mgrid[0:256, 0:256]
    kept = [np.sum(fit.starless[core] - truth[core]) / np.sum(galaxies[core])
            for core in ((xx - x) ** 2 + (yy - y) ** 2 <= 16 for x, y in _DISC_CENTRES)]
    assert np.mean(kept) > 0.48, np.round(kept, 2)
    observed = np.minimum(truth + galaxies + saturated, 3000.0) - truth - galaxies
    assert abs(star_flux_left(fit.starless, truth + galaxies, observed,
                              threshold=5.0)) < 0.05


def test_saturated_stars_on_a_nebula_leave_no_holes():
    """A clipped core hides the nebula's light too: it is filled from the light just
    around it, not from the sky map; and the rim of the core, where the fit of a
    profile thousands of sigma high leaves its mismatch, is no new star."""
    image, truth, _, _ = _scene(seed=4)
    yy, xx = np.mgrid[0:256, 0:256]
    rng = np.random.default_rng(4)
    nebula = np.zeros_like(image)
    bright = np.zeros_like(image)
    spots = ((60, 190), (190, 200), (128, 128), (200, 40))
    for x, y in spots:
        nebula += 80.0 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 15.0 ** 2))
        bright += moffat_image(image.shape, x + rng.uniform(-3, 3), y + rng.uniform(-3, 3),
                               rng.uniform(5e4, 2e5), PSF)
    fit = fit_and_subtract_stars(np.minimum(image + nebula + bright, 3000.0))
    error = fit.starless - (truth + nebula)
    for x, y in spots:
        # -10.8 to -13.2 noise sigmas (5) when cores were filled from the sky map.
        assert np.mean(error[np.hypot(xx - x, yy - y) < 12]) > -7 * 5.0


#: The linear frames of the photon-noise tests: a sky of 1000 ADU at gain 1 and 5 ADU
#: of read noise, whose noise is _SKY_SIGMA.
_SKY = 1000.0
_SKY_SIGMA = math.sqrt(_SKY + 5.0 ** 2)


def _observed_with_bright_stars(truth, n_stars, rng):
    """``truth`` with ``n_stars`` PSF stars of 1500-15000 ADU at random places,
    observed with photon noise (gain 1) and 5 ADU of read noise."""
    stars = sum(moffat_image(truth.shape, x, y, rng.uniform(1500, 15000), PSF)
                for x, y in rng.uniform(8, 248, (n_stars, 2)))
    return rng.poisson(truth + stars).astype(float) + rng.normal(0, 5.0, truth.shape)


def test_photon_noise_of_subtracted_stars_is_denoised_too():
    """On linear data a bright star's pixels carry its photon noise, far above the
    sky's; denoised in units of the sky's noise alone, it would stay."""
    truth = np.full((256, 256), _SKY)
    image = _observed_with_bright_stars(truth, 50, np.random.default_rng(9))
    fit = fit_and_subtract_stars(image)
    sigma = _SKY_SIGMA
    fitted = fit.model > 5 * sigma
    # 0.63 sigma with the sky's noise map alone.
    assert np.sqrt(np.mean((fit.starless - truth)[fitted] ** 2)) < 0.35 * sigma
    # Under the stars above 10 sigma, non-local means left 0.18 sigma of their photon
    # noise; the average over a FWHM leaves 0.08.
    under = fit.model > 10 * sigma
    assert np.sqrt(np.mean((fit.starless - truth)[under] ** 2)) < 0.12 * sigma


# (Seed 1 draws a star 4 px from a galaxy's centre, which the star/galaxy tests keep
# with the galaxy, 20 sigma off: a known limitation of those tests, not of the
# denoising tested here.)
@pytest.mark.parametrize("seed", [0, 2])
def test_photon_noise_of_galaxies_is_denoised_too(seed):
    """A galaxy's light carries its photon noise as a star's does, and the sky's noise
    map, measured with the sources masked, knows nothing of it: denoised in units of
    the sky's noise, a bright galaxy kept most of its noise."""
    yy, xx = np.mgrid[0:256, 0:256]
    galaxies = sum(2000.0 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * width ** 2))
                   for x, y, width in ((60, 70, 7.0), (190, 80, 9.0), (120, 190, 8.0),
                                       (200, 200, 6.0)))
    truth = _SKY + galaxies
    image = _observed_with_bright_stars(truth, 40, np.random.default_rng(seed))
    fit = fit_and_subtract_stars(image)
    sigma = _SKY_SIGMA
    inner = (galaxies > 1000) & (fit.model < 0.05 * sigma)   # (clear of the stars)
    error = (fit.starless - truth)[inner]
    # 1.52-1.63 sigma with the stars' photon noise alone in the map, 0.76-0.85 with
    # the galaxies' too (their whole noise is 1.7 sigma there).
    assert np.sqrt(np.mean(error ** 2)) < 1.1 * sigma
    assert abs(np.mean(error)) < 0.3 * sigma


def test_bright_stars_in_front_of_galaxies_go_and_the_galaxies_stay():
    """Judged without the plane, a bright star on a galaxy's inner light is as wide as
    the galaxy is; that the PSF on a plane fits its core well, and better than any
    wider profile does, says it is a star in front of smooth light.  (44 % of the
    stars' flux was left before that test.  The fits dig a little: -4.9 to -5.2 %
    of the flux over relative changes of 1e-13 in the input, on an AMD EPYC.)"""
    image, truth, stars, _ = _scene(seed=15)
    rng = np.random.default_rng(16)
    galaxies = _discs(image.shape)
    in_front = _stars_beside(_DISC_CENTRES, 6, (400, 600), rng)
    _assert_stars_go_and_discs_stay(image + galaxies + in_front, truth, galaxies, in_front,
                                    max_flux_left=0.06, disc_tolerance=0.1)


@pytest.mark.parametrize("seed", [16, 17])
def test_stars_on_a_galaxy_slope_go_when_the_psf_on_a_plane_fits_their_window(seed):
    """Stars of 30-50 sigma 12 px from the centres of exponential discs: judged without
    the plane they are as wide as the galaxy, and with 12 core pixels a wider profile
    on the level around fits the core as well as the PSF on its plane, so the core test
    cannot tell.  Over the whole window the PSF on its plane fits, better than any
    wider profile: a star on the galaxy's sloping light.  (60-63 % of the stars' flux
    was left before; at 10 px from the centres 13-16 % still is, in these scenes.)"""
    image, truth, _, _ = _scene(seed=15)
    galaxies = _discs(image.shape)
    on_slope = _stars_beside(_DISC_CENTRES, 12, (150, 250), np.random.default_rng(seed))
    _assert_stars_go_and_discs_stay(image + galaxies + on_slope, truth, galaxies, on_slope,
                                    max_flux_left=0.1, disc_tolerance=0.05)


@pytest.mark.parametrize("centre, peak, n_clipped", [((64.5, 64.0), 20000.0, 2),
                                                      ((64.0, 64.0), 15000.0, 1)])
def test_a_sharp_star_clipped_on_one_or_two_pixels_is_saturated(centre, peak, n_clipped):
    """A sharp star clipped on one or two pixels only: fitted as if they were its
    light, its model misses its core by tens of sigma.  Two pixels at the same level
    are clipped, and so is one that stands out from all its neighbours.  A sky map
    subtracted after the clipping leaves the clipped values a little apart."""
    sharp = PSFShape(fwhm=2.0, beta=4.5, ellipticity=0.0, angle=0.0, n_stars=0)
    rng = np.random.default_rng(17)
    shape = (128, 128)
    stars = sum(moffat_image(shape, x, y, rng.uniform(200, 2000), sharp)
                for x, y in rng.uniform(8, 120, (20, 2)))
    clipped = moffat_image(shape, *centre, peak, sharp)
    full_well = 10000.0
    sky_gradient = 1e-3 * np.arange(128)[None, :]
    image = (np.minimum(100.0 + stars + clipped + rng.normal(0, 5, shape), full_well)
             - sky_gradient)
    assert np.count_nonzero(image >= full_well - 1) == n_clipped
    fit = fit_and_subtract_stars(image, psf=sharp)
    core = (slice(61, 68), slice(61, 69))
    truth = np.broadcast_to(100.0 - sky_gradient, shape)
    # 215 and 134 sigma off before such cores counted as clipped; 13 sigma now at
    # worst, at the clipped core's rim (the fit on the wings alone is a few % low).
    assert np.max(np.abs(fit.starless[core] - truth[core])) < 20 * 5.0


def test_a_clipped_galaxy_stays_and_clipped_stars_go():
    """On a stretched frame the brightest galaxies reach the white level as the
    brightest stars do; the PSF fits a clipped star's wings, not a galaxy's light."""
    image, truth, stars, _ = _scene(seed=19, sky=50.0)
    yy, xx = np.mgrid[0:256, 0:256]
    galaxy = 400.0 * np.exp(-((xx - 128) ** 2 + (yy - 128) ** 2) / (2 * 9.0 ** 2))
    rng = np.random.default_rng(20)
    clipped_stars = sum(moffat_image(image.shape, x, y, rng.uniform(1000, 3000), PSF)
                        for x, y in rng.uniform(20, 236, (5, 2)))
    observed = np.minimum(image + galaxy + clipped_stars, 255.0)
    truth = np.minimum(truth + galaxy, 255.0)
    assert np.count_nonzero(truth == 255.0) > 50
    fit = fit_and_subtract_stars(observed)
    core = galaxy > 100.0
    # (39 % of the core's light was left when it was filled like a star's.)
    assert np.sum(fit.starless[core] - 50.0) \
        == pytest.approx(np.sum(truth[core] - 50.0), rel=0.05)
    observed_stars = np.minimum(truth + stars + clipped_stars, 255.0) - truth
    assert abs(star_flux_left(fit.starless, truth, observed_stars, threshold=5.0)) < 0.1


def _benchmarks_importable(monkeypatch):
    """Put the benchmarks' folder on ``sys.path`` for this test, so that their frame
    generators can be imported."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))


def _within(shape, centre, radius):
    """The pixels of an image of ``shape`` closer than ``radius`` to ``centre``
    (row, col)."""
    rows, cols = np.indices(shape)
    return np.hypot(rows - centre[0], cols - centre[1]) < radius


def _random_scene(monkeypatch, index, *, psf="moffat"):
    """Random scene ``index`` of the benchmark (``benchmarks/bench_random_scenes.py``,
    with ``psf`` stars), built by its generator, which is loaded from its folder."""
    _benchmarks_importable(monkeypatch)
    from bench_random_scenes import draw_specs
    from survey_frames import build_frame

    return build_frame(dataclasses.replace(draw_specs(index + 1)[index], psf=psf))


def _clipped_core_error(monkeypatch, scene, centre, *, psf="moffat"):
    """The pixels of the galaxy core clipped at the white level within 10 px of
    ``centre`` in the benchmark's random scene ``scene`` (``psf`` stars), and the
    mean of the starless image less the truth over them."""
    frame = _random_scene(monkeypatch, scene, psf=psf)
    starless = remove_stars(frame.image)
    row, col = centre
    window = np.s_[row - 10:row + 11, col - 10:col + 11]
    plateau = frame.truth[window] >= 250
    return (np.count_nonzero(plateau),
            np.mean(starless[window][plateau] - frame.truth[window][plateau]))


@pytest.mark.parametrize("scene, psf, most", [(422, "moffat", 7.0),
                                              (412, "kolmogorov", 3.5)])
def test_clipped_cores_are_filled_from_beyond_their_rims(monkeypatch, scene, psf, most):
    """The clipped cores of random scenes r422 (Moffat, sky-subtracted) and r412
    (Kolmogorov, linear) are filled with the light of a ring ``CORE_RING`` pixels
    beyond their rims.  Filled from the ring right beside them, where the stars'
    models leave light, their pixels came out 9.8 and 5.0 sigma RMS from the truth
    (4.7 and 4.3 sigma too high on average); now 5.4 and 2.5."""
    frame = _random_scene(monkeypatch, scene, psf=psf)
    starless = remove_stars(frame.image)
    clipped = frame.image >= 0.999 * np.nanmax(frame.image)
    assert np.count_nonzero(clipped) > 50
    error = (starless[clipped] - frame.truth[clipped]) / frame.sigma
    assert np.sqrt(np.mean(error ** 2)) < most


@pytest.mark.parametrize("scene, centre", [(27, (339, 196)), (60, (410, 114))])
def test_clipped_galaxy_cores_that_a_wider_profile_fits_nearly_twice_as_well_stay(
        monkeypatch, scene, centre):
    """The benchmark's Moffat random scenes r27 and r60 (stretched): galaxy cores
    clipped at the white level, 29 and 36 pixels, which the profile 3.9 and 4.1 PSF
    widths wide fits 1.96 and 1.84 times better than the PSF, short of
    CLIPPED_GALAXY_GAIN, and whose plateaus cover 0.38 and 0.41 of the PSF's reach:
    they were taken as clipped stars, 156 and 153 DN below the truth over the
    plateau."""
    pixels, shortfall = _clipped_core_error(monkeypatch, scene, centre)
    assert pixels >= 25
    assert shortfall > -30.0


@pytest.mark.parametrize("scene, centre", [(216, (122, 287)), (234, (57, 435)),
                                           (186, (361, 99)), (279, (342, 200)),
                                           (237, (76, 89))])
def test_clipped_galaxy_cores_of_fresh_scenes_stay(monkeypatch, scene, centre):
    """Galaxy cores clipped at the white level in the benchmark's fresh Moffat random
    scenes (stretched), taken as clipped stars, 137-177 DN below the truth over the
    plateau (4-8 DN now).  r216: round, a plateau of 36 pixels, 0.38 of the PSF's
    reach, which the widest profile fits 1.65 times better than the PSF
    (``CLIPPED_GALAXY_NEAR_GAIN``).  r234 and r186: fitted 1.50 and 1.47 times
    better, plateaus of 33 and 32 pixels covering 0.56 and 0.50 of the PSF's reach,
    as a clipped star's may, but 0.44 and 0.54 more elongated than the PSF
    (``CLIPPED_GALAXY_ELONGATION``).  r279 and r237: fitted only 1.27 and 1.29 times
    better (``CLIPPED_GALAXY_ELONGATED_GAIN``), plateaus of 18 and 34 pixels, 0.26
    more elongated than the PSF."""
    pixels, shortfall = _clipped_core_error(monkeypatch, scene, centre)
    assert pixels >= 8
    assert shortfall > -30.0


def test_a_clipped_star_cut_by_the_frames_edge_is_no_elongated_galaxy(monkeypatch):
    """A clipped plateau cut by the frame's edge is elongated by the cut: the
    benchmark's edge-settings frame ``beta2`` (Moffat beta 2, stretched) has a clipped
    star of 1.1e4 ADU on its left edge, its plateau 0.32 more elongated than the PSF
    and fitted 1.24 times better by a wider profile; taken as a galaxy's core it was
    kept whole, 21 DN above the truth over the 557 pixels it changed."""
    _benchmarks_importable(monkeypatch)
    from bench_edge_settings import edge_specs
    from survey_frames import build_frame

    frame = build_frame(next(spec for spec in edge_specs()
                             if spec.name == "beta2-stretched"))
    starless = remove_stars(frame.image)
    near = _within(frame.image.shape, (51.9, 0.3), 10)
    assert np.mean(frame.stars[near]) > 3 * frame.sigma
    assert np.mean(starless[near] - frame.truth[near]) < frame.sigma


@pytest.mark.parametrize("scene, centre", [(246, (459.2, 106.2)), (174, (118.0, 82.2))])
def test_clipped_stars_of_kolmogorov_scenes_go(monkeypatch, scene, centre):
    """Clipped stars that stayed in Kolmogorov random scenes (stretched).  r246: a
    clipped star of 5.8e6 ADU, two fainter stars 5 and 11 px from it, its plateau 0.61
    of the PSF's reach, fitted 3.2 times better by a profile 3.1 PSF widths wide and
    to 6.0 per pixel by the PSF (``CLIPPED_STAR_MAX_CHI2``), was kept whole as a
    galaxy: 185 DN above the truth on average within 10 px (13 DN now, 1 sigma).
    r174: clipped stars of 1.4e7 and 1.0e7 ADU 19 px apart make one plateau of two
    lobes; fitted from the whole plateau's centre, one PSF went between them, and the
    fainter kept 135 DN (9.6 sigma) on average within 10 px; each lobe fitted as a
    star, it keeps 12 (``CLIPPED_LOBE_DEPTH``)."""
    frame = _random_scene(monkeypatch, scene, psf="kolmogorov")
    starless = remove_stars(frame.image)
    near = _within(frame.image.shape, centre, 10)
    assert np.mean(frame.stars[near]) > 10 * frame.sigma
    assert np.mean(starless[near] - frame.truth[near]) < 2 * frame.sigma


def test_a_bright_star_on_a_galaxys_slope_goes(monkeypatch):
    """Kolmogorov random scene r326 (sky-subtracted): a star of 3.4e4 ADU on the
    slope of a galaxy, 5 px from its cusp.  Without the plane, a profile 1.11 PSF
    widths wide fits its core better than the PSF on its plane (1.3 against 2.4 per
    pixel), and it stayed as a galaxy, 20 sigma above the truth on average within 5
    px; the PSF on its plane misses its core by 1.3 % of its peak, as a star's
    (``ON_PLANE_MAX_MISMATCH``), and it goes."""
    frame = _random_scene(monkeypatch, 326, psf="kolmogorov")
    starless = remove_stars(frame.image)
    near = _within(frame.image.shape, (347.5, 172.05), 5)
    assert np.mean(frame.stars[near]) > 10 * frame.sigma
    assert np.mean(starless[near] - frame.truth[near]) < 5 * frame.sigma


def test_a_star_clipped_on_one_pixel_beside_a_clipped_star_goes(monkeypatch):
    """Moffat random scene r352 (linear): a star of 2.9e5 ADU clipped on one pixel,
    2 px from the plateau of a clipped star of 8e6 ADU.  Judged against its PSF with
    that plateau's pixels in its fit, it passed for unclipped; then, its peak on the
    clipped pixels' rim, it was never fitted: 27 sigma above the truth on average
    within 5 px.  Judged without them, it is clipped and goes."""
    frame = _random_scene(monkeypatch, 352)
    starless = remove_stars(frame.image)
    near = _within(frame.image.shape, (278.3, 437.2), 5)
    assert np.mean(frame.stars[near]) > 100 * frame.sigma
    assert abs(np.mean(starless[near] - frame.truth[near])) < 2 * frame.sigma


def test_two_clipped_galaxy_cores_in_one_plateau_stay(monkeypatch):
    """Kolmogorov random scene r228 (stretched): the clipped cores of two galaxies side
    by side make one plateau of two lobes.  Judged on its own, the lobe of 88 pixels,
    which the PSF fits to 1.0 per pixel, passes for a clipped star, and went: 122 DN
    below the truth over the 154 clipped pixels.  Its neighbour is a galaxy's core,
    and so the whole plateau stays, 8 DN below (``_a_lobe_beside_is_a_galaxy``; 36
    when the plateau was fitted from its centre)."""
    pixels, shortfall = _clipped_core_error(monkeypatch, 228, (275, 388),
                                            psf="kolmogorov")
    assert pixels >= 100
    assert shortfall > -30.0


def test_the_ellipticity_of_a_clipped_plateau():
    """``1 - minor / major`` of a plateau's pixels: 0 for a disc, the axis ratio's
    complement for an ellipse, whatever its angle."""
    from pipeline.core.starfit import _plateau_ellipticity

    yy, xx = np.mgrid[-20:21, -20:21].astype(float)
    assert _plateau_ellipticity(np.hypot(xx, yy) <= 12) == pytest.approx(0.0, abs=0.01)
    for angle in (0.0, 0.6, 1.2):
        u = xx * np.cos(angle) + yy * np.sin(angle)
        v = yy * np.cos(angle) - xx * np.sin(angle)
        ellipse = np.hypot(u / 16.0, v / 8.0) <= 1.0
        assert _plateau_ellipticity(ellipse) == pytest.approx(0.5, abs=0.02)


def test_clipped_galaxies_with_faint_stars_in_their_window_stay():
    """A compact galaxy clipped on two or three pixels, with four faint stars 8-20 px
    away, in 16 draws: their light in the clipped source's window makes the PSF and
    a wider profile fit alike, and the galaxy went as a clipped star in all 16 (8-24 %
    of its core's light left).  The PSF fitted to its unclipped light reaches the
    clipping level over several times the pixels that are clipped, where a star's PSF
    reaches it over its plateau: the galaxy now stays in 8 of 16 (in the others the
    wider profile fits less than 1.1 times better, or is less than twice as wide),
    and the clipped stars go in all."""
    from astropy.modeling.models import Sersic2D

    shape = (128, 128)
    yy, xx = np.mgrid[0:128, 0:128]
    centre = (64.3, 63.8)
    galaxy = Sersic2D(amplitude=1.0, r_eff=5.36, n=1.48, x_0=centre[0], y_0=centre[1],
                      ellip=0.13, theta=0.47)(xx, yy)
    galaxy *= 281.0 / galaxy.max()
    clipped_stars = sum(moffat_image(shape, x, y, peak, PSF) for x, y, peak in
                        ((24, 30, 1500.0), (100, 24, 800.0), (30, 100, 2500.0),
                         (104, 100, 500.0)))
    sky = 50.0
    truth = np.minimum(sky + galaxy, 255.0)
    core = np.hypot(xx - centre[0], yy - centre[1]) <= 6
    kept = []
    for seed in range(16):
        rng = np.random.default_rng(seed)
        stars = clipped_stars.copy()
        for distance, angle in zip(rng.uniform(8, 20, 4), rng.uniform(0, 2 * np.pi, 4)):
            stars += moffat_image(shape, centre[0] + distance * np.cos(angle),
                                  centre[1] + distance * np.sin(angle),
                                  rng.uniform(30, 150), PSF)
        observed = np.minimum(sky + galaxy + stars + rng.normal(0, 5, shape), 255.0)
        assert np.count_nonzero(observed[core] == 255.0) >= 2
        starless = fit_and_subtract_stars(observed, psf=PSF).starless
        kept.append(np.sum(starless[core] - sky) / np.sum(truth[core] - sky))
        observed_stars = np.minimum(truth + stars, 255.0) - truth
        assert abs(star_flux_left(starless, truth, observed_stars, threshold=5.0)) < 0.1
    assert sum(abs(fraction - 1.0) < 0.05 for fraction in kept) >= 8, np.round(kept, 2)


def test_a_star_on_a_galaxys_disk_goes_when_its_core_cannot_tell():
    """A bright star a few pixels from a disk galaxy's centre looks as wide as the
    galaxy over its window.  Its core, a dozen pixels, fits the PSF on its plane and a
    wider profile equally well, to the noise; then the whole window decides, where the
    galaxy's light under the star is a plane.  The core used to count as telling
    whenever the wider profile fitted it better by any amount: here by 5.5 in
    chi-square over 21 pixels, which the noise alone gives, and the star (peak 220,
    noise 5) was kept whole, 43 sigma left at its centre."""
    from astropy.modeling.models import Sersic2D

    rng = np.random.default_rng(58)
    shape = (128, 128)
    yy, xx = np.mgrid[0:128, 0:128]
    truth = np.full(shape, 200.0)
    stars = np.zeros(shape)
    centres = []
    for gx, gy in ((40, 40), (88, 40), (40, 88), (88, 88)):
        truth += Sersic2D(amplitude=rng.uniform(5, 15), r_eff=rng.uniform(6, 12),
                          n=rng.uniform(0.5, 1.5), x_0=gx, y_0=gy,
                          ellip=rng.uniform(0, 0.5), theta=rng.uniform(0, np.pi))(xx, yy)
        distance, angle = rng.uniform(3, 8), rng.uniform(0, 2 * np.pi)
        x, y = gx + distance * np.cos(angle), gy + distance * np.sin(angle)
        stars += moffat_image(shape, x, y, rng.uniform(100, 1500), PSF)
        centres.append((int(round(y)), int(round(x))))
    image = truth + stars + rng.normal(0, 5, shape)
    starless = fit_and_subtract_stars(image, psf=PSF).starless
    left = [(starless - truth)[centre] / 5 for centre in centres]
    assert max(abs(x) for x in left) < 5, left
    assert rmse(starless, truth) < 0.5 * 5


def test_stars_on_a_curved_galaxy_slope_go():
    """A 20-30 sigma star 8-14 px from the centre of a concentrated galaxy (Sersic
    index 2) sits on a slope that curves: the PSF on its plane fits the star's window
    to worse than ``ON_PLANE_MAX_CHI2`` per pixel (2.1-2.7 where the tests run), and
    the star was kept whole as part of the galaxy in 6 of 24 draws (18-27 sigma
    left), though a wider profile without the plane fits it 3.2-3.8 times worse.
    That margin now counts too: 2 of 24 are kept (one where it is 2.0), and the
    galaxy's centre keeps its light."""
    from astropy.modeling.models import Sersic2D

    shape = (128, 128)
    yy, xx = np.mgrid[0:128, 0:128]
    centre = np.hypot(xx - 64, yy - 64) <= 6
    kept, centre_light = 0, []
    for seed in range(24):
        rng = np.random.default_rng(seed)
        galaxy = Sersic2D(amplitude=40.0, r_eff=8.0, n=2.0, x_0=64, y_0=64, ellip=0.4,
                          theta=rng.uniform(0, np.pi))(xx, yy)
        distance, angle = rng.uniform(8, 14), rng.uniform(0, 2 * np.pi)
        x, y = 64 + distance * np.cos(angle), 64 + distance * np.sin(angle)
        star = moffat_image(shape, x, y, rng.uniform(100, 150), PSF)
        image = galaxy + star + rng.normal(0, 5, shape)
        starless = fit_and_subtract_stars(image, psf=PSF).starless
        row, col = int(round(y)), int(round(x))
        kept += np.max(np.abs(starless - galaxy)[row - 2:row + 3, col - 2:col + 3]) > 10 * 5
        centre_light.append(np.sum(starless[centre]) / np.sum(galaxy[centre]))
    assert kept <= 3
    assert np.min(centre_light) > 0.95, np.round(centre_light, 3)


def test_a_clipped_star_beside_another_source_is_not_taken_for_a_galaxy():
    """The clipped-galaxy test compares the PSF with a wider profile over a clipped
    source's unclipped light.  Free to move, the wider profile went over to a source
    beside the clipped core, fitted it, and the star was kept as a galaxy (here a
    saturated star at (159, 303) of a stretched frame, 28 units RMS left around it;
    on the edge-settings frame of 100 stars, 12 % of the frame's star flux).  Its
    centre now stays on the clipped plateau, and the plateau goes.

    (The galaxy whose nucleus lies 7 px from the plateau is another matter: the
    star's fit, on a PSF of beta 2 measured on this stretched frame's few faint
    stars, may take its light in, and whether it does flips with a relative change
    of 1e-13 in the input (core RMSE 11-33 units over six such changes, on an AMD
    EPYC without AVX-512; below the noise on the machines this test was written
    on).  README, limitations.)"""
    frame = make_survey_frame((384, 384), seed=11, n_stars=150, scale="stretched",
                              flux_range=(50.0, 2e5))
    core = np.s_[152:168, 295:311]
    plateau = frame.image[core] == 255.0
    assert np.count_nonzero(plateau) >= 9
    starless = remove_stars(frame.image)
    # Kept as a galaxy, the plateau stays at the white level, 100-200 units above
    # the scene under it.
    assert np.mean(starless[core][plateau] - frame.truth[core][plateau]) \
        < frame.noise_sigma


def test_saturated_stars_with_wings_broader_than_the_psf_go():
    """Far above the sky (a full well, not a display's white level) a clipped source
    is a star: the PSF measured on unsaturated stars' cores misses the wings of a
    saturated one (a Kolmogorov PSF's fall as r^-11/3), and the clipped-galaxy test
    kept such stars whole."""
    image, truth, stars, _ = _scene(seed=21, sky=200.0)
    broad = dataclasses.replace(PSF, beta=1.8)
    rng = np.random.default_rng(22)
    bright = sum(moffat_image(image.shape, x, y, rng.uniform(5e4, 2e5), broad)
                 for x, y in rng.uniform(30, 226, (4, 2)))
    full_well = 20000.0
    observed = np.minimum(image + bright, full_well)
    assert np.count_nonzero(observed == full_well) > 20
    fit = fit_and_subtract_stars(observed, psf=PSF)
    observed_stars = np.minimum(truth + stars + bright, full_well) - truth
    assert abs(star_flux_left(fit.starless, truth, observed_stars)) < 0.1


def test_unresolved_pairs_of_sharp_stars_are_not_taken_for_cusps():
    """On a frame of sharp stars (FWHM 2) a bright star with a fainter one 1-1.5
    FWHM away has no dip between them, and on its plane a profile narrower than the
    PSF can fit it better than the PSF, as it fits a galaxy's cusp; two PSFs fit it
    to the noise, and it goes.  Before two PSFs were tried on cusps, this frame came
    out with RMSE 2.92 and 5.3 % of the star flux left."""
    frame = make_survey_frame((256, 256), seed=1, fwhm=2.0, moffat_beta=4.5,
                              n_stars=400, scale="sky-subtracted", noise_sigma=5.0)
    fit = fit_and_subtract_stars(frame.image)
    assert rmse(fit.starless, frame.truth) < 2.4
    assert star_flux_left(fit.starless, frame.truth, frame.stars) < 0.04



@pytest.mark.parametrize("shape", [(1,), (2,), (7,), (10,), (5, 6), (9, 7), (0,)])
def test_the_fits_median_is_numpys(shape):
    # The fits' own median (numpy.median without its dispatch, for speed) must give
    # the same value to the bit: their decisions compare it with thresholds.
    from pipeline.core.starfit import _median
    values = np.random.default_rng(sum(shape) + 3).normal(size=shape) * 1e3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)    # (the empty array's mean)
        expected = float(np.median(values))
    np.testing.assert_array_equal(_median(values), expected)


def test_a_galaxy_nucleus_beside_a_bright_star_stays():
    """A star of 430-990 sigma 2-3.5 px from the centre of a galaxy convolved with the
    PSF (Sersic index 3, peaking at 100-180 sigma): one PSF on its plane took the
    nucleus in with the star (its core fitted to hundreds per pixel), or a later round
    refitted the nucleus as the star's leftover, and 2-97 % of the galaxy's light
    within 3 px of its centre went (a median of 93 %), the star 1-29 % too much.
    Fitted again as two, the nucleus judged as such, and not refitted once judged,
    both come out right.  (The fits alone: in a frame of one star, what the denoising
    does under it depends on a photon noise measured on that star's residual.)"""
    shape = (128, 128)
    yy, xx = np.mgrid[0:128, 0:128]
    centre = np.hypot(xx - 64, yy - 64) <= 3
    lost, left = [], []
    for seed in range(16):
        rng = np.random.default_rng(seed)
        galaxy = _convolved_sersic(shape, [(64, 64)], rng.uniform(20, 40), n=3.0,
                                   r_eff=6.0, ellip=0.3, theta=rng.uniform(0, np.pi))
        distance, angle = rng.uniform(2, 3.5), rng.uniform(0, 2 * np.pi)
        x, y = 64 + distance * np.cos(angle), 64 + distance * np.sin(angle)
        star = moffat_image(shape, x, y, rng.uniform(2000, 5000), PSF)
        image = galaxy + star + rng.normal(0, 5, shape)
        starless = fit_and_subtract_stars(image, psf=PSF, saturation=np.inf,
                                          denoise=False).starless
        lost.append(1 - np.sum(starless[centre]) / np.sum(galaxy[centre]))
        around = np.hypot(xx - x, yy - y) <= 6
        left.append(np.sum((starless - galaxy)[around]) / np.sum(star[around]))
    assert np.max(lost) < 0.1, np.round(lost, 2)
    assert np.max(np.abs(left)) < 0.05, np.round(left, 3)


def _kolmogorov_convolved(points):
    """``points`` convolved (by FFT, periodically) with a long-exposure Kolmogorov PSF
    of FWHM about 3 px."""
    frequency = np.hypot(*np.meshgrid(np.fft.fftfreq(points.shape[0]),
                                      np.fft.rfftfreq(points.shape[1]), indexing="ij"))
    transfer = np.exp(-3.44 * (frequency / 0.325) ** (5.0 / 3.0))
    return np.fft.irfft2(np.fft.rfft2(points) * transfer, s=points.shape)


def _kolmogorov_scene(seed, *, full_well=40000.0, sky=200.0, noise=5.0, nebula=0.0):
    """``(image, truth, clipped star centres (row, col), galaxy)``: point sources
    convolved with a long-exposure Kolmogorov PSF (FWHM about 3 px, whose wings fall
    as r^-11/3, far above any Moffat that fits its core), four of them clipped at
    ``full_well``, an exponential disc 18 px from the first clipped star, and a
    Gaussian nebula of peak ``nebula`` and sigma 40 px centred 10 px from the first
    clipped star along each axis (in the truth)."""
    rng = np.random.default_rng(seed)
    shape, pad = (256, 256), 64
    points = np.zeros((shape[0] + 2 * pad, shape[1] + 2 * pad))
    rows = rng.integers(pad, pad + shape[0], 150)
    cols = rng.integers(pad, pad + shape[1], 150)
    np.add.at(points, (rows, cols), 10 ** rng.uniform(2.5, 5.0, 150))
    bright = rng.uniform(pad + 40, pad + shape[0] - 40, (4, 2)).round().astype(int)
    points[bright[:, 0], bright[:, 1]] += 10 ** rng.uniform(6.3, 7.0, 4)
    stars = _kolmogorov_convolved(points)[pad:-pad, pad:-pad]
    centres = bright - pad
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    angle = rng.uniform(0, 2 * np.pi)
    gy, gx = centres[0] + 18 * np.array([np.sin(angle), np.cos(angle)])
    galaxy = 150.0 * np.exp(-np.hypot(xx - gx, yy - gy) / 4.0)
    ny, nx = centres[0] + 10
    truth = sky + galaxy + nebula * np.exp(-((yy - ny) ** 2 + (xx - nx) ** 2) / 3200.0)
    image = np.minimum(truth + stars + rng.normal(0, noise, shape), full_well)
    return image, truth, centres, galaxy


def _wing_rings(centre, galaxy, reach=(6, 24)):
    """The pixels ``reach`` (from, to) px from a clipped star of
    :func:`_kolmogorov_scene` (by default its wing beyond the clipped core) that the
    scene's galaxy leaves below 5 units."""
    yy, xx = np.mgrid[0:galaxy.shape[0], 0:galaxy.shape[1]]
    distance = np.hypot(yy - centre[0], xx - centre[1])
    return (distance >= reach[0]) & (distance < reach[1]) & (galaxy < 5.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_wings_of_clipped_stars_beyond_the_moffat_go_and_a_galaxy_beside_stays(seed):
    """A Kolmogorov PSF's wings fall as r^-11/3: the Moffat measured on the stars'
    cores misses them around clipped stars, which left 17-43 sigma (RMS) 6-24 px
    around them.  The stars' halos (the rings their models leave, in proportion to
    the frame's wing) take them, but not a galaxy beside a clipped star, which the
    frame's other bright stars do not have around them (the wings left 67-139 % of
    its light on top of it)."""
    image, truth, centres, galaxy = _kolmogorov_scene(seed)
    assert np.count_nonzero(image >= 40000.0) > 40
    starless = remove_stars(image)
    error = (starless - truth) / 5.0
    assert np.sqrt(np.mean(error ** 2)) < 1.5
    for centre in centres:
        rings = _wing_rings(centre, galaxy)
        assert np.sqrt(np.mean(error[rings] ** 2)) < 6.0, centre
    on_galaxy = galaxy > 20.0
    lost = np.sum(truth[on_galaxy] - starless[on_galaxy]) / np.sum(galaxy[on_galaxy])
    assert abs(lost) < 0.15


def test_clipped_stars_take_their_whole_wing_with_their_halos():
    """Each ring's level is the lowest of its four quadrants' medians, which lies
    below the ring's light by LOWEST_OF_FOUR of its noise: taken as measured, the
    halos left that much of the wing around every clipped star.  Around the clipped
    stars with no galaxy beside them, over six scenes, the mean light 6-24 px out was
    1.35 sigma with the levels as measured and 1.14 with their bias taken off.
    Further out, where no ring stands 3 sigma above its noise, the wing covers ever
    more pixels: cut there, the halos left 0.69 sigma on average 24-48 px out;
    carried on with the wing's shape, they leave 0.25 there, and 0.85 at 6-24 px."""
    near, far = [], []
    for seed in range(6):
        image, truth, centres, galaxy = _kolmogorov_scene(seed)
        error = (remove_stars(image) - truth) / 5.0
        for centre in centres[1:]:
            near.append(np.mean(error[_wing_rings(centre, galaxy)]))
            far.append(np.mean(error[_wing_rings(centre, galaxy, reach=(24, 48))]))
    assert np.mean(near) < 1.0, np.round(near, 2)
    assert np.mean(far) < 0.45, np.round(far, 2)
    assert np.min(far) > -0.5, np.round(far, 2)


def test_the_halos_of_a_noisy_frame_reach_beyond_the_rings_its_stars_measure():
    """In noise of 40 DN the unclipped stars measure the frame's wing on one or two
    rings only, too few for a slope.  Cut there, the wing stopped the clipped stars'
    halos a few pixels out, and they left 1.3-6.1 sigma (RMS) 6-24 px around them;
    carried on beyond them as a power law, 0.24-0.71 (0.47 on average), and 0.11-0.52
    (0.35) with the halos carried on beyond the rings where they stand out.  The
    galaxy 18 px from the first comes out within 0.52-0.70 sigma (RMS) of the truth,
    against 0.56-0.90 with the wing cut; its peak is 3.75 sigma, and with the star's
    wing under it taken off, 11-44 % of its light goes (where most goes, mostly as a
    star fitted to its centre), against 15 % at most with the halos cut where they
    stopped standing out."""
    left, on_galaxy_error = [], []
    for seed in (3, 4, 5, 6):
        image, truth, centres, galaxy = _kolmogorov_scene(seed, noise=40.0)
        error = (remove_stars(image) - truth) / 40.0
        for centre in centres:
            left.append(np.sqrt(np.mean(error[_wing_rings(centre, galaxy)] ** 2)))
        on_galaxy_error.append(np.sqrt(np.mean(error[galaxy > 20.0] ** 2)))
    assert np.mean(left) < 0.42 and np.max(left) < 1.0, np.round(left, 2)
    assert np.max(on_galaxy_error) < 0.75, np.round(on_galaxy_error, 2)


def test_a_halo_is_the_unbiased_light_of_its_rings_unless_a_galaxy_is_near():
    """The halo of a star is the light of its rings where that stands above 3 sigma,
    no more than twice its amplitude times the frame's wing, and no rising outwards;
    beyond, it goes on with the wing's shape as long as no ring's light lies 3 sigma
    below it.  Its rings' levels, the lowest of four medians, are unbiased unless a
    source left in place is near."""
    from pipeline.core.halos import HALO_REACH, HALO_SIGMAS, LOWEST_OF_FOUR, halo_profile

    inner = 4
    radii = np.arange(inner, HALO_REACH) + 0.5
    star_wing = 400.0 * (radii / 4.5) ** (-11 / 3)
    error = np.full(radii.size, 2.0)
    measured = star_wing - LOWEST_OF_FOUR * error
    profile = halo_profile(star_wing, inner, measured, error, unbiased=True)
    stands = star_wing > HALO_SIGMAS * error
    assert stands[0] and not stands.all()
    # The wing where it stands out and beyond, where it is too faint to stand out of
    # any one ring's noise but covers ever more pixels.
    np.testing.assert_allclose(profile[inner:HALO_REACH], star_wing)
    assert not profile[:inner].any() and profile[HALO_REACH] == 0
    # Rings whose light lies more than 3 sigma below the wing (a neighbour's model
    # that overshoots) end it there.
    last = np.flatnonzero(stands)[-1]
    dark = measured.copy()
    dark[last + 5:] = -(HALO_SIGMAS + LOWEST_OF_FOUR) * error[last + 5:] - 1.0
    cut = halo_profile(star_wing, inner, dark, error, unbiased=True)
    np.testing.assert_allclose(cut[inner:inner + last + 5], star_wing[:last + 5])
    assert not cut[inner + last + 5:].any()
    # Near a galaxy's nucleus, the levels as measured: no more than the rings show.
    kept = halo_profile(star_wing, inner, measured, error, unbiased=False)
    assert np.all(kept[inner:HALO_REACH] <= np.maximum(measured, 0.0) + 1e-12)
    assert kept[inner] == pytest.approx(measured[0])
    assert kept[inner + last + 1:HALO_REACH].any()
    # A galaxy's light in the rings: no more than twice the star's wing, and the
    # halo never rises outwards from its brightest ring.
    galaxy = np.where((radii > 10) & (radii < 20), 500.0, 0.0)
    capped = halo_profile(star_wing, inner, measured + galaxy, error, unbiased=True)
    assert np.all(capped[inner:HALO_REACH] <= 2.0 * star_wing + 1e-12)
    assert np.all(np.diff(capped[inner:]) <= 0)
    assert halo_profile(star_wing, inner, np.zeros(radii.size), error,
                         unbiased=True) is None


def test_four_quadrants_that_see_one_wing_agree_and_a_galaxy_in_one_does_not():
    """A star's quadrants agree where their medians scatter as their noise says about
    one level, the wing's, falling outwards; light in one quadrant (a galaxy beside
    the star) or too few rings measured in all four make them disagree."""
    from pipeline.core.halos import QUADRANT_SPREAD, quadrant_spread, quadrants_agree

    rng = np.random.default_rng(1)
    radii = np.arange(4, 40) + 0.5
    wing = 300.0 * (radii / 4.5) ** (-11 / 3)
    errors = np.full((radii.size, 4), 2.0)
    medians = wing[:, None] + rng.normal(0.0, 2.0, errors.shape)
    spread = quadrant_spread(medians, errors)
    assert np.mean(spread) == pytest.approx(1.0, abs=0.3)
    assert quadrants_agree(spread)
    # Equal medians scatter not at all.
    assert np.all(quadrant_spread(np.repeat(wing[:, None], 4, axis=1), errors) == 0)
    galaxy = medians.copy()
    galaxy[2:12, 1] += 6 * 2.0
    assert np.mean(quadrant_spread(galaxy, errors)[:16]) > QUADRANT_SPREAD
    assert not quadrants_agree(quadrant_spread(galaxy, errors))
    # A ring with no light measured in a quadrant (beyond the frame's edge) says
    # nothing; three rings say too little.
    edge = medians.copy()
    edge[3:, 2] = np.inf
    assert np.isnan(quadrant_spread(edge, errors)[3:]).all()
    assert not quadrants_agree(quadrant_spread(edge, errors))


def test_the_halos_of_clipped_stars_are_not_held_back_by_the_peaks_of_their_wings(
        monkeypatch):
    """The benchmark's Kolmogorov random scene r78 (stretched): the first round of
    fits, before the halos, left peaks of the clipped stars' own wings in place as
    galaxies and streak pieces, 11-16 px from them, which held their halos to the
    biased levels of a star beside a galaxy; and the background map under their
    wings stood 11-20 DN above the sky, measured against the model without halos.
    13.0 % of the star flux stayed."""
    frame = _random_scene(monkeypatch, 78, psf="kolmogorov")
    assert frame.spec.scale == "stretched"
    starless = remove_stars(frame.image)
    assert star_flux_left(starless, frame.truth, frame.stars) < 0.10
    assert extended_rmse(starless, frame.truth, frame.extended_mask) < 0.7 * frame.sigma


def test_a_galaxy_cusp_kept_whole_is_not_split_once_a_halo_lies_under_it(monkeypatch):
    """The benchmark's fresh Moffat random scene r215 (sky-subtracted): a galaxy's
    elongated cusp of 61 sigma, 10 px from a clipped star, is kept whole in the first
    round (two PSFs split it 1.75 : 1); in the third, the clipped star's halo under
    it, they split it 2.38 : 1, the fainter half passed the nucleus test and the
    brighter half went: 56 sigma below the truth, extended-source RMSE 0.81 sigma."""
    frame = _random_scene(monkeypatch, 215)
    starless = remove_stars(frame.image)
    assert extended_rmse(starless, frame.truth, frame.extended_mask) < 0.7 * frame.sigma


def test_the_scene_under_a_halo_is_the_light_that_does_not_fall_with_the_wing():
    """Rings that hold a star's wing, scaled, on a level of their own (a nebula that
    the background map leaves out) give that level; rings of the wing alone, or a
    level within the noise, give none, and so does a frame without a wing."""
    from pipeline.core.halos import HALO_REACH, scene_pedestal

    inner = 4
    radii = np.arange(inner, HALO_REACH) + 0.5
    star_wing = 400.0 * (radii / 4.5) ** (-11 / 3)
    error = np.full(radii.size, 2.0)
    assert scene_pedestal(star_wing, 0.7 * star_wing + 30.0, error) == pytest.approx(30.0)
    noisy = 0.7 * star_wing + 30.0 + np.random.default_rng(0).normal(0.0, 2.0, radii.size)
    assert scene_pedestal(star_wing, noisy, error) == pytest.approx(30.0, abs=2.0)
    assert scene_pedestal(star_wing, 0.7 * star_wing, error) == 0.0
    assert scene_pedestal(star_wing, 0.7 * star_wing + 1.0, 10 * error) == 0.0
    assert scene_pedestal(np.zeros(radii.size), noisy, error) == 0.0
    # (Rings with no usable pixel are left out.)
    holed = np.where(radii < 8, np.inf, noisy)
    assert scene_pedestal(star_wing, holed, error) == pytest.approx(30.0, abs=2.0)


def test_the_halo_of_a_clipped_star_on_a_nebula_leaves_the_nebula():
    """A clipped star on a nebula of 50 sigma: its rings hold the nebula's light
    beyond what the background map gives, which does not fall with the frame's wing,
    and the halo, taking the rings' light up to twice the wing, took it too.  Over
    four scenes the nebula came out 5.7-17.0 sigma low on average 6-24 px from the
    star (11.9 over the four); with the light that does not fall with the wing left
    to the scene, 1.0-11.6 (5.5).  What is still taken is the part of the nebula's
    light that falls away from the star, as a wing does."""
    lows = []
    for seed in range(4):
        image, truth, centres, galaxy = _kolmogorov_scene(seed, nebula=250.0)
        error = (remove_stars(image) - truth) / 5.0
        lows.append(-np.mean(error[_wing_rings(centres[0], galaxy)]))
    assert np.mean(lows) < 7.0, np.round(lows, 2)


def _stretched_kolmogorov_frame(seed, *, size, n_faint, faint_decades, n_bright,
                                bright_decades, margin, n_galaxies=0):
    """``(image, truth, galaxies)``: Kolmogorov stars (``n_faint`` and ``n_bright``,
    their fluxes uniform in the log between the ``decades``) and ``n_galaxies``
    compact exponential discs (scale 5 px, 4000 ADU at the centre) on a sky of 1000
    ADU with noise 30, shown through the benchmark's asinh display stretch (sky at 46
    of 255, the black point 3 noise sigmas below it), rounded to whole levels."""
    from astropy.visualization import AsinhStretch, ManualInterval

    rng = np.random.default_rng(seed)
    pad, sky, noise = 64, 1000.0, 30.0
    points = np.zeros((size + 2 * pad, size + 2 * pad))
    rows = rng.integers(pad, pad + size, n_faint)
    cols = rng.integers(pad, pad + size, n_faint)
    np.add.at(points, (rows, cols), 10 ** rng.uniform(*faint_decades, n_faint))
    bright = rng.uniform(pad + margin, pad + size - margin, (n_bright, 2))
    bright = bright.round().astype(int)
    points[bright[:, 0], bright[:, 1]] += 10 ** rng.uniform(*bright_decades, n_bright)
    stars = _kolmogorov_convolved(points)[pad:-pad, pad:-pad]
    yy, xx = np.mgrid[0:size, 0:size]
    galaxies = np.zeros((size, size))
    for gy, gx in rng.uniform(40, size - 40, (n_galaxies, 2)):
        galaxies += 4000.0 * np.exp(-np.hypot(xx - gx, yy - gy) / 5.0)
    black = sky - 3 * noise
    white = black + 3 * noise / (0.1 * math.sinh(46 / 255 * math.asinh(10.0)))
    interval, stretch = ManualInterval(black, white), AsinhStretch(0.1)

    def display(linear):
        return 255.0 * stretch(interval(linear, clip=True), clip=True)

    image = np.round(display(sky + galaxies + stars + rng.normal(0, noise, stars.shape)))
    return image, display(sky + galaxies), galaxies


#: A dozen clipped stars of 1e5-3e6 ADU among 200 faint ones on 320 x 320 pixels.
_TWELVE_CLIPPED_STARS = dict(size=320, n_faint=200, faint_decades=(2.5, 4.5), n_bright=12,
                             bright_decades=(5.0, 6.5), margin=24)


@pytest.mark.parametrize("seed", [0, 1])
def test_clipped_kolmogorov_stars_of_a_stretched_frame_go(seed):
    """Through an asinh display stretch, a bright star's clipped core is ringed by its
    wings in the stretch's logarithmic part, which a wider profile fits better than
    the PSF, as it fits a galaxy's light; but the PSF fitted to a star's ring
    predicts its plateau, which fills most of the area where that PSF reaches the
    white level.  Of six stars of 2.5e6-1e7 ADU, 4 and 1 were kept whole (their
    plateaus 208 DN above the sky)."""
    image, truth, _ = _stretched_kolmogorov_frame(
        seed, size=256, n_faint=150, faint_decades=(2.5, 4.8), n_bright=6,
        bright_decades=(math.log10(5e6) - 0.3, math.log10(5e6) + 0.3), margin=30)
    starless = remove_stars(image)
    plateaus, count = ndimage.label(image >= 255)
    sizes = ndimage.sum_labels(image >= 255, plateaus, range(1, count + 1))
    left = ndimage.mean(starless - truth, plateaus, range(1, count + 1))
    assert np.count_nonzero(sizes >= 20) == 5
    assert left[sizes >= 20].max() < 120.0


@pytest.mark.parametrize("seed", [0, 1])
def test_clipped_stars_measure_the_wing_of_a_stretched_frame(seed):
    """A stretched frame's unclipped stars are all faint (the display clips the
    bright ones), so none measures the PSF's wing beyond its Moffat; its clipped
    stars do, and their halos take the light left around them: 2.7 and 2.2 DN on
    average 3-12 px from the plateaus, against 3.1 and 3.2 DN with the rings' levels
    biased low (the lowest of four medians) and 4.7 and 4.2 DN with no wing."""
    image, truth, _ = _stretched_kolmogorov_frame(seed, **_TWELVE_CLIPPED_STARS)
    starless = remove_stars(image)
    distance = ndimage.distance_transform_edt(image < 255)
    rings = (distance > 2) & (distance <= 12)
    assert np.mean(starless[rings] - truth[rings]) < 2.9


def test_the_halos_of_a_crowded_stretched_frame_are_measured_against_the_sky(
        monkeypatch):
    """The benchmark's Kolmogorov random scene r3: stretched, its wing measured on 121
    clipped stars, whose overlapping wings, below the source mask, raise the
    background map.  Against that map their rings 6-29 px out lay 3.5-7.4 DN low, the
    stacked wing came out 0, no star got a halo, and 10.0 % of the star flux stayed;
    measured against the sky without the fitted stars, 8.2 %."""
    frame = _random_scene(monkeypatch, 3, psf="kolmogorov")
    assert frame.spec.scale == "stretched"
    starless = remove_stars(frame.image)
    assert star_flux_left(starless, frame.truth, frame.stars) < 0.09


def test_a_wing_too_faint_on_the_unclipped_stars_is_measured_on_the_clipped_ones(
        monkeypatch):
    """The benchmark's Kolmogorov random scene r133 (linear): its six unclipped stars
    above HALO_MIN_SNR, of 6600-24000 ADU, measure no wing, and a clipped star of
    4.3e6 ADU kept 1500 ADU (30 sigma) 9 px out: 6.6 % of the star flux stayed, and
    the extended sources beside it came out 2.4 sigma off.  The wing stands out around
    the three clipped stars."""
    frame = _random_scene(monkeypatch, 133, psf="kolmogorov")
    assert frame.spec.scale == "linear"
    starless = remove_stars(frame.image)
    assert abs(star_flux_left(starless, frame.truth, frame.stars)) < 0.02
    assert extended_rmse(starless, frame.truth, frame.extended_mask) < 0.7 * frame.sigma


def test_the_brightest_clipped_stars_of_a_stretched_frame_go(monkeypatch):
    """The benchmark's Kolmogorov random scene r126 (stretched): its two brightest
    stars, of 2.6e7 and 4.1e7 ADU, ringed by their wings through the stretch, are
    fitted best by the widest profile tried, and were kept whole as galaxies (214 and
    233 DN above the truth over their plateaus, 27 % of the star flux left), though
    their plateaus cover 0.68 and 0.90 of the PSF's reach."""
    frame = _random_scene(monkeypatch, 126, psf="kolmogorov")
    assert frame.spec.scale == "stretched"
    starless = remove_stars(frame.image)
    for row, col in [(210, 188), (172, 0)]:
        window = np.s_[row - 12:row + 13, max(col - 12, 0):col + 13]
        plateau = frame.image[window] >= 255
        assert np.count_nonzero(plateau) > 100
        assert np.mean(starless[window][plateau] - frame.truth[window][plateau]) < 60.0
    assert star_flux_left(starless, frame.truth, frame.stars) < 0.15


@pytest.mark.parametrize("seed", [4, 6, 9])
def test_compact_clipped_galaxies_of_a_stretched_frame_stay(seed):
    """A compact galaxy clipped by the display stretch, among a dozen clipped
    Kolmogorov stars, may fill the area that the PSF fitted to its unclipped light
    reaches as a star's plateau does, but the profile that fits it best is the widest
    tried (CLIPPED_STAR_MAX_WIDTH): it stays.  (With the plateau's share
    alone, one galaxy of the two went in each of these draws, half of their
    light.)"""
    image, truth, galaxies = _stretched_kolmogorov_frame(seed, **_TWELVE_CLIPPED_STARS,
                                                         n_galaxies=2)
    assert np.count_nonzero(truth >= 255) > 100
    starless = remove_stars(image)
    core = galaxies > 1000.0
    assert np.sum(starless[core] - 46.0) == pytest.approx(np.sum(truth[core] - 46.0),
                                                          rel=0.03)


def test_the_frame_wing_is_what_most_stars_share_in_proportion_to_their_light():
    """A PSF's wing is the same around every star, scaled by its light: the stacked
    wing is the stars' common ratio, carried on as its power law beyond the rings
    they measure, and light around one star only (a galaxy it sits in) or noise is
    none."""
    from pipeline.core.halos import (FLATTEST_WING_SLOPE, HALO_REACH, LOWEST_OF_FOUR,
                                     HaloRings, stacked_wing)

    radii = np.arange(3, HALO_REACH)
    wing = 0.01 * ((radii + 0.5) / 3.5) ** (-11 / 3)
    amplitudes = [1e4, 2e4, 5e4, 3e4]
    errors = np.ones(radii.size)
    clean = np.zeros(radii.size, bool)

    def rings(level, near_clipped=clean):
        return HaloRings(None, None, 3, level, errors, near_clipped, None)

    # Each star's ring levels are the lowest of four quadrants' medians, biased low.
    shared = [rings(amplitude * wing - LOWEST_OF_FOUR * errors)
              for amplitude in amplitudes]
    stacked = stacked_wing(amplitudes, shared)
    np.testing.assert_allclose(stacked[3:], wing, rtol=1e-6)
    rng = np.random.default_rng(0)
    noise_only = [rings(rng.normal(-LOWEST_OF_FOUR, 0.3, radii.size))
                  for _ in amplitudes]
    galaxy = rings(np.full(radii.size, 40.0))
    assert not stacked_wing(amplitudes + [1e6], noise_only + [galaxy]).any()
    # Rings beside a clipped core (the model overshoots its rim) do not count.
    rim = rings(amplitudes[0] * wing, near_clipped=~clean)
    assert not stacked_wing([amplitudes[0]] * 3, [rim, *noise_only[:2]]).any()
    # Stars that measure two rings only fit no slope: the wing goes on from the
    # second as r^-3, the flattest allowed.
    two_rings = [rings(np.where(radii < 5, amplitude * wing, 0.0) - LOWEST_OF_FOUR * errors)
                 for amplitude in amplitudes]
    stacked = stacked_wing(amplitudes, two_rings)
    np.testing.assert_allclose(stacked[3:5], wing[:2], rtol=1e-6)
    assert FLATTEST_WING_SLOPE == -3.0
    np.testing.assert_allclose(stacked[5:], wing[1] * ((radii[2:] + 0.5) / 4.5) ** -3.0,
                               rtol=1e-6)
