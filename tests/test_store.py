"""The Zarr result store (pipeline.io.store) and the one-frame run that writes it."""

from __future__ import annotations

import json

import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr
from astropy.io import fits
from astropy.wcs import WCS

import pipeline
from pipeline import remove_stars
from pipeline.io import (
    open_store,
    sha256_file,
    split_stars,
    store_is_complete,
    write_store,
)
from pipeline.io.store import COMPLETE_ATTR, METRIC_COLUMNS
from pipeline.run import frame_chunks, remove_stars_file
from pipeline.synthetic import make_survey_frame

N_ITER = 15
SIZE = 256


def _wcs_header():
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.1, 2.2]
    w.wcs.crpix = [128.5, 128.5]
    w.wcs.cdelt = [-0.0002, 0.0002]
    header = w.to_header()
    header["OBJECT"] = ("synthetic field", "made by the test")
    return header


@pytest.fixture(scope="module")
def fits_input(tmp_path_factory):
    """A float32 sky-subtracted FITS frame with a WCS and one NaN pixel."""
    frame = make_survey_frame((SIZE, SIZE), seed=5, n_stars=80, n_galaxies=2,
                              scale="sky-subtracted")
    image = frame.image.astype(np.float32)
    image[70, 90] = np.nan
    path = tmp_path_factory.mktemp("input") / "frame.fits"
    fits.PrimaryHDU(image, header=_wcs_header()).writeto(path)
    return path, image


@pytest.fixture(scope="module")
def store(fits_input, tmp_path_factory):
    path, _ = fits_input
    out = tmp_path_factory.mktemp("out") / "frame.zarr"
    digest = sha256_file(path)
    summary = remove_stars_file(path, out, preset="paper", overrides={"n_iter": N_ITER}, chunk=100,
                                progress=False)
    assert sha256_file(path) == digest  # the input is never modified
    return out, summary


def test_round_trip_variables_dims_and_chunks(store):
    out, summary = store
    ds = xr.open_zarr(out)
    assert {"starless", "stars", "mask"} <= set(ds.data_vars)
    for name in ("starless", "stars", "mask"):
        assert ds[name].dims == ("y", "x")
        assert ds[name].shape == (SIZE, SIZE)
        # On disk: one Zarr chunk per Dask chunk of the run.
        assert zarr.open_array(str(out / name), mode="r").chunks == (100, 100)
        assert ds[name].encoding["chunks"] == (100, 100)
    assert ds.starless.dtype == np.float64 and ds.stars.dtype == np.float64
    assert ds.mask.dtype == bool
    assert summary["chunks"] == (100, 100) and summary["tiles"] == 9


def test_metrics_table_partitions_the_frame(store):
    out, _ = store
    ds = open_store(out)
    assert set(METRIC_COLUMNS) <= set(ds.data_vars)
    for name in METRIC_COLUMNS:
        assert ds[name].dims == ("tile",)
    assert ds.sizes["tile"] == 9
    cover = np.zeros((SIZE, SIZE), dtype=int)
    for r0, r1, c0, c1 in zip(ds.row_start.values, ds.row_stop.values,
                              ds.col_start.values, ds.col_stop.values):
        cover[r0:r1, c0:c1] += 1
    assert (cover == 1).all()
    assert (ds.iterations.values == N_ITER).all()
    assert (ds.halo.values == ds.attrs["halo"]).all()
    assert np.all((ds.stopped_fraction.values >= 0) & (ds.stopped_fraction.values <= 1))
    assert np.all(ds.seconds.values >= 0)


def test_provenance_attributes(store, fits_input):
    out, _ = store
    path, _ = fits_input
    attrs = open_store(out).attrs
    assert attrs[COMPLETE_ATTR] is True
    assert attrs["destar_version"] == pipeline.__version__
    params = pipeline.PRESETS["paper"].replace(n_iter=N_ITER).in_use()
    assert attrs["parameters"] == json.loads(json.dumps(params))
    assert attrs["preset"] == "paper"
    assert attrs["input_sha256"] == sha256_file(path)
    assert attrs["input_path"].endswith("frame.fits")
    assert attrs["chunks"] == [100, 100]
    assert attrs["halo"] > 0
    assert attrs["created"]
    header = fits.Header.fromstring(attrs["fits_header"], sep="\n")
    assert header["OBJECT"] == "synthetic field"
    assert header["CTYPE1"] == "RA---TAN"


def test_stars_plus_starless_is_the_input_and_mask(store, fits_input):
    out, _ = store
    _, image = fits_input
    ds = open_store(out).compute()
    finite = np.isfinite(image)
    assert not finite[70, 90] and (~finite).sum() == 1
    np.testing.assert_array_equal(ds.mask.values, ~finite)
    total = ds.stars.values + ds.starless.values
    assert np.array_equal(total[finite], image[finite].astype(np.float64))
    assert ds.attrs["stars_inexact_pixels"] == 0
    assert np.isnan(ds.stars.values[70, 90]) and np.isnan(ds.starless.values[70, 90])
    # Stars were actually removed: some star peaks went into the stars layer, far
    # above the noise (6).  Not the total: the diffusion conserves flux, so the layer
    # sums to about zero.
    assert np.nanmax(ds.stars.values) > 30


