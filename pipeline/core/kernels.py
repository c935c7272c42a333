"""Compiled kernels of one diffusion iteration.

Each kernel is a numba function over a 2-D float64 array, parallel over bands of rows.
The structure follows where the time goes (see the project's performance notes):

* :func:`diffuse_step` fuses the multi-scale asymmetry, the enhancement factor, the
  diffusion coefficient and the flux update into one pass.  A band of rows keeps the
  coefficients of the row above it in a small buffer instead of a full-frame array, so
  the pass reads the image once and writes it once.
* :func:`residue_step` fuses the 3x3 mean of the new image, the residue against the
  original, the averaged relative residue (telescoped from a ring of residues) and the
  per-row partial sums of the stop threshold, again in one pass.
* :class:`StopLabeller` is a run-based union-find labelling of the thresholded residue
  with 8-connectivity that only answers what the stop needs: is a pixel's component at
  least ``group_size`` pixels large.

The enhancement factor's ``exp`` runs in a branch-free polynomial form
(:func:`_exp_row`) that the compiler vectorises; it is accurate to about one unit in
the last place, well inside the 1e-9 tolerance of the reference goldens.

Boundary conventions are those of the reference code: the asymmetry at scale p is 1
within p pixels of the edge, differences past the last row and column are 0, and the
3x3 mean reflects at the edges (scipy's ``mode='reflect'``).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

_JIT = dict(cache=True, nogil=True, error_model="numpy")

#: Rows per parallel work item.  Each band recomputes one row of coefficients above
#: it, so bands must be long enough for that to be cheap and short enough to balance.
BAND_ROWS = 32

_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_LOG2E = 1.44269504088896338700e00
# Past these the result is inf or 0 for every purpose of the method (exp(709) is
# 8e307: the coefficient it feeds is 0 to within 1e-300 either way).
_EXP_MAX = 709.0
_EXP_MIN = -708.0


@njit(**_JIT)
def _exp_row(x, out, bits):
    """``out[:] = exp(x)`` for a row, in a form the compiler vectorises.

    Cody-Waite reduction ``x = n ln2 + r`` with ``|r| <= ln2/2``, a degree-13 Taylor
    polynomial for ``exp(r)`` (truncation error below 1e-17), and the scale ``2**n``
    assembled from its exponent bits through an integer view of ``bits``.
    """
    nbits = bits.view(np.int64)
    n = x.shape[0]
    for j in range(n):
        v = x[j]
        v = min(max(v, _EXP_MIN), _EXP_MAX)
        k = np.floor(v * _LOG2E + 0.5)
        r = (v - k * _LN2_HI) - k * _LN2_LO
        p = 1.0 / 6227020800.0
        p = p * r + 1.0 / 479001600.0
        p = p * r + 1.0 / 39916800.0
        p = p * r + 1.0 / 3628800.0
        p = p * r + 1.0 / 362880.0
        p = p * r + 1.0 / 40320.0
        p = p * r + 1.0 / 5040.0
        p = p * r + 1.0 / 720.0
        p = p * r + 1.0 / 120.0
        p = p * r + 1.0 / 24.0
        p = p * r + 1.0 / 6.0
        p = p * r + 0.5
        p = p * r + 1.0
        p = p * r + 1.0
        out[j] = p
        nbits[j] = (np.int64(k) + 1023) << 52
    for j in range(n):
        v = x[j]
        e = out[j] * bits[j]
        if v > _EXP_MAX:
            e = np.inf
        elif v < _EXP_MIN:
            e = 0.0
        elif v != v:
            e = np.nan
        out[j] = e


@njit(**_JIT)
def _asymmetry_row(img, i, q, acc):
    """Multi-scale asymmetry of row ``i``: ``acc[:] = (A_1 + ... + A_q) / q``.

    Summed scale by scale and term by term in the reference order, so the result is
    bit-identical to the whole-array NumPy formulation.
    """
    h, w = img.shape
    for p in range(1, q + 1):
        if i < p or i >= h - p:
            for j in range(w):
                acc[j] = 1.0 if p == 1 else acc[j] + 1.0
            continue
        up = img[i - p]
        mid = img[i]
        dn = img[i + p]
        lo = min(p, w)
        hi = max(w - p, lo)
        for j in range(lo):
            acc[j] = 1.0 if p == 1 else acc[j] + 1.0
        for j in range(hi, w):
            acc[j] = 1.0 if p == 1 else acc[j] + 1.0
        # Views shifted so that every loop index starts at 0: the compiler then drops
        # the negative-index wraparound checks and vectorises the loop.
        n = hi - lo
        target = acc[lo:hi]
        up_c, dn_c = up[lo:hi], dn[lo:hi]
        mid_w, mid_e = mid[lo - p:hi - p], mid[lo + p:hi + p]
        dn_w, dn_e = dn[lo - p:hi - p], dn[lo + p:hi + p]
        up_w, up_e = up[lo - p:hi - p], up[lo + p:hi + p]
        if p == 1:
            for j in range(n):
                target[j] = (
                    abs(dn_c[j] - up_c[j])
                    + abs(mid_w[j] - mid_e[j])
                    + abs(dn_w[j] - up_e[j])
                    + abs(dn_e[j] - up_w[j])
                )
        else:
            for j in range(n):
                target[j] += (
                    abs(dn_c[j] - up_c[j])
                    + abs(mid_w[j] - mid_e[j])
                    + abs(dn_w[j] - up_e[j])
                    + abs(dn_e[j] - up_w[j])
                )
    inv = np.float64(q)
    for j in range(w):
        acc[j] = acc[j] / inv


@njit(parallel=True, **_JIT)
def multiscale_asymmetry(img, q):
    """The multi-scale asymmetry ``a`` of a whole image (diagnostics and ``k``)."""
    h, w = img.shape
    out = np.empty((h, w))
    for i in prange(h):
        _asymmetry_row(img, i, q, out[i])
    return out


@njit(**_JIT)
def _coefficient_row(img, mean3, stop, i, q, k, shift, scale, finite, use_stop,
                     acc, arg, tmp, bits, c):
    """Diffusion coefficient ``c`` of row ``i`` into ``c``.

    ``reference``: ``e = a * exp((m/bavg)/B - 1)`` exactly as the authors' code, with
    ``shift = 0`` and ``scale = bavg``.  Where that evaluates to NaN (``m == 0`` under
    ``B == 0``, or ``a == 0`` under an infinite factor) the code's output would turn
    NaN; here the pixel does not diffuse, the limit the stop intends.
    ``finite``: ``e = a * S * exp((m - shift)/scale)`` with ``S = inf`` where B = 0.
    """
    w = img.shape[1]
    _asymmetry_row(img, i, q, acc)
    m = mean3[i]
    b = stop[i]
    if finite:
        for j in range(w):
            arg[j] = (m[j] - shift) / scale
    elif use_stop:
        # (m/bavg)/B - 1 for B in {0, 1}, without the division: x/1 is x exactly,
        # and x/0 is +inf, -inf or NaN by the sign of x.
        for j in range(w):
            x = m[j] / scale
            if b[j] == 0:
                x = np.inf if x > 0 else (-np.inf if x < 0 else np.nan)
            arg[j] = x - 1.0
    else:
        for j in range(w):
            arg[j] = m[j] / scale - 1.0
    _exp_row(arg, tmp, bits)
    for j in range(w):
        e = acc[j] * tmp[j]
        cj = 1.0 / (1.0 + e / k)
        if cj != cj or (finite and use_stop and b[j] == 0):
            cj = 0.0
        c[j] = cj


@njit(**_JIT)
def _edge_coefficients(c, closed, c_south, c_east):
    """Coefficients of a row's south and east edges; 0 across a closed edge.

    ``closed`` has bit 1 set where the south edge is closed and bit 2 where the east
    edge is, that is on the edges of masked pixels.  Multiplying by 1.0 leaves open
    edges bit-identical to the unmasked computation.
    """
    for j in range(c.shape[0]):
        c_south[j] = c[j] * (1.0 - (closed[j] & 1))
        c_east[j] = c[j] * (1.0 - ((closed[j] >> 1) & 1))


@njit(parallel=True, **_JIT)
def diffuse_step(img, out, mean3, stop, closed, any_closed, q, k, gamma, shift, scale,
                 finite, use_stop):
    """One explicit diffusion step ``out = img + gamma * div(c grad img)``.

    The flux between a pixel and its south (east) neighbour is the pixel's own
    coefficient times the difference, as in the reference code; the last row and
    column have no south/east flux, nor do edges marked in ``closed`` (read only when
    ``any_closed``: most images have no masked pixel, and skip that pass).
    """
    h, w = img.shape
    nbands = (h + BAND_ROWS - 1) // BAND_ROWS
    for band in prange(nbands):
        r0 = band * BAND_ROWS
        r1 = min(r0 + BAND_ROWS, h)
        acc = np.empty(w)
        arg = np.empty(w)
        tmp = np.empty(w)
        bits = np.empty(w)
        c_raw = np.empty(w)
        c_prev = np.empty(w)
        c_cur = np.empty(w)
        c_east = np.empty(w)
        if r0 > 0:
            if any_closed:
                _coefficient_row(img, mean3, stop, r0 - 1, q, k, shift, scale, finite,
                                 use_stop, acc, arg, tmp, bits, c_raw)
                _edge_coefficients(c_raw, closed[r0 - 1], c_prev, c_east)
            else:
                _coefficient_row(img, mean3, stop, r0 - 1, q, k, shift, scale, finite,
                                 use_stop, acc, arg, tmp, bits, c_prev)
        for i in range(r0, r1):
            if any_closed:
                _coefficient_row(img, mean3, stop, i, q, k, shift, scale, finite,
                                 use_stop, acc, arg, tmp, bits, c_raw)
                _edge_coefficients(c_raw, closed[i], c_cur, c_east)
            else:
                _coefficient_row(img, mean3, stop, i, q, k, shift, scale, finite,
                                 use_stop, acc, arg, tmp, bits, c_cur)
                c_east = c_cur
            row = img[i]
            res = out[i]
            ns = arg  # the coefficient row is done with this buffer; reuse it
            if i < h - 1:
                south = img[i + 1]
                for j in range(w):
                    ns[j] = c_cur[j] * (south[j] - row[j])
            else:
                for j in range(w):
                    ns[j] = 0.0
            if i > 0:
                north = img[i - 1]
                for j in range(w):
                    ns[j] = ns[j] - c_prev[j] * (row[j] - north[j])
            if w == 1:
                res[0] = row[0] + gamma * (ns[0] + 0.0)
            else:
                res[0] = row[0] + gamma * (ns[0] + c_east[0] * (row[1] - row[0]))
                n = w - 2
                row_w, row_c, row_e = row[0:w - 2], row[1:w - 1], row[2:w]
                c_w, c_c = c_east[0:w - 2], c_east[1:w - 1]
                ns_c, res_c = ns[1:w - 1], res[1:w - 1]
                for j in range(n):
                    ewx = c_c[j] * (row_e[j] - row_c[j]) - c_w[j] * (row_c[j] - row_w[j])
                    res_c[j] = row_c[j] + gamma * (ns_c[j] + ewx)
                res[w - 1] = row[w - 1] + gamma * (
                    ns[w - 1] + (0.0 - c_east[w - 2] * (row[w - 1] - row[w - 2]))
                )
            c_prev, c_cur = c_cur, c_prev


@njit(**_JIT)
def _mean3_row(img, i, colsum, out):
    """3x3 moving mean of row ``i`` with reflecting edges, as scipy's uniform_filter.

    scipy filters axis 0 then axis 1, each as a sum of three divided by three.
    """
    h, w = img.shape
    up = img[max(i - 1, 0)]
    mid = img[i]
    dn = img[min(i + 1, h - 1)]
    for j in range(w):
        colsum[j] = (up[j] + mid[j] + dn[j]) / 3.0
    if w == 1:
        out[0] = colsum[0]
        return
    out[0] = (colsum[0] + colsum[0] + colsum[1]) / 3.0
    west, centre, east, inner = colsum[0:w - 2], colsum[1:w - 1], colsum[2:w], out[1:w - 1]
    for j in range(w - 2):
        inner[j] = (west[j] + centre[j] + east[j]) / 3.0
    out[w - 1] = (colsum[w - 2] + colsum[w - 1] + colsum[w - 1]) / 3.0


@njit(parallel=True, **_JIT)
def mean3(img):
    """3x3 moving mean of a whole image (reflecting edges)."""
    h, w = img.shape
    out = np.empty((h, w))
    for i in prange(h):
        colsum = np.empty(w)
        _mean3_row(img, i, colsum, out[i])
    return out


@njit(parallel=True, **_JIT)
def residue_step(img, mean3_out, r0, r_ring, t, n_hist, signal, rbar_out, row_sums,
                 row_counts):
    """Residue bookkeeping after a step, fused into one pass.

    ``mean3_out`` receives the 3x3 mean of the new image (it is also the next
    iteration's enhancement mean), and ``r_t = |R0 - mean3|`` goes into slot
    ``t % (n_hist + 1)`` of the ring ``r_ring``.  Once ``n_hist`` relative residues
    ``s_t = r_t - r_{t-1}`` exist, ``rbar_out`` receives ``max(mean of the last n_hist,
    0)`` and ``row_sums``/``row_counts`` the per-row sums over signal pixels that make
    the stop threshold.

    The mean of the last ``n_hist`` relative residues telescopes to
    ``(r_t - r_{t-n_hist}) / n_hist``: one read of an old residue instead of
    ``n_hist`` reads and a write of the history, which makes this memory-bound pass
    about twice as light.  It equals the reference code's sum of the ``s`` terms up
    to rounding (a few 1e-16 relative); the goldens agree to 1e-13.
    """
    h, w = img.shape
    slots = n_hist + 1
    newest_slot = t % slots
    oldest_slot = (t + 1) % slots  # holds r_{t - n_hist}
    complete = t >= n_hist + 1
    for i in prange(h):
        colsum = np.empty(w)
        m = mean3_out[i]
        _mean3_row(img, i, colsum, m)
        origin = r0[i]
        newest = r_ring[newest_slot, i]
        oldest = r_ring[oldest_slot, i]
        out = rbar_out[i]
        sig = signal[i]
        total = 0.0
        count = 0
        if complete:
            # Eight partial sums break the dependency chain of a single running sum;
            # the threshold's summation order is free (the reference's is NumPy's).
            partial = np.zeros(8)
            for j in range(w):
                r = abs(origin[j] - m[j])
                newest[j] = r
                v = max((r - oldest[j]) / n_hist, 0.0)
                out[j] = v
                if sig[j]:
                    partial[j % 8] += v
                    count += 1
            total = partial.sum()
        else:
            for j in range(w):
                newest[j] = abs(origin[j] - m[j])
        row_sums[i] = total
        row_counts[i] = count


@njit(**_JIT)
def _find(parent, x):
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


@njit(parallel=True, **_JIT)
def _find_runs(rbar, theta, starts, ends, counts):
    """Runs of ``rbar > theta`` in every row: ``[starts, ends)`` and their number.

    Written without data-dependent branches: every column writes its index to the
    next start and end slot, and the slot only advances where a run begins or ends.
    On a noisy residue a branch per pixel would be mispredicted half the time.
    """
    h, w = rbar.shape
    for i in prange(h):
        row = rbar[i]
        row_starts = starts[i]
        row_ends = ends[i]
        n_starts = 0
        n_ends = 0
        inside = 0
        for j in range(w):
            above = 1 if row[j] > theta else 0
            row_starts[n_starts] = j
            row_ends[n_ends] = j
            n_starts += above & (1 - inside)
            n_ends += inside & (1 - above)
            inside = above
        row_ends[n_ends] = w
        counts[i] = n_starts


@njit(**_JIT)
def _union_rows(starts, ends, counts, offsets, parent, sizes, i):
    """Union the runs of row ``i`` with the 8-connected runs of row ``i - 1``."""
    a = 0
    b = 0
    na = counts[i]
    nb = counts[i - 1]
    while a < na and b < nb:
        # 8-connectivity: runs touch when they overlap once widened by one pixel.
        if starts[i, a] <= ends[i - 1, b] and starts[i - 1, b] <= ends[i, a]:
            ra = _find(parent, offsets[i] + a)
            rb = _find(parent, offsets[i - 1] + b)
            if ra != rb:
                if rb < ra:
                    ra, rb = rb, ra
                parent[rb] = ra
                sizes[ra] += sizes[rb]
        if ends[i, a] < ends[i - 1, b]:
            a += 1
        else:
            b += 1


@njit(parallel=True, **_JIT)
def _merge_runs(starts, ends, counts, offsets, parent, sizes, root_of, nparts):
    """Component of every run (``root_of``) and component sizes at the roots.

    The rows are cut into ``nparts`` blocks merged in parallel (their unions only
    touch runs of their own block), then the seams between blocks are merged, and
    finally every run looks up its root without writing, so the threads never race.
    """
    h = counts.shape[0]
    total = 0
    for i in range(h):
        offsets[i] = total
        total += counts[i]
    for i in prange(h):
        for r in range(counts[i]):
            parent[offsets[i] + r] = offsets[i] + r
            sizes[offsets[i] + r] = ends[i, r] - starts[i, r]
    block = (h + nparts - 1) // nparts
    for part in prange(nparts):
        for i in range(part * block + 1, min((part + 1) * block, h)):
            _union_rows(starts, ends, counts, offsets, parent, sizes, i)
    for part in range(1, nparts):
        if part * block < h:
            _union_rows(starts, ends, counts, offsets, parent, sizes, part * block)
    for i in prange(h):
        for r in range(offsets[i], offsets[i] + counts[i]):
            x = r
            while parent[x] != x:
                x = parent[x]
            root_of[r] = x


@njit(parallel=True, **_JIT)
def _paint_stop(starts, ends, counts, offsets, root_of, sizes, group_size, background,
                stop):
    h, w = stop.shape
    for i in prange(h):
        out = stop[i]
        bg = background[i]
        for j in range(w):
            out[j] = 1
        for r in range(counts[i]):
            if sizes[root_of[offsets[i] + r]] >= group_size:
                for j in range(starts[i, r], ends[i, r]):
                    out[j] = 1 if bg[j] else 0


class StopLabeller:
    """Local stop from the averaged relative residue, with reusable buffers.

    ``F = rbar > theta`` is labelled with 8-connectivity, run by run: the runs of each
    row are found in parallel, runs of consecutive rows that touch are merged with a
    union-find, and a component's size is the sum of its runs' lengths.  Pixels of
    components with at least ``group_size`` pixels get ``stop = 0`` (protected), every
    other pixel 1, and pure-background pixels 1 whatever their component.  This is
    the decision ``scipy.ndimage.label`` plus a size count would give, with the work
    proportional to the number of runs rather than of pixels.
    """

    def __init__(self, shape):
        h, w = shape
        # A row holds at most w // 2 + 1 runs; the extra slot takes the unconditional
        # writes of the branch-free scan.
        width = w // 2 + 2
        self.starts = np.empty((h, width), np.int32)
        self.ends = np.empty((h, width), np.int32)
        self.counts = np.empty(h, np.int64)
        self.offsets = np.empty(h, np.int64)
        self.parent = np.empty(h * width, np.int32)
        self.sizes = np.empty(h * width, np.int32)
        self.root_of = np.empty(h * width, np.int32)
        self.nparts = max(1, min(numba.get_num_threads(), h // 16))

    def __call__(self, rbar, theta, group_size, background, stop):
        _find_runs(rbar, theta, self.starts, self.ends, self.counts)
        _merge_runs(self.starts, self.ends, self.counts, self.offsets, self.parent,
                    self.sizes, self.root_of, self.nparts)
        _paint_stop(self.starts, self.ends, self.counts, self.offsets, self.root_of,
                    self.sizes, group_size, background, stop)
