"""``pipeline.remove_stars`` on awkward inputs, and the physical invariants of the method.

Every expectation here is independent of the implementation: analytic cases (a flat
image cannot diffuse, a conservative scheme with zero-flux edges keeps the total), the
results of simpler equivalent calls (a channel on its own, the same values as float64,
the transposed image), or the documented contract (error types and messages).
Images are small and runs short so that the module takes a few seconds.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pipeline import PRESETS, DiffusionParameters, diagnose, remove_stars

PRESET_NAMES = ("paper", "reference")
SKY = 46.0


def _gauss(shape, cy, cx, amp, sigma=1.0):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return amp * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2.0 * sigma**2))


def _star_field(shape=(64, 64), seed=0, sky=SKY, noise=1.0):
    """Noisy flat sky with two small stars at (12, 12) and (48, 20)."""
    rng = np.random.default_rng(seed)
    image = sky + rng.normal(0.0, noise, shape)
    image += _gauss(shape, 12, 12, 100.0) + _gauss(shape, 48, 20, 80.0)
    return image


def _field_with_nebula(shape=(64, 64), seed=0):
    """Star field plus a bright extended blob, so the signal map and stop are active."""
    image = _star_field(shape, seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image += 150.0 * np.exp(-((yy - 40) ** 2 / 80.0 + (xx - 44) ** 2 / 120.0))
    return image


def _peak_excess_drop(before, after, sky, at):
    """Fraction of a star's peak excess over the sky that the run removed."""
    return 1.0 - (after[at] - sky[at]) / (before[at] - sky[at])


# --------------------------------------------------------------------------- errors


def _raises(exc, match, func, *args, **kwargs):
    with pytest.raises(exc, match=match):
        func(*args, **kwargs)


@pytest.mark.parametrize("preset", PRESET_NAMES)
class TestRejectedImages:
    def test_3d_without_channel_axis_names_channel_axis(self, preset):
        _raises(ValueError, "channel_axis", remove_stars, np.zeros((16, 16, 3)), preset=preset)

    def test_1d(self, preset):
        _raises(ValueError, "2-D", remove_stars, np.zeros(16), preset=preset)

    def test_0d_and_4d(self, preset):
        _raises(ValueError, "2-D", remove_stars, np.float64(3.0), preset=preset)
        _raises(ValueError, "2-D", remove_stars, np.zeros((4, 4, 4, 4)), preset=preset)

    @pytest.mark.parametrize("shape", [(0, 5), (5, 0), (0, 0)])
    def test_empty(self, preset, shape):
        _raises(ValueError, "empty", remove_stars, np.zeros(shape), preset=preset)

    def test_too_small(self, preset):
        _raises(ValueError, "too small", remove_stars, np.zeros((2, 8)), preset=preset)

    def test_complex_is_type_error(self, preset):
        _raises(TypeError, "complex", remove_stars, np.ones((8, 8), complex), preset=preset)

    @pytest.mark.parametrize("fill", [np.nan, np.inf, -np.inf])
    def test_no_finite_pixel(self, preset, fill):
        _raises(ValueError, "finite", remove_stars, np.full((8, 8), fill), preset=preset)

    @pytest.mark.parametrize(
        "array",
        [np.zeros((8, 8), bool), np.zeros((8, 8), object), np.full((8, 8), "a"),
         np.full((8, 8), b"a"), np.zeros((8, 8), "datetime64[s]")],
        ids=["bool", "object", "str", "bytes", "datetime"],
    )
    def test_non_numeric_dtypes_are_type_errors(self, preset, array):
        _raises(TypeError, str(array.dtype).replace("[", r"\[").replace("]", r"\]"),
                remove_stars, array, preset=preset)

    def test_channel_axis_out_of_range_or_on_2d(self, preset):
        _raises(ValueError, "channel_axis", remove_stars, np.zeros((8, 8, 3)),
                preset=preset, channel_axis=3)
        _raises(ValueError, "3-D", remove_stars, np.zeros((8, 8)), preset=preset,
                channel_axis=0)
        _raises(TypeError, "channel_axis", remove_stars, np.zeros((8, 8, 3)),
                preset=preset, channel_axis=True)


