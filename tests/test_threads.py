"""Warning filters that survive the thread-unsafe ``catch_warnings`` of tiles on threads."""

import threading
import time
import warnings

import numpy as np
from astropy.stats import sigma_clip
from astropy.utils.exceptions import AstropyUserWarning

from pipeline.core.background import silenced
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


def test_silenced_blocks_on_two_threads_take_turns():
    """The package's own silencing (photutils' Background2D in every tile) cannot
    interleave as above, so it holds when a lazy result is computed outside
    ``tile_warning_filters``: a second thread waits until the first block is left."""
    entered, release, order = threading.Event(), threading.Event(), []

    def tile_a():
        with silenced(AstropyUserWarning):
            order.append("a in")
            entered.set()
            release.wait(5)
            order.append("a out")

    def tile_b():
        entered.wait(5)
        with silenced(AstropyUserWarning):
            order.append("b in")

    threads = [threading.Thread(target=tile_a), threading.Thread(target=tile_b)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)     # (time for tile B to enter, were it not held)
    release.set()
    for thread in threads:
        thread.join(5)
    assert order == ["a in", "a out", "b in"]
