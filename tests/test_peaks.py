"""local_maxima is scikit-image's peak_local_max, the same peaks in the same order."""

import numpy as np
import pytest
from skimage.feature import peak_local_max

from pipeline.core.peaks import local_maxima
from pipeline.synthetic import make_survey_frame


def _frames():
    rng = np.random.default_rng(4)
    noise = rng.normal(size=(120, 150))
    yield "noise", noise
    # Quantised values make plateaus, the only peaks the spacing pass thins.
    yield "quantised", np.round(2 * noise)
    yield "clipped", np.clip(noise, None, 0.8)
    frame = make_survey_frame((256, 256), seed=3, scale="stretched", saturate=255.0).image
    yield "stretched survey frame", np.round(frame)


@pytest.mark.parametrize("min_distance", [1, 2, 3, 5])
@pytest.mark.parametrize("exclude_border", [False, True, 7])
def test_same_peaks_as_peak_local_max(min_distance, exclude_border):
    thinned = 0
    for name, image in _frames():
        threshold = float(np.median(image))
        expected = peak_local_max(image, min_distance=min_distance,
                                  threshold_abs=threshold, exclude_border=exclude_border)
        found = local_maxima(image, min_distance=min_distance, threshold_abs=threshold,
                             exclude_border=exclude_border)
        np.testing.assert_array_equal(found, expected, err_msg=name)
        candidates = peak_local_max(image, min_distance=1,
                                    footprint=np.ones((2 * min_distance + 1,) * 2),
                                    threshold_abs=threshold, exclude_border=exclude_border)
        thinned += len(candidates) - len(expected)
    if min_distance > 1:
        assert thinned > 0  # the plateaus did exercise the spacing pass


def test_min_distance_below_one_is_an_error():
    with pytest.raises(ValueError, match="min_distance"):
        local_maxima(np.zeros((5, 5)), min_distance=0, threshold_abs=0.0,
                     exclude_border=False)
