"""Ctrl-C that is never lost.

Python raises KeyboardInterrupt wherever the main thread happens to be. Raised inside a
finalizer or a weakref callback (SQLAlchemy's, while a store is opened), it is printed as
"Exception ignored in ..." and dropped, and the study trains on as if no key was pressed.
The handler installed here also remembers the signal, and the long loops call `check()`,
which raises it again if it was swallowed; the swallowed one's "Exception ignored" traceback
is not printed, so the user still sees the one line an interrupted study prints.
"""

import signal
import sys
import threading
from types import FrameType
from typing import Any

_pending = False


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    global _pending
    _pending = True
    raise KeyboardInterrupt


def _unraisable(unraisable: Any) -> None:
    """Python's report of an exception a finalizer could not raise, less our interrupt."""
    if _pending and isinstance(unraisable.exc_value, KeyboardInterrupt):
        return
    sys.__unraisablehook__(unraisable)


def install() -> None:
    """Handle SIGINT here from now on (main thread only, where Python delivers signals)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _on_sigint)
        sys.unraisablehook = _unraisable


def check() -> None:
    """Raise the KeyboardInterrupt of a Ctrl-C that a finalizer swallowed, once."""
    global _pending
    if _pending:
        _pending = False
        raise KeyboardInterrupt
