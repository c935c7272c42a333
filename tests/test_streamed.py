"""Streamed tiles: theta from sample blocks, then every tile diffused on its own."""

import dask
import dask.array as da
import numpy as np
import pytest
from astropy.io import fits

from pipeline import diagnose, remove_stars
from pipeline.core.params import PAPER, REFERENCE, DiffusionParameters
from pipeline.core.sampling import SAMPLE_BLOCK, threshold_blocks, threshold_region
from pipeline.io import open_store
from pipeline.run import format_store_info, remove_stars_file
from pipeline.synthetic import make_survey_frame
from pipeline.tiling import (
    STREAMED_TILE_TASK,
    default_halo,
    frame_scalars,
    run_tiled,
    sample_grid,
    threshold_sequence,
)

#: One 256 x 256 sample block: a 768 x 768 frame streams its tiles.
SAMPLED = PAPER.replace(n_iter=40, threshold_sample=256 * 256)


@pytest.fixture(scope="module")
def frame():
    survey = make_survey_frame((768, 768), seed=11, n_stars=900, n_galaxies=12)
    image = np.array(survey.image)
    image[300:306, 380:392] = np.nan  # masked data across a tile edge
    return image


@pytest.fixture(scope="module")
def whole(frame):
    return remove_stars(frame, preset=SAMPLED)


def test_blocks_spread_over_the_frame_without_overlap():
    blocks = threshold_blocks((8192, 6144), 2048 * 2048)
    assert len(blocks) >= 12
    region = np.zeros((8192, 6144), np.int32)
    for r0, r1, c0, c1 in blocks:
        assert 0 <= r0 < r1 <= 8192 and 0 <= c0 < c1 <= 6144
        assert r1 - r0 <= SAMPLE_BLOCK and c1 - c0 <= SAMPLE_BLOCK
        region[r0:r1, c0:c1] += 1
    assert region.max() == 1
    assert 0.75 * 2048 ** 2 <= region.sum() <= 2048 ** 2
    # Every quarter of the frame holds some of the sample.
    assert all(q.any() for half in np.array_split(region, 2)
               for q in np.array_split(half, 2, axis=1))


def test_small_frames_and_none_take_theta_from_every_pixel():
    assert threshold_blocks((2048, 2048), 2048 * 2048) is None
    assert threshold_blocks((20000, 20000), None) is None
    assert threshold_region((100, 100), 64 * 64) is not None
    # A thin strip still gets blocks inside it.
    for r0, r1, c0, c1 in threshold_blocks((100000, 100), 2048 * 2048):
        assert 0 <= c0 < c1 <= 100 and r1 - r0 <= SAMPLE_BLOCK


def test_threshold_sample_is_checked():
    with pytest.raises(ValueError, match="threshold_sample"):
        DiffusionParameters(threshold_sample=100)
    with pytest.raises((TypeError, ValueError), match="threshold_sample"):
        DiffusionParameters(threshold_sample="big")
    assert REFERENCE.threshold_sample is None  # the authors' theta, unchanged


@pytest.mark.parametrize("chunk", [256, (300, 200)])
def test_streamed_tiles_equal_the_whole_frame(frame, whole, chunk):
    result = remove_stars(da.from_array(frame, chunks=chunk), preset=SAMPLED)
    keys = [str(k[0] if isinstance(k, tuple) else k) for k in result.__dask_graph__()]
    assert any(k.startswith(STREAMED_TILE_TASK) for k in keys)  # not lockstep
    computed = result.compute()
    assert np.array_equal(np.isnan(computed), np.isnan(frame))  # NaN stays NaN
    diff = np.abs(computed - whole)
    assert np.nanmax(diff) <= 1e-9
    assert np.nanmax(np.abs(whole - frame)) > 50  # stars were removed


def test_the_sample_sets_theta_as_in_the_whole_frame(frame):
    array = da.from_array(frame, chunks=256)
    halo = default_halo(SAMPLED)
    thetas = threshold_sequence(array, params=SAMPLED,
                                scalars=frame_scalars(array, SAMPLED), halo=halo)
    assert np.isnan(thetas[:SAMPLED.residue_history]).all()
    recorded = diagnose(frame, iterations=(10, 25, 40), preset=SAMPLED).diagnostics
    for t, diagnostics in recorded.items():
        assert thetas[t - 1] == pytest.approx(diagnostics.theta, rel=1e-12)
    with pytest.raises(ValueError, match="every pixel"):
        threshold_sequence(array, params=PAPER, scalars=frame_scalars(array, PAPER),
                           halo=halo)


def test_a_sampled_run_differs_little_from_the_whole_frame_theta(frame, whole):
    # The price of the sample on this frame: one block of 256^2 out of 768^2.
    full = remove_stars(frame, preset=SAMPLED.replace(threshold_sample=None))
    diff = np.abs(full - whole)
    assert np.nanmean(diff) < 0.2


def test_run_tiled_streams_lazily_and_refuses_a_checkpoint(frame):
    array = da.from_array(frame, chunks=384)
    run = run_tiled(array, SAMPLED)
    assert run.streamed and isinstance(run.starless, da.Array)
    metrics = dask.compute(run.metrics)[0]
    assert [m.iterations for m in metrics] == [SAMPLED.n_iter] * 4
    assert sample_grid(frame.shape, SAMPLED, run.halo) is not None
    with pytest.raises(ValueError, match="checkpoint"):
        run_tiled(array, SAMPLED, checkpoint=object())


