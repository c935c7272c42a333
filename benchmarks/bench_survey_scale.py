"""Survey scale: a large float32 FITS frame through ``destar remove`` into Zarr.

    python benchmarks/bench_survey_scale.py --sizes 3072 6144 --n-iter 100 --chunk 1024
    python benchmarks/bench_survey_scale.py --sizes 3072 6144 --preset survey

For each frame size it writes a simulated float32 FITS frame to ``--workdir``, runs
the command-line tool on it in a child process, and reports

- wall time and throughput (frame pixels x iterations / wall time; halo work is not
  counted, as the survey-scale issue defines it; for the ``survey`` preset, which has
  no iterations, frame pixels / wall time),
- the child's peak resident memory (``ru_maxrss`` of the finished child),
- where the time went: the theta sample blocks of a streamed run (the store's
  ``theta_sample_seconds``; for ``survey``, the frame's PSF, ``psf_seconds``), compute
  inside the tiles (the per-tile ``seconds`` of the store, divided by the cores when
  tiles run side by side), the halo overhead (extended-tile pixels over frame pixels),
  and the rest (reading, frame statistics, writing, start-up).

With ``--cluster`` the tiles run on a Dask cluster started here (a scheduler and two
one-thread workers, as ``dask scheduler`` / ``dask worker`` would start them on a
cluster), passed to the tool as ``--scheduler``; the row then also has the peak resident
memory of the scheduler and of the larger worker (``VmHWM``), which shows what the
task graph carries.

Two sizes show whether peak memory stays flat as the frame grows.  With
``--compare-lockstep`` every size also runs with theta from the whole frame
(``threshold_sample: null`` in a config), that is with the tiles in lockstep, side by
side with the streamed run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from astropy.io import fits

from pipeline.synthetic import make_survey_frame


def write_frame(path: Path, size: int, seed: int) -> None:
    """A linear, float32 survey-like frame.

    One 2048-px simulated piece (simulating a whole 6144-px frame star by star takes
    minutes) is laid out over the frame, each copy flipped differently, so that no
    tile sees the same pixels at the same place.
    """
    piece = 2048
    frame = make_survey_frame((piece, piece), seed=seed, scale="linear",
                              n_stars=int(400 * (piece / 512) ** 2),
                              n_galaxies=int(8 * (piece / 512) ** 2))
    source = np.asarray(frame.image, dtype=np.float32)
    data = np.empty((size, size), np.float32)
    for r in range(0, size, piece):
        for c in range(0, size, piece):
            flips = (r // piece + 2 * (c // piece)) % 4
            block = source[:: -1 if flips & 1 else 1, :: -1 if flips & 2 else 1]
            data[r:r + piece, c:c + piece] = block[: size - r, : size - c]
    fits.PrimaryHDU(data).writeto(path, overwrite=True)


def run_child(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (GiB) of one child process (its own ``ru_maxrss``)."""
    start = time.perf_counter()
    child = subprocess.Popen(command)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise subprocess.CalledProcessError(child.returncode, command)
    return seconds, usage.ru_maxrss / 2**20


