"""Weight-init schemes of the textbook (ch. 6.2): the std of a layer's Gaussian weights."""

import math

INIT_SCHEMES = ("std", "xavier", "he")


def init_std(scheme: str, fan_in: int, scale: float) -> float:
    """Std of N(0, std^2) weights for a layer with `fan_in` inputs.

    `std` uses `scale` itself (the textbook's `weight_init_std=0.01`); Xavier is 1/sqrt(n) and He
    sqrt(2/n), where n is the number of inputs of the layer, as the textbook defines them.
    """
    if scheme == "std":
        return scale
    if scheme == "xavier":
        return math.sqrt(1.0 / fan_in)
    if scheme == "he":
        return math.sqrt(2.0 / fan_in)
    raise ValueError(f"unknown init scheme {scheme!r}; valid: {', '.join(INIT_SCHEMES)}")
