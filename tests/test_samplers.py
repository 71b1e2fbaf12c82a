"""BalancedBatchSampler (mixkit.samplers)."""

from collections import Counter

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from mixkit.samplers import BalancedBatchSampler


def imbalanced_labels(n, num_classes=20, seed=0):
    """Class c with weight 0.75**c (class 0 is ~30 times class 12), each class >= 3 samples."""
    g = torch.Generator().manual_seed(seed)
    probs = torch.tensor([0.75**c for c in range(num_classes)])
    labels = torch.multinomial(probs, n, replacement=True, generator=g)
    labels[: 3 * num_classes] = torch.arange(num_classes).repeat(3)
    return labels


def check_topped_up_batch(batch, labels, batch_size, m):
    """The guarantee, and that only what was needed was added (a slow, per-class reference)."""
    assert len(set(batch)) == len(batch), "an index twice in one batch"
    base, extra = batch[:batch_size], batch[batch_size:]
    base_counts = Counter(labels[base].tolist())
    expected_extra = Counter({c: m - k for c, k in base_counts.items() if k < m})
    assert Counter(labels[extra].tolist()) == expected_extra
    counts = Counter(labels[batch].tolist())
    assert all(k >= m for k in counts.values())


@pytest.mark.parametrize("m", [2, 3])
def test_no_class_below_min_per_class_over_thousands_of_batches(m):
    labels = imbalanced_labels(12_000)
    sampler = BalancedBatchSampler(labels, 12, min_per_class=m, seed=3)
    assert len(sampler) == 1000
    seen_short = 0
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == 1000
        base = torch.tensor([b[:12] for b in batches]).flatten()
        assert base.unique().numel() == base.numel() == 12_000  # one permutation of the data
        for batch in batches:
            check_topped_up_batch(batch, labels, 12, m)
            seen_short += len(batch) > 12
    assert seen_short > 1000  # the guarantee was exercised, not vacuous


def test_official_behaviour_no_singletons_absent_classes_stay_absent():
    labels = imbalanced_labels(3000, num_classes=50)
    sampler = BalancedBatchSampler(labels, 32, seed=1)
    for batch in sampler:
        counts = torch.bincount(labels[batch], minlength=50)
        assert not bool((counts == 1).any())
        base_classes = set(labels[batch[:32]].tolist())
        assert set(labels[batch].tolist()) == base_classes  # no class was added from nowhere
    assert len(list(sampler)) == 3000 // 32  # last partial batch dropped


def test_min_per_class_one_gives_plain_shuffled_batches():
    labels = imbalanced_labels(100)
    batches = list(BalancedBatchSampler(labels, 10, min_per_class=1))
    assert all(len(b) == 10 for b in batches)
    assert sorted(i for b in batches for i in b) == list(range(100))


def test_keep_last_partial_batch():
    labels = imbalanced_labels(105)
    sampler = BalancedBatchSampler(labels, 10, drop_last=False)
    batches = list(sampler)
    assert len(sampler) == len(batches) == 11
    base = [i for b in batches[:-1] for i in b[:10]] + batches[-1][:5]
    assert sorted(base) == list(range(105))
    check_topped_up_batch(batches[-1], labels, 5, 2)