@pytest.mark.parametrize("preset", PRESET_NAMES)
class TestRejectedParameters:
    def test_negative_n_iter(self, preset):
        _raises(ValueError, "n_iter", remove_stars, np.ones((8, 8)), preset=preset, n_iter=-1)

    @pytest.mark.parametrize("value", [2.5, "3", True])
    def test_non_integer_n_iter_is_type_error(self, preset, value):
        _raises(TypeError, "n_iter", remove_stars, np.ones((8, 8)), preset=preset,
                n_iter=value)

    @pytest.mark.parametrize("gamma", [0.2500001, 0.3, 1.0, 0.0, -0.1])
    def test_gamma_outside_stable_range(self, preset, gamma):
        _raises(ValueError, "gamma", remove_stars, np.ones((8, 8)), preset=preset,
                gamma=gamma)

    def test_gamma_at_stability_limit_is_accepted(self, preset):
        out = remove_stars(np.ones((8, 8)), preset=preset, gamma=0.25, n_iter=1)
        assert out.shape == (8, 8)

    @pytest.mark.parametrize("gamma", [float("nan"), float("inf")])
    def test_non_finite_gamma(self, preset, gamma):
        _raises(ValueError, "gamma", remove_stars, np.ones((8, 8)), preset=preset,
                gamma=gamma)

    @pytest.mark.parametrize(
        "name",
        ["gamma", "signal_ratio"],
    )
    def test_string_for_real_parameter_is_type_error(self, preset, name):
        # n_iter="3" is a TypeError (above); a real-valued parameter given as a string
        # must be refused the same way, not parsed.
        value = {"gamma": "0.1", "signal_ratio": "2.5"}[name]
        _raises(TypeError, name, remove_stars, np.ones((8, 8)), preset=preset,
                n_iter=0, **{name: value})

    def test_unknown_parameter_is_named(self, preset):
        _raises(TypeError, "n_iters", remove_stars, np.ones((8, 8)), preset=preset, n_iters=3)


def test_unknown_preset_lists_the_presets():
    with pytest.raises(ValueError) as info:
        remove_stars(np.ones((8, 8)), preset="nope")
    message = str(info.value)
    assert "nope" in message
    for name in PRESET_NAMES:
        assert name in message


def test_preset_of_wrong_type():
    _raises(TypeError, "preset", remove_stars, np.ones((8, 8)), preset=None)


def test_reference_preset_refuses_non_positive_bavg():
    _raises(ValueError, "bavg", remove_stars, np.ones((8, 8)), preset="reference", bavg=0.0)


