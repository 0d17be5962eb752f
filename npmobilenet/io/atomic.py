"""Atomic file writes: a crash, a full disk or a kill never leaves a half-written checkpoint.

The bytes go to a temporary file in the *same directory* as the target (so the final rename
never crosses a file system), are flushed and ``fsync``-ed to the disk, and only then
``os.replace`` swaps the temporary file in.  ``os.replace`` is atomic on POSIX and Windows: a
reader sees either the old file, whole, or the new one, whole.  If anything fails before the
swap, the temporary file is removed and the previous file at ``path`` is untouched.
"""
from __future__ import annotations

import os
import tempfile


def atomic_write(path, write):
    """Write a file atomically.

    Inputs:
    - path: the file to create or replace.
    - write: a callable ``write(f)`` that writes the whole content to the binary file object ``f``.

    Returns:
    - path (as a str).
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot write {path}: directory {directory} does not exist")
    if os.path.isdir(path):
        raise IsADirectoryError(f"cannot write {path}: it is a directory")
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        _set_mode(fd, path)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        # Also on KeyboardInterrupt: never leave the temporary file behind.
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)
    return path


def _set_mode(fd, path):
    """Give the new file the old file's permissions, or the usual ones (mkstemp makes it 0600)."""
    if not hasattr(os, "fchmod"):
        return
    try:
        mode = os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    os.fchmod(fd, mode)


def _fsync_directory(directory):
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
