"""The public entry points, dispatching on the type of the input."""

from __future__ import annotations

from pipeline.core.params import DEFAULT_PRESET, DiffusionParameters, resolve_parameters
from pipeline.core.remove import remove_stars_array
from pipeline.core.validation import validate_dtype, validate_shape

__all__ = ["remove_stars"]


def remove_stars(
    image,
    *,
    preset: str | DiffusionParameters = DEFAULT_PRESET,
    channel_axis: int | None = None,
    halo: int | None = None,
    **overrides,
):
    """Remove background stars from one image.

    By default (preset ``"survey"``) the stars are fitted with the image's own PSF and
    subtracted.  The ``"paper"`` and ``"reference"`` presets run the paper's
    asymmetry-driven diffusion.  Stars are symmetric blobs: a multi-scale local
    asymmetry singles them out and a diffusion coefficient that falls with the
    asymmetry smooths them away while
    asymmetric structure (edges, the borders of nebulae) is kept.  Thin straight
    streaks are mirror-symmetric about their centre line, like stars, and are blurred
    too (see the streak benchmark).  An enhancement factor slows
    diffusion in bright regions, and a local stop switches it off where large
    connected structures start to appear in the residue of recent iterations.

    Parameters
    ----------
    image : array_like, dask.array.Array or xarray.DataArray
        2-D image (any real dtype).  Non-finite pixels are masked data: they stay as
        they are and exchange no flux with their neighbours.  A Dask array is
        processed tile by tile (its chunks) and the result is lazy, with the same
        chunks; a frame larger than ``threshold_sample`` pixels streams its tiles
        (:mod:`pipeline.tiling.tiles`).  The diffusion presets give the values of the
        whole-frame run; ``survey`` gives them but where a source's star-or-galaxy
        test sits on its threshold and goes the other way in a tile, within a small
        fraction of the noise elsewhere (:mod:`pipeline.tiling.fitted`; tiles much
        smaller than 256 px differ more).
        A DataArray keeps its dims, coords and attrs.
    preset : str or DiffusionParameters, optional
        ``"survey"`` (default): stars are the sources that the image's own PSF fits
        (background, noise and PSF measured on the image; galaxies and trails stay; see
        :mod:`pipeline.core.starfit`); it takes no diffusion override.
        ``"paper"``: the paper's parameters with the background measured on
        the image and a formulation that stays finite on sky-subtracted data; on a
        frame larger than 2048 x 2048 the stop threshold comes from sample blocks
        (:mod:`pipeline.core.sampling`).
        ``"reference"``: the authors' code, reproduced to 1e-9 (bavg = 46).
    channel_axis : int, optional
        If given, ``image`` is 3-D and each channel is processed on its own
        (NumPy input).
    halo : int, optional
        Halo of the tiles of a Dask input, in pixels; by default 96 for ``survey``, else
        from ``n_iter``
        (:func:`pipeline.tiling.default_halo`).
    **overrides
        Any field of :class:`~pipeline.DiffusionParameters`, e.g. ``n_iter=200``,
        ``bavg=46.0``, ``gamma=0.25``.

    Returns
    -------
    ndarray, dask.array.Array or xarray.DataArray of float64
        The starless image, same shape (and type) as ``image``.  ``image - result`` is
        the stars.

    Raises
    ------
    ValueError
        Unknown preset, bad shape, empty or all-NaN image, out-of-range parameter.
    TypeError
        Unknown parameter name, complex or non-numeric image.

    References
    ----------
    .. [1] M. Cohen and W. Lu, "A diffusion-based method for removing background
       stars from astronomical images"; the authors' code,
       https://github.com/maureenjcohen/diffusion-for-stars.
    .. [2] P. Perona and J. Malik, "Scale-space and edge detection using anisotropic
       diffusion", IEEE TPAMI 12(7), 629-639, 1990.
    .. [3] P. B. Stetson, "DAOPHOT: a computer program for crowded-field stellar
       photometry", PASP 99, 191-222, 1987.

    Examples
    --------
    >>> import numpy as np
    >>> from pipeline import remove_stars
    >>> sky = np.full((64, 64), 46.0)
    >>> sky[32, 32] += 200.0
    >>> starless = remove_stars(sky, preset="reference", n_iter=50)
    >>> bool(starless[32, 32] < 100.0)
    True
    """
    if _is_dataarray(image):
        data = remove_stars(image.data, preset=preset, channel_axis=channel_axis,
                            halo=halo, **overrides)
        return image.copy(data=data)
    if _is_dask(image):
        # Imported here: the NumPy path must not pay for Dask's import.
        from pipeline.tiling import remove_stars_dask

        params = resolve_parameters(preset, **overrides)
        if channel_axis is not None:
            raise ValueError("channel_axis is supported for NumPy input only; "
                             "process a Dask cube plane by plane")
        validate_dtype(image.dtype)
        if image.ndim != 2:
            raise ValueError(f"image must be 2-D, got {image.ndim}-D with shape "
                             f"{image.shape}; process a Dask cube plane by plane")
        # (The tiled run checks the halo, and that a pixel is finite in the pass
        # that measures the frame's statistics.)
        validate_shape(image.shape)
        return remove_stars_dask(image, params, halo=halo).starless
    if halo is not None:
        raise TypeError("halo applies to Dask input only")
    return remove_stars_array(image, preset=preset, channel_axis=channel_axis, **overrides)


def _is_dask(image) -> bool:
    return type(image).__module__.startswith("dask.")


def _is_dataarray(image) -> bool:
    return type(image).__name__ == "DataArray" and type(image).__module__.startswith(
        "xarray.")