# ----------------------------------------------------------------- masked pixels


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_nan_in_flat_star_free_region_changes_nothing(preset):
    # A NaN inside a patch that is exactly flat carries no information.  While the
    # patch is flat the result must be that of the image with the pixel set to the
    # patch value, to rounding.  Later the masked pixel is a genuine zero-flux
    # boundary that the diffusion has to go around, which may change its surroundings
    # by far less than the noise, but not more.
    image = _star_field(seed=1)
    image[38:62, 38:62] = SKY
    holed = image.copy()
    holed[50, 50] = np.nan
    finite = np.ones(image.shape, bool)
    finite[50, 50] = False
    for n_iter, atol in ((1, 0.0), (30, 1e-3)):
        expected = remove_stars(image, preset=preset, n_iter=n_iter)
        result = remove_stars(holed, preset=preset, n_iter=n_iter)
        assert np.isnan(result[50, 50])
        assert np.isfinite(result[finite]).all()
        np.testing.assert_allclose(result[finite], expected[finite], rtol=1e-12,
                                   atol=atol)


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_nan_pixels_stay_nan_and_do_not_spread(preset):
    image = _field_with_nebula(seed=2)
    mask = np.zeros(image.shape, bool)
    mask[12, 13] = True          # on the flank of a star
    mask[40, 44] = True          # on the nebula
    mask[5:20, 60] = True        # a bad column segment at the right edge
    mask[0, 0] = True            # a corner
    holed = image.copy()
    holed[mask] = np.nan
    result = remove_stars(holed, preset=preset, n_iter=30)
    assert np.isnan(result[mask]).all()
    assert np.isfinite(result[~mask]).all()
    # the star next to the NaN is still removed
    assert _peak_excess_drop(image, result, np.full(image.shape, SKY), (12, 12)) > 0.5


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_masked_pixel_neither_injects_nor_absorbs_flux(preset):
    # Masked pixels are not data: a conservative scheme must exchange no flux with
    # them (zero-flux boundary around the mask), so the total over the finite pixels
    # is conserved exactly as it is on a finite image.
    rng = np.random.default_rng(0)
    image = SKY + rng.normal(0.0, 1.0, (64, 64)) + _gauss((64, 64), 32, 32, 100.0)
    image[32, 33] = np.nan
    finite = np.isfinite(image)
    result = remove_stars(image, preset=preset, n_iter=100)
    np.testing.assert_allclose(result[finite].sum(), image[finite].sum(), rtol=1e-12)


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_infinite_pixels_stay_infinite_rest_finite(preset):
    image = _field_with_nebula(seed=3)
    image[12, 12] = np.inf       # a saturated star core
    image[30, 5] = -np.inf
    result = remove_stars(image, preset=preset, n_iter=30)
    assert result[12, 12] == np.inf
    assert result[30, 5] == -np.inf
    others = np.isfinite(image)
    assert np.isfinite(result[others]).all()
    # nearby pixels are not swamped by the infinite one
    assert np.abs(result[others]).max() < 1e3


# ------------------------------------------------------------ special images


@pytest.mark.parametrize("preset", PRESET_NAMES)
@pytest.mark.parametrize("value", [46.0, 7.25, 1e6])
def test_constant_image_is_a_fixed_point(preset, value):
    image = np.full((32, 48), value)
    result = remove_stars(image, preset=preset, n_iter=20)
    np.testing.assert_array_equal(result, image)


@pytest.mark.parametrize("value", [0.0, -3.5])
def test_constant_zero_or_negative_image_paper(value):
    image = np.full((32, 32), value)
    result = remove_stars(image, preset="paper", n_iter=20)
    assert np.isfinite(result).all()
    np.testing.assert_array_equal(result, image)


def _sky_subtracted(seed=4, offset=0.0):
    shape = (64, 64)
    rng = np.random.default_rng(seed)
    image = offset + rng.normal(0.0, 1.0, shape)
    image += _gauss(shape, 20, 20, 100.0) + _gauss(shape, 44, 40, 80.0)
    return image


@pytest.mark.parametrize("offset", [0.0, -5.0])
def test_sky_subtracted_frame_paper_is_finite(offset):
    image = _sky_subtracted(offset=offset)
    assert (image < 0).any()
    result = remove_stars(image, preset="paper", n_iter=100)
    assert np.isfinite(result).all()
    np.testing.assert_allclose(result.sum(), image.sum(), rtol=1e-12,
                               atol=1e-12 * np.abs(image).sum())


@pytest.mark.xfail(strict=True, reason=(
    "known limitation of the paper's enhancement factor, kept by the 'paper' preset: "
    "on a sky-subtracted frame its scale is the noise times the paper's own "
    "background-to-noise ratio (46/17.1), so a 100-sigma star has exp((m - bavg)/scale)"
    " ~ exp(30), c ~ 0 and is protected like a nebula; the survey preset of the "
    "survey-mode issue is what must remove it"))
