"""Counter-based random numbers: uniform draws that are a pure function of (key, counter, index).

A population member's random stream (dropout masks, its own mini-batches) must not depend on
which other members share its population, or a population would not equal its members run
alone. Hashing (member seed, step, stream, element index) gives each member its own stream in
one vectorized operation, on any device, with no generator state to carry.

The hash is defined on 32-bit unsigned integers. Keys and counters (a few values) are mixed in
int64, where the products fit; the per-element part, which is most of a dropout step's mask
cost, runs in int32: the same bits in half the memory and about half the time, because an
int32 product wraps to exactly the low 32 bits that the int64 version keeps by masking.
"""

import torch
from torch import Tensor

MASK32 = 0xFFFFFFFF
GOLDEN = 0x9E3779B9
# Distinct odd constants keep seeds, counters, streams and indices from cancelling each other.
KEY_SALT = 0x3C6EF372
STREAM_MUL = 0x85EBCA6B
COUNTER_SALT = 0x27D4EB2F
INDEX_SALT = 0x165667B1
MIX = 0x45D9F3B


def mix32(x: Tensor) -> Tensor:
    """A 32-bit integer finalizer (int64 tensors holding values below 2^32); products stay
    below 2^59, so int64 arithmetic never overflows."""
    x = (((x >> 16) ^ x) * MIX) & MASK32
    x = (((x >> 16) ^ x) * MIX) & MASK32
    return (x >> 16) ^ x


def _mix32_bits(x: Tensor) -> Tensor:
    """`mix32` on int32 tensors holding the same 32 bits: the shift is made logical by masking
    off the sign's copies, and the product wraps to the low 32 bits."""
    x = (((x >> 16) & 0xFFFF) ^ x) * MIX
    x = (((x >> 16) & 0xFFFF) ^ x) * MIX
    return ((x >> 16) & 0xFFFF) ^ x


def _signed(value: int) -> int:
    """A 32-bit constant as the int32 value with the same bits."""
    return value - (1 << 32) if value > 0x7FFFFFFF else value


def member_keys(seeds: Tensor) -> Tensor:
    """(K,) int64 keys derived from member seeds."""
    return mix32((seeds.to(torch.int64) & MASK32) ^ KEY_SALT)


def uniform(keys: Tensor, counter: Tensor, stream: int, shape: tuple[int, ...]) -> Tensor:
    """(K, *shape) float32 uniforms in [0, 1), one independent stream per key.

    `counter` is a 0-dim int64 tensor on the keys' device (the step), so drawing never
    waits for the host.
    """
    salt = mix32((counter * GOLDEN + stream * STREAM_MUL + COUNTER_SALT) & MASK32)
    # Converting to int32 keeps the low 32 bits (the test checks it against the definition).
    key = mix32(keys ^ salt).to(torch.int32).view(-1, *([1] * len(shape)))
    n = 1
    for d in shape:
        n *= d
    index = torch.arange(n, device=keys.device, dtype=torch.int32).view(shape)
    offset = index * _signed(GOLDEN) + INDEX_SALT
    bits = _mix32_bits(_mix32_bits(key + offset) + key)
    return ((bits >> 8) & 0xFFFFFF).to(torch.float32) * (1.0 / (1 << 24))
