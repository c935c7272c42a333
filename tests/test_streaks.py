"""Streak detection and scoring (:mod:`pipeline.streaks`) on analytic cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.streaks import (
    detect_streaks,
    line_from_mask,
    match_streak,
    star_rows,
    streak_amplitude_kept,
    streak_layer,
)

SHAPE = (256, 256)
SIGMA = 5.0


def noisy_sky(seed=0, shape=SHAPE, level=100.0, gradient=(0.01, -0.02)):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(float)
    sky = level + gradient[0] * yy + gradient[1] * xx
    return sky, sky + rng.normal(0.0, SIGMA, shape)


# --------------------------------------------------------------------------- geometry
@pytest.mark.parametrize("angle", [0.0, 27.0, 90.0, 133.0, 179.0])
def test_streak_layer_geometry_and_line_from_mask(angle):
    layer, mask, line = streak_layer(SHAPE, angle=angle, center=(120.0, 140.0),
                                     amplitude=10.0, fwhm=3.0)
    assert line[0] == pytest.approx(angle)
    assert layer.max() == pytest.approx(10.0, rel=1e-2)
    # The half maximum lies at fwhm/2 from the centre line.
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    x, y = 120.0 - 1.5 * s, 140.0 + 1.5 * c  # 1.5 px off the line, along its normal
    yy, xx = np.mgrid[0:SHAPE[0], 0:SHAPE[1]]
    nearest = np.argmin((xx - x) ** 2 + (yy - y) ** 2)
    assert np.isclose(np.ravel(layer)[nearest], 5.0, rtol=0.5)
    found = line_from_mask(mask)
    d = abs(found[0] - angle) % 180.0
    assert min(d, 180.0 - d) < 0.2
    # same line: the given centre lies on the found line
    assert abs(-120.0 * math.sin(math.radians(found[0]))
               + 140.0 * math.cos(math.radians(found[0])) - found[1]) < 0.5


def test_line_convention_row_and_column():
    _, mask_row, line_row = streak_layer(SHAPE, angle=0.0, center=(10.0, 77.0),
                                         amplitude=1.0)
    assert line_row == pytest.approx((0.0, 77.0))
    assert mask_row[77].all() and not mask_row[70].any()
    _, mask_col, line_col = streak_layer(SHAPE, angle=90.0, center=(33.0, 5.0),
                                         amplitude=1.0)
    assert line_col == pytest.approx((90.0, -33.0))
    assert mask_col[:, 33].all()


# --------------------------------------------------------------------------- detection
@pytest.mark.parametrize("angle", [12.0, 58.0, 101.0, 160.0])
def test_straight_streak_on_flat_noise_is_found_at_its_angle(angle):
    sky, image = noisy_sky(seed=int(angle))
    layer, mask, line = streak_layer(SHAPE, angle=angle, center=(130.0, 120.0),
                                     amplitude=6.0 * SIGMA)
    segments = detect_streaks(image + layer)
    match = match_streak(segments, line, shape=SHAPE)
    assert match.detected
    assert match.angle_error < 2.0
    assert match.coverage > 0.8
    assert match.n_false == 0
    # The mask gives the same verdict as the line (its angle to a small fraction of a
    # degree, so the angle error differs a little).
    from_mask = match_streak(segments, mask)
    assert (from_mask.detected, from_mask.n_true, from_mask.n_false) == (
        match.detected, match.n_true, match.n_false)
    assert from_mask.coverage == pytest.approx(match.coverage, abs=0.02)


def test_flat_noise_alone_gives_no_segment():
    _, image = noisy_sky(seed=3)
    assert detect_streaks(image) == []


def test_detection_is_deterministic_and_ignores_nan():
    _, image = noisy_sky(seed=4)
    layer, _, line = streak_layer(SHAPE, angle=35.0, amplitude=6.0 * SIGMA)
    frame = image + layer
    frame[10:20, 200:230] = np.nan
    a = detect_streaks(frame, seed=1)
    b = detect_streaks(frame, seed=1)
    assert a == b and a
    assert match_streak(a, line).detected


def test_given_noise_sigma_sets_the_cut():
    _, image = noisy_sky(seed=5)
    layer, _, line = streak_layer(SHAPE, angle=70.0, amplitude=6.0 * SIGMA)
    # A noise level ten times too high puts the cut above the streak's peak.
    assert detect_streaks(image + layer, noise_sigma=10 * SIGMA) == []
    assert match_streak(detect_streaks(image + layer, noise_sigma=SIGMA), line).detected


def test_star_field_false_positives():
    """Isolated stars give no segment; a tight row of stars gives false ones, the same
    number every time, and none of them matches a streak elsewhere."""
    _, image = noisy_sky(seed=6)
    # isolated stars on a 32 px grid (further apart than any line_gap)
    field, _ = star_rows(SHAPE, [(0.0, (0.0, y)) for y in range(16, 256, 32)],
                         spacing=32.0, flux=3000.0, seed=1)
    segments = detect_streaks(image + field)
    assert segments == []
    # one row of stars 8 px apart along 45 degrees
    row, catalogue = star_rows(SHAPE, [(45.0, (128.0, 128.0))], spacing=8.0, flux=3000.0,
                               seed=2)
    assert len(catalogue) > 20
    star_frame = image + field + row
    segments = detect_streaks(star_frame)
    again = detect_streaks(star_frame)
    assert segments == again
    streak_elsewhere = (135.0, 0.0)  # the other diagonal
    match = match_streak(segments, streak_elsewhere, shape=SHAPE)
    assert not match.detected
    assert match.n_false == len(segments) >= 1
    assert match.n_false_lines >= 1
    # and taken as the truth, the row is "detected": it is a perfect fake streak
    assert match_streak(segments, (45.0, 0.0)).detected


def test_match_counts_by_hand():
    line = (0.0, 50.0)  # along row 50
    segments = [((0, 50), (60, 51)),    # on the streak
                ((70, 49), (120, 50)),  # on the streak
                ((0, 60), (60, 60)),    # parallel, 10 px off: false
                ((0, 62), (60, 62)),    # same false line as the previous one
                ((10, 0), (10, 100))]   # perpendicular: false
    match = match_streak(segments, line, shape=(100, 200), tolerance_px=4.0)
    assert match.detected and match.n_true == 2 and match.n_false == 3
    assert match.n_false_lines == 2
    assert match.coverage == pytest.approx(110 / 199, abs=0.01)
    empty = match_streak([], line)
    assert not empty.detected and empty.n_false == 0 and math.isnan(empty.angle_error)


# --------------------------------------------------------------------------- amplitude
def test_amplitude_kept_one_for_truth_zero_without_streak():
    sky, image = noisy_sky(seed=7)
    layer, mask, _ = streak_layer(SHAPE, angle=40.0, amplitude=4.0 * SIGMA)
    truth = sky + layer
    # exact up to the streak's Gaussian tail (~1e-7) in the band the sky is fitted on
    assert streak_amplitude_kept(truth, truth, mask) == pytest.approx(1.0, abs=1e-12)
    assert streak_amplitude_kept(sky, truth, mask) == pytest.approx(0.0, abs=1e-6)
    # noisy frames: noise averages out over the streak's pixels
    assert streak_amplitude_kept(image + layer, truth, mask) == pytest.approx(1.0, abs=0.05)
    assert streak_amplitude_kept(image, truth, mask) == pytest.approx(0.0, abs=0.05)
    # half the streak
    assert streak_amplitude_kept(sky + 0.5 * layer, truth, mask) == pytest.approx(0.5)
    # given sky, and excluded pixels
    assert streak_amplitude_kept(truth, truth, mask, sky=sky) == pytest.approx(1.0)
    exclude = np.zeros(SHAPE, bool)
    exclude[:128] = True
    assert streak_amplitude_kept(sky + 0.5 * layer, truth, mask, sky=sky,
                                 exclude=exclude) == pytest.approx(0.5)


def test_amplitude_kept_rejects_bad_input():
    sky, _ = noisy_sky(seed=8)
    layer, mask, _ = streak_layer(SHAPE, angle=40.0, amplitude=10.0)
    with pytest.raises(ValueError, match="empty"):
        streak_amplitude_kept(sky, sky + layer, np.zeros(SHAPE, bool))
    with pytest.raises(ValueError, match="shapes"):
        streak_amplitude_kept(sky[:10], sky + layer, mask)
    with pytest.raises(ValueError, match="positive amplitude"):
        streak_amplitude_kept(sky, sky, mask)


@pytest.mark.parametrize("amplitude_sigma", [4.0, 8.0])
def test_the_default_preset_keeps_a_faint_trail_and_removes_star_rows(amplitude_sigma):
    """The streak issue's targets, with defaults only, on one frame of the benchmark's kind."""
    from pipeline import remove_stars
    from pipeline.metrics import star_flux_left
    from pipeline.streaks import (detect_streaks, match_streak, star_rows,
                                  streak_amplitude_kept, streak_layer)
    from pipeline.synthetic import make_survey_frame

    shape, sigma = (384, 384), 6.0
    frame = make_survey_frame(shape, seed=21, nebula=False, n_galaxies=0,
                              noise_sigma=sigma, n_stars=450)
    trail, mask, line = streak_layer(shape, angle=62.0, center=(190.0, 200.0),
                                     amplitude=amplitude_sigma * sigma, fwhm=3.0)
    rows, _ = star_rows(shape, [(130.0, (120.0, 250.0))], spacing=9.0, flux=2000.0, seed=21)
    image = frame.image + trail + rows
    truth, stars = frame.truth + trail, frame.stars + rows
    starless = remove_stars(image)
    assert streak_amplitude_kept(starless, truth, mask, exclude=stars > 0.5 * sigma) >= 0.8
    assert star_flux_left(starless, truth, stars) <= 0.15
    found = match_streak(detect_streaks(starless), line, shape=shape)
    assert found.detected and found.n_false_lines == 0
