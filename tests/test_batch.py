"""``destar run`` batches, ``destar info``, and the faults of one frame: one line each."""

from __future__ import annotations

import errno
import os
import socket

import numpy as np
import pytest
import yaml
from astropy.io import fits

from pipeline import DEFAULT_PRESET, cli
from pipeline.io import open_store, sha256_file, store_is_complete
from pipeline.io.checkpoint import checkpoint_path
from pipeline.run import output_is_done, recorded_settings
from pipeline.synthetic import make_survey_frame

from cli_checks import assert_one_line_error

SIZE = 128


def _frame(seed=3):
    return make_survey_frame((SIZE, SIZE), seed=seed, n_stars=30, n_galaxies=1).image


@pytest.fixture
def inputs(tmp_path):
    """A good FITS frame and the faulty inputs of the issue."""
    raw = tmp_path / "raw"
    raw.mkdir()
    image = np.asarray(_frame(), dtype=np.float32)
    fits.PrimaryHDU(image).writeto(raw / "good.fits")
    fits.PrimaryHDU(image).writeto(raw / "truncated.fits")
    (raw / "truncated.fits").write_bytes((raw / "truncated.fits").read_bytes()[:4000])
    (raw / "corrupt.fits").write_bytes(b"SIMPLE  =   garbage, not a FITS file" * 90)
    table = fits.BinTableHDU.from_columns([fits.Column(name="a", format="E",
                                                       array=np.arange(3.0))])
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(raw / "table.fits")
    fits.PrimaryHDU(np.stack([image, image])).writeto(raw / "cube.fits")
    np.save(raw / "line.npy", np.arange(50.0))  # wrong shape: 1-D
    return raw


def _config(tmp_path, inputs, **extra):
    data = {"inputs": [str(inputs), str(tmp_path / "absent.fits")],
            "output": str(tmp_path / "out"), "preset": "paper", "parameters": {"n_iter": 8},
            "chunk": 64, **extra}
    path = tmp_path / "batch.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_batch_reports_each_failed_frame_in_one_line_and_goes_on(tmp_path, inputs,
                                                                  capsys):
    digests = {p.name: sha256_file(p) for p in inputs.iterdir()}
    config = _config(tmp_path, inputs)
    code = cli.main(["run", str(config), "--quiet"])
    out, err = capsys.readouterr()
    assert code == 1
    failures = err.strip().splitlines()
    assert len(failures) == 6, err
    assert "Traceback" not in err
    expected = {"truncated.fits": "truncated", "corrupt.fits": "corrupt.fits",
                "table.fits": "no image data", "cube.fits": "plane",
                "line.npy": "not a 2-D image", "absent.fits": "no such file"}
    for name, fragment in expected.items():
        line = [f for f in failures if name in f]
        assert len(line) == 1 and fragment in line[0], (name, err)
    assert out.strip() == "7 frames: 1 done, 0 skipped, 6 failed, " + \
        out.strip().split(", ")[-1]
    assert out.strip().endswith(" s")
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["good.zarr"]  # nothing for the frames that failed
    assert store_is_complete(tmp_path / "out" / "good.zarr")
    assert {p.name: sha256_file(p) for p in inputs.iterdir()} == digests

    # Again: the finished frame is skipped, the others fail again.
    code = cli.main(["run", str(config), "--quiet"])
    out, err = capsys.readouterr()
    assert code == 1 and "1 skipped, 6 failed" in out


