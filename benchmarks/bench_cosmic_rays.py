"""Cosmic-ray hits: the default preset on random scenes with hits added.

    .venv/bin/python benchmarks/bench_cosmic_rays.py              # 6 frames, ~1 min
    .venv/bin/python benchmarks/bench_cosmic_rays.py --frames 12 --workers 2

A cosmic-ray hit is one or two pixels sharper than any star, so the ``survey`` preset
takes it for no star.  This measures what follows, on the linear renderings of
``bench_random_scenes.py``'s scenes (its seeds and settings), each run twice, without
and with hits:

- **clear hits**, 30 per frame of 20-400 sigma, where the stars' light within 4 px is
  below 1 sigma: the share of each hit's light that the starless image keeps, and how
  far the starless image 2-6 px around it moves (sigma);
- **hits on stars**, on up to 20 unclipped stars of 20-300 sigma per frame, the hit
  1-3 times the star's peak, on its brightest pixel or one beside it: the share of
  the star's flux that stays within 2 FWHM (without the hit's own light), with and
  without the hit.  A star counts as kept when over half its flux stays.

Half the hits of each kind take a second pixel, to their right, of half the first's
value.
"""

from __future__ import annotations

import argparse
import dataclasses
import warnings
from multiprocessing import Pool

import numpy as np
from scipy import ndimage

from bench_random_scenes import draw_specs
from survey_frames import build_frame

CLEAR_HITS = 30
MAX_STAR_HITS = 20


def star_radius(spec) -> int:
    """The radius (px) within which a hit star's flux is measured: 2 FWHM."""
    return int(np.ceil(2 * spec.fwhm))


def _near(row, col, places, distance):
    """Whether (row, col) lies within ``distance`` px, in each axis, of any of
    ``places`` (tuples starting with a row and a column)."""
    return any(abs(row - place[0]) < distance and abs(col - place[1]) < distance
               for place in places)


def add_hits(frame, rng):
    """``(hits, clear, on_stars)``: the hit layer, the clear hits' ``(row, col)`` and
    the hit stars' ``(row, col, star's row, star's col)``: the hit's pixel and the
    pixel of the star's centre."""
    height, width = frame.image.shape
    sigma = frame.sigma
    hits = np.zeros((height, width))
    starlit = ndimage.maximum_filter(frame.stars, size=9) > sigma

    def hit(row, col, peak):
        hits[row, col] += peak
        if rng.random() < 0.5 and col + 1 < width:
            hits[row, col + 1] += 0.5 * peak

    clear = []
    for row, col in zip(rng.integers(8, height - 8, 20 * CLEAR_HITS),
                        rng.integers(8, width - 9, 20 * CLEAR_HITS)):
        if len(clear) == CLEAR_HITS:
            break
        if starlit[row, col] or _near(row, col, clear, 10):
            continue
        clear.append((int(row), int(col)))
        hit(row, col, rng.uniform(20, 400) * sigma)
    catalogue = frame.catalogue
    snr = catalogue["peak_obs"] / sigma
    reach = star_radius(frame.spec) + 2     # (the star's disk inside the frame)
    candidates = np.flatnonzero((snr > 20) & (snr < 300) & ~catalogue["saturated"]
                                & (catalogue["x"] > reach) & (catalogue["x"] < width - reach)
                                & (catalogue["y"] > reach) & (catalogue["y"] < height - reach))
    on_stars = []
    for index in rng.permutation(candidates):
        if len(on_stars) == MAX_STAR_HITS:
            break
        star_row = int(np.floor(catalogue["y"][index] + 0.5))
        star_col = int(np.floor(catalogue["x"][index] + 0.5))
        row = star_row + int(rng.integers(-1, 2))
        col = star_col + int(rng.integers(-1, 2))
        if _near(row, col, on_stars, 2 * reach) or _near(row, col, clear, 10):
            continue
        on_stars.append((row, col, star_row, star_col))
        hit(row, col, rng.uniform(1, 3) * catalogue["peak_obs"][index])
    return hits, clear, on_stars


def run_frame(spec):
    """One frame's measurements (see the module notes)."""
    warnings.simplefilter("ignore")
    from pipeline import remove_stars

    frame = build_frame(spec)
    rng = np.random.default_rng(spec.seed)
    hits, clear, on_stars = add_hits(frame, rng)
    without = remove_stars(frame.image)
    with_hits = remove_stars(frame.image + hits)
    change = with_hits - hits - without
    sigma = frame.sigma
    kept, moved = [], []
    for row, col in clear:
        pixels = (slice(row, row + 1), slice(col, col + 2))
        kept.append(1.0 + np.sum(change[pixels]) / np.sum(hits[pixels]))
        around = np.abs(change[row - 6:row + 7, col - 6:col + 8])
        around[4:9, 4:11] = 0.0     # (the hit and the pixels next to it)
        moved.append(around.max() / sigma)
    reach = star_radius(frame.spec)
    rows, cols = np.mgrid[-reach:reach + 1, -reach:reach + 1]
    disk = np.hypot(rows, cols) <= reach
    left_with, left_without = [], []
    for _, _, star_row, star_col in on_stars:
        window = (slice(star_row - reach, star_row + reach + 1),
                  slice(star_col - reach, star_col + reach + 1))
        light = np.sum(frame.stars[window][disk])
        left_without.append(np.sum((without - frame.truth)[window][disk]) / light)
        left_with.append(np.sum((with_hits - hits - frame.truth)[window][disk]) / light)
    return dict(name=spec.name, kept=kept, moved=moved, left_with=left_with,
                left_without=left_without)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2, help="processes")
    args = parser.parse_args(argv)
    specs = [dataclasses.replace(spec, name=spec.name.split("-")[0] + "-linear",
                                 scale="linear")
             for spec in draw_specs(args.frames)]
    with Pool(args.workers) as pool:
        rows = pool.map(run_frame, specs, chunksize=1)
    print(f"{'frame':12s} {'clear hits kept (min, median)':>30s} {'moved (max)':>12s} "
          f"{'stars hit':>10s} {'kept with hit':>14s} {'kept without':>13s}")
    for row in rows:
        with_hit = np.array(row["left_with"]) > 0.5
        without_hit = np.array(row["left_without"]) > 0.5
        print(f"{row['name']:12s} {min(row['kept']):>20.3f} {np.median(row['kept']):>9.3f} "
              f"{max(row['moved']):>10.2f} s {len(with_hit):>10d} {with_hit.sum():>14d} "
              f"{without_hit.sum():>13d}")
    kept = np.concatenate([row["kept"] for row in rows])
    moved = np.concatenate([row["moved"] for row in rows])
    left_with = np.concatenate([row["left_with"] for row in rows])
    left_without = np.concatenate([row["left_without"] for row in rows])
    print(f"clear hits: {kept.size}, light kept {kept.min():.3f}-{kept.max():.3f} "
          f"(median {np.median(kept):.3f}); starless moved 2-6 px around them by at most "
          f"{moved.max():.2f} sigma (95th percentile {np.percentile(moved, 95):.2f})")
    print(f"stars hit: {left_with.size}; kept (over half their flux left) "
          f"{np.sum(left_with > 0.5)} with the hit, {np.sum(left_without > 0.5)} without; "
          f"median flux left {np.median(left_with):+.3f} with, "
          f"{np.median(left_without):+.3f} without")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
