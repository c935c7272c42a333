"""Warning filters that survive the thread-unsafe ``catch_warnings`` of tiles on threads."""

import warnings

import numpy as np
from astropy.stats import sigma_clip
from astropy.utils.exceptions import AstropyUserWarning

from pipeline.tiling import tile_warning_filters


def _two_tiles_interleaved():
    """What two threads do when tile A leaves ``catch_warnings`` while tile B, which
    silenced astropy's warning as photutils' Background2D does, is still clipping."""
    tile_a = warnings.catch_warnings()
    tile_a.__enter__()
    tile_b = warnings.catch_warnings()
    tile_b.__enter__()
    warnings.simplefilter("ignore", AstropyUserWarning)
    tile_a.__exit__(None, None, None)  # restores the list saved before tile B's filter
    try:
        sigma_clip(np.array([np.nan, 1.0, 2.0, 3.0]))
    finally:
        tile_b.__exit__(None, None, None)


def _astropy_warnings(run_tiles) -> list:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_tiles()
    return [w for w in caught if issubclass(w.category, AstropyUserWarning)]


def test_the_interleaving_leaks_the_silenced_warning_without_the_filters():
    assert _astropy_warnings(_two_tiles_interleaved)


def test_the_tile_filters_hold_through_the_interleaving():
    def run_tiles():
        with tile_warning_filters():
            _two_tiles_interleaved()

    assert _astropy_warnings(run_tiles) == []


def test_the_tile_filters_are_removed_on_exit():
    before = list(warnings.filters)
    with tile_warning_filters():
        assert len(warnings.filters) > len(before)
    assert warnings.filters == before
