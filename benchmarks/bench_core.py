"""Time the package's reference-preset diffusion against the plain NumPy baseline.

Both run in the same process, on the same deterministic frame:

(a) ``pipeline.remove_stars(frame, preset="reference", n_iter=N)``
(b) ``diffuse_reference(frame, n_iter=N)`` from ``benchmarks/numpy_reference.py``

Each is called once to warm up (numba compilation, first-call overheads); its output is
kept for the agreement check.  Then each is timed ``--repeat`` times and the best wall
time is reported, with the throughput in Mpx*iter/s (pixels x iterations per second).

The frame is a tiling of the authors' 200x200 golden inputs (real nebulae and stars)
when ``../shared/golden`` is present; otherwise, or with ``--synthetic``, a seeded
synthetic frame (smooth nebula + Moffat stars + noise on a 46 DN background).

    .venv/bin/python benchmarks/bench_core.py --size 512 --n-iter 60 --repeat 3
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
GOLDEN_DIR = REPO_ROOT.parent / "shared" / "golden"


def _load_numpy_reference():
    path = BENCH_DIR / "numpy_reference.py"
    spec = importlib.util.spec_from_file_location("destar_bench_numpy_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- frames
def golden_mosaic(size: int, golden_dir: Path = GOLDEN_DIR) -> np.ndarray:
    """A size x size tiling of the distinct golden inputs, in cases.json order.

    Read in place from ../shared; nothing is copied into the project.
    """
    cases = json.loads((golden_dir / "cases.json").read_text())
    tiles: list[np.ndarray] = []
    with np.load(golden_dir / "reference_outputs.npz") as npz:
        for case in cases:
            if case.get("method", "diffusion") == "perona-malik":
                continue
            tile = np.asarray(npz[f"{case['name']}__input"], dtype=np.float64)
            if tile.shape != (200, 200):
                continue
            if not any(np.array_equal(tile, seen) for seen in tiles):
                tiles.append(tile)
    if not tiles:
        raise RuntimeError(f"no 200x200 diffusion inputs in {golden_dir}")

    n = -(-size // 200)  # tiles per side
    rows = []
    for r in range(n):
        rows.append(np.hstack([tiles[(r * n + c) % len(tiles)] for c in range(n)]))
    return np.ascontiguousarray(np.vstack(rows)[:size, :size])


def synthetic_frame(size: int, seed: int = 20240601) -> np.ndarray:
    """Smooth nebula + Moffat stars + Gaussian noise on a 46 DN background (0..255-like)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    frame = np.full((size, size), 46.0)

    # Nebula: a few broad, elongated Gaussian clouds.
    for _ in range(4):
        cy, cx = rng.uniform(0.2, 0.8, 2) * size
        sy, sx = rng.uniform(0.06, 0.18, 2) * size
        frame += rng.uniform(40.0, 110.0) * np.exp(
            -0.5 * (((y - cy) / sy) ** 2 + ((x - cx) / sx) ** 2)
        )

    # Stars: Moffat profiles, beta = 3, a range of widths and brightnesses.
    n_stars = int(1.5e-3 * size * size)
    beta = 3.0
    for cy, cx, alpha, peak in zip(
        rng.uniform(0, size, n_stars),
        rng.uniform(0, size, n_stars),
        rng.uniform(0.8, 2.5, n_stars),
        rng.lognormal(np.log(60.0), 0.6, n_stars),
    ):
        half = int(6 * alpha) + 2
        i0, i1 = max(int(cy) - half, 0), min(int(cy) + half + 1, size)
        j0, j1 = max(int(cx) - half, 0), min(int(cx) + half + 1, size)
        r2 = (y[i0:i1, j0:j1] - cy) ** 2 + (x[i0:i1, j0:j1] - cx) ** 2
        frame[i0:i1, j0:j1] += peak * (1.0 + r2 / alpha**2) ** (-beta)

    frame += rng.normal(0.0, 3.0, frame.shape)
    return frame


# --------------------------------------------------------------------------- timing
def tune_malloc() -> str:
    """Keep freed full-frame temporaries in the heap instead of unmapping them (glibc).

    By default glibc serves blocks above a (dynamic) threshold with fresh mmap pages and
    returns them on free, so a NumPy expression that allocates full-frame temporaries pays
    page faults and kernel zeroing on every iteration.  Whether that happens depends on
    the allocator's history in the process (measured here: 9 vs 12 Mpx*iter/s for the
    same NumPy code), which makes the baseline noisy.  Turning mmap off and trimming off
    makes both implementations run in a steady state.  Returns a description.
    """
    import ctypes
    import ctypes.util

    if platform.system() != "Linux" or not platform.libc_ver()[0] == "glibc":
        return "not applied (not glibc)"
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_max = -1, -4
        ok_trim = libc.mallopt(m_trim_threshold, ctypes.c_int(2**30))
        ok_mmap = libc.mallopt(m_mmap_max, ctypes.c_int(0))
    except (OSError, AttributeError) as exc:
        return f"not applied ({exc})"
    if ok_trim and ok_mmap:
        return "glibc mallopt: M_MMAP_MAX=0, M_TRIM_THRESHOLD=1 GiB"
    return "mallopt failed"


def _best_time(fn, repeat: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), times


