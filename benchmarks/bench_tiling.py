"""Tile invariance: one frame processed whole and with several chunk sizes.

    python benchmarks/bench_tiling.py --size 1536 --n-iter 200 --chunks 512 384

For each preset it prints the max and mean absolute difference (DN) between the
tiled result and the whole-frame result, the halo used and the wall times.  Optional
``--halos`` runs several halo depths to show how the error falls with the halo.
"""

from __future__ import annotations

import argparse
import json
import time

import dask.array as da
import numpy as np

from pipeline import remove_stars
from pipeline.core.params import resolve_parameters
from pipeline.synthetic import make_survey_frame
from pipeline.tiling import default_halo, remove_stars_dask


def survey_frame(size: int, seed: int) -> np.ndarray:
    scale = (size / 512) ** 2
    frame = make_survey_frame((size, size), seed=seed, scale="stretched",
                              n_stars=int(400 * scale), n_galaxies=max(1, int(8 * scale)))
    return np.array(frame.image)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1536)
    parser.add_argument("--n-iter", type=int, default=200)
    parser.add_argument("--chunks", type=int, nargs="+", default=[512, 384])
    parser.add_argument("--presets", nargs="+", default=["paper", "reference"])
    parser.add_argument("--halos", type=int, nargs="*", default=None,
                        help="halo depths to try (default: the library's default)")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)

    image = survey_frame(args.size, args.seed)
    rows = []
    print(f"frame {args.size}x{args.size}, n_iter={args.n_iter}")
    print(f"{'preset':<10} {'chunk':>6} {'halo':>5} {'max DN':>9} {'mean DN':>10} "
          f"{'whole s':>8} {'tiled s':>8}")
    for preset in args.presets:
        params = resolve_parameters(preset, n_iter=args.n_iter)
        start = time.perf_counter()
        whole = remove_stars(image, preset=preset, n_iter=args.n_iter)
        whole_seconds = time.perf_counter() - start
        for chunk in args.chunks:
            for halo in args.halos or [default_halo(params)]:
                start = time.perf_counter()
                tiled = remove_stars_dask(da.from_array(image, chunks=chunk), params,
                                          halo=halo).starless.compute()
                seconds = time.perf_counter() - start
                diff = np.abs(tiled - whole)
                row = dict(preset=preset, chunk=chunk, halo=halo,
                           max_diff=float(diff.max()), mean_diff=float(diff.mean()),
                           whole_seconds=whole_seconds, tiled_seconds=seconds)
                rows.append(row)
                print(f"{preset:<10} {chunk:>6} {halo:>5} {row['max_diff']:>9.4f} "
                      f"{row['mean_diff']:>10.6f} {whole_seconds:>8.1f} {seconds:>8.1f}",
                      flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
