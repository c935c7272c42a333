"""Tests of the quality measures against analytic values and skimage."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from pipeline.metrics import extended_rmse, mae, psnr, rmse, ssim, star_flux_left, summary


def _truth(shape=(40, 50), seed=0):
    return np.random.default_rng(seed).uniform(0, 200, shape)


def test_constant_offset():
    t = _truth()
    d = 4.0
    r = t + d
    assert mae(r, t) == pytest.approx(d)
    assert rmse(r, t) == pytest.approx(d)
    assert psnr(r, t) == pytest.approx(20 * math.log10(255.0 / d))
    assert psnr(r, t, data_range=1000.0) == pytest.approx(20 * math.log10(1000.0 / d))


def test_mae_below_rmse_for_unequal_errors():
    t = np.zeros((2, 2))
    r = np.array([[0.0, 0.0], [0.0, 4.0]])
    assert mae(r, t) == pytest.approx(1.0)
    assert rmse(r, t) == pytest.approx(2.0)


def test_perfect_result():
    t = _truth()
    assert mae(t, t) == 0.0
    assert rmse(t, t) == 0.0
    assert psnr(t, t) == math.inf
    assert ssim(t, t) == pytest.approx(1.0)


def test_non_finite_pixels_ignored():
    t = np.zeros((10, 10))
    r = np.full((10, 10), 2.0)
    r[0, 0] = np.nan
    t[5, 5] = np.inf
    r[3, 3] = 1e9
    t[3, 3] = np.nan  # a huge error, but on a masked pixel
    assert mae(r, t) == pytest.approx(2.0)
    assert rmse(r, t) == pytest.approx(2.0)


def test_ssim_equals_skimage_without_masks():
    t = _truth()
    r = t + np.random.default_rng(1).normal(0, 20, t.shape)
    assert ssim(r, t) == structural_similarity(r, t, data_range=255.0)


def test_ssim_ignores_masked_pixels():
    t = _truth((60, 60))
    r = t + np.random.default_rng(1).normal(0, 20, t.shape)
    ref = ssim(r, t)
    # Ruin a block and mask it: the score barely moves (fewer windows, same statistics).
    r2 = r.copy()
    r2[20:30, 20:30] = 1e6
    r2[20:30, 20:30] = np.nan
    assert ssim(r2, t) == pytest.approx(ref, abs=0.03)
    # A perfect result stays perfect whatever lies under the mask.
    t3 = t.copy()
    t3[5, 7] = np.nan
    assert ssim(t, t3) == pytest.approx(1.0)


def test_star_flux_left_limits():
    t = np.full((30, 30), 50.0)
    stars = np.zeros_like(t)
    stars[10:13, 10:13] = [[1, 2, 1], [2, 8, 2], [1, 2, 1]]
    stars[20, 25] = 4.0
    assert star_flux_left(t, t, stars) == 0.0
    assert star_flux_left(t + stars, t, stars) == pytest.approx(1.0)
    assert star_flux_left(t + 0.25 * stars, t, stars) == pytest.approx(0.25)
    # The threshold picks pixels: above 3 only the 8 and the 4 count.
    r = t + stars
    r[11, 11] = 50.0  # the central 8 removed
    assert star_flux_left(r, t, stars, threshold=3.0) == pytest.approx(4.0 / 12.0)


def test_extended_rmse_only_on_mask():
    t = np.zeros((10, 10))
    r = np.zeros((10, 10))
    r[:, :5] = 3.0
    r[:, 5:] = 100.0
    mask = np.zeros((10, 10), bool)
    mask[:, :5] = True
    assert extended_rmse(r, t, mask) == pytest.approx(3.0)


def test_summary_keys_and_values():
    t = _truth()
    stars = np.zeros_like(t)
    stars[5, 5] = 10.0
    mask = t > 100
    r = t + 1.0
    out = summary(r, t, stars_only=stars, extended_mask=mask)
    assert set(out) == {"mae", "rmse", "psnr", "ssim", "star_flux_left", "extended_rmse"}
    assert out["rmse"] == pytest.approx(1.0)
    assert out["star_flux_left"] == pytest.approx(0.1)
    assert out["extended_rmse"] == pytest.approx(1.0)
    assert set(summary(r, t)) == {"mae", "rmse", "psnr", "ssim"}


def test_inputs_not_modified():
    t = _truth()
    r = t + 1
    r[2, 2] = np.nan
    r0, t0 = r.copy(), t.copy()
    summary(r, t, stars_only=np.abs(t - 100), extended_mask=t > 50)
    np.testing.assert_array_equal(r, r0)
    np.testing.assert_array_equal(t, t0)


@pytest.mark.parametrize("func", [mae, rmse, psnr, ssim])
def test_errors(func):
    a = np.zeros((10, 10))
    with pytest.raises(ValueError, match="shape"):
        func(a, np.zeros((10, 11)))
    with pytest.raises(ValueError, match="2-D"):
        func(np.zeros(10), np.zeros(10))
    with pytest.raises(TypeError, match="complex"):
        func(a.astype(complex), a)
    with pytest.raises(ValueError, match="no pixel"):
        func(np.full((10, 10), np.nan), a)


def test_parameter_errors():
    a = np.zeros((10, 10))
    with pytest.raises(ValueError, match="data_range"):
        psnr(a, a, data_range=0)
    with pytest.raises(ValueError, match="win_size"):
        ssim(a, a, win_size=4)
    with pytest.raises(ValueError, match="no positive"):
        star_flux_left(a, a, a)
    with pytest.raises(TypeError, match="boolean"):
        extended_rmse(a, a, a)
    with pytest.raises(ValueError, match="no pixel"):
        extended_rmse(a, a, np.zeros((10, 10), bool))
