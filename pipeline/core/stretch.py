"""Frames shown through a known asinh display stretch.

A display image (an 8-bit PNG or JPEG, a colour composite) is often the sky seen
through ``y = K asinh(x / s)`` with its zero at the display's black point: linear near
the sky, logarithmic in the bright stars' cores, which it flattens.  A star's
flattened core is wider than the PSF measured on the faint stars, so the ``survey``
fit keeps part of it.  Knowing the knee ``K`` (in the image's own units), the fit can
run on ``K sinh(y / K)``, which is the linear sky up to a scale that the fit does not
need, and its result be stretched back.

The knee of astropy's ``AsinhStretch(a)`` shown on a white level ``W`` (255 for 8
bits) is ``K = W / asinh(1 / a)``: 85.05 for ``a = 0.1``.  Lupton et al.'s
``asinh(Q x) / Q`` scaled to ``W`` has ``K = W / Q``.

These are plain elementwise functions: they apply as they are to a NumPy array and
to a Dask array's tiles.

References
----------
.. [1] R. H. Lupton, J. E. Gunn and A. S. Szalay, "A modified magnitude system that
   produces well-behaved magnitudes, colors, and errors even for low signal-to-noise
   ratio measurements", AJ 118, 1406-1410 (1999).
.. [2] R. Lupton et al., "Preparing red-green-blue images from CCD data", PASP 116,
   133-137 (2004).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["check_knee", "linearize", "restretch"]

#: ``sinh`` of more than this overflows float64.
_LARGEST_SINH_ARGUMENT = math.asinh(np.finfo(np.float64).max)


def check_knee(image, knee: float) -> None:
    """Raise ``ValueError`` if ``K sinh(y / K)`` overflows for a finite value of
    ``image`` (NumPy, or Dask, which is reduced here): an asinh knee far below the
    image's values is a mistake, as a knee in the wrong units."""
    largest_magnitude = float(np.max(np.where(np.isfinite(image), np.abs(image), 0.0)))
    if largest_magnitude / knee > _LARGEST_SINH_ARGUMENT:
        raise ValueError(
            f"asinh_knee={knee:g} is too small for this image: its largest value "
            f"{largest_magnitude:g} would overflow K sinh(y / K); the knee is in the "
            f"image's units, at least {largest_magnitude / _LARGEST_SINH_ARGUMENT:.3g} "
            "here (85.05 for an 8-bit frame of AsinhStretch(0.1))")


def linearize(image, knee: float):
    """``K sinh(y / K)``: the linear sky behind an asinh-stretched ``image`` (up to a
    scale).  Non-finite pixels stay non-finite."""
    return knee * np.sinh(image.astype(np.float64, copy=False) / knee)


def restretch(starless_linear, linear, image, knee: float):
    """The starless image back through the stretch: ``K asinh(s / K)``, and
    ``image``'s own values wherever the fit left the linear frame as it was, so that
    those pixels come back unchanged to the bit rather than within rounding."""
    return np.where(starless_linear == linear, image,
                    knee * np.arcsinh(starless_linear / knee))
