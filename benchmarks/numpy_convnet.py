"""The textbook's SimpleConvNet in plain NumPy, by its own method (im2col / col2im, ch. 7.4),
written for the benchmark: the step a reader of "Deep Learning from Scratch" would otherwise
time. conv 30 5x5 - ReLU - max-pool 2 - Affine 100 - ReLU - Affine 10 - softmax loss, SGD.
"""

import numpy as np


def im2col(x: np.ndarray, fh: int, fw: int, stride: int = 1, pad: int = 0) -> np.ndarray:
    n, c, h, w = x.shape
    oh, ow = (h + 2 * pad - fh) // stride + 1, (w + 2 * pad - fw) // stride + 1
    img = np.pad(x, [(0, 0), (0, 0), (pad, pad), (pad, pad)])
    col = np.zeros((n, c, fh, fw, oh, ow), dtype=x.dtype)
    for y in range(fh):
        for x_ in range(fw):
            col[:, :, y, x_, :, :] = img[
                :, :, y : y + stride * oh : stride, x_ : x_ + stride * ow : stride
            ]
    return col.transpose(0, 4, 5, 1, 2, 3).reshape(n * oh * ow, -1)


def col2im(
    col: np.ndarray, shape: tuple[int, ...], fh: int, fw: int, stride: int = 1, pad: int = 0
) -> np.ndarray:
    n, c, h, w = shape
    oh, ow = (h + 2 * pad - fh) // stride + 1, (w + 2 * pad - fw) // stride + 1
    col = col.reshape(n, oh, ow, c, fh, fw).transpose(0, 3, 4, 5, 1, 2)
    img = np.zeros((n, c, h + 2 * pad + stride - 1, w + 2 * pad + stride - 1), dtype=col.dtype)
    for y in range(fh):
        for x_ in range(fw):
            img[:, :, y : y + stride * oh : stride, x_ : x_ + stride * ow : stride] += col[
                :, :, y, x_, :, :
            ]
    return img[:, :, pad : h + pad, pad : w + pad]


class SimpleConvNet:
    """Parameters W1 (30, 1, 5, 5), b1, W2 (4320, 100), b2, W3 (100, 10), b3, std 0.01."""

    def __init__(self, seed: int = 0, filters: int = 30, size: int = 5, hidden: int = 100) -> None:
        rng = np.random.default_rng(seed)
        pooled = filters * ((28 - size + 1) // 2) ** 2
        self.size = size
        self.params = {
            "W1": 0.01 * rng.standard_normal((filters, 1, size, size), dtype=np.float32),
            "b1": np.zeros(filters, dtype=np.float32),
            "W2": 0.01 * rng.standard_normal((pooled, hidden), dtype=np.float32),
            "b2": np.zeros(hidden, dtype=np.float32),
            "W3": 0.01 * rng.standard_normal((hidden, 10), dtype=np.float32),
            "b3": np.zeros(10, dtype=np.float32),
        }

    def step(self, x: np.ndarray, t: np.ndarray, lr: float) -> float:
        """Forward, backward and an SGD update on one batch; returns the loss."""
        p, fs = self.params, self.size
        n = len(x)
        filters = p["W1"].shape[0]
        # Convolution (im2col) and ReLU.
        col = im2col(x, fs, fs)
        col_w = p["W1"].reshape(filters, -1).T
        oh = x.shape[2] - fs + 1
        conv = (col @ col_w + p["b1"]).reshape(n, oh, oh, -1).transpose(0, 3, 1, 2)
        relu1 = conv > 0
        a1 = conv * relu1
        # 2x2 max pooling (im2col over windows).
        pcol = im2col(a1, 2, 2, stride=2).reshape(-1, 4)
        arg = pcol.argmax(axis=1)
        ph = oh // 2
        pooled = pcol.max(axis=1).reshape(n, ph, ph, filters).transpose(0, 3, 1, 2)
        flat = pooled.reshape(n, -1)
        h2 = flat @ p["W2"] + p["b2"]
        relu2 = h2 > 0
        a2 = h2 * relu2
        scores = a2 @ p["W3"] + p["b3"]
        scores = scores - scores.max(axis=1, keepdims=True)
        prob = np.exp(scores)
        prob /= prob.sum(axis=1, keepdims=True)
        loss = -np.log(prob[np.arange(n), t] + 1e-7).mean()
        # Backward.
        d = prob.copy()
        d[np.arange(n), t] -= 1
        d /= n
        grads = {"W3": a2.T @ d, "b3": d.sum(axis=0)}
        d = (d @ p["W3"].T) * relu2
        grads |= {"W2": flat.T @ d, "b2": d.sum(axis=0)}
        d = (d @ p["W2"].T).reshape(n, filters, ph, ph).transpose(0, 2, 3, 1)
        dmax = np.zeros((d.size, 4), dtype=d.dtype)
        dmax[np.arange(arg.size), arg.flatten()] = d.flatten()
        dcol = dmax.reshape(n * ph * ph, -1)
        d = col2im(dcol, a1.shape, 2, 2, stride=2) * relu1
        d = d.transpose(0, 2, 3, 1).reshape(-1, filters)
        grads |= {"W1": (col.T @ d).T.reshape(p["W1"].shape), "b1": d.sum(axis=0)}
        for key, g in grads.items():
            p[key] -= lr * g
        return float(loss)
