"""Tiled execution of the diffusion, invariant to the chunking.

Why the naive design fails, and what this module does instead
--------------------------------------------------------------
Cutting a frame into tiles with a halo of ``q`` pixels and running each tile with its
own statistics changes the result by tens of DN when the chunk size changes (see the
project's tiling notes).  For the chunking not to change the science:

1. **Frame-level statistics come from the frame.**  ``k`` (the asymmetry
   normalisation) is a Dask reduction over the whole frame.  The background level
   and noise are measured on a regular subsample of the frame that does not depend
   on the chunks (:func:`pipeline.core.background.background_stride`).  The signal
   and background maps are 24 x 24 means in frame coordinates, exact in a tile's
   core once the halo exceeds 12 pixels.

2. **The stop threshold theta is the frame's, at every iteration.**  The tiles run in
   *lockstep* (:func:`lockstep_diffuse`): every iteration each tile contributes the
   partial sums of its core, the cores partition the frame, theta is reduced from
   them, and every tile applies it.  Thresholds local to a window or to frame-aligned
   blocks were tried and rejected: they couple every pixel of the window to the
   wrong pixels near a tile's edge, and the error front then advanced about 10 px per
   iteration (a 1536 x 1536 frame, n = 200, 512-px chunks, 160-px halo: 56 DN max
   difference), against about 1.2 px per iteration with the frame's theta.

3. **The halo comes from the iteration count**, not from ``q``.  A wrong pixel at a
   tile's outer edge influences its surroundings a little further at every
   iteration.  Its front was measured to reach about 1.2 px per iteration with the
   frame's theta (first bit-level differences in a core 160 px inside the halo
   after 126 to 175 iterations).  :func:`default_halo` is therefore
   ``1.25 n_iter + 16``, at least 64, rounded up to 8.  The tile-invariance test
   verifies the result (max difference <= 0.5 DN, mean <= 0.01 DN); it is an
   empirical margin, not a proof of exactness.

Lockstep keeps every tile's state in memory at once, about 110 bytes per pixel of
tile plus halo in float64, so its memory grows with the frame.

4. **Large frames stream their tiles.**  With ``threshold_sample`` set (the default
   presets but ``reference``), a frame larger than that many pixels takes theta from
   a fixed grid of sample blocks in frame coordinates
   (:mod:`pipeline.core.sampling`), in the whole-frame run as in the tiled one.  The
   tiled run then has two phases.  First :func:`threshold_sequence` runs only the
   sample blocks, each with the same halo as a tile, in lockstep, and records theta
   at every iteration; by point 3 the blocks' pixels evolve as in the whole frame, so
   this is the whole frame's theta.  Then :func:`stream_tiles` diffuses every tile on
   its own with that known sequence: the tiles share nothing, Dask runs them in any
   order on any worker (and retries a lost one), and only the tiles in flight are in
   memory.  The streamed result equals the whole-frame run's as the lockstep one does
   (tests/test_streamed.py).  The sample costs the blocks' own diffusion (10 s of
   a 60 s run of a 6144 x 6144 frame, see the README) and changes the science only
   through theta, measured in the README's results.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass

import dask
import dask.array as da
import numba
import numpy as np

from pipeline.core import kernels
from pipeline.core.background import background_stride, estimate_background
from pipeline.core.diffusion import (
    DiffusionRun,
    classification_maps,
    statistics_from,
    threshold_from,
)
from pipeline.core.params import DiffusionParameters
from pipeline.core.remove import prepare_plane
from pipeline.core.sampling import threshold_blocks
from pipeline.core.validation import NO_FINITE_PIXEL, count

__all__ = [
    "FIT_HALO",
    "FrameScalars",
    "STREAMED_TILE_TASK",
    "TileMetrics",
    "TiledResult",
    "default_halo",
    "frame_scalars",
    "lockstep_diffuse",
    "measures_noise",
    "remove_stars_dask",
    "run_tiled",
    "sample_grid",
    "stream_tile",
    "stream_tiles",
    "streams_tiles",
    "independent_tiles",
    "checkpointed",
    "threshold_sequence",
    "TiledRun",
]


#: Halo of a PSF-fitting tile in pixels: three background boxes of 32 pixels (see
#: :mod:`pipeline.tiling.fitted`).
FIT_HALO = 96


def default_halo(params: DiffusionParameters) -> int:
    """Halo depth in pixels: :data:`FIT_HALO` for the PSF star model, else from
    ``params.n_iter`` iterations of the diffusion (see the module notes)."""
    if params.star_model == "psf":
        return FIT_HALO
    halo = max(64, math.ceil(1.25 * params.n_iter) + 16)
    return int(math.ceil(halo / 8) * 8)


@dataclass(frozen=True)
class TileMetrics:
    """What happened in one tile's core (bounds in frame pixels, end exclusive)."""

    row_start: int
    row_stop: int
    col_start: int
    col_stop: int
    halo: int
    iterations: int
    stopped_fraction: float
    flux_removed: float
    seconds: float
    #: Sources subtracted as stars in the core (PSF star model; NaN for the diffusion).
    stars_fitted: float = math.nan

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class FrameScalars:
    """Whole-frame values every tile needs: k, background level and noise."""

    k: float
    bavg: float
    noise: float