@pytest.mark.parametrize("offset", [0.0, -5.0])
def test_sky_subtracted_frame_paper_reduces_stars(offset):
    image = _sky_subtracted(offset=offset)
    sky = np.full(image.shape, offset)
    result = remove_stars(image, preset="paper", n_iter=100)
    assert _peak_excess_drop(image, result, sky, (20, 20)) > 0.5
    assert _peak_excess_drop(image, result, sky, (44, 40)) > 0.5


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_star_field_without_extended_signal(preset):
    # No pixel reaches the signal ratio: the authors' code divides by zero here.
    image = _star_field(seed=5)
    assert not diagnose(image, preset=preset, n_iter=1, iterations=()).signal.any()
    result = remove_stars(image, preset=preset, n_iter=100)
    assert np.isfinite(result).all()
    sky = np.full(image.shape, SKY)
    assert _peak_excess_drop(image, result, sky, (12, 12)) > 0.8
    assert _peak_excess_drop(image, result, sky, (48, 20)) > 0.8


def test_all_zero_image_paper():
    image = np.zeros((40, 40))
    result = remove_stars(image, preset="paper", n_iter=20)
    assert np.isfinite(result).all()
    np.testing.assert_array_equal(result, image)


@pytest.mark.parametrize("preset", PRESET_NAMES)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_integer_and_single_inputs_equal_float64_run(preset, dtype):
    image = np.clip(np.round(_field_with_nebula(seed=6)), 0, 255).astype(dtype)
    expected = remove_stars(image.astype(np.float64), preset=preset, n_iter=20)
    result = remove_stars(image, preset=preset, n_iter=20)
    assert result.dtype == np.float64
    np.testing.assert_array_equal(result, expected)


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_rectangular_image_commutes_with_transpose(preset):
    # The scheme, the asymmetry, the moving means and the 8-connected labelling are all
    # symmetric under exchanging rows and columns, so a non-square image and its
    # transpose must give transposed results (catches mixed-up axes).
    shape = (40, 70)
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:40, :70]
    image = SKY + rng.normal(0.0, 1.0, shape) + _gauss(shape, 10, 15, 100.0)
    image += _gauss(shape, 28, 50, 80.0)
    image += 120.0 * np.exp(-((yy - 20) ** 2 / 60.0 + (xx - 35) ** 2 / 200.0))
    result = remove_stars(image, preset=preset, n_iter=30)
    transposed = remove_stars(np.ascontiguousarray(image.T), preset=preset, n_iter=30)
    assert result.shape == shape
    np.testing.assert_allclose(transposed.T, result, rtol=1e-12, atol=1e-10)
    assert _peak_excess_drop(image, result, np.full(shape, SKY), (10, 15)) > 0.5


