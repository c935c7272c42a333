"""The automatic stopping time of the diffusion against the best n found with the truth.

    .venv/bin/python benchmarks/bench_auto_stop.py                    # all frames
    .venv/bin/python benchmarks/bench_auto_stop.py --set tuning       # the tuning frames
    .venv/bin/python benchmarks/bench_auto_stop.py --json auto-stop.json

For every frame, the ``paper`` preset runs once for ``--n-max`` iterations (300 by
default, the top of the paper's range 30..300) and the PSNR against the truth is taken
after every iteration: ``best n`` is the iteration with the highest PSNR, which needs
the truth.  Then ``remove_stars``'s own path runs with ``stop="auto"`` and
``n_iter=--n-max`` (:func:`pipeline.core.remove.diagnose`, which reports the iterations
run); ``auto n`` is the iteration it returned, and ``gap`` the PSNR it loses to the
best n.  The auto result is checked against the scan's image after ``auto n``
iterations.

Frames (512 x 512 unless said otherwise), in three sets:

- ``tuning``, the frames the first rule (the local stop settling, now the fallback
  where no PSF can be measured) was chosen on: the six frames of
  ``bench_survey_quality.py`` (:data:`survey_frames.FRAME_SPECS`) and six
  :func:`pipeline.synthetic.make_survey_frame` frames (seeds 11-16);
- ``held-out``, frames that rule was checked on after it was fixed: the six
  ``FRAME_SPECS`` with seeds + 1000 and one setting changed each, eight
  ``make_survey_frame`` frames (seeds 21-28, other noise, PSF, crowding, scales, no
  nebula), and the paper's synthetic test image (section 4: ``figure2a`` as the
  nebula and truth, ``figure2b - figure2a`` as the stars, 200 x 200) with two noise
  seeds when ``../shared/paper`` is present;
- ``check``, frames drawn after the rule steered by the PSF fit was fixed (it was
  designed with the two sets above in view): the six ``FRAME_SPECS`` with seeds +
  2000 and one setting changed each, and eight ``make_survey_frame`` frames (seeds
  41-48).

PSNR's data range is 255 on stretched frames and the truth's max - min otherwise, as in
``bench_survey_quality.py``.  The target is a gap of at most 0.3 dB on every frame.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pipeline.core.diffusion import start_diffusion  # noqa: E402
from pipeline.core.params import resolve_parameters  # noqa: E402
from pipeline.core.remove import background_for, diagnose, prepare_plane  # noqa: E402
from pipeline.core.validation import validate_image  # noqa: E402
from pipeline.metrics import psnr  # noqa: E402
from pipeline.synthetic import make_survey_frame, paper_synthetic  # noqa: E402
from survey_frames import FRAME_SPECS, build_frame  # noqa: E402

TARGET_GAP_DB = 0.3
PAPER_DIR = Path(__file__).resolve().parents[2] / "shared" / "paper"

#: make_survey_frame settings: (seed, scale, overrides).
TUNING_SURVEY = (
    (11, "stretched", {}),
    (12, "linear", {}),
    (13, "sky-subtracted", {}),
    (14, "linear", {"n_stars": 1200, "fwhm": 2.0}),
    (15, "stretched", {"noise_sigma": 3.0, "n_stars": 800}),
    (16, "linear", {"noise_sigma": 12.0, "fwhm": 4.0, "streak": 30.0}),
)
HELD_OUT_SURVEY = (
    (21, "stretched", {"n_stars": 300, "nebula": 20.0}),
    (22, "linear", {"noise_sigma": 10.0, "n_stars": 200}),
    (23, "sky-subtracted", {"noise_sigma": 12.0, "fwhm": 3.5}),
    (24, "stretched", {"noise_sigma": 8.0, "fwhm": 2.5, "streak": 40.0}),
    (25, "linear", {"nebula": False, "n_galaxies": 0}),
    (26, "stretched", {"nebula": False, "n_galaxies": 12, "n_stars": 1500}),
    (27, "linear", {"noise_sigma": 15.0, "fwhm": 4.5, "flux_range": (100.0, 2e4)}),
    (28, "sky-subtracted", {"n_stars": 800, "poisson_gain": 1.0}),
)
#: One setting changed per FRAME_SPECS frame, with its seed + 1000.
HELD_OUT_SPEC_CHANGES = (
    {"fwhm": 2.6}, {"n_stars": 900}, {"nebula_sigmas": 15.0}, {"n_stars": 250},
    {"streak_sigmas": 4.0}, {"fwhm": 2.5},
)
#: The check set: frames drawn after the rule steered by the PSF fit was fixed, and
#: run once.
CHECK_SURVEY = (
    (41, "stretched", {"n_stars": 600, "fwhm": 3.5}),
    (42, "linear", {"noise_sigma": 8.0, "moffat_beta": 2.5}),
    (43, "sky-subtracted", {"n_stars": 300, "nebula": 30.0}),
    (44, "stretched", {"noise_sigma": 10.0, "n_galaxies": 16}),
    (45, "linear", {"fwhm": 2.2, "n_stars": 1000, "streak": 20.0}),
    (46, "sky-subtracted", {"noise_sigma": 4.0, "moffat_beta": 4.5}),
    (47, "stretched", {"sky_gradient": (0.1, -0.05), "n_stars": 150}),
    (48, "linear", {"noise_sigma": 20.0, "flux_range": (200.0, 1e5)}),
)
#: ... and one setting changed per FRAME_SPECS frame, with its seed + 2000.
CHECK_SPEC_CHANGES = (
    {"n_stars": 400}, {"fwhm": 3.2}, {"moffat_beta": 2.6}, {"nebula_sigmas": 5.0},
    {"n_stars": 900}, {"ellipticity": 0.05},
)


def survey_frames(settings):
    for seed, scale, overrides in settings:
        sf = make_survey_frame((512, 512), seed=seed, scale=scale, **overrides)
        data_range = 255.0 if scale == "stretched" else float(sf.truth.max() - sf.truth.min())
        yield f"msf-{seed}-{scale}", sf.image, sf.truth, data_range


def tuning_frames():
    for spec in FRAME_SPECS:
        frame = build_frame(spec)
        yield spec.name, frame.image, frame.truth, frame.data_range
    yield from survey_frames(TUNING_SURVEY)


def changed_spec_frames(all_changes, suffix, seed_offset):
    """The FRAME_SPECS frames with their seed moved and one setting changed each."""
    for spec, changes in zip(FRAME_SPECS, all_changes):
        spec = dataclasses.replace(spec, name=f"{spec.name}{suffix}",
                                   seed=spec.seed + seed_offset, **changes)
        frame = build_frame(spec)
        yield spec.name, frame.image, frame.truth, frame.data_range


def held_out_frames():
    yield from changed_spec_frames(HELD_OUT_SPEC_CHANGES, "-h", 1000)
    yield from survey_frames(HELD_OUT_SURVEY)
    if (PAPER_DIR / "figure2a.jpg").exists() and (PAPER_DIR / "figure2b.jpg").exists():
        from PIL import Image

        def grey(name):
            return np.asarray(Image.open(PAPER_DIR / f"{name}.jpg").convert("L"), float)

        nebula, both = grey("figure2a"), grey("figure2b")
        stars = np.clip(both - nebula, 0.0, None)
        for seed in (0, 1):
            yield (f"paper-synthetic-{seed}", paper_synthetic(nebula, stars, seed=seed),
                   nebula, 255.0)


def check_frames():
    yield from changed_spec_frames(CHECK_SPEC_CHANGES, "-c", 2000)
    yield from survey_frames(CHECK_SURVEY)


def psnr_curve(image, truth, data_range, n_max, keep):
    """PSNR after every iteration 1..n_max of one ``paper`` run; the image after ``keep``."""
    params = resolve_parameters("paper", n_iter=n_max)
    array = validate_image(image)
    work, mask = prepare_plane(array)
    bavg, noise = background_for(array, params)
    run, _ = start_diffusion(work, params, bavg=bavg, noise=noise, masked=mask)
    curve, kept = np.empty(n_max), None
    for t in range(1, n_max + 1):
        run.advance()
        out = run.image if mask is None else np.where(mask, array, run.image)
        curve[t - 1] = psnr(out, truth, data_range=data_range)
        if t == keep:
            kept = out.copy()
    return curve, kept


def run_frame(name, image, truth, data_range, n_max):
    start = time.perf_counter()
    auto = diagnose(image, iterations=(), preset="paper", stop="auto", n_iter=n_max)
    seconds = time.perf_counter() - start
    n_auto = auto.n_iter_run
    curve, scanned = psnr_curve(image, truth, data_range, n_max, n_auto)
    mismatch = float(np.max(np.abs(auto.image - scanned)))
    if mismatch > 1e-9:
        raise RuntimeError(f"{name}: the auto run differs from the scan by {mismatch}")
    best = int(np.argmax(curve)) + 1
    auto_psnr = psnr(auto.image, truth, data_range=data_range)
    return {"frame": name, "best_n": best, "best_psnr": float(curve[best - 1]),
            "auto_n": n_auto, "auto_psnr": float(auto_psnr),
            "gap_db": float(curve[best - 1] - auto_psnr),
            "fixed_200_psnr": float(curve[min(200, n_max) - 1]),
            "auto_seconds": seconds}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=("all", "tuning", "held-out", "check"),
                        default="all")
    parser.add_argument("--n-max", type=int, default=300)
    parser.add_argument("--json", type=Path, help="write the records here")
    args = parser.parse_args(argv)
    sets = {"tuning": tuning_frames, "held-out": held_out_frames, "check": check_frames}
    wanted = sets if args.set == "all" else {args.set: sets[args.set]}
    records = []
    print(f"{'set':9s} {'frame':24s} {'best n':>6s} {'best dB':>8s} {'auto n':>6s} "
          f"{'auto dB':>8s} {'gap dB':>7s} {'n=200 dB':>8s}")
    for set_name, frames in wanted.items():
        for name, image, truth, data_range in frames():
            rec = {"set": set_name, **run_frame(name, image, truth, data_range,
                                                args.n_max)}
            records.append(rec)
            print(f"{set_name:9s} {name:24s} {rec['best_n']:6d} {rec['best_psnr']:8.3f} "
                  f"{rec['auto_n']:6d} {rec['auto_psnr']:8.3f} {rec['gap_db']:7.3f} "
                  f"{rec['fixed_200_psnr']:8.3f}", flush=True)
    ok = True
    for set_name in wanted:
        gaps = [r["gap_db"] for r in records if r["set"] == set_name]
        within = sum(g <= TARGET_GAP_DB for g in gaps)
        ok &= within == len(gaps)
        print(f"{set_name}: worst gap {max(gaps):.3f} dB, median {np.median(gaps):.3f} dB, "
              f"{within}/{len(gaps)} frames within {TARGET_GAP_DB} dB")
    if args.json:
        args.json.write_text(json.dumps({
            "n_max": args.n_max, "target_gap_db": TARGET_GAP_DB,
            "machine": platform.platform(), "records": records}, indent=2))
    print("PASS" if ok else "FAIL", f"(target: gap <= {TARGET_GAP_DB} dB on every frame)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
