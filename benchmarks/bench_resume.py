"""What a checkpoint saves: a killed ``destar remove`` started again, against a full run.

1. A full run: ``destar remove frame.fits -o full.zarr --chunk 512 --n-iter 150``
   (checkpoints at the default interval, as a user would run it), timed as a
   subprocess, start to exit.
2. The same command to ``resumed.zarr``, killed with SIGKILL once its progress bar shows
   60 % of the iterations done (the last checkpoint is usually earlier).
3. The same command again: it resumes from the checkpoint.  Its wall time is printed as
   a fraction of the full run's (target < 0.75) with the largest difference between
   the two starless images (target <= 1e-6).

Usage::

    .venv/bin/python benchmarks/bench_resume.py [--size 2048] [--tile 512] [--n-iter 150]
        [--kill-at 0.6] [--workdir DIR] [--json]

The frame is a simulated survey frame (:func:`pipeline.synthetic.make_survey_frame`),
written as float32 FITS.  Everything is written under ``--workdir`` (default: a
temporary folder, deleted afterwards).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DESTAR = Path(sys.executable).with_name("destar")


def _command(source: Path, output: Path, args) -> list[str]:
    return [str(DESTAR), "remove", str(source), "-o", str(output), "--chunk", str(args.tile),
            "--n-iter", str(args.n_iter), "--quiet"]


def _pointer_iteration(output: Path) -> int:
    try:
        pointer = json.loads((output.with_name(output.name + ".checkpoint") /
                              "pointer.json").read_text())
        return int(pointer["iteration"])
    except (OSError, ValueError, KeyError):
        return -1


def _timed(command) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--n-iter", type=int, default=150)
    parser.add_argument("--kill-at", type=float, default=0.6,
                        help="fraction of the iterations after which the run is killed")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args(argv)

    from astropy.io import fits

    from pipeline.io import open_store
    from pipeline.synthetic import make_survey_frame

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench-resume-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        source = work / "frame.fits"
        if not source.exists():
            image = make_survey_frame((args.size, args.size), seed=11).image
            fits.PrimaryHDU(np.asarray(image, dtype=np.float32)).writeto(source)
        full, resumed = work / "full.zarr", work / "resumed.zarr"
        for path in (full, resumed, resumed.with_name(resumed.name + ".checkpoint"),
                     full.with_name(full.name + ".checkpoint")):
            shutil.rmtree(path, ignore_errors=True)

        print(f"full run: {' '.join(_command(source, full, args))}", flush=True)
        full_seconds = _timed(_command(source, full, args))
        print(f"  {full_seconds:.1f} s", flush=True)

        # Kill at the requested fraction of the iterations, wherever the checkpoints
        # fall: the run's progress bar on stderr says how many iterations are done.
        target = int(np.ceil(args.kill_at * args.n_iter))
        command = [part for part in _command(source, resumed, args) if part != "--quiet"]
        process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
        start = time.perf_counter()
        done, text = 0, b""
        while done < target:
            chunk = process.stderr.read1(4096)
            if not chunk:
                raise SystemExit("the run finished before it could be killed")
            text = (text + chunk)[-4096:]
            counts = re.findall(rb"(\d+)/%d \[" % args.n_iter, text)
            done = int(counts[-1]) if counts else 0
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        killed_after = time.perf_counter() - start
        print(f"killed with SIGKILL after {killed_after:.1f} s at iteration {done}/"
              f"{args.n_iter}; last checkpoint at iteration {_pointer_iteration(resumed)}",
              flush=True)

        rerun_seconds = _timed(_command(source, resumed, args))
        ds_full, ds_resumed = open_store(full), open_store(resumed)
        diff = float(np.nanmax(np.abs(ds_full.starless.values - ds_resumed.starless.values)))
        resumed_from = int(ds_resumed.attrs.get("resumed_from", 0))
        fraction = rerun_seconds / full_seconds
        print(f"rerun (resumed from iteration {resumed_from}): {rerun_seconds:.1f} s = "
              f"{fraction:.0%} of the full run (target < 75%)")
        print(f"max |full - resumed| = {diff:.3g} (target <= 1e-6)")
        print(f"machine: {platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} CPUs, Python {platform.python_version()}")
        if args.json:
            print(json.dumps({"size": args.size, "tile": args.tile, "n_iter": args.n_iter,
                              "full_seconds": full_seconds, "rerun_seconds": rerun_seconds,
                              "fraction": fraction, "resumed_from": resumed_from,
                              "max_diff": diff}))
        return 0 if fraction < 0.75 and diff <= 1e-6 else 1
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