def test_frames_side_by_side_give_what_one_at_a_time_gives(tmp_path, inputs, capsys):
    # Three processes for the good frames and the faulty ones alike: the same stores,
    # the same one-line failures, the same summary.
    np.save(inputs / "good2.npy", _frame(seed=5))
    digests = {p.name: sha256_file(p) for p in inputs.iterdir()}
    results = {}
    for at_once in (1, 3):
        config = _config(tmp_path, inputs, output=str(tmp_path / f"out{at_once}"))
        code = cli.main(["run", str(config), "--quiet", "--frames-at-once", str(at_once)])
        out, err = capsys.readouterr()
        assert code == 1 and "Traceback" not in err
        assert "8 frames: 2 done, 0 skipped, 6 failed" in out
        results[at_once] = (sorted(err.strip().splitlines()),
                            {name: open_store(tmp_path / f"out{at_once}" / name).starless.values
                             for name in ("good.zarr", "good2.zarr")})
    assert results[3][0] == results[1][0]
    for name, starless in results[1][1].items():
        np.testing.assert_array_equal(results[3][1][name], starless)
    assert {p.name: sha256_file(p) for p in inputs.iterdir()} == digests
    # A finished batch is skipped by the processes' parent, frame by frame.
    config = _config(tmp_path, inputs, output=str(tmp_path / "out3"))
    assert cli.main(["run", str(config), "--quiet", "--frames-at-once", "3"]) == 1
    assert "2 skipped, 6 failed" in capsys.readouterr().out


@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_frames_at_once_below_one_is_a_one_line_error(tmp_path, capsys, value):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"inputs": ["raw"], "output": "out"}))
    code = cli.main(["run", str(config), "--frames-at-once", value])
    assert_one_line_error(code, capsys.readouterr().err, "--frames-at-once", ">= 1")
    assert not (tmp_path / "out").exists()


def test_batch_without_failures_exits_zero_and_skips_finished(tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    for seed in (1, 2):
        np.save(raw / f"f{seed}.npy", _frame(seed))
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"inputs": ["raw"], "output": "out", "format": "npy",
                                      "preset": "paper", "parameters": {"n_iter": 6}}))
    assert cli.main(["run", str(config), "--quiet"]) == 0
    assert "2 done, 0 skipped, 0 failed" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["f1.npy", "f2.npy"]
    assert cli.main(["run", str(config), "--quiet"]) == 0
    assert "0 done, 2 skipped, 0 failed" in capsys.readouterr().out
    # --format on the command line overrides the file's
    assert cli.main(["run", str(config), "--format", "fits", "--quiet"]) == 0
    assert "2 done" in capsys.readouterr().out
    assert (tmp_path / "out" / "f1.fits").is_file()


def test_batch_without_a_preset_runs_the_default_and_records_only_what_it_reads(
        tmp_path, capsys):
    np.save(tmp_path / "a.npy", make_survey_frame((256, 256), seed=0).image)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"inputs": ["a.npy"], "output": "out",
                                      "format": "fits"}))
    assert cli.main(["run", str(config), "--quiet"]) == 0
    header = fits.getheader(tmp_path / "out" / "a.fits")
    assert header["DS_PRST"] == DEFAULT_PRESET == "survey"
    assert header["DS_STARM"] == "psf"
    # The PSF model runs no diffusion: no iteration count or step size is recorded.
    assert "DS_NITER" not in header and "DS_GAMMA" not in header
    assert "n_iter" not in str(header["HISTORY"])


def test_batch_refuses_an_output_folder_that_would_overwrite_its_inputs(tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    fits.PrimaryHDU(np.asarray(_frame(), np.float32)).writeto(frames / "b.fits")
    digest = sha256_file(frames / "b.fits")
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"inputs": ["frames/*.fits"], "output": "frames",
                                      "format": "fits", "preset": "paper",
                                      "parameters": {"n_iter": 6}}))
    code = cli.main(["run", str(config), "--quiet"])
    assert_one_line_error(code, capsys.readouterr().err, "would be written over its input")
    assert sha256_file(frames / "b.fits") == digest