@dataclass(frozen=True)
class TiledResult:
    """Lazy outputs of a tiled run: the starless frame and the per-tile metrics."""

    starless: da.Array
    metrics: object  # dask.delayed list of TileMetrics, row-major tile order
    halo: int


def _scale1_asymmetry(block: np.ndarray) -> np.ndarray:
    """Scale-1 asymmetry of the finite pixels of ``block``, 0 at masked ones."""
    filled, masked = prepare_plane(block)
    asymmetry = kernels.multiscale_asymmetry(filled, 1)
    if masked is not None:
        asymmetry[masked] = 0.0
    return asymmetry


def measures_noise(params: DiffusionParameters) -> bool:
    """Whether a diffusion run measures the frame's background and noise: all but the
    reference formulation with a given ``bavg``, which needs neither."""
    return not (params.bavg is not None and params.formulation == "reference")


def frame_scalars(array: da.Array, params: DiffusionParameters) -> FrameScalars:
    """k, bavg and noise of a whole Dask frame, independently of its chunks.

    A pixel's scale-1 asymmetry needs its 8 neighbours, and a masked neighbour takes
    the value of its nearest finite pixel, at most one more pixel away: a 2-pixel
    overlap with no padding at the frame's edges gives every finite pixel its
    whole-frame value.  Masked pixels count as flat (as in the whole-frame run).
    ``ValueError`` if no pixel is finite, found in the same pass over the frame.
    """
    a1 = array.map_overlap(_scale1_asymmetry, depth=2, boundary="none",
                           dtype=np.float64, meta=np.empty((0, 0)))
    wanted = [da.isfinite(array).any(), a1.sum()]
    measure = measures_noise(params)
    if measure:
        stride = background_stride(array.shape)
        wanted.append(array[::stride, ::stride])
    computed = dask.compute(*wanted)
    if not computed[0]:
        raise ValueError(NO_FINITE_PIXEL)
    k = 2.0 * float(computed[1]) / array.size
    if not measure:
        return FrameScalars(k=k, bavg=float(params.bavg), noise=0.0)
    level, noise = estimate_background(np.asarray(computed[2], dtype=np.float64))
    if params.bavg is not None:
        level = params.bavg
    elif params.formulation == "reference" and not level > 0:
        raise ValueError(
            f"the measured background is {level:.4g}, but the reference formulation "
            "needs a positive bavg; use the 'paper' preset"
        )
    return FrameScalars(k=k, bavg=float(level), noise=float(noise))


def tile_grid(chunks, shape, halo):
    """``[(core bounds, extended bounds)]`` of every tile, row-major.

    Bounds are ``(row0, row1, col0, col1)`` in frame pixels; the extended block is the
    core plus ``halo`` pixels on every side, cut at the frame's edges (no padding:
    the frame's own edges keep the whole-frame boundary rules).
    """
    return [((r0, r1, c0, c1), _extend((r0, r1, c0, c1), halo, shape))
            for r0, r1 in _edges(chunks[0]) for c0, c1 in _edges(chunks[1])]


def _core_in_block(core, ext):
    return slice(core[0] - ext[0], core[1] - ext[0]), slice(core[2] - ext[2], core[3] - ext[2])


