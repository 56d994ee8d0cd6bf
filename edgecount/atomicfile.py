"""Write a file so that its readers see the old or the new content, never a part of it."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["write_atomic"]


def write_atomic(path: Path, text: str, *, mode: int = 0o644) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file in the same folder.

    The temporary file is made with ``mode`` before anything is written to it (``mkstemp``
    makes it 0600; a secret never lies in a file wider than ``mode``), flushed to disk, then
    renamed over ``path``; the folder is synced so the rename survives a power cut. On any
    failure the temporary file is removed and ``path`` is left as it was.

    Raises:
        OSError: The folder cannot be written, the disk is full, ...
    """
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    temporary = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            os.fchmod(stream.fileno(), mode)
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        temporary.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
