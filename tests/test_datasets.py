"""Tests for mixkit.harness.data (datasets, idx): IDX parsing, the named loaders on tiny fake files, and subsetting."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
import warnings

import numpy as np
import pytest
import torch

from mixkit.harness.data import datasets as ds
from mixkit.harness.data import mnist1d as mnist1d_source
from mixkit.harness.data.datasets import DATASETS, DataBundle, DatasetError, load_dataset, load_fashion_mnist
from mixkit.harness.data.idx import read_idx

# --------------------------------------------------------------------------------------------------------
# helpers


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    """Serialise ``array`` as an IDX file (header + big-endian payload)."""
    dtype = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=dtype).tobytes()


def write_idx(path, array: np.ndarray, code: int = 0x08) -> None:
    data = idx_bytes(array, code)
    path.write_bytes(gzip.compress(data) if str(path).endswith(".gz") else data)


def make_fashion_dir(root, n_train=30, n_test=20, seed=0):
    """Four tiny Fashion-MNIST IDX files (train gzipped, test raw), balanced labels; returns the arrays."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": ((np.arange(n_test) * 3) % 10).astype(np.uint8),
    }
    root.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        write_idx(root / name, array)
    return arrays


# --------------------------------------------------------------------------------------------------------
# read_idx


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_round_trips_uint8(tmp_path, suffix):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / f"x-idx3-ubyte{suffix}"
    write_idx(path, array)
    out = read_idx(path)
    assert out.dtype == torch.uint8 and out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out.numpy(), array)
    out[0, 0, 0] = 7  # returned tensors own writable memory
    assert out[0, 0, 0] == 7


@pytest.mark.parametrize("code,dtype,torch_dtype", [(0x0C, np.int32, torch.int32), (0x0D, np.float32, torch.float32),
                                                    (0x0B, np.int16, torch.int16), (0x0E, np.float64, torch.float64),
                                                    (0x09, np.int8, torch.int8)])
def test_read_idx_multibyte_types_are_native_endian(tmp_path, code, dtype, torch_dtype):
    array = (np.arange(6).reshape(3, 2) * [[1, -1]] * (10 if code == 0x09 else 1000)).astype(dtype)
    path = tmp_path / "m.idx"
    write_idx(path, array, code)
    out = read_idx(path)
    assert out.dtype == torch_dtype
    np.testing.assert_array_equal(out.numpy(), array)


def test_read_idx_detects_gzip_by_content(tmp_path):
    array = np.arange(5, dtype=np.uint8)
    path = tmp_path / "labels-no-suffix"
    path.write_bytes(gzip.compress(idx_bytes(array)))
    np.testing.assert_array_equal(read_idx(path).numpy(), array)


def test_read_idx_truncated_payload(tmp_path):
    path = tmp_path / "t.idx"
    path.write_bytes(idx_bytes(np.zeros((3, 4), np.uint8))[:-4])
    with pytest.raises(DatasetError, match=r"t\.idx is truncated: expected 12 bytes of data, found 8"):
        read_idx(path)


def test_read_idx_truncated_header(tmp_path):
    path = tmp_path / "h.idx"
    path.write_bytes(bytes([0, 0, 8, 3]) + b"\x00\x00\x00\x02")
    with pytest.raises(DatasetError, match=r"is truncated: expected a 16-byte header for 3 dimensions, found 8"):
        read_idx(path)


def test_read_idx_trailing_bytes(tmp_path):
    path = tmp_path / "long.idx"
    path.write_bytes(idx_bytes(np.zeros(4, np.uint8)) + b"xx")
    with pytest.raises(DatasetError, match=r"has 2 trailing bytes: expected 4 bytes of data, found 6"):
        read_idx(path)