class _Tile:
    """One tile's diffusion state and bookkeeping during a lockstep run."""

    def __init__(self, block, core, ext, params, stats, numba_threads=None, counts=True):
        start = time.perf_counter()
        # Threads of the compiled kernels; "worker" means the hosting Dask worker's
        # thread count.  A worker runs its actors' calls one at a time, so each call
        # may use all of the worker's threads, and no more.
        self.numba_threads = numba_threads
        self.core, self.ext = core, ext
        self.block = np.asarray(block)
        work, self.mask = prepare_plane(self.block)
        _, signal, background = classification_maps(work, stats, params)
        self.inner = _core_in_block(core, ext)
        # The core's pixels count towards theta when the tiles reduce it in lockstep;
        # a tile given the theta sequence counts none.
        counted = np.zeros(work.shape, bool)
        if counts:
            counted[self.inner] = True
        self.run = DiffusionRun(work, params, stats, signal, background,
                                counted=counted, masked=self.mask)
        self.seconds = time.perf_counter() - start

    def _timed(self, method, *args):
        start = time.perf_counter()
        previous = numba.get_num_threads()
        threads = self.numba_threads
        if threads == "worker":
            from distributed import get_worker

            threads = get_worker().state.nthreads
        if threads:
            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        try:
            return method(*args)
        finally:
            numba.set_num_threads(previous)
            self.seconds += time.perf_counter() - start

    def step(self):
        return self._timed(self.run.step)

    def apply_stop(self, theta):
        self._timed(self.run.apply_stop, theta)

    def run_with(self, thetas):
        """Run every iteration with a known theta sequence (``thetas[t - 1]`` at t)."""
        self._timed(self._iterate, thetas)

    def _iterate(self, thetas):
        for theta in thetas:
            self.run.step()
            if self.run.stop_ready:
                self.run.apply_stop(theta)

    def state_layout(self) -> dict:
        """``{field: (leading shape, dtype)}`` of the evolving state."""
        return {name: (array.shape[:-2], array.dtype.str)
                for name, array in self.run.state().items()}

    def save_core(self, checkpoint, iteration) -> None:
        """Write the evolving state over the core into the checkpoint."""
        checkpoint.write_part(iteration, self.core,
                              {name: array[..., self.inner[0], self.inner[1]]
                               for name, array in self.run.state().items()})

    def restore(self, checkpoint) -> int:
        """Load the extended block's state from the last checkpoint; its iteration.

        The halo takes the neighbouring cores' values, that is the frame's state,
        which is what an uninterrupted run's halo approximates.
        """
        iteration, read = checkpoint.load()
        rows, cols = slice(self.ext[0], self.ext[1]), slice(self.ext[2], self.ext[3])
        self.run.restore({name: read(name, rows, cols)
                          for name in DiffusionRun.STATE_FIELDS}, iteration)
        return iteration

    def core_result(self) -> np.ndarray:
        out = self.run.image
        if self.mask is not None:
            out[self.mask] = self.block[self.mask]
        return out[self.inner]

    def metrics(self, halo: int, params: DiffusionParameters) -> TileMetrics:
        block, result = self.block[self.inner], self.core_result()
        finite = np.isfinite(block)
        return TileMetrics(
            row_start=self.core[0], row_stop=self.core[1],
            col_start=self.core[2], col_stop=self.core[3],
            halo=halo, iterations=params.n_iter,
            stopped_fraction=float(np.mean(self.run.stop[self.inner] == 0)),
            flux_removed=float(np.sum(block[finite] - result[finite])),
            seconds=self.seconds,
        )


def _call_all(tiles, method, *args):
    """Call ``method`` on every tile and wait for all the results.

    Tiles are local objects or Dask actors (whose calls return futures): every call
    is issued before the first result is awaited, so actors work in parallel.
    """
    calls = [getattr(tile, method)(*args) for tile in tiles]
    return [call.result() if hasattr(call, "result") else call for call in calls]


