"""Resuming a lockstep run from a checkpoint gives the uninterrupted result."""

import json

import dask.array as da
import numpy as np
import pytest

from pipeline.core.params import resolve_parameters
from pipeline.io.checkpoint import ZarrCheckpoint, checkpoint_path
from pipeline.synthetic import make_survey_frame
from pipeline.tiling import frame_scalars, lockstep_diffuse


class _Crash(Exception):
    pass


def _setup(n_iter=30):
    image = np.array(make_survey_frame((192, 160), seed=7, scale="stretched",
                                       n_stars=80, n_galaxies=2).image)
    image[50, 60] = np.nan
    params = resolve_parameters("paper", n_iter=n_iter)
    scalars = frame_scalars(da.from_array(image, chunks=96), params)
    return image, params, scalars


def _checkpoint(path, image, every=8):
    return ZarrCheckpoint(path, shape=image.shape, chunks=(96, 80), history=4,
                          every=every, fingerprint={"case": "test", "n": 1})


def _run(image, params, scalars, checkpoint=None, crash_at=None):
    def progress(done):
        if crash_at is not None and done == crash_at:
            raise _Crash
    return lockstep_diffuse(image, params=params, scalars=scalars,
                            chunks=((96, 96), (80, 80)), halo=64,
                            checkpoint=checkpoint, progress=progress)


def test_resume_after_a_crash_equals_the_uninterrupted_run(tmp_path):
    image, params, scalars = _setup()
    expected, _ = _run(image, params, scalars)
    checkpoint = _checkpoint(tmp_path / "run.checkpoint", image)
    with pytest.raises(_Crash):
        _run(image, params, scalars, checkpoint=checkpoint, crash_at=21)
    assert checkpoint.iteration() == 16  # the last save before the crash
    resumed_from = []
    result, metrics = lockstep_diffuse(
        image, params=params, scalars=scalars, chunks=((96, 96), (80, 80)), halo=64,
        checkpoint=checkpoint, progress=resumed_from.append)
    assert resumed_from[0] == 16 and resumed_from[-1] == 30
    finite = np.isfinite(image)
    assert np.isnan(result[~finite]).all()
    np.testing.assert_allclose(result[finite], expected[finite], rtol=0, atol=1e-6)


def test_a_half_written_save_leaves_the_previous_checkpoint(tmp_path):
    image, params, scalars = _setup()
    checkpoint = _checkpoint(tmp_path / "c", image)
    with pytest.raises(_Crash):
        _run(image, params, scalars, checkpoint=checkpoint, crash_at=17)
    assert checkpoint.iteration() == 16

    # The process dies after writing part of the next save: nothing is committed.
    checkpoint.prepare(24, {"image": ((), "<f8")})
    checkpoint.write_part(24, (0, 96, 0, 80), {"image": np.zeros((96, 80))})
    assert checkpoint.iteration() == 16
    iteration, read = checkpoint.load()
    assert iteration == 16 and read("image", slice(0, 2), slice(0, 2)).shape == (2, 2)


def test_a_checkpoint_of_another_run_is_not_resumed(tmp_path):
    image, params, scalars = _setup()
    with pytest.raises(_Crash):
        _run(image, params, scalars, checkpoint=_checkpoint(tmp_path / "c", image),
             crash_at=9)
    other = ZarrCheckpoint(tmp_path / "c", shape=image.shape, chunks=(96, 80),
                           history=4, every=8, fingerprint={"case": "other"})
    assert other.load() is None
    pointer = json.loads((tmp_path / "c" / "pointer.json").read_text())
    assert pointer["iteration"] == 8


def test_checkpoint_path_and_interval():
    assert checkpoint_path("out/frame.zarr").name == "frame.zarr.checkpoint"
    with pytest.raises(ValueError, match="interval"):
        ZarrCheckpoint("x", shape=(4, 4), chunks=(4, 4), history=4, every=0,
                       fingerprint={})
