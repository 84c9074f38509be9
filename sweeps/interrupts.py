"""Ctrl-C that is never lost.

Python raises KeyboardInterrupt wherever the main thread happens to be. Raised inside a
finalizer or a weakref callback (SQLAlchemy's, while a store is opened), it is printed as
"Exception ignored in ..." and dropped, and the study trains on as if no key was pressed.
The handler installed here also remembers the signal, and the long loops call `check()`,
which raises it again if it was swallowed.
"""

import signal
import threading
from types import FrameType

_pending = False


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    global _pending
    _pending = True
    raise KeyboardInterrupt


def install() -> None:
    """Handle SIGINT here from now on (main thread only, where Python delivers signals)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _on_sigint)


def check() -> None:
    """Raise the KeyboardInterrupt of a Ctrl-C that a finalizer swallowed, once."""
    global _pending
    if _pending:
        _pending = False
        raise KeyboardInterrupt