def test_file_run_streams_into_a_store(tmp_path, frame, whole, monkeypatch):
    from pipeline.tiling import tiles

    real, calls = tiles.stream_tile, []

    def counted(*args, **kwargs):
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(tiles, "stream_tile", counted)
    source = tmp_path / "frame.fits"
    fits.PrimaryHDU(frame.astype(np.float32)).writeto(source)
    as_read = frame.astype(np.float32).astype(np.float64)
    expected = remove_stars(as_read, preset=SAMPLED)
    out = tmp_path / "out.zarr"
    summary = remove_stars_file(source, out, preset="paper", overrides={"n_iter": 40,
                                                         "threshold_sample": 256 * 256},
                                chunk=256, progress=False)
    assert summary["tiles"] == 9
    assert len(calls) == 9 == len(set(calls))  # every tile ran once, for data and metrics
    store = open_store(out)
    starless = store["starless"].values
    finite = np.isfinite(as_read)
    np.testing.assert_allclose(starless[finite], expected[finite], rtol=0, atol=1e-9)
    assert np.array_equal(store["stars"].values[finite] + starless[finite],
                          as_read[finite])
    assert store.attrs["checkpoint_every"] == 0
    assert len(store.attrs["thetas"]) == 40
    assert not (tmp_path / "out.zarr.checkpoint").exists()
    assert "theta           from sample blocks, tiles streamed" in format_store_info(out)


def test_killed_streamed_run_redoes_only_unfinished_tiles(tmp_path, frame, monkeypatch):
    from pipeline.tiling import tiles

    source = tmp_path / "frame.fits"
    fits.PrimaryHDU(frame.astype(np.float32)).writeto(source)
    out = tmp_path / "out.zarr"
    options = dict(preset="paper", overrides={"n_iter": 40, "threshold_sample": 256 * 256},
                   chunk=256, progress=False)
    clean = remove_stars_file(source, tmp_path / "clean.zarr", **options)
    assert clean["tiles_reused"] == 0

    real, calls = tiles.stream_tile, []

    def dies_after_four(*args, **kwargs):
        if len(calls) == 4:
            raise KeyboardInterrupt  # the process is stopped mid-run
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(tiles, "stream_tile", dies_after_four)
    with dask.config.set(num_workers=1), pytest.raises(KeyboardInterrupt):
        remove_stars_file(source, out, **options)
    assert (tmp_path / "out.zarr.checkpoint").is_dir()
    monkeypatch.setattr(tiles, "stream_tile", real)
    summary = remove_stars_file(source, out, **options)
    assert summary["tiles_reused"] == 4
    assert not (tmp_path / "out.zarr.checkpoint").exists()
    resumed, whole = open_store(out), open_store(tmp_path / "clean.zarr")
    assert np.array_equal(resumed["starless"].values, whole["starless"].values,
                          equal_nan=True)
    assert np.array_equal(resumed["stopped_fraction"].values,
                          whole["stopped_fraction"].values)


@pytest.mark.slow
def test_streamed_chunking_does_not_change_a_1536_frame_at_200_iterations():
    # The survey-scale target, with theta from a 512 x 512 sample block so that the
    # tiles stream: the blocks' halo must carry theta exactly through 200 iterations.
    survey = make_survey_frame((1536, 1536), seed=3, scale="stretched", n_stars=3600,
                               n_galaxies=72)
    image = np.array(survey.image)
    params = PAPER.replace(threshold_sample=512 * 512)
    whole = remove_stars(image, preset=params)
    for chunk in (512, 384):
        tiled = remove_stars(da.from_array(image, chunks=chunk), preset=params).compute()
        diff = np.abs(tiled - whole)
        assert diff.max() <= 0.5, f"chunk {chunk}: max diff {diff.max():.3g} DN"
        assert diff.mean() <= 0.01, f"chunk {chunk}: mean diff {diff.mean():.3g} DN"


def test_the_tile_kernel_alone_replays_a_whole_frame_run():
    # stream_tile is a plain NumPy function: given the whole frame as its block and
    # the theta of every iteration, it is the whole-frame run.
    from pipeline.core.diffusion import asymmetry_normalisation, statistics_from
    from pipeline.core.remove import background_for
    from pipeline.tiling import stream_tile

    image = np.array(make_survey_frame((160, 200), seed=5, n_stars=60).image)
    params = PAPER.replace(n_iter=25)
    recorded = diagnose(image, iterations=range(1, 26), preset=params).diagnostics
    thetas = [recorded[t].theta if t > params.residue_history else np.nan
              for t in range(1, 26)]
    bavg, noise = background_for(image, params)
    stats = statistics_from(params, k=asymmetry_normalisation(image), bavg=bavg,
                            noise=noise)
    bounds = (0, 160, 0, 200)
    starless, metrics = stream_tile(image, bounds, bounds, params, stats, 0, thetas)
    assert np.array_equal(starless, remove_stars(image, preset=params))
    assert metrics.iterations == 25 and 0 <= metrics.stopped_fraction <= 1


@pytest.mark.parametrize("sample", [128 * 128, None], ids=["streamed", "lockstep"])
def test_a_masked_region_larger_than_a_tile_changes_nothing(sample):
    # A chip gap or a bad region covering whole tiles and their halos: the fill of its
    # pixels depends on what a tile sees, so it must not reach k or any finite pixel.
    image = np.array(make_survey_frame((768, 768), seed=1).image)
    image[0:400, 0:400] = np.nan
    params = PAPER.replace(n_iter=40, threshold_sample=sample)
    whole = remove_stars(image, preset=params)
    tiled = remove_stars(da.from_array(image, chunks=128), preset=params).compute()
    assert np.array_equal(np.isnan(tiled), np.isnan(image))
    assert np.nanmax(np.abs(tiled - whole)) <= 1e-9
