"""Counter-based random numbers: uniform draws that are a pure function of (key, counter, index).

A population member's random stream (dropout masks, its own mini-batches) must not depend on
which other members share its population, or a population would not equal its members run
alone. Hashing (member seed, step, stream, element index) gives each member its own stream in
one vectorized operation, on any device, with no generator state to carry.
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


def mix32(x: Tensor) -> Tensor:
    """A 32-bit integer finalizer (int64 tensors holding values below 2^32); products stay
    below 2^59, so int64 arithmetic never overflows."""
    x = (((x >> 16) ^ x) * 0x45D9F3B) & MASK32
    x = (((x >> 16) ^ x) * 0x45D9F3B) & MASK32
    return (x >> 16) ^ x


def member_keys(seeds: Tensor) -> Tensor:
    """(K,) int64 keys derived from member seeds."""
    return mix32((seeds.to(torch.int64) & MASK32) ^ KEY_SALT)


def uniform(keys: Tensor, counter: Tensor, stream: int, shape: tuple[int, ...]) -> Tensor:
    """(K, *shape) float32 uniforms in [0, 1), one independent stream per key.

    `counter` is a 0-dim int64 tensor on the keys' device (the step), so drawing never
    waits for the host.
    """
    salt = mix32((counter * GOLDEN + stream * STREAM_MUL + COUNTER_SALT) & MASK32)
    key = mix32(keys ^ salt).view(-1, *([1] * len(shape)))
    n = 1
    for d in shape:
        n *= d
    index = torch.arange(n, device=keys.device, dtype=torch.int64).view(shape)
    bits = mix32((mix32((key + index * GOLDEN + INDEX_SALT) & MASK32) + key) & MASK32)
    return (bits >> 8).to(torch.float32) * (1.0 / (1 << 24))
