"""A plain, vectorised NumPy + scipy implementation of the reference semantics.

This is the *benchmark baseline*: "a plain vectorised NumPy implementation of the same
semantics" as the authors' code, described step by step in the project's
reference-semantics notes (``../shared/docs/reference-semantics.md``).  It is not package
code and is deliberately free of tricks: whole-array NumPy operations, one thread, no
numba, no tiling.  It is not deliberately slow either: no Python loops over pixels.

Sums are evaluated in the order the reference uses (the four terms of ``A_p`` in the
listed order, the scales ``A_1 + A_2 + ... + A_q`` in order, the residue history
``s_t + s_{t-1} + s_{t-2} + s_{t-3}`` in order), so the output matches the goldens to
the last few ulps.

Usage::

    from numpy_reference import diffuse_reference
    out = diffuse_reference(image, n_iter=200)
"""

from __future__ import annotations

from collections import deque

import numpy as np
from scipy import ndimage

__all__ = ["asymmetry", "multiscale_asymmetry", "local_stop", "diffuse_reference"]

_FULL_3X3 = np.ones((3, 3), dtype=bool)  # 8-connectivity for the residue components


def _mean(x: np.ndarray, size: int) -> np.ndarray:
    """The size x size moving mean of the reference: scipy's uniform_filter, mode 'reflect'."""
    return ndimage.uniform_filter(x, size, mode="reflect")


def asymmetry(image: np.ndarray, p: int) -> np.ndarray:
    """A_p: the four absolute differences at distance p; 1 within p pixels of the edge.

    A_p[i,j] = |I[i+p,j]   - I[i-p,j]|   + |I[i,j-p]   - I[i,j+p]|
             + |I[i+p,j-p] - I[i-p,j+p]| + |I[i+p,j+p] - I[i-p,j-p]|
    """
    h, w = image.shape
    out = np.ones((h, w), dtype=np.float64)
    if h <= 2 * p or w <= 2 * p:  # no interior pixel at this scale
        return out

    rows = slice(p, h - p)  # the interior rows i, p <= i < h-p
    cols = slice(p, w - p)
    south, north = slice(2 * p, h), slice(0, h - 2 * p)  # i+p and i-p
    east, west = slice(2 * p, w), slice(0, w - 2 * p)  # j+p and j-p

    # (((|N-S| + |W-E|) + |SW-NE|) + |SE-NW|), in that order.
    acc = np.abs(image[south, cols] - image[north, cols])
    acc += np.abs(image[rows, west] - image[rows, east])
    acc += np.abs(image[south, west] - image[north, east])
    acc += np.abs(image[south, east] - image[north, west])
    out[rows, cols] = acc
    return out


def multiscale_asymmetry(image: np.ndarray, q: int) -> np.ndarray:
    """a = (A_1 + A_2 + ... + A_q) / q, summed in that order."""
    total = asymmetry(image, 1)
    for p in range(2, q + 1):
        total += asymmetry(image, p)
    return total / q


def local_stop(
    rbar: np.ndarray,
    signal: np.ndarray,
    background: np.ndarray,
    group_size: int,
) -> np.ndarray:
    """B = stop(Rbar): 0 on large residue components (protected), 1 elsewhere.

    ``signal`` marks ratio >= signal_ratio, ``background`` marks ratio < background_ratio.
    """
    positive = np.maximum(rbar, 0.0)
    n_signal = np.count_nonzero(signal)
    # The reference divides by zero here when no pixel is signal; the documented
    # behaviour is theta = +inf, so nothing is protected.
    theta = positive[signal].sum() / n_signal if n_signal else np.inf
    above = positive > theta

    labels, _ = ndimage.label(above, structure=_FULL_3X3)
    sizes = np.bincount(labels.ravel())
    protected = sizes[labels] >= group_size
    protected &= labels > 0  # label 0 is the unlabelled rest, never a component

    stop = np.where(protected, 0.0, 1.0)
    stop[background] = 1.0  # pure background always diffuses
    return stop


def diffuse_reference(
    image,
    *,
    n_iter: int,
    bavg: float = 46.0,
    gamma: float = 0.25,
    q: int = 5,
    group_size: int = 50,
    history: int = 4,
    signal_ratio: float = 2.5,
    background_ratio: float = 1.5,
) -> np.ndarray:
    """Run ``n_iter`` iterations of the reference diffusion; returns a new float64 array.

    The output is not clipped.  Parameters default to the reference code's values.
    """
    img = np.array(image, dtype=np.float64, copy=True)
    if img.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {img.shape}")
    if n_iter < 0:
        raise ValueError("n_iter must be >= 0")

    # Once, before the first iteration.
    k = 2.0 * np.mean(asymmetry(img, 1))
    r0 = _mean(img, 3)
    ratio = _mean(img, 24) / bavg
    signal = ratio >= signal_ratio
    background = ratio < background_ratio
    stop = np.ones_like(img)  # B

    residue_prev = None  # r_{t-1}
    relative = deque(maxlen=history)  # s_t, newest first

    dy = np.empty_like(img)
    dx = np.empty_like(img)
    for t in range(1, n_iter + 1):
        # 1. Forward differences, 0 on the last row / column.
        dy[:-1, :] = img[1:, :] - img[:-1, :]
        dy[-1, :] = 0.0
        dx[:, :-1] = img[:, 1:] - img[:, :-1]
        dx[:, -1] = 0.0

        # 2-4. Enhanced asymmetry and the diffusion coefficient.
        m = _mean(img, 3)
        a = multiscale_asymmetry(img, q)
        if t <= 2:
            e = a * np.exp(m / bavg - 1.0)
        else:
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                e = a * np.exp((m / bavg) / stop - 1.0)
        with np.errstate(invalid="ignore"):
            c = 1.0 / (1.0 + e / k)

        # 5. Fluxes and the explicit update.
        sy = c * dy
        sx = c * dx
        nsy = sy.copy()
        nsy[1:, :] -= sy[:-1, :]
        ewx = sx.copy()
        ewx[:, 1:] -= sx[:, :-1]
        img = img + gamma * (nsy + ewx)

        # 6-7. Residue against the original, and its change.
        residue = np.abs(r0 - _mean(img, 3))
        if residue_prev is not None:
            relative.appendleft(residue - residue_prev)
        residue_prev = residue

        # 8. Local stop from the averaged relative residue, used from the next iteration.
        if len(relative) == history:
            total = relative[0].copy()  # s_t + s_{t-1} + s_{t-2} + s_{t-3}, in that order
            for s in list(relative)[1:]:
                total += s
            stop = local_stop(total / history, signal, background, group_size)

    return img
