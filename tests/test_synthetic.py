"""Tests of the synthetic-image generators."""

from __future__ import annotations

import math

import numpy as np
import pytest
from photutils.aperture import CircularAperture, aperture_photometry
from photutils.centroids import centroid_com

from pipeline.synthetic import make_survey_frame, paper_synthetic

SMALL = dict(shape=(160, 192), n_stars=40, n_galaxies=3)


# --------------------------------------------------------------------------- paper
def test_paper_synthetic_background_statistics():
    z = np.zeros((300, 300))
    out = paper_synthetic(z, z, seed=3)
    assert out.mean() == pytest.approx(46.0, abs=0.2)
    assert out.std() == pytest.approx(17.1, rel=0.02)
    assert out.dtype == np.float64


def test_paper_synthetic_max_merge_add_and_clip():
    neb = np.zeros((50, 50))
    neb[:, :25] = 200.0  # far above the noisy background: wins the maximum everywhere
    stars = np.zeros_like(neb)
    stars[10, 10] = 100.0  # on the nebula: 300 is clipped
    stars[10, 40] = 30.0  # on the sky
    out = paper_synthetic(neb, stars, seed=0)
    ref = paper_synthetic(neb, np.zeros_like(neb), seed=0)
    np.testing.assert_array_equal(out[:, :25][stars[:, :25] == 0], 200.0)
    assert out[10, 10] == 255.0
    assert out[10, 40] - ref[10, 40] == pytest.approx(30.0)
    assert out.min() >= 0 and out.max() <= 255


def test_paper_synthetic_deterministic_and_input_untouched():
    neb = np.random.default_rng(0).uniform(0, 100, (20, 20))
    before = neb.copy()
    a = paper_synthetic(neb, neb * 0, seed=5)
    np.testing.assert_array_equal(a, paper_synthetic(neb, neb * 0, seed=5))
    assert not np.array_equal(a, paper_synthetic(neb, neb * 0, seed=6))
    np.testing.assert_array_equal(neb, before)


def test_paper_synthetic_errors():
    with pytest.raises(ValueError, match="shape"):
        paper_synthetic(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="2-D"):
        paper_synthetic(np.zeros(4), np.zeros(4))
    with pytest.raises(ValueError, match="noise_sigma"):
        paper_synthetic(np.zeros((4, 4)), np.zeros((4, 4)), noise_sigma=-1)


