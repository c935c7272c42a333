"""Compiled least-squares fit of a PSF-shaped profile on a local plane.

The ``survey`` preset fits every source of a frame with the image's own PSF, and
tests many of them against wider and narrower profiles: thousands of fits of seven
parameters over about a hundred pixels each.  A general solver spends most of its
time on per-iteration set-up at that size, so the fit is a small compiled
Levenberg-Marquardt loop instead.

The model of pixel ``i`` at column ``x``, row ``y`` is a sum of ``K`` profiles on one
plane,

.. math::

    m_i = \\sum_k A_k \\left(1 + \\frac{u_k^2}{(w\\alpha_1)^2}
    + \\frac{v_k^2}{(w\\alpha_2)^2}\\right)^{-\\beta} + s + g_x p_x + g_y p_y

with ``(u_k, v_k)`` the offsets from the centre ``(x_k, y_k)`` rotated by the PSF's
position angle, ``alpha_1, alpha_2`` its Moffat core widths along the major and minor
axes, ``w`` a width factor, and ``(p_x, p_y)`` the pixel's offsets from the window's
centre for the plane.  The parameter vector is
``(A_1, x_1, y_1, ..., A_K, x_K, y_K, s, g_x, g_y, w)``: ``K = 1`` is one source,
``K = 2`` a blended pair fitted together.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["N_PARAMS", "fit_profile", "profile_model"]

#: Parameters of one profile on its plane; each further profile adds 3.
N_PARAMS = 7

_JIT = dict(cache=True, nogil=True, error_model="numpy")


@njit(**_JIT)
def profile_model(params, x, y, plane_x, plane_y, shape, jacobian):
    """Model values at the pixels; fills ``jacobian`` (n, params.size) unless it has
    no rows.

    ``shape`` is ``(cos angle, sin angle, alpha_major, alpha_minor, beta)``.
    """
    profiles = np.empty((x.size, (params.size - 4) // 3))
    model = _evaluate(params, x, y, plane_x, plane_y, shape, profiles)
    if jacobian.shape[0] == x.size:
        for i in range(x.size):
            _pixel_derivatives(params, x[i], y[i], plane_x[i], plane_y[i], shape,
                               profiles[i], jacobian[i])
    return model


@njit(**_JIT)
def _evaluate(params, x, y, plane_x, plane_y, shape, profiles):
    """Model values at the pixels, each profile's value (without its amplitude) kept
    in ``profiles`` (n, K): the derivatives need them, and the power is most of the
    cost."""
    beta = shape[4]
    n_profiles = profiles.shape[1]
    sky, slope_x, slope_y = params[-4], params[-3], params[-2]
    inv_major, inv_minor = _inverse_widths(params, shape)
    model = np.empty(x.size)
    for i in range(x.size):
        value = sky + slope_x * plane_x[i] + slope_y * plane_y[i]
        for k in range(n_profiles):
            _, _, radius2 = _offsets(params, k, x[i], y[i], shape, inv_major, inv_minor)
            profiles[i, k] = (1.0 + radius2) ** (-beta)
            value += params[3 * k] * profiles[i, k]
        model[i] = value
    return model


@njit(inline="always", **_JIT)
def _inverse_widths(params, shape):
    width = params[-1]
    return 1.0 / (shape[2] * width) ** 2, 1.0 / (shape[3] * width) ** 2


@njit(inline="always", **_JIT)
def _offsets(params, k, x, y, shape, inv_major, inv_minor):
    """A pixel's offsets ``(u, v)`` from profile ``k``'s centre along the PSF's axes,
    and its scaled squared radius."""
    cos, sin = shape[0], shape[1]
    dx, dy = x - params[3 * k + 1], y - params[3 * k + 2]
    u = dx * cos + dy * sin
    v = dy * cos - dx * sin
    return u, v, u * u * inv_major + v * v * inv_minor


@njit(inline="always", **_JIT)
def _pixel_derivatives(params, x, y, plane_x, plane_y, shape, profiles, derivatives):
    """Fill ``derivatives`` (params.size) of the model at one pixel, whose profile
    values (:func:`_evaluate`) are ``profiles``."""
    cos, sin, beta = shape[0], shape[1], shape[4]
    width = params[-1]
    inv_major, inv_minor = _inverse_widths(params, shape)
    by_width = 0.0
    for k in range(profiles.size):
        u, v, radius2 = _offsets(params, k, x, y, shape, inv_major, inv_minor)
        # d model / d radius2, and radius2's derivatives by x0, y0 and width.
        slope = -2.0 * params[3 * k] * beta * profiles[k] / (1.0 + radius2)
        du, dv = u * inv_major, v * inv_minor
        derivatives[3 * k] = profiles[k]
        derivatives[3 * k + 1] = slope * (dv * sin - du * cos)
        derivatives[3 * k + 2] = -slope * (du * sin + dv * cos)
        by_width -= slope * radius2 / width
    derivatives[-4] = 1.0
    derivatives[-3] = plane_x
    derivatives[-2] = plane_y
    derivatives[-1] = by_width


@njit(**_JIT)
def _normal_equations(params, free, x, y, plane_x, plane_y, weights, residuals, shape,
                      profiles, curvature, gradient):
    """Fill ``curvature`` (J^T J) and ``gradient`` (J^T r) of the weighted Jacobian
    J of the ``free`` parameters, accumulated pixel by pixel (no Jacobian is
    stored), from the profile values of :func:`_evaluate`."""
    n_free = free.size
    derivatives = np.empty(params.size)
    weighted = np.empty(n_free)
    curvature[:, :] = 0.0
    gradient[:] = 0.0
    for i in range(x.size):
        _pixel_derivatives(params, x[i], y[i], plane_x[i], plane_y[i], shape,
                           profiles[i], derivatives)
        for a in range(n_free):
            weighted[a] = derivatives[free[a]] * weights[i]
        for a in range(n_free):
            gradient[a] += weighted[a] * residuals[i]
            for b in range(a + 1):
                curvature[a, b] += weighted[a] * weighted[b]
    for a in range(n_free):
        for b in range(a):
            curvature[b, a] = curvature[a, b]


@njit(**_JIT)
def _solve_positive_definite(matrix, rhs, out):
    """Solve ``matrix @ out = rhs`` by Cholesky factorisation (``matrix``, symmetric,
    is overwritten); ``False`` if it is not positive definite."""
    n = rhs.size
    for j in range(n):
        pivot = matrix[j, j]
        for k in range(j):
            pivot -= matrix[j, k] * matrix[j, k]
        if not pivot > 0.0:
            return False
        matrix[j, j] = np.sqrt(pivot)
        for i in range(j + 1, n):
            total = matrix[i, j]
            for k in range(j):
                total -= matrix[i, k] * matrix[j, k]
            matrix[i, j] = total / matrix[j, j]
    for i in range(n):              # L z = rhs
        total = rhs[i]
        for k in range(i):
            total -= matrix[i, k] * out[k]
        out[i] = total / matrix[i, i]
    for i in range(n - 1, -1, -1):  # L^T out = z
        total = out[i]
        for k in range(i + 1, n):
            total -= matrix[k, i] * out[k]
        out[i] = total / matrix[i, i]
    return True


@njit(**_JIT)
def fit_profile(start, free, lower, upper, x, y, plane_x, plane_y, data, weights,
                shape, max_iterations, tolerance):
    """Fit the parameters ``free`` (indices into ``start``), the others held there.

    Levenberg-Marquardt with Marquardt's scaling of the damping by the curvature's
    diagonal, and steps projected onto ``[lower, upper]`` (one bound per free
    parameter).  Stops when an accepted step lowers the cost by at most
    ``tolerance`` of it, when no damping finds a lower cost, or after
    ``max_iterations``.  Returns the parameters and the weighted residuals.
    """
    params = start.copy()
    n_free = free.size
    for k in range(n_free):
        params[free[k]] = min(max(params[free[k]], lower[k]), upper[k])
    profiles = np.empty((x.size, (params.size - 4) // 3))
    trial_profiles = np.empty_like(profiles)
    residuals = (_evaluate(params, x, y, plane_x, plane_y, shape, profiles)
                 - data) * weights
    cost = residuals @ residuals
    damping = 1e-3
    curvature = np.empty((n_free, n_free))
    gradient = np.empty(n_free)
    damped = np.empty((n_free, n_free))
    step = np.empty(n_free)
    scale = np.empty(n_free)
    trial = params.copy()
    for _ in range(max_iterations):
        _normal_equations(params, free, x, y, plane_x, plane_y, weights, residuals,
                          shape, profiles, curvature, gradient)
        downhill = -gradient
        floor = 1e-12 * max(curvature.max(), 1e-300)
        for k in range(n_free):
            scale[k] = max(curvature[k, k], floor)
        accepted = False
        while damping < 1e10:
            damped[:, :] = curvature
            for k in range(n_free):
                damped[k, k] += damping * scale[k]
            if _solve_positive_definite(damped, downhill, step):
                trial[:] = params
                for k in range(n_free):
                    trial[free[k]] = min(max(params[free[k]] + step[k], lower[k]),
                                         upper[k])
                trial_residuals = (_evaluate(trial, x, y, plane_x, plane_y, shape,
                                             trial_profiles) - data) * weights
                trial_cost = trial_residuals @ trial_residuals
                if trial_cost < cost:
                    accepted = True
                    break
            damping *= 10.0
        if not accepted:
            break   # no step lowers the cost: a minimum, or cut steps stalled on a bound
        improvement = cost - trial_cost
        params[:] = trial
        residuals, cost = trial_residuals, trial_cost
        profiles, trial_profiles = trial_profiles, profiles
        damping = max(damping / 10.0, 1e-9)
        if improvement <= tolerance * cost:
            break
    return params, residuals
