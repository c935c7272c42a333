"""Streak detection before and after star removal: does destar help a Hough detector?

    python benchmarks/bench_streaks.py                       # default run, a few minutes
    python benchmarks/bench_streaks.py --size 384 --seeds 0   # quicker
    python benchmarks/bench_streaks.py --json streaks.json    # also write every row

Each frame is a linear survey frame (:func:`pipeline.synthetic.make_survey_frame`, no
nebula, no galaxies, many stars) plus two rows of stars along lines (chance alignments,
:func:`pipeline.streaks.star_rows`) and one faint straight streak of a given peak
amplitude (in noise sigmas, FWHM 3 px) at a given angle (:func:`pipeline.streaks.streak_layer`).
The standard detector (:func:`pipeline.streaks.detect_streaks`: background, 3 sigma
cut, probabilistic Hough transform) runs on

- ``input``: the frame as observed;
- ``destar``: ``pipeline.remove_stars(frame)`` with the DEFAULT preset, no parameters;
- ``paper``: ``remove_stars(frame, preset="paper")``, the paper's diffusion;
- ``median3``, ``median5``: :func:`pipeline.baselines.median_filter` of size 3 and 5.

Reported per streak amplitude and method, over all angles and seeds: detection rate,
mean number of false segments and of distinct false lines
(:func:`pipeline.streaks.match_streak`), coverage of the streak by its segments, mean
(and worst) fraction of the streak amplitude kept along the streak
(:func:`pipeline.streaks.streak_amplitude_kept`, pixels where stars exceed 0.5 sigma
left out) and star flux left (:func:`pipeline.metrics.star_flux_left`).

The streak issue's targets, for the default preset with no parameters, are checked on
the means over all frames of each amplitude: at least 80 % of the streak amplitude kept
and at most 15 % of the star flux left.  The verdict is printed as PASS or FAIL; the
exit status is 0 either way (a benchmark reports, it does not gate).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from pipeline import DEFAULT_PRESET, remove_stars
from pipeline.baselines import median_filter
from pipeline.metrics import star_flux_left
from pipeline.streaks import (
    detect_streaks,
    match_streak,
    star_rows,
    streak_amplitude_kept,
    streak_layer,
)
from pipeline.synthetic import make_survey_frame

NOISE_SIGMA = 6.0
TARGET_KEPT = 0.80
TARGET_STAR_FLUX_LEFT = 0.15
METHODS = ("input", "destar", "paper", "median3", "median5")


def build_frame(size: int, seed: int, angle: float, amplitude_sigma: float):
    """``(image, truth, stars, streak_mask, line)`` of one test frame."""
    shape = (size, size)
    scale = (size / 512) ** 2
    frame = make_survey_frame(shape, seed=seed, nebula=False, n_galaxies=0,
                              noise_sigma=NOISE_SIGMA, n_stars=int(800 * scale))
    rng = np.random.default_rng([seed, int(angle * 10), 7])
    center = tuple(rng.uniform(0.4, 0.6, 2) * size)
    layer, mask, line = streak_layer(shape, angle=angle, center=center,
                                     amplitude=amplitude_sigma * NOISE_SIGMA, fwhm=3.0)
    # Two rows of stars at other angles, through random points of the inner frame.
    row_lines = [((angle + delta) % 180.0, tuple(rng.uniform(0.2, 0.8, 2) * size))
                 for delta in (40.0 + rng.uniform(0, 20), 95.0 + rng.uniform(0, 20))]
    rows, _ = star_rows(shape, row_lines, spacing=9.0, flux=2000.0, seed=seed)
    image = frame.image + layer + rows
    truth = frame.truth + layer
    stars = frame.stars + rows
    return image, truth, stars, mask, line


def process(method: str, image: np.ndarray) -> np.ndarray:
    if method == "input":
        return image
    if method == "destar":
        return remove_stars(image)  # the default preset, no parameters
    if method == "paper":
        return remove_stars(image, preset="paper")
    if method.startswith("median"):
        return median_filter(image, size=int(method[len("median"):]))
    raise ValueError(method)


def run(args) -> list[dict]:
    rows = []
    n_frames = len(args.amplitudes) * len(args.angles) * len(args.seeds)
    done = 0
    for amplitude in args.amplitudes:
        for seed in args.seeds:
            for angle in args.angles:
                image, truth, stars, mask, line = build_frame(args.size, seed, angle,
                                                              amplitude)
                exclude = stars > 0.5 * NOISE_SIGMA
                for method in METHODS:
                    start = time.perf_counter()
                    result = process(method, image)
                    seconds = time.perf_counter() - start
                    segments = detect_streaks(result)
                    match = match_streak(segments, line, shape=image.shape)
                    rows.append(dict(
                        amplitude_sigma=amplitude, seed=seed, angle=angle, method=method,
                        detected=match.detected, n_true=match.n_true,
                        n_false=match.n_false, n_false_lines=match.n_false_lines,
                        coverage=match.coverage,
                        kept=streak_amplitude_kept(result, truth, mask, exclude=exclude),
                        star_flux_left=star_flux_left(result, truth, stars),
                        seconds=seconds,
                    ))
                done += 1
                print(f"  frame {done}/{n_frames}: {amplitude:g} sigma, seed {seed}, "
                      f"angle {angle:g} deg (destar "
                      f"{rows[-len(METHODS) + METHODS.index('destar')]['seconds']:.1f} s)",
                      flush=True)
    return rows


def summarise(rows: list[dict], amplitudes) -> bool:
    header = (f"{'streak':>6} {'method':<8} {'detected':>9} {'false seg':>9} "
              f"{'false lines':>11} {'coverage':>8} {'kept mean':>9} {'kept min':>8} "
              f"{'star flux left':>14} {'s/frame':>7}")
    print()
    print(header)
    print("-" * len(header))
    verdict = True
    for amplitude in amplitudes:
        for method in METHODS:
            sel = [r for r in rows if r["amplitude_sigma"] == amplitude
                   and r["method"] == method]
            kept = np.array([r["kept"] for r in sel])
            sfl = np.array([r["star_flux_left"] for r in sel])
            print(f"{amplitude:>5g}σ {method:<8} "
                  f"{np.mean([r['detected'] for r in sel]):>9.0%} "
                  f"{np.mean([r['n_false'] for r in sel]):>9.1f} "
                  f"{np.mean([r['n_false_lines'] for r in sel]):>11.1f} "
                  f"{np.mean([r['coverage'] for r in sel]):>8.2f} "
                  f"{kept.mean():>9.1%} {kept.min():>8.1%} "
                  f"{sfl.mean():>14.1%} {np.mean([r['seconds'] for r in sel]):>7.2f}")
            if method == "destar":
                verdict &= bool(kept.mean() >= TARGET_KEPT
                                and sfl.mean() <= TARGET_STAR_FLUX_LEFT)
    print()
    for amplitude in amplitudes:
        sel = [r for r in rows if r["amplitude_sigma"] == amplitude
               and r["method"] == "destar"]
        kept = np.mean([r["kept"] for r in sel])
        sfl = np.mean([r["star_flux_left"] for r in sel])
        ok_kept, ok_sfl = kept >= TARGET_KEPT, sfl <= TARGET_STAR_FLUX_LEFT
        print(f"target, {amplitude:g} sigma streaks, preset {DEFAULT_PRESET!r} (default): "
              f"streak amplitude kept {kept:.1%} (>= {TARGET_KEPT:.0%}: "
              f"{'PASS' if ok_kept else 'FAIL'}), star flux left {sfl:.1%} "
              f"(<= {TARGET_STAR_FLUX_LEFT:.0%}: {'PASS' if ok_sfl else 'FAIL'})")
    print(f"OVERALL: {'PASS' if verdict else 'FAIL'}")
    return verdict


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--amplitudes", type=float, nargs="+", default=[4.0, 8.0],
                        help="streak peak amplitudes in noise sigmas")
    parser.add_argument("--angles", type=float, nargs="+", default=[15.0, 60.0, 105.0, 150.0],
                        help="streak directions in degrees")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--json", help="also write every row to this file")
    args = parser.parse_args(argv)

    print(f"streak benchmark: {args.size}x{args.size} linear frames, noise sigma "
          f"{NOISE_SIGMA:g}, {int(800 * (args.size / 512) ** 2)} stars + 2 star rows, "
          f"streak FWHM 3 px; {len(args.angles)} angles x {len(args.seeds)} seeds per "
          f"amplitude; {platform.node()}, load average "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    start = time.perf_counter()
    rows = run(args)
    summarise(rows, args.amplitudes)
    print(f"total {time.perf_counter() - start:.0f} s")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