# --------------------------------------------------------------------------- survey frame
def test_deterministic_per_seed():
    a = make_survey_frame(**SMALL, seed=7, streak=20.0)
    b = make_survey_frame(**SMALL, seed=7, streak=20.0)
    c = make_survey_frame(**SMALL, seed=8, streak=20.0)
    for name in ("image", "truth", "stars", "extended_mask", "streak_mask"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(a.catalogue, b.catalogue)
    assert not np.array_equal(a.image, c.image)


def test_image_is_truth_plus_stars_plus_gaussian_noise():
    f = make_survey_frame((256, 256), seed=1, noise_sigma=6.0)
    noise = f.image - f.truth - f.stars
    assert noise.std() == pytest.approx(6.0, rel=0.03)
    assert abs(noise.mean()) < 0.1
    # Gaussian: about 68.3 % within one sigma.
    assert np.mean(np.abs(noise) < 6.0) == pytest.approx(0.683, abs=0.01)
    assert f.noise_sigma == 6.0
    with pytest.raises(ValueError):
        f.image[0, 0] = 1.0  # frozen frame: read-only arrays


def test_sky_level_and_gradient():
    f = make_survey_frame((128, 128), n_stars=0, n_galaxies=0, nebula=False,
                          sky=40.0, sky_gradient=(0.1, -0.05), seed=2)
    assert f.truth.mean() == pytest.approx(40.0)
    assert f.truth[-1, 0] - f.truth[0, 0] == pytest.approx(0.1 * 127)
    assert f.truth[0, -1] - f.truth[0, 0] == pytest.approx(-0.05 * 127)
    assert not f.extended_mask.any()


def test_catalogue_fluxes_match_star_layer():
    # Similar fluxes, so a neighbour's far wing cannot dominate an aperture.
    f = make_survey_frame((320, 320), seed=4, n_stars=15, fwhm=3.0, moffat_beta=3.5,
                          flux_range=(1e3, 2e3))
    cat = f.catalogue
    assert f.stars.min() >= 0
    radius, checked = 15.0, 0
    gamma = 3.0 / (2 * math.sqrt(2 ** (1 / 3.5) - 1))
    enclosed = 1 - (1 + (radius / gamma) ** 2) ** (1 - 3.5)  # Moffat curve of growth
    for i, s in enumerate(cat):
        others = np.hypot(cat["x"] - s["x"], cat["y"] - s["y"])
        others[i] = np.inf
        inside = radius <= s["x"] <= 319 - radius and radius <= s["y"] <= 319 - radius
        if not inside or others.min() < 2.5 * radius:
            continue
        ap = CircularAperture((s["x"], s["y"]), r=radius)
        got = aperture_photometry(f.stars, ap, method="exact")["aperture_sum"][0]
        assert got == pytest.approx(s["flux"] * enclosed, rel=5e-3)
        checked += 1
    assert checked >= 5


@pytest.mark.parametrize("beta", [1.8, 1.01])
def test_wide_wings_reach_the_whole_frame(beta):
    # Each star's stamp (radius ~700 px at beta 1.8; at 1.01 its radius overflowed a
    # float, an OverflowError) covers the 96 x 128 frame several times over, so the
    # layer is every star's Moffat at every pixel of the frame.
    f = make_survey_frame((96, 128), seed=8, n_stars=5, fwhm=3.0, moffat_beta=beta,
                          saturate=None)
    gamma = 3.0 / (2 * math.sqrt(2 ** (1 / beta) - 1))
    yy, xx = np.mgrid[0:96, 0:128]
    expected = sum(s["peak"] / (1 + ((xx - s["x"]) ** 2 + (yy - s["y"]) ** 2) / gamma**2)
                   ** beta for s in f.catalogue)
    np.testing.assert_allclose(f.stars, expected, rtol=1e-12)


def test_stars_are_where_the_catalogue_says():
    f = make_survey_frame((200, 200), seed=5, n_stars=10, flux_range=(2e3, 4e3))
    cat, checked = f.catalogue, 0
    for i, s in enumerate(cat):
        iy, ix = int(round(s["y"])), int(round(s["x"]))
        others = np.hypot(cat["x"] - s["x"], cat["y"] - s["y"])
        others[i] = np.inf
        if not (6 <= iy < 194 and 6 <= ix < 194) or others.min() < 20:
            continue
        cut = f.stars[iy - 6 : iy + 7, ix - 6 : ix + 7]
        # The brightest pixel is the star's own, and the light is centred on (x, y).
        assert np.unravel_index(np.argmax(cut), cut.shape) == (6, 6)
        cx, cy = centroid_com(cut)
        assert cx + ix - 6 == pytest.approx(s["x"], abs=0.1)
        assert cy + iy - 6 == pytest.approx(s["y"], abs=0.1)
        # Pixel-centre sampling within half a pixel of the peak: 80-100 % of it.
        assert 0.8 * s["peak"] <= cut.max() <= s["peak"] * (1 + 1e-9)
        checked += 1
    assert checked >= 5


def test_flux_power_law_range_and_slope():
    f = make_survey_frame((64, 64), seed=6, n_stars=4000, flux_range=(10.0, 1e4),
                          flux_slope=-2.0, n_galaxies=0, nebula=False)
    flux = f.catalogue["flux"]
    assert flux.min() >= 10.0 and flux.max() <= 1e4
    # For dN/dF ~ F^-2 on [10, 1e4]: P(F > 100) = (1/100 - 1/1e4) / (1/10 - 1/1e4).
    expected = (1 / 100 - 1 / 1e4) / (1 / 10 - 1 / 1e4)
    assert np.mean(flux > 100) == pytest.approx(expected, abs=0.015)


def test_streak_present_when_asked():
    base = make_survey_frame(**SMALL, seed=9)
    streaked = make_survey_frame(**SMALL, seed=9, streak=25.0)
    assert not base.streak_mask.any()
    assert streaked.streak_mask.sum() > 150  # a line across the frame, ~2 FWHM wide
    diff = streaked.truth - base.truth
    np.testing.assert_array_equal(streaked.stars, base.stars)  # other layers unchanged
    assert diff.max() == pytest.approx(25.0, rel=0.05)
    assert diff[streaked.streak_mask].min() >= 25.0 / 16 - 1e-9  # 1/16 at one FWHM
    assert diff[~streaked.streak_mask].max() <= 25.0 / 16 + 1e-9
    assert streaked.extended_mask[diff > 2 * 6.0].all()


def test_extended_mask_covers_galaxies_and_nebula():
    f = make_survey_frame((160, 160), seed=10, n_stars=0, sky_gradient=(0, 0))
    above = f.truth - 40.0
    np.testing.assert_array_equal(f.extended_mask, above > f.noise_sigma)
    assert f.extended_mask.any()


def test_scales():
    lin = make_survey_frame(**SMALL, seed=11)
    sub = make_survey_frame(**SMALL, seed=11, scale="sky-subtracted")
    np.testing.assert_allclose(lin.image - sub.image, lin.truth - sub.truth, atol=1e-9)
    np.testing.assert_array_equal(lin.stars, sub.stars)
    bare = make_survey_frame((64, 80), seed=11, scale="sky-subtracted", nebula=False,
                             n_galaxies=0)
    np.testing.assert_allclose(bare.truth, 0.0, atol=1e-9)  # sky level and gradient gone
    st = make_survey_frame(**SMALL, seed=11, scale="stretched")
    assert st.image.min() >= 0 and st.image.max() <= 255
    sky_only = ~st.extended_mask & (st.stars < 0.01)
    assert np.median(st.truth[sky_only]) == pytest.approx(46.0, abs=3.0)
    assert st.stars.min() >= -1e-9  # the stretch is monotonic
    # The reported noise level is the stretched noise at the sky (first order).
    resid = (st.image - st.truth - st.stars)[sky_only & (st.image > 0) & (st.image < 255)]
    assert resid.std() == pytest.approx(st.noise_sigma, rel=0.25)


def test_saturation_clips_image_only():
    f = make_survey_frame(**SMALL, seed=12, saturate=120.0)
    assert f.image.max() == 120.0
    assert (f.truth + f.stars).max() > 150.0


def test_fast_enough_for_default_frame():
    import time

    t = time.perf_counter()
    make_survey_frame()
    assert time.perf_counter() - t < 2.0


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(shape=(4, 100)), ValueError, "shape"),
        (dict(shape=(10, 10, 10)), ValueError, "shape"),
        (dict(n_stars=-1), ValueError, "n_stars"),
        (dict(n_stars=2.5), TypeError, "n_stars"),
        (dict(noise_sigma=-1.0), ValueError, "noise_sigma"),
        (dict(fwhm=0.0), ValueError, "fwhm"),
        (dict(moffat_beta=1.0), ValueError, "moffat_beta"),
        (dict(flux_range=(10.0, 1.0)), ValueError, "flux_range"),
        (dict(scale="log"), ValueError, "scale"),
        (dict(streak=-3.0), ValueError, "streak"),
        (dict(sky=float("nan")), ValueError, "sky"),
    ],
)
def test_survey_frame_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        make_survey_frame(**kwargs)
