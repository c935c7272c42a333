"""A frame staged on disk, so that a cluster's workers read their own tiles.

A Dask array made from an in-memory frame (``dask.array.from_array``) carries the
whole frame inside its task graph: the client sends it to the scheduler, which hands
it to a worker, and every tile that runs elsewhere copies its window from there (Dask
warns of a "large graph": 16 MiB for a 2048 x 2048 float32 frame).  Staged as a Zarr
array beside the output (``<output>.frame/``, whatever the output's format), the frame
leaves the graph: every task reads its tile's window from the shared file system, which
a cluster run that writes a Zarr store needs anyway, and any worker can still redo any
tile.  (Whether the workers share the folder of another format's output is the run's
to check: ``pipeline.cluster.workers_see``.)

The folder is destar's own (its ``zarr.json`` says so); it is removed when the run
ends, whether it succeeds or fails, and a folder of that name that destar did not
write is never overwritten.

This module belongs to the I/O layer: it does not import :mod:`pipeline.core`,
:mod:`pipeline.tiling` or :mod:`pipeline.cli`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np

__all__ = ["STAGED_ATTR", "staged_frame", "staging_path"]

#: Attribute that marks a Zarr array as a frame destar staged (and may remove).
STAGED_ATTR = "destar_staged_frame"


def staging_path(output: str | os.PathLike, channel: int | None = None) -> Path:
    """Folder of the staged input frame of the run that writes ``output``.

    A colour picture's channels, processed one by one, are staged one each:
    ``<output>.frame0``, ``<output>.frame1``, ...
    """
    output = Path(output)
    suffix = "" if channel is None else str(int(channel))
    return output.with_name(f"{output.name}.frame{suffix}")


def _is_staged_frame(path: Path) -> bool:
    import zarr

    try:
        return bool(zarr.open_array(str(path), mode="r").attrs.get(STAGED_ATTR, False))
    except Exception:  # anything that is not a readable Zarr array is not ours
        return False


@contextlib.contextmanager
def staged_frame(frame: np.ndarray, path: str | os.PathLike, *,
                 chunks: tuple[int, int]) -> Iterator:
    """Write ``frame`` to a Zarr array at ``path`` and yield it as a Dask array.

    Parameters
    ----------
    frame : ndarray
        The 2-D frame, as it is to be processed (masked pixels NaN); it is not
        modified.
    path : path-like
        The folder to write (:func:`staging_path` of the output).  A leftover of a
        killed run is replaced; anything else there is a ``ValueError``.
    chunks : (int, int)
        Chunk shape on disk and of the yielded array (the tiles' cores).

    Yields
    ------
    dask.array.Array
        The frame read back from disk, lazily: its task graph holds the path, not the
        pixels.  The folder is removed on exit.
    """
    import dask.array as da
    import zarr

    frame = np.asarray(frame)
    if frame.ndim != 2:
        raise ValueError(f"expected a 2-D frame to stage, got shape {frame.shape}")
    path = Path(path)
    if path.exists() or path.is_symlink():
        if not _is_staged_frame(path):
            raise ValueError(f"{path}: exists and is not a frame staged by destar; the "
                             "cluster run stages its input there: move it away")
        shutil.rmtree(path)
    try:
        stored = zarr.create_array(str(path), shape=frame.shape, chunks=tuple(chunks),
                                   dtype=frame.dtype, zarr_format=3,
                                   attributes={STAGED_ATTR: True})
        stored[...] = frame
        yield da.from_zarr(str(path), chunks=tuple(chunks))
    finally:
        shutil.rmtree(path, ignore_errors=True)