@pytest.mark.parametrize("fmt", ["fits", "zarr"])
def test_a_finished_output_made_with_other_settings_is_reported_not_skipped(tmp_path,
                                                                            capsys, fmt):
    np.save(tmp_path / "a.npy", _frame())
    config = tmp_path / "c.yaml"
    settings = {"inputs": ["a.npy"], "output": "out", "format": fmt, "chunk": 64,
                "preset": "paper", "parameters": {"n_iter": 6}}
    config.write_text(yaml.safe_dump(settings))
    assert cli.main(["run", str(config), "--quiet"]) == 0
    output = tmp_path / "out" / f"a.{fmt}"
    assert output_is_done(output, fmt)
    # The same settings: skipped.
    assert cli.main(["run", str(config), "--quiet"]) == 0
    assert "0 done, 1 skipped, 0 failed" in capsys.readouterr().out
    recorded = recorded_settings(output, fmt)
    assert recorded["preset"] == "paper" and recorded["n_iter"] == 6
    # Other settings: the frame fails, naming what differs, and the output stays.
    for changed in ({"preset": "reference"}, {"parameters": {"n_iter": 7}}):
        config.write_text(yaml.safe_dump({**settings, **changed}))
        assert cli.main(["run", str(config), "--quiet"]) == 1
        out, err = capsys.readouterr()
        assert "0 done, 0 skipped, 1 failed" in out
        assert "made with other settings" in err and "--overwrite" in err
        assert ("'paper' there, 'reference' here" in err if "preset" in changed
                else "n_iter: 6 there, 7 here" in err)
        assert recorded_settings(output, fmt) == recorded
    assert cli.main(["run", str(config), "--quiet", "--overwrite"]) == 0
    assert recorded_settings(output, fmt)["n_iter"] == 7


def test_batch_progress_bars_go_to_stderr(tmp_path, capsys):
    np.save(tmp_path / "a.npy", _frame())
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"inputs": ["a.npy"], "output": "out",
                                      "preset": "paper", "parameters": {"n_iter": 6}}))
    assert cli.main(["run", str(config)]) == 0
    out, err = capsys.readouterr()
    assert "frames" in err and "1/1" in err  # the bar over frames
    assert "a.npy" in err and "/6 " in err  # the bar over the iterations of a frame
    assert "1 done" in out


def test_info_prints_what_the_store_holds(tmp_path, capsys):
    source = tmp_path / "in.fits"
    fits.PrimaryHDU(np.asarray(_frame(), dtype=np.float32)).writeto(source)
    out = tmp_path / "o.zarr"
    assert cli.main(["remove", str(source), "-o", str(out), "--preset", "paper", "--n-iter",
                     "6", "--chunk", "64", "--quiet"]) == 0
    assert cli.main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    attrs = open_store(out).attrs
    for fragment in ("starless", "stars", "mask", "128x128", "float64", "chunks 64x64",
                     "preset: paper", "n_iter=6", sha256_file(source), str(source),
                     attrs["created"], "bavg", "noise", "k ", "row_start",
                     "stopped_fraction", "flux_removed", "(4 tiles)"):
        assert fragment in text, fragment
    assert f"{attrs['measured']['bavg']:.6g}" in text
    # The reference preset's bavg is given, not measured, and it measures no noise.
    reference = tmp_path / "r.zarr"
    assert cli.main(["remove", str(source), "-o", str(reference), "--preset", "reference",
                     "--n-iter", "6", "--chunk", "64", "--quiet"]) == 0
    assert cli.main(["info", str(reference)]) == 0
    assert set(open_store(reference).attrs["measured"]) == {"k"}
    assert "measured        k " in capsys.readouterr().out
    # An unfinished store is refused in one line.
    (tmp_path / "half.zarr").mkdir()
    (tmp_path / "half.zarr" / "zarr.json").write_text(
        '{"zarr_format": 3, "node_type": "group", "attributes": {}}')
    code = cli.main(["info", str(tmp_path / "half.zarr")])
    assert_one_line_error(code, capsys.readouterr().err, "incomplete")


