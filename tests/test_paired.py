"""PairedViews (mixkit.paired), and its use with the sampler and SynerMix."""

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from mixkit import MixUp
from mixkit.hidden import SynerMix
from mixkit.paired import PairedViews
from mixkit.samplers import BalancedBatchSampler


class ListData(Dataset):
    def __init__(self, items, targets=None):
        self.items = items
        if targets is not None:
            self.targets = targets

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def test_yields_base_and_augmented_views_of_the_same_sample():
    x = torch.rand(6, 1, 4, 4)
    data = TensorDataset(x, torch.arange(6) % 3)
    pairs = PairedViews(data, augment=lambda t: t.flip(-1) + 1.0, base=lambda t: t * 2.0)
    assert len(pairs) == 6
    for i in range(6):
        original, augmented, label = pairs[i]
        torch.testing.assert_close(original, x[i] * 2.0)
        torch.testing.assert_close(augmented, x[i].flip(-1) + 1.0)
        assert int(label) == i % 3


def test_without_base_the_original_is_the_raw_sample():
    x = torch.rand(3, 5)
    pairs = PairedViews(TensorDataset(x, torch.tensor([0, 1, 0])), augment=torch.neg)
    original, augmented, _ = pairs[1]
    assert torch.equal(original, x[1]) and torch.equal(augmented, -x[1])


def test_both_transforms_see_the_same_raw_item():
    seen = []
    data = ListData([("raw0", 0), ("raw1", 1)])
    pairs = PairedViews(data, augment=lambda v: seen.append(("aug", v)) or v + "!",
                        base=lambda v: seen.append(("base", v)) or v.upper())
    assert pairs[1] == ("RAW1", "raw1!", 1)
    assert sorted(seen) == [("aug", "raw1"), ("base", "raw1")]


def test_targets_forwarded_for_samplers():
    assert PairedViews(ListData([(0, 1)], targets=[1]), augment=abs).targets == [1]
    labels = torch.tensor([2, 0, 1])
    assert torch.equal(PairedViews(TensorDataset(torch.rand(3, 2), labels), augment=abs).targets, labels)
    with pytest.raises(AttributeError, match="targets: expected the wrapped ListData to have 'targets' or "
                                             "'labels', got neither"):
        PairedViews(ListData([(0, 1)]), augment=abs).targets  # noqa: B018


def test_paired_errors():
    with pytest.raises(TypeError, match="augment: expected a callable transform, got int"):
        PairedViews(ListData([]), augment=3)
    with pytest.raises(TypeError, match="base: expected None or a callable transform, got str"):
        PairedViews(ListData([]), augment=abs, base="normalize")
    with pytest.raises(TypeError, match="dataset: expected a map-style dataset"):
        PairedViews(42, augment=abs)
    with pytest.raises(ValueError, match="dataset: expected items \\(x, label\\), got 3 values at index 0"):
        PairedViews(ListData([(1, 2, 3)]), augment=abs)[0]


def test_end_to_end_loader_sampler_synermix_step():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 1, 6, 6, generator=g)
    y = torch.arange(64) % 4
    pairs = PairedViews(TensorDataset(x, y), augment=lambda t: t.flip(-1),
                        base=lambda t: (t - 0.5) / 0.25)
    sampler = BalancedBatchSampler(pairs.targets, 10, seed=0)
    loader = DataLoader(pairs, batch_sampler=sampler)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 4))
    # feature layer "3" (Flatten: (B, 4)), head "4" (Linear)
    syner = SynerMix(model, "3", "4", beta=0.1, inter=MixUp(alpha=1.0, num_classes=4), num_classes=4)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    steps = 0
    for original, augmented, label in loader:
        assert original.shape[0] == augmented.shape[0] == label.shape[0] >= 10
        assert not bool((torch.bincount(label) == 1).any())
        torch.testing.assert_close(augmented, ((original * 0.25) + 0.5).flip(-1))
        opt.zero_grad()
        loss = syner.loss(original, augmented, label, generator=g)
        loss.backward()
        opt.step()
        assert torch.isfinite(loss.detach())
        steps += 1
    assert steps == len(sampler) == 6