def _machine_info() -> dict:
    info = {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "NUMBA_NUM_THREADS_env": os.environ.get("NUMBA_NUM_THREADS"),
    }
    if hasattr(os, "getloadavg"):  # other work on the machine skews the timings
        info["loadavg_1_5_15"] = list(os.getloadavg())
    try:
        import scipy

        info["scipy"] = scipy.__version__
    except ImportError:  # pragma: no cover
        info["scipy"] = None
    try:
        import numba

        info["numba"] = numba.__version__
        info["numba_num_threads"] = numba.config.NUMBA_NUM_THREADS
        info["numba_get_num_threads"] = numba.get_num_threads()
    except ImportError:
        info["numba"] = None
    try:  # which SIMD paths numpy dispatches to (np.exp float64 has an AVX-512 path)
        from numpy._core._multiarray_umath import __cpu_features__

        found = [name for name, ok in __cpu_features__.items() if ok]
        info["numpy_simd_found"] = [f for f in found if f.startswith(("X86_V", "AVX512_"))]
    except Exception:  # private API, best effort only
        pass
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512, help="frame side in pixels")
    parser.add_argument("--n-iter", type=int, default=60, help="diffusion iterations")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs; best is kept")
    parser.add_argument("--synthetic", action="store_true",
                        help="use the synthetic frame even when the goldens are present")
    parser.add_argument("--no-malloc-tuning", action="store_true",
                        help="leave glibc's allocator at its defaults (noisier; see tune_malloc)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH")
    args = parser.parse_args(argv)
    if args.size < 1 or args.n_iter < 1 or args.repeat < 1:
        parser.error("--size, --n-iter and --repeat must be positive")

    malloc = "defaults" if args.no_malloc_tuning else tune_malloc()

    if not args.synthetic and (GOLDEN_DIR / "reference_outputs.npz").exists():
        frame, frame_kind = golden_mosaic(args.size), "golden-input mosaic"
    else:
        frame, frame_kind = synthetic_frame(args.size), "synthetic"
    n_iter = args.n_iter
    work = frame.size * n_iter / 1e6  # Mpx*iter

    numpy_reference = _load_numpy_reference()
    implementations = {}
    try:
        if str(REPO_ROOT) not in sys.path:
            sys.path.insert(0, str(REPO_ROOT))
        import pipeline

        remove_stars = pipeline.remove_stars
        implementations["pipeline.remove_stars(preset='reference')"] = (
            lambda: remove_stars(frame, preset="reference", n_iter=n_iter)
        )
        pipeline_error = None
    except (ImportError, AttributeError) as exc:
        pipeline_error = f"{type(exc).__name__}: {exc}"
    implementations["numpy_reference.diffuse_reference"] = (
        lambda: numpy_reference.diffuse_reference(frame, n_iter=n_iter)
    )

    results = {}
    outputs = {}
    for name, fn in implementations.items():
        start = time.perf_counter()
        outputs[name] = np.asarray(fn(), dtype=np.float64)  # warm-up, kept for the check
        warmup = time.perf_counter() - start
        best, times = _best_time(fn, args.repeat)
        results[name] = {
            "seconds_best": best,
            "seconds_all": times,
            "seconds_warmup": warmup,
            "mpx_iter_per_s": work / best,
        }

    # ---- report
    info = _machine_info()
    print(f"frame: {frame_kind}, {frame.shape[0]}x{frame.shape[1]} float64, "
          f"range {frame.min():.1f}..{frame.max():.1f}; n_iter={n_iter}; "
          f"best of {args.repeat} (after one warm-up run)")
    baseline = results["numpy_reference.diffuse_reference"]["seconds_best"]
    width = max(len(name) for name in results)
    print(f"{'implementation':<{width}}  {'seconds':>9}  {'Mpx*iter/s':>10}  {'vs NumPy':>8}")
    for name, r in results.items():
        r["speedup_vs_numpy"] = baseline / r["seconds_best"]
        print(f"{name:<{width}}  {r['seconds_best']:9.4f}  {r['mpx_iter_per_s']:10.2f}  "
              f"{r['speedup_vs_numpy']:7.2f}x")

    max_abs_diff = None
    if pipeline_error is None:
        a, b = outputs.values()
        max_abs_diff = float(np.max(np.abs(a - b))) if a.shape == b.shape else float("nan")
        print(f"max |pipeline - numpy| = {max_abs_diff:.3e}"
              + ("" if a.shape == b.shape else f" (shape mismatch {a.shape} vs {b.shape})"))
    else:
        print(f"pipeline.remove_stars unavailable ({pipeline_error}); NumPy baseline only")

    print(f"machine: cpu_count={info['cpu_count']}, {info['platform']}, {info['processor']}")
    print(f"python {info['python']}, numpy {info['numpy']}, scipy {info.get('scipy')}, "
          f"numba {info.get('numba')}; NUMBA_NUM_THREADS env={info['NUMBA_NUM_THREADS_env']}, "
          f"numba threads={info.get('numba_get_num_threads')}")
    print(f"allocator: {malloc}")
    if "loadavg_1_5_15" in info:
        print("load average (1, 5, 15 min) at the end: "
              + ", ".join(f"{v:.2f}" for v in info["loadavg_1_5_15"]))
    if "numpy_simd_found" in info:
        print(f"numpy SIMD dispatch: {', '.join(info['numpy_simd_found']) or 'baseline only'}")

    if args.json:
        report = {
            "benchmark": "bench_core",
            "frame": frame_kind,
            "shape": list(frame.shape),
            "n_iter": n_iter,
            "repeat": args.repeat,
            "results": results,
            "max_abs_diff": max_abs_diff,
            "pipeline_error": pipeline_error,
            "machine": info,
            "allocator": malloc,
        }
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0 if pipeline_error is None else 2


if __name__ == "__main__":
    sys.exit(main())