def test_read_idx_bad_magic(tmp_path):
    path = tmp_path / "bad.idx"
    path.write_bytes(b"\x01\x02\x08\x01" + b"\x00\x00\x00\x01" + b"\x05")
    with pytest.raises(DatasetError, match=r"bad\.idx has a bad IDX magic number.*found 0x01020801"):
        read_idx(path)
    path.write_bytes(b"\x00\x00\x42\x01" + b"\x00\x00\x00\x01" + b"\x05")  # unknown type code
    with pytest.raises(DatasetError, match="bad IDX magic number"):
        read_idx(path)


def test_read_idx_corrupt_gzip(tmp_path):
    data = gzip.compress(idx_bytes(np.arange(100, dtype=np.uint8)))
    truncated = tmp_path / "cut.gz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=r"cut\.gz is not a valid gzip file"):
        read_idx(truncated)
    garbage = tmp_path / "garbage.gz"
    garbage.write_bytes(b"this is not gzip at all")
    with pytest.raises(DatasetError, match=r"garbage\.gz is not a valid gzip file"):
        read_idx(garbage)
    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 0xFF  # corrupt deflate data or CRC
    bad = tmp_path / "flipped.gz"
    bad.write_bytes(bytes(flipped))
    with pytest.raises(DatasetError, match="not a valid gzip file"):
        read_idx(bad)


# --------------------------------------------------------------------------------------------------------
# fashion-mnist


def test_fashion_mnist_from_tiny_files(tmp_path):
    arrays = make_fashion_dir(tmp_path)
    b = load_dataset("fashion-mnist", data_dir=tmp_path)
    assert isinstance(b, DataBundle)
    assert b.name == "fashion-mnist" and b.kind == "image" and b.num_classes == 10
    assert b.classes[0] == "T-shirt/top" and b.classes[9] == "Ankle boot" and len(b.classes) == 10
    assert b.train_x.shape == (30, 1, 28, 28) and b.test_x.shape == (20, 1, 28, 28)
    assert b.input_shape == (1, 28, 28) and b.in_channels == 1
    for t in (b.train_x, b.test_x):
        assert t.dtype == torch.float32 and t.is_contiguous()
    for t in (b.train_y, b.test_y):
        assert t.dtype == torch.int64 and t.is_contiguous()
    np.testing.assert_array_equal(b.train_y.numpy(), arrays["train-labels-idx1-ubyte.gz"])
    np.testing.assert_array_equal(b.test_y.numpy(), arrays["t10k-labels-idx1-ubyte"])
    # normalised with the train split's statistics
    assert abs(b.train_x.mean().item()) < 1e-5
    assert b.train_x.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-4)
    scaled = arrays["train-images-idx3-ubyte.gz"].astype(np.float64) / 255
    assert b.mean[0] == pytest.approx(scaled.mean(), rel=1e-6)
    assert b.std[0] == pytest.approx(scaled.std(), rel=1e-6)
    expected_test = (arrays["t10k-images-idx3-ubyte"] / 255 - b.mean[0]) / b.std[0]
    np.testing.assert_allclose(b.test_x[:, 0].numpy(), expected_test, atol=1e-5)


def test_fashion_mnist_image_count_mismatch(tmp_path):
    make_fashion_dir(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(19, np.uint8))
    with pytest.raises(DatasetError, match=r"count mismatch: .*t10k-images-idx3-ubyte holds 20 images but .*holds 19 labels"):
        load_dataset("fashion-mnist", data_dir=tmp_path)


def test_fashion_mnist_wrong_image_shape_and_label_range(tmp_path):
    make_fashion_dir(tmp_path)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((20, 14, 14), np.uint8))
    with pytest.raises(DatasetError, match=r"expected uint8 data of shape \(N, 28, 28\), found uint8 data of shape \(20, 14, 14\)"):
        load_dataset("fashion-mnist", data_dir=tmp_path)
    make_fashion_dir(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.full(20, 12, np.uint8))
    with pytest.raises(DatasetError, match=r"expected labels in \[0, 10\), found values in \[12, 12\]"):
        load_dataset("fashion-mnist", data_dir=tmp_path)


