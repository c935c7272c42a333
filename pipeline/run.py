"""Remove the stars of one image file and write the result: the orchestration layer.

:func:`remove_stars_file` ties :mod:`pipeline.io` (reading, writing, the Zarr store) to
:mod:`pipeline.tiling` (:func:`~pipeline.tiling.run_tiled`: the eager tiled run with
progress, checkpoints and an optional Dask cluster) for one frame.  The ``destar
remove`` command calls it; :func:`run_batch` (``destar run CONFIG``) calls it for every
frame of a config.

Progress, checkpoints and resume
--------------------------------
A tqdm bar over the iterations goes to stderr (``progress=False``: none).  For ``.zarr``
outputs the run's state is saved every ``checkpoint_every`` iterations (default
:func:`default_checkpoint_every`) in ``<output>.checkpoint/``
(:class:`pipeline.io.checkpoint.ZarrCheckpoint`, fingerprinted with the input's SHA-256,
HDU and plane, the parameters, chunks, halo and destar version).  The same call started
again after the process was killed resumes from the last save: an *unfinished* store
or a checkpoint beside the output is the run's own unfinished work, not an existing
output.  The checkpoint is removed only once the store is complete
(``destar_complete``); a complete store is refused without ``overwrite``.

A frame large enough to take theta from sample blocks (``threshold_sample``, see
:mod:`pipeline.tiling.tiles`) streams its tiles instead: the bar first counts the
sample's iterations, then the tiles, and the checkpoint
(:class:`pipeline.io.checkpoint.TileCheckpoint`) keeps theta's sequence and every
finished tile, so the rerun redoes only the unfinished tiles (``tiles_reused`` in the
summary).  Such a run holds the input plane and the tiles in flight in memory, not
the whole frame's state; its tiles run on the cluster's workers when there is one
(which then write the store's chunks: the output must be on a shared file system).

Outputs, by the output's extension
----------------------------------
- ``.zarr``: the result store (:mod:`pipeline.io.store`): ``starless``, ``stars``,
  ``mask``, the per-tile metrics and the provenance (version, parameters, input path
  and SHA-256, chunking, halo, creation time, FITS header).
- ``.fits`` (``.fit``, ``.fts``, ``.fits.gz``): the starless image with the input's
  header (and so its WCS), a HISTORY line and the parameters as ``DS_*`` keywords
  (:data:`FITS_KEYWORDS`).
- ``.tif/.tiff``, ``.npy``: the starless image, floating point (see
  :func:`pipeline.io.write_image`).
- ``.png``, ``.jpg/.jpeg``: a display picture of the starless image.  For 8-bit and
  16-bit integer sources the values are written as they are, rounded and clipped to
  the format's range (a uint8 PNG in gives a comparable uint8 PNG out; see
  :func:`pipeline.io.write_image` for 16 bits).  Any other source (float, wider
  integers) has no natural 0..255 scale, so the starless image is mapped linearly from
  its own 0.5th..99.5th percentile (finite pixels) to 0..255 and clipped; NaN is 0.
  Use FITS, TIFF, NPY or Zarr when the numbers matter.

The input file is only ever read.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import math
import numbers
import os
import sys
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from pipeline.core.params import DEFAULT_PRESET

__all__ = ["remove_stars_file", "format_summary", "frame_chunks", "FITS_KEYWORDS",
           "MAX_SINGLE_CHUNK", "DEFAULT_TILE", "default_checkpoint_every", "run_batch",
           "output_name", "output_is_done", "format_batch_summary"]

#: ``chunk=None`` keeps an axis whole up to this many pixels...
MAX_SINGLE_CHUNK = 4096
#: ...and cuts longer axes into tiles of this size.
DEFAULT_TILE = 2048

#: FITS keywords of the parameters (a field missing here is written as HIERARCH DESTAR).
FITS_KEYWORDS: dict[str, str] = {
    "n_iter": "DS_NITER",
    "gamma": "DS_GAMMA",
    "q": "DS_Q",
    "bavg": "DS_BAVG",
    "segmentation_window": "DS_SEGW",
    "signal_ratio": "DS_SIGR",
    "background_ratio": "DS_BKGR",
    "group_size": "DS_GRPSZ",
    "residue_history": "DS_RHIST",
    "formulation": "DS_FORM",
    "star_model": "DS_STARM",
    "stop": "DS_STOP",
    "asinh_knee": "DS_KNEE",
}

_FIELD_COMMENTS = {
    "n_iter": "diffusion iterations",
    "gamma": "diffusion step size",
    "q": "largest asymmetry scale [px]",
    "bavg": "background level (undefined: measured)",
    "segmentation_window": "signal/background window [px]",
    "signal_ratio": "signal threshold, mean/bavg",
    "background_ratio": "background threshold, mean/bavg",
    "group_size": "protected residue group [px]",
    "residue_history": "residues averaged for the stop",
    "formulation": "enhancement formulation",
    "star_model": "stars told by asymmetry or PSF fit",
    "stop": "n_iter fixed, or a maximum (auto)",
    "asinh_knee": "asinh display knee (undefined: none)",
}

_PICTURE_PERCENTILES = (0.5, 99.5)


# --------------------------------------------------------------------------- chunks
def frame_chunks(shape: tuple[int, int], chunk=None) -> tuple[int, int]:
    """The (rows, columns) chunk size for a frame of ``shape``.

    ``None``: each axis whole up to :data:`MAX_SINGLE_CHUNK` pixels, else tiles of
    :data:`DEFAULT_TILE`.  ``"full"``: one chunk.  An integer: square chunks of that
    side (cut at the frame's edges).
    """
    if chunk is None:
        return tuple(n if n <= MAX_SINGLE_CHUNK else DEFAULT_TILE for n in shape)
    if isinstance(chunk, str):
        if chunk.strip().lower() == "full":
            return tuple(shape)
        raise ValueError(f"chunk={chunk!r}: expected a positive integer, 'full' or None")
    if isinstance(chunk, (bool, np.bool_)) or not isinstance(chunk, numbers.Integral):
        raise TypeError(f"chunk must be a positive integer, 'full' or None, got {chunk!r}")
    if chunk < 1:
        raise ValueError(f"chunk={chunk} must be a positive number of pixels")
    return tuple(min(int(chunk), n) for n in shape)


# --------------------------------------------------------------------------- helpers
def _output_kind(path: Path) -> str:
    from pipeline.io import image_format

    if path.name.lower().endswith(".zarr") and len(path.name) > len(".zarr"):
        return "zarr"
    try:
        return image_format(path)
    except ValueError:
        raise ValueError(f"{path}: unknown output extension (use .zarr, .fits, .tif, "
                         ".png, .jpg or .npy)") from None


def _check_output(output: Path, kind: str, input_path: Path, overwrite: bool) -> None:
    """Fail before the work: missing or unwritable folder, existing output, output == input.

    For a ``.zarr`` output an *unfinished* store (its writer died) is the run's own
    unfinished work and is accepted: the run resumes from its checkpoint and replaces it.
    """
    from pipeline.io.store import store_state

    if not output.parent.is_dir():
        raise FileNotFoundError(f"{output}: output directory {output.parent} does not exist")
    _check_writable(output.parent, f"{output}: output directory")
    try:
        same = output.exists() and os.path.samefile(output, input_path)
    except OSError:
        same = False
    if same:
        raise ValueError(f"{output}: is the input file; choose another output")
    if kind == "zarr":
        resolved_in, resolved_out = input_path.resolve(), output.resolve()
        if resolved_out in resolved_in.parents:
            raise ValueError(f"{output}: the input {input_path} is inside this folder; "
                             "choose another output")
        state = store_state(output)
        if state == "unfinished" or overwrite:
            return
        if state == "complete":
            raise FileExistsError(f"{output}: output exists (a complete destar store); "
                                  "pass overwrite=True (command line: --overwrite) to "
                                  "replace it")
    if (output.exists() or output.is_symlink()) and not overwrite:
        raise FileExistsError(f"{output}: output exists; pass overwrite=True "
                              "(command line: --overwrite) to replace it")


def _check_writable(folder: Path, what: str) -> None:
    """Create and delete a file in ``folder``: the only check that also holds for root."""
    import tempfile

    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".destar-probe-"):
            pass
    except OSError as exc:
        raise PermissionError(f"{what} {folder} is not writable "
                              f"({exc.strerror or type(exc).__name__})") from None


def default_checkpoint_every(n_iter: int) -> int:
    """Iterations between checkpoints when not chosen: ``max(10, n_iter // 4)``.

    A save writes the whole evolving state (about 60 bytes per pixel), so saves are
    kept few: a kill loses at most a quarter of the run.
    """
    return max(10, int(n_iter) // 4)


def _header_string(header) -> str | None:
    if header is None:
        return None
    return header.tostring(sep="\n", endcard=False, padding=False)


def _provenance(meta, params, preset_name, chunks, halo, version) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "title": "destar star removal",
        "destar_version": version,
        "preset": preset_name,
        "parameters": params.in_use(),
        "input_path": str(Path(meta.path).resolve()),
        "input_sha256": meta.sha256,
        "input_format": meta.format,
        "input_dtype": str(meta.dtype),
        "input_shape": list(meta.shape),
        "input_hdu": meta.hdu,
        "input_hdu_name": meta.hdu_name,
        "input_plane": meta.plane,
        "chunks": list(chunks),
        "halo": int(halo),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "stars_definition": "stars = input - starless; stars + starless == input where "
                            "the input is finite (see stars_inexact_pixels); stars is "
                            "NaN and starless the input value where mask is true",
    }
    header = _header_string(meta.header)
    if header is not None:
        attrs["fits_header"] = header
    if meta.warnings:
        attrs["input_warnings"] = list(meta.warnings)
    return attrs


def _fits_keyword(field: str) -> str:
    """The FITS keyword that records a parameter field."""
    return FITS_KEYWORDS.get(field, f"HIERARCH DESTAR {field.upper()}")


def _fits_cards(params, preset_name, chunks, halo, version, meta) -> dict[str, Any]:
    cards: dict[str, Any] = {
        "DS_VERS": (version, "destar version"),
        "DS_PRST": (preset_name, "destar parameter preset"),
    }
    for field, value in params.in_use().items():
        cards[_fits_keyword(field)] = (value, _FIELD_COMMENTS.get(field, field))
    cards["DS_CHUNK"] = ("x".join(str(c) for c in chunks), "Dask tile size [px]")
    cards["DS_HALO"] = (int(halo), "tile halo [px]")
    cards["DS_INSHA"] = (meta.sha256, "")  # 64 hex digits leave no room for a comment
    return cards


def _picture(starless: np.ndarray, source: np.dtype) -> tuple[np.ndarray, np.dtype]:
    """What goes into a PNG/JPEG, and the source dtype to hand to write_image."""
    if source in (np.dtype(np.uint8), np.dtype(np.uint16)):
        return starless, source  # values as they are, rounded and clipped
    finite = starless[np.isfinite(starless)]
    low, high = (np.percentile(finite, _PICTURE_PERCENTILES) if finite.size
                 else (0.0, 1.0))
    scale = 255.0 / (high - low) if high > low else 0.0
    with np.errstate(invalid="ignore"):
        mapped = np.clip((starless - low) * scale, 0.0, 255.0)
    return mapped, np.dtype(np.uint8)


def _progress_bar(progress, total: int | None, label: str, position: int):
    """A tqdm bar over the iterations on stderr (``total=None``: a counter), or
    ``None``."""
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=label, unit="it", file=sys.stderr, position=position,
                leave=position == 0, dynamic_ncols=True, mininterval=0.2)


def _fingerprint(meta, params, chunks, halo, version) -> dict[str, Any]:
    return {"input_sha256": meta.sha256, "hdu": meta.hdu, "plane": meta.plane,
            "shape": list(meta.shape), "parameters": params.as_dict(),
            "chunks": list(chunks), "halo": int(halo), "version": version}


def _remove_unfinished(output: Path) -> None:
    """Best effort: delete a store this run left unfinished (it failed while writing)."""
    import shutil

    from pipeline.io.store import store_state

    if store_state(output) == "unfinished":
        shutil.rmtree(output, ignore_errors=True)


def _warn(message: str) -> None:
    print(f"destar: warning: {message}", file=sys.stderr, flush=True)


#: How many times a run that lost a cluster worker resumes on the workers left.
WORKER_LOSS_RETRIES = 2


def _run_on(client, array, params, *, halo, checkpoint, progress, notify=None):
    """:func:`pipeline.tiling.run_tiled`, resuming on the other workers if one is lost.

    Dask does not retry or move an actor whose worker dies, so this does: when a
    worker is lost and the run has a checkpoint, the tiles are created again on the
    workers that are left and the run resumes from the last save (the result is the
    one an uninterrupted run gives, see the resume tests), up to
    ``WORKER_LOSS_RETRIES`` times; ``notify`` is told in one line.  Without a
    checkpoint, or with no worker left, the loss is one :class:`ClusterError`.
    """
    from pipeline.tiling import run_tiled

    if client is None:
        return run_tiled(array, params, halo=halo, checkpoint=checkpoint,
                         progress=progress, client=None)
    import dask

    from pipeline.cluster import (
        ClusterError,
        cluster_error,
        is_cluster_failure,
        worker_addresses,
    )

    for attempt in range(WORKER_LOSS_RETRIES + 1):
        workers = worker_addresses(client)
        try:
            # The actors find their client as the current one; dask.compute calls (the
            # frame statistics) still run on local threads.
            with client.as_current(), dask.config.set(scheduler="threads"):
                return run_tiled(array, params, halo=halo, checkpoint=checkpoint,
                                 progress=progress, client=client)
        except ClusterError:
            raise
        except Exception as exc:
            if not is_cluster_failure(exc):
                raise
            error = cluster_error(exc, client, workers)
            # An OSError that no lost worker explains (e.g. a full disk under a
            # checkpoint) is reported as itself.
            if not (error.lost or not isinstance(exc, OSError)
                    or "worker" in str(exc).lower()):
                raise
            left = worker_addresses(client)
            if checkpoint is None or not left or attempt == WORKER_LOSS_RETRIES:
                raise error from exc
            if notify is not None:
                who = ", ".join(sorted(error.lost)) or "a Dask worker"
                since = (f"iteration {checkpoint.iteration() or 0}"
                         if hasattr(checkpoint, "iteration") else "the saved tiles")
                notify(f"{who} lost during the run; resuming from {since} on "
                       f"{len(left)} remaining worker{'s' if len(left) > 1 else ''}")


# --------------------------------------------------------------------------- main
def _tile_progress(bar):
    """A Dask callback that advances ``bar`` as local threads finish streamed tiles."""
    from dask.callbacks import Callback

    from pipeline.tiling import STREAMED_TILE_TASK

    def finished(key, result, dsk, state, worker_id):
        name = key[0] if isinstance(key, tuple) else key
        if STREAMED_TILE_TASK in str(name):   # (fused tasks carry it inside their name)
            bar.update(1)

    return Callback(posttask=finished)


def _staged_for(runner, planes, output: Path, *, chunks, kind, stack):
    """The planes staged beside ``output`` for the cluster's workers, or ``None``.

    The workers then read their tiles from there rather than from the frame inside
    the task graph.  A ``.zarr`` store is written by the workers, so its folder is one
    they share; another format is written by this process, whose folder may be its
    own: there the planes are staged only if every worker finds them (else ``None``:
    the frame goes in the graph, as it must).  The staged folders go when ``stack``
    closes.
    """
    from pipeline.cluster import workers_see
    from pipeline.io.staging import staged_frame, staging_path

    colour = len(planes) > 1
    paths = [staging_path(output, index if colour else None)
             for index in range(len(planes))]
    staging = stack.enter_context(contextlib.ExitStack())
    staged = [staging.enter_context(staged_frame(plane, path, chunks=chunks))
              for plane, path in zip(planes, paths)]
    if kind == "zarr" or all(workers_see(runner, path) for path in paths):
        return staged
    staging.close()
    return None


def remove_stars_file(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    preset: str = DEFAULT_PRESET,
    overrides: Mapping[str, Any] | None = None,
    chunk: int | str | None = None,
    hdu: int | str | None = None,
    plane: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    checkpoint_every: int | None = None,
    scheduler: str | None = None,
    cluster: Mapping[str, Any] | None = None,
    client=None,
    progress_position: int = 0,
) -> dict[str, Any]:
    """Remove the stars of one image file and write the result by the output extension.

    Parameters
    ----------
    input_path:
        FITS, TIFF, PNG/JPEG or NPY image (:func:`pipeline.io.read_image`); one 2-D
        plane (choose ``hdu``/``plane`` for multi-extension files and cubes).  A colour
        image's channels are processed one after the other, each on its own as a
        plane (not into ``.zarr``, which holds one plane).
    output_path:
        ``.zarr`` (store with metrics and provenance), ``.fits``, ``.tif/.tiff``,
        ``.png``, ``.jpg/.jpeg`` or ``.npy`` (see the module notes).
    preset, overrides:
        Parameter preset and field overrides, e.g. ``{"n_iter": 100}``.
    chunk:
        ``None`` (default: whole axes up to 4096 px, else 2048-px tiles), ``"full"``
        (one chunk) or a square tile side in pixels: the tiles of the run, the chunks
        of a Zarr output and of its checkpoint.
    overwrite:
        Replace an existing output; otherwise :class:`FileExistsError` before any work
        (except an unfinished ``.zarr`` store: the run's own, resumed).
    progress:
        Show a tqdm bar over the iterations on stderr (``progress_position``: its line,
        for a batch's second bar).
    checkpoint_every:
        Iterations between checkpoints of a ``.zarr`` run (``None``:
        :func:`default_checkpoint_every`; 0: no checkpoint).  Ignored for other formats;
        a streamed run saves every finished tile instead (any value but 0).
    scheduler, cluster, client:
        Where the tiles run (:func:`pipeline.cluster.connect`): a scheduler address, a
        ``cluster:`` section, or an already connected :class:`distributed.Client`.
        Default: in this process.

    Returns
    -------
    dict
        ``input``, ``output``, ``format``, ``shape``, ``chunks``, ``tiles``, ``halo``,
        ``preset``, ``n_iter``, ``seconds`` (wall time, read to write),
        ``mpx_iter_per_s`` (megapixels times iterations per second), ``resumed_from``
        (iteration a checkpoint resumed from, 0 if none), ``tiles_reused`` (finished
        tiles a streamed run's checkpoint held), ``k``, ``bavg``, ``noise``
        (the measured frame values) and, for Zarr, ``stars_inexact_pixels``.

    Raises
    ------
    FileNotFoundError, FileExistsError, PermissionError, ValueError, TypeError, OSError
        Missing input or output folder, existing output, unreadable input (an
        :class:`~pipeline.io.ImageReadError`), bad parameters or chunk, a failed write.
    pipeline.cluster.ClusterError
        Unreachable scheduler or a worker lost during the run.
    """
    start = time.perf_counter()
    import dask
    import dask.array as da

    from pipeline import __version__
    from pipeline.cluster import connect
    from pipeline.core.params import resolve_parameters
    from pipeline.core.validation import validate_image
    from pipeline.io import read_image, split_stars, write_image
    from pipeline.io import store as store_module
    from pipeline.io.checkpoint import TileCheckpoint, ZarrCheckpoint, checkpoint_path
    from pipeline.tiling import default_halo, streams_tiles, tile_warning_filters
    from pipeline.tiling.tiles import measures_noise

    input_path, output = Path(input_path), Path(output_path)
    if not isinstance(preset, str):
        raise TypeError(f"preset must be a preset name, got {type(preset).__name__}")
    params = resolve_parameters(preset, **dict(overrides or {}))
    if chunk is not None:
        frame_chunks((1, 1), chunk)  # validate before reading
    if checkpoint_every is not None and (isinstance(checkpoint_every, bool) or
                                         not isinstance(checkpoint_every, numbers.Integral)
                                         or checkpoint_every < 0):
        raise ValueError(f"checkpoint_every={checkpoint_every!r}: expected an integer "
                         ">= 0 (0: no checkpoints)")
    kind = _output_kind(output)
    _check_output(output, kind, input_path, overwrite)
    if checkpoint_every and kind != "zarr":
        _warn(f"checkpoints are for .zarr outputs only: {output.name} is written once, "
              "at the end, and a killed run starts again from the beginning")

    data, meta = read_image(input_path, hdu=hdu, plane=plane)
    colour = meta.is_rgb
    if colour and kind == "zarr":
        raise ValueError(f"{input_path}: is a colour image of shape {data.shape}; a .zarr "
                         "store holds one plane: write it to .png, .jpg, .tif, .fits or "
                         ".npy, whose channels are processed one by one")
    image = validate_image(data, channel_axis=-1 if colour else None)
    # A colour picture's channels run one after the other, each on its own.
    planes = [image[..., c] for c in range(image.shape[-1])] if colour else [image]
    chunks = frame_chunks(planes[0].shape, chunk)
    arrays = [da.from_array(p, chunks=chunks) for p in planes]
    array = arrays[0]
    n_tiles = math.prod(len(c) for c in array.chunks)
    halo = default_halo(params)

    checkpoint = None
    every = default_checkpoint_every(params.n_iter) if checkpoint_every is None \
        else int(checkpoint_every)
    # A run whose tiles are independent (PSF fitting, or theta from sample blocks)
    # streams them: its checkpoint keeps finished tiles rather than a shared state.
    streamed = streams_tiles(array.shape, params, halo)
    if kind == "zarr" and every > 0:
        fingerprint = _fingerprint(meta, params, chunks, halo, __version__)
        checkpoint = (TileCheckpoint(checkpoint_path(output), fingerprint=fingerprint)
                      if streamed else
                      ZarrCheckpoint(checkpoint_path(output), shape=image.shape,
                                     chunks=chunks, history=params.residue_history,
                                     every=every, fingerprint=fingerprint))

    fitted = params.star_model == "psf"

    def plane_name(index):
        return f"{input_path.name}[{index}]" if colour else input_path.name

    def label(index):
        name = plane_name(index)
        return (f"{name} PSF" if fitted else f"{name} theta sample" if streamed
                else name)

    # (The PSF measurement has no steps to count; the tiles come after it.)
    steps = None if fitted else params.n_iter
    bar = _progress_bar(progress, steps, label(0), progress_position)

    def on_progress(done):
        if bar is not None:
            bar.update(done - bar.n)

    with contextlib.ExitStack() as stack:
        if bar is not None:
            stack.callback(bar.close)
        stack.enter_context(tile_warning_filters())
        runner = client if client is not None else stack.enter_context(
            connect(scheduler, cluster))
        if runner is not None and streamed:
            arrays = _staged_for(runner, planes, output, chunks=chunks, kind=kind,
                                 stack=stack) or arrays
        starless_planes = []
        for index, array in enumerate(arrays):
            if index and bar is not None:
                bar.reset(total=steps)
                bar.set_description(label(index), refresh=False)
                bar.unit = "it"
            # Everything but the tiles stays in this process, even with a cluster
            # client.
            with dask.config.set(scheduler="threads"):
                tiled = _run_on(runner, array, params, halo=halo, checkpoint=checkpoint,
                                progress=on_progress, notify=_warn)
            # Streamed tiles run as they are written: on the cluster's workers if
            # there is one, else on local threads.
            where = runner.get if tiled.streamed and runner is not None else "threads"
            if tiled.streamed and bar is not None:
                bar.reset(total=n_tiles)
                bar.set_description(f"{plane_name(index)} tiles", refresh=False)
                bar.unit = "tile"
                if index == 0:
                    stack.enter_context(_tile_progress(bar))
            if kind == "zarr":
                break   # one plane, written below
            if tiled.streamed:
                with dask.config.set(scheduler=where):
                    starless_planes.append(np.asarray(tiled.starless.compute()))
            else:
                starless_planes.append(np.asarray(tiled.starless))
        summary: dict[str, Any] = {}
        if kind == "zarr":
            starless, stars, mask, inexact = split_stars(array, da.asarray(tiled.starless))
            attrs = _provenance(meta, params, preset, chunks, tiled.halo, __version__)
            attrs["stars_inexact_pixels"] = inexact
            measured = {"bavg": tiled.scalars.bavg, "noise": tiled.scalars.noise}
            if params.bavg is not None:  # given (the reference preset's 46)
                del measured["bavg"]
            if not measures_noise(params):
                del measured["noise"]
            if not fitted:  # k normalises the diffusion's asymmetry only
                measured["k"] = tiled.scalars.k
            attrs["measured"] = measured
            attrs["thetas"] = tiled.thetas
            attrs["resumed_from"] = int(tiled.resumed_from)
            attrs["checkpoint_every"] = (int(every) if checkpoint is not None
                                         and not streamed else 0)
            attrs["tiles_reused"] = int(tiled.tiles_reused)
            if fitted:
                attrs["psf"] = dataclasses.asdict(tiled.psf)
                attrs["psf_seconds"] = float(tiled.sample_seconds)
            else:
                attrs["theta_sample_seconds"] = float(tiled.sample_seconds)
            try:
                with dask.config.set(scheduler=where):
                    store_module.write_store(output, starless, stars, mask, tiled.metrics,
                                             attrs, overwrite=overwrite, resume=True)
            except BaseException:
                _remove_unfinished(output)  # never leave a store that looks like a result
                raise
            if checkpoint is not None:
                checkpoint.remove()  # only now that the store is complete
            summary["stars_inexact_pixels"] = int(
                store_module.open_store(output).attrs["stars_inexact_pixels"])
    if kind != "zarr":
        starless = (np.stack(starless_planes, axis=-1) if colour
                    else starless_planes[0])
        iterations = "" if fitted else f" (n_iter={params.n_iter})"
        history = (f"destar {__version__}: stars removed with preset '{preset}'"
                   f"{iterations} from {input_path.name} sha256 {meta.sha256}")
        if kind in ("png", "jpeg"):
            picture, source = _picture(starless, np.dtype(meta.dtype))
            from dataclasses import replace

            write_image(output, picture, meta=replace(meta, dtype=source),
                        overwrite=overwrite)
        else:
            cards = (_fits_cards(params, preset, chunks, tiled.halo, __version__, meta)
                     if kind == "fits" else None)
            write_image(output, starless, meta=meta, header_cards=cards,
                        history=history if kind == "fits" else None, overwrite=overwrite)

    seconds = time.perf_counter() - start
    megapixels = image.size / 1e6
    summary = {
        "input": str(input_path),
        "output": str(output),
        "format": kind,
        "shape": tuple(int(n) for n in image.shape),
        "chunks": tuple(int(c) for c in chunks),
        "tiles": int(n_tiles) * len(arrays),
        "halo": int(tiled.halo),
        "preset": preset,
        "star_model": params.star_model,
        "n_iter": 0 if fitted else int(params.n_iter),
        "seconds": seconds,
        "mpx_per_s": megapixels / seconds if seconds > 0 else math.inf,
        "mpx_iter_per_s": (math.nan if fitted else megapixels * params.n_iter / seconds
                           if seconds > 0 else math.inf),
        "resumed_from": int(tiled.resumed_from),
        "tiles_reused": int(tiled.tiles_reused),
        "k": tiled.scalars.k,
        "bavg": tiled.scalars.bavg,
        "noise": tiled.scalars.noise,
        **summary,
    }
    return summary


def format_summary(summary: Mapping[str, Any]) -> str:
    """One line for the command line."""
    shape = "x".join(str(n) for n in summary["shape"])
    chunks = "x".join(str(n) for n in summary["chunks"])
    tiles = summary["tiles"]
    line = (f"{summary['input']} -> {summary['output']}: {shape} px, "
            f"{tiles} tile{'s' if tiles != 1 else ''} of {chunks} (halo {summary['halo']}), "
            f"preset {summary['preset']}, "
            + (f"PSF fitted, {summary['seconds']:.2f} s, {summary['mpx_per_s']:.3g} Mpx/s"
               if summary.get("star_model") == "psf" else
               f"n_iter {summary['n_iter']}, {summary['seconds']:.2f} s, "
               f"{summary['mpx_iter_per_s']:.3g} Mpx*iter/s"))
    if summary.get("resumed_from"):
        line += f", resumed from iteration {summary['resumed_from']}"
    if summary.get("tiles_reused"):
        line += f", {summary['tiles_reused']} finished tiles reused"
    inexact = summary.get("stars_inexact_pixels")
    if inexact:
        line += f", stars+starless inexact at {inexact} px"
    return line


# --------------------------------------------------------------------------- batches
def output_name(input_path: str | os.PathLike[str], output_dir: str | os.PathLike[str],
                fmt: str) -> Path:
    """``<output_dir>/<input name without its image extension>.<fmt's extension>``."""
    from pipeline.config import FORMATS
    from pipeline.io.meta import _match_extension

    name = Path(input_path).name
    match = _match_extension(name)
    stem = name[:-len(match[0])] if match else Path(name).stem
    return Path(output_dir) / (stem + FORMATS[fmt])


def output_is_done(output: Path, fmt: str) -> bool:
    """A finished output: a complete store, or an image file (written atomically)."""
    from pipeline.io.store import store_is_complete

    if fmt == "zarr":
        return store_is_complete(output)
    return output.is_file()


def recorded_settings(output: Path, fmt: str) -> dict[str, Any] | None:
    """The preset and parameters that a finished output records, as
    ``{"preset": name, field: value, ...}``: a Zarr store's attributes, a FITS file's
    ``DS_*`` keywords; ``None`` for the formats that record none (NPY, TIFF, PNG,
    JPEG) and for a file that destar did not write."""
    if fmt == "zarr":
        from pipeline.io.store import open_store

        attrs = open_store(output).attrs
        if "preset" not in attrs:
            return None
        return {"preset": attrs["preset"], **attrs.get("parameters", {})}
    if fmt == "fits":
        from astropy.io import fits

        from pipeline.core.params import DiffusionParameters

        header = fits.getheader(output)
        if "DS_PRST" not in header:
            return None
        recorded = {"preset": header["DS_PRST"]}
        for field in dataclasses.fields(DiffusionParameters):
            if _fits_keyword(field.name) in header:
                recorded[field.name] = header[_fits_keyword(field.name)]
        return recorded
    return None


def _settings_differ(recorded: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """``"name: recorded there, wanted here"`` for each setting of ``wanted`` that
    ``recorded`` holds with another value (floats to 1e-9, as a header rounds them)."""
    def same(a, b):
        if isinstance(a, float) or isinstance(b, float):
            return (a is not None and b is not None
                    and math.isclose(float(a), float(b), rel_tol=1e-9))
        return a == b

    return [f"{name}: {recorded[name]!r} there, {value!r} here"
            for name, value in wanted.items()
            if name in recorded and not same(recorded[name], value)]


def _one_line(exc: BaseException) -> str:
    return " ".join((str(exc) or type(exc).__name__).split())


def _batch_frame(input_path, output, options) -> str | None:
    """One frame of a batch (:func:`remove_stars_file` with ``options``): ``None``,
    or why it failed, in one line."""
    from pipeline.cluster import ClusterError

    try:
        remove_stars_file(input_path, output, **options)
    except (ValueError, TypeError, OSError, ClusterError) as exc:
        return _one_line(exc)
    return None


def _frames_side_by_side(frames, options, at_once, finished) -> None:
    """:func:`_batch_frame` of each ``(input, output)`` of ``frames``, ``at_once`` at a
    time in processes of their own; ``finished(input, output, error)`` as each ends."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    # Spawned, not forked: a fork would copy this process's threads (Dask's, a
    # cluster client's) in whatever state they are.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(at_once, len(frames)),
                             mp_context=context) as pool:
        futures = {pool.submit(_batch_frame, f, out, options): (f, out)
                   for f, out in frames}
        try:
            for future in as_completed(futures):
                f, out = futures[future]
                try:
                    error = future.result()
                except BrokenProcessPool:
                    error = ("the process running it ended abruptly (killed, or out of "
                             "memory); its checkpoint, if any, is kept for a rerun")
                finished(f, out, error)
        except BaseException:   # (Ctrl-C): no frame that has not started starts
            pool.shutdown(cancel_futures=True)
            raise


def run_batch(config, *, overwrite: bool = False, progress: bool = True,
              report=None) -> dict[str, Any]:
    """Process every input of a :class:`pipeline.config.RunConfig`.

    Complete outputs are skipped (unless ``overwrite``), but one that records other
    settings (:func:`recorded_settings`: Zarr and FITS) fails its frame, since it is
    no result of this config; a frame that fails is reported in one line through
    ``report(line)`` (default: stderr) and the batch goes on.  The cluster
    (``scheduler``/``cluster``) is connected once for all frames.  With
    ``config.frames_at_once`` above 1, that many frames run side by side, each in a
    process of its own (which connects to the cluster, if any, itself).
    Returns ``{"done", "skipped", "failed": [(input, message)], "seconds", "outputs"}``.
    """
    from pipeline.cluster import connect
    from pipeline.config import ConfigError, expand_inputs

    start = time.perf_counter()
    where = str(config.path) if config.path else "config"
    if not config.inputs:
        raise ConfigError(f"{where}: inputs: no input files given")
    if config.output is None:
        raise ConfigError(f"{where}: output: no output folder given")
    fmt = config.format or "zarr"
    preset = config.preset or DEFAULT_PRESET
    params = config.params()  # validate before any work
    wanted = {"preset": preset, **params.in_use()}
    files = expand_inputs(config.inputs, f"{where}: inputs")
    outputs = [output_name(f, config.output, fmt) for f in files]
    seen: dict[Path, Path] = {}
    for f, out in zip(files, outputs):
        if out in seen:
            raise ConfigError(f"{where}: inputs {seen[out]} and {f} would both write {out}")
        seen[out] = f
        if out.exists() and os.path.samefile(out, f):
            raise ConfigError(f"{where}: output: {out} would be written over its input; "
                              "choose another output folder or format")
    try:
        config.output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(f"{config.output}: cannot create the output folder "
                      f"({exc.strerror or exc})") from None
    _check_writable(config.output, "output folder")

    if report is None:
        def report(line):
            if progress:
                from tqdm import tqdm

                tqdm.write(line, file=sys.stderr)
            else:
                print(line, file=sys.stderr)

    done, skipped, failed, written = 0, 0, [], []
    frames = None
    if progress:
        from tqdm import tqdm

        frames = tqdm(total=len(files), desc="frames", unit="frame", file=sys.stderr,
                      position=0, dynamic_ncols=True)

    def finished(input_path, output, error, *, skip=False):
        nonlocal done, skipped
        if skip:
            skipped += 1
        elif error is None:
            done += 1
            written.append(str(output))
        else:
            failed.append((str(input_path), error))
            report(f"destar: failed: {error}" if str(input_path) in error
                   else f"destar: failed: {input_path}: {error}")
        if frames is not None:
            frames.update(1)

    options = dict(preset=preset, overrides=config.parameters, chunk=config.chunk,
                   hdu=config.hdu, plane=config.plane, overwrite=overwrite,
                   checkpoint_every=config.checkpoint_every)
    at_once = config.frames_at_once or 1
    try:
        with connect(config.scheduler, config.cluster) as client:
            todo = []
            for f, out in zip(files, outputs):
                try:
                    if not overwrite and output_is_done(out, fmt):
                        # A finished output made with other settings is no result of
                        # this config: it is reported, not counted as done.
                        differ = _settings_differ(recorded_settings(out, fmt) or {}, wanted)
                        if differ:
                            raise ValueError(f"{out}: exists, made with other settings "
                                             f"({'; '.join(differ)}); --overwrite "
                                             "recomputes it")
                        finished(f, out, None, skip=True)
                        continue
                except (ValueError, TypeError, OSError) as exc:
                    finished(f, out, _one_line(exc))
                    continue
                todo.append((f, out))
            if at_once == 1 or len(todo) < 2:
                for f, out in todo:
                    finished(f, out, _batch_frame(f, out, dict(
                        options, progress=progress, progress_position=1, client=client)))
            else:
                # Each process connects to the cluster itself; its frame's progress
                # bar would garble the others'.
                address = client.scheduler.address if client is not None else None
                _frames_side_by_side(todo, dict(options, progress=False, scheduler=address),
                                     at_once, finished)
    finally:
        if frames is not None:
            frames.close()
    return {"done": done, "skipped": skipped, "failed": failed,
            "seconds": time.perf_counter() - start, "outputs": written,
            "total": len(files)}


def format_batch_summary(result: Mapping[str, Any]) -> str:
    """One line: done, skipped, failed, time."""
    return (f"{result['total']} frame{'s' if result['total'] != 1 else ''}: "
            f"{result['done']} done, {result['skipped']} skipped, "
            f"{len(result['failed'])} failed, {result['seconds']:.1f} s")


# --------------------------------------------------------------------------- info
def format_store_info(path: str | os.PathLike[str]) -> str:
    """What a complete result store holds, as text (``destar info``)."""
    import json

    from pipeline.io.store import METRIC_COLUMNS, open_store

    ds = open_store(path)
    attrs = dict(ds.attrs)
    lines = [f"{path}: destar store (complete, layout version "
             f"{attrs.get('destar_store_version')})", "", "variables:"]
    for name, var in ds.data_vars.items():
        if var.dims == ("y", "x"):
            chunks = var.encoding.get("chunks")
            chunk_text = "x".join(str(c) for c in chunks) if chunks else "?"
            lines.append(f"  {name:<9} {'x'.join(str(n) for n in var.shape):>11}  "
                         f"{str(var.dtype):<8} chunks {chunk_text}")
    params = attrs.get("parameters", {})
    lines += ["", f"preset: {attrs.get('preset')}",
              "parameters: " + ", ".join(f"{k}={v}" for k, v in params.items())]
    measured = attrs.get("measured") or {}
    lines += [
        "",
        "provenance:",
        f"  destar version  {attrs.get('destar_version')}",
        f"  input           {attrs.get('input_path')}",
        f"  input sha256    {attrs.get('input_sha256')}",
        f"  input           {attrs.get('input_format')} {attrs.get('input_dtype')} "
        f"{'x'.join(str(n) for n in attrs.get('input_shape', []))}"
        + (f", HDU {attrs.get('input_hdu')}" if attrs.get("input_hdu") is not None else "")
        + (f", plane {attrs.get('input_plane')}"
           if attrs.get("input_plane") is not None else ""),
        f"  created         {attrs.get('created')}",
        f"  tiles           {'x'.join(str(c) for c in attrs.get('chunks', []))} px, "
        f"halo {attrs.get('halo')}",
        "  measured        " + (", ".join(f"{k} {measured[k]:.6g}" for k in
                                          ("bavg", "noise", "k") if k in measured)
                                 if measured else "(not recorded)"),
        (f"  stars           PSF fitted (FWHM {attrs['psf']['fwhm']:.3g} px, measured in "
         f"{attrs.get('psf_seconds', 0):.1f} s), tiles streamed" if "psf" in attrs else
         "  theta           " + ("from sample blocks, tiles streamed "
                                  f"({attrs.get('theta_sample_seconds', 0):.1f} s)"
                                  if attrs.get("theta_sample_seconds")
                                  else "from the whole frame, tiles in lockstep")),
        f"  resumed from    iteration {attrs.get('resumed_from', 0)}"
        + (f", {attrs['tiles_reused']} finished tiles reused"
           if attrs.get("tiles_reused") else ""),
        f"  stars inexact   {attrs.get('stars_inexact_pixels')} px",
    ]
    if attrs.get("input_warnings"):
        lines.append(f"  input warnings  {json.dumps(attrs['input_warnings'])}")
    columns = [c for c in METRIC_COLUMNS if c in ds.variables]
    lines += ["", f"per-tile metrics ({ds.sizes.get('tile', 0)} tiles):",
              "  " + "  ".join(f"{c:>16}" if c in ("stopped_fraction", "flux_removed")
                               else f"{c:>10}" for c in columns)]
    table = {c: ds[c].values for c in columns}
    for i in range(ds.sizes.get("tile", 0)):
        cells = []
        for c in columns:
            value = table[c][i]
            width = 16 if c in ("stopped_fraction", "flux_removed") else 10
            cells.append(f"{value:>{width}.6g}" if np.issubdtype(type(value), np.floating)
                         else f"{value:>{width}}")
        lines.append("  " + "  ".join(cells))
    return "\n".join(lines)
