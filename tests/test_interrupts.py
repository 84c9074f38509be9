"""A Ctrl-C that Python swallows inside a finalizer still stops the study."""

import subprocess
import sys

SWALLOWED = """
import gc, os, signal, time
from sweeps import interrupts

interrupts.install()


class Finalized:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while a finalizer runs
        time.sleep(0.2)


Finalized()
gc.collect()
print("went on", flush=True)
try:
    interrupts.check()
except KeyboardInterrupt:
    print("raised again", flush=True)
interrupts.check()  # once only
print("done", flush=True)
"""


def test_a_ctrl_c_swallowed_by_a_finalizer_is_raised_again() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SWALLOWED], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    # Python dropped the interrupt (the script went on), without a word about it: the user
    # sees only what an interrupted study prints.
    assert proc.stdout.split() == ["went", "on", "raised", "again", "done"]
    assert proc.stderr == ""


def test_other_exceptions_in_finalizers_are_still_reported() -> None:
    script = SWALLOWED.replace("os.kill(os.getpid(), signal.SIGINT)", "raise ValueError('x')")
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert "Exception ignored" in proc.stderr and "ValueError: x" in proc.stderr
    assert proc.stdout.split() == ["went", "on", "done"]
