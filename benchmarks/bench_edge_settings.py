"""The default preset on scenes at the edges of the survey benchmark's settings.

    .venv/bin/python benchmarks/bench_edge_settings.py                 # 60 frames, ~2 min
    .venv/bin/python benchmarks/bench_edge_settings.py --asinh-knee 85.05   # known stretch
    .venv/bin/python benchmarks/bench_edge_settings.py --convolve-galaxies  # as in real frames
    .venv/bin/python benchmarks/bench_edge_settings.py --psf kolmogorov

``bench_random_scenes.py`` draws settings inside the ranges of the benchmark's frames;
the survey issue's checks may use others.  Here one setting at a time moves to an edge
or beyond, from one base scene (:class:`survey_frames.FrameSpec`'s defaults: sky 1000
ADU, read noise 5 ADU, gain 1, FWHM 3 px, beta 3.5, 600 stars, 512 x 512, full well
60000 ADU), each in the three scales, with its own seed (5000 + its row): an
undersampled (1.5 px) and a wide (6 px) PSF, Moffat beta 2 and 6, ellipticity 0.45, 100
and 2500 stars, a faint sky (50 ADU, where a bright star's photon noise dominates its
pixels' noise) and a bright one (20000 ADU), gain 10, a 256 x 768 frame, no saturation
and a full well of 15000 ADU, a nebula of 60 sigma, 15 bright galaxies, a streak of 3
sigma, no sky gradient and one of 1 and -0.8 ADU per pixel, and long-exposure
Kolmogorov stars (wings falling as r^-11/3) of FWHM 3 and 4.5 px.  Scored as
``bench_random_scenes.py`` does (star flux left <= 10 %, extended RMSE <= 0.7 sigma),
with no baselines: it shows where the method stops meeting the targets.
``--convolve-galaxies`` convolves the bright galaxies with the PSF, and ``--psf
kolmogorov`` gives every frame Kolmogorov stars, as in ``bench_random_scenes.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
from multiprocessing import Pool

from bench_random_scenes import (SCALES, add_common_arguments, report, score,
                                 with_options)
from survey_frames import FrameSpec

#: ``(name, settings changed from the base scene)``, one row each.
EDGES = (
    ("fwhm1.5", dict(fwhm=1.5)), ("fwhm6", dict(fwhm=6.0)),
    ("beta2", dict(moffat_beta=2.0)), ("beta6", dict(moffat_beta=6.0)),
    ("ell0.45", dict(ellipticity=0.45)),
    ("stars100", dict(n_stars=100)), ("stars2500", dict(n_stars=2500)),
    ("sky50", dict(sky=50.0)), ("sky20000", dict(sky=20000.0, saturate=65000.0)),
    ("gain10", dict(gain=10.0)), ("wide", dict(shape=(256, 768))),
    ("nosat", dict(saturate=None)), ("sat15k", dict(saturate=15000.0)),
    ("neb60", dict(nebula_sigmas=60.0)), ("gal15", dict(n_bright_galaxies=15)),
    ("streak", dict(streak_sigmas=3.0)), ("nograd", dict(sky_gradient=(0.0, 0.0))),
    ("grad1", dict(sky_gradient=(1.0, -0.8))),
    ("kolmogorov", dict(psf="kolmogorov")),
    ("kolmogorov4.5", dict(psf="kolmogorov", fwhm=4.5)),
)


def edge_specs():
    """The frame specs: every row of ``EDGES`` in each scale."""
    base = FrameSpec("base", "linear", seed=123)
    return [dataclasses.replace(base, name=f"{name}-{scale}", scale=scale, seed=5000 + row,
                                **changes)
            for row, (name, changes) in enumerate(EDGES) for scale in SCALES]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    specs = with_options(edge_specs(), args)
    with Pool(args.workers) as pool:
        rows = pool.map(functools.partial(score, asinh_knee=args.asinh_knee), specs,
                        chunksize=1)
    report(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
