"""``pipeline.diagnose``: the paper's intermediate maps, checked against plain NumPy.

The figure-2d run (reference preset, n = 100) is computed once per module.  Each
recorded map is compared with an independent computation from the reference semantics
(docs/reference-semantics.md): the multi-scale asymmetry, the telescoped relative
residue, the stop threshold and the 8-connected labelling of the stop.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from pipeline import diagnose, remove_stars

N_ITER = 100
RECORDED = (5, 40, 100)
BAVG = 46.0


@pytest.fixture(scope="module")
def figure2d(paper_dir):
    skio = pytest.importorskip("skimage.io")
    return skio.imread(paper_dir / "figure2d.jpg", as_gray=True) * 255


@pytest.fixture(scope="module")
def run(figure2d):
    return diagnose(figure2d, iterations=RECORDED, preset="reference", n_iter=N_ITER)


# ------------------------------------------------------- independent NumPy versions


def numpy_asymmetry(image: np.ndarray, q: int = 5) -> np.ndarray:
    """``(A_1 + ... + A_q) / q`` with ``A_p = 1`` within p pixels of the edge."""
    h, w = image.shape
    total = None
    for p in range(1, q + 1):
        a_p = np.ones((h, w))

        def at(di, dj):
            return image[p + di:h - p + di, p + dj:w - p + dj]

        a_p[p:h - p, p:w - p] = (
            np.abs(at(p, 0) - at(-p, 0)) + np.abs(at(0, -p) - at(0, p))
            + np.abs(at(p, -p) - at(-p, p)) + np.abs(at(p, p) - at(-p, -p))
        )
        total = a_p if total is None else total + a_p
    return total / q


def mean3(image):
    return ndimage.uniform_filter(image, 3, mode="reflect")


def numpy_rbar(image0, iteration, history=4):
    """``max(mean(s_t .. s_{t-3}), 0)``; the sum of relative residues telescopes to
    ``r_t - r_{t-4}`` with ``r_t = |mean3(I0) - mean3(I_t)|``."""
    r0 = mean3(image0)
    late = remove_stars(image0, preset="reference", n_iter=iteration)
    early = remove_stars(image0, preset="reference", n_iter=iteration - history)
    r_late = np.abs(r0 - mean3(late))
    r_early = np.abs(r0 - mean3(early))
    return np.maximum((r_late - r_early) / history, 0.0)


# ------------------------------------------------------------------------ tests


def test_recorded_exactly_at_requested_iterations(run):
    assert sorted(run.diagnostics) == list(RECORDED)
    for t, diag in run.diagnostics.items():
        assert diag.iteration == t


def test_iterations_past_n_iter_are_not_recorded(figure2d):
    result = diagnose(figure2d, iterations=(3, 7, 8, 50), preset="reference", n_iter=7)
    assert sorted(result.diagnostics) == [3, 7]


def test_recording_does_not_change_the_result(run, figure2d):
    expected = remove_stars(figure2d, preset="reference", n_iter=N_ITER)
    np.testing.assert_array_equal(run.image, expected)


def test_no_recording_gives_the_same_image(figure2d):
    plain = diagnose(figure2d, iterations=(), preset="reference", n_iter=20)
    assert plain.diagnostics == {}
    np.testing.assert_array_equal(
        plain.image, remove_stars(figure2d, preset="reference", n_iter=20))


@pytest.mark.parametrize("t", [1, 5, 40])
def test_asymmetry_is_that_of_the_image_entering_the_iteration(run, figure2d, t):
    if t in run.diagnostics:
        recorded = run.diagnostics[t].asymmetry
    else:
        recorded = diagnose(figure2d, iterations=(t,), preset="reference",
                            n_iter=t).diagnostics[t].asymmetry
    entering = remove_stars(figure2d, preset="reference", n_iter=t - 1)
    expected = numpy_asymmetry(entering)
    assert recorded.shape == figure2d.shape
    np.testing.assert_allclose(recorded, expected, rtol=1e-12, atol=1e-12)
    # and it is not the asymmetry of the input (the image has changed by then)
    if t > 1:
        assert np.abs(recorded - numpy_asymmetry(figure2d)).max() > 1.0


def test_relative_residue_none_before_history_is_full(figure2d):
    result = diagnose(figure2d, iterations=(1, 2, 4, 5, 6), preset="reference", n_iter=6)
    for t in (1, 2, 4):
        assert result.diagnostics[t].relative_residue is None
        assert np.isinf(result.diagnostics[t].theta)
        assert (result.diagnostics[t].local_stop == 1).all()
    for t in (5, 6):
        assert result.diagnostics[t].relative_residue is not None


@pytest.mark.parametrize("t", [5, 40])
def test_relative_residue_matches_numpy(run, figure2d, t):
    rbar = run.diagnostics[t].relative_residue
    assert rbar is not None and rbar.shape == figure2d.shape
    assert (rbar >= 0).all()
    expected = numpy_rbar(figure2d, t)
    np.testing.assert_allclose(rbar, expected, rtol=0, atol=1e-9)
    assert rbar.max() > 0


def test_relative_residue_non_negative_at_every_recorded_iteration(run):
    for diag in run.diagnostics.values():
        assert diag.relative_residue is not None
        assert np.isfinite(diag.relative_residue).all()
        assert diag.relative_residue.min() >= 0.0


def test_enhancement_ratio_reference(run, figure2d):
    expected = ndimage.uniform_filter(figure2d, 24, mode="reflect") / BAVG
    np.testing.assert_allclose(run.enhancement_ratio, expected, rtol=1e-15, atol=0)
    np.testing.assert_array_equal(run.signal, expected >= 2.5)
    np.testing.assert_array_equal(run.background, expected < 1.5)
    assert run.signal.any() and run.background.any()


@pytest.mark.parametrize("t", RECORDED)
def test_local_stop_is_binary_and_never_in_background(run, t):
    stop = run.diagnostics[t].local_stop
    assert set(np.unique(stop).tolist()) <= {0, 1}
    assert (stop[run.background] == 1).all()


def test_nebula_edges_protected_at_iteration_100(run):
    stop = run.diagnostics[100].local_stop
    stopped = stop == 0
    assert stopped.sum() >= 50  # at least one protected component of group_size
    # the protected pixels belong to the bright structure, not to the dark sky
    assert run.enhancement_ratio[stopped].min() >= 1.5


@pytest.mark.parametrize("t", [5, 40, 100])
def test_local_stop_matches_thresholded_labelling(run, t):
    diag = run.diagnostics[t]
    rbar = diag.relative_residue
    theta = rbar[run.signal].mean()
    assert diag.theta == pytest.approx(theta, rel=1e-12)
    labels, n = ndimage.label(rbar > theta, structure=np.ones((3, 3)))
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    protected = (sizes[labels] >= 50) & (labels > 0) & ~run.background
    np.testing.assert_array_equal(diag.local_stop, np.where(protected, 0, 1))


def test_stopped_fraction_is_the_final_stop(run):
    assert run.stopped_fraction == pytest.approx(
        np.mean(run.diagnostics[100].local_stop == 0))


def test_diagnostics_are_copies(figure2d):
    result = diagnose(figure2d, iterations=(10, 20), preset="reference", n_iter=20)
    a, b = result.diagnostics[10], result.diagnostics[20]
    assert not np.shares_memory(a.local_stop, b.local_stop)
    assert not np.shares_memory(a.relative_residue, b.relative_residue)
    assert not np.shares_memory(a.asymmetry, result.image)


def test_paper_preset_enhancement_ratio(figure2d):
    result = diagnose(figure2d, iterations=(5,), preset="paper", n_iter=5)
    local = ndimage.uniform_filter(figure2d, 24, mode="reflect")
    bavg = result.stats.shift
    assert 0 < bavg < 100  # the measured sky of an 8-bit frame
    expected = 1.0 + (local - bavg) / result.stats.scale
    np.testing.assert_allclose(result.enhancement_ratio, expected, rtol=1e-12)
    np.testing.assert_array_equal(
        result.image, remove_stars(figure2d, preset="paper", n_iter=5))


@pytest.mark.parametrize("iterations", [(0,), (5, 0), (-1, 5)])
def test_iterations_below_one_rejected(figure2d, iterations):
    with pytest.raises(ValueError, match="iterations"):
        diagnose(figure2d, iterations=iterations, preset="reference", n_iter=5)



@pytest.mark.parametrize("iterations", [None, 40, "40", (2.5,), (True,)])
def test_iterations_that_are_not_integers_rejected(figure2d, iterations):
    # "40" was read as (4, 0), and 2.5 cut to 2, without a word.
    with pytest.raises(TypeError, match="iterations must be a sequence of integers"):
        diagnose(figure2d, iterations=iterations, preset="reference", n_iter=5)


def test_diagnose_validates_the_image():
    with pytest.raises(ValueError, match="channel_axis"):
        diagnose(np.zeros((16, 16, 3)))
    with pytest.raises(TypeError, match="complex"):
        diagnose(np.zeros((16, 16), complex))
    with pytest.raises(ValueError, match="preset"):
        diagnose(np.ones((16, 16)), preset="nope")
