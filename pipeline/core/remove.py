"""Star removal on NumPy arrays: validation, masked pixels, channels, then the method.

The method is the preset's ``star_model``: the paper's asymmetry-driven diffusion
(:mod:`pipeline.core.diffusion`) or the subtraction of the sources the image's own PSF
fits (:mod:`pipeline.core.starfit`).
"""

from __future__ import annotations

import numbers

import numpy as np
from scipy import ndimage

from pipeline.core.background import estimate_background
from pipeline.core.diffusion import DiffusionResult, diffuse
from pipeline.core.params import DEFAULT_PRESET, DiffusionParameters, resolve_parameters
from pipeline.core.psf import measure_psf
from pipeline.core.sampling import psf_region
from pipeline.core.starfit import NO_DEFINED_PIXEL, fit_and_subtract_stars, saturation_level
from pipeline.core.stretch import check_knee, linearize, restretch
from pipeline.core.validation import validate_image

__all__ = ["remove_stars_array", "diagnose", "prepare_plane", "frame_psf",
           "background_for"]


def prepare_plane(plane: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Return a float64 working copy with masked pixels filled, and the mask.

    Non-finite pixels are masked data.  They are filled with the value of the nearest
    finite pixel, which adds little asymmetry around them, the diffusion exchanges no
    flux with them (see :class:`~pipeline.core.diffusion.DiffusionRun`), and their
    original values are restored after the run, so they neither spread nor leak.
    """
    work = np.array(plane, dtype=np.float64, order="C", copy=True)
    finite = np.isfinite(work)
    if finite.all():
        return work, None
    mask = ~finite
    nearest = ndimage.distance_transform_edt(mask, return_distances=False,
                                             return_indices=True)
    work = np.ascontiguousarray(work[tuple(nearest)])
    return work, mask


def background_for(plane: np.ndarray, params: DiffusionParameters) -> tuple[float, float]:
    """``(bavg, noise)``: the preset's fixed bavg or one measured on the image.

    ``plane`` is the input as given; its non-finite pixels are ignored.
    """
    if params.bavg is not None and params.formulation == "reference":
        return params.bavg, 0.0  # the reference formulation has no use for the noise
    level, noise = estimate_background(plane)
    if params.bavg is not None:
        return params.bavg, noise
    if params.formulation == "reference" and not level > 0:
        raise ValueError(
            f"the measured background is {level:.4g}, but the reference formulation "
            "needs a positive bavg; use the 'paper' preset"
        )
    return level, noise


def _run_plane(plane, params, record) -> DiffusionResult:
    work, mask = prepare_plane(plane)
    bavg, noise = background_for(plane, params)
    reference = _stop_reference(plane, params) if params.stop == "auto" else None
    result = diffuse(work, params, bavg=bavg, noise=noise, masked=mask, record=record,
                     reference=reference)
    if mask is not None:
        result.image[mask] = plane[mask]
    return result


def frame_psf(plane, params):
    """The PSF of a frame, measured on its :func:`~pipeline.core.sampling.psf_region`
    (the tiled run reads only that part).  ``plane`` is NumPy or Dask.

    Raises
    ------
    ValueError
        If no star can be measured, with what to do instead.
    """
    try:
        return measure_psf(np.asarray(plane[psf_region(plane.shape,
                                                       params.threshold_sample)]))
    except ValueError as exc:
        raise ValueError(f"{exc}: a PSF star model needs stars to measure the PSF on; "
                         "the 'paper' preset (the paper's diffusion) needs none") from exc


def _stop_reference(plane, params):
    """The PSF fit's starless image that ``stop="auto"`` steers the diffusion by, or
    ``None`` (the stop then watches the local stop settle) where no PSF can be
    measured."""
    try:
        psf = frame_psf(plane, params)
    except ValueError:
        return None
    return fit_and_subtract_stars(plane, psf=psf,
                                  saturation=_saturation_of(plane)).starless


def _saturation_of(plane) -> float:
    """:func:`~pipeline.core.starfit.saturation_level` of a frame; ``ValueError`` if
    it has no pixel that the PSF star model can use (as the tiled run's
    :func:`pipeline.tiling.fitted.frame_levels`)."""
    level = saturation_level(plane)
    if np.isnan(level):
        raise ValueError(NO_DEFINED_PIXEL)
    return level


def _starless_plane(plane, params) -> np.ndarray:
    if params.star_model != "psf":
        return _run_plane(plane, params, ()).image
    knee = params.asinh_knee
    if knee is not None:
        check_knee(plane, knee)
    linear = plane if knee is None else linearize(plane, knee)
    # (Before the PSF, as in the tiled run: a frame with no pixel to use says so.)
    saturation = _saturation_of(linear)
    starless = fit_and_subtract_stars(linear, psf=frame_psf(linear, params),
                                      saturation=saturation).starless
    return starless if knee is None else restretch(starless, linear, plane, knee)


def remove_stars_array(
    image,
    *,
    preset: str | DiffusionParameters = DEFAULT_PRESET,
    channel_axis: int | None = None,
    **overrides,
) -> np.ndarray:
    """Starless image of a NumPy array (see :func:`pipeline.remove_stars`)."""
    params = resolve_parameters(preset, **overrides)
    array = validate_image(image, channel_axis=channel_axis)
    if channel_axis is None:
        return _starless_plane(array, params)
    planes = np.moveaxis(array, channel_axis, 0)
    out = np.stack([_starless_plane(plane, params) for plane in planes])
    return np.moveaxis(out, 0, channel_axis)


def diagnose(
    image,
    *,
    iterations=(5, 40, 100),
    preset: str | DiffusionParameters = "paper",
    **overrides,
) -> DiffusionResult:
    """Run the diffusion on a 2-D image and keep the paper's intermediate maps.

    Parameters
    ----------
    image : array_like
        2-D image.
    iterations : sequence of int
        Iterations (1-based) at which to record the asymmetry, relative residue and
        stop map.  Iterations beyond ``n_iter`` are not reached and not recorded.
    preset, **overrides
        As for :func:`pipeline.remove_stars`, but ``"paper"`` by default: the maps are
        the diffusion's (a PSF star model has none).

    Returns
    -------
    DiffusionResult
        ``.image`` the starless image, ``.enhancement_ratio`` the ``I_avg/b_avg`` map
        of the segmentation window (Fig. 4), ``.signal`` and ``.background`` the
        classification, and ``.diagnostics[t]`` the maps of iteration ``t`` (Fig. 3,
        5, 6).  Recording costs one asymmetry evaluation per recorded iteration.
    """
    params = resolve_parameters(preset, **overrides)
    if params.star_model != "asymmetry":
        raise ValueError(f"diagnose shows the diffusion's maps; star_model="
                         f"{params.star_model!r} has none (use the 'paper' preset)")
    array = validate_image(image)
    if isinstance(iterations, (str, bytes)) or not np.iterable(iterations) or not all(
            isinstance(t, numbers.Integral) and not isinstance(t, bool)
            for t in iterations):
        raise TypeError(f"iterations must be a sequence of integers, got {iterations!r}")
    record = tuple(int(t) for t in iterations)
    if any(t < 1 for t in record):
        raise ValueError(f"iterations must be >= 1, got {record}")
    return _run_plane(array, params, record)