@pytest.mark.parametrize("preset", PRESET_NAMES)
@pytest.mark.parametrize("shape", [(8, 8), (3, 3), (3, 11)])
def test_tiny_images(preset, shape):
    rng = np.random.default_rng(8)
    image = SKY + 5.0 * rng.random(shape)
    image[shape[0] // 2, shape[1] // 2] += 100.0
    result = remove_stars(image, preset=preset, n_iter=20)
    assert result.shape == shape and result.dtype == np.float64
    assert np.isfinite(result).all()
    np.testing.assert_allclose(result.sum(), image.sum(), rtol=1e-12)


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_huge_dynamic_range(preset):
    rng = np.random.default_rng(9)
    image = 10.0 ** rng.uniform(-3, 9, (64, 64))
    image[0, 0], image[-1, -1] = 1e-3, 1e9
    result = remove_stars(image, preset=preset, n_iter=20)
    assert np.isfinite(result).all()
    np.testing.assert_allclose(result.sum(), image.sum(), rtol=1e-12)


# ------------------------------------------------------------------- channels


@pytest.mark.parametrize("preset", PRESET_NAMES)
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_channel_axis_equals_each_channel_alone(preset, axis):
    base = _field_with_nebula(seed=10)
    planes = [base, 0.5 * base + 20.0, base[::-1].copy()]
    planes[1][30, 30] = np.nan  # a masked pixel in one channel only
    cube = np.stack(planes, axis=axis)
    result = remove_stars(cube, preset=preset, channel_axis=axis, n_iter=20)
    assert result.shape == cube.shape and result.dtype == np.float64
    for c, plane in enumerate(planes):
        alone = remove_stars(plane, preset=preset, n_iter=20)
        np.testing.assert_array_equal(np.take(result, c, axis=axis), alone)


# -------------------------------------------------------- the caller's array


def _layouts():
    base = _field_with_nebula(seed=11)
    big = np.zeros((128, 192))
    big[::2, ::3] = base
    with_nan = base.copy()
    with_nan[20, 20] = np.nan
    readonly = base.copy()
    readonly.flags.writeable = False
    return {
        "c_contiguous": base.copy(),
        "fortran": np.asfortranarray(base),
        "strided_view": big[::2, ::3],
        "transposed_view": np.ascontiguousarray(base.T).T,
        "with_nan": with_nan,
        "float32": base.astype(np.float32),
        "readonly": readonly,
    }


@pytest.mark.parametrize("preset", PRESET_NAMES)
@pytest.mark.parametrize("layout", list(_layouts()))
def test_caller_array_is_not_modified(preset, layout):
    image = _layouts()[layout]
    before = image.copy()
    result = remove_stars(image, preset=preset, n_iter=20)
    np.testing.assert_array_equal(image, before)
    assert not np.shares_memory(result, image)
    expected = remove_stars(np.array(before, dtype=np.float64, order="C"), preset=preset,
                            n_iter=20)
    np.testing.assert_array_equal(result, expected)


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_list_input(preset):
    image = _star_field(seed=12)[:16, :16]
    np.testing.assert_array_equal(
        remove_stars(image.tolist(), preset=preset, n_iter=5),
        remove_stars(image, preset=preset, n_iter=5),
    )


@pytest.mark.parametrize("preset", PRESET_NAMES)
@pytest.mark.parametrize("dtype", [np.float64, np.uint8])
def test_zero_iterations_return_the_input_as_float64(preset, dtype):
    image = np.clip(np.round(_field_with_nebula(seed=13)), 0, 255).astype(dtype)
    if dtype == np.float64:
        image[3, 4] = np.nan
    result = remove_stars(image, preset=preset, n_iter=0)
    assert result.dtype == np.float64 and result.shape == image.shape
    assert not np.shares_memory(result, image)
    np.testing.assert_array_equal(result, image.astype(np.float64))


# ---------------------------------------------------------- physical invariants


@pytest.mark.parametrize("preset", PRESET_NAMES)
@pytest.mark.parametrize("n_iter", [1, 30])
def test_total_flux_is_conserved(preset, n_iter):
    # Zero-flux boundaries and a flux-form update: sum(output) == sum(input).
    image = _field_with_nebula(seed=14)
    result = remove_stars(image, preset=preset, n_iter=n_iter)
    assert not np.array_equal(result, image)
    np.testing.assert_allclose(result.sum(), image.sum(), rtol=1e-12)


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_output_shape_and_dtype(preset):
    image = _star_field(seed=15).astype(np.float32)[:40, :56]
    result = remove_stars(image, preset=preset, n_iter=5)
    assert isinstance(result, np.ndarray)
    assert result.shape == (40, 56) and result.dtype == np.float64


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_star_removed_edge_kept(preset):
    # A symmetric star has (near) zero asymmetry at its core and diffuses away; a
    # straight step of the same height is strongly asymmetric and is kept.
    shape = (64, 64)
    rng = np.random.default_rng(16)
    sky = SKY + rng.normal(0.0, 1.0, shape)
    star = sky + _gauss(shape, 32, 32, 100.0)
    edge = sky.copy()
    edge[:, 32:] += 100.0
    star_out = remove_stars(star, preset=preset, n_iter=100)
    edge_out = remove_stars(edge, preset=preset, n_iter=100)
    assert _peak_excess_drop(star, star_out, sky, (32, 32)) > 0.8
    step_before = edge[16:48, 34:37].mean() - edge[16:48, 28:31].mean()
    step_after = edge_out[16:48, 34:37].mean() - edge_out[16:48, 28:31].mean()
    assert step_after > 0.9 * step_before


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_stars_plus_starless_is_the_input(preset):
    image = _field_with_nebula(seed=17)
    image[5, 40] = np.nan
    starless = remove_stars(image, preset=preset, n_iter=50)
    stars = image - starless
    finite = np.isfinite(image)
    assert np.isnan(stars[~finite]).all() and np.isfinite(stars[finite]).all()
    recombined = stars + starless
    tol = 2 * np.spacing(np.maximum(np.abs(image), np.abs(starless)))
    assert (np.abs(recombined[finite] - image[finite]) <= tol[finite]).all()
    # the stars image holds the stars: its largest values sit on the two stars
    yy, xx = np.mgrid[:64, :64]
    discs = ((yy - 12) ** 2 + (xx - 12) ** 2 <= 9) | ((yy - 48) ** 2 + (xx - 20) ** 2 <= 9)
    assert stars[12, 12] > 50.0 and stars[48, 20] > 40.0
    assert np.nanmax(np.abs(stars[~discs])) < 0.25 * stars[48, 20]


# ----------------------------------------------------------------- parameters


def test_parameters_are_frozen():
    params = PRESETS["reference"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.gamma = 0.1
    assert params.gamma == 0.25


def test_replace_unknown_name_is_type_error():
    with pytest.raises(TypeError, match="bogus"):
        PRESETS["paper"].replace(bogus=1)


def test_replace_returns_a_new_validated_object():
    base = PRESETS["reference"]
    changed = base.replace(n_iter=12)
    assert changed.n_iter == 12 and base.n_iter == 200
    with pytest.raises(ValueError):
        base.replace(gamma=0.5)
    with pytest.raises(ValueError, match="background_ratio=3.0 is above signal_ratio"):
        base.replace(background_ratio=3.0)


def test_presets():
    assert set(PRESETS) >= {"reference", "paper"}
    assert isinstance(PRESETS["reference"], DiffusionParameters)
    assert PRESETS["reference"].bavg == 46.0
    assert PRESETS["reference"].formulation == "reference"
    assert PRESETS["paper"].formulation == "finite"
    assert PRESETS["paper"].bavg is None


def test_parameter_object_as_preset_equals_named_preset():
    image = _star_field(seed=18)
    np.testing.assert_array_equal(
        remove_stars(image, preset=PRESETS["reference"].replace(n_iter=10)),
        remove_stars(image, preset="reference", n_iter=10),
    )


def test_the_survey_preset_does_not_depend_on_the_frames_units():
    """A frame in other units (flux-calibrated, or counts times a gain) gives the same
    starless image in those units: thresholds are in units of the measured noise."""
    from pipeline.synthetic import make_survey_frame

    image = make_survey_frame((256, 256), seed=1).image
    noise = 6.0
    reference = remove_stars(image)
    # A power of two changes no rounding: the same image, to the fits' tolerance.
    np.testing.assert_allclose(remove_stars(image * 4.0) / 4.0, reference, rtol=0,
                               atol=1e-6 * noise)
    # Other factors round differently, which flips the decision at a few sources (0.4 %
    # of the pixels here; see "Sensitivity to rounding" in the README).
    for scale in (1e-3, 1e6):
        difference = np.abs(remove_stars(image * scale) / scale - reference)
        assert np.median(difference) < 0.01 * noise
        assert np.mean(difference > 0.25 * noise) < 0.01


@pytest.mark.xfail(strict=True, reason=(
    "known limitation of the paper's asymmetry, kept by the 'paper' preset: the "
    "authors' code sets the asymmetry of the border pixels to 1 in the image's units, "
    "and k = 2 mean(A_1) includes them, so on a frame in small units (flux-calibrated, "
    "1e-17) k is ruled by the border and the diffusion smooths everything alike"))
def test_the_paper_preset_does_not_depend_on_the_frames_units():
    from pipeline.synthetic import make_survey_frame

    image = make_survey_frame((128, 128), seed=1, n_stars=60).image
    reference = remove_stars(image, preset="paper", n_iter=30)
    scaled = remove_stars(image * 1e-3, preset="paper", n_iter=30) / 1e-3
    assert np.abs(scaled - reference).max() < 0.1 * 6.0
