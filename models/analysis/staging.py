"""Write a run's outputs beside the output folder, and swap them in only when it succeeds.

A run writes into a working folder ``<out>.partial`` next to ``<out>`` (or
``<out>/.partial`` when the folder above ``<out>`` is not writable). When the run has
written everything, each of its entries replaces the entry of the same name in
``<out>``, with Ctrl-C held back for those few renames. A run that fails or is
interrupted leaves ``<out>`` exactly as it was, and its partial files in the working
folder; the next run reuses the posteriors found there (their keys are checked as
usual) and clears the rest. A lock file beside the working folder (``<out>.partial.lock``,
holding the process id) keeps two runs from writing into the same folder at once.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from pathlib import Path

from models._interrupts import defer_interrupts

__all__ = [
    "check_output_folder",
    "discard_if_empty",
    "prepare_work_folder",
    "release_work_folder",
    "replace_outputs",
]

_INSIDE = ".partial"
_OLD = ".replaced"


def _probe(folder: Path) -> None:
    """Raise the OSError of creating a file in ``folder`` (EACCES, EROFS, ENOSPC, ...)."""
    fd, name = tempfile.mkstemp(prefix=".write-test-", dir=folder)
    os.close(fd)
    os.unlink(name)


def _writable(folder: Path) -> bool:
    try:
        _probe(folder)
    except OSError:
        return False
    return True


def check_output_folder(target: Path) -> None:
    """Fail early, before any data is loaded, when ``target`` cannot receive outputs.

    Raises
    ------
    NotADirectoryError
        If ``target`` exists and is not a folder.
    OSError
        (``PermissionError`` for EACCES) if ``target``, or the folder that would hold
        it, cannot be written; the message names the folder and the reason.
    """
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(
            errno.ENOTDIR, f"The output folder {str(target)!r} is a file; pass a folder "
            "(new or earlier outputs) to --out")
    folder = target if target.is_dir() else _existing_parent(target)
    try:
        _probe(folder)
    except OSError as err:
        kind = PermissionError if err.errno in (errno.EACCES, errno.EPERM) else OSError
        raise kind(err.errno, f"Cannot write the outputs to {str(target)!r}: "
                   f"{err.strerror or err} in {str(folder)!r}; choose another --out, or make "
                   "it writable") from None


def _existing_parent(path: Path) -> Path:
    for parent in path.absolute().parents:
        if parent.exists():
            return parent
    return Path.cwd()


def _lock_path(work: Path) -> Path:
    return work.with_name(work.name + ".lock")


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but belongs to someone else
        return True
    return True


def prepare_work_folder(target: Path) -> Path:
    """Create (or clean) the working folder of a run into ``target``, lock it, and return it.

    Beside ``target`` as ``<name>.partial`` when its parent folder is writable,
    otherwise inside it as ``.partial``. A working folder left by a failed run keeps
    its ``posterior/`` (fits the next run may reuse); everything else is removed.

    Raises
    ------
    FileExistsError
        If another running process holds the lock of the working folder.
    """
    if not target.name:  # "." or "/"
        target = target.resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    if _writable(target.parent):
        work = target.parent / f"{target.name}.partial"
    else:
        target.mkdir(exist_ok=True)
        work = target / _INSIDE
    lock = _lock_path(work)
    with contextlib.suppress(FileNotFoundError, ValueError):
        pid = int(lock.read_text().strip())
        if _running(pid):
            raise FileExistsError(
                errno.EEXIST, f"Another run (process {pid}) is writing the outputs of "
                f"{str(target)!r}; wait for it to finish, or choose another --out")
    lock.write_text(f"{os.getpid()}\n")
    if work.is_dir():
        for entry in work.iterdir():
            if entry.name != "posterior":
                _remove(entry)
    work.mkdir(exist_ok=True)
    return work


def release_work_folder(work: Path) -> None:
    """Remove the lock of a working folder (when its run has ended, either way)."""
    _remove(_lock_path(work))


def replace_outputs(work: Path, target: Path) -> None:
    """Move every entry of ``work`` into ``target``, replacing entries of the same name.

    The old entries are moved aside first and deleted once all new ones are in
    place; Ctrl-C is held back until then. ``work`` is removed afterwards.
    """
    target.mkdir(parents=True, exist_ok=True)
    old = work / _OLD
    with defer_interrupts():
        old.mkdir(exist_ok=True)
        for entry in sorted(work.iterdir()):
            if entry.name == _OLD:
                continue
            dest = target / entry.name
            if dest.exists() or dest.is_symlink():
                os.replace(dest, old / entry.name)
            os.replace(entry, dest)
        _remove(work)
        release_work_folder(work)


def discard_if_empty(work: Path) -> bool:
    """Remove a working folder that holds no file (a run that failed early); say if it did."""
    with contextlib.suppress(OSError):
        if not any(p.is_file() for p in work.rglob("*")):
            _remove(work)
            if work.name == _INSIDE and not any(work.parent.iterdir()):
                work.parent.rmdir()  # the output folder created for this run only
            return True
    return False


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
