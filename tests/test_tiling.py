"""Tiled (Dask) execution: the chunking must not change the science."""

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr

from pipeline import remove_stars
from pipeline.core.params import resolve_parameters
from pipeline.synthetic import make_survey_frame
from pipeline.tiling import default_halo, frame_scalars, lockstep_diffuse, remove_stars_dask


def _frame(size, seed=3):
    scale = (size / 512) ** 2
    frame = make_survey_frame((size, size), seed=seed, scale="stretched",
                              n_stars=int(400 * scale), n_galaxies=max(1, int(8 * scale)))
    return np.array(frame.image)


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["paper", "reference"])
def test_chunking_does_not_change_a_1536_frame_at_200_iterations(preset):
    # The survey-scale target: whole frame against 512- and 384-pixel chunks.
    image = _frame(1536)
    whole = remove_stars(image, preset=preset, n_iter=200)
    for chunk in (512, 384):
        tiled = remove_stars(da.from_array(image, chunks=chunk), preset=preset,
                             n_iter=200).compute()
        diff = np.abs(tiled - whole)
        assert diff.max() <= 0.5, f"chunk {chunk}: max diff {diff.max():.3g} DN"
        assert diff.mean() <= 0.01, f"chunk {chunk}: mean diff {diff.mean():.3g} DN"


@pytest.mark.parametrize("chunks", [64, (100, 57), ((70, 90, 96), (128, 128))])
def test_tiled_equals_whole_frame_on_irregular_chunks(chunks):
    image = _frame(256)[:, :256]
    image[40, 40] = np.nan  # masked data near a tile edge
    whole = remove_stars(image, preset="paper", n_iter=30)
    tiled = remove_stars(da.from_array(image, chunks=chunks), preset="paper", n_iter=30)
    assert isinstance(tiled, da.Array)
    result = tiled.compute()
    assert np.isnan(result[40, 40])
    finite = np.isfinite(whole)
    np.testing.assert_allclose(result[finite], whole[finite], rtol=0, atol=1e-9)


def test_result_is_lazy_and_keeps_the_chunks():
    image = da.from_array(_frame(256), chunks=100)
    calls = []

    def count(*args, **kwargs):  # a scheduler that records what runs
        calls.append(1)
        return dask.get(*args, **kwargs)

    with dask.config.set(scheduler=count):
        result = remove_stars(image, preset="paper", n_iter=5)
        before = len(calls)
        assert result.chunks == image.chunks
        result.compute()
    assert len(calls) > before  # the diffusion itself ran only on compute


def test_frame_scalars_do_not_depend_on_the_chunks():
    image = _frame(300)[:, :280]
    params = resolve_parameters("paper")
    a = frame_scalars(da.from_array(image, chunks=300), params)
    b = frame_scalars(da.from_array(image, chunks=(64, 90)), params)
    assert (a.bavg, a.noise) == (b.bavg, b.noise)
    assert a.k == pytest.approx(b.k, rel=1e-14)


def test_lockstep_metrics_partition_the_frame_and_account_for_the_flux():
    image = _frame(256)
    params = resolve_parameters("paper", n_iter=20)
    scalars = frame_scalars(da.from_array(image, chunks=256), params)
    starless, metrics = lockstep_diffuse(image, params=params, scalars=scalars,
                                         chunks=((128, 128), (100, 156)), halo=48)
    assert len(metrics) == 4
    covered = np.zeros(image.shape, int)
    for m in metrics:
        covered[m.row_start:m.row_stop, m.col_start:m.col_stop] += 1
        assert m.iterations == 20 and m.halo == 48 and m.seconds > 0
        assert 0.0 <= m.stopped_fraction <= 1.0
    assert (covered == 1).all()
    total = sum(m.flux_removed for m in metrics)
    assert total == pytest.approx(float(np.sum(image - starless)), abs=1e-6)


def test_dataarray_keeps_dims_coords_and_attrs():
    image = _frame(128)
    array = xr.DataArray(da.from_array(image, chunks=64), dims=("y", "x"),
                         coords={"y": np.arange(128) * 0.5, "x": np.arange(128)},
                         attrs={"BUNIT": "DN"}, name="frame")
    result = remove_stars(array, preset="paper", n_iter=10)
    assert isinstance(result, xr.DataArray)
    assert result.dims == ("y", "x") and result.attrs == {"BUNIT": "DN"}
    np.testing.assert_array_equal(result["y"], array["y"])
    np.testing.assert_allclose(result.values, remove_stars(image, preset="paper", n_iter=10),
                               atol=1e-9)


def test_default_halo_grows_with_the_iterations():
    small = default_halo(resolve_parameters("paper", n_iter=10))
    large = default_halo(resolve_parameters("paper", n_iter=200))
    assert small >= 64 and large >= 1.25 * 200 and large % 8 == 0


def test_bad_dask_input():
    with pytest.raises(ValueError, match="2-D"):
        remove_stars(da.zeros((4, 8, 8), chunks=4))
    with pytest.raises(TypeError, match="complex"):
        remove_stars(da.zeros((8, 8), dtype=complex, chunks=4))
    with pytest.raises(ValueError, match="halo"):
        remove_stars_dask(da.zeros((8, 8), chunks=4), resolve_parameters("paper"), halo=-1)
    with pytest.raises(TypeError, match="halo"):
        remove_stars(np.zeros((8, 8)), halo=3)
    # The checks of a NumPy input, before any tile runs.
    for options in ({"preset": "paper", "n_iter": 5}, {}):   # and the survey preset
        with pytest.raises(ValueError, match="no finite pixel"):
            remove_stars(da.full((64, 64), np.nan, chunks=32), **options)
    with pytest.raises(ValueError, match="too small"):
        remove_stars(da.ones((2, 2)), preset="paper", n_iter=5)
    with pytest.raises(ValueError, match="empty"):
        remove_stars(da.ones((0, 5)), preset="paper", n_iter=5)
    for preset in ("paper", "survey"):
        with pytest.raises(TypeError, match="halo must be an integer"):
            remove_stars(da.ones((64, 64), chunks=32), preset=preset, halo="x")
