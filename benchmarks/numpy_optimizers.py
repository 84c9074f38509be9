"""The textbook's optimizer comparison in plain NumPy, by its own method, written for the
benchmark: what `ch06/optimizer_compare_mnist.py` of "Deep Learning from Scratch" computes,
timed on the same host in the same run as `+experiment=optimizers`.

As in the textbook: `MultiLayerNet` 784-100x4-10, ReLU, He initial weights (float64, from
`np.random.randn`), softmax with cross-entropy; SGD, Momentum, AdaGrad and Adam (the four it
compares) on the same mini-batch of 128 each iteration, 2000 iterations, and after each
update the loss computed once more (`network.loss`, as the script records it).
"""

import time

import numpy as np

SIZES = [784, 100, 100, 100, 100, 10]


class MultiLayerNet:
    """Affine-ReLU layers then Affine-softmax; gradients by backpropagation (ch. 5)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.params: dict[str, np.ndarray] = {}
        for i, (n_in, n_out) in enumerate(zip(SIZES[:-1], SIZES[1:], strict=True), 1):
            self.params[f"W{i}"] = np.sqrt(2.0 / n_in) * rng.standard_normal((n_in, n_out))
            self.params[f"b{i}"] = np.zeros(n_out)
        self.layers = len(SIZES) - 1

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Logits, and each layer's input (kept for the backward pass)."""
        inputs = []
        for i in range(1, self.layers + 1):
            inputs.append(x)
            x = x @ self.params[f"W{i}"] + self.params[f"b{i}"]
            if i < self.layers:
                x = np.maximum(x, 0)
        return x, inputs

    @staticmethod
    def softmax(z: np.ndarray) -> np.ndarray:
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def loss(self, x: np.ndarray, t: np.ndarray) -> float:
        y = self.softmax(self.forward(x)[0])
        return float(-np.log(y[np.arange(len(t)), t] + 1e-7).mean())

    def gradient(self, x: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
        logits, inputs = self.forward(x)
        dout = self.softmax(logits)
        dout[np.arange(len(t)), t] -= 1
        dout /= len(t)
        grads = {}
        for i in range(self.layers, 0, -1):
            h = inputs[i - 1]
            grads[f"W{i}"] = h.T @ dout
            grads[f"b{i}"] = dout.sum(axis=0)
            if i > 1:
                dout = (dout @ self.params[f"W{i}"].T) * (h > 0)
        return grads


class SGD:
    def __init__(self, lr: float = 0.01) -> None:
        self.lr = lr

    def update(self, params: dict, grads: dict) -> None:
        for key in params:
            params[key] -= self.lr * grads[key]


class Momentum:
    def __init__(self, lr: float = 0.01, momentum: float = 0.9) -> None:
        self.lr, self.momentum, self.v = lr, momentum, None

    def update(self, params: dict, grads: dict) -> None:
        if self.v is None:
            self.v = {key: np.zeros_like(val) for key, val in params.items()}
        for key in params:
            self.v[key] = self.momentum * self.v[key] - self.lr * grads[key]
            params[key] += self.v[key]


class AdaGrad:
    def __init__(self, lr: float = 0.01) -> None:
        self.lr, self.h = lr, None

    def update(self, params: dict, grads: dict) -> None:
        if self.h is None:
            self.h = {key: np.zeros_like(val) for key, val in params.items()}
        for key in params:
            self.h[key] += grads[key] * grads[key]
            params[key] -= self.lr * grads[key] / (np.sqrt(self.h[key]) + 1e-7)


class Adam:
    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999) -> None:
        self.lr, self.beta1, self.beta2, self.iter, self.m, self.v = lr, beta1, beta2, 0, None, None

    def update(self, params: dict, grads: dict) -> None:
        if self.m is None:
            self.m = {key: np.zeros_like(val) for key, val in params.items()}
            self.v = {key: np.zeros_like(val) for key, val in params.items()}
        self.iter += 1
        lr_t = self.lr * np.sqrt(1.0 - self.beta2**self.iter) / (1.0 - self.beta1**self.iter)
        for key in params:
            self.m[key] += (1 - self.beta1) * (grads[key] - self.m[key])
            self.v[key] += (1 - self.beta2) * (grads[key] ** 2 - self.v[key])
            params[key] -= lr_t * self.m[key] / (np.sqrt(self.v[key]) + 1e-7)


def optimizer_study(
    x: np.ndarray, t: np.ndarray, iterations: int = 2000, batch: int = 128, seed: int = 0
) -> tuple[float, dict[str, list[float]]]:
    """Seconds of the textbook's loop over `iterations`, and each optimizer's losses."""
    rng = np.random.default_rng(seed)
    optimizers = {"SGD": SGD(), "Momentum": Momentum(), "AdaGrad": AdaGrad(), "Adam": Adam()}
    networks = {key: MultiLayerNet(rng) for key in optimizers}
    losses: dict[str, list[float]] = {key: [] for key in optimizers}
    start = time.perf_counter()
    for _ in range(iterations):
        mask = rng.choice(len(x), batch)
        x_batch, t_batch = x[mask], t[mask]
        for key, optimizer in optimizers.items():
            optimizer.update(networks[key].params, networks[key].gradient(x_batch, t_batch))
            losses[key].append(networks[key].loss(x_batch, t_batch))
    return time.perf_counter() - start, losses