def test_fashion_mnist_truncated_file_names_file(tmp_path):
    make_fashion_dir(tmp_path)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DatasetError, match=r"t10k-images-idx3-ubyte is truncated: expected 15680 bytes of data, found 15580"):
        load_dataset("fashion-mnist", data_dir=tmp_path)


def test_fashion_mnist_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist") as info:
        load_dataset("fashion-mnist", data_dir=tmp_path / "nowhere")
    assert "train-images-idx3-ubyte" in str(info.value) and "--data-dir" in str(info.value)
    make_fashion_dir(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing train-labels-idx1-ubyte \(raw or \.gz\)"):
        load_dataset("fashion-mnist", data_dir=tmp_path)


def test_load_fashion_mnist_reads_one_split_as_pixels(tmp_path):
    arrays = make_fashion_dir(tmp_path)
    images, labels = load_fashion_mnist("test", 7, tmp_path)
    assert images.shape == (7, 1, 28, 28) and images.dtype == torch.float32 and labels.dtype == torch.int64
    np.testing.assert_allclose(images[:, 0].numpy(), arrays["t10k-images-idx3-ubyte"][:7] / 255.0, atol=1e-7)
    np.testing.assert_array_equal(labels.numpy(), arrays["t10k-labels-idx1-ubyte"][:7])
    assert load_fashion_mnist("train", None, tmp_path)[0].shape == (30, 1, 28, 28)
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()  # only the split's own files are needed
    assert load_fashion_mnist("test", None, tmp_path)[1].shape == (20,)
    with pytest.raises(FileNotFoundError, match=r"missing train-labels-idx1-ubyte \(raw or \.gz\)"):
        load_fashion_mnist("train", None, tmp_path)
    with pytest.raises(ValueError, match="split: expected 'train' or 'test'"):
        load_fashion_mnist("val", None, tmp_path)


def test_fashion_mnist_image_size_resizes(tmp_path):
    make_fashion_dir(tmp_path)
    b = load_dataset("fashion-mnist", data_dir=tmp_path, image_size=32)
    assert b.train_x.shape == (30, 1, 32, 32) and b.test_x.shape == (20, 1, 32, 32)
    assert abs(b.train_x.mean().item()) < 1e-5  # statistics are taken after resizing


# --------------------------------------------------------------------------------------------------------
# digits and subsets


def test_digits_shapes_classes_and_fixed_split():
    a = load_dataset("digits")
    assert a.train_x.shape[1:] == (1, 8, 8) and a.kind == "image" and a.classes == [str(i) for i in range(10)]
    assert len(a.train_y) + len(a.test_y) == 1797
    assert len(a.test_y) == pytest.approx(0.25 * 1797, abs=5)
    counts = torch.bincount(a.test_y, minlength=10)
    assert counts.min() >= 43 and counts.max() <= 47  # about a quarter of every class
    assert abs(a.train_x.mean().item()) < 1e-5
    b = load_dataset("digits", seed=123)  # the seed only affects subsets, never the split
    assert torch.equal(a.train_y, b.train_y) and torch.equal(a.test_x, b.test_x)


def test_subset_is_stratified_deterministic_and_seeded():
    a = load_dataset("digits", train_size=50, test_size=30, seed=1)
    assert a.train_x.shape == (50, 1, 8, 8) and a.test_x.shape == (30, 1, 8, 8)
    assert torch.bincount(a.train_y, minlength=10).tolist() == [5] * 10
    assert torch.bincount(a.test_y, minlength=10).tolist() == [3] * 10
    # statistics come from the subset
    assert abs(a.train_x.mean().item()) < 1e-5
    assert a.train_x.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-4)
    again = load_dataset("digits", train_size=50, test_size=30, seed=1)
    assert torch.equal(a.train_x, again.train_x) and torch.equal(a.test_y, again.test_y)
    other = load_dataset("digits", train_size=50, test_size=30, seed=2)
    assert not torch.equal(a.train_x, other.train_x)
    uneven = load_dataset("digits", train_size=53)
    counts = torch.bincount(uneven.train_y, minlength=10)
    assert counts.sum() == 53 and counts.max() - counts.min() <= 1


