"""Checkpoints of a running diffusion, so that a killed run can resume.

A checkpoint is a folder beside the output, ``<output>.checkpoint/``, holding the
frame-wide state of the run (the fields of
:attr:`pipeline.core.diffusion.DiffusionRun.STATE_FIELDS`) as Zarr arrays chunked like
the tiles, so every tile writes its own core (also from a cluster worker, given a
shared file system).  Two copies, ``a`` and ``b``, alternate from one save to the
next: a save writes the copy that the last good checkpoint does not use, and only
once every tile has written does :meth:`ZarrCheckpoint.commit` replace
``pointer.json`` (atomically, with ``os.replace``) to name it.  A run killed in the
middle of a save therefore leaves the previous checkpoint intact, and nothing
half-written is ever read.

The pointer also records a fingerprint of the run (input hash, parameters, chunking,
halo); a checkpoint whose fingerprint differs is ignored rather than resumed.

A streamed run (theta from sample blocks, independent tiles) has no shared state: its
:class:`TileCheckpoint` keeps theta's sequence and each finished tile's core, so a
killed run redoes only the tiles it had not finished.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import zarr

__all__ = ["TileCheckpoint", "ZarrCheckpoint", "checkpoint_path"]


def checkpoint_path(output: str | os.PathLike) -> Path:
    """Folder of the checkpoint of the run that writes ``output``."""
    output = Path(output)
    return output.with_name(output.name + ".checkpoint")


class ZarrCheckpoint:
    """Double-buffered Zarr checkpoint of a lockstep run (see the module notes).

    Parameters
    ----------
    path : path-like
        The checkpoint folder (see :func:`checkpoint_path`).
    shape : tuple of int
        Frame shape.
    chunks : tuple of int
        Tile (core) size along each axis, for chunk-aligned writes.
    history : int
        Number of residues in the run's history.
    every : int
        Iterations between saves.
    fingerprint : dict
        JSON-able description of the run; a checkpoint is resumed only by a run with
        the same fingerprint.
    """

    def __init__(self, path, *, shape, chunks, history, every, fingerprint):
        if int(every) < 1:
            raise ValueError(f"checkpoint interval {every} must be >= 1")
        self.path = Path(path)
        self.shape = tuple(int(s) for s in shape)
        self.chunks = tuple(int(c) for c in chunks)
        self.history = int(history)
        self.every = int(every)
        self.fingerprint = json.loads(json.dumps(fingerprint, sort_keys=True))

    # ------------------------------------------------------------------ pointer
    def _pointer(self) -> dict | None:
        return _read_pointer(self.path, self.fingerprint)

    def _write_pointer(self, pointer: dict) -> None:
        _replace_file(self.path / "pointer.json",
                      lambda handle: handle.write(json.dumps(pointer).encode()))

    # ------------------------------------------------------------------ protocol
    def load(self):
        """``(iteration, read)`` of the last complete checkpoint, or ``None``."""
        pointer = self._pointer()
        if pointer is None:
            return None
        group = zarr.open_group(str(self.path / pointer["copy"]), mode="r")

        def read(name, rows, cols):
            return group[name][..., rows, cols]

        return int(pointer["iteration"]), read

    def _copy(self, iteration: int) -> str:
        # Consecutive saves are `every` iterations apart, so they alternate copies.
        return "ab"[(int(iteration) // self.every) % 2]

    def prepare(self, iteration: int, layout) -> None:
        """Create the arrays of the copy that the save at ``iteration`` writes.

        ``layout`` maps each field to ``(leading shape, dtype)``; the frame's two
        axes follow the leading ones.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        group = zarr.open_group(str(self.path / self._copy(iteration)), mode="a")
        for name, (lead, dtype) in layout.items():
            # Uncompressed: a checkpoint is written often and read at most once, and
            # the state's noisy float64 values barely compress.
            group.create_array(name, shape=tuple(lead) + self.shape, dtype=dtype,
                               chunks=tuple(lead) + self.chunks, compressors=None,
                               overwrite=True)

    def write_part(self, iteration: int, core, state) -> None:
        """Write one tile's core state (``core`` = (row0, row1, col0, col1))."""
        group = zarr.open_group(str(self.path / self._copy(iteration)), mode="r+")
        rows, cols = slice(core[0], core[1]), slice(core[2], core[3])
        for name, value in state.items():
            group[name][..., rows, cols] = value

    def commit(self, iteration: int) -> None:
        """Make the save at ``iteration`` the one :meth:`load` returns."""
        self._write_pointer({"iteration": int(iteration), "copy": self._copy(iteration),
                             "fingerprint": self.fingerprint})

    def remove(self) -> None:
        """Delete the checkpoint (after the output is complete)."""
        shutil.rmtree(self.path, ignore_errors=True)

    def iteration(self) -> int | None:
        """Iteration of the last complete checkpoint, if any."""
        pointer = self._pointer()
        return None if pointer is None else int(pointer["iteration"])


