"""Mixers in a DataLoader collate_fn with worker processes (fork and spawn): different draws per
worker and per epoch, the same run again from the same seeds, Alternate in turn per batch."""

import multiprocessing

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset, default_collate

import mixkit

C = 5


class MixingCollate(mixkit.MixingCollate):
    """mixkit's collate, also returning the parameters drawn (to compare draws)."""

    def __init__(self, mixer, seed):
        super().__init__(mixer, generator=torch.Generator().manual_seed(seed))

    def __call__(self, batch):
        images, labels = default_collate(batch)
        params = self.mixer.sample(images, generator=self.generator)
        mixed, soft = self.mixer.apply(images, labels, params)
        return mixed, soft, params


@pytest.mark.parametrize("context", ["fork", pytest.param("spawn", marks=pytest.mark.slow)])
def test_mixing_collate_in_workers(context):
    if context not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {context} here")
    collate = mixkit.MixingCollate(mixkit.CutMix(num_classes=C, mode="elem"),
                                   generator=torch.Generator().manual_seed(0))
    loader = DataLoader(_dataset(), batch_size=8, num_workers=2, collate_fn=collate,
                        multiprocessing_context=context)
    batches = list(loader)
    assert len(batches) == 6
    for mixed, soft in batches:
        assert mixed.shape == (8, 3, 8, 8) and soft.shape == (8, C)
        torch.testing.assert_close(soft.sum(1), torch.ones(8))
    assert not torch.equal(batches[0][1], batches[1][1])


def test_mixing_collate_errors():
    with pytest.raises(TypeError, match="mixer: expected a mixer"):
        mixkit.MixingCollate(lambda x: x)
    with pytest.raises(ValueError, match="generator: expected None or a CPU torch.Generator"):
        mixkit.MixingCollate(mixkit.MixUp(), generator=3)
    collate = mixkit.MixingCollate(mixkit.MixUp(num_classes=C), collate=lambda b: b[0][0])
    with pytest.raises(ValueError, match=r"collate: expected batches of \(inputs, labels, ...\)"):
        collate([(torch.rand(3), 1)])


def _dataset(n=48):
    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.rand(n, 3, 8, 8, generator=g), torch.randint(0, C, (n,), generator=g))


def _epochs(mixer, *, context, mixer_seed=0, loader_seed=0, epochs=2, persistent=False, workers=2):
    loader = DataLoader(_dataset(), batch_size=8, shuffle=True, num_workers=workers,
                        collate_fn=MixingCollate(mixer, mixer_seed),
                        generator=torch.Generator().manual_seed(loader_seed),
                        multiprocessing_context=context, persistent_workers=persistent)
    return [[batch for batch in loader] for _ in range(epochs)]


def _lams(epochs):
    """Per batch, what was drawn: lam with the pairing."""
    return [[torch.cat([b[2].lam, b[2].index.float()]) for b in epoch] for epoch in epochs]


def _distinct(tensors):
    return len({tuple(t.tolist()) for t in tensors})


def _check_draws(mixer, context):
    run = _epochs(mixer, context=context)
    first, second = _lams(run)
    # 6 batches per epoch over 2 workers: every batch's draw differs from every other one
    assert _distinct(first) == len(first)
    assert _distinct(first + second) == len(first) + len(second), "an epoch repeated the previous one"
    again = _epochs(mixer, context=context)
    for e1, e2 in zip(run, again, strict=True):
        for b1, b2 in zip(e1, e2, strict=True):
            assert torch.equal(b1[0], b2[0]) and torch.equal(b1[1], b2[1])
    other_mixer_seed = _epochs(mixer, context=context, mixer_seed=1, epochs=1)
    assert not torch.equal(_lams(other_mixer_seed)[0][0], first[0])


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork here")
@pytest.mark.parametrize("mixer", [
    pytest.param(mixkit.MixUp(num_classes=C, mode="elem"), id="mixup-elem"),
    pytest.param(mixkit.FMix(num_classes=C), id="fmix", marks=pytest.mark.slow),   # ~1 s: 3 loaders
])
def test_workers_draw_differently_and_reproducibly_fork(mixer):
    _check_draws(mixer, "fork")


@pytest.mark.slow
def test_workers_draw_differently_and_reproducibly_spawn():
    _check_draws(mixkit.CutMix(num_classes=C, mode="elem"), "spawn")


def test_generator_in_the_main_process_is_untouched_by_workers():
    collate = MixingCollate(mixkit.MixUp(num_classes=C), 3)
    state = collate.generator.get_state()
    loader = DataLoader(_dataset(), batch_size=8, num_workers=2, collate_fn=collate)
    assert len(list(loader)) == 6
    assert torch.equal(collate.generator.get_state(), state)


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
@pytest.mark.parametrize("persistent", [False, True])
def test_alternate_in_workers_alternates_per_batch(persistent):
    alt = mixkit.Alternate([mixkit.MixUp(), mixkit.FMix()], num_classes=C)
    run = _epochs(alt, context=None, epochs=2, persistent=persistent)
    for epoch in run:
        assert [b[2].choice for b in epoch] == [0, 1, 0, 1, 0, 1]
    one = _epochs(alt, context=None, epochs=1, workers=3)
    assert [b[2].choice for b in one[0]] == [0, 1, 0, 1, 0, 1]