def test_subset_too_large():
    with pytest.raises(DatasetError, match=r"train_size=5000 requested, but only 1347 examples exist in the digits train split"):
        load_dataset("digits", train_size=5000)
    with pytest.raises(ValueError, match="positive integer"):
        load_dataset("digits", test_size=0)


def test_stratified_indices_with_small_classes():
    labels = np.array([0] * 2 + [1] * 50 + [2] * 50 + [3] * 7)
    idx = ds.stratified_indices(labels, 40, np.random.default_rng(0))
    assert len(np.unique(idx)) == 40 and np.all(np.diff(idx) > 0)
    counts = np.bincount(labels[idx], minlength=4)
    # class 0 gives all it has (2); the rest is spread as evenly as possible
    assert counts[0] == 2 and counts[3] == 7 and sorted(counts[1:3].tolist()) == [15, 16]


# --------------------------------------------------------------------------------------------------------
# mnist1d


@pytest.fixture(scope="module")
def mnist1d_cache(tmp_path_factory):
    pytest.importorskip("mnist1d")
    cache = tmp_path_factory.mktemp("mnist1d")
    np.random.seed(7)
    before = np.random.get_state()[1].copy()
    bundle = load_dataset("mnist1d", data_dir=cache)
    after = np.random.get_state()[1]
    return cache, bundle, np.array_equal(before, after)


@pytest.mark.slow
def test_mnist1d_shapes_and_determinism(mnist1d_cache):
    cache, b, rng_untouched = mnist1d_cache
    assert b.kind == "signal" and b.input_shape == (1, 40) and b.in_channels == 1
    assert b.train_x.shape == (4000, 1, 40) and b.test_x.shape == (1000, 1, 40)
    assert b.num_classes == 10 and set(b.train_y.unique().tolist()) == set(range(10))
    assert b.train_x.is_contiguous() and b.train_y.dtype == torch.int64
    assert abs(b.train_x.mean().item()) < 1e-5
    # the package's own seed (42) fixes the data everywhere; these are its first labels
    assert b.train_y[:10].tolist() == [2, 6, 4, 5, 6, 6, 6, 0, 3, 1]
    assert rng_untouched, "generation must not disturb numpy's global random state"
    assert [p.name for p in cache.iterdir()] == ["mnist1d-n5000-len40-seed42.npz"]  # no temp files left


@pytest.mark.slow
def test_mnist1d_cache_is_reused(mnist1d_cache, monkeypatch):
    cache, b, _ = mnist1d_cache

    def fail():
        raise AssertionError("should have read the cache")

    monkeypatch.setattr(mnist1d_source, "_generate_mnist1d", fail)
    again = load_dataset("mnist1d", data_dir=cache, train_size=100, seed=3)
    assert again.train_x.shape == (100, 1, 40)
    assert torch.bincount(again.train_y).tolist() == [10] * 10


