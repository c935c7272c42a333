"""``destar remove``, run in-process through ``pipeline.cli.main``."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from PIL import Image

import pipeline
from pipeline import cli, remove_stars
from pipeline.io import open_store, sha256_file
from pipeline.synthetic import make_survey_frame

from cli_checks import assert_one_line_error

N_ITER = "12"
SIZE = 256


def _run(capsys, argv):
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def frame():
    return make_survey_frame((SIZE, SIZE), seed=9, n_stars=80, n_galaxies=2).image


@pytest.fixture(scope="module")
def fits_input(frame, tmp_path_factory):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [10.5, -30.25]
    w.wcs.crpix = [100.0, 120.0]
    w.wcs.cdelt = [-0.0003, 0.0003]
    header = w.to_header()
    header["OBJECT"] = "test field"
    path = tmp_path_factory.mktemp("in") / "frame.fits"
    fits.PrimaryHDU(frame.astype(np.float32), header=header).writeto(path)
    return path


def test_remove_to_zarr_prints_one_line_and_keeps_the_input(capsys, fits_input, tmp_path):
    digest = sha256_file(fits_input)
    out = tmp_path / "out.zarr"
    code, stdout, stderr = _run(capsys, ["remove", str(fits_input), "-o", str(out),
                                         "--preset", "paper", "--n-iter", N_ITER, "--chunk", "128"])
    assert code == 0, stderr
    assert len(stdout.strip().splitlines()) == 1
    assert str(out) in stdout and "256x256" in stdout
    assert f"{N_ITER}/{N_ITER}" in stderr  # the iteration bar goes to stderr
    assert sha256_file(fits_input) == digest
    ds = open_store(out)
    assert ds.starless.encoding["chunks"] == (128, 128)
    assert ds.attrs["parameters"]["n_iter"] == int(N_ITER)
    assert ds.attrs["input_sha256"] == digest


def test_remove_to_fits_keeps_wcs_and_records_parameters(capsys, fits_input, frame,
                                                         tmp_path):
    out = tmp_path / "starless.fits"
    code, _, stderr = _run(capsys, ["remove", str(fits_input), "-o", str(out),
                                    "--n-iter", N_ITER, "--preset", "paper"])
    assert code == 0, stderr
    with fits.open(out) as hdul:
        header, data = hdul[0].header, hdul[0].data
    assert data.shape == (SIZE, SIZE) and data.dtype.kind == "f" and data.dtype.itemsize == 4
    w_in, w_out = WCS(fits.getheader(fits_input)), WCS(header)
    np.testing.assert_allclose(w_out.wcs.crval, w_in.wcs.crval)
    np.testing.assert_allclose(w_out.wcs.crpix, w_in.wcs.crpix)
    assert list(w_out.wcs.ctype) == ["RA---TAN", "DEC--TAN"]
    assert header["OBJECT"] == "test field"
    history = " ".join(str(h) for h in header["HISTORY"])
    assert f"destar {pipeline.__version__}: stars removed with preset 'paper'" in history
    assert header["DS_PRST"] == "paper"
    assert header["DS_NITER"] == int(N_ITER)
    assert header["DS_GAMMA"] == 0.25
    assert header["DS_FORM"] == "finite"
    assert "DS_BAVG" in header  # undefined: measured on the image
    assert header["DS_INSHA"] == sha256_file(fits_input)
    expected = remove_stars(frame.astype(np.float32), preset="paper", n_iter=int(N_ITER))
    np.testing.assert_allclose(data, expected.astype(np.float32), rtol=1e-6, atol=1e-3)


def test_remove_to_npy_and_png(capsys, frame, tmp_path):
    source = tmp_path / "in.npy"
    np.save(source, frame)
    npy = tmp_path / "out.npy"
    code, _, err = _run(capsys, ["remove", str(source), "-o", str(npy), "--preset", "paper",
                                 "--n-iter", N_ITER, "--quiet"])
    assert code == 0, err
    assert "checkpoint" not in err
    result = np.load(npy)
    np.testing.assert_allclose(result, remove_stars(frame, preset="paper", n_iter=int(N_ITER)),
                               rtol=0, atol=1e-9)
    # Checkpoints asked for where there are none: said, not silently ignored.
    code, _, err = _run(capsys, ["remove", str(source), "-o", str(npy), "--preset", "paper",
                                 "--n-iter", N_ITER, "--checkpoint-every", "2", "--quiet",
                                 "--overwrite"])
    assert code == 0, err
    assert err.strip() == ("destar: warning: checkpoints are for .zarr outputs only: "
                           "out.npy is written once, at the end, and a killed run starts "
                           "again from the beginning")
    png = tmp_path / "out.png"
    code, _, err = _run(capsys, ["remove", str(source), "-o", str(png), "--preset", "paper",
                                 "--n-iter", N_ITER, "--quiet"])
    assert code == 0, err
    with Image.open(png) as im:
        picture = np.asarray(im)
    assert picture.shape == (SIZE, SIZE) and picture.dtype == np.uint8
    assert picture.min() == 0 and picture.max() == 255  # percentile display mapping


def test_quiet_prints_nothing(capfd, frame, tmp_path):
    source = tmp_path / "in.npy"
    np.save(source, frame)
    code = cli.main(["remove", str(source), "-o", str(tmp_path / "o.zarr"),
                     "--preset", "paper", "--n-iter", N_ITER, "--quiet"])
    out, err = capfd.readouterr()
    assert code == 0
    assert out == "" and err == ""


@pytest.fixture
def bad_inputs(tmp_path, frame):
    truncated = tmp_path / "truncated.fits"
    fits.PrimaryHDU(frame.astype(np.float32)).writeto(truncated)
    truncated.write_bytes(truncated.read_bytes()[:5000])
    corrupt = tmp_path / "corrupt.fits"
    corrupt.write_bytes(b"this is not a FITS file at all" * 100)
    no_image = tmp_path / "table.fits"
    table = fits.BinTableHDU.from_columns([fits.Column(name="a", format="E",
                                                       array=np.arange(5.0))])
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(no_image)
    good = tmp_path / "good.npy"
    np.save(good, frame)
    return {"truncated": truncated, "corrupt": corrupt, "no_image": no_image, "good": good}


@pytest.mark.parametrize("case, extra, fragments", [
    ("missing", [], ["no such file"]),
    ("folder", [], ["is a directory"]),
    ("missing_folder", [], ["no such file"]),
    ("truncated", [], ["truncated.fits"]),
    ("corrupt", [], ["corrupt.fits"]),
    ("no_image", [], ["no image data"]),
    ("exists", [], ["exists", "--overwrite"]),
    ("good", ["--preset", "nonsense"], ["unknown preset"]),
    ("good", ["--chunk", "big"], ["--chunk"]),
    ("good", ["--chunk", "0"], ["--chunk"]),
    ("good", ["--n-iter", "-3"], ["n_iter"]),
    ("bad_extension", [], ["unknown output extension"]),
])
def test_errors_are_one_line(capsys, bad_inputs, tmp_path, case, extra, fragments):
    output = tmp_path / "result.zarr"
    source = bad_inputs.get(case, bad_inputs["good"])
    if case == "missing":
        source = tmp_path / "absent.fits"
    if case == "folder":
        source = tmp_path / "frames"
        source.mkdir()
    if case == "missing_folder":
        source = tmp_path / "absent"
    if case == "exists":
        output.mkdir()
        (output / "zarr.json").write_text("{}")
    if case == "bad_extension":
        output = tmp_path / "result.xyz"
    digest = sha256_file(source) if source.is_file() else None
    code, out, err = _run(capsys, ["remove", str(source), "-o", str(output), "--preset", "paper",
                                   "--n-iter", "5", *extra])
    assert_one_line_error(code, err, *fragments)
    assert out == ""
    if digest is not None:
        assert sha256_file(source) == digest
    if case == "exists":
        assert (output / "zarr.json").read_text() == "{}"  # untouched


def test_overwrite_replaces_an_existing_output(capsys, frame, tmp_path):
    source = tmp_path / "in.npy"
    np.save(source, frame)
    out = tmp_path / "o.fits"
    out.write_bytes(b"old")
    code, _, err = _run(capsys, ["remove", str(source), "-o", str(out), "--preset", "paper",
                                 "--n-iter", "5", "--overwrite", "--quiet"])
    assert code == 0, err
    assert fits.getdata(out).shape == (SIZE, SIZE)


def test_plane_and_hdu_select_the_image(capsys, frame, tmp_path):
    cube = np.stack([frame, frame * 0.5]).astype(np.float32)
    path = tmp_path / "cube.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(cube, name="SCI")]).writeto(path)
    out = tmp_path / "plane.npy"
    code, _, err = _run(capsys, ["remove", str(path), "-o", str(out), "--hdu", "SCI",
                                 "--plane", "1", "--preset", "paper", "--n-iter", "5", "--quiet"])
    assert code == 0, err
    expected = remove_stars(cube[1], preset="paper", n_iter=5)
    np.testing.assert_allclose(np.load(out), expected, rtol=0, atol=1e-9)
    code, _, err = _run(capsys, ["remove", str(path), "-o", str(tmp_path / "x.npy"),
                                 "--preset", "paper", "--n-iter", "5"])
    assert_one_line_error(code, err, "--plane")


def test_frame_without_a_star_to_measure_says_what_to_do(capsys, tmp_path):
    """The default preset measures the PSF on the image: a starless frame is a
    one-line error that names the preset that needs no PSF, and no output."""
    source = tmp_path / "noise.npy"
    np.save(source, np.random.default_rng(0).normal(100.0, 5.0, (128, 128)))
    output = tmp_path / "out.fits"
    code, out, err = _run(capsys, ["remove", str(source), "-o", str(output), "--quiet"])
    assert_one_line_error(code, err, "no bright", "the 'paper' preset")
    assert out == "" and not output.exists()


@pytest.fixture(scope="module")
def colour_png(tmp_path_factory):
    """An 8-bit RGB picture whose channels are three stretched survey frames."""
    channels = [make_survey_frame((SIZE, SIZE), seed=seed, n_stars=80, n_galaxies=2,
                                  scale="stretched").image for seed in (21, 22, 23)]
    rgb = np.clip(np.round(np.stack(channels, axis=-1)), 0, 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("colour") / "rgb.png"
    Image.fromarray(rgb).save(path)
    return path, rgb


def test_a_colour_picture_goes_channel_by_channel(tmp_path, colour_png, capsys):
    path, rgb = colour_png
    before = sha256_file(path)
    out = tmp_path / "starless.npy"
    code, stdout, _ = _run(capsys, ["remove", str(path), "-o", str(out)])
    assert code == 0
    assert f"{SIZE}x{SIZE}x3 px" in stdout
    starless = np.load(out)
    assert starless.shape == rgb.shape
    np.testing.assert_allclose(starless, remove_stars(rgb, channel_axis=-1), atol=1e-9)
    assert sha256_file(path) == before
    picture = tmp_path / "starless.png"
    assert _run(capsys, ["remove", str(path), "-o", str(picture), "--quiet"])[0] == 0
    np.testing.assert_array_equal(np.asarray(Image.open(picture)),
                                  np.clip(np.round(starless), 0, 255).astype(np.uint8))


def test_a_colour_picture_into_a_store_is_a_clear_error(tmp_path, colour_png, capsys):
    path, _ = colour_png
    code, _, err = _run(capsys, ["remove", str(path), "-o", str(tmp_path / "out.zarr")])
    assert_one_line_error(code, err, "colour image", ".zarr store holds one plane")
    assert not (tmp_path / "out.zarr").exists()
