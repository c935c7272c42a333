"""A frame through a real Dask cluster (a scheduler and two workers started here).

The tiles run as Dask actors on the workers (``--scheduler tcp://...``).  The result
equals the local run.  Dask does not retry actors (they are not tasks), so a worker
killed mid-run is handled by destar: the tiles are created again on the worker that is
left and the run resumes from its checkpoint, with one warning line, and the result
equals the uninterrupted run's.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from pipeline.io import open_store, sha256_file
from pipeline.io.checkpoint import checkpoint_path
from pipeline.io.staging import staging_path
from pipeline.run import remove_stars_file
from pipeline.synthetic import make_survey_frame

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cluster(tmp_path):
    """``(address, {worker address: Popen})``: a scheduler and two 1-thread workers."""
    from distributed import Client

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = tmp_path / "logs"
    logs.mkdir()
    processes = []

    def start(name, *args):
        log = open(logs / f"{name}.log", "w")
        process = subprocess.Popen([str(BIN / "dask"), *args], cwd=ROOT, stdout=log,
                                   stderr=subprocess.STDOUT)
        processes.append(process)
        return process

    try:
        start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", str(port),
              "--no-dashboard")
        workers = [start(f"worker{i}", "worker", address, "--nthreads", "1", "--no-nanny",
                         "--no-dashboard") for i in (1, 2)]
        with Client(address, timeout="30s", set_as_default=False) as client:
            client.wait_for_workers(2, timeout=60)
            pids = client.run(os.getpid)
        by_pid = {w.pid: w for w in workers}
        yield address, {addr: by_pid[pid] for addr, pid in pids.items()}
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def fits_input(tmp_path_factory):
    image = make_survey_frame((256, 256), seed=13, n_stars=80, n_galaxies=2).image
    path = tmp_path_factory.mktemp("dist-in") / "frame.fits"
    fits.PrimaryHDU(np.asarray(image, dtype=np.float32)).writeto(path)
    return path


def test_cluster_run_equals_the_local_run(cluster, fits_input, tmp_path):
    address, _ = cluster
    digest = sha256_file(fits_input)
    kwargs = dict(chunk=128, preset="paper", overrides={"n_iter": 20}, progress=False)
    remote = remove_stars_file(fits_input, tmp_path / "remote.zarr", scheduler=address,
                               **kwargs)
    local = remove_stars_file(fits_input, tmp_path / "local.zarr", **kwargs)
    assert remote["tiles"] == 4
    a = open_store(tmp_path / "remote.zarr").starless.values
    b = open_store(tmp_path / "local.zarr").starless.values
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)
    assert remote["bavg"] == local["bavg"] and remote["k"] == local["k"]
    assert sha256_file(fits_input) == digest


def test_streamed_cluster_run_equals_the_local_run(cluster, fits_input, tmp_path):
    # theta from one 64 x 64 sample block: the sample runs as actors, then the tiles
    # as plain tasks on the workers, which read the frame staged beside the output and
    # write the store's chunks.
    address, _ = cluster
    kwargs = dict(chunk=128, preset="paper", overrides={"n_iter": 20, "threshold_sample": 64 * 64},
                  progress=False)
    staged = staging_path(tmp_path / "remote.zarr")
    staged.mkdir()
    (staged / "notes.txt").write_text("not destar's")
    with pytest.raises(ValueError, match="not a frame staged by destar"):
        remove_stars_file(fits_input, tmp_path / "remote.zarr", scheduler=address, **kwargs)
    assert (staged / "notes.txt").read_text() == "not destar's"
    shutil.rmtree(staged)
    remote = remove_stars_file(fits_input, tmp_path / "remote.zarr", scheduler=address,
                               **kwargs)
    assert not staged.exists()
    local = remove_stars_file(fits_input, tmp_path / "local.zarr", **kwargs)
    remote_store = open_store(tmp_path / "remote.zarr")
    assert remote["tiles"] == 4 and remote_store.attrs["checkpoint_every"] == 0
    np.testing.assert_allclose(remote_store.starless.values,
                               open_store(tmp_path / "local.zarr").starless.values,
                               rtol=0, atol=1e-9)
    assert remote_store.attrs["thetas"] == open_store(tmp_path / "local.zarr").attrs["thetas"]
    assert local["tiles_reused"] == 0


def test_a_colour_picture_on_the_cluster_reads_each_channel_staged(cluster, tmp_path):
    # Whatever the output's format, the workers read their tiles' windows from the
    # frame staged beside the output (tasks "from-zarr-..."), not from the frame sent
    # inside the graph ("array-..."); each colour channel is staged on its own.
    from distributed import Client, get_task_stream
    from PIL import Image

    address, _ = cluster
    grey = make_survey_frame((256, 256), seed=13, n_stars=80, n_galaxies=2,
                             scale="stretched").image
    rgb = np.clip(np.round(np.stack([grey, grey[::-1], grey.T], axis=-1)), 0, 255)
    source, output = tmp_path / "rgb.png", tmp_path / "out.png"
    Image.fromarray(rgb.astype(np.uint8)).save(source)
    digest = sha256_file(source)
    with Client(address, timeout="30s", set_as_default=False) as client:
        with get_task_stream(client=client) as stream:
            remote = remove_stars_file(source, output, chunk=128, scheduler=address,
                                       progress=False)
    local = remove_stars_file(source, tmp_path / "local.png", chunk=128, progress=False)
    keys = [str(record["key"]) for record in stream.data]
    assert remote["tiles"] == local["tiles"] == 4 * 3
    assert len({key for key in keys if "original-from-zarr" in key}) == 4 * 3
    assert not any("array-" in key for key in keys), keys
    np.testing.assert_array_equal(np.asarray(Image.open(output)),
                                  np.asarray(Image.open(tmp_path / "local.png")))
    assert sha256_file(source) == digest
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "local.png", "logs", "out.png", "rgb.png"]  # no staged folder left


def test_each_tile_runs_once_on_the_cluster(cluster, fits_input, tmp_path):
    # The scheduler optimises the graph it is sent with its own settings: fusing a
    # tile into the task that writes its chunk would rename it, and the same tile would
    # run a second time, on another worker, for the per-tile metrics.
    from distributed import Client, get_task_stream

    address, _ = cluster
    with Client(address, timeout="30s", set_as_default=False) as client:
        with get_task_stream(client=client) as stream:
            summary = remove_stars_file(fits_input, tmp_path / "out.zarr", chunk=128,
                                        scheduler=address, progress=False)
    tile_tasks = [record["key"] for record in stream.data
                  if "destar-tile" in str(record["key"])]
    assert summary["tiles"] == 4
    assert len(tile_tasks) == 4, tile_tasks


def test_frames_side_by_side_on_the_cluster_equal_the_local_run(cluster, fits_input,
                                                                 tmp_path):
    # Two processes, each connected to the scheduler, each sending its frame's tiles.
    import yaml
    from distributed import Client, get_task_stream

    from pipeline.config import load_config
    from pipeline.run import run_batch

    address, _ = cluster
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(fits_input, raw / "a.fits")
    np.save(raw / "b.npy", np.asarray(fits.getdata(fits_input))[::-1].copy())
    config = tmp_path / "batch.yaml"
    config.write_text(yaml.safe_dump({"inputs": ["raw"], "output": "out", "chunk": 128,
                                      "frames_at_once": 2, "scheduler": address}))
    with Client(address, timeout="30s", set_as_default=False) as client:
        with get_task_stream(client=client) as stream:
            result = run_batch(load_config(config), progress=False)
    assert (result["done"], result["failed"]) == (2, [])
    # The tiles ran on the cluster's workers, each once.
    assert sum("destar-tile" in str(record["key"]) for record in stream.data) == 8
    for name in ("a", "b"):
        local = remove_stars_file(next(raw.glob(f"{name}.*")), tmp_path / f"{name}.npy",
                                  chunk=128, progress=False)
        assert local["tiles"] == 4
        np.testing.assert_array_equal(open_store(tmp_path / "out" / f"{name}.zarr")
                                      .starless.values, np.load(tmp_path / f"{name}.npy"))


def _pointer_iteration(output: Path) -> int:
    try:
        return int(json.loads((checkpoint_path(output) / "pointer.json").read_text())
                   ["iteration"])
    except (OSError, ValueError, KeyError):
        return -1


def test_a_killed_worker_is_replaced_by_resuming_on_the_other(cluster, fits_input,
                                                                tmp_path):
    from distributed import Client

    address, workers = cluster
    out = tmp_path / "out.zarr"
    command = [str(BIN / "destar"), "remove", str(fits_input), "-o", str(out), "--chunk",
               "128", "--preset", "paper", "--n-iter", "150", "--checkpoint-every", "10",
               "--scheduler", address, "--quiet"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while _pointer_iteration(out) < 20:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no checkpoint at iteration 20 in time"
            time.sleep(0.02)
        # Kill a worker that holds some of the tiles (actors).
        with Client(address, timeout="10s", set_as_default=False) as client:
            holding = [w for w, keys in client.has_what().items()
                       if any("_Tile" in str(k) for k in keys)]
        victim = holding[0]
        os.kill(workers[victim].pid, signal.SIGKILL)
        stdout, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert stdout == "" and "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("destar: warning:")
    assert victim in lines[0] and "resuming from iteration" in lines[0]
    store = open_store(out)
    assert store.attrs["resumed_from"] >= 20
    assert not checkpoint_path(out).exists()

    expected = tmp_path / "local.npy"
    remove_stars_file(fits_input, expected, chunk=128, preset="paper", overrides={"n_iter": 150},
                      progress=False)
    np.testing.assert_allclose(store["starless"].values, np.load(expected), rtol=0,
                               atol=1e-6)
