"""Exceptions raised by the image I/O layer.

Every read failure is an :class:`ImageReadError` (a :class:`ValueError`), so a command
line front end can catch that one class and print its one-line message.  Two subclasses
also carry the conventional built-in type: a missing file is a
:class:`FileNotFoundError` as well, and data that is not numeric is a :class:`TypeError`
as well.  Messages always start with the path of the file concerned.
"""

from __future__ import annotations

__all__ = ["ImageReadError", "ImageNotFoundError", "ImageTypeError", "ImageWriteError"]


class ImageReadError(ValueError):
    """An image file could not be read (corrupt, unsupported, no image data, ...)."""


class ImageNotFoundError(ImageReadError, FileNotFoundError):
    """The input file does not exist (both an ImageReadError and a FileNotFoundError)."""


class ImageTypeError(ImageReadError, TypeError):
    """The file holds data that is not a real-valued numeric image (strings, objects, complex)."""


class ImageWriteError(ValueError):
    """An image could not be written in the requested format (shape, header card, ...)."""
