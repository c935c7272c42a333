"""What taking theta from sample blocks costs: the whole frame's theta against the sample's.

    python benchmarks/bench_theta_sample.py --sizes 4096 6144 --n-iter 100

A frame larger than ``threshold_sample`` pixels (2048 x 2048 in the default preset)
takes the stop threshold theta from a grid of sample blocks instead of every pixel, so
that its tiles can stream (``pipeline/core/sampling.py``).  For each size this builds a
linear survey frame with a known truth, runs the whole frame twice with the default
preset, once with theta from every pixel (``threshold_sample=None``) and once with the
sample, and reports

- theta's largest relative difference over the iterations,
- the outputs' difference (max and mean, DN and noise sigma),
- the RMS error against the truth (in sigma) and the fraction of the star flux left,
  for both.

Frames are laid out from 2048-px simulated pieces (four seeds, flipped), as in
``bench_survey_scale.py``, since simulating a 6144-px frame star by star takes long.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from pipeline.core.diffusion import start_diffusion
from pipeline.core.params import PRESETS, DEFAULT_PRESET
from pipeline.core.remove import background_for, prepare_plane
from pipeline.core.sampling import threshold_region
from pipeline.metrics import star_flux_left
from pipeline.synthetic import make_survey_frame

PIECE = 2048


def build_frame(size: int):
    """``(image, truth, stars, noise sigma)`` of a linear frame of ``size``^2."""
    pieces = []
    for seed in range(4):
        frame = make_survey_frame((PIECE, PIECE), seed=100 + seed, scale="linear",
                                  n_stars=int(400 * (PIECE / 512) ** 2),
                                  n_galaxies=int(8 * (PIECE / 512) ** 2))
        pieces.append((frame.image, frame.truth, frame.stars))
    layers = [np.empty((size, size)) for _ in range(3)]
    for r in range(0, size, PIECE):
        for c in range(0, size, PIECE):
            i, j = r // PIECE, c // PIECE
            source = pieces[(i + 2 * j) % 4]
            flips = (i + j) % 4
            for layer, piece in zip(layers, source):
                block = piece[:: -1 if flips & 1 else 1, :: -1 if flips & 2 else 1]
                layer[r:r + PIECE, c:c + PIECE] = block[: size - r, : size - c]
    return (*layers, float(frame.noise_sigma))


def run(image, params, sampled: bool):
    """Whole-frame run; ``(result, thetas, seconds)``."""
    start = time.perf_counter()
    if not sampled:
        params = params.replace(threshold_sample=None)
    work, mask = prepare_plane(image)
    bavg, noise = background_for(image, params)
    diffusion, _ = start_diffusion(work, params, bavg=bavg, noise=noise, masked=mask)
    thetas = np.full(params.n_iter, np.nan)
    for t in range(params.n_iter):
        theta = diffusion.advance()
        if theta is not None:
            thetas[t] = theta
    return diffusion.image, thetas, time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 6144])
    parser.add_argument("--n-iter", type=int, default=100)
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)
    params = PRESETS[DEFAULT_PRESET].replace(n_iter=args.n_iter)
    rows = []
    for size in args.sizes:
        image, truth, stars, sigma = build_frame(size)
        whole, whole_thetas, whole_s = run(image, params, sampled=False)
        sample, sample_thetas, sample_s = run(image, params, sampled=True)
        ready = np.isfinite(whole_thetas) & np.isfinite(sample_thetas)
        diff = np.abs(sample - whole)
        row = dict(
            size=size, n_iter=args.n_iter, preset=DEFAULT_PRESET,
            threshold_sample=params.threshold_sample,
            sampled_fraction=float(threshold_region(image.shape,
                                                    params.threshold_sample).mean()),
            noise_sigma=sigma,
            theta_max_relative_difference=float(np.max(np.abs(
                sample_thetas[ready] / whole_thetas[ready] - 1))),
            max_difference=float(diff.max()), mean_difference=float(diff.mean()),
            pixels_over_tenth_sigma=float(np.mean(diff > 0.1 * sigma)),
            rmse_sigma_whole=float(np.sqrt(np.mean((whole - truth) ** 2)) / sigma),
            rmse_sigma_sample=float(np.sqrt(np.mean((sample - truth) ** 2)) / sigma),
            star_flux_left_whole=float(star_flux_left(whole, truth, stars)),
            star_flux_left_sample=float(star_flux_left(sample, truth, stars)),
            seconds_whole=whole_s, seconds_sample=sample_s,
        )
        rows.append(row)
        print(f"{size}x{size}, n={args.n_iter}, sample {row['sampled_fraction']:.1%} of "
              f"the frame: theta within {row['theta_max_relative_difference']:.2%}; "
              f"output difference max {row['max_difference']:.2f} DN, mean "
              f"{row['mean_difference']:.4f} DN, {row['pixels_over_tenth_sigma']:.3%} of "
              f"pixels over 0.1 sigma; RMSE/sigma whole {row['rmse_sigma_whole']:.4f} vs "
              f"sample {row['rmse_sigma_sample']:.4f}; star flux left "
              f"{row['star_flux_left_whole']:.4f} vs {row['star_flux_left_sample']:.4f}",
              flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
