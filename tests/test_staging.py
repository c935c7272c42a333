"""The frame staged beside the output for a cluster's workers (pipeline.io.staging)."""

from __future__ import annotations

import pickle
import shutil

import dask.array as da
import numpy as np
import pytest
import zarr

from pipeline.io.staging import staged_frame, staging_path


@pytest.fixture
def frame():
    frame = np.random.default_rng(3).normal(100.0, 5.0, (1024, 1024))
    frame[10:20, 500:530] = np.nan  # masked pixels
    return frame


def test_the_staged_frame_reads_back_bit_for_bit_and_leaves_the_input_alone(frame,
                                                                            tmp_path):
    before = frame.copy()
    path = staging_path(tmp_path / "out.zarr")
    assert path.name == "out.zarr.frame"
    assert staging_path(tmp_path / "out.png", 2).name == "out.png.frame2"
    with staged_frame(frame, path, chunks=(256, 256)) as staged:
        assert staged.chunks == ((256,) * 4, (256,) * 4)
        assert path.is_dir()
        np.testing.assert_array_equal(staged.compute(), frame)  # NaN where NaN
        assert staged.compute().dtype == frame.dtype
    np.testing.assert_array_equal(frame, before)
    assert not path.exists()


def test_the_staged_frame_leaves_the_pixels_out_of_the_task_graph(frame, tmp_path):
    # What a client sends the scheduler: the graph of the tiles' input.  In memory it
    # carries the 8 MiB frame; staged, only where to read it.
    in_memory = da.from_array(frame, chunks=256)
    assert len(pickle.dumps(dict(in_memory.dask))) > frame.nbytes
    with staged_frame(frame, tmp_path / "f", chunks=(256, 256)) as staged:
        assert len(pickle.dumps(dict(staged.dask))) < 100_000


def test_the_staged_folder_goes_when_the_run_fails(frame, tmp_path):
    path = tmp_path / "out.zarr.frame"
    with pytest.raises(RuntimeError, match="tile failed"):
        with staged_frame(frame, path, chunks=(512, 512)):
            raise RuntimeError("tile failed")
    assert not path.exists()


def test_a_leftover_of_a_killed_run_is_replaced(frame, tmp_path):
    path = tmp_path / "out.zarr.frame"
    with staged_frame(frame, path, chunks=(512, 512)):
        leftover = tmp_path / "leftover"
        shutil.copytree(path, leftover)
    leftover.rename(path)
    other = frame[:512, :512] * 2
    with staged_frame(other, path, chunks=(256, 256)) as staged:
        np.testing.assert_array_equal(staged.compute(), other)


@pytest.mark.parametrize("kind", ["file", "folder", "zarr array"])
def test_a_folder_destar_did_not_write_is_never_overwritten(frame, tmp_path, kind):
    path = tmp_path / "out.zarr.frame"
    if kind == "file":
        path.write_text("mine")
    elif kind == "folder":
        path.mkdir()
        (path / "notes.txt").write_text("mine")
    else:
        zarr.create_array(str(path), shape=(4, 4), dtype="f8")[...] = 1.0
    with pytest.raises(ValueError, match="not a frame staged by destar"):
        with staged_frame(frame, path, chunks=(256, 256)):
            pass
    assert path.exists()
    if kind == "folder":
        assert (path / "notes.txt").read_text() == "mine"
    elif kind == "zarr array":
        assert zarr.open_array(str(path), mode="r")[...].sum() == 16.0


def test_only_a_2d_frame_is_staged(tmp_path):
    with pytest.raises(ValueError, match="2-D"):
        with staged_frame(np.zeros((4, 4, 3)), tmp_path / "f", chunks=(2, 2)):
            pass


class _Workers:
    """A stand-in for a ``distributed.Client``: what each worker's ``os.path.isdir``
    answers (``sees``), or an error for a scheduler that does not answer."""

    def __init__(self, sees):
        self.sees = sees

    def run(self, function, *args):
        if isinstance(self.sees, Exception):
            raise self.sees
        return {f"tcp://w{i}": sees and function(*args) for i, sees in enumerate(self.sees)}


@pytest.mark.parametrize("sees, expected", [((True, True), True), ((True, False), False),
                                            ((), False), (OSError("no answer"), False)])
def test_workers_see_a_folder_only_if_every_worker_finds_it(tmp_path, sees, expected):
    from pipeline.cluster import workers_see

    assert workers_see(_Workers(sees), tmp_path) is expected
    assert workers_see(_Workers((True,)), tmp_path / "absent") is False


@pytest.mark.parametrize("kind, sees, staged", [
    ("fits", (True, True), True),
    ("fits", (True, False), False),   # a folder of this machine's own: in the graph
    ("png", (), False),               # no worker up yet (a jobqueue cluster)
    ("zarr", (True, False), True),    # the workers write a store: its folder is shared
])
def test_a_cluster_run_stages_its_planes_only_where_the_workers_find_them(
        frame, tmp_path, kind, sees, staged):
    import contextlib

    from pipeline.run import _staged_for

    planes = [frame, frame[::-1]] if kind == "png" else [frame]
    output = tmp_path / f"out.{kind}"
    names = (["out.png.frame0", "out.png.frame1"] if kind == "png"
             else [f"out.{kind}.frame"])
    with contextlib.ExitStack() as stack:
        arrays = _staged_for(_Workers(sees), planes, output, chunks=(256, 256), kind=kind,
                             stack=stack)
        assert (arrays is not None) is staged
        present = sorted(path.name for path in tmp_path.iterdir())
        assert present == (names if staged else [])
        for array, plane in zip(arrays or [], planes):
            assert "from-zarr" in array.name
            np.testing.assert_array_equal(array.compute(), plane)
    assert list(tmp_path.iterdir()) == []
