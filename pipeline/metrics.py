"""Image-quality measures of a star-removal result against a known starless truth.

The paper's Table 2 reports MAE, RMSE, PSNR and SSIM of each method's output against
the ground truth (0..255 images, ``data_range=255``).  On synthetic frames where the
star layer and the extended sources are known (see :mod:`pipeline.synthetic`) two more
measures say *what* a method got wrong: :func:`star_flux_left` (how much star light
remains) and :func:`extended_rmse` (how much the galaxies/nebula were damaged).

Pixels that are non-finite in either image (masked data) are left out of every measure.
"""

from __future__ import annotations

import numbers

import numpy as np
from scipy import ndimage as ndi
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from pipeline.core.validation import real_image

__all__ = ["mae", "rmse", "psnr", "ssim", "star_flux_left", "extended_rmse", "summary"]


def _pair(result, truth):
    """Validated float64 views of both images and the mask of pixels finite in both."""
    r = real_image(result, "result")
    t = real_image(truth, "truth")
    if r.shape != t.shape:
        raise ValueError(f"result and truth differ in shape: {r.shape} vs {t.shape}")
    valid = np.isfinite(r) & np.isfinite(t)
    if not valid.any():
        raise ValueError("no pixel is finite in both result and truth")
    return r, t, valid


def _mask(mask, shape, name):
    m = np.asarray(mask)
    if m.dtype != np.bool_:
        raise TypeError(f"{name} must be a boolean array, got dtype {m.dtype}")
    if m.shape != shape:
        raise ValueError(f"{name} has shape {m.shape}, expected {shape}")
    return m


def _check_data_range(data_range):
    if isinstance(data_range, (bool, np.bool_)) or not isinstance(data_range, numbers.Real):
        raise TypeError(f"data_range must be a real number, got {data_range!r}")
    if not np.isfinite(data_range) or data_range <= 0:
        raise ValueError(f"data_range must be a finite number > 0, got {data_range}")
    return float(data_range)


def mae(result, truth):
    """Mean absolute error over the pixels finite in both images.

    Parameters
    ----------
    result, truth : (M, N) array_like
        Processed image and ground truth, same shape.

    Returns
    -------
    float

    References
    ----------
    .. [1] C. J. Willmott and K. Matsuura, "Advantages of the mean absolute error (MAE)
           over the root mean square error (RMSE)", Climate Research 30, 79-82 (2005).
    """
    r, t, valid = _pair(result, truth)
    return float(np.mean(np.abs(r[valid] - t[valid])))


def rmse(result, truth):
    """Root-mean-square error over the pixels finite in both images.

    Parameters
    ----------
    result, truth : (M, N) array_like
        Processed image and ground truth, same shape.

    Returns
    -------
    float

    References
    ----------
    .. [1] Z. Wang and A. C. Bovik, "Mean squared error: love it or leave it?",
           IEEE Signal Processing Magazine 26(1), 98-117 (2009).
    """
    r, t, valid = _pair(result, truth)
    return float(np.sqrt(np.mean((r[valid] - t[valid]) ** 2)))


def psnr(result, truth, *, data_range=255.0):
    """Peak signal-to-noise ratio in dB, ``20 log10(data_range / RMSE)``.

    Computed with :func:`skimage.metrics.peak_signal_noise_ratio` over the pixels finite
    in both images.  A perfect result gives ``inf``.

    Parameters
    ----------
    result, truth : (M, N) array_like
        Processed image and ground truth, same shape.
    data_range : float, optional
        Dynamic range of the images (255 for the paper's 8-bit images).

    Returns
    -------
    float

    References
    ----------
    .. [1] https://en.wikipedia.org/wiki/Peak_signal-to-noise_ratio
    """
    r, t, valid = _pair(result, truth)
    data_range = _check_data_range(data_range)
    with np.errstate(divide="ignore"):  # identical images: log10(x/0) = inf, on purpose
        return float(peak_signal_noise_ratio(t[valid], r[valid], data_range=data_range))


