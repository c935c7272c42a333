"""The benchmark baseline (benchmarks/numpy_reference.py) reproduces the authors' goldens.

benchmarks/ is not a package, so the module is loaded by file path.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

TOLERANCE = 1e-9
MODULE_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "numpy_reference.py"


def _load_numpy_reference():
    spec = importlib.util.spec_from_file_location("destar_bench_numpy_reference", MODULE_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


numpy_reference = _load_numpy_reference()


def _diffusion_cases(cases):
    # Every case except the Perona-Malik baseline, which has a different method.
    return [case for case in cases if case.get("method", "diffusion") != "perona-malik"]


def test_every_diffusion_golden(golden):
    cases, arrays = golden
    diffusion = _diffusion_cases(cases)
    assert len(diffusion) >= 10, "expected the ten-odd diffusion goldens"

    failures = []
    for case in diffusion:
        name = case["name"]
        image = arrays[f"{name}__input"]
        expected = arrays[f"{name}__output"]
        out = numpy_reference.diffuse_reference(
            image, n_iter=case["n_iter"], bavg=case["bavg"], gamma=case["gamma"]
        )
        assert out.dtype == np.float64
        assert out.shape == expected.shape
        diff = float(np.max(np.abs(out - expected)))
        if not diff <= TOLERANCE:  # also catches NaN
            failures.append(f"{name}: max abs diff {diff:.3e}")
    assert not failures, "; ".join(failures)


def test_input_is_not_modified_and_zero_iterations_is_identity():
    rng = np.random.default_rng(0)
    image = 46.0 + 5.0 * rng.standard_normal((40, 30))
    before = image.copy()
    out = numpy_reference.diffuse_reference(image, n_iter=0)
    assert np.array_equal(image, before)
    assert np.array_equal(out, before)
    assert out is not image


def test_pure_background_frame_has_no_signal_and_does_not_crash():
    # No pixel reaches signal_ratio: the reference would divide by zero, we use theta=+inf.
    rng = np.random.default_rng(1)
    image = 46.0 + 3.0 * rng.standard_normal((64, 64))
    out = numpy_reference.diffuse_reference(image, n_iter=8)
    assert np.all(np.isfinite(out))
    assert out.std() < image.std()  # it diffused


@pytest.mark.parametrize("shape", [(8, 8), (11, 7)])
def test_frames_smaller_than_the_largest_scale(shape):
    image = np.full(shape, 120.0)
    image[shape[0] // 2, shape[1] // 2] = 250.0
    out = numpy_reference.diffuse_reference(image, n_iter=6)
    assert np.all(np.isfinite(out))
