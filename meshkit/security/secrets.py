"""Secrets on disk: private keys, tokens, credentials, written 0600 from the start.

One way to write them, :func:`write_secret`, so that no secret is ever readable by another
user, not even for a moment:

- the bytes go to a temporary file in the same directory, created by ``mkstemp`` (``O_CREAT
  | O_EXCL``, mode 0600 whatever the umask) and ``fchmod``-ed to 0600 before anything is
  written, then fsync-ed and renamed over the target with ``os.replace`` (atomic on POSIX:
  a reader sees the old file or the new one, never a half-written one);
- re-issuing replaces the file with a new inode of mode 0600, so an existing file with
  looser bits (an old 0644 ``key.pem``) is tightened; a symlink at the path is replaced,
  not followed;
- directories it has to create are created 0700 (``chmod`` after ``mkdir``, since the
  umask applies to ``mkdir``'s mode). Directories that already exist are left as they
  are: the file's own mode is what protects it.

Writing with ``Path.write_bytes`` after ``Path.touch(mode=0o600)`` is not enough: ``touch``
does not change the mode of a file that exists, and ``write_text`` then ``chmod`` leaves a
window where the content is readable with the umask's bits.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

SECRET_FILE_MODE = 0o600
SECRET_DIR_MODE = 0o700


def _make_dirs(directory: Path) -> None:
    """Create ``directory`` and its missing parents, each 0700; existing ones are kept."""
    missing: list[Path] = []
    d = directory
    while not d.exists():
        missing.append(d)
        if d.parent == d:
            break
        d = d.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, SECRET_DIR_MODE)
        except FileExistsError:  # made by someone else meanwhile
            continue
        os.chmod(d, SECRET_DIR_MODE)  # mkdir's mode is masked by the umask


def write_secret(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """Write ``data`` to ``path`` atomically as a 0600 file; returns the path.

    A ``str`` is written as UTF-8. Parent directories that do not exist are created 0700.
    """
    target = Path(path)
    content = data.encode() if isinstance(data, str) else bytes(data)
    _make_dirs(target.parent)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, SECRET_FILE_MODE)  # mkstemp's 0600 already; the umask could only lower it
        with os.fdopen(fd, "wb") as f:
            fd = -1
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        if fd != -1:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)
    return target


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable (best effort: not every file system allows it)."""
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
