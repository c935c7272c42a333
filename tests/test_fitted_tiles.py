"""The survey preset (PSF star model) through the tiled pipeline and the CLI."""

import dask.array as da
import numpy as np
import pytest
from astropy.io import fits

from pipeline import PRESETS, diagnose, remove_stars
from pipeline.core.censoring import find_black_point
from pipeline.core.params import SURVEY, DiffusionParameters
from pipeline.core.sampling import psf_region
from pipeline.core.starfit import fit_and_subtract_stars, saturation_level
from pipeline.io import open_store
from pipeline.run import format_store_info, format_summary, remove_stars_file
from pipeline.synthetic import make_survey_frame
from pipeline.tiling import (FIT_HALO, default_halo, run_tiled, streams_tiles,
                             tile_warning_filters)
from pipeline.tiling.fitted import fit_tile, fit_tiles, frame_levels

NOISE = 6.0
SENTINELS = (-32768.0, -1e10)


@pytest.fixture(scope="module")
def frame():
    survey = make_survey_frame((768, 768), seed=5, n_stars=800, n_galaxies=10,
                               noise_sigma=NOISE, saturate=2000.0)
    image = np.array(survey.image)
    image[300:306, 380:392] = np.nan  # masked data across a tile edge
    # Lone sentinel values (no region of one value, which is masked anyway), on and
    # beside tile edges.
    for k, (row, col) in enumerate([(511, 100), (512, 300), (256, 600), (400, 255)]):
        image[row, col] = SENTINELS[k % 2]
    return image


@pytest.fixture(scope="module")
def whole(frame):
    return remove_stars(frame, preset="survey")


def test_survey_is_a_preset_of_the_one_parameter_class():
    assert PRESETS["survey"] is SURVEY
    assert SURVEY.star_model == "psf"
    with pytest.raises(ValueError, match="star_model"):
        DiffusionParameters(star_model="wavelet")


def test_diffusion_parameters_of_the_psf_star_model_are_refused_not_ignored():
    image = np.zeros((40, 40))
    for options, named in [({"preset": "survey", "n_iter": 5}, "n_iter"),
                           ({"preset": PRESETS["paper"].replace(star_model="psf", n_iter=3)},
                            "n_iter"),
                           ({"preset": PRESETS["reference"].replace(star_model="psf")},
                            "bavg, formulation")]:
        with pytest.raises(ValueError, match=f"^{named} tunes? only the diffusion"):
            remove_stars(image, **options)
    # The survey preset's own values of those fields are what it runs with.
    small = make_survey_frame((128, 128), seed=3, n_stars=40, n_galaxies=1).image
    equal = PRESETS["paper"].replace(star_model="psf")
    np.testing.assert_array_equal(remove_stars(small, preset=equal),
                                  remove_stars(small, preset="survey"))


def test_psf_region_is_the_whole_small_frame_and_the_centre_of_a_large_one():
    assert psf_region((300, 500), 2048 * 2048) == (slice(0, 300), slice(0, 500))
    assert psf_region((300, 500), None) == (slice(0, 300), slice(0, 500))
    assert psf_region((5000, 3000), 2048 * 2048) == (slice(1476, 3524), slice(476, 2524))
    assert psf_region((5000, 1000), 2048 * 2048) == (slice(1476, 3524), slice(0, 1000))


def _agree(tiled, whole, nan):
    """The tiled run equals the whole-frame one but for a few flipped decisions.

    A tile fits its stars on the same pixels but with a background map and the
    models of neighbours just outside its halo a little different, so the rare
    source whose star/galaxy test sits on its threshold may go one way in the tile
    and the other in the frame.  Measured on this frame: 1 pixel differs by more
    than 0.25 sigma (max 0.34 sigma), mean 3e-4 sigma (102-110 pixels, max 1.8 sigma,
    before clipped pixels were unusable for every fit).
    """
    difference = np.abs(tiled - whole)[~nan] / NOISE
    assert np.mean(difference > 0.25) < 1e-3
    assert difference.mean() < 2e-3


@pytest.mark.slow
def test_tiled_survey_run_matches_the_whole_frame(frame, whole):
    tiled = remove_stars(da.from_array(frame, chunks=256), preset="survey")
    assert tiled.chunks == ((256,) * 3,) * 2
    with tile_warning_filters():    # photutils' own filter, held across the threads
        tiled = tiled.compute()
    nan = np.isnan(frame)
    assert np.array_equal(np.isnan(tiled), nan)
    assert np.array_equal(tiled[nan], frame[nan], equal_nan=True)
    # Pixels far below the sky are masked data in every tile, as in the frame.
    bad = np.isin(frame, SENTINELS)
    assert np.array_equal(tiled[bad], frame[bad])
    assert np.array_equal(whole[bad], frame[bad])
    _agree(tiled, whole, nan | bad)


def test_frame_saturation_is_that_of_the_frame_in_memory(frame):
    with_inf = frame.copy()
    with_inf[0, 0] = np.inf  # not a value, not a saturation level
    level = saturation_level(with_inf)
    assert frame_levels(da.from_array(with_inf, chunks=200)).saturation == level
    # 98 % of the way from the sky (the median of a subsample) to the maximum.
    sky, largest = np.nanmedian(frame), np.nanmax(frame)
    assert level == pytest.approx(sky + 0.98 * (largest - sky),
                                  abs=1e-3 * (largest - sky))


