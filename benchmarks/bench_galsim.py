"""The default preset on survey frames whose stars and galaxies GalSim draws.

    .venv/bin/python benchmarks/bench_galsim.py                      # 24 frames, Moffat
    .venv/bin/python benchmarks/bench_galsim.py --psf kolmogorov     # Kolmogorov stars
    .venv/bin/python benchmarks/bench_galsim.py --frames 48 --workers 2
    .venv/bin/python benchmarks/bench_galsim.py --check              # the frames' checks
    .venv/bin/python benchmarks/bench_galsim.py --project-frames     # project's frames

An independent check of ``bench_random_scenes.py``: every other benchmark frame comes
from the project's own generator, so a flaw it shares with the method would go unseen.
Here the scene settings are drawn as there (:func:`bench_random_scenes.draw_specs`) but
with seed 2026 instead of 777, the frame seeds are offset by 100000 and the frames are
built by :func:`galsim_frames.build_galsim_frame`: stars and galaxies drawn by GalSim
(Moffat or Kolmogorov stars, Sersic and bulge + disk galaxies and compact faint
galaxies, all convolved with the PSF), the sky, nebula, streak, noise, saturation and
scales as in the project's frames.  Scored and reported as ``bench_random_scenes.py``
does, against the same targets: the star flux left (<= 10 %) and the RMSE over the
extended sources in noise sigmas (<= 0.7), with PSNR and SSIM.

``--project-frames`` scores the same specs built by the project's own generator
(:func:`survey_frames.build_frame`, bright galaxies convolved with the PSF), so that a
difference in the scores is the generators'.

``--check`` checks the frames instead of scoring the method: on the first two frames
drawn in linear units, the noise (image - truth - stars) has mean 0 and standard
deviation 1 in units of its expected sigma where unsaturated, and sigma at the sky; a
star drawn at (x, y) has its centroid at column x, row y and its major axis at the
PSF's position angle, and is close to the project's star of the same settings; and the
drawn flux of the unsaturated stars whose stamps the frame's edge does not cut is the
catalogue's within 1 %.

GalSim is an optional dependency: ``pip install -e ".[bench]"``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import sys
from multiprocessing import Pool

import numpy as np

try:
    import galsim_frames
except ImportError as error:        # galsim missing: say so in one line
    if error.name != "galsim":
        raise
    sys.exit('bench_galsim.py needs GalSim: pip install -e ".[bench]"')

from bench_random_scenes import draw_specs, report, score
from survey_frames import build_frame, linear_sigma, render_stars

SPEC_SEED = 2026
FRAME_SEED_OFFSET = 100000


def galsim_specs(count, psf):
    """``count`` random scene specs (seed 2026), renamed ``g<k>-<scale>``, with frame
    seeds offset from ``bench_random_scenes.py``'s and the stars' PSF ``psf``."""
    return [dataclasses.replace(spec, name="g" + spec.name[1:], psf=psf,
                                seed=spec.seed + FRAME_SEED_OFFSET)
            for spec in draw_specs(count, seed=SPEC_SEED)]


def check_noise(frame) -> list[str]:
    """Failures of ``image = truth + stars + noise`` on a linear frame, where
    unsaturated: the noise over its expected sigma has mean 0 and standard deviation 1,
    and at the sky (no star above 0.01 sigma, no extended source) sigma itself."""
    spec = frame.spec
    model = frame.truth + frame.stars
    unsaturated = (model < spec.saturate) & (frame.image < spec.saturate)
    noise = (frame.image - model)[unsaturated]
    expected = np.sqrt(spec.read_noise**2 + np.clip(model[unsaturated], 0, None) / spec.gain)
    pulls = noise / expected
    sky = (unsaturated & (frame.stars < 0.01 * frame.sigma) & ~frame.extended_mask)
    sky_noise = (frame.image - model)[sky]
    failures = []
    if abs(pulls.mean()) > 0.02 or abs(pulls.std() - 1.0) > 0.03:
        failures.append(f"noise/expected: mean {pulls.mean():+.4f}, std {pulls.std():.4f}")
    if abs(sky_noise.mean()) > 0.05 * frame.sigma or \
            abs(sky_noise.std() / frame.sigma - 1.0) > 0.05:
        failures.append(f"sky noise: mean {sky_noise.mean() / frame.sigma:+.4f} sigma, "
                        f"std {sky_noise.std() / frame.sigma:.4f} sigma")
    print(f"  noise: {unsaturated.mean():.4f} of pixels unsaturated, noise/expected mean "
          f"{pulls.mean():+.4f} std {pulls.std():.4f}; at the sky ({sky.sum()} px) mean "
          f"{sky_noise.mean() / frame.sigma:+.4f} sigma, std "
          f"{sky_noise.std() / frame.sigma:.4f} sigma")
    return failures


def check_star_shape(spec) -> list[str]:
    """Failures of the stars' conventions: one star drawn at (x, y) on a frame wide
    enough for its wings has its centroid at column x, row y, its second moments'
    major axis at ``spec.psf_theta``, and differs from the project's star of the same
    spec (``survey_frames``) by less than 15 % of its flux (summed absolute
    difference), which a wrong pixel scale or FWHM would exceed."""
    size = 2 * galsim_frames.MAX_STAMP_RADIUS + 1
    x, y = np.array([0.5 * size - 0.2]), np.array([0.5 * size - 0.9])   # off-centre
    square = dataclasses.replace(spec, shape=(size, size))
    layer, peak, _ = galsim_frames.render_galsim_stars(square, x, y, np.array([1.0]),
                                                       wing_limit=1e-12)
    project_layer, project_peak = render_stars(square, square.shape, x, y,
                                               np.array([1.0]))
    difference = np.abs(layer - project_layer).sum()
    rows, cols = np.mgrid[0:size, 0:size]
    total = layer.sum()
    cx, cy = (layer * cols).sum() / total, (layer * rows).sum() / total
    # Second moments within 5 FWHM, where the wings' truncation weighs little.
    near = np.hypot(cols - x[0], rows - y[0]) < 5 * spec.fwhm
    w = layer * near
    mxx, myy = (w * (cols - cx) ** 2).sum(), (w * (rows - cy) ** 2).sum()
    mxy = (w * (cols - cx) * (rows - cy)).sum()
    angle = 0.5 * math.atan2(2 * mxy, mxx - myy)
    angle_error = (angle - spec.psf_theta + math.pi / 2) % math.pi - math.pi / 2
    print(f"  star: drawn at ({x[0]:.2f}, {y[0]:.2f}), centroid ({cx:.4f}, {cy:.4f}); "
          f"major axis off psf_theta by {angle_error:+.4f} rad modulo pi (ellipticity "
          f"{spec.ellipticity:.3f}); |GalSim - project| {difference:.4f} of the flux, "
          f"peaks {peak[0]:.4f} and {project_peak[0]:.4f}")
    failures = []
    if max(abs(cx - x[0]), abs(cy - y[0])) > 0.01:
        failures.append(f"centroid ({cx:.4f}, {cy:.4f}) for ({x[0]}, {y[0]})")
    if spec.ellipticity > 0.05 and abs(angle_error) > 0.02:
        failures.append(f"major axis at {angle:.4f} rad for {spec.psf_theta:.4f}")
    if difference > 0.15:
        failures.append(f"star differs from the project's by {difference:.3f} of its flux")
    return failures


def check_star_flux(frame) -> list[str]:
    """Failures of the stars' drawn flux: the unsaturated stars whose stamps the
    frame's edge does not cut, drawn again alone, faint (< 1e4 ADU) and bright apart,
    hold their catalogue flux within 1 %."""
    spec, cat = frame.spec, frame.catalogue
    h, w = spec.shape
    wing_limit = galsim_frames.WING_SIGMAS * linear_sigma(spec)
    radii, _ = galsim_frames.stamp_radii(galsim_frames.galsim_psf(spec), cat["flux"],
                                         wing_limit)
    ix, iy = np.floor(cat["x"] + 0.5), np.floor(cat["y"] + 0.5)
    inside = (ix - radii >= 0) & (iy - radii >= 0) & (ix + radii < w) & (iy + radii < h)
    failures = []
    for label, band in (("faint", cat["flux"] < 1e4), ("bright", cat["flux"] >= 1e4)):
        chosen = inside & ~cat["saturated"] & band
        layer, _, _ = galsim_frames.render_galsim_stars(
            spec, cat["x"][chosen], cat["y"][chosen], cat["flux"][chosen],
            wing_limit=wing_limit)
        ratio = layer.sum() / cat["flux"][chosen].sum()
        print(f"  flux: {chosen.sum()} {label} unsaturated stars inside the frame, drawn "
              f"/ catalogue flux {ratio:.5f}")
        if abs(ratio - 1.0) > 0.01:
            failures.append(f"{label} stars' drawn flux {ratio:.4f} of the catalogue's")
    return failures


def check(specs) -> int:
    """Run the checks on the linear versions of ``specs``; 1 if any fails."""
    failures = []
    for spec in specs:
        frame = galsim_frames.build_galsim_frame(dataclasses.replace(spec, scale="linear"))
        print(f"{spec.name} ({spec.psf}, linear):")
        failures += [f"{spec.name}: {failure}" for failure in
                     check_noise(frame) + check_star_shape(frame.spec)
                     + check_star_flux(frame)]
    for failure in failures:
        print("FAILED", failure)
    print("checks", "failed" if failures else "passed")
    return 1 if failures else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--workers", type=int, default=2, help="processes")
    parser.add_argument("--psf", choices=("moffat", "kolmogorov"), default="moffat",
                        help="the stars' PSF (kolmogorov: wings as r^-11/3)")
    parser.add_argument("--project-frames", action="store_true",
                        help="the same specs built by the project's generator instead")
    parser.add_argument("--check", action="store_true",
                        help="check the first two frames instead of scoring the method")
    args = parser.parse_args(argv)
    specs = galsim_specs(args.frames, args.psf)
    if args.check:
        return check(specs[:2])
    builder = galsim_frames.build_galsim_frame
    if args.project_frames:
        specs = [dataclasses.replace(spec, convolve_galaxies=True) for spec in specs]
        builder = build_frame
    with Pool(args.workers) as pool:
        rows = pool.map(functools.partial(score, builder=builder), specs, chunksize=1)
    report(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
