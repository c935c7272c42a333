"""Atomic file output: write to a temporary file beside the target, then rename.

A crash or an exception while writing leaves at most a hidden ``.<name>.<token>.tmp<ext>``
file (removed on any Python-level error), never a half-written file under the final name.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "temp_path_for"]


def temp_path_for(path: Path, extension: str) -> Path:
    """A fresh hidden temporary name in ``path``'s directory that keeps ``extension``.

    Keeping the extension matters: astropy gzips when the name ends in ``.gz`` and imageio
    picks the encoder from it.
    """
    return path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp{extension}"


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], writer: Callable[[Path], None], *,
                 extension: str = "", overwrite: bool = False) -> Path:
    """Run ``writer(temp_path)`` and move the result to ``path`` atomically.

    With ``overwrite=False`` an existing ``path`` raises :class:`FileExistsError` before
    anything is written, and the final step uses a hard link, which cannot replace a file
    that appeared meanwhile (falling back to a checked rename where links are unsupported).
    """
    path = Path(path)
    parent = path.parent
    if not parent.is_dir():
        raise FileNotFoundError(f"{path}: output directory {parent} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a directory")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: output file exists (pass overwrite=True to replace it)")

    tmp = temp_path_for(path, extension)
    # O_EXCL reserves the name; mode 0o666 lets the umask decide the permissions, as for
    # any ordinary new file (mkstemp would give 0o600).
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        writer(tmp)
        _fsync_file(tmp)
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise FileExistsError(
                    f"{path}: output file exists (pass overwrite=True to replace it)") from None
            except OSError:  # filesystem without hard links
                if path.exists():
                    raise FileExistsError(
                        f"{path}: output file exists (pass overwrite=True to replace it)"
                    ) from None
                os.replace(tmp, path)
            else:
                os.unlink(tmp)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(parent)
    return path
