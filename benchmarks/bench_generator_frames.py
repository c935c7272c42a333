"""The default preset on random ``make_survey_frame`` frames like the survey issue's.

    .venv/bin/python benchmarks/bench_generator_frames.py                  # 6 per scale
    .venv/bin/python benchmarks/bench_generator_frames.py --frames 3 --scales linear

Each frame is :func:`pipeline.synthetic.make_survey_frame` at 512 x 512 with settings
drawn from a fixed random stream (seed 1234): 250-700 stars, sky 30-46 DN, noise
4-8 DN, FWHM 2.2-4 px, Moffat beta 2.5-4.5, the generator's nebula and galaxies, and on
about half of them a straight trail of 4 noise sigma.  The same draws are made for each
scale, so the k-th frame of every scale is one scene.  Scored against the truth:
PSNR and SSIM (data range 255 on stretched frames, the truth's max - min otherwise) of
``remove_stars(image)`` with no parameter and of the best median filter (3-9 px, chosen
with the truth), the star flux left and the RMSE over the extended sources.  Unlike
``bench_survey_quality.py`` it has no tuned Perona-Malik or Chao-Tsai baseline: it is a
quick check of the default on the generator's own frames.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from scipy import ndimage

from pipeline import remove_stars
from pipeline.metrics import extended_rmse, psnr, ssim, star_flux_left
from pipeline.synthetic import make_survey_frame

MEDIAN_SIZES = (3, 5, 7, 9)


def draw_settings(count, *, seed=1234):
    """``count`` dicts of ``make_survey_frame`` keyword arguments."""
    rng = np.random.default_rng(seed)
    settings = []
    for _ in range(count):
        noise = float(rng.uniform(4, 8))
        settings.append(dict(
            seed=int(rng.integers(1_000_000)), n_stars=int(rng.integers(250, 701)),
            noise_sigma=noise, sky=float(rng.uniform(30, 46)),
            streak=float(rng.choice([0.0, 4.0 * noise])) or None,
            fwhm=float(rng.uniform(2.2, 4.0)), moffat_beta=float(rng.uniform(2.5, 4.5))))
    return settings


def score_frame(settings, scale):
    frame = make_survey_frame((512, 512), scale=scale, **settings)
    data_range = 255.0 if scale == "stretched" else float(np.ptp(frame.truth))
    start = time.perf_counter()
    starless = remove_stars(frame.image)
    seconds = time.perf_counter() - start
    medians = {size: ndimage.median_filter(frame.image, size) for size in MEDIAN_SIZES}
    best = max(medians, key=lambda size: psnr(medians[size], frame.truth,
                                                data_range=data_range))
    return dict(
        psnr=psnr(starless, frame.truth, data_range=data_range),
        median_size=best,
        median_psnr=psnr(medians[best], frame.truth, data_range=data_range),
        ssim=ssim(starless, frame.truth, data_range=data_range),
        median_ssim=ssim(medians[best], frame.truth, data_range=data_range),
        flux_left=star_flux_left(starless, frame.truth, frame.stars),
        extended_rmse=extended_rmse(starless, frame.truth, frame.extended_mask),
        noise=frame.noise_sigma, seconds=seconds)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=6, help="frames per scale")
    parser.add_argument("--scales", nargs="*",
                        default=["linear", "sky-subtracted", "stretched"])
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    print(f"{'scale':<15}{'frame':>5}{'PSNR':>8}{'median':>8}{'margin':>8}{'SSIM':>7}"
          f"{'median':>8}{'flux left':>10}{'ext RMSE':>10}{'ext/noise':>10}{'s':>6}")
    for scale in args.scales:
        for index, settings in enumerate(draw_settings(args.frames)):
            r = score_frame(settings, scale)
            print(f"{scale:<15}{index:>5}{r['psnr']:>8.2f}{r['median_psnr']:>8.2f}"
                  f"{r['psnr'] - r['median_psnr']:>+8.2f}{r['ssim']:>7.3f}"
                  f"{r['median_ssim']:>8.3f}{r['flux_left']:>10.1%}"
                  f"{r['extended_rmse']:>10.2f}{r['extended_rmse'] / r['noise']:>10.2f}"
                  f"{r['seconds']:>6.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
