"""Argument checks shared by every layer: images, real numbers, counts.

Each raises ``TypeError`` for a value of the wrong kind and ``ValueError`` for one of the
right kind out of range, with a message that names the argument.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["validate_image", "validate_plane", "validate_shape", "validate_dtype",
           "real_image", "real_number", "count", "NO_FINITE_PIXEL", "MIN_SIDE"]

#: What every input path says of an image without a finite pixel.
NO_FINITE_PIXEL = "image has no finite pixel (all NaN or inf)"

#: Smallest side the method's neighbourhoods make sense on.
MIN_SIDE = 3


def real_image(image, name: str = "image", *, copy: bool = False) -> np.ndarray:
    """A 2-D real numeric array as float64 (a copy if ``copy`` or if it must convert)."""
    array = np.asarray(image)
    if np.iscomplexobj(array):
        raise TypeError(f"{name} must be real-valued, got complex dtype {array.dtype}")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise TypeError(f"{name} must be a numeric array, got dtype {array.dtype}")
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got {array.ndim}-D with shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty (shape {array.shape})")
    return array.astype(np.float64, copy=copy)


def real_number(value, name: str, *, positive: bool = False,
                nonnegative: bool = False) -> float:
    """A finite real number (not a bool), optionally > 0 or >= 0."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    if nonnegative and value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return float(value)


def count(value, name: str, *, minimum: int = 0) -> int:
    """An integer (not a bool) of at least ``minimum``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def validate_dtype(dtype) -> None:
    """Raise ``TypeError`` unless ``dtype`` holds real intensities."""
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        raise TypeError("image is complex; star removal needs real-valued intensities")
    if dtype.kind not in "uif":
        raise TypeError(f"image has dtype {dtype}; expected integer or float pixels")


def validate_image(image, *, channel_axis: int | None = None) -> np.ndarray:
    """Check an input image up front and return it as an ndarray (not a copy, but
    for a masked array: a float64 copy, its masked entries NaN).

    Raises
    ------
    TypeError
        For complex, boolean, object or string data, and a non-integer channel_axis.
    ValueError
        For a wrong number of dimensions, an empty or too small image, or one with no
        finite pixel.
    """
    array = _unmasked(image)
    validate_dtype(array.dtype)
    if channel_axis is not None:
        if isinstance(channel_axis, bool) or not isinstance(channel_axis, numbers.Integral):
            raise TypeError(f"channel_axis must be an integer, got {channel_axis!r}")
        if array.ndim != 3:
            raise ValueError(
                f"channel_axis={channel_axis} needs a 3-D array, got {array.ndim}-D "
                f"of shape {array.shape}"
            )
        if not -3 <= channel_axis < 3:
            raise ValueError(f"channel_axis={channel_axis} is out of range for a 3-D array")
        _check_size(array.shape,
                    tuple(s for a, s in enumerate(array.shape) if a != channel_axis % 3))
    else:
        validate_shape(array.shape)
    _check_finite(array)
    return array


def validate_plane(image, *, all_masked: bool = False) -> np.ndarray:
    """The checks of :func:`validate_image` for one 2-D plane (no channel axis);
    ``all_masked`` lets a plane without a finite pixel through (a tile of a frame).
    Returns it as :func:`validate_image` does."""
    array = _unmasked(image)
    validate_dtype(array.dtype)
    if array.ndim != 2:
        raise ValueError(f"image must be 2-D, got {array.ndim}-D with shape {array.shape}")
    _check_size(array.shape, array.shape)
    if not all_masked:
        _check_finite(array)
    return array


def _unmasked(image) -> np.ndarray:
    """``image`` as an ndarray, a masked array's masked entries NaN: they are masked
    data, exactly as NaN pixels are."""
    if np.ma.isMaskedArray(image):
        return image.astype(np.float64).filled(np.nan)
    return np.asarray(image)


def validate_shape(shape) -> None:
    """The checks of :func:`validate_image` that need only the shape of a 2-D image
    (a Dask array's, before any of its data is read): ``ValueError`` for a wrong
    number of dimensions, an empty or a too small image."""
    shape = tuple(shape)
    if len(shape) == 3:
        raise ValueError(
            f"image is 3-D with shape {shape}; pass channel_axis= to process "
            "each channel (e.g. channel_axis=-1 for RGB)"
        )
    if len(shape) != 2:
        raise ValueError(f"image must be 2-D, got {len(shape)}-D with shape {shape}")
    _check_size(shape, shape)


def _check_size(shape, planes_shape) -> None:
    if math.prod(shape) == 0:
        raise ValueError(f"image is empty (shape {tuple(shape)})")
    if min(planes_shape) < MIN_SIDE:
        raise ValueError(
            f"image of shape {tuple(planes_shape)} is too small; each side needs at "
            f"least {MIN_SIDE} pixels"
        )


def _check_finite(array) -> None:
    if array.dtype.kind == "f" and not np.isfinite(array).any():
        raise ValueError(NO_FINITE_PIXEL)