def test_the_frame_levels_read_each_block_once(frame):
    """The saturation level and the black point come from one pass over the
    frame's blocks: a frame read from disk (or a cluster's staged copy) is read
    once for both, not once for each."""
    reads = []

    def read(block, block_info=None):
        reads.append(block_info[0]["chunk-location"])
        return block

    # (Blocks of uneven sizes: each takes its share of the frame's regular subsample.)
    array = da.from_array(frame, chunks=(150, 170)).map_blocks(read,
                                                               meta=np.array((), float))
    levels = frame_levels(array)
    assert sorted(reads) == sorted(np.ndindex(array.numblocks))
    assert levels.saturation == saturation_level(frame)
    assert levels.black_point == find_black_point(frame)


def test_values_beyond_the_overflow_limit_are_no_saturation_level(frame):
    """The fits mask a pixel of 1e160 like +inf; the saturation level, measured on
    the frame before the fits, must leave it out too (it was 0.98e160, and no
    clipped star of the frame counted as saturated)."""
    huge, masked = frame.copy(), frame.copy()
    huge[100, 100], masked[100, 100] = 1e160, np.nan
    level = saturation_level(masked)
    assert saturation_level(huge) == level
    assert frame_levels(da.from_array(huge, chunks=200)).saturation == level


def test_a_frame_beyond_the_overflow_limit_everywhere_says_so():
    """Every pixel masked as beyond the limit: the error says why, whole or tiled
    (it named the internal saturation level, 'nan')."""
    image = np.random.default_rng(0).uniform(2e150, 3e150, (64, 64))
    for given in (image, da.from_array(image, chunks=32)):
        with pytest.raises(ValueError, match="no finite pixel of magnitude below 1e"):
            np.asarray(remove_stars(given))


def test_tile_kernel_alone_counts_the_stars_of_its_core(frame):
    core, ext = (256, 512, 256, 512), (160, 608, 160, 608)
    fitted, psf = fit_tiles(da.from_array(frame, chunks=256), SURVEY)
    starless, metrics = fit_tile(frame[160:608, 160:608], core, ext, psf,
                                 saturation_level(frame), find_black_point(frame),
                                 FIT_HALO)
    assert starless.shape == (256, 256)
    assert metrics.iterations == 0 and np.isnan(metrics.stopped_fraction)
    assert 10 < metrics.stars_fitted < 800 * (256 / 768) ** 2 * 2
    block = frame[256:512, 256:512]
    finite = np.isfinite(block)
    assert metrics.flux_removed == pytest.approx(np.sum(block[finite] - starless[finite]))
    # The tiles' cores partition the frame, and so do their counts.
    with tile_warning_filters():    # photutils' own filter, held across the threads
        counts = [m.stars_fitted for m in fitted.metrics.compute()]
    in_frame = fit_and_subtract_stars(frame, psf=psf, saturation=saturation_level(frame),
                                      black_point=find_black_point(frame))
    assert len(counts) == 9
    assert sum(counts) == pytest.approx(in_frame.n_stars, rel=0.03)


def test_psf_runs_stream_their_tiles_with_the_fit_halo():
    assert streams_tiles((100, 100), SURVEY, FIT_HALO)
    assert default_halo(SURVEY) == FIT_HALO


def test_diagnose_has_no_maps_for_the_psf_model(frame):
    with pytest.raises(ValueError, match="diagnose"):
        diagnose(frame, preset="survey")


def test_a_frame_without_a_measurable_star_is_a_clear_error():
    flat = np.random.default_rng(0).normal(100.0, 5.0, (128, 128))
    with pytest.raises(ValueError, match="isolated"):
        remove_stars(flat, preset="survey")


@pytest.mark.slow
def test_cli_run_writes_the_survey_store_with_its_psf(tmp_path, frame, whole):
    from astropy.io import fits

    source = tmp_path / "frame.fits"
    fits.writeto(source, frame.astype(np.float32))
    summary = remove_stars_file(source, tmp_path / "out.zarr", preset="survey", chunk=384,
                                progress=False)
    assert "PSF fitted" in format_summary(summary) and summary["n_iter"] == 0
    store = open_store(tmp_path / "out.zarr")
    assert store.attrs["parameters"]["star_model"] == "psf"
    assert store.attrs["psf"]["fwhm"] > 1
    assert store.sizes["tile"] == 4
    assert np.all(store.stars_fitted.values > 0)
    assert np.all(np.isnan(store.stopped_fraction.values))
    finite = np.isfinite(frame)
    # float32 input: compare with the whole-frame run of the same float32 values.
    _agree(store.starless.values, remove_stars(frame.astype(np.float32), preset="survey"),
           ~finite)
    total = store.starless.values + store.stars.values
    assert np.array_equal(total[finite], frame.astype(np.float32)[finite].astype(float))
    assert "PSF fitted" in format_store_info(tmp_path / "out.zarr")


def test_run_tiled_rejects_a_lockstep_checkpoint(frame):
    class Lockstep:
        def load(self):
            return None

    with pytest.raises(ValueError, match="TileCheckpoint"):
        run_tiled(da.from_array(frame, chunks=384), SURVEY, checkpoint=Lockstep())


@pytest.mark.parametrize("chunk, tiles", [(None, 1), (64, 4)])
def test_progress_bar_counts_every_tile(tmp_path, capsys, chunk, tiles):
    # (Dask fuses a lone tile's task into the array's, under another key name.)
    path = tmp_path / "frame.fits"
    fits.writeto(path, make_survey_frame((128, 128), seed=3, n_stars=40,
                                         n_galaxies=1).image.astype(np.float32))
    remove_stars_file(path, tmp_path / "out.fits", chunk=chunk)
    assert f"{tiles}/{tiles}" in capsys.readouterr().err.replace("\r", "\n").splitlines()[-1]