def lockstep_diffuse(frame, *, params, scalars, chunks, halo, checkpoint=None,
                     progress=None, client=None):
    """Diffuse the tiles of ``frame`` in lockstep with the frame's stop threshold.

    A plain NumPy function: ``frame`` is the whole 2-D array (or anything sliceable
    into NumPy blocks, such as a Zarr array), ``chunks`` the Dask chunk sizes along
    each axis (the tiles' cores).  Returns ``(starless, metrics)`` with ``metrics`` a
    list of :class:`TileMetrics`.

    Parameters
    ----------
    checkpoint : object, optional
        Resumable runs, e.g. :class:`pipeline.io.checkpoint.ZarrCheckpoint`:
        ``every`` (iterations between saves), ``load()`` (``None`` or
        ``(iteration, read)``), ``prepare(iteration, layout)``,
        ``write_part(iteration, core, state)`` and ``commit(iteration)``, which must
        make a save visible to ``load`` only once every part is written.
    progress : callable, optional
        Called with the number of iterations done, after each iteration.
    client : distributed.Client, optional
        Run each tile as a Dask actor on the client's workers: the tiles' states stay
        on the workers and only the threshold's partial sums travel every iteration.
    """
    starless, metrics, _ = _lockstep(frame, params, scalars, chunks, halo, checkpoint,
                                     progress, client)
    return starless, metrics


def _current(client):
    """Make ``client`` the current one while actors are created and called.

    Actor handles talk to the current client, which need not be the process's
    default one.
    """
    return contextlib.nullcontext() if client is None else client.as_current()


def _lockstep(frame, params, scalars, chunks, halo, checkpoint, progress, client):
    """:func:`lockstep_diffuse`, also returning theta at every iteration."""
    stats = _statistics(params, scalars)
    grid = tile_grid(chunks, frame.shape, halo)
    blocks = [frame[ext[0]:ext[1], ext[2]:ext[3]] for _, ext in grid]
    with _current(client):
        tiles = _start_tiles(blocks, grid, params, stats, client)
        thetas = _iterate_lockstep(tiles, params, checkpoint, progress)
        starless = np.empty(frame.shape)
        for tile, result in zip(grid, _call_all(tiles, "core_result")):
            core = tile[0]
            starless[core[0]:core[1], core[2]:core[3]] = result
        return starless, _call_all(tiles, "metrics", halo, params), thetas


def _statistics(params, scalars):
    return statistics_from(params, k=scalars.k, bavg=scalars.bavg, noise=scalars.noise)


def _start_tiles(blocks, grid, params, stats, client):
    """A :class:`_Tile` per extended block and its ``(core, extended)`` bounds.

    Local objects, or Dask actors on the client's workers.
    """
    if client is None:
        return [_Tile(block, core, ext, params, stats)
                for block, (core, ext) in zip(blocks, grid)]
    futures = [client.submit(_Tile, np.asarray(block), core, ext, params, stats,
                             numba_threads="worker", actor=True, pure=False)
               for block, (core, ext) in zip(blocks, grid)]
    return [future.result() for future in futures]


def _iterate_lockstep(tiles, params, checkpoint, progress):
    """Advance ``tiles`` together to ``n_iter``, reducing theta from their cores.

    Returns the theta of every iteration (NaN before the stop starts).
    """
    thetas = np.full(params.n_iter, np.nan)
    done = 0
    if checkpoint is not None and checkpoint.load() is not None:
        done = _call_all(tiles, "restore", checkpoint)[0]
        if progress is not None:
            progress(done)
    layout = None
    for iteration in range(done + 1, params.n_iter + 1):
        partials = _call_all(tiles, "step")
        if iteration >= params.residue_history + 1:
            theta = threshold_from(sum(p[0] for p in partials),
                                   sum(p[1] for p in partials))
            _call_all(tiles, "apply_stop", theta)
            thetas[iteration - 1] = theta
        if checkpoint is not None and iteration % checkpoint.every == 0 \
                and iteration < params.n_iter:
            layout = layout or _call_all(tiles[:1], "state_layout")[0]
            checkpoint.prepare(iteration, layout)
            _call_all(tiles, "save_core", checkpoint, iteration)
            checkpoint.commit(iteration)
        if progress is not None:
            progress(iteration)
    return thetas


def sample_grid(shape, params, halo):
    """``[(block, extended block)]`` of the theta sample blocks, or ``None``.

    ``None`` when theta comes from the whole frame (:func:`threshold_blocks`); the
    tiles must then run in lockstep.
    """
    blocks = threshold_blocks(shape, params.threshold_sample)
    if blocks is None:
        return None
    return [(block, _extend(block, halo, shape)) for block in blocks]


def _sample_thetas(blocks, grid, params, stats, client, progress):
    """theta at every iteration, from the sample blocks run in lockstep on their own."""
    with _current(client):
        tiles = _start_tiles(blocks, grid, params, stats, client)
        return _iterate_lockstep(tiles, params, None, progress)


