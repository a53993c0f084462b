"""Seeing Ctrl-C that a library swallowed, and holding it back during a critical step.

PyMC's samplers, its ADVI loop, ``find_MAP`` and nutpie all catch
:class:`KeyboardInterrupt` and return what they had so far. :func:`watch_interrupts`
records that a SIGINT arrived while such a call ran, so the caller can raise instead of
using a cut-short result. :func:`defer_interrupts` delays a SIGINT until a short step
that must not be cut in half (replacing one set of files by another) is done.

Both only change the handler in the main thread of the main interpreter (the only
place Python delivers signals); elsewhere they do nothing.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any

__all__ = ["InterruptWatch", "defer_interrupts", "watch_interrupts"]


@dataclass
class InterruptWatch:
    """Whether a SIGINT arrived inside :func:`watch_interrupts` (``hit``)."""

    hit: bool = False


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _forward(previous: Any, signum: int, frame: FrameType | None) -> None:
    """Run the handler that was installed before ours (Python's raises KeyboardInterrupt)."""
    if callable(previous):
        previous(signum, frame)
    elif previous != signal.SIG_IGN:
        raise KeyboardInterrupt


@contextlib.contextmanager
def watch_interrupts() -> Iterator[InterruptWatch]:
    """Record whether SIGINT arrives in the block; the signal still does what it did.

    Yields
    ------
    InterruptWatch
        Its ``hit`` is True once a SIGINT has arrived (and was not ignored).

    Examples
    --------
    >>> with watch_interrupts() as watch:
    ...     pass
    >>> watch.hit
    False
    """
    watch = InterruptWatch()
    if not _in_main_thread():
        yield watch
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: FrameType | None) -> None:
        if previous != signal.SIG_IGN:
            watch.hit = True
        _forward(previous, signum, frame)

    signal.signal(signal.SIGINT, handler)
    try:
        yield watch
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def defer_interrupts() -> Iterator[None]:
    """Hold back SIGINT until the block ends, then raise :class:`KeyboardInterrupt`.

    For steps of a few renames that must happen together or not at all.

    Examples
    --------
    >>> with defer_interrupts():
    ...     pass
    """
    if not _in_main_thread():
        yield
        return
    received: list[tuple[int, FrameType | None]] = []
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, lambda signum, frame: received.append((signum, frame)))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        _forward(previous, *received[0])