def test_store_matches_remove_stars_on_the_same_array(tmp_path):
    image = make_survey_frame((SIZE, SIZE), seed=2, n_stars=80, n_galaxies=2).image
    np.save(tmp_path / "in.npy", image)
    out = tmp_path / "out.zarr"
    remove_stars_file(tmp_path / "in.npy", out, preset="paper", overrides={"n_iter": N_ITER},
                      chunk=128, progress=False)
    expected = remove_stars(image, preset="paper", n_iter=N_ITER)
    ds = open_store(out)
    np.testing.assert_allclose(ds.starless.values, expected, rtol=0, atol=1e-9)
    total = ds.stars.values + ds.starless.values
    assert np.array_equal(total, image)  # float64 linear frame: exact everywhere
    assert ds.attrs["stars_inexact_pixels"] == 0


def test_split_stars_exact_for_float32_values_and_counts_the_rest():
    rng = np.random.default_rng(0)
    starless = rng.normal(0.0, 0.5, (200, 300))
    # float32 input (e.g. FITS BITPIX -32): exact everywhere, with starless moved by
    # float64 ulps only.
    x32 = rng.normal(0.0, 6.0, starless.shape).astype(np.float32)
    s, stars, mask, inexact = split_stars(x32, starless)
    assert inexact == 0 and not mask.any()
    assert np.array_equal(stars + s, x32.astype(np.float64))
    assert np.max(np.abs(s - starless)) < 1e-13
    # float64 sky-subtracted input: a float64 pair does not always exist; the count
    # says where, and the error there is at the rounding level.
    x64 = rng.normal(0.0, 6.0, starless.shape)
    x64[3, 4] = np.inf
    s, stars, mask, inexact = split_stars(x64, starless)
    finite = np.isfinite(x64)
    wrong = finite & (stars + s != x64)
    assert inexact == int(wrong.sum())
    assert inexact < 0.05 * x64.size
    assert np.max(np.abs((stars + s - x64)[finite])) < 1e-14
    assert mask[3, 4] and np.isnan(stars[3, 4]) and s[3, 4] == starless[3, 4]
    # The Dask path gives the same arrays, lazily, with the input's chunks.
    ds_, dstars, dmask, dinexact = split_stars(da.from_array(x64, chunks=64),
                                               da.from_array(starless, chunks=64))
    assert ds_.chunks == da.from_array(x64, chunks=64).chunks
    np.testing.assert_array_equal(ds_.compute(), s)
    np.testing.assert_array_equal(dstars.compute(), stars)
    assert int(dinexact.compute()) == inexact


def _small_store(path, **kwargs):
    shape = (40, 30)
    starless = da.zeros(shape, chunks=(16, 16))
    stars = da.ones(shape, chunks=(16, 16))
    mask = da.zeros(shape, dtype=bool, chunks=(16, 16))
    metrics = [dict(row_start=0, row_stop=40, col_start=0, col_stop=30, halo=0,
                    iterations=1, stopped_fraction=0.0, flux_removed=1200.0, seconds=0.1,
                    stars_fitted=float("nan"))]
    return write_store(path, starless, stars, mask, metrics, {"note": "test"}, **kwargs)


def test_incomplete_store_is_refused(tmp_path):
    out = _small_store(tmp_path / "s.zarr")
    assert store_is_complete(out)
    document = out / "zarr.json"
    meta = json.loads(document.read_text())
    del meta["attributes"][COMPLETE_ATTR]
    document.write_text(json.dumps(meta))
    assert not store_is_complete(out)
    with pytest.raises(ValueError, match="incomplete") as info:
        open_store(out)
    assert str(out) in str(info.value)
    # xarray itself still reads it: the flag is destar's, not Zarr's.
    assert "starless" in xr.open_zarr(out, consolidated=False).data_vars


def test_failed_write_leaves_an_incomplete_store(tmp_path):
    import dask

    @dask.delayed
    def broken():
        raise RuntimeError("worker died")

    out = tmp_path / "s.zarr"
    with pytest.raises(RuntimeError):
        write_store(out, da.zeros((20, 20), chunks=10), da.zeros((20, 20), chunks=10),
                    da.zeros((20, 20), dtype=bool, chunks=10), broken(), {})
    assert out.exists() and not store_is_complete(out)
    with pytest.raises(ValueError, match="incomplete"):
        open_store(out)


def test_overwrite_refused_then_allowed(tmp_path):
    out = _small_store(tmp_path / "s.zarr")
    with pytest.raises(FileExistsError) as info:
        _small_store(out)
    assert str(out) in str(info.value)
    assert store_is_complete(out)  # the refused write touched nothing
    _small_store(out, overwrite=True)
    assert store_is_complete(out)
    assert open_store(out).attrs["note"] == "test"
    # overwrite never deletes a folder that is not a Zarr store
    other = tmp_path / "notes.zarr"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a Zarr store"):
        _small_store(other, overwrite=True)
    assert (other / "keep.txt").read_text() == "mine"


def test_open_store_missing_and_not_a_store(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such store"):
        open_store(tmp_path / "absent.zarr")
    (tmp_path / "empty.zarr").mkdir()
    assert not store_is_complete(tmp_path / "empty.zarr")
    with pytest.raises(ValueError, match="not a Zarr"):
        open_store(tmp_path / "empty.zarr")


def test_frame_chunks_rules():
    assert frame_chunks((3000, 5000)) == (3000, 2048)
    assert frame_chunks((4096, 4096)) == (4096, 4096)
    assert frame_chunks((5000, 6000), "full") == (5000, 6000)
    assert frame_chunks((300, 200), 256) == (256, 200)
    for bad in (0, -5, "big"):
        with pytest.raises(ValueError):
            frame_chunks((10, 10), bad)
    with pytest.raises(TypeError):
        frame_chunks((10, 10), 2.5)