def threshold_sequence(frame, *, params, scalars, halo, client=None, progress=None):
    """theta at every iteration (NaN before the stop starts) for a sampled frame.

    Runs only the sample blocks of :func:`sample_grid`, each with ``halo`` pixels of
    the frame around it, in lockstep; their blocks' pixels then evolve as in the whole
    frame (the halo argument of the module notes), so theta is the whole-frame run's.
    ``frame`` is a NumPy or Dask array (only the extended blocks are read).

    Raises
    ------
    ValueError
        If theta comes from the whole frame for this shape and ``params``.
    """
    grid = sample_grid(frame.shape, params, halo)
    if grid is None:
        raise ValueError(f"a {frame.shape[0]} x {frame.shape[1]} frame takes theta from "
                         f"every pixel (threshold_sample={params.threshold_sample}); "
                         "there is no sample to run")
    blocks = [np.asarray(frame[e[0]:e[1], e[2]:e[3]]) for _, e in grid]
    return _sample_thetas(blocks, grid, params, _statistics(params, scalars), client,
                          progress)


#: Prefix of the Dask keys of :func:`stream_tiles`' tile tasks (for progress bars).
STREAMED_TILE_TASK = "destar-tile"


def stream_tile(block, core, ext, params, stats, halo, thetas, numba_threads=None):
    """Diffuse one tile on its own with a known theta sequence: ``(core, metrics)``.

    A plain NumPy function (the per-tile kernel of :func:`stream_tiles`): ``block`` is
    the tile's extended block ``ext`` of the frame, ``core`` its core's bounds.
    """
    tile = _Tile(block, core, ext, params, stats, numba_threads=numba_threads,
                 counts=False)
    tile.run_with(np.asarray(thetas, dtype=np.float64))
    return tile.core_result(), tile.metrics(halo, params)


