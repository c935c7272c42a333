"""The default preset on linear frames whose PSF is not a Moffat: Kolmogorov turbulence.

The survey issue allows "Moffat or Kolmogorov PSFs", and every other benchmark frame has
Moffat stars.  A long-exposure Kolmogorov PSF has the optical transfer function
``exp(-3.44 (f / f0)^(5/3))`` (Fried 1966); its core is close to a Moffat of large beta,
but its wings fall as ``r^(-11/3)``, far above such a Moffat's, which matters around
saturated stars.  Each frame: 512 x 512, sky 1000 ADU, gain 1.5, read noise 5 ADU, 600
stars with a power-law flux (density F^-1.5 from 300 ADU to 5e7 ADU, as in
``survey_frames.py``), a full well of
50000 ADU, eight exponential-disc galaxies.  Stars are rendered on 64 x 64 stamps (wings
cut 32 px out), shifted by a phase ramp.

Usage::

    .venv/bin/python benchmarks/bench_kolmogorov.py                  # 4 frames, ~1 min
    .venv/bin/python benchmarks/bench_kolmogorov.py --seeds 0 --fwhm 3.0
    .venv/bin/python benchmarks/bench_kolmogorov.py --json kolmogorov.json

Scores (sigma is the sky's noise): star flux left (observable stars), extended-source
RMSE over the galaxies' pixels above 1 sigma, whole-frame RMSE, and the saturated stars
whose starless centre is still more than 20 sigma above the truth.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import pipeline
from pipeline.metrics import extended_rmse, star_flux_left
from pipeline.synthetic import power_law
from survey_frames import kolmogorov_cutoff

STAMP = 64
SKY, GAIN, READ_NOISE, FULL_WELL = 1000.0, 1.5, 5.0, 50000.0


def kolmogorov_renderer(fwhm: float, size: int = STAMP):
    """``stamp(dx, dy)``: a unit-flux Kolmogorov PSF of this FWHM (pixels, measured on
    the stamp) centred at ``size // 2 + (dx, dy)``."""
    ky, kx = np.fft.fftfreq(size)[:, None], np.fft.fftfreq(size)[None, :]
    radius = np.hypot(kx, ky)
    cutoff = kolmogorov_cutoff(fwhm, size)

    def stamp(dx, dy):
        otf = (np.exp(-3.44 * (radius / cutoff) ** (5.0 / 3.0))
               * np.exp(-2j * np.pi * (kx * dx + ky * dy)))
        image = np.fft.fftshift(np.real(np.fft.ifft2(otf)))
        return image / image.sum()

    return stamp


def build(seed: int, fwhm: float, shape=(512, 512), n_stars=600):
    """``(image, truth, observable stars, extended mask, sigma, saturated centres)``."""
    rng = np.random.default_rng(seed)
    height, width = shape
    render = kolmogorov_renderer(fwhm)
    canvas = np.zeros((height + STAMP, width + STAMP))
    flux = power_law(rng, n_stars, 300.0, 5e7, -1.5)
    xs, ys = rng.uniform(0, width, n_stars), rng.uniform(0, height, n_stars)
    for x, y, total in zip(xs, ys, flux):
        col, row = int(np.floor(x)), int(np.floor(y))
        canvas[row:row + STAMP, col:col + STAMP] += total * render(x - col, y - row)
    stars = canvas[STAMP // 2:STAMP // 2 + height, STAMP // 2:STAMP // 2 + width]
    yy, xx = np.mgrid[0:height, 0:width]
    galaxies = np.zeros(shape)
    for _ in range(8):
        gx, gy = rng.uniform(50, width - 50), rng.uniform(50, height - 50)
        scale, amplitude = rng.uniform(5, 25), rng.uniform(20, 200)
        galaxies += amplitude * np.exp(-np.hypot(xx - gx, yy - gy) / scale)
    truth = SKY + galaxies
    clean = truth + stars
    image = rng.poisson(clean * GAIN) / GAIN + rng.normal(0.0, READ_NOISE, shape)
    image = np.minimum(image, FULL_WELL)
    sigma = float(np.sqrt(READ_NOISE ** 2 + SKY / GAIN))
    inside = (xs >= 0) & (xs < width - 0.5) & (ys >= 0) & (ys < height - 0.5)
    rows, cols = np.round(ys[inside]).astype(int), np.round(xs[inside]).astype(int)
    saturated = clean[rows, cols] >= FULL_WELL
    return (image, truth, np.minimum(clean, FULL_WELL) - truth, galaxies > sigma, sigma,
            np.column_stack([rows[saturated], cols[saturated]]))


def score(seed: int, fwhm: float) -> dict:
    image, truth, stars, extended, sigma, saturated = build(seed, fwhm)
    start = time.perf_counter()
    starless = pipeline.remove_stars(image)
    seconds = time.perf_counter() - start
    error = (starless - truth) / sigma
    kept = int(np.count_nonzero(error[saturated[:, 0], saturated[:, 1]] > 20.0))
    return {"seed": seed, "fwhm": fwhm, "star_flux_left": star_flux_left(starless, truth, stars),
            "extended_rmse_sigma": extended_rmse(starless, truth, extended) / sigma,
            "rmse_sigma": float(np.sqrt(np.mean(error ** 2))),
            "saturated_stars": int(len(saturated)), "saturated_kept": kept,
            "seconds": seconds}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--fwhm", type=float, nargs="+", default=[3.0, 4.0],
                        help="FWHM in pixels, taken in turn with the seeds")
    parser.add_argument("--json", help="write every row to this file")
    args = parser.parse_args(argv)
    rows = [score(seed, args.fwhm[k % len(args.fwhm)]) for k, seed in enumerate(args.seeds)]
    print(f"{'seed':>4} {'FWHM':>5} {'flux left':>10} {'ext/sigma':>10} {'RMSE/sigma':>11} "
          f"{'saturated kept':>15} {'s':>6}")
    for r in rows:
        print(f"{r['seed']:>4} {r['fwhm']:>5.1f} {100 * r['star_flux_left']:>9.1f}% "
              f"{r['extended_rmse_sigma']:>10.3f} {r['rmse_sigma']:>11.3f} "
              f"{r['saturated_kept']:>7} of {r['saturated_stars']:<4} {r['seconds']:>6.1f}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1)


if __name__ == "__main__":
    main()