def _read_pointer(folder: Path, fingerprint: dict) -> dict | None:
    """``pointer.json`` of ``folder`` if it exists and carries ``fingerprint``."""
    try:
        pointer = json.loads((folder / "pointer.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if pointer.get("fingerprint") != fingerprint:
        return None
    return pointer


def _replace_file(path: Path, write) -> None:
    """Write ``path`` through a temporary file and ``os.replace``: all or nothing."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    with os.fdopen(fd, "wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class TileCheckpoint:
    """Finished tiles of a streamed run (see the module notes).

    ``pointer.json`` holds the fingerprint and theta's sequence; ``tile-R-C.npz``
    the starless core and metrics of the tile whose core starts at row R, column C,
    each written whole or not at all.  Tiles may be saved from cluster workers
    (given a shared file system): the object is a path and a fingerprint.

    Parameters
    ----------
    path : path-like
        The checkpoint folder (see :func:`checkpoint_path`).
    fingerprint : dict
        JSON-able description of the run; only a run with the same fingerprint
        reuses the saved tiles.
    """

    def __init__(self, path, *, fingerprint):
        self.path = Path(path)
        self.fingerprint = json.loads(json.dumps(fingerprint, sort_keys=True))

    def load_thetas(self) -> np.ndarray | None:
        """theta's sequence of this run, if a previous attempt saved it."""
        pointer = _read_pointer(self.path, self.fingerprint)
        if pointer is None:
            return None
        return np.array(pointer["thetas"], float)

    def save_thetas(self, thetas) -> None:
        """Start the checkpoint: drop anything of another run, record theta."""
        if self.path.exists() and _read_pointer(self.path, self.fingerprint) is None:
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        # Python's json keeps NaN (no theta yet) and inf (nothing to protect).
        values = [float(t) for t in np.asarray(thetas, float)]
        pointer = {"fingerprint": self.fingerprint, "thetas": values}
        _replace_file(self.path / "pointer.json",
                      lambda handle: handle.write(json.dumps(pointer).encode()))

    def _tile_path(self, core) -> Path:
        return self.path / f"tile-{int(core[0])}-{int(core[2])}.npz"

    def load_tile(self, core):
        """``(starless core, metrics dict)`` of a finished tile, or ``None``."""
        try:
            with np.load(self._tile_path(core)) as saved:
                return saved["starless"], json.loads(str(saved["metrics"]))
        except (FileNotFoundError, OSError, ValueError, KeyError):
            return None

    def save_tile(self, core, starless, metrics: dict) -> None:
        """Record a finished tile."""
        _replace_file(self._tile_path(core), lambda handle: np.savez(
            handle, starless=starless, metrics=np.array(json.dumps(metrics))))

    def tiles_saved(self) -> int:
        """How many finished tiles the checkpoint holds."""
        return len(list(self.path.glob("tile-*.npz")))

    def remove(self) -> None:
        """Delete the checkpoint (after the output is complete)."""
        shutil.rmtree(self.path, ignore_errors=True)