def _tile_threads(n_tiles):
    """Compiled-kernel threads per tile when the tiles share this machine's cores.

    Tiles run side by side on the scheduler's threads, one core each, which wastes
    nothing on synchronisation; only with fewer tiles than cores does a tile take
    several.
    """
    cores = numba.config.NUMBA_NUM_THREADS
    return max(1, cores // max(1, min(n_tiles, cores)))


def stream_tiles(array, *, params, scalars, halo, thetas, checkpoint=None) -> TiledResult:
    """Lazy tiles of ``array`` (its chunks), each diffused alone with ``thetas``.

    ``thetas`` is the sequence of :func:`threshold_sequence` (or a ``dask.delayed``
    one).  Nothing couples the tiles, so Dask runs them in any order and keeps only
    the ones in flight in memory.  With a ``checkpoint``
    (:class:`pipeline.io.checkpoint.TileCheckpoint`: ``load_tile(core)`` and
    ``save_tile(core, starless, metrics)``), a tile it holds is read instead of
    computed and every computed tile is saved.
    """
    threads = _tile_threads(math.prod(len(c) for c in array.chunks))
    return independent_tiles(
        array, halo=halo, kernel=stream_tile,
        args=(params, _statistics(params, scalars), halo, thetas, threads),
        checkpoint=checkpoint)


def independent_tiles(array, *, halo, kernel, args, checkpoint=None) -> TiledResult:
    """One lazy task per tile of ``array`` (its chunks): ``kernel(block, core, ext,
    *args) -> (core's starless, TileMetrics)`` on the tile's extended block.

    The tasks' keys start with :data:`STREAMED_TILE_TASK`; ``checkpoint`` as for
    :func:`stream_tiles`.
    """
    grid = tile_grid(array.chunks, array.shape, halo)
    run_tile = kernel if checkpoint is None else checkpointed(checkpoint, kernel)
    token = dask.base.tokenize(array, kernel, args, halo, checkpoint)
    parts = {}
    for core, ext in grid:
        block = array[ext[0]:ext[1], ext[2]:ext[3]]
        parts[core] = dask.delayed(run_tile, nout=2, pure=True)(
            block, core, ext, *args,
            dask_key_name=f"{STREAMED_TILE_TASK}-{core[0]}-{core[2]}-{token}")
    rows = []
    for r0, r1 in _edges(array.chunks[0]):
        rows.append([da.from_delayed(parts[(r0, r1, c0, c1)][0], (r1 - r0, c1 - c0),
                                     np.float64, meta=np.empty((0, 0)))
                     for c0, c1 in _edges(array.chunks[1])])
    starless = da.block(rows)
    metrics = dask.delayed(list, pure=True)([parts[core][1] for core, _ in grid])
    return TiledResult(starless=starless, metrics=metrics, halo=halo)


def checkpointed(checkpoint, kernel):
    """``kernel`` (a tile's ``(block, core, ...) -> (core, metrics)``) that reads a
    finished tile from ``checkpoint`` and saves every tile it computes."""
    def run_tile(block, core, *args):
        saved = checkpoint.load_tile(core)
        if saved is not None:
            return saved[0], TileMetrics(**saved[1])
        starless, metrics = kernel(block, core, *args)
        checkpoint.save_tile(core, starless, metrics.as_dict())
        return starless, metrics
    return run_tile


def _edges(sizes):
    edges = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    return list(zip(edges[:-1].tolist(), edges[1:].tolist()))


def _extend(core, halo, shape):
    return (max(core[0] - halo, 0), min(core[1] + halo, shape[0]),
            max(core[2] - halo, 0), min(core[3] + halo, shape[1]))


@dataclass(frozen=True)
class TiledRun:
    """Outputs of :func:`run_tiled`.

    In a lockstep run ``starless`` is an ndarray and ``metrics`` a list, and
    ``resumed_from`` the iteration a checkpoint resumed from (0 if none).  In a
    streamed run (theta from sample blocks) they are a Dask array and a
    ``dask.delayed`` list whose tiles run when they are computed or written, one by
    one, ``tiles_reused`` counts the finished tiles a checkpoint held and
    ``sample_seconds`` is the time the sample blocks (or the PSF of a PSF-fitting
    run, whose ``psf`` it is) took.  ``thetas`` is theta at
    every iteration (NaN before the stop starts).
    """

    starless: object
    metrics: object
    scalars: FrameScalars
    halo: int
    resumed_from: int
    thetas: np.ndarray
    tiles_reused: int = 0
    sample_seconds: float = 0.0
    psf: object = None  # the PSFShape of a PSF-fitting run

    @property
    def streamed(self) -> bool:
        return not isinstance(self.starless, np.ndarray)


def _prepare(array, params, halo):
    """Check a tiled run's input; its halo (default from ``n_iter``) and frame scalars."""
    if array.ndim != 2:
        raise ValueError(f"expected a 2-D array, got shape {array.shape}")
    if params.stop != "fixed":
        # The halo, the lockstep schedule and theta's sequence are all sized by n_iter
        # before the first iteration, so a tile cannot stop when it sees fit.
        raise ValueError(f"stop={params.stop!r}: tiled runs need a fixed n_iter "
                         "(stop='fixed'); run the whole frame as a NumPy array for "
                         "stop='auto'")
    halo = default_halo(params) if halo is None else count(halo, "halo")
    return halo, frame_scalars(array, params)


def run_tiled(array: da.Array, params: DiffusionParameters, *, halo: int | None = None,
              checkpoint=None, progress=None, client=None) -> TiledRun:
    """Run a tiled diffusion with progress, checkpoints and a cluster (batch jobs).

    ``array``'s chunks are the tiles.  Where theta comes from the whole frame the
    tiles run now, in lockstep (:func:`lockstep_diffuse`, which takes
    ``checkpoint``, ``progress`` and ``client``); ``resumed_from`` is the iteration a
    checkpoint resumed from.  Where it comes from sample blocks
    (:func:`sample_grid`), the blocks run now (``progress`` is told their
    iterations) and the tiles are returned lazily (:class:`TiledRun`); its
    ``checkpoint`` is a :class:`pipeline.io.checkpoint.TileCheckpoint` (theta's
    sequence and the finished tiles), since the tiles share no state.

    Raises
    ------
    ValueError
        A lockstep checkpoint for a streamed run.
    """
    if params.star_model == "psf":
        return _run_fitted(array, params, halo, checkpoint)
    halo, scalars = _prepare(array, params, halo)
    if sample_grid(array.shape, params, halo) is not None:
        if checkpoint is not None and not hasattr(checkpoint, "load_tile"):
            raise ValueError("a run that takes theta from sample blocks streams "
                             "independent tiles: its checkpoint keeps tiles "
                             "(TileCheckpoint), not a lockstep state")
        thetas = checkpoint.load_thetas() if checkpoint is not None else None
        reused = 0 if thetas is None else checkpoint.tiles_saved()
        start = time.perf_counter()
        if thetas is None:
            thetas = threshold_sequence(array, params=params, scalars=scalars,
                                        halo=halo, client=client, progress=progress)
            if checkpoint is not None:
                checkpoint.save_thetas(thetas)
        streamed = stream_tiles(array, params=params, scalars=scalars, halo=halo,
                                thetas=thetas, checkpoint=checkpoint)
        return TiledRun(starless=streamed.starless, metrics=streamed.metrics,
                        scalars=scalars, halo=halo, resumed_from=0, thetas=thetas,
                        tiles_reused=reused, sample_seconds=time.perf_counter() - start)
    saved = checkpoint.load() if checkpoint is not None else None
    frame = np.asarray(array.compute())
    starless, metrics, thetas = _lockstep(frame, params, scalars, array.chunks, halo,
                                          checkpoint, progress, client)
    return TiledRun(starless=starless, metrics=metrics, scalars=scalars, halo=halo,
                    resumed_from=0 if saved is None else saved[0], thetas=thetas)


def streams_tiles(shape, params: DiffusionParameters, halo: int) -> bool:
    """Whether a run of this frame shape runs its tiles independently (streamed).

    A PSF star model always does; the diffusion does where theta comes from sample
    blocks (:func:`sample_grid`), else its tiles run in lockstep.
    """
    return params.star_model == "psf" or sample_grid(shape, params, halo) is not None


def _frame_background(array):
    """Background level and noise of a Dask frame from its regular subsample."""
    stride = background_stride(array.shape)
    return estimate_background(np.asarray(array[::stride, ::stride].compute(),
                                          dtype=np.float64))


def _run_fitted(array, params, halo, checkpoint):
    # The PSF model's tiles live in their own module, which builds on this one.
    from pipeline.tiling.fitted import fit_tiles

    if checkpoint is not None and not hasattr(checkpoint, "load_tile"):
        raise ValueError("a PSF-fitting run streams independent tiles: its checkpoint "
                         "keeps tiles (TileCheckpoint), not a lockstep state")
    start = time.perf_counter()
    reused = 0
    if checkpoint is not None:
        reused = checkpoint.tiles_saved() if checkpoint.load_thetas() is not None else 0
        checkpoint.save_thetas(())  # the record of the run that its tiles belong to
    fitted, psf = fit_tiles(array, params, halo=halo, checkpoint=checkpoint)
    bavg, noise = _frame_background(array)
    return TiledRun(starless=fitted.starless, metrics=fitted.metrics,
                    scalars=FrameScalars(k=math.nan, bavg=bavg, noise=noise),
                    halo=fitted.halo, resumed_from=0, thetas=np.empty(0),
                    tiles_reused=reused, sample_seconds=time.perf_counter() - start,
                    psf=psf)


def remove_stars_dask(array: da.Array, params: DiffusionParameters, *,
                      halo: int | None = None) -> TiledResult:
    """Lazy tiled star removal of a 2-D Dask array; its chunks are the tiles.

    The frame-level scalars are computed when this is called (two cheap reductions
    over the frame); the diffusion runs when the result is computed: in lockstep as
    one task where theta comes from the whole frame, else as a task for the sample
    blocks followed by one independent task per tile.  The result has the input's
    chunks and float64 pixels.
    """
    if params.star_model == "psf":
        from pipeline.tiling.fitted import fit_tiles  # see _run_fitted

        return fit_tiles(array, params, halo=halo)[0]
    halo, scalars = _prepare(array, params, halo)
    grid = sample_grid(array.shape, params, halo)
    if grid is not None:
        blocks = [array[e[0]:e[1], e[2]:e[3]] for _, e in grid]
        thetas = dask.delayed(_sample_thetas, pure=True)(
            blocks, grid, params, _statistics(params, scalars), None, None)
        return stream_tiles(array, params=params, scalars=scalars, halo=halo,
                            thetas=thetas)
    starless, metrics = dask.delayed(lockstep_diffuse, nout=2, pure=True)(
        array, params=params, scalars=scalars, chunks=array.chunks, halo=halo)
    starless = da.from_delayed(starless, array.shape, np.float64).rechunk(array.chunks)
    return TiledResult(starless=starless, metrics=metrics, halo=halo)
