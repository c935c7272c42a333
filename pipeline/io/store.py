"""The destar result store: one frame's star removal as a Zarr v3 group.

Readable with plain ``xarray.open_zarr(path)`` (or :func:`open_store`, which also checks
that the store is complete).

Layout
------
Data variables on dims ``("y", "x")``, chunked on disk exactly as the Dask arrays they
were written from (chunk-aligned writes, one Zarr chunk per Dask chunk):

- ``starless`` float64: the star-removed frame.  Masked pixels keep the input's value.
- ``stars`` float64: ``input - starless`` (NaN at masked pixels).
- ``mask`` bool: the input's non-finite pixels (the masked data of the diffusion).

Per-tile metrics on dim ``"tile"`` (row-major tile order, bounds in frame pixels, end
exclusive): ``row_start, row_stop, col_start, col_stop, halo, iterations`` (int64) and
``stopped_fraction, flux_removed, seconds, stars_fitted`` (float64; NaN where the
preset's star model has no such number).

Root attributes: whatever the caller passes (destar's provenance: version, parameters,
input path and SHA-256, chunking, halo, FITS header, ...), plus ``destar_store_version``
and, written last of all, ``destar_complete = true``.

Exactness of ``stars + starless == input``
------------------------------------------
:func:`split_stars` builds the two stored arrays so that ``stars + starless`` recomputes
the input exactly (float64 arithmetic, as NumPy does on the stored arrays) wherever the
input is finite and such a pair of float64 numbers exists.  A plain ``stars = x - s``
is not enough: ``(x - s) + s`` differs from ``x`` whenever the subtraction rounds (e.g.
``0.1 - 0.3 + 0.3``).  So the starless value is first *snapped*: ``s' = x - (x - s)``
(each step rounded), which moves it by at most half a float64 ulp of ``stars`` per
step (~1e-16 of ``max(|x|, |s|)``) and makes ``x - s'`` exact in the cases that matter;
this is repeated once more where needed.
Both arrays are stored in float64, never float32: float32 storage would round the
starless image (losing agreement with :func:`pipeline.remove_stars`) and its difference
to a float32 input would not be exact either.

Inputs whose values fit in float32 (8/16-bit integers, float32: FITS BITPIX 8, 16, -32,
PNG, JPEG, most TIFF) came out exact on every frame tried; by a bit count an exception
needs a starless value some 2**28 times larger than the input pixel.  For
float64 inputs an exact pair does not always exist (e.g. a pixel of 1e-17 under a
starless value of 1: no float64 ``stars`` can hold ``1e-17 - 1``); this happens mostly
on sky-subtracted float64 data where ``|starless| > 2 |input|``.  There the stored
``stars`` is the rounded difference (error about one ulp of ``max(|stars|, |starless|)``) and
the number of such pixels is recorded in the attribute ``stars_inexact_pixels`` (0 means
exact everywhere finite).

Completion
----------
``destar_complete`` is written after every chunk, the metrics and the other attributes,
so a store whose writer died half-way is never taken as done: :func:`open_store` refuses
it and :func:`store_is_complete` says ``False``.

This module belongs to the I/O layer: it does not import :mod:`pipeline.core`,
:mod:`pipeline.tiling` or :mod:`pipeline.cli`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "COMPLETE_ATTR",
    "METRIC_COLUMNS",
    "STORE_VERSION",
    "open_store",
    "split_stars",
    "store_is_complete",
    "store_state",
    "write_store",
]

#: Root attribute that marks a store as fully written; set last.
COMPLETE_ATTR = "destar_complete"

#: Version of this layout, stored as ``destar_store_version``.
STORE_VERSION = 1

#: The per-tile metric columns, in order, and their stored dtypes.
METRIC_COLUMNS: dict[str, str] = {
    "row_start": "int64",
    "row_stop": "int64",
    "col_start": "int64",
    "col_stop": "int64",
    "halo": "int64",
    "iterations": "int64",
    "stopped_fraction": "float64",
    "flux_removed": "float64",
    "seconds": "float64",
    "stars_fitted": "float64",
}

_DIMS = ("y", "x")


# --------------------------------------------------------------------------- stars split
def _split_block(image: np.ndarray, starless: np.ndarray):
    x = np.asarray(image, dtype=np.float64)
    s = np.array(starless, dtype=np.float64)  # a copy: snapped in place below
    finite = np.isfinite(x)
    with np.errstate(invalid="ignore", over="ignore"):
        for _ in range(2):  # one snap fixes nearly everything; a second catches the rest
            stars = x - s
            bad = finite & (stars + s != x)
            if not bad.any():
                break
            s[bad] = x[bad] - stars[bad]
        stars = x - s
        inexact = int(np.count_nonzero(finite & (stars + s != x)))
    stars[~finite] = np.nan
    return s, stars, inexact


def _snapped_starless_block(x, s):
    return _split_block(x, s)[0]


def _stars_block(x, s):
    return _split_block(x, s)[1]


def _inexact_block(x, s):
    return np.full((1, 1), _split_block(x, s)[2], dtype=np.int64)


def split_stars(image, starless):
    """``(starless, stars, mask, inexact)`` to store, with ``stars + starless == image``.

    ``image`` and ``starless`` are NumPy or Dask arrays of the same shape (Dask: the
    results are lazy with ``image``'s chunks).  ``starless`` is snapped by float64
    rounding-level amounts so that the sum is exact where finite (see the module notes);
    ``stars`` is NaN at the input's non-finite pixels; ``mask`` is ``~isfinite(image)``;
    ``inexact`` counts the finite pixels where no exact float64 pair exists (an int, or
    a lazy Dask scalar for Dask input).
    """
    if _is_dask(image) or _is_dask(starless):
        import dask.array as da

        image = da.asarray(image)
        starless = da.asarray(starless)
        if image.shape != starless.shape:
            raise ValueError(f"image shape {image.shape} != starless shape {starless.shape}")
        starless = starless.rechunk(image.chunks)

        # Three cheap elementwise passes (the snap is recomputed in each) rather than
        # one stacked array: every output keeps the input's chunks.
        kwargs = dict(dtype=np.float64, meta=np.empty((0, 0)))
        out_starless = da.map_blocks(_snapped_starless_block, image, starless,
                                     token="destar-starless", **kwargs)
        stars = da.map_blocks(_stars_block, image, starless, token="destar-stars",
                              **kwargs)
        counts = da.map_blocks(_inexact_block, image, starless,
                               chunks=tuple((1,) * len(c) for c in image.chunks),
                               token="destar-stars-inexact", dtype=np.int64,
                               meta=np.empty((0, 0), dtype=np.int64))
        inexact = counts.sum()
        mask = ~da.isfinite(image)
        return out_starless, stars, mask, inexact
    image = np.asarray(image)
    starless = np.asarray(starless)
    if image.shape != starless.shape:
        raise ValueError(f"image shape {image.shape} != starless shape {starless.shape}")
    s2, stars, inexact = _split_block(image, starless)
    return s2, stars, ~np.isfinite(image), inexact


# --------------------------------------------------------------------------- writing
def _is_dask(obj) -> bool:
    return type(obj).__module__.startswith("dask.")


def _is_lazy(obj) -> bool:
    return hasattr(obj, "__dask_graph__") and obj.__dask_graph__() is not None


def _as_dask_2d(name: str, array, chunks):
    import dask.array as da

    if not _is_dask(array):
        array = np.asarray(array)
        array = da.from_array(array, chunks=chunks if chunks is not None else array.shape)
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {array.shape}")
    for axis, sizes in enumerate(array.chunks):
        # Zarr chunks are regular (the last may be smaller): so must the Dask ones be.
        if len(sizes) > 1 and (len(set(sizes[:-1])) > 1 or sizes[-1] > sizes[0]):
            raise ValueError(f"{name} has irregular chunks {sizes} along axis {axis}; "
                             "Zarr needs equal chunks (the last may be smaller)")
    return array


def _metric_rows(metrics) -> list[dict]:
    rows = []
    for item in metrics:
        row = item.as_dict() if hasattr(item, "as_dict") else dict(item)
        missing = [c for c in METRIC_COLUMNS if c not in row]
        if missing:
            raise ValueError(f"tile metrics lack {', '.join(missing)}")
        rows.append(row)
    return rows


def _jsonable(value: Any, name: str) -> Any:
    """Attribute values as plain JSON types (NumPy scalars/arrays, tuples, Paths...)."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, f"{name}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, name) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)  # JSON has no NaN/inf
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"store attribute {name!r}: {type(value).__name__} value {value!r} "
                    "is not JSON-serialisable")


