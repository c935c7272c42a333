"""The ``reference`` preset against the authors' code's outputs (goldens)."""

import numpy as np
import pytest

from pipeline import remove_stars


def _diffusion_cases(golden):
    cases, arrays = golden
    return [(c, arrays[c["name"] + "__input"], arrays[c["name"] + "__output"])
            for c in cases if "method" not in c]


def test_every_golden_case_to_1e9(golden):
    checked = 0
    for case, image, expected in _diffusion_cases(golden):
        result = remove_stars(image, preset="reference", n_iter=case["n_iter"],
                              bavg=case["bavg"], gamma=case["gamma"])
        assert result.shape == expected.shape
        assert result.dtype == np.float64
        diff = np.max(np.abs(result - expected))
        assert diff <= 1e-9, f"{case['name']}: max abs diff {diff:g}"
        checked += 1
    assert checked == 11


def test_golden_input_is_not_modified(golden):
    case, image, _ = _diffusion_cases(golden)[0]
    before = image.copy()
    remove_stars(image, preset="reference", n_iter=case["n_iter"])
    np.testing.assert_array_equal(image, before)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_integer_and_single_precision_inputs_match_float64(golden, dtype):
    case, image, _ = _diffusion_cases(golden)[1]
    cast = image.astype(dtype)
    expected = remove_stars(cast.astype(np.float64), preset="reference", n_iter=20)
    result = remove_stars(cast, preset="reference", n_iter=20)
    np.testing.assert_array_equal(result, expected)
