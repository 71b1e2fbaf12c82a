"""The streaming data path (mixkit.harness.data.stream): Cutout, sources, StreamSet, keys and loaders."""

import itertools
import pickle
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from mixkit.harness.data.datasets import load_dataset
from mixkit.harness.data.errors import DatasetError
from mixkit.harness.data.stream import (
    Cutout,
    ImageFileSource,
    StreamSet,
    TensorSource,
    batch_keys,
    cutout_batch,
    image_folder_sources,
    make_loader,
    sample_seeds,
)

# --------------------------------------------------------------------------------------------------------
# helpers


def _square_reference(x, cy, cx, size):
    """Per-pixel reference: zero every pixel whose row and column lie in the size-wide runs starting at
    centre - size // 2 (clipped by simply not existing outside the image)."""
    out = x.clone()
    h, w = x.shape[-2:]
    for r in range(h):
        for c in range(w):
            if cy - size // 2 <= r < cy - size // 2 + size and cx - size // 2 <= c < cx - size // 2 + size:
                out[..., r, c] = 0
    return out


def _run_reference(x, c0, size):
    out = x.clone()
    for j in range(x.shape[-1]):
        if c0 - size // 2 <= j < c0 - size // 2 + size:
            out[..., j] = 0
    return out


def _crop_candidates(x, padding, flips):
    """Every (C, H, W) view RandomCrop(padding, fill 0) + optional flip can give."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (padding,) * 4)
    out = []
    for dy, dx in itertools.product(range(2 * padding + 1), repeat=2):
        view = padded[:, dy:dy + h, dx:dx + w]
        out.extend([view] + ([view.flip(-1)] if flips else []))
    return out


def _index_of(candidates, y):
    hits = [k for k, c in enumerate(candidates) if torch.equal(c, y)]
    assert hits, "output is not one of the valid augmented views"
    return hits[0]


def _tensor_set(n=6, shape=(3, 6, 7), classes=3, seed=0, **kw):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((n, *shape), generator=g)
    y = torch.arange(n) % classes
    return x, y, StreamSet(TensorSource(x, y), **kw)


def _write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@pytest.fixture
def folder(tmp_path):
    """A small imagefolder with mixed sizes and modes (RGB, L, RGBA, palette, 16-bit greyscale)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "imgs"
    sizes = [(8, 8), (13, 9), (5, 6), (21, 17)]
    for split, count in (("train", 4), ("test", 2)):
        for cls in ("cat", "dog"):
            for k in range(count):
                h, w = sizes[(k + len(cls)) % len(sizes)]
                p = root / split / cls / f"{k}.png"
                if k == 0:
                    _write_png(p, rng.integers(0, 256, (h, w), dtype=np.uint8))                   # L
                elif k == 1:
                    _write_png(p, rng.integers(0, 256, (h, w, 4), dtype=np.uint8))                # RGBA
                elif k == 2 and split == "train":
                    grey16 = rng.integers(0, 65536, (h, w)).astype(np.uint16)
                    img = Image.fromarray(grey16)
                    assert img.mode.startswith("I;16")
                    p.parent.mkdir(parents=True, exist_ok=True)
                    img.save(p)                                                                  # 16-bit
                else:
                    _write_png(p, rng.integers(0, 256, (h, w, 3), dtype=np.uint8))                # RGB
    pal = Image.fromarray(rng.integers(0, 256, (7, 7, 3), dtype=np.uint8)).convert("P")
    pal.save(root / "train" / "dog" / "pal.png")                                                # palette
    return root


# --------------------------------------------------------------------------------------------------------
# Cutout


