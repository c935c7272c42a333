"""Argument checks shared by every layer: images, real numbers, counts.

Each raises ``TypeError`` for a value of the wrong kind and ``ValueError`` for one of the
right kind out of range, with a message that names the argument.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["real_image", "real_number", "count"]


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
