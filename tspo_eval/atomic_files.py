"""The one way tspo-eval writes a whole file: atomically, durably, with the usual permissions.

Every file the package writes whole (feature-cache entries, merged index files, TSVs, tables,
charts, checkpoints) goes through :func:`atomic_write` or :func:`atomic_output`:

1. a temporary file is created in the target's own folder (so ``os.replace`` is a rename on one
   file system, never a copy);
2. the content is written, flushed and ``fsync``-ed;
3. the temporary file gets the mode a plain ``open(path, "w")`` would give it
   (``0o666 & ~umask``; ``mkstemp`` alone would leave ``0600`` and lock a team's shared cache
   folder away from its other members);
4. ``os.replace`` moves it into place: readers see the old file or the new one, never a torn one;
5. on any error the temporary file is removed and the old file is left as it was.

Append-only files (index JSONL) do not use this module: ``IndexWriter`` appends one line per
``write`` with ``O_APPEND`` and ``fsync``.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from pathlib import Path
from typing import IO, Iterator

TEMP_SUFFIX = ".tmp"
_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux ``/proc``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:  # os.umask can only be read by setting it; keep the window closed to other threads
        umask = os.umask(0o022)
        os.umask(umask)
    return umask


def default_file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file: ``0o666`` less the umask."""
    return 0o666 & ~current_umask()


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], mode: int | None = None) -> Iterator[IO[bytes]]:
    """Yield a binary file handle whose content replaces ``path`` atomically when the block ends.

    Args:
        path: the target file; its folder is created when missing.
        mode: permission bits for the new file; ``None`` -> :func:`default_file_mode`.

    If the block raises, the target is left untouched and the temporary file is removed.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent)
    try:
        os.fchmod(fd, default_file_mode() if mode is None else mode)
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise


def atomic_write(path: str | os.PathLike[str], data: bytes | str, mode: int | None = None) -> None:
    """Write ``data`` (``str`` is encoded as UTF-8) to ``path`` atomically; see :func:`atomic_output`."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_output(path, mode=mode) as handle:
        handle.write(payload)
