"""Opening a file podtap writes (recordings, the app's ``w``): it holds captured traffic, raw
credentials included, so it is created readable by its owner alone (0600), never written
through a symbolic link (someone else's link in /tmp could point at any file root may write),
and never over an existing file unless the user said so."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from agent.errors import UserError

MODE = 0o600


class FileExists(UserError):
    """The file is already there and replacing it was not asked for."""


def open_private(path: Path, *, replace: bool = False, hint: str = "") -> BinaryIO:
    """``path`` opened for reading and writing, empty, mode 0600; a new file unless
    ``replace``. ``hint`` ends the sentence said when the file exists (what to do instead).
    Raises UserError with one sentence when it cannot be."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    if not replace:
        flags |= os.O_EXCL
    _refuse_special(path)
    try:
        descriptor = os.open(path, flags, MODE)
    except FileExistsError:
        _refuse_special(path)
        raise FileExists(f"{path} already exists{hint or ''}.") from None
    except OSError as error:
        _refuse_special(path)
        if isinstance(error, FileNotFoundError) and not path.parent.is_dir():
            raise UserError(
                f"cannot write {path}: the directory {path.parent} does not exist."
            ) from None
        raise UserError(f"cannot write {path}: {error.strerror}.") from None
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise UserError(f"cannot write {path}: it is not a regular file.")
        # An existing file keeps its old mode otherwise: narrow it before writing into it.
        os.fchmod(descriptor, MODE)
        os.ftruncate(descriptor, 0)
        return os.fdopen(descriptor, "w+b")
    except BaseException:
        os.close(descriptor)
        raise


def _refuse_special(path: Path) -> None:
    """A symbolic link, a directory or a device/FIFO at ``path`` is never opened (a FIFO would
    block)."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return
    if stat.S_ISLNK(mode):
        raise UserError(
            f"{path} is a symbolic link: podtap does not write through one; give the real path."
        )
    if stat.S_ISDIR(mode):
        # Said before "already exists: add --force", which could not help.
        raise UserError(f"cannot write {path}: it is a directory; give a file name.")
    if not stat.S_ISREG(mode):
        raise UserError(f"cannot write {path}: it is not a regular file.")
