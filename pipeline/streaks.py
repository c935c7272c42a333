"""Straight streaks (satellite and meteor trails): simulation, detection and scoring.

One motivating use of star removal is to clean a frame before a streak detector runs:
background stars are the main source of false line detections (chance rows of stars),
and the detector's threshold is set by a noise level that stars inflate.  This module
holds the small, plain pieces needed to measure that:

- :func:`streak_layer` and :func:`star_rows`: a Gaussian-profile straight streak and
  rows of Moffat stars along lines, to add to a :func:`pipeline.synthetic.make_survey_frame`
  frame;
- :func:`detect_streaks`: a standard detector, background subtraction, a
  ``threshold * sigma`` cut and the probabilistic Hough transform of scikit-image;
- :func:`match_streak`: which detected segments lie on the known streak, and how many
  do not (false positives);
- :func:`streak_amplitude_kept`: how much of the streak's amplitude a processed image
  still holds along the streak.

Geometry conventions
--------------------
Pixel ``(row, column)`` has coordinates ``x = column``, ``y = row`` (pixel centres at
integers), as in :func:`skimage.transform.probabilistic_hough_line`, whose segments are
``((x0, y0), (x1, y1))``.  A line is ``(angle, offset)``: ``angle`` in degrees, in
``[0, 180)``, is the direction of the line measured from the +x axis towards +y
(``0`` = along a row, ``90`` = along a column); ``offset`` is the signed distance
``-x sin(angle) + y cos(angle)`` of its points from the origin, so a line along row
``r`` is ``(0, r)`` and a line along column ``c`` is ``(90, -c)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from pipeline.core.validation import real_image, real_number

__all__ = [
    "StreakMatch",
    "detect_streaks",
    "line_from_mask",
    "match_streak",
    "star_rows",
    "streak_amplitude_kept",
    "streak_layer",
]

_FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))


# --------------------------------------------------------------------------- helpers
def _positive(value, name):
    return real_number(value, name, positive=True)


def _direction(angle_deg):
    t = math.radians(angle_deg)
    return math.cos(t), math.sin(t)


def _distance_to_line(x, y, angle_deg, offset):
    """Signed perpendicular distance of points ``(x, y)`` from ``(angle, offset)``."""
    c, s = _direction(angle_deg)
    return -np.asarray(x, float) * s + np.asarray(y, float) * c - offset


def _grid(shape):
    h, w = shape
    return np.mgrid[0:h, 0:w].astype(np.float64)


def _line_through(angle_deg, center):
    """``(angle, offset)`` of the line of direction ``angle_deg`` through ``(x, y)``."""
    angle = float(angle_deg) % 180.0
    c, s = _direction(angle)
    x0, y0 = center
    return angle, -x0 * s + y0 * c


# --------------------------------------------------------------------------- simulation
def streak_layer(shape, *, angle, center=None, amplitude, fwhm=3.0):
    """A straight streak crossing the whole frame, with a Gaussian cross-profile.

    The same model as the streak of :func:`pipeline.synthetic.make_survey_frame`, but
    with the angle and position chosen by the caller.

    Parameters
    ----------
    shape : tuple of 2 int
        Frame shape (rows, columns).
    angle : float
        Direction of the streak in degrees (see the module's geometry conventions).
    center : tuple of 2 float, optional
        A point ``(x, y)`` of the centre line; default the frame centre.
    amplitude : float
        Peak amplitude (on the centre line).
    fwhm : float, optional
        Full width at half maximum of the cross-profile, in pixels.

    Returns
    -------
    layer : (M, N) ndarray of float64
        The streak's brightness.
    mask : (M, N) ndarray of bool
        Pixels within one ``fwhm`` of the centre line (as ``SurveyFrame.streak_mask``).
    line : tuple of 2 float
        ``(angle, offset)`` of the centre line.
    """
    h, w = (int(v) for v in shape)
    amplitude = _positive(amplitude, "amplitude")
    fwhm = _positive(fwhm, "fwhm")
    if center is None:
        center = ((w - 1) / 2.0, (h - 1) / 2.0)
    line = _line_through(angle, center)
    yy, xx = _grid((h, w))
    dist = np.abs(_distance_to_line(xx, yy, *line))
    layer = amplitude * np.exp(-0.5 * (dist / (fwhm * _FWHM_TO_SIGMA)) ** 2)
    return layer, dist <= fwhm, line


def star_rows(shape, lines, *, spacing=14.0, flux=2000.0, fwhm=3.0, beta=3.5,
              length=None, seed=0):
    """Rows of Moffat stars placed along straight lines (chance alignments).

    Such rows are what a line detector mistakes for streaks.  Each row is a run of
    stars at about ``spacing`` pixels from each other (jittered by 10 %), centred on the
    point of the line nearest the frame centre, with fluxes drawn uniformly between
    0.5 and 1.5 times ``flux``.

    Parameters
    ----------
    shape : tuple of 2 int
        Frame shape (rows, columns).
    lines : sequence of (angle, (x, y))
        Direction in degrees and a point of each row.
    spacing : float, optional
        Mean distance between neighbouring stars of a row, in pixels.
    flux : float, optional
        Mean total flux of a star.
    fwhm, beta : float, optional
        Moffat profile (as in :func:`pipeline.synthetic.make_survey_frame`).
    length : float, optional
        Length of each row in pixels; default the whole line across the frame.
    seed : int, optional
        Seed of the jitter and the fluxes.

    Returns
    -------
    layer : (M, N) ndarray of float64
        The rows' noise-free star light.
    catalogue : ndarray
        ``x``, ``y`` and ``flux`` of every star, dtype
        :data:`pipeline.synthetic.CATALOGUE_DTYPE` (``peak`` included).
    """
    from astropy.modeling.models import Moffat2D

    from pipeline.synthetic import CATALOGUE_DTYPE

    h, w = (int(v) for v in shape)
    spacing = _positive(spacing, "spacing")
    flux = _positive(flux, "flux")
    rng = np.random.default_rng(seed)
    gamma = fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0))
    peak_per_flux = (beta - 1.0) / (math.pi * gamma**2)
    diagonal = math.hypot(h, w)
    xs, ys = [], []
    for angle, point in lines:
        c, s = _direction(angle)
        # foot of the perpendicular from the frame centre onto the line
        cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
        t0 = (cx - point[0]) * c + (cy - point[1]) * s
        mx, my = point[0] + t0 * c, point[1] + t0 * s
        half = (diagonal if length is None else float(length)) / 2.0
        t = np.arange(-half, half + 1e-9, spacing)
        t = t + rng.uniform(-0.1, 0.1, t.size) * spacing
        x, y = mx + t * c, my + t * s
        keep = (x >= -0.5) & (x <= w - 0.5) & (y >= -0.5) & (y <= h - 0.5)
        xs.append(x[keep])
        ys.append(y[keep])
    x = np.concatenate(xs) if xs else np.empty(0)
    y = np.concatenate(ys) if ys else np.empty(0)
    fluxes = flux * rng.uniform(0.5, 1.5, x.size)
    layer = np.zeros((h, w))
    radius = int(math.ceil(gamma * math.sqrt(1e-4 ** (1.0 / (1.0 - beta)) - 1.0)))
    for xi, yi, fi in zip(x, y, fluxes):
        r0, r1 = max(int(round(yi)) - radius, 0), min(int(round(yi)) + radius + 1, h)
        c0, c1 = max(int(round(xi)) - radius, 0), min(int(round(xi)) + radius + 1, w)
        if r0 >= r1 or c0 >= c1:
            continue
        py, px = np.mgrid[r0:r1, c0:c1].astype(np.float64)
        layer[r0:r1, c0:c1] += Moffat2D.evaluate(px, py, fi * peak_per_flux, xi, yi,
                                                 gamma, beta)
    catalogue = np.empty(x.size, dtype=CATALOGUE_DTYPE)
    catalogue["x"], catalogue["y"], catalogue["flux"] = x, y, fluxes
    catalogue["peak"] = fluxes * peak_per_flux
    return layer, catalogue


# --------------------------------------------------------------------------- detection
def _background(image, finite, box):
    """Sigma-clipped median: one level, or a map from a grid of ``box`` px boxes."""
    from astropy.stats import sigma_clipped_stats

    if box is None:
        return sigma_clipped_stats(image[finite], sigma=3.0, maxiters=5)[1]
    h, w = image.shape
    ny, nx = max(1, round(h / box)), max(1, round(w / box))
    rows = np.linspace(0, h, ny + 1).astype(int)
    cols = np.linspace(0, w, nx + 1).astype(int)
    level = np.full((ny, nx), np.nan)
    for i in range(ny):
        for j in range(nx):
            block = image[rows[i]:rows[i + 1], cols[j]:cols[j + 1]]
            ok = finite[rows[i]:rows[i + 1], cols[j]:cols[j + 1]]
            if ok.sum() > 10:
                level[i, j] = sigma_clipped_stats(block[ok], sigma=3.0, maxiters=5)[1]
    if np.isnan(level).all():
        raise ValueError("no box has enough finite pixels to measure the background")
    if np.isnan(level).any():
        level[np.isnan(level)] = np.nanmedian(level)
    if ny == 1 and nx == 1:
        return level[0, 0]
    # Bilinear interpolation between box centres, constant beyond the outer centres.
    yc = (rows[:-1] + rows[1:] - 1) / 2.0
    xc = (cols[:-1] + cols[1:] - 1) / 2.0
    fy = np.interp(np.arange(h), yc, np.arange(ny)) if ny > 1 else np.zeros(h)
    fx = np.interp(np.arange(w), xc, np.arange(nx)) if nx > 1 else np.zeros(w)
    return ndi.map_coordinates(level, np.meshgrid(fy, fx, indexing="ij"), order=1,
                               mode="nearest")


def detect_streaks(image, *, noise_sigma=None, threshold=3.0, line_length=40,
                   line_gap=6, box=64, seed=0):
    """Detect straight line segments with a threshold and the probabilistic Hough transform.

    The standard detector that star removal is meant to help:

    1. subtract the background: sigma-clipped medians (3 sigma, 5 iterations) in boxes
       of about ``box`` pixels, bilinearly interpolated (``box=None``: one level for the
       whole frame);
    2. keep the pixels brighter than ``threshold * sigma`` above it;
    3. run :func:`skimage.transform.probabilistic_hough_line` on that binary image.

    Parameters
    ----------
    image : (M, N) array_like
        The frame.  Non-finite pixels are never selected.
    noise_sigma : float, optional
        Noise level of ``image``.  Default: the standard deviation from
        :func:`astropy.stats.sigma_clipped_stats` of the background-subtracted image
        (which follows the image: a smoothed image gets a lower cut).
    threshold : float, optional
        Detection cut in units of ``noise_sigma``.
    line_length : int, optional
        Shortest segment reported, in pixels.
    line_gap : int, optional
        Largest gap between pixels joined into one segment, in pixels.
    box : int or None, optional
        Side of the background boxes, in pixels.
    seed : int, optional
        Seed of the probabilistic Hough transform (``rng``): the same input and seed
        give the same segments.

    Returns
    -------
    list of ((x0, y0), (x1, y1))
        The segments' end points (``x`` = column, ``y`` = row), as scikit-image gives them.

    References
    ----------
    .. [1] J. Matas, C. Galambos and J. Kittler, "Robust detection of lines using the
           progressive probabilistic Hough transform", CVIU 78(1), 119-137 (2000).
    """
    from astropy.stats import sigma_clipped_stats
    from skimage.transform import probabilistic_hough_line

    img = real_image(image)
    finite = np.isfinite(img)
    if not finite.any():
        raise ValueError("image has no finite pixel")
    threshold = _positive(threshold, "threshold")
    if box is not None:
        box = int(_positive(box, "box"))
    residual = img - _background(img, finite, box)
    if noise_sigma is None:
        noise_sigma = sigma_clipped_stats(residual[finite], sigma=3.0, maxiters=5)[2]
        if not noise_sigma > 0:
            raise ValueError("the measured noise is zero; pass noise_sigma")
    noise_sigma = _positive(noise_sigma, "noise_sigma")
    with np.errstate(invalid="ignore"):
        binary = finite & (residual > threshold * noise_sigma)
    segments = probabilistic_hough_line(binary, threshold=10, line_length=int(line_length),
                                        line_gap=int(line_gap), rng=seed)
    return [((int(a[0]), int(a[1])), (int(b[0]), int(b[1]))) for a, b in segments]


# --------------------------------------------------------------------------- scoring
def line_from_mask(mask):
    """``(angle, offset)`` of the centre line of a straight band of pixels.

    The band's centroid lies on the centre line and its principal axis gives the
    direction (the ends, cut by the frame edges, move the centroid by a small fraction
    of a pixel).

    Parameters
    ----------
    mask : (M, N) array_like of bool
        The band, e.g. ``SurveyFrame.streak_mask``.

    Returns
    -------
    tuple of 2 float
    """
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {m.shape}")
    y, x = np.nonzero(m)
    if x.size < 3:
        raise ValueError("mask holds fewer than 3 pixels: no streak to locate")
    xm, ym = x.mean(), y.mean()
    cov = np.cov(np.vstack([x - xm, y - ym]))
    values, vectors = np.linalg.eigh(cov)
    vx, vy = vectors[:, np.argmax(values)]
    return _line_through(math.degrees(math.atan2(vy, vx)), (xm, ym))


@dataclass(frozen=True)
class StreakMatch:
    """How a list of segments compares with a known streak.

    Attributes
    ----------
    detected : bool
        At least one segment lies on the streak.
    n_true : int
        Segments on the streak (one streak is often found in several pieces).
    n_false : int
        Segments that are not on the streak: false positives.
    n_false_lines : int
        The false segments grouped into distinct lines (segments within
        ``tolerance_deg`` in direction and ``2 * tolerance_px`` of the group's first,
        longest segment's line are one line): a detector that merges collinear
        segments would report this many false streaks.
    coverage : float
        Fraction of the streak's length in the frame covered by its segments.
    angle_error : float
        Length-weighted mean angle difference of the segments on the streak, degrees
        (NaN if none).
    """

    detected: bool
    n_true: int
    n_false: int
    n_false_lines: int
    coverage: float
    angle_error: float


def _segment_angle(segment):
    (x0, y0), (x1, y1) = segment
    return math.degrees(math.atan2(y1 - y0, x1 - x0)) % 180.0


def _angle_difference(a, b):
    d = abs(a - b) % 180.0
    return min(d, 180.0 - d)


def match_streak(segments, truth, *, tolerance_deg=5.0, tolerance_px=4.0, shape=None):
    """Sort detected segments into those on the known streak and false positives.

    A segment is on the streak if its direction is within ``tolerance_deg`` of the
    streak's and both its end points are within ``tolerance_px`` of the centre line.

    Parameters
    ----------
    segments : sequence of ((x0, y0), (x1, y1))
        Detected segments (:func:`detect_streaks`).
    truth : (M, N) array_like of bool, or tuple (angle, offset)
        The streak: its mask (the line is found with :func:`line_from_mask`) or its
        centre line.
    tolerance_deg : float, optional
        Largest direction difference, degrees.
    tolerance_px : float, optional
        Largest distance of a segment's end points from the centre line, pixels.
    shape : tuple of 2 int, optional
        Frame shape, needed for ``coverage`` when ``truth`` is a line (with a mask the
        mask's shape is used); without it ``coverage`` is NaN.

    Returns
    -------
    StreakMatch
    """
    tolerance_deg = _positive(tolerance_deg, "tolerance_deg")
    tolerance_px = _positive(tolerance_px, "tolerance_px")
    if isinstance(truth, tuple) and len(truth) == 2 and np.ndim(truth[0]) == 0:
        angle, offset = float(truth[0]) % 180.0, float(truth[1])
    else:
        mask = np.asarray(truth, dtype=bool)
        angle, offset = line_from_mask(mask)
        shape = mask.shape
    c, s = _direction(angle)
    on, intervals, errors, weights, false = 0, [], [], [], []
    n = 0
    for segment in segments:
        n += 1
        (x0, y0), (x1, y1) = segment
        d = np.abs(_distance_to_line([x0, x1], [y0, y1], angle, offset))
        diff = _angle_difference(_segment_angle(segment), angle)
        if diff <= tolerance_deg and d.max() <= tolerance_px:
            on += 1
            t0, t1 = sorted((x0 * c + y0 * s, x1 * c + y1 * s))
            intervals.append((t0, t1))
            errors.append(diff)
            weights.append(math.hypot(x1 - x0, y1 - y0))
        else:
            false.append(segment)
    coverage = math.nan
    if shape is not None:
        # The streak's extent along its direction inside the frame.
        h, w = shape
        yy, xx = _grid((h, w))
        band = np.abs(_distance_to_line(xx, yy, angle, offset)) <= 0.5
        if band.any():
            t = xx[band] * c + yy[band] * s
            lo, hi = t.min(), t.max()
            covered, end = 0.0, -math.inf
            for a, b in sorted(intervals):
                a, b = max(a, lo, end), min(b, hi)
                if b > a:
                    covered += b - a
                    end = b
            coverage = covered / (hi - lo) if hi > lo else math.nan
    angle_error = (float(np.average(errors, weights=np.maximum(weights, 1e-9)))
                   if errors else math.nan)
    return StreakMatch(detected=on > 0, n_true=on, n_false=n - on,
                       n_false_lines=_count_lines(false, tolerance_deg, 2 * tolerance_px),
                       coverage=float(coverage), angle_error=angle_error)


def _count_lines(segments, tolerance_deg, tolerance_px):
    """Number of distinct lines among ``segments`` (greedy, longest first)."""
    def length(seg):
        (x0, y0), (x1, y1) = seg
        return math.hypot(x1 - x0, y1 - y0)

    lines = []
    for segment in sorted(segments, key=length, reverse=True):
        (x0, y0), (x1, y1) = segment
        angle = _segment_angle(segment)
        for line in lines:
            d = np.abs(_distance_to_line([x0, x1], [y0, y1], *line))
            if _angle_difference(angle, line[0]) <= tolerance_deg and d.max() <= tolerance_px:
                break
        else:
            lines.append(_line_through(angle, (x0, y0)))
    return len(lines)


def streak_amplitude_kept(result, truth, streak_mask, *, sky=None, exclude=None,
                          gap=4.0, width=8.0):
    """Fraction of the streak's amplitude still in ``result`` along the streak.

    ``sum(result - sky) / sum(truth - sky)`` over the streak's pixels, where ``sky`` is
    the truth without the streak.  1 means the streak is intact, 0 that it was removed
    (smoothed into the sky); noise in ``result`` averages out over the streak's pixels.

    Parameters
    ----------
    result : (M, N) array_like
        The processed image (or any image to score).
    truth : (M, N) array_like
        The noise-free, starless scene with the streak.
    streak_mask : (M, N) array_like of bool
        The streak's pixels (``SurveyFrame.streak_mask``).
    sky : float or (M, N) array_like, optional
        The truth without the streak.  Default: a plane fitted by least squares to the
        truth on a band of pixels ``gap`` to ``gap + width`` pixels away from the mask
        (exact for a sky with a linear gradient).
    exclude : (M, N) array_like of bool, optional
        Pixels to leave out of both sums, e.g. where stars sit on the streak (their
        left-over light would otherwise count as streak).
    gap, width : float, optional
        Where the sky band lies, in pixels from the mask.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        Shapes differ, the mask (after ``exclude``) is empty, or the streak's amplitude
        above the sky is not positive (below 1e-6 of the truth's level).
    """
    r = real_image(result, "result")
    t = real_image(truth, "truth")
    m = np.asarray(streak_mask, dtype=bool)
    if r.shape != t.shape or m.shape != t.shape:
        raise ValueError(f"shapes differ: result {r.shape}, truth {t.shape}, "
                         f"streak_mask {m.shape}")
    if not m.any():
        raise ValueError("streak_mask is empty")
    if sky is None:
        d = ndi.distance_transform_edt(~m)
        band = (d > gap) & (d <= gap + width) & np.isfinite(t)
        if band.sum() < 3:
            raise ValueError("too few pixels around the streak to fit the sky; pass sky")
        yy, xx = _grid(t.shape)
        design = np.column_stack([np.ones(band.sum()), xx[band], yy[band]])
        coef, *_ = np.linalg.lstsq(design, t[band], rcond=None)
        sky = coef[0] + coef[1] * xx + coef[2] * yy
    sky = np.broadcast_to(np.asarray(sky, dtype=np.float64), t.shape)
    sel = m & np.isfinite(r) & np.isfinite(t)
    if exclude is not None:
        sel &= ~np.asarray(exclude, dtype=bool)
    if not sel.any():
        raise ValueError("no streak pixel left to score")
    amplitude = (t[sel] - sky[sel]).sum()
    if not amplitude > 1e-6 * np.abs(t[sel]).sum():
        raise ValueError("the streak has no positive amplitude above the sky")
    return float((r[sel] - sky[sel]).sum() / amplitude)