@pytest.mark.parametrize("world_size", [2, 3])
def test_distributed_shards_disjoint_cover_and_match_single_process(world_size):
    labels = imbalanced_labels(1000)
    bs = 16
    single = BalancedBatchSampler(labels, bs, seed=5)
    single.set_epoch(2)
    reference = list(single)
    shards = []
    for rank in range(world_size):
        s = BalancedBatchSampler(labels, bs, seed=5, rank=rank, world_size=world_size)
        s.set_epoch(2)
        shards.append(list(s))
        assert len(s) == len(shards[-1]) == (1000 // bs) // world_size
    bases = [{i for b in shard for i in b[:bs]} for shard in shards]
    for r in range(world_size):
        for q in range(r + 1, world_size):
            assert not bases[r] & bases[q]
        assert shards[r] == reference[r::world_size][: len(shards[r])]  # the same epoch, dealt out
    total = set().union(*bases)
    assert len(total) == sum(len(b) for b in bases) == len(shards[0]) * world_size * bs


def test_distributed_without_drop_last_covers_every_sample():
    labels = imbalanced_labels(1000)
    bs, ws = 16, 3
    shards = [list(BalancedBatchSampler(labels, bs, drop_last=False, rank=r, world_size=ws)) for r in range(ws)]
    per_rank = len(shards[0])
    assert all(len(s) == per_rank for s in shards) and per_rank == 21  # ceil(1000 / 48)
    base = [i for s in shards for b in s for i in b[:bs]]
    assert set(base) == set(range(1000))
    assert len(base) - 1000 == per_rank * ws * bs - 1000  # only the wrap-around padding repeats
    for s in shards:
        for b in s:
            check_topped_up_batch(b, labels, bs, 2)


def test_set_epoch_and_seed_control_the_order_and_global_rng_untouched():
    labels = imbalanced_labels(500)
    a, b = BalancedBatchSampler(labels, 20, seed=1), BalancedBatchSampler(labels, 20, seed=1)
    state = torch.get_rng_state()
    first = list(a)
    assert first == list(a) == list(b)  # same epoch, same order
    a.set_epoch(1)
    assert list(a) != first
    assert list(BalancedBatchSampler(labels, 20, seed=2)) != first
    assert torch.equal(torch.get_rng_state(), state)


def test_classes_per_batch_times_per_class_mode():
    labels = imbalanced_labels(4000, num_classes=20)
    labels[labels == 19] = 18  # class 19 absent
    labels[:2] = 19  # ... except 2 samples: fewer than per_class, never drawn
    sampler = BalancedBatchSampler(labels, 24, classes_per_batch=6, seed=0)
    assert sampler.per_class == 4 and len(sampler) == 4000 // 24
    class_hits = Counter()
    for epoch in range(6):
        sampler.set_epoch(epoch)
        for batch in sampler:
            assert len(batch) == len(set(batch)) == 24
            counts = Counter(labels[batch].tolist())
            assert len(counts) == 6 and set(counts.values()) == {4}
            assert 19 not in counts
            class_hits.update(counts.keys())
    # classes drawn uniformly among the 19 eligible: 6 * 166 * 6 / 19 = 314.5 each, sd ~16
    assert set(class_hits) == set(range(19))
    assert all(250 < v < 380 for v in class_hits.values()), class_hits


def test_pk_mode_uses_every_sample_of_a_class_before_repeating():
    labels = torch.arange(6).repeat_interleave(8)  # 6 classes x 8 samples
    sampler = BalancedBatchSampler(labels, 12, per_class=4, seed=0)  # 3 classes x 4
    assert sampler.classes_per_batch == 3
    batches = list(sampler)
    assert len(batches) == 4
    used = Counter(i for b in batches for i in b)
    per_class_uses = Counter()
    for i, n in used.items():
        per_class_uses[int(labels[i])] += n
    for cls, n in per_class_uses.items():  # a class drawn twice used 8 distinct samples
        idx = [i for i in used if int(labels[i]) == cls]
        assert len(idx) == min(n, 8)


def test_distributed_pk_mode_deals_the_same_epoch():
    labels = imbalanced_labels(2000)
    full = BalancedBatchSampler(labels, 16, per_class=4, seed=4).epoch_batches(0)
    for r in range(2):
        shard = list(BalancedBatchSampler(labels, 16, per_class=4, seed=4, rank=r, world_size=2))
        assert len(shard) == 62  # 125 batches: the odd one out is dropped so ranks stay equal
        assert shard == full[r::2][:62]


def test_works_as_a_dataloader_batch_sampler():
    labels = imbalanced_labels(200)
    data = TensorDataset(torch.arange(200), labels)
    sampler = BalancedBatchSampler(labels, 16)
    for (idx, lab), batch in zip(DataLoader(data, batch_sampler=sampler), sampler, strict=True):
        assert idx.tolist() == batch
        assert not bool((torch.bincount(lab) == 1).any())


def test_sampler_errors():
    labels = imbalanced_labels(100)
    rare = torch.cat([labels, torch.tensor([25])])
    with pytest.raises(ValueError, match="labels: expected at least min_per_class=2 samples of every class, "
                                         "got 1 of class 25"):
        BalancedBatchSampler(rare, 10)
    with pytest.raises(ValueError, match="labels: expected a non-empty 1-D sequence of integer class ids"):
        BalancedBatchSampler(torch.rand(10), 4)
    with pytest.raises(ValueError, match="labels: expected class ids >= 0, got -1"):
        BalancedBatchSampler([0, 1, -1, 1], 2)
    with pytest.raises(ValueError, match="batch_size: expected an integer >= 1, got 0"):
        BalancedBatchSampler(labels, 0)
    with pytest.raises(ValueError, match="min_per_class: expected at most batch_size=4, got 5"):
        BalancedBatchSampler(labels, 4, min_per_class=5)
    with pytest.raises(ValueError, match=r"rank: expected an integer in \[0, 1\], got 2"):
        BalancedBatchSampler(labels, 4, rank=2, world_size=2)
    with pytest.raises(ValueError, match="per_class: expected a divisor of batch_size=10, got 4"):
        BalancedBatchSampler(labels, 10, per_class=4)
    with pytest.raises(ValueError, match="classes_per_batch: expected a divisor of batch_size=10, got 3"):
        BalancedBatchSampler(labels, 10, classes_per_batch=3)
    with pytest.raises(ValueError, match="classes_per_batch x per_class: expected batch_size=12, got 2 x 3 = 6"):
        BalancedBatchSampler(labels, 12, classes_per_batch=2, per_class=3)
    with pytest.raises(ValueError, match="classes_per_batch: expected at most the 2 classes with >= per_class=4"):
        BalancedBatchSampler([0] * 5 + [1] * 5 + [2] * 3, 12, per_class=4)
    with pytest.raises(ValueError, match="batch_size: expected at least one batch per rank from 100 samples"):
        BalancedBatchSampler(labels, 60, world_size=2)
    with pytest.raises(ValueError, match="epoch: expected an integer, got 1.5"):
        BalancedBatchSampler(labels, 10).set_epoch(1.5)


def test_distributed_permutation_parts_are_disjoint_and_top_ups_are_documented_repeats():
    # the ranks' shares of the epoch's permutation are disjoint shards (DistributedSampler's
    # contract); only the appended top-ups may repeat a sample across ranks, as the docstring says
    labels = torch.arange(450) % 45  # 45 classes of 10: many classes appear once per batch
    bs = 32
    shards = [list(BalancedBatchSampler(labels, bs, seed=3, rank=r, world_size=2)) for r in (0, 1)]
    base = [{i for b in shard for i in b[:bs]} for shard in shards]
    assert not base[0] & base[1]
    everything = [{i for b in shard for i in b} for shard in shards]
    repeated = everything[0] & everything[1]
    assert repeated, "no top-up repeats: the docstring's caveat would be stale"
    assert all(any(i in b[bs:] for shard in shards for b in shard) for i in repeated)  # only via top-ups
