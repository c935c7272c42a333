"""Shared fixtures.

Data from ``../shared`` (the authors' goldens and the paper's images) is read in place,
never copied into the project.  When the folder is absent the tests that need it skip
with the reason; when the ``CI`` environment variable is set they fail instead, because
a CI run that silently skipped the goldens would prove nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"


def _require(path: Path) -> Path:
    if path.exists():
        return path
    message = f"{path} is missing: the shared goldens and paper images live beside the project"
    if os.environ.get("CI"):
        pytest.fail(message + " (CI is set, so this is an error, not a skip)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return _require(SHARED_DIR)


@pytest.fixture(scope="session")
def golden(shared_dir):
    """(cases, arrays): the case list from cases.json and the npz of inputs and outputs."""
    golden_dir = _require(shared_dir / "golden")
    cases = json.loads((golden_dir / "cases.json").read_text())
    with np.load(golden_dir / "reference_outputs.npz") as npz:
        arrays = {name: npz[name] for name in npz.files}
    return cases, arrays


@pytest.fixture(scope="session")
def paper_dir(shared_dir) -> Path:
    return _require(shared_dir / "paper")


def pytest_collection_modifyitems(config, items):
    """The slow end-to-end tests first: pytest-xdist hands the first tests out round
    robin, so the longest start at once on every worker and the short ones fill in
    behind them, instead of one worker finishing a 100-s test alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
