"""``asinh_knee``: frames shown through a known asinh display stretch."""

import math

import dask.array as da
import numpy as np
import pytest
from astropy.io import fits
from skimage.metrics import peak_signal_noise_ratio as psnr

from pipeline import cli, remove_stars
from pipeline.core.params import SURVEY
from pipeline.core.stretch import linearize, restretch
from pipeline.synthetic import make_survey_frame
from pipeline.tiling import tile_warning_filters

from cli_checks import assert_one_line_error

#: The knee of the generator's 8-bit display: astropy's AsinhStretch(0.1) on 255.
KNEE = 255.0 / math.asinh(10.0)


@pytest.fixture(scope="module")
def frame():
    return make_survey_frame((384, 384), seed=3, scale="stretched")


@pytest.fixture(scope="module")
def starless(frame):
    return remove_stars(frame.image, asinh_knee=KNEE)


def test_the_knee_of_astropys_asinh_stretch_inverts_it():
    from astropy.visualization import AsinhStretch

    linear = np.linspace(0.0, 1.0, 101)
    shown = 255.0 * AsinhStretch(a=0.1)(linear)
    np.testing.assert_allclose(linearize(shown, KNEE), KNEE / 0.1 * linear, rtol=1e-12,
                               atol=1e-12)


def test_a_known_stretch_is_fitted_on_its_linear_scale(frame, starless):
    """The same as fitting ``K sinh(y / K)`` and stretching the result back."""
    linear = KNEE * np.sinh(frame.image / KNEE)
    by_hand = KNEE * np.arcsinh(remove_stars(linear) / KNEE)
    np.testing.assert_allclose(starless, by_hand, rtol=0, atol=1e-9)
    assert not np.allclose(starless, remove_stars(frame.image), atol=0.5)


def test_a_known_stretch_helps_on_stretched_frames():
    """A display stretch flattens bright stars' cores, which the fit then finds wider
    than the PSF.  On the generator's 8-bit frames (384 x 384, seeds 0-3) the
    knee gained -0.59, +0.93, +0.80 and +4.23 dB."""
    gains = []
    for seed in range(4):
        frame = make_survey_frame((384, 384), seed=seed, scale="stretched")
        gains.append(psnr(frame.truth, remove_stars(frame.image, asinh_knee=KNEE),
                          data_range=255.0)
                     - psnr(frame.truth, remove_stars(frame.image), data_range=255.0))
    assert np.mean(gains) > 0.5


def test_nan_pixels_stay_and_the_input_is_not_modified(frame):
    image = frame.image.copy()
    image[100:104, 200:230] = np.nan
    before = image.copy()
    out = remove_stars(image, asinh_knee=KNEE)
    np.testing.assert_array_equal(image, before)
    assert np.array_equal(np.isnan(out), np.isnan(image))
    assert np.isfinite(out[~np.isnan(image)]).all()


def test_pixels_the_fit_leaves_come_back_to_the_bit():
    image = np.array([[3.0, 47.0, 255.0]])
    linear = linearize(image, KNEE)
    fitted = linear.copy()
    fitted[0, 2] -= 10.0
    back = restretch(fitted, linear, image, KNEE)
    assert back[0, 0] == 3.0 and back[0, 1] == 47.0
    assert back[0, 2] == pytest.approx(KNEE * math.asinh((linear[0, 2] - 10.0) / KNEE))


@pytest.mark.slow
def test_tiled_run_with_a_knee_matches_the_whole_frame(frame, starless):
    tiled = remove_stars(da.from_array(frame.image, chunks=192), asinh_knee=KNEE)
    with tile_warning_filters():
        tiled = tiled.compute()
    difference = np.abs(tiled - starless) / frame.noise_sigma
    # As for the survey preset without a knee (test_fitted_tiles): a rare flipped
    # decision near a tile's edge, nothing systematic.
    assert np.mean(difference > 0.25) < 1e-3
    assert difference.mean() < 2e-3


@pytest.mark.parametrize("knee, error", [
    (0.0, ValueError), (-85.0, ValueError), (float("nan"), ValueError),
    (float("inf"), ValueError), ("85", TypeError), (True, TypeError)])
def test_a_bad_knee_is_refused(knee, error):
    with pytest.raises(error, match="asinh_knee"):
        SURVEY.replace(asinh_knee=knee)


def test_a_knee_is_for_the_psf_fit_not_the_diffusion(frame):
    with pytest.raises(ValueError, match="asinh_knee applies to the PSF star model"):
        remove_stars(frame.image, preset="paper", asinh_knee=KNEE)


def test_a_knee_far_below_the_values_is_an_error_not_an_overflow(frame):
    with pytest.raises(ValueError, match=r"asinh_knee=0.1 is too small.*at least 0\.35"):
        remove_stars(frame.image, asinh_knee=0.1)
    with pytest.raises(ValueError, match="asinh_knee=0.1 is too small"):
        remove_stars(da.from_array(frame.image, chunks=192), asinh_knee=0.1)


def test_cli_takes_the_knee(tmp_path, frame, starless, capsys):
    source, out = tmp_path / "frame.npy", tmp_path / "starless.npy"
    np.save(source, frame.image)
    assert cli.main(["remove", str(source), "-o", str(out), "--asinh-knee", str(KNEE),
                     "--quiet"]) == 0
    np.testing.assert_allclose(np.load(out), starless, rtol=0, atol=1e-9)
    fits_out = tmp_path / "starless.fits"
    assert cli.main(["remove", str(source), "-o", str(fits_out), "--asinh-knee", str(KNEE),
                     "--quiet"]) == 0
    assert fits.getheader(fits_out)["DS_KNEE"] == pytest.approx(KNEE)
    capsys.readouterr()
    code = cli.main(["remove", str(source), "-o", str(tmp_path / "bad.npy"),
                     "--asinh-knee", "-3", "--quiet"])
    assert_one_line_error(code, capsys.readouterr().err, "asinh_knee=-3.0 must be > 0")


def test_a_config_takes_the_knee(tmp_path):
    from pipeline.config import ConfigError, load_config

    good = tmp_path / "good.yaml"
    good.write_text("parameters:\n  asinh_knee: 85.05\n")
    assert load_config(good).params().asinh_knee == 85.05
    bad = tmp_path / "bad.yaml"
    bad.write_text("preset: paper\nparameters:\n  asinh_knee: 85.05\n")
    with pytest.raises(ConfigError, match="asinh_knee"):
        load_config(bad)
