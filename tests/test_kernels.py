"""The compiled kernels against independent NumPy/SciPy formulations."""

import numpy as np
import pytest
from scipy import ndimage

from pipeline.core import kernels


def _stop_by_scipy(rbar, theta, group_size, background):
    labels, _ = ndimage.label(rbar > theta, structure=np.ones((3, 3)))
    sizes = np.bincount(labels.ravel())
    big = (labels > 0) & (sizes[labels] >= group_size)
    return np.where(big & ~background, 0, 1).astype(np.uint8)


@pytest.mark.parametrize("shape", [(64, 64), (97, 131), (3, 200), (200, 3), (1, 50)])
@pytest.mark.parametrize("density", [0.0, 0.3, 0.55, 0.7, 1.0])
def test_stop_labelling_matches_scipy_label(shape, density):
    rng = np.random.default_rng(sum(shape) + int(density * 100))
    # Smooth the noise so that components of all sizes appear, not only singletons.
    field = ndimage.gaussian_filter(rng.random(shape), 1.0)
    theta = np.quantile(field, 1.0 - density) if 0 < density < 1 else (
        np.inf if density == 0 else -np.inf)
    background = rng.random(shape) < 0.2
    for group_size in (1, 5, 50):
        stop = np.empty(shape, np.uint8)
        kernels.StopLabeller(shape)(np.ascontiguousarray(field), theta, group_size,
                                    background, stop)
        np.testing.assert_array_equal(stop, _stop_by_scipy(field, theta, group_size,
                                                           background))


def test_stop_labelling_joins_diagonal_neighbours_across_blocks():
    # A one-pixel diagonal line crossing the whole frame is one 8-connected component
    # of 100 pixels (4-connectivity would see 100 singletons); it spans every block.
    rbar = np.zeros((100, 100))
    rbar[np.arange(100), np.arange(100)] = 1.0
    stop = np.empty((100, 100), np.uint8)
    labeller = kernels.StopLabeller(rbar.shape)
    labeller.nparts = 4
    labeller(rbar, 0.5, 100, np.zeros((100, 100), bool), stop)
    assert np.all(stop[np.arange(100), np.arange(100)] == 0)
    labeller(rbar, 0.5, 101, np.zeros((100, 100), bool), stop)
    assert np.all(stop == 1)


def _asymmetry_numpy(img, q):
    h, w = img.shape
    total = np.zeros_like(img)
    for p in range(1, q + 1):
        a = np.ones_like(img)
        c = img[p:h - p, p:w - p]
        a[p:h - p, p:w - p] = (
            np.abs(img[2 * p:, p:w - p] - img[:h - 2 * p, p:w - p])
            + np.abs(img[p:h - p, :w - 2 * p] - img[p:h - p, 2 * p:])
            + np.abs(img[2 * p:, :w - 2 * p] - img[:h - 2 * p, 2 * p:])
            + np.abs(img[2 * p:, 2 * p:] - img[:h - 2 * p, :w - 2 * p])
        ) if c.size else a[p:h - p, p:w - p]
        total = total + a
    return total / q


@pytest.mark.parametrize("shape", [(40, 50), (9, 9), (4, 30)])
def test_multiscale_asymmetry_matches_numpy_bit_for_bit(shape):
    img = np.random.default_rng(1).random(shape) * 255
    np.testing.assert_array_equal(kernels.multiscale_asymmetry(img, 5),
                                  _asymmetry_numpy(img, 5))


def test_asymmetry_of_a_symmetric_star_vanishes_at_its_centre():
    y, x = np.mgrid[-10:11, -10:11]
    star = 100.0 * np.exp(-(x**2 + y**2) / 8.0)
    a = kernels.multiscale_asymmetry(star, 5)
    assert a[10, 10] == 0.0
    assert a[10, 13] > 1.0


def test_mean3_matches_scipy_uniform_filter():
    img = np.random.default_rng(2).random((33, 47)) * 1000
    np.testing.assert_allclose(kernels.mean3(img),
                               ndimage.uniform_filter(img, 3, mode="reflect"),
                               rtol=0, atol=1e-12)


def test_vectorised_exp_is_accurate_to_an_ulp_or_two():
    x = np.concatenate([np.linspace(-700, 700, 100001), [0.0, -0.0, 1e-300, 708.9]])
    out = np.empty_like(x)
    kernels._exp_row(x, out, np.empty_like(x))
    np.testing.assert_allclose(out, np.exp(x), rtol=5e-16, atol=0)
    special = np.array([np.inf, -np.inf, np.nan, 1000.0, -1000.0])
    kernels._exp_row(special, out[:5], np.empty(5))
    np.testing.assert_array_equal(out[:5], [np.inf, 0.0, np.nan, np.inf, 0.0])
