"""destar: remove background stars from astronomical images.

By default (preset ``survey``) the stars are the sources that the image's own PSF fits;
the ``paper`` and ``reference`` presets run Cohen & Lu's asymmetry-driven diffusion.

The public entry point is :func:`remove_stars`.  Layers:

- :mod:`pipeline.core`: the numerical method on NumPy arrays (no I/O, no Dask);
- :mod:`pipeline.tiling`: Dask execution over tiles with halos;
- :mod:`pipeline.io`: FITS, Zarr, xarray and image files;
- :mod:`pipeline.cli`: the ``destar`` command and its configs.
"""

from importlib.metadata import PackageNotFoundError, version

from pipeline.api import remove_stars
from pipeline.core.params import DEFAULT_PRESET, PRESETS, DiffusionParameters
from pipeline.core.remove import diagnose

try:
    __version__ = version("destar")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["remove_stars", "diagnose", "DiffusionParameters", "PRESETS",
           "DEFAULT_PRESET", "__version__"]
