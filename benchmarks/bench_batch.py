"""A batch of survey frames through ``destar run``, one frame at a time or side by side.

    python benchmarks/bench_batch.py --frames 6 --size 2048 --at-once 1 2
    python benchmarks/bench_batch.py --frames 6 --size 2048 --at-once 1 2 --cluster

Writes ``--frames`` float32 FITS frames (``make_survey_frame``, linear, one seed each)
to ``--workdir`` and runs ``destar run CONFIG --frames-at-once K --overwrite --quiet``
on them in a child process for every ``K`` of ``--at-once``, alternating, ``--repeats``
times; prints the wall time of each run and the frames per minute.  A frame that fits
in one tile (the default chunking, up to 4096 px) is one task, so one frame at a time
keeps one core (or one cluster worker) busy; side by side, ``K`` frames run in
processes of their own.  With ``--cluster`` the frames' tiles run on a scheduler and
two one-thread worker processes started here (``bench_survey_scale.local_cluster``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml
from astropy.io import fits

from bench_survey_scale import local_cluster
from pipeline.synthetic import make_survey_frame


def write_frames(folder: Path, count: int, size: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in range(count):
        path = folder / f"frame-{size}-{seed:02d}.fits"
        if not path.exists():
            frame = make_survey_frame((size, size), seed=100 + seed, scale="linear",
                                      n_stars=int(400 * (size / 512) ** 2),
                                      n_galaxies=int(8 * (size / 512) ** 2))
            fits.PrimaryHDU(np.asarray(frame.image, dtype=np.float32)).writeto(path)
        paths.append(path)
    return paths


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--at-once", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--cluster", action="store_true",
                        help="run the tiles on a local Dask cluster (scheduler and two "
                             "one-thread workers)")
    parser.add_argument("--workdir", default="bench-output/batch")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)

    workdir = Path(args.workdir)
    frames = write_frames(workdir / "raw", args.frames, args.size)
    destar = str(Path(sys.executable).with_name("destar"))
    rows = []
    with (local_cluster(workdir) if args.cluster else contextlib.nullcontext()) as up:
        settings = {"inputs": [str(p) for p in frames], "output": str(workdir / "out"),
                    "format": "zarr"}
        if up is not None:
            settings["scheduler"] = up[0]
        config = workdir / "batch.yaml"
        config.write_text(yaml.safe_dump(settings))
        for repeat in range(args.repeats):
            for at_once in args.at_once:
                start = time.perf_counter()
                subprocess.run([destar, "run", str(config), "--frames-at-once", str(at_once),
                                "--overwrite", "--quiet"], check=True,
                               stdout=subprocess.DEVNULL)
                seconds = time.perf_counter() - start
                row = dict(frames=len(frames), size=args.size, at_once=at_once,
                           cluster=args.cluster, repeat=repeat, seconds=seconds,
                           frames_per_minute=60 * len(frames) / seconds)
                rows.append(row)
                print(f"{len(frames)} frames of {args.size}^2, "
                      f"{'cluster of 2 workers' if args.cluster else 'local'}, "
                      f"{at_once} at once: {seconds:.1f} s, "
                      f"{row['frames_per_minute']:.2f} frames/min", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