def _is_store(path: Path) -> bool:
    return (path / "zarr.json").is_file() or (path / ".zgroup").is_file()


def _prepare_target(path: Path, overwrite: bool, resume: bool = False) -> None:
    """Refuse or clear an existing ``path`` before anything is written.

    This is the one place that decides what may happen to an existing store: refuse
    unless ``overwrite``, except that with ``resume`` an *unfinished* store (a Zarr
    group whose ``destar_complete`` was never written: a writer that died) is the
    caller's own unfinished run and is replaced.  A complete store is never replaced
    without ``overwrite``.  ``overwrite`` only ever deletes a Zarr store or an empty
    directory, never some other folder or file.
    """
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path}: output directory {path.parent} does not exist")
    if not (path.exists() or path.is_symlink()):
        return
    if resume and store_state(path) == "unfinished":
        shutil.rmtree(path)
        return
    if not overwrite:
        state = "a complete" if store_is_complete(path) else "an unfinished"
        kind = f"{state} destar store" if _is_store(path) else "a file or folder"
        raise FileExistsError(f"{path}: output exists ({kind}); pass overwrite=True "
                              "(command line: --overwrite) to replace it")
    if path.is_dir() and not path.is_symlink():
        if _is_store(path):
            shutil.rmtree(path)
            return
        if not any(path.iterdir()):
            path.rmdir()
            return
    raise FileExistsError(f"{path}: exists and is not a Zarr store; refusing to replace it "
                          "even with overwrite")


