"""``destar remove`` killed with SIGKILL and started again resumes from its checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from astropy.io import fits

from pipeline.io import open_store, sha256_file, store_is_complete
from pipeline.io.checkpoint import checkpoint_path
from pipeline.run import default_checkpoint_every, remove_stars_file
from pipeline.synthetic import make_survey_frame

DESTAR = str(Path(sys.executable).with_name("destar"))
ROOT = Path(__file__).resolve().parents[1]


def _pointer_iteration(output: Path) -> int:
    try:
        return int(json.loads((checkpoint_path(output) / "pointer.json").read_text())
                   ["iteration"])
    except (OSError, ValueError, KeyError):
        return -1


@pytest.fixture(scope="module")
def fits_input(tmp_path_factory):
    image = make_survey_frame((256, 256), seed=21, n_stars=80, n_galaxies=2).image
    path = tmp_path_factory.mktemp("resume-in") / "frame.fits"
    fits.PrimaryHDU(np.asarray(image, dtype=np.float32)).writeto(path)
    return path


def test_sigkill_then_the_same_command_resumes(fits_input, tmp_path):
    digest = sha256_file(fits_input)
    out = tmp_path / "out.zarr"
    command = [DESTAR, "remove", str(fits_input), "-o", str(out), "--chunk", "128",
               "--preset", "paper", "--n-iter", "60", "--checkpoint-every", "10", "--quiet"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while _pointer_iteration(out) < 20:
            assert process.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint at iteration 20 in time"
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    killed_at = _pointer_iteration(out)
    assert 20 <= killed_at < 60
    assert not store_is_complete(out)  # nothing half-done looks done

    rerun = subprocess.run(command[:-1], cwd=ROOT, capture_output=True, text=True,
                           timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"resumed from iteration {killed_at}" in rerun.stdout
    ds = open_store(out)
    assert ds.attrs["resumed_from"] == killed_at
    assert not checkpoint_path(out).exists()  # removed once the store was complete

    expected = remove_stars_file(fits_input, tmp_path / "whole.zarr", chunk=128,
                                 preset="paper", overrides={"n_iter": 60}, checkpoint_every=0,
                                 progress=False)
    assert expected["resumed_from"] == 0
    reference = open_store(tmp_path / "whole.zarr")
    np.testing.assert_allclose(ds.starless.values, reference.starless.values,
                               rtol=0, atol=1e-6)
    for name in ("k", "bavg", "noise"):
        assert ds.attrs["measured"][name] == reference.attrs["measured"][name]
    assert sha256_file(fits_input) == digest


def _unfinished_store(path: Path) -> None:
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    group.create_array("starless", shape=(4, 4), dtype="f8")


def test_unfinished_store_is_the_runs_own_and_a_complete_one_is_refused(fits_input,
                                                                         tmp_path):
    out = tmp_path / "out.zarr"
    _unfinished_store(out)  # a writer that died before destar_complete
    summary = remove_stars_file(fits_input, out, chunk=128, preset="paper",
                                overrides={"n_iter": 10}, progress=False)
    assert store_is_complete(out) and summary["resumed_from"] == 0
    assert open_store(out).starless.shape == (256, 256)
    with pytest.raises(FileExistsError, match="complete destar store"):
        remove_stars_file(fits_input, out, chunk=128, preset="paper", overrides={"n_iter": 10},
                          progress=False)
    remove_stars_file(fits_input, out, chunk=128, preset="paper", overrides={"n_iter": 10},
                      progress=False, overwrite=True)
    assert store_is_complete(out)


def test_checkpoint_of_other_parameters_is_not_resumed(fits_input, tmp_path):
    from pipeline import run

    out = tmp_path / "out.zarr"

    class Stop(Exception):
        pass

    original = run._run_on

    def stop_after(client, array, params, *, halo, checkpoint, progress, notify=None):
        def hook(done):
            progress(done)
            if done == 15:
                raise Stop
        return original(client, array, params, halo=halo, checkpoint=checkpoint,
                        progress=hook, notify=notify)

    run._run_on = stop_after
    try:
        with pytest.raises(Stop):
            remove_stars_file(fits_input, out, chunk=128, preset="paper", overrides={"n_iter": 30},
                              checkpoint_every=5, progress=False)
    finally:
        run._run_on = original
    assert _pointer_iteration(out) == 15
    # Same output, other parameters: the checkpoint's fingerprint differs, start over.
    summary = remove_stars_file(fits_input, out, chunk=128,
                                preset="paper", overrides={"n_iter": 30, "gamma": 0.2},
                                checkpoint_every=5, progress=False)
    assert summary["resumed_from"] == 0
    assert not checkpoint_path(out).exists()


def test_default_checkpoint_interval():
    assert default_checkpoint_every(30) == 10
    assert default_checkpoint_every(200) == 50
