"""Max difference of the ``reference`` preset against every golden case.

    python benchmarks/check_goldens.py [--golden ../shared/golden]

Prints, per case of the authors' outputs, the max absolute difference and the time.
The test suite asserts the same bound (1e-9); this script shows the actual figures.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from pipeline import remove_stars


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--golden", default=str(Path(__file__).resolve().parents[2]
                                                / "shared" / "golden"))
    args = parser.parse_args(argv)
    golden = Path(args.golden)
    cases = json.loads((golden / "cases.json").read_text())
    with np.load(golden / "reference_outputs.npz") as npz:
        arrays = {name: npz[name] for name in npz.files}
    remove_stars(np.zeros((8, 8)), preset="reference", n_iter=1)  # compile first
    worst = 0.0
    for case in cases:
        if "method" in case:
            continue
        image = arrays[case["name"] + "__input"]
        start = time.perf_counter()
        result = remove_stars(image, preset="reference", n_iter=case["n_iter"],
                              bavg=case["bavg"], gamma=case["gamma"])
        seconds = time.perf_counter() - start
        diff = float(np.max(np.abs(result - arrays[case["name"] + "__output"])))
        worst = max(worst, diff)
        print(f"{case['name']:<22} n={case['n_iter']:<4} max |diff| = {diff:.3g}  "
              f"({seconds:.3f} s)")
    print(f"worst: {worst:.3g} (bound 1e-9)")
    return 0 if worst <= 1e-9 else 1


if __name__ == "__main__":
    raise SystemExit(main())
