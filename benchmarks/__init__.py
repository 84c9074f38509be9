"""Benchmarks: measurements to run by hand, not tests."""

import sys


def progress(message: str) -> None:
    """Say on stderr what is being measured, so a long run visibly makes progress."""
    print(f"[benchmark] {message}", file=sys.stderr, flush=True)
