"""Ctrl-C that is never lost.

Python raises KeyboardInterrupt wherever the main thread happens to be. Raised inside a
finalizer or a weakref callback (SQLAlchemy's, while a store is opened), it is printed as
"Exception ignored in ..." and dropped, and the study trains on as if no key was pressed.
The handler installed here also remembers the signal, and the long loops call `check()`,
which raises it again if it was swallowed; the swallowed one's "Exception ignored" traceback
is not printed, so the user still sees the one line an interrupted study prints.

A worker process running studies for a parent (`sweeps.lanes`) gets the terminal's Ctrl-C and
its parent's copy of it: there only the first stops the study it runs (`task`), and a Ctrl-C
between studies is ignored, since the parent then shuts the worker down.
"""

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

_pending = False
# None: every Ctrl-C interrupts (a command's own process); in a worker, whether one would now.
_armed: bool | None = None


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    global _pending, _armed
    if _armed is False:
        return
    if _armed:
        _armed = False
    _pending = True
    raise KeyboardInterrupt


def _unraisable(unraisable: Any) -> None:
    """Python's report of an exception a finalizer could not raise, less our interrupt."""
    if _pending and isinstance(unraisable.exc_value, KeyboardInterrupt):
        return
    sys.__unraisablehook__(unraisable)


def install(worker: bool = False) -> None:
    """Handle SIGINT here from now on (main thread only, where Python delivers signals); in a
    `worker`, only within `task`."""
    global _armed
    if threading.current_thread() is threading.main_thread():
        _armed = False if worker else None
        signal.signal(signal.SIGINT, _on_sigint)
        sys.unraisablehook = _unraisable


@contextmanager
def task() -> Iterator[None]:
    """A worker's study: the first Ctrl-C while it runs interrupts it, later ones do not."""
    global _pending, _armed
    _pending, _armed = False, True
    try:
        yield
    finally:
        _armed = False


def check() -> None:
    """Raise the KeyboardInterrupt of a Ctrl-C that a finalizer swallowed, once."""
    global _pending
    if _pending:
        _pending = False
        raise KeyboardInterrupt