def peak_rss_gib(pid: int) -> float:
    """Peak resident memory of a running process (``VmHWM``), GiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    raise RuntimeError(f"no VmHWM for process {pid}")


@contextlib.contextmanager
def local_cluster(workdir: Path):
    """``(address, scheduler process, worker processes)``: a scheduler and two
    one-thread worker processes, stopped on exit."""
    from distributed import Client

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    dask_cli = str(Path(sys.executable).with_name("dask"))
    logs = [open(workdir / f"{name}.log", "w") for name in ("scheduler", "worker1", "worker2")]
    scheduler = subprocess.Popen([dask_cli, "scheduler", "--host", "127.0.0.1", "--port",
                                  str(port), "--no-dashboard"], stdout=logs[0],
                                 stderr=subprocess.STDOUT)
    workers = [subprocess.Popen([dask_cli, "worker", address, "--nthreads", "1",
                                 "--no-nanny", "--no-dashboard"], stdout=log,
                                stderr=subprocess.STDOUT) for log in logs[1:]]
    try:
        with Client(address, timeout="60s", set_as_default=False) as client:
            client.wait_for_workers(2, timeout=60)
        yield address, scheduler, workers
    finally:
        for process in [*workers, scheduler]:
            process.terminate()
            process.wait(timeout=30)
        for log in logs:
            log.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[3072, 6144])
    parser.add_argument("--n-iter", type=int, default=100,
                        help="iterations of the diffusion presets (survey has none)")
    parser.add_argument("--chunk", type=int, default=1024)
    parser.add_argument("--preset", default="paper",
                        choices=["paper", "reference", "survey"])
    parser.add_argument("--workdir", default="bench-output/survey-scale")
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--compare-lockstep", action="store_true",
                        help="also run every size with theta from the whole frame")
    parser.add_argument("--cluster", action="store_true",
                        help="run the tiles on a local Dask cluster (scheduler and two "
                             "one-thread workers) and report their peak memory")
    args = parser.parse_args(argv)
    fitted = args.preset == "survey"
    if fitted and args.compare_lockstep:
        parser.error("--compare-lockstep is for the diffusion presets: survey tiles "
                     "always run independently")
    n_iter = 1 if fitted else args.n_iter   # (survey: pixels per second)

    import xarray as xr

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    destar = str(Path(sys.executable).with_name("destar"))
    rows = []
    lockstep_config = workdir / "whole-frame-theta.yaml"
    lockstep_config.write_text("parameters:\n  threshold_sample: null\n")
    modes = [False, True] if args.compare_lockstep else [False]
    for size, lockstep in [(size, mode) for size in sorted(args.sizes) for mode in modes]:
        frame = workdir / f"frame-{size}.fits"
        if not frame.exists():
            write_frame(frame, size, seed=11)
        output = workdir / f"frame-{size}.zarr"
        command = [destar, "remove", str(frame), "-o", str(output), "--chunk",
                   str(args.chunk), "--preset", args.preset, "--overwrite", "--quiet"]
        if not fitted:
            command += ["--n-iter", str(args.n_iter)]
        if lockstep:
            command += ["--config", str(lockstep_config)]
        cluster_rss = {}
        with (local_cluster(workdir) if args.cluster else contextlib.nullcontext()) as up:
            if up is not None:
                address, scheduler, workers = up
                command += ["--scheduler", address]
            seconds, peak_gib = run_child(command)
            if up is not None:
                cluster_rss = dict(
                    scheduler_peak_rss_gib=peak_rss_gib(scheduler.pid),
                    worker_peak_rss_gib=max(peak_rss_gib(w.pid) for w in workers))
        store = xr.open_zarr(output)
        before_tiles = "psf_seconds" if fitted else "theta_sample_seconds"
        sample = float(store.attrs.get(before_tiles, 0.0))
        streamed = fitted or ("theta_sample_seconds" in store.attrs and sample > 0)
        # Streamed tiles run side by side, one per core; lockstep tiles one at a time.
        side_by_side = min(os.cpu_count() or 1, store.sizes["tile"]) if streamed else 1
        compute = float(store["seconds"].sum()) / side_by_side
        ext_pixels = float(sum(
            (min(r1 + h, size) - max(r0 - h, 0)) * (min(c1 + h, size) - max(c0 - h, 0))
            for r0, r1, c0, c1, h in zip(store["row_start"].values, store["row_stop"].values,
                                         store["col_start"].values, store["col_stop"].values,
                                         store["halo"].values)))
        rate = size * size * n_iter / seconds / 1e6
        row = dict(size=size, n_iter=None if fitted else n_iter, chunk=args.chunk,
                   preset=args.preset, seconds=seconds,
                   **{"mpx_per_s" if fitted else "mpx_iter_per_s": rate},
                   peak_rss_gib=peak_gib, streamed=streamed, **{before_tiles: sample},
                   tile_compute_seconds=compute, halo_overhead=ext_pixels / size**2,
                   other_seconds=seconds - compute - sample, cpu_count=os.cpu_count(),
                   **cluster_rss)
        rows.append(row)
        rate_text = f"{rate:.2f} Mpx/s" if fitted else f"{rate:.1f} Mpx*iter/s"
        print(f"{size}x{size}, {args.preset}{'' if fitted else f', n={n_iter}'}, tiles "
              f"{args.chunk}: {seconds:.1f} s, {rate_text}, peak RSS {peak_gib:.2f} GiB; "
              f"{'streamed' if streamed else 'lockstep'}: "
              f"{'PSF' if fitted else 'theta sample'} {sample:.1f} s, "
              f"tile compute {compute:.1f} s, halo overhead x{row['halo_overhead']:.2f}, "
              f"I/O and the rest {row['other_seconds']:.1f} s"
              + ("; peak RSS of the scheduler {scheduler_peak_rss_gib:.2f} GiB, of a "
                 "worker {worker_peak_rss_gib:.2f} GiB".format(**cluster_rss)
                 if cluster_rss else ""), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
