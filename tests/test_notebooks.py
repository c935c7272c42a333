"""Every notebook in ``notebooks/`` runs top to bottom without a cell error.

The notebooks are found by globbing, so a new ``notebooks/NN-*.ipynb`` is tested without
touching this file.  Each is executed with nbclient in a ``python3`` kernel that must be
*this* interpreter (the project's venv): the kernelspec that Jupyter resolves is checked,
and if it points at another Python (a user-wide ``python3`` spec, say) a kernelspec for
``sys.executable`` is written to a temporary folder and used instead, so nothing is ever
installed into the user's Jupyter folders.  A first cell injected into the in-memory copy
asserts, inside the kernel, that ``sys.prefix`` is the test's own.

The executed copies are written to pytest's temporary folder for inspection; the
notebooks themselves are committed without outputs, which is checked too.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
PAPER_DIR = NOTEBOOK_DIR.parents[1] / "shared" / "paper"
KERNEL_NAME = "python3"
#: Printed by a notebook that could not find the paper's images.
MISSING_PAPER_MARKER = "paper images not found"


def _launch_python(argv: list[str]) -> str:
    """The interpreter a kernelspec's ``argv`` starts.

    jupyter_client replaces a bare ``python``/``python3``/``python3.X`` by the launching
    process's ``sys.executable`` (``KernelManager.format_kernel_cmd``).
    """
    exe = argv[0]
    if exe in {"python", f"python{sys.version_info[0]}", "python%i.%i" % sys.version_info[:2]}:
        return sys.executable
    return exe


def _is_this_python(exe: str) -> bool:
    # Compare the folders, not resolved symlinks: a venv's python is a symlink to the
    # base interpreter, so resolving would make every venv look like the system Python.
    return Path(os.path.abspath(exe)).parent == Path(os.path.abspath(sys.executable)).parent


@pytest.fixture(scope="session")
def kernel_spec_manager(tmp_path_factory) -> KernelSpecManager:
    """A KernelSpecManager whose ``python3`` kernel runs ``sys.executable``."""
    ksm = KernelSpecManager()
    try:
        spec = ksm.get_kernel_spec(KERNEL_NAME)
    except NoSuchKernel:
        spec = None
    if spec is not None and _is_this_python(_launch_python(spec.argv)):
        return ksm
    from ipykernel.kernelspec import write_kernel_spec

    kernel_dirs = tmp_path_factory.mktemp("kernels")
    write_kernel_spec(kernel_dirs / KERNEL_NAME)  # argv[0] = sys.executable
    ksm = KernelSpecManager(kernel_dirs=[str(kernel_dirs)])
    spec = ksm.get_kernel_spec(KERNEL_NAME)
    assert _is_this_python(_launch_python(spec.argv)), spec.argv
    return ksm


def _prefix_check_cell() -> nbformat.NotebookNode:
    source = (
        "import sys\n"
        f"assert sys.prefix == {sys.prefix!r}, "
        f"f'kernel runs {{sys.executable}}, expected the test interpreter {sys.executable}'"
    )
    return nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-by-test"]})


def _outputs_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.append(str(out.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


def test_notebooks_are_found():
    assert NOTEBOOKS, f"no notebook in {NOTEBOOK_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
             and (cell.get("outputs") or cell.get("execution_count") is not None)]
    assert not dirty, (f"{path.name}: code cells {dirty} have outputs; clear them "
                       "(CI executes the notebooks)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, kernel_spec_manager, tmp_path):
    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(0, _prefix_check_cell())
    km = AsyncKernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=kernel_spec_manager)
    client = NotebookClient(
        nb,
        km=km,
        timeout=300,
        kernel_name=KERNEL_NAME,
        resources={"metadata": {"path": str(path.parent)}},
    )
    t0 = time.perf_counter()
    try:
        client.execute()  # raises CellExecutionError on the first failing cell
    finally:
        nbformat.write(nb, tmp_path / path.name)
    print(f"{path.name}: executed in {time.perf_counter() - t0:.1f} s "
          f"(copy with outputs: {tmp_path / path.name})")

    if PAPER_DIR.is_dir():
        assert MISSING_PAPER_MARKER not in _outputs_text(nb).lower(), (
            f"{path.name} reports missing paper images, but {PAPER_DIR} exists")