@pytest.mark.slow
def test_mnist1d_corrupt_cache_is_regenerated(mnist1d_cache, tmp_path, monkeypatch):
    cache, b, _ = mnist1d_cache
    good = cache / "mnist1d-n5000-len40-seed42.npz"
    arrays = dict(np.load(good))
    calls = []

    def fake_generate():
        calls.append(1)
        return arrays

    monkeypatch.setattr(mnist1d_source, "_generate_mnist1d", fake_generate)
    bad = tmp_path / good.name
    bad.write_bytes(good.read_bytes()[:1000])  # truncated zip
    with pytest.warns(UserWarning, match="unreadable.*regenerating"):
        again = load_dataset("mnist1d", data_dir=tmp_path)
    assert calls == [1] and torch.equal(again.train_x, b.train_x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_dataset("mnist1d", data_dir=tmp_path)  # the rewritten cache is valid: no warning, no generation
    assert calls == [1]


def test_mnist1d_rejects_image_size():
    with pytest.raises(ValueError, match="signal"):
        load_dataset("mnist1d", image_size=32)


# --------------------------------------------------------------------------------------------------------
# CIFAR through torchvision, with tiny fake batches in torchvision's on-disk layout


def write_cifar(root, hundred=False, per_batch=6, seed=0):
    rng = np.random.default_rng(seed)
    if hundred:
        folder, batches, meta, label_key, names_key = root / "cifar-100-python", ["train", "test"], "meta", "fine_labels", "fine_label_names"
        names = [f"class{i}" for i in range(100)]
    else:
        folder, meta, label_key, names_key = root / "cifar-10-batches-py", "batches.meta", "labels", "label_names"
        batches = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    folder.mkdir(parents=True)
    content = {}
    for name in batches:
        data = rng.integers(0, 256, (per_batch, 3 * 32 * 32), dtype=np.uint8)
        labels = rng.integers(0, len(names), per_batch).tolist()
        content[name] = (data, labels)
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, label_key: labels}, f)
    with open(folder / meta, "wb") as f:
        pickle.dump({names_key: names}, f)
    return content, names


@pytest.fixture
def skip_md5(monkeypatch):
    # torchvision checks the md5 of every CIFAR file against the real archives; our fake batches cannot match,
    # so the check is replaced by a plain existence test (both _check_integrity and _load_meta call it).
    cifar = pytest.importorskip("torchvision.datasets.cifar")
    monkeypatch.setattr(cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))


