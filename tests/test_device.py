"""The CPU's floating-point mode a study sets (`sweeps.device.flush_denormals`)."""

import subprocess
import sys

import pytest

# Two intra-op threads (`late` starts them first), then a multiply over more elements than
# torch gives one thread, of inputs that are denormal bit patterns: each thread that flushes
# writes zeros, each that does not writes the denormals back.
PROBE = """
import sys, torch
from sweeps.device import flush_denormals, flushes_denormals
torch.set_num_threads(2)
if sys.argv[1] == "late":
    torch.ones(1 << 20).mul(2)
supported = flush_denormals() if sys.argv[1] != "keep" else True
x = torch.full((1 << 20,), 1 << 20, dtype=torch.int32).view(torch.float32)
y = x * 1.0
print(supported, flushes_denormals(), int((y == 0).sum()), y.numel())
"""


def probe(mode: str) -> tuple[str, str, int, int]:
    supported, flag, zeros, total = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True
    ).stdout.split()
    return supported, flag, int(zeros), int(total)


def test_flushing_before_the_first_operation_reaches_every_intra_op_thread() -> None:
    supported, flag, zeros, total = probe("flush")
    if supported != "True":
        pytest.skip("this CPU cannot flush denormals (torch.set_flush_denormal)")
    assert flag == "True"
    assert zeros == total, "a thread started after the flush kept denormals"
    _, flag, zeros, _ = probe("keep")
    assert (flag, zeros) == ("False", 0), "the probe must produce denormals unflushed"
    # Why the flush comes before any tensor operation: threads already started keep theirs.
    _, flag, zeros, total = probe("late")
    assert flag == "True"
    assert 0 < zeros < total
