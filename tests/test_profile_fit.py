"""The compiled profile fit: analytic Jacobian and recovery of known parameters."""

import math

import numpy as np
import pytest

from pipeline.core.profile_fit import (
    N_PARAMS,
    _evaluate,
    _normal_equations,
    fit_profile,
    profile_model,
)
from pipeline.core.psf import PSFShape, moffat_alpha, moffat_image

PSF = PSFShape(fwhm=3.1, beta=2.7, ellipticity=0.2, angle=0.7, n_stars=0)
SHAPE = np.array([math.cos(PSF.angle), math.sin(PSF.angle),
                  moffat_alpha(PSF.fwhm / math.sqrt(1 - PSF.ellipticity), PSF.beta),
                  moffat_alpha(PSF.fwhm * math.sqrt(1 - PSF.ellipticity), PSF.beta),
                  PSF.beta])


def _pixels(size=15):
    rows, cols = np.mgrid[0:size, 0:size].astype(float)
    half = (size - 1) / 2
    return cols.ravel(), rows.ravel(), cols.ravel() - half, rows.ravel() - half


def test_unit_profile_is_the_psf_image():
    x, y, px, py = _pixels()
    model = profile_model(np.array([1.0, 6.3, 7.8, 0, 0, 0, 1.0]), x, y, px, py, SHAPE,
                          np.empty((0, N_PARAMS)))
    np.testing.assert_allclose(model.reshape(15, 15),
                               moffat_image((15, 15), 6.3, 7.8, 1.0, PSF), rtol=1e-12)


def test_jacobian_matches_finite_differences():
    x, y, px, py = _pixels()
    params = np.array([5.0, 6.3, 7.1, 0.3, 0.1, -0.2, 1.3])
    jacobian = np.empty((x.size, N_PARAMS))
    profile_model(params, x, y, px, py, SHAPE, jacobian)
    none = np.empty((0, N_PARAMS))
    step = 1e-6
    numeric = np.column_stack([
        (profile_model(params + step * e, x, y, px, py, SHAPE, none)
         - profile_model(params - step * e, x, y, px, py, SHAPE, none)) / (2 * step)
        for e in np.eye(N_PARAMS)])
    np.testing.assert_allclose(jacobian, numeric, atol=1e-7 * np.abs(numeric).max())


@pytest.mark.parametrize("free", [range(7), [0, 1, 2, 6], range(6)])
def test_noiseless_source_is_recovered(free):
    x, y, px, py = _pixels()
    truth = np.array([40.0, 7.4, 6.6, 2.0, 0.15, -0.1, 1.6])
    free = np.array(list(free))
    held = np.setdiff1d(np.arange(N_PARAMS), free)
    data = profile_model(truth, x, y, px, py, SHAPE, np.empty((0, N_PARAMS)))
    start = np.array([30.0, 7.0, 7.0, 0.0, 0.0, 0.0, 1.0])
    start[held] = truth[held]
    lower = np.full(free.size, -np.inf)
    upper = np.full(free.size, np.inf)
    fitted, residuals = fit_profile(start, free, lower, upper, x, y, px, py, data,
                                    np.ones_like(data), SHAPE, 200, 1e-14)
    np.testing.assert_allclose(fitted[free], truth[free], rtol=1e-5, atol=1e-6)
    assert np.abs(residuals).max() < 1e-6


def test_bounds_hold_the_fit():
    x, y, px, py = _pixels()
    data = profile_model(np.array([40.0, 7.0, 7.0, 0, 0, 0, 2.0]), x, y, px, py, SHAPE,
                         np.empty((0, N_PARAMS)))
    free = np.array([0, 6])
    fitted, _ = fit_profile(np.array([10.0, 7.0, 7.0, 0, 0, 0, 1.0]), free,
                            np.array([0.0, 0.5]), np.array([np.inf, 1.5]), x, y, px, py,
                            data, np.ones_like(data), SHAPE, 100, 1e-10)
    assert fitted[6] == pytest.approx(1.5)


def test_blended_pair_is_recovered_jointly():
    """Two profiles 1.5 px apart on one plane: the K = 2 model and its Jacobian."""
    x, y, px, py = _pixels()
    truth = np.array([300.0, 6.8, 7.2, 100.0, 8.3, 7.0, 2.0, 0.1, -0.05, 1.0])
    none = np.empty((0, truth.size))
    data = profile_model(truth, x, y, px, py, SHAPE, none)
    jacobian = np.empty((x.size, truth.size))
    profile_model(truth, x, y, px, py, SHAPE, jacobian)
    step = 1e-6
    numeric = np.column_stack([
        (profile_model(truth + step * e, x, y, px, py, SHAPE, none)
         - profile_model(truth - step * e, x, y, px, py, SHAPE, none)) / (2 * step)
        for e in np.eye(truth.size)])
    np.testing.assert_allclose(jacobian, numeric, atol=1e-7 * np.abs(numeric).max())
    start = np.array([250.0, 7.0, 7.0, 50.0, 8.0, 7.5, 0.0, 0.0, 0.0, 1.0])
    free = np.arange(9)
    fitted, _ = fit_profile(start, free, np.full(9, -np.inf), np.full(9, np.inf),
                            x, y, px, py, data, np.ones_like(data), SHAPE, 200, 1e-14)
    np.testing.assert_allclose(fitted, truth, rtol=1e-5, atol=1e-6)


def test_normal_equations_are_those_of_the_jacobian():
    """The fit accumulates J^T J and J^T r pixel by pixel, without the Jacobian."""
    x, y, px, py = _pixels()
    params = np.array([300.0, 6.8, 7.2, 100.0, 8.3, 7.0, 2.0, 0.1, -0.05, 1.2])
    free = np.array([0, 1, 2, 3, 4, 5, 9])
    rng = np.random.default_rng(2)
    weights, residuals = rng.uniform(0.5, 2.0, x.size), rng.normal(0.0, 1.0, x.size)
    profiles = np.empty((x.size, 2))
    _evaluate(params, x, y, px, py, SHAPE, profiles)
    curvature, gradient = np.empty((free.size, free.size)), np.empty(free.size)
    _normal_equations(params, free, x, y, px, py, weights, residuals, SHAPE, profiles,
                      curvature, gradient)
    jacobian = np.empty((x.size, params.size))
    profile_model(params, x, y, px, py, SHAPE, jacobian)
    weighted = jacobian[:, free] * weights[:, None]
    np.testing.assert_allclose(curvature, weighted.T @ weighted, rtol=1e-12)
    np.testing.assert_allclose(gradient, weighted.T @ residuals, rtol=1e-12, atol=1e-9)