def test_fake_cifar10(tmp_path, skip_md5):
    content, names = write_cifar(tmp_path)
    b = load_dataset("cifar10", data_dir=tmp_path)
    assert b.train_x.shape == (30, 3, 32, 32) and b.test_x.shape == (6, 3, 32, 32)
    assert b.classes == names and b.num_classes == 10 and b.in_channels == 3
    assert b.train_x.is_contiguous() and b.test_x.is_contiguous()
    assert b.train_y.tolist() == sum((content[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    # channel-first layout: pixel values line up with torchvision's row layout (R plane, G plane, B plane)
    raw = content["test_batch"][0].reshape(-1, 3, 32, 32) / 255
    restored = b.test_x.numpy() * np.array(b.std)[:, None, None] + np.array(b.mean)[:, None, None]
    np.testing.assert_allclose(restored, raw, atol=1e-5)
    assert len(b.mean) == 3 and torch.allclose(b.train_x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    # the extracted folder itself is accepted as data_dir
    assert load_dataset("cifar10", data_dir=tmp_path / "cifar-10-batches-py").train_x.shape == (30, 3, 32, 32)


def test_fake_cifar100(tmp_path, skip_md5):
    content, names = write_cifar(tmp_path, hundred=True)
    b = load_dataset("cifar100", data_dir=tmp_path)
    assert b.num_classes == 100 and b.classes == names
    assert b.train_y.tolist() == content["train"][1] and b.test_x.shape == (6, 3, 32, 32)


def test_cifar_missing_and_corrupt(tmp_path):
    pytest.importorskip("torchvision")
    with pytest.raises(FileNotFoundError, match=r"cifar-10-batches-py.*never downloads"):
        load_dataset("cifar10", data_dir=tmp_path)
    write_cifar(tmp_path)  # real md5 check: fake files fail it
    with pytest.raises(DatasetError, match="md5 check"):
        load_dataset("cifar10", data_dir=tmp_path)


# --------------------------------------------------------------------------------------------------------
# imagefolder


def write_png(path, color, size=(5, 7)):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


def make_folder(root, test="test"):
    for split, n in (("train", 3), (test, 2)):
        for cls, color in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
            for i in range(n):
                write_png(root / split / cls / f"{i}.png", color)
    (root / "train" / "cat" / "notes.txt").write_text("not an image, ignored")


@pytest.mark.parametrize("test_name", ["test", "val"])
def test_imagefolder(tmp_path, test_name):
    pytest.importorskip("PIL")
    make_folder(tmp_path, test_name)
    b = load_dataset("imagefolder", data_dir=tmp_path, image_size=4)
    assert b.classes == ["cat", "dog"] and b.num_classes == 2
    assert b.train_x.shape == (6, 3, 4, 4) and b.test_x.shape == (4, 3, 4, 4)
    assert b.train_y.tolist() == [0, 0, 0, 1, 1, 1] and b.test_y.tolist() == [0, 0, 1, 1]
    # red cats, blue dogs: after undoing the normalisation the colours come back
    restored = b.train_x * torch.tensor(b.std).view(1, 3, 1, 1) + torch.tensor(b.mean).view(1, 3, 1, 1)
    assert torch.allclose(restored[0, :, 0, 0], torch.tensor([1.0, 0.0, 0.0]), atol=1e-5)
    assert torch.allclose(restored[-1, :, 0, 0], torch.tensor([0.0, 0.0, 1.0]), atol=1e-5)
    assert load_dataset("imagefolder", data_dir=tmp_path).input_shape == (3, 64, 64)  # default size


def test_imagefolder_class_mismatch(tmp_path):
    pytest.importorskip("PIL")
    make_folder(tmp_path)
    write_png(tmp_path / "test" / "bird" / "0.png", (0, 255, 0))
    with pytest.raises(DatasetError, match=r"class folders differ.*\[\] only in train and \['bird'\] only in test"):
        load_dataset("imagefolder", data_dir=tmp_path)


def test_imagefolder_unreadable_image(tmp_path):
    pytest.importorskip("PIL")
    make_folder(tmp_path)
    (tmp_path / "test" / "dog" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=r"cannot read image file .*broken\.png"):
        load_dataset("imagefolder", data_dir=tmp_path)


def test_imagefolder_missing_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset("imagefolder", data_dir=tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="needs --data-dir"):
        load_dataset("imagefolder")
    (tmp_path / "train").mkdir()
    with pytest.raises(FileNotFoundError, match=r"must contain train/ and test/ \(or val/\)"):
        load_dataset("imagefolder", data_dir=tmp_path)


# --------------------------------------------------------------------------------------------------------
# names


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="unknown dataset 'mnist2d'.*fashion-mnist, digits, mnist1d"):
        load_dataset("mnist2d")
    assert DATASETS == ("fashion-mnist", "digits", "mnist1d", "cifar10", "cifar100", "imagefolder")


def test_names_are_normalised():
    assert load_dataset("DIGITS", train_size=10).name == "digits"


def test_imagefolder_16_bit_images_are_scaled_not_clipped(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    make_folder(tmp_path)
    # a 16-bit greyscale image: values above 255 must not all become white
    values = np.array([[0, 257 * 64, 257 * 128, 65535]] * 4, dtype=np.uint16)
    img = Image.fromarray(values)
    assert img.mode.startswith("I;16")
    img.save(tmp_path / "train" / "cat" / "deep.png")
    with Image.open(tmp_path / "train" / "cat" / "deep.png") as back:
        assert back.mode.startswith("I;16") or back.mode == "I"  # what PIL reads back from the PNG
    b = load_dataset("imagefolder", data_dir=tmp_path, image_size=4)
    restored = b.train_x * torch.tensor(b.std).view(1, 3, 1, 1) + torch.tensor(b.mean).view(1, 3, 1, 1)
    row = restored[3, 0, 0] * 255  # the 4th training image: cat/deep.png sorts after 0-2.png
    torch.testing.assert_close(row, torch.tensor([0.0, 64.0, 128.0, 255.0]), atol=1e-3, rtol=0)


def test_imagefolder_float_images_are_refused(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    make_folder(tmp_path)
    Image.fromarray(np.full((4, 4), 0.5, dtype=np.float32)).save(tmp_path / "train" / "cat" / "f.tiff")
    with pytest.raises(DatasetError, match="expected 8-bit or 16-bit images, found PIL mode 'F'"):
        load_dataset("imagefolder", data_dir=tmp_path, image_size=4)