# --------------------------------------------------------------------------- faults
@pytest.mark.parametrize("name, extra, fragments", [
    ("absent.fits", [], ["no such file"]),
    ("truncated.fits", [], ["truncated.fits", "truncated"]),
    ("corrupt.fits", [], ["corrupt.fits"]),
    ("table.fits", [], ["no image data"]),
    ("cube.fits", [], ["cube.fits", "plane"]),
    ("line.npy", [], ["not a 2-D image"]),
])
def test_remove_faults_are_one_line_and_write_nothing(tmp_path, inputs, capsys, name,
                                                      extra, fragments):
    source = inputs / name
    digest = sha256_file(source) if source.exists() else None
    out = tmp_path / "o.zarr"
    code = cli.main(["remove", str(source), "-o", str(out), "--preset", "paper", "--n-iter", "5",
                     *extra])
    captured = capsys.readouterr()
    assert_one_line_error(code, captured.err, *fragments)
    assert captured.out == ""
    assert not out.exists() and not checkpoint_path(out).exists()
    if digest is not None:
        assert sha256_file(source) == digest


def test_unwritable_output_folder(tmp_path, inputs, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user (root) who can write to a 0o500 folder")
        code = cli.main(["remove", str(inputs / "good.fits"), "-o",
                         str(locked / "o.zarr"), "--preset", "paper", "--n-iter", "5"])
        assert_one_line_error(code, capsys.readouterr().err, "not writable", str(locked))
        config = tmp_path / "c.yaml"
        config.write_text(yaml.safe_dump({"inputs": [str(inputs / "good.fits")],
                                          "output": str(locked / "sub")}))
        code = cli.main(["run", str(config)])
        assert_one_line_error(code, capsys.readouterr().err, str(locked / "sub"))
    finally:
        locked.chmod(0o700)


def test_output_folder_that_even_root_cannot_write(tmp_path, inputs, capsys):
    if not os.path.isdir("/proc/self"):
        pytest.skip("needs Linux /proc")
    for out in ("/proc/o.zarr", "/proc/o.fits"):
        code = cli.main(["remove", str(inputs / "good.fits"), "-o", out, "--preset", "paper",
                         "--n-iter", "5"])
        assert_one_line_error(code, capsys.readouterr().err, "not writable", "/proc")
    assert not os.path.exists("/proc/o.zarr.checkpoint")


def test_full_disk_is_one_line_leaves_no_complete_output_and_resumes(tmp_path, inputs,
                                                                      capsys, monkeypatch):
    import pipeline.io.store as store

    source = inputs / "good.fits"
    digest = sha256_file(source)
    out = tmp_path / "o.zarr"

    def full(*args, **kwargs):  # the data chunks are written, then the disk is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out / "tile"))

    monkeypatch.setattr(store, "_metric_rows", full)
    argv = ["remove", str(source), "-o", str(out), "--preset", "paper", "--n-iter", "20",
            "--chunk", "64", "--checkpoint-every", "5", "--quiet"]
    code = cli.main(argv)
    assert_one_line_error(code, capsys.readouterr().err, "No space left on device")
    assert not out.exists()  # the half-written store was removed
    assert checkpoint_path(out).exists()  # the run's state was kept
    assert sha256_file(source) == digest

    monkeypatch.undo()
    assert cli.main(argv[:-1]) == 0
    assert "resumed from iteration 15" in capsys.readouterr().out
    assert store_is_complete(out) and not checkpoint_path(out).exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_is_one_line(tmp_path, inputs, capsys):
    address = f"tcp://127.0.0.1:{_free_port()}"
    out = tmp_path / "o.zarr"
    code = cli.main(["remove", str(inputs / "good.fits"), "-o", str(out), "--preset", "paper",
                     "--n-iter", "5", "--scheduler", address, "--quiet"])
    assert_one_line_error(code, capsys.readouterr().err, "cannot reach the Dask scheduler",
                    address)
    assert not out.exists()
    code = cli.main(["remove", str(inputs / "good.fits"), "-o", str(out), "--preset", "paper",
                     "--n-iter", "5", "--scheduler", "head-node:8786", "--quiet"])
    assert_one_line_error(code, capsys.readouterr().err, "tcp://")