@contextlib.contextmanager
def _quiet_zarr():
    """Silence zarr's note that consolidated metadata is not yet in the v3 spec."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        yield


def write_store(path, starless, stars, mask, metrics, attrs: Mapping[str, Any] | None = None,
                *, overwrite: bool = False, resume: bool = False) -> Path:
    """Write one frame's result as a Zarr v3 store (see the module notes for the layout).

    Parameters
    ----------
    path:
        The store directory (conventionally ``*.zarr``).  Its parent must exist.
    starless, stars, mask:
        2-D arrays of one shape.  Dask arrays are written chunk by chunk, each Dask
        chunk one Zarr chunk (they must be regular: equal sizes, the last may be
        smaller); NumPy arrays are written as a single chunk.  ``stars`` and ``mask``
        are rechunked to ``starless``'s chunks.  Nothing is converted: build them with
        :func:`split_stars` for the exact ``stars + starless == input``.
    metrics:
        Per-tile metrics: a sequence of mappings (or objects with ``as_dict()``) with
        the :data:`METRIC_COLUMNS`, or a lazy (``dask.delayed``) such sequence.
    attrs:
        Root attributes (JSON-serialisable after NumPy scalars/arrays, tuples and paths
        are converted).  A value may be a lazy Dask object (e.g. a count reduced from
        the data): it is computed in the same pass as the data.
    overwrite:
        Replace an existing store.  Without it an existing ``path`` raises
        :class:`FileExistsError` naming it.
    resume:
        Replace an existing *unfinished* store (see :func:`store_state`) without
        ``overwrite``: the same run, started again after its writer died.

    Everything lazy (data, metrics, lazy attributes) is computed in one
    ``dask.compute``, so a tiled diffusion whose starless image and metrics come from
    one graph runs once.  ``destar_complete = true`` is written last.  Returns the path.
    """
    import dask
    import xarray as xr
    import zarr

    path = Path(path)
    attrs = dict(attrs or {})
    if COMPLETE_ATTR in attrs:
        raise ValueError(f"{COMPLETE_ATTR!r} is set by write_store itself, after the data")
    starless = _as_dask_2d("starless", starless, None)
    stars = _as_dask_2d("stars", stars, starless.chunks)
    mask = _as_dask_2d("mask", mask, starless.chunks)
    for name, array in (("stars", stars), ("mask", mask)):
        if array.shape != starless.shape:
            raise ValueError(f"{name} shape {array.shape} != starless shape {starless.shape}")
    stars = stars.rechunk(starless.chunks)
    mask = mask.rechunk(starless.chunks).astype(bool)
    lazy_attrs = {k: v for k, v in attrs.items() if _is_lazy(v)}
    _prepare_target(path, overwrite, resume)

    data = xr.Dataset({
        "starless": (_DIMS, starless, {"long_name": "star-removed image"}),
        "stars": (_DIMS, stars, {"long_name": "removed stars: input - starless"}),
        "mask": (_DIMS, mask, {"long_name": "input pixel is not finite (masked)"}),
    })
    # No low-level fusion: dask.array.store optimises the arrays' graph on its own,
    # and fusing a tile task into its one dependent there renames it, so the same
    # tile would run again for the metrics and the lazy attributes.  Nor any graph
    # optimisation in the compute: a Dask scheduler optimises what it is sent with its
    # own settings, not these, and ran every tile twice, on two workers
    # (tests/test_distributed.py).
    with _quiet_zarr(), dask.config.set({"optimization.fuse.active": False}):
        write = data.to_zarr(path, mode="w-", compute=False, zarr_format=3,
                             consolidated=False)
        computed = dask.compute(write, metrics, lazy_attrs, optimize_graph=False)
        _, metrics_value, lazy_values = computed
        rows = _metric_rows(metrics_value)
        table = xr.Dataset({
            name: (("tile",), np.array([row[name] for row in rows], dtype=dtype))
            for name, dtype in METRIC_COLUMNS.items()
        })
        table.to_zarr(path, mode="a", zarr_format=3, consolidated=False)

        attrs.update(lazy_values)
        attrs["destar_store_version"] = STORE_VERSION
        final = {str(k): _jsonable(v, str(k)) for k, v in attrs.items()}
        group = zarr.open_group(str(path), mode="r+", zarr_format=3)
        group.attrs.update(final)
        zarr.consolidate_metadata(str(path), zarr_format=3)
        # Last: the completion flag.  use_consolidated keeps the consolidated metadata
        # in the rewritten root document.
        group = zarr.open_group(str(path), mode="r+", zarr_format=3, use_consolidated=True)
        group.attrs[COMPLETE_ATTR] = True
    return path


# --------------------------------------------------------------------------- reading
def _root_attrs(path: Path) -> dict | None:
    document = path / "zarr.json"
    try:
        with open(document, encoding="utf-8") as handle:
            meta = json.load(handle)
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("node_type") != "group":
        return None
    attributes = meta.get("attributes", {})
    return attributes if isinstance(attributes, dict) else None


def store_state(path: str | os.PathLike[str]) -> str:
    """``"absent"``, ``"complete"``, ``"unfinished"`` (a Zarr v3 group without
    ``destar_complete``: its writer died) or ``"foreign"`` (anything else)."""
    path = Path(path)
    if not (path.exists() or path.is_symlink()):
        return "absent"
    if path.is_symlink() or not path.is_dir():
        return "foreign"
    attributes = _root_attrs(path)
    if attributes is None:
        return "foreign"
    return "complete" if attributes.get(COMPLETE_ATTR) is True else "unfinished"


def store_is_complete(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` is a destar store whose writer finished (``destar_complete``)."""
    attributes = _root_attrs(Path(path))
    return bool(attributes) and attributes.get(COMPLETE_ATTR) is True


def open_store(path: str | os.PathLike[str], **kwargs):
    """Open a complete destar store as a lazy :class:`xarray.Dataset`.

    ``kwargs`` go to :func:`xarray.open_zarr`.  Raises :class:`FileNotFoundError` if
    ``path`` does not exist and :class:`ValueError` (naming ``path``) if it is not a
    Zarr group or was never marked complete (a run that died while writing).
    """
    import xarray as xr

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such store")
    attributes = _root_attrs(path)
    if attributes is None:
        raise ValueError(f"{path}: not a Zarr v3 group (no readable zarr.json)")
    if attributes.get(COMPLETE_ATTR) is not True:
        raise ValueError(f"{path}: incomplete destar store ({COMPLETE_ATTR} is not set: "
                         "its writer did not finish); rerun with overwrite")
    return xr.open_zarr(path, **kwargs)
