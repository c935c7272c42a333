"""Parameters of the star-removal diffusion, and the named presets.

All tunable numbers live in :class:`DiffusionParameters`, a frozen dataclass whose
defaults are the values of Table 1 of Cohen & Lu as the authors' code sets
them.  A preset is nothing more than a named instance of it; ``DEFAULT_PRESET`` names
the one that :func:`pipeline.remove_stars` uses when the caller does not choose.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Literal, Mapping

__all__ = [
    "DiffusionParameters",
    "PRESETS",
    "DEFAULT_PRESET",
    "resolve_parameters",
]

Formulation = Literal["reference", "finite"]
StarModel = Literal["asymmetry", "psf"]
Stop = Literal["fixed", "auto"]

#: Smallest ``threshold_sample``: one 64 x 64 block, below which theta is too noisy.
MIN_THRESHOLD_SAMPLE = 64 * 64


@dataclass(frozen=True)
class DiffusionParameters:
    """Every parameter of the asymmetry-driven diffusion.

    Parameters
    ----------
    n_iter : int
        Number of diffusion iterations (``n`` in the paper; 200 for its Fig. 7e).
    gamma : float
        Step size of the explicit scheme; stable for ``0 < gamma <= 0.25``.
    q : int
        Largest asymmetry scale in pixels; the asymmetry averages scales 1..q.
    bavg : float or None
        Average background intensity.  The authors' code hard-codes 46 (0..255 images).
        ``None`` estimates it from the image with sigma-clipped statistics.
    segmentation_window : int
        Side of the moving mean of the input that classifies signal and background.
    signal_ratio : float
        ``mean(I0)/bavg`` at or above which a pixel is signal (sets the stop threshold).
    background_ratio : float
        ``mean(I0)/bavg`` below which a pixel is pure background (never stopped).
    group_size : int
        Residue components with at least this many pixels are protected (stopped).
    residue_history : int
        Number of relative residues averaged before thresholding.
    formulation : {"reference", "finite"}
        ``"reference"`` evaluates the enhancement exactly as the authors' code,
        ``exp((m/bavg)/B - 1)``, which needs a positive background.  ``"finite"``
        evaluates the paper's ``S * exp(ratio - 1)`` with ``S = inf`` where ``B = 0``
        and the intensity ratio taken against the background *level and scale*
        ``1 + (m - bavg) / max(bavg, noise)``, so it stays finite on frames whose
        background is at or below zero (sky-subtracted data).
    threshold_sample : int or None
        Largest number of pixels whose residue sets the stop threshold theta.  A
        frame with more pixels takes theta from a fixed grid of sample blocks of
        about this total area, placed in frame coordinates
        (:func:`pipeline.core.sampling.threshold_blocks`), so that a tiled run can
        learn every iteration's theta from those blocks alone and then stream its
        tiles independently, in memory that does not grow with the frame.
        ``None``: always the whole frame, as the authors' code does.
    star_model : {"asymmetry", "psf"}
        How a star is told from the rest.  ``"asymmetry"``: the paper's diffusion,
        driven by the local asymmetry and stopped locally (every field above).
        ``"psf"``: a source that the image's own point-spread function fits is a star
        and is subtracted, one wider than the PSF (a galaxy) or more elongated (a
        streak) stays, with a background and noise map measured on the image
        (:func:`pipeline.core.starfit.fit_and_subtract_stars`); it reads no other
        field but ``threshold_sample``, the area the PSF is measured on in a tiled
        run, and ``asinh_knee``.
    stop : {"fixed", "auto"}
        When the diffusion ends.  ``"fixed"``: after exactly ``n_iter`` iterations,
        as in the paper, whose authors chose n by trial and error (30 to 300).
        ``"auto"``: ``n_iter`` is the largest number of iterations, and the result is
        the iteration closest to a starless estimate made without the diffusion:
        the ``survey`` preset's PSF fit of the same frame, the RMS difference over
        the data pixels after every iteration; the run ends ``AUTO_STOP_WINDOW``
        (30) iterations after the closest one without a closer one.  The PSNR
        against the truth peaks where the diffusion has eroded the stars and not yet
        blurred the rest; the PSF fit has done the first and not the second, so the
        diffusion comes closest to it about there too.  It costs one ``survey`` run
        of the frame on top of the diffusion.  Measured (``benchmarks/bench_auto_stop.py``, n_iter
        300): see benchmarks/README.md.  On a frame where no PSF can be measured
        (no isolated star), the run ends once the local stop has settled instead:
        when the fraction of pixels it switches off, averaged over the last
        ``AUTO_STOP_WINDOW`` iterations, has fallen by less than
        ``AUTO_STOP_TOLERANCE`` (2 %, relative) from its average over the 30 before
        (:func:`pipeline.core.diffusion.auto_stop_reached`; earliest stop: iteration
        60).  ``DiffusionResult.n_iter_run`` is the iteration returned.  Whole-frame
        runs only: a tiled run must know its halo, hence its ``n_iter``, before it
        starts, and raises ``ValueError``.
    asinh_knee : float or None
        For a PSF star model only: the image is shown through a known asinh display
        stretch ``y = K asinh(x / s)`` with its zero at 0 (the black point), and this
        is ``K``, in the image's units (``W / asinh(1 / a)`` for astropy's
        ``AsinhStretch(a)`` on a white level ``W``: 85.05 for ``a = 0.1`` and 8 bits;
        ``W / Q`` for Lupton et al.'s ``asinh(Q x) / Q``).  The stars are fitted on
        ``K sinh(y / K)``, where a bright star has the PSF's shape instead of a core
        flattened by the stretch, and the result is stretched back
        (:mod:`pipeline.core.stretch`).  ``None`` (default): the image is fitted as
        it is.  A wrong knee costs more than none: see benchmarks/README.md.

    References
    ----------
    .. [1] M. Cohen and W. Lu, "A diffusion-based method for removing background
           stars from astronomical images", Table 1 and section 6 (the open problem
           of the stopping time).
    .. [2] L. Prechelt, "Early stopping -- but when?", in *Neural Networks: Tricks
           of the Trade*, LNCS 1524, 55-69, Springer, 1998 (stopping when a
           monitored quantity stops improving over a window of iterations).
    """

    n_iter: int = 200
    gamma: float = 0.25
    q: int = 5
    bavg: float | None = 46.0
    segmentation_window: int = 24
    signal_ratio: float = 2.5
    background_ratio: float = 1.5
    group_size: int = 50
    residue_history: int = 4
    formulation: Formulation = "reference"
    threshold_sample: int | None = None
    star_model: StarModel = "asymmetry"
    stop: Stop = "fixed"
    asinh_knee: float | None = None

    def __post_init__(self) -> None:
        _check_int(self, "n_iter", minimum=0)
        _check_int(self, "q", minimum=1)
        _check_int(self, "segmentation_window", minimum=1)
        _check_int(self, "group_size", minimum=1)
        _check_int(self, "residue_history", minimum=1)
        if self.threshold_sample is not None:
            _check_int(self, "threshold_sample", minimum=MIN_THRESHOLD_SAMPLE)
        _check_real(self, "gamma")
        if not 0.0 < self.gamma <= 0.25:
            raise ValueError(
                f"gamma={self.gamma!r} is outside the stable range 0 < gamma <= 0.25"
            )
        if self.bavg is not None:
            _check_real(self, "bavg")
            if self.formulation == "reference" and not self.bavg > 0:
                raise ValueError(
                    f"bavg={self.bavg!r}: the reference formulation divides by bavg and "
                    "needs it positive; use formulation='finite' (preset 'paper') for "
                    "sky-subtracted data"
                )
        for name in ("signal_ratio", "background_ratio"):
            _check_real(self, name)
        if self.background_ratio > self.signal_ratio:
            # A pixel would be signal (stopped) and pure background (never stopped).
            raise ValueError(f"background_ratio={self.background_ratio!r} is above "
                             f"signal_ratio={self.signal_ratio!r}")
        if self.formulation not in ("reference", "finite"):
            raise ValueError(
                f"formulation={self.formulation!r}; expected 'reference' or 'finite'"
            )
        if self.star_model not in ("asymmetry", "psf"):
            raise ValueError(
                f"star_model={self.star_model!r}; expected 'asymmetry' or 'psf'"
            )
        if not isinstance(self.stop, str) or self.stop not in ("fixed", "auto"):
            raise ValueError(f"stop={self.stop!r}; expected 'fixed' or 'auto'")
        if self.asinh_knee is not None:
            _check_real(self, "asinh_knee")
            if not self.asinh_knee > 0:
                raise ValueError(f"asinh_knee={self.asinh_knee!r} must be > 0")
            if self.star_model != "psf":
                raise ValueError("asinh_knee applies to the PSF star model (preset "
                                 "'survey'), not to the diffusion")

    def replace(self, **overrides) -> "DiffusionParameters":
        """Return a copy with some fields changed; unknown names raise ``TypeError``."""
        _check_names(overrides)
        return dataclasses.replace(self, **overrides)

    def as_dict(self) -> dict:
        """The parameters as a plain dict (for configs and checkpoints)."""
        return dataclasses.asdict(self)

    def in_use(self) -> dict:
        """The fields that this star model reads, as a plain dict: what a provenance
        record names.  The PSF model reads ``star_model``, ``threshold_sample`` and
        ``asinh_knee``; the diffusion every field but ``asinh_knee``."""
        return {name: value for name, value in self.as_dict().items()
                if (name in _PSF_MODEL_FIELDS if self.star_model == "psf"
                    else name != "asinh_knee")}


def _check_int(params: DiffusionParameters, name: str, *, minimum: int) -> None:
    value = getattr(params, name)
    if isinstance(value, bool) or not isinstance(value, int):
        # Accept integral numpy scalars and floats such as 200.0 from configs.
        if hasattr(value, "__index__") and not isinstance(value, bool):
            value = int(value)
        elif isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise TypeError(f"{name} must be an integer, got {value!r}")
        object.__setattr__(params, name, value)
    if value < minimum:
        raise ValueError(f"{name}={value} must be >= {minimum}")


def _check_real(params: DiffusionParameters, name: str) -> None:
    value = getattr(params, name)
    if isinstance(value, (bool, str, bytes)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name}={value!r} must be finite")
    object.__setattr__(params, name, value)


_FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(DiffusionParameters))


def _check_names(overrides: Mapping) -> None:
    unknown = sorted(set(overrides) - _FIELD_NAMES)
    if unknown:
        raise TypeError(
            f"unknown parameter(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(_FIELD_NAMES))}"
        )


#: The authors' code, to the bit: bavg = 46 and its own evaluation of the enhancement.
REFERENCE = DiffusionParameters()

#: The paper's parameters, with bavg measured on each image (sigma-clipped), the
#: enhancement evaluated in a form that stays finite on sky-subtracted data, and theta
#: taken from 2048 x 2048 pixels of sample blocks on larger frames.
PAPER = REFERENCE.replace(bavg=None, formulation="finite", threshold_sample=2048 * 2048)

#: Survey frames in any units: stars are the sources the image's own PSF fits, so
#: compact galaxies, nebulae and faint streaks stay (no parameter to tune).
SURVEY = PAPER.replace(star_model="psf")

PRESETS: Mapping[str, DiffusionParameters] = {
    "reference": REFERENCE,
    "paper": PAPER,
    "survey": SURVEY,
}

#: The preset used when none is named.  Changing the default is this one line.
DEFAULT_PRESET = "survey"


def resolve_parameters(
    preset: str | DiffusionParameters = DEFAULT_PRESET, **overrides
) -> DiffusionParameters:
    """Look up a preset by name (or take a parameter object) and apply overrides.

    Raises
    ------
    ValueError
        If ``preset`` is not a known name.
    TypeError
        If an override names no parameter.
    ValueError
        If a PSF star model is given a diffusion parameter (an override, or a field
        of ``preset``) other than the ``survey`` preset's: it would be ignored.
    """
    if isinstance(preset, DiffusionParameters):
        base = preset
    elif isinstance(preset, str):
        try:
            base = PRESETS[preset]
        except KeyError:
            raise ValueError(
                f"unknown preset {preset!r}; known presets: {', '.join(sorted(PRESETS))}"
            ) from None
    else:
        raise TypeError(
            f"preset must be a name or DiffusionParameters, got {type(preset).__name__}"
        )
    params = base.replace(**overrides) if overrides else base
    if params.star_model == "psf":
        # Silently ignoring e.g. n_iter, given as an override or in a parameter
        # object, would run something else than the caller asked.
        unused = sorted(name for name in _FIELD_NAMES - _PSF_MODEL_FIELDS
                        if getattr(params, name) != getattr(SURVEY, name))
        if unused:
            named = f"preset {preset!r}" if isinstance(preset, str) else "given"
            raise ValueError(
                f"{', '.join(unused)} {'tunes' if len(unused) == 1 else 'tune'} only "
                f"the diffusion, which the PSF star model ({named}) does not run; "
                "use the 'paper' preset for the diffusion"
            )
    return params


#: The fields a PSF star model reads.
_PSF_MODEL_FIELDS = frozenset({"star_model", "threshold_sample", "asinh_knee"})
