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
    cos, sin, alpha_major, alpha_minor, beta = shape
    n_profiles = (params.size - 4) // 3
    sky, slope_x, slope_y, width = params[-4], params[-3], params[-2], params[-1]
    inv_major = 1.0 / (alpha_major * width) ** 2
    inv_minor = 1.0 / (alpha_minor * width) ** 2
    with_jacobian = jacobian.shape[0] == x.size
    model = np.empty(x.size)
    for i in range(x.size):
        value = sky + slope_x * plane_x[i] + slope_y * plane_y[i]
        by_width = 0.0
        for k in range(n_profiles):
            amplitude, x0, y0 = params[3 * k], params[3 * k + 1], params[3 * k + 2]
            dx, dy = x[i] - x0, y[i] - y0
            u = dx * cos + dy * sin
            v = dy * cos - dx * sin
            radius2 = u * u * inv_major + v * v * inv_minor
            base = 1.0 + radius2
            profile = base ** (-beta)
            value += amplitude * profile
            if with_jacobian:
                # d model / d radius2, and radius2's derivatives by x0, y0 and width.
                slope = -2.0 * amplitude * beta * profile / base
                du, dv = u * inv_major, v * inv_minor
                jacobian[i, 3 * k] = profile
                jacobian[i, 3 * k + 1] = slope * (dv * sin - du * cos)
                jacobian[i, 3 * k + 2] = -slope * (du * sin + dv * cos)
                by_width -= slope * radius2 / width
        model[i] = value
        if with_jacobian:
            jacobian[i, -4] = 1.0
            jacobian[i, -3] = plane_x[i]
            jacobian[i, -2] = plane_y[i]
            jacobian[i, -1] = by_width
    return model


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
    no_jacobian = np.empty((0, params.size))
    full_jacobian = np.empty((x.size, params.size))
    residuals = (profile_model(params, x, y, plane_x, plane_y, shape, no_jacobian)
                 - data) * weights
    cost = residuals @ residuals
    damping = 1e-3
    jacobian = np.empty((x.size, n_free))
    trial = params.copy()
    for _ in range(max_iterations):
        profile_model(params, x, y, plane_x, plane_y, shape, full_jacobian)
        for k in range(n_free):
            jacobian[:, k] = full_jacobian[:, free[k]] * weights
        gradient = jacobian.T @ residuals
        curvature = jacobian.T @ jacobian
        scale = np.empty(n_free)
        floor = 1e-12 * max(curvature.max(), 1e-300)
        for k in range(n_free):
            scale[k] = max(curvature[k, k], floor)
        accepted = False
        while damping < 1e10:
            damped = curvature.copy()
            for k in range(n_free):
                damped[k, k] += damping * scale[k]
            step = np.linalg.solve(damped, -gradient)
            trial[:] = params
            for k in range(n_free):
                trial[free[k]] = min(max(params[free[k]] + step[k], lower[k]), upper[k])
            trial_residuals = (profile_model(trial, x, y, plane_x, plane_y, shape,
                                             no_jacobian) - data) * weights
            trial_cost = trial_residuals @ trial_residuals
            if trial_cost < cost:
                accepted = True
                break
            damping *= 10.0
        if not accepted:
            break       # no step lowers the cost: a minimum within the bounds
        improvement = cost - trial_cost
        params[:] = trial
        residuals, cost = trial_residuals, trial_cost
        damping = max(damping / 10.0, 1e-9)
        if improvement <= tolerance * cost:
            break
    return params, residuals
