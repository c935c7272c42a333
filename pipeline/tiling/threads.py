"""Warning filters that hold while tiles run on threads.

``warnings.catch_warnings`` is not thread-safe: it saves the process's filter list on
entry and restores it on exit.  When two tiles on Dask's threads each silence a
warning that way (photutils' ``Background2D`` silences the one astropy's sigma
clipping raises for the masked pixels it fills with NaN), the tile that finishes first
restores a list without the other's filter, and the other tile's warning reaches the
user although both meant to silence it.  The package's own silencing blocks take turns
(:func:`pipeline.core.background.silenced`, around every ``Background2D``); these
filters also cover any other code that silences warnings that way on the tiles'
threads.  Filters installed before the threads start are in every list saved after, so
no restore removes them.
"""

from __future__ import annotations

import contextlib
import warnings

from astropy.utils.exceptions import AstropyUserWarning

__all__ = ["tile_warning_filters"]

#: Warnings that the per-tile code silences with ``catch_warnings`` itself:
#: ``(category, message regex)``.
SILENCED_PER_TILE = (
    (AstropyUserWarning, "Input data contains invalid values"),
)


@contextlib.contextmanager
def tile_warning_filters():
    """Hold the filters of ``SILENCED_PER_TILE`` while threads run tiles.

    Enter it in the thread that starts the computation, before the threads start;
    the process's filters are restored on exit.
    """
    with warnings.catch_warnings():
        for category, message in SILENCED_PER_TILE:
            warnings.filterwarnings("ignore", message=message, category=category)
        yield