def ssim(result, truth, *, data_range=255.0, win_size=7):
    """Mean structural similarity index (Wang et al. 2004).

    Uses :func:`skimage.metrics.structural_similarity` with its defaults (uniform
    ``win_size`` window), so without masked pixels the value is exactly skimage's.

    Masked pixels: every pixel non-finite in either image is filled in *both* images
    with the nearest valid pixel of that image, the full SSIM map is computed, and the
    mean is taken over the map pixels whose window holds no filled pixel (and, as in
    skimage, not within ``(win_size - 1) // 2`` of the border).  The fill values
    therefore never enter the score.

    Parameters
    ----------
    result, truth : (M, N) array_like
        Processed image and ground truth, same shape, at least ``win_size`` per side.
    data_range : float, optional
        Dynamic range of the images (255 for the paper's 8-bit images).
    win_size : int, optional
        Side of the sliding window, odd.

    Returns
    -------
    float

    References
    ----------
    .. [1] Z. Wang, A. C. Bovik, H. R. Sheikh and E. P. Simoncelli, "Image quality
           assessment: from error visibility to structural similarity", IEEE Trans.
           Image Process. 13(4), 600-612 (2004). :DOI:`10.1109/TIP.2003.819861`
    """
    r, t, valid = _pair(result, truth)
    data_range = _check_data_range(data_range)
    if isinstance(win_size, (bool, np.bool_)) or not isinstance(win_size, numbers.Integral):
        raise TypeError(f"win_size must be an integer, got {win_size!r}")
    if win_size < 3 or win_size % 2 == 0:
        raise ValueError(f"win_size must be an odd integer >= 3, got {win_size}")
    if min(r.shape) < win_size:
        raise ValueError(f"images of shape {r.shape} are smaller than win_size={win_size}")
    if valid.all():
        return float(structural_similarity(r, t, data_range=data_range, win_size=win_size))

    idx = ndi.distance_transform_edt(~valid, return_distances=False, return_indices=True)
    _, smap = structural_similarity(
        r[tuple(idx)], t[tuple(idx)], data_range=data_range, win_size=win_size, full=True
    )
    clean = ~ndi.binary_dilation(~valid, structure=np.ones((win_size, win_size), bool))
    pad = (win_size - 1) // 2
    clean[:pad, :] = clean[-pad:, :] = False
    clean[:, :pad] = clean[:, -pad:] = False
    if not clean.any():
        raise ValueError("no SSIM window is free of masked pixels")
    return float(smap[clean].mean())


def star_flux_left(result, truth, stars_only, *, threshold=None):
    """Fraction of the known star flux still present in the result.

    ``sum(result - truth) / sum(stars_only)``, both sums over the star pixels
    ``stars_only > threshold`` that are finite in all three images.  A perfect star
    removal gives 0, the untouched input (``truth + stars_only``) gives 1; negative
    values mean the method dug holes below the truth.

    Parameters
    ----------
    result, truth : (M, N) array_like
        Processed image and starless ground truth.
    stars_only : (M, N) array_like
        The noise-free star layer that was added to the truth.
    threshold : float, optional
        Star pixels are where ``stars_only`` exceeds this.  Default: 1 % of the peak of
        ``stars_only``, which keeps the PSF cores and drops the faint wings where the
        ratio would be dominated by noise and by the extended sources.

    Returns
    -------
    float

    References
    ----------
    .. [1] M. Cohen and W. Lu, "A diffusion-based method for removing background stars
           from astronomical images", section 4: the synthetic image is a starless truth
           plus a star layer, which is what makes this measure possible.
    """
    r, t, valid = _pair(result, truth)
    s = real_image(stars_only, "stars_only")
    if s.shape != r.shape:
        raise ValueError(f"stars_only has shape {s.shape}, expected {r.shape}")
    valid &= np.isfinite(s)
    if threshold is None:
        peak = np.max(s[valid]) if valid.any() else 0.0
        if peak <= 0:
            raise ValueError("stars_only has no positive pixel: there is no star flux")
        threshold = 0.01 * peak
    elif not isinstance(threshold, numbers.Real) or not np.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    star = valid & (s > threshold)
    total = s[star].sum()
    if not star.any() or total <= 0:
        raise ValueError(f"no star pixel above threshold={threshold}")
    return float((r[star] - t[star]).sum() / total)


def extended_rmse(result, truth, extended_mask):
    """RMSE over the pixels of the extended sources (galaxies, nebula, streaks).

    Parameters
    ----------
    result, truth : (M, N) array_like
        Processed image and ground truth.
    extended_mask : (M, N) array_like of bool
        True on the extended sources.

    Returns
    -------
    float

    See Also
    --------
    rmse
    """
    r, t, valid = _pair(result, truth)
    sel = valid & _mask(extended_mask, r.shape, "extended_mask")
    if not sel.any():
        raise ValueError("extended_mask selects no pixel that is finite in both images")
    return float(np.sqrt(np.mean((r[sel] - t[sel]) ** 2)))


def summary(result, truth, *, stars_only=None, extended_mask=None, data_range=255.0):
    """All measures in one dictionary.

    Parameters
    ----------
    result, truth : (M, N) array_like
        Processed image and ground truth.
    stars_only : (M, N) array_like, optional
        Star layer; adds ``"star_flux_left"``.
    extended_mask : (M, N) array_like of bool, optional
        Extended-source mask; adds ``"extended_rmse"``.
    data_range : float, optional
        Dynamic range for PSNR and SSIM.

    Returns
    -------
    dict
        Keys ``"mae"``, ``"rmse"``, ``"psnr"``, ``"ssim"`` and the optional ones.
    """
    out = {
        "mae": mae(result, truth),
        "rmse": rmse(result, truth),
        "psnr": psnr(result, truth, data_range=data_range),
        "ssim": ssim(result, truth, data_range=data_range),
    }
    if stars_only is not None:
        out["star_flux_left"] = star_flux_left(result, truth, stars_only)
    if extended_mask is not None:
        out["extended_rmse"] = extended_rmse(result, truth, extended_mask)
    return out