@pytest.mark.parametrize("size", [1, 4, 5, 30])
def test_cutout_zeroes_exactly_the_clipped_square(size):
    x = torch.randn(2, 9, 11) + 5.0  # no zeros of its own
    seen_clipped = False
    for seed in range(12):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            cy, cx = int(torch.randint(0, 9, (1,))), int(torch.randint(0, 11, (1,)))
            torch.manual_seed(seed)
            out = Cutout(size)(x)
        ref = _square_reference(x, cy, cx, size)
        assert torch.equal(out, ref)
        rows = min(cy - size // 2 + size, 9) - max(cy - size // 2, 0)
        cols = min(cx - size // 2 + size, 11) - max(cx - size // 2, 0)
        assert int((out[0] == 0).sum()) == rows * cols
        seen_clipped |= rows * cols < size * size
    assert x.min() > 0  # input untouched
    assert seen_clipped or size == 1  # the square does run over the borders for some centres


def test_cutout_signal_zeroes_one_run():
    x = torch.randn(2, 12) + 5.0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        c = int(torch.randint(0, 12, (1,)))
        torch.manual_seed(3)
        out = Cutout(4)(x)
    assert torch.equal(out, _run_reference(x, c, 4))


def test_cutout_batch_matches_a_per_sample_loop():
    x = torch.randn(7, 2, 8, 9) + 5.0
    g = torch.Generator().manual_seed(11)
    g_ref = torch.Generator().manual_seed(11)
    out = cutout_batch(x, 5, g)
    cy = torch.randint(0, 8, (7,), generator=g_ref)
    cx = torch.randint(0, 9, (7,), generator=g_ref)
    ref = torch.stack([_square_reference(x[i], int(cy[i]), int(cx[i]), 5) for i in range(7)])
    assert torch.equal(out, ref)
    assert torch.equal(g.get_state(), g_ref.get_state())  # the same number of draws
    assert x.min() > 0
    assert len({int(cy[i]) * 100 + int(cx[i]) for i in range(7)}) > 1  # squares differ between samples

    s = torch.randn(5, 3, 10) + 5.0
    g, g_ref = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    out = cutout_batch(s, 3, g)
    c = torch.randint(0, 10, (5,), generator=g_ref)
    assert torch.equal(out, torch.stack([_run_reference(s[i], int(c[i]), 3) for i in range(5)]))


def test_cutout_size_zero_and_bad_sizes():
    x = torch.randn(3, 1, 4, 4)
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    assert cutout_batch(x, 0, g) is x
    assert torch.equal(g.get_state(), state)
    for bad in (0, -1, 1.5, True, "3"):
        with pytest.raises(ValueError, match="cutout"):
            Cutout(bad)
    for bad in (-1, 2.0):
        with pytest.raises(ValueError, match="cutout"):
            cutout_batch(x, bad, g)
    with pytest.raises(ValueError, match="cutout"):
        Cutout(2)(torch.zeros(1, 2, 3, 4))


# --------------------------------------------------------------------------------------------------------
# StreamSet over tensors


def test_tensor_source_none_returns_the_samples_exactly():
    x, y, ds = _tensor_set(augment="none", with_originals=True)
    assert len(ds) == 6
    for i in range(6):
        aug, orig, label = ds[(i, 123 + i)]
        assert torch.equal(aug, x[i]) and torch.equal(orig, x[i])
        assert type(label) is int and label == int(y[i])
    aug, label = StreamSet(TensorSource(x, y), augment="none")[(2, 0)]
    assert torch.equal(aug, x[2]) and label == int(y[2])
    aug.zero_()
    assert not torch.equal(x[2], aug)  # the source is not aliased


@pytest.mark.parametrize("augment, flips, crops", [("crop-flip", True, True), ("crop", False, True),
                                                   ("flip", True, False)])
def test_crop_flip_outputs_are_valid_views(augment, flips, crops):
    x, y, ds = _tensor_set(augment=augment, crop_padding=2)
    candidates = _crop_candidates(x[1], 2 if crops else 0, flips)
    hits = {_index_of(candidates, ds[(1, seed)][0]) for seed in range(40)}
    assert len(hits) > (4 if crops else 1)  # random offsets and flips both occur
    if flips:
        assert {h % 2 for h in hits} == {0, 1}


def test_signals_are_shifted_never_flipped():
    x, y, ds = _tensor_set(shape=(2, 10), augment="crop-flip", crop_padding=3)
    padded = F.pad(x[0], (3, 3))
    shifts = [padded[:, d:d + 10] for d in range(7)]
    hits = {_index_of(shifts, ds[(0, seed)][0]) for seed in range(40)}
    assert len(hits) > 3
    _, _, flip_only = _tensor_set(shape=(2, 10), augment="flip")
    assert torch.equal(flip_only[(0, 5)][0], x[0])


def test_cutout_applies_to_the_augmented_view_only():
    x, y, ds = _tensor_set(augment="none", cutout=3, with_originals=True)
    aug, orig, _ = ds[(4, 9)]
    assert torch.equal(orig, x[4])
    zero = aug == 0
    assert zero.any() and torch.equal(aug[~zero], x[4][~zero])
    assert (zero == zero[0:1]).all()  # the same pixels in every channel


def test_samples_are_a_pure_function_of_the_key_and_leave_the_rng_alone():
    x, y, ds = _tensor_set(augment="crop-flip", cutout=2)
    torch.manual_seed(1)
    state = torch.get_rng_state()
    first = ds[(3, 77)][0]
    assert torch.equal(torch.get_rng_state(), state)  # the caller's RNG is untouched
    torch.manual_seed(999)
    assert torch.equal(ds[(3, 77)][0], first)
    outs = [ds[(3, s)][0] for s in range(10)]
    assert any(not torch.equal(o, first) for o in outs)  # the seed changes the crop


def test_loader_workers_do_not_change_the_samples():
    x, y, ds = _tensor_set(n=10, augment="crop-flip", cutout=2)
    batches = batch_keys([torch.tensor([3, 1, 4]), torch.tensor([0, 9]), torch.tensor([5, 2, 6, 8])], 0, 1)
    serial = list(make_loader(ds, batches, workers=0, pin_memory=False))
    parallel = list(make_loader(ds, batches, workers=2, pin_memory=False, prefetch_factor=1))
    assert len(serial) == len(parallel) == 3
    for (a, la), (b, lb) in zip(serial, parallel, strict=True):
        assert torch.equal(a, b) and torch.equal(la, lb)
    direct = torch.stack([ds[k][0] for k in batches[2]])
    assert torch.equal(serial[2][0], direct)


def test_make_loader_yields_the_batches_in_order_with_their_labels():
    x, y, ds = _tensor_set(n=12, classes=5, augment="none", with_originals=True)
    order = torch.randperm(12, generator=torch.Generator().manual_seed(4))
    index_batches = [order[:5], order[5:6], order[6:]]
    loader = make_loader(ds, batch_keys(index_batches, 3, 0), workers=2, pin_memory=False)
    assert len(loader) == 3
    got = list(loader)
    for idx, (aug, orig, labels) in zip(index_batches, got, strict=True):
        assert labels.dtype == torch.int64 and torch.equal(labels, y[idx])
        assert torch.equal(aug, x[idx]) and torch.equal(orig, x[idx])


def _other_threads():
    import threading

    return [t for t in threading.enumerate() if t is not threading.main_thread() and t.is_alive()]


class _FailsAt(TensorSource):
    def read(self, i):
        if i == 5:
            raise RuntimeError("sample 5 is unreadable")
        return super().read(i)


def test_an_iteration_ends_with_no_thread_of_its_loader_alive():
    """The next loader forks its workers from a process in which no thread of the last one is still
    ending (on CPython < 3.12 such a fork could hang the worker for ever: CPython gh-112275). torch
    leaves its queues' feeder threads to end on their own; make_loader waits for them: after a full
    iteration, after one left early and after one a worker's error ended."""
    x, y, ds = _tensor_set(n=12, augment="none")
    keys = [[(i, 0)] for i in range(12)]
    before = _other_threads()
    for _ in range(3):                                    # run to the end, several loaders in a row
        assert len(list(make_loader(ds, keys, workers=2, pin_memory=False))) == 12
        assert _other_threads() == before
    it = iter(make_loader(ds, keys, workers=2, pin_memory=False))
    next(it)
    assert [t.name for t in _other_threads() if t not in before] == ["QueueFeederThread"] * 2
    it.close()                                            # left early (a break, a stop on a nan loss)
    assert _other_threads() == before
    bad = StreamSet(_FailsAt(x, y), augment="none")
    with pytest.raises(RuntimeError, match="sample 5 is unreadable"):
        list(make_loader(bad, keys, workers=2, pin_memory=False))
    assert _other_threads() == before


class _ThreadProbe(TensorSource):
    def read(self, i):
        return self.x[i].clone(), torch.get_num_threads()


def test_workers_use_one_torch_thread():
    x, y = torch.zeros(4, 1, 2, 2), torch.zeros(4, dtype=torch.int64)
    ds = StreamSet(_ThreadProbe(x, y), augment="none")
    labels = torch.cat([lb for _, lb in make_loader(ds, [[(i, 0)] for i in range(4)], workers=2,
                                                    pin_memory=False)])
    assert labels.tolist() == [1, 1, 1, 1]


def test_streamset_argument_errors():
    x, y = torch.randn(3, 1, 4, 4), torch.arange(3)
    src = TensorSource(x, y)
    with pytest.raises(ValueError, match="augment"):
        StreamSet(src, augment="rrc-flip")
    with pytest.raises(ValueError, match="augment"):
        StreamSet(src, augment="mixup")
    with pytest.raises(ValueError, match="crop_padding"):
        StreamSet(src, augment="crop", crop_padding=-1)
    with pytest.raises(ValueError, match="cutout"):
        StreamSet(src, augment="none", cutout=-2)
    ds = StreamSet(src, augment="none")
    with pytest.raises(IndexError):
        ds[(3, 0)]
    with pytest.raises(TypeError, match="key"):
        ds[1]
    with pytest.raises(ValueError, match="x"):
        TensorSource(torch.zeros(3, 4), y)
    with pytest.raises(ValueError, match="same number"):
        TensorSource(x, torch.arange(2))


# --------------------------------------------------------------------------------------------------------
# keys


def _splitmix_reference(z):
    m = (1 << 64) - 1
    z = (z + 0x9E3779B97F4A7C15) & m
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
    return z ^ (z >> 31)


def test_batch_keys_are_a_fixed_hash_of_seed_epoch_index():
    batches = [torch.tensor([5, 0, 7]), torch.tensor([2])]
    keys = batch_keys(batches, 42, 3)
    assert [[i for i, _ in b] for b in keys] == [[5, 0, 7], [2]]
    for i, s in itertools.chain(*keys):
        expected = _splitmix_reference(_splitmix_reference(_splitmix_reference(42 ^ 0x6D69786B6974) ^ 3) ^ i)
        assert s == expected >> 1 and type(s) is int
    # the seed of an index does not depend on its batch or position
    again = dict(itertools.chain(*batch_keys([torch.tensor([2, 7, 0, 5])], 42, 3)))
    assert again == dict(itertools.chain(*keys))
    other_epoch = dict(itertools.chain(*batch_keys(batches, 42, 4)))
    other_seed = dict(itertools.chain(*batch_keys(batches, 43, 3)))
    for i in (0, 2, 5, 7):
        assert other_epoch[i] != again[i] and other_seed[i] != again[i]
    assert len(set(again.values())) == 4
    with pytest.raises(ValueError, match="epoch"):
        sample_seeds(np.arange(3), 0, -1)


# --------------------------------------------------------------------------------------------------------
# image files


def test_image_file_source_matches_the_in_memory_path_bit_for_bit(folder):
    bundle = load_dataset("imagefolder", data_dir=folder, image_size=8)
    train, test, classes = image_folder_sources(folder, 8, stats_samples=10_000)
    assert classes == bundle.classes == ["cat", "dog"]
    assert train.mean == bundle.mean and train.std == bundle.std  # every image used: identical stats
    assert test.mean == bundle.mean and test.std == bundle.std
    assert len(train) == len(bundle.train_x) and len(test) == len(bundle.test_x)
    for src, xs, ys in ((train, bundle.train_x, bundle.train_y), (test, bundle.test_x, bundle.test_y)):
        assert torch.equal(src.labels, ys)
        for i in range(len(src)):
            x, label = src.read(i)
            assert x.dtype == torch.float32 and x.shape == (3, 8, 8)
            assert torch.equal(x, xs[i]) and label == int(ys[i])
    # given explicitly, the same mean/std give the same tensors
    manual = ImageFileSource(train.files, mean=bundle.mean, std=bundle.std, size=8)
    assert all(torch.equal(manual.read(i)[0], bundle.train_x[i]) for i in range(len(manual)))
    # StreamSet "none" is the deterministic view
    ds = StreamSet(train, augment="none")
    assert torch.equal(ds[(3, 1)][0], bundle.train_x[3])


def test_sixteen_bit_pngs_are_scaled_like_the_in_memory_path(folder):
    train, _, _ = image_folder_sources(folder, 8, stats_samples=10_000)
    i = next(k for k, (p, _) in enumerate(train.files) if Image.open(p).mode in ("I;16", "I;16B", "I", "I;16L"))
    path = train.files[i][0]
    raw = np.asarray(Image.open(path)).astype(np.int64)
    full, _ = train.read_uint8(i)
    assert full.shape == (3, *raw.shape) and full.dtype == torch.uint8
    expected = torch.from_numpy(np.rint(raw / 257.0).astype(np.uint8))
    assert torch.equal(full[0], expected) and torch.equal(full[1], expected) and torch.equal(full[2], expected)
    assert int(full.max()) > 200  # not clipped to 255 everywhere either
    bundle = load_dataset("imagefolder", data_dir=folder, image_size=8)
    assert torch.equal(train.read(i)[0], bundle.train_x[i])


def test_read_uint8_is_the_full_resolution_rgb_image(folder):
    train, _, _ = image_folder_sources(folder, 4, stats_samples=3)
    for i, (path, label) in enumerate(train.files):
        full, lab = train.read_uint8(i)
        with Image.open(path) as img:
            size = img.size
            if img.mode in ("RGB", "RGBA", "L", "P"):
                ref = np.asarray(img.convert("RGB")).transpose(2, 0, 1)
                assert torch.equal(full, torch.from_numpy(np.ascontiguousarray(ref)))
        assert full.shape == (3, size[1], size[0]) and lab == label


def test_stats_on_a_sample_are_deterministic(folder):
    a = image_folder_sources(folder, 8, stats_samples=3, seed=1)[0]
    b = image_folder_sources(folder, 8, stats_samples=3, seed=1)[0]
    full = image_folder_sources(folder, 8, stats_samples=100)[0]
    assert a.mean == b.mean and a.std == b.std
    assert a.mean != full.mean
    assert all(s > 0 for s in a.std)
    others = {tuple(image_folder_sources(folder, 8, stats_samples=3, seed=s)[0].mean) for s in range(2, 6)}
    assert len(others | {tuple(a.mean)}) > 1  # the seed picks the sample


def test_default_size_is_the_in_memory_default(folder):
    train, test, _ = image_folder_sources(folder, None, stats_samples=2)
    assert train.size == test.size == 64 and train.read(0)[0].shape == (3, 64, 64)


def test_rrc_flip_shape_determinism_and_range(folder):
    train, _, _ = image_folder_sources(folder, 8, stats_samples=100)
    ds = StreamSet(train, augment="rrc-flip", with_originals=True)
    aug, orig, label = ds[(4, 10)]
    assert aug.shape == (3, 8, 8) and aug.dtype == torch.float32 and orig.shape == (3, 8, 8)
    assert torch.equal(orig, train.read(4)[0]) and label == train.files[4][1]
    assert torch.equal(ds[(4, 10)][0], aug)
    assert any(not torch.equal(ds[(4, s)][0], aug) for s in range(11, 20))
    mean, std = torch.tensor(train.mean).view(3, 1, 1), torch.tensor(train.std).view(3, 1, 1)
    assert ((aug * std + mean) >= -1e-5).all() and ((aug * std + mean) <= 1 + 1e-5).all()
    small = StreamSet(train, augment="rrc-flip", image_size=5, cutout=2)
    assert small[(0, 1)][0].shape == (3, 5, 5)
    cropped = StreamSet(train, augment="crop-flip")[(0, 3)][0]
    assert cropped.shape == (3, 8, 8)


@pytest.mark.parametrize("content", [b"not an image at all", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"])
def test_unreadable_file_names_the_file(folder, content):
    bad = folder / "train" / "cat" / "broken.png"
    bad.write_bytes(content)
    with pytest.raises(DatasetError, match=re.escape(str(bad))):
        image_folder_sources(folder, 8, stats_samples=10_000)
    good = [(p, 1) for p in sorted((folder / "train" / "dog").glob("*.png"))]
    src = ImageFileSource([*good, (bad, 0)], mean=[0.5] * 3, std=[0.25] * 3, size=8)
    assert src.read(0)[0].shape == (3, 8, 8)
    for reader in (src.read, src.read_uint8, lambda i: StreamSet(src, augment="rrc-flip")[(i, 0)]):
        with pytest.raises(DatasetError, match=re.escape(str(bad))):
            reader(len(src) - 1)


def test_image_folder_sources_layout_errors(tmp_path, folder):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        image_folder_sources(tmp_path / "absent", 8)
    with pytest.raises(FileNotFoundError, match="data-dir"):
        image_folder_sources(None, 8)
    (folder / "test" / "bird").mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(folder / "test" / "bird" / "a.png")
    with pytest.raises(DatasetError, match="class folders differ"):
        image_folder_sources(folder, 8)
    with pytest.raises(ValueError, match="stats_samples"):
        image_folder_sources(folder, 8, stats_samples=0)


@pytest.mark.slow
def test_streamsets_pickle_and_run_under_spawn(folder):
    train, _, _ = image_folder_sources(folder, 8, stats_samples=100)
    ds = StreamSet(train, augment="rrc-flip", cutout=3, with_originals=True)
    clone = pickle.loads(pickle.dumps(ds))
    assert torch.equal(clone[(2, 5)][0], ds[(2, 5)][0])
    batches = batch_keys([torch.tensor([0, 3, 1]), torch.tensor([6, 2])], 7, 0)
    serial = list(make_loader(ds, batches, workers=0, pin_memory=False))
    spawned = list(make_loader(ds, batches, workers=1, pin_memory=False, mp_context="spawn"))
    assert len(spawned) == 2
    for a, b in zip(serial, spawned, strict=True):
        assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
