"""Streaming SHA-256 of a file, used to record which exact bytes an output came from."""

from __future__ import annotations

import hashlib
import os

__all__ = ["sha256_file"]

_CHUNK = 1 << 20  # 1 MiB: survey frames are hashed without reading them whole


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 digest of the bytes of ``path``, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
