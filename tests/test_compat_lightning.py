"""mixkit.compat.lightning.MixBatch: real ``Trainer.fit`` runs on CPU (training batches mixed,
validation batches untouched, the model still learns, a resume continues the same draws) and fast
checks of the hook, the batch forms, the per-rank seeding, the state and the argument errors."""

import importlib
import sys
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

import mixkit

pl = pytest.importorskip("lightning.pytorch")
from mixkit.compat.lightning import MixBatch  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*does not have many workers:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*log_every_n_steps:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*GPU available but not used:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*isinstance\\(treespec, LeafSpec\\)"),  # lightning vs newer torch
    pytest.mark.filterwarnings("ignore:You defined a `validation_step` but have no `val_dataloader`"),
]

NUM_CLASSES = 4
BATCH = 32
N_TRAIN = 224  # 7 batches: an odd count, so Alternate's position after an epoch is not back at 0


def quadrant_data(n: int, seed: int):
    """1x8x8 noise images whose class is the bright quadrant (0 top-left .. 3 bottom-right)."""
    g = torch.Generator().manual_seed(seed)
    x = 0.3 * torch.randn(n, 1, 8, 8, generator=g)
    y = torch.randint(0, NUM_CLASSES, (n,), generator=g)
    for c, (r, s) in enumerate([(0, 0), (0, 4), (4, 0), (4, 4)]):
        x[y == c, :, r:r + 4, s:s + 4] += 1.0
    return x, y


TRAIN_X, TRAIN_Y = quadrant_data(N_TRAIN, seed=0)
VAL_X, VAL_Y = quadrant_data(128, seed=1)


def train_loader(shuffle=True):
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(TRAIN_X, TRAIN_Y, torch.arange(N_TRAIN))  # [x, y, index] batches
    return DataLoader(data, batch_size=BATCH, shuffle=shuffle, generator=g)


def val_loader():
    return DataLoader(TensorDataset(VAL_X, VAL_Y), batch_size=64)


class Recorder(pl.LightningModule):
    """A tiny conv net that keeps what its steps received."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                                 nn.Flatten(), nn.Linear(32, NUM_CLASSES))
        self.train_seen, self.val_seen, self.val_acc = [], [], []

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch[0], batch[1]
        self.train_seen.append([t.detach().clone() for t in batch])
        return mixkit.soft_target_cross_entropy(self(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.val_seen.append((x.clone(), y.clone()))
        return (self(x).argmax(1) == y).float().sum()

    def on_validation_epoch_start(self):
        self._correct = 0

    def on_validation_batch_end(self, outputs, batch, batch_idx, dataloader_idx=0):
        self._correct += int(outputs)

    def on_validation_epoch_end(self):
        self.val_acc.append(self._correct / len(VAL_Y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=2e-2)


def make_trainer(callbacks, max_epochs=2, **kwargs):
    return pl.Trainer(accelerator="cpu", devices=1, max_epochs=max_epochs, logger=False,
                      enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                      num_sanity_val_steps=0, callbacks=callbacks, **kwargs)


# ---------------------------------------------------------------------------------------------
# Trainer.fit


def test_fit_mixes_training_batches_and_leaves_validation_alone():
    torch.manual_seed(0)
    model = Recorder()
    mix = MixBatch(mixkit.MixUp(alpha=1.0, num_classes=NUM_CLASSES), seed=0)
    make_trainer([mix]).fit(model, train_loader(), val_loader())

    assert len(model.train_seen) == 2 * 7 and mix.batches == 2 * 7
    one_hot_rows, rows = 0, 0
    for x, soft, index in model.train_seen:
        assert soft.dtype == torch.float32 and soft.shape == (x.shape[0], NUM_CLASSES)
        torch.testing.assert_close(soft.sum(1), torch.ones(x.shape[0]))
        one_hot_rows, rows = one_hot_rows + int((soft.max(1).values == 1).sum()), rows + len(soft)
        assert not torch.equal(x, TRAIN_X[index])                 # the inputs were mixed
        assert index.dtype == torch.int64                         # the rest passes through
    # Mostly soft: a row stays one-hot only where a sample's partner has its class (about 1 in 4).
    assert one_hot_rows < rows / 2, (one_hot_rows, rows)

    # Validation saw the data as it is: original inputs and integer class ids.
    seen_x = torch.cat([x for x, _ in model.val_seen[:2]])
    seen_y = torch.cat([y for _, y in model.val_seen[:2]])
    assert seen_y.dtype == torch.int64 and seen_y.ndim == 1
    assert torch.equal(seen_x, VAL_X) and torch.equal(seen_y, VAL_Y)

    # It learns. The criterion is the validation accuracy (on unmixed data) against chance (1/4),
    # not "the training loss falls from epoch 1 to 2": the loss on mixed batches depends on each
    # batch's random lam (a perfect model still pays about H(lam) per sample), so it can rise
    # between two epochs while the model improves. The task is easy, so 0.6 leaves a wide margin.
    assert model.val_acc[-1] > 0.6, model.val_acc
    print("validation accuracy per epoch:", model.val_acc)


@pytest.mark.slow
def test_fit_with_dict_batches():
    class Dicts(Dataset):
        def __len__(self):
            return 64

        def __getitem__(self, i):
            return {"img": TRAIN_X[i], "target": TRAIN_Y[i], "name": f"sample{i}"}

    class DictModel(Recorder):
        def training_step(self, batch, batch_idx):
            self.train_seen.append(batch)
            return mixkit.soft_target_cross_entropy(self(batch["img"]), batch["target"])

    model = DictModel()
    mix = MixBatch(mixkit.CutMix(num_classes=NUM_CLASSES), seed=1, input_key="img", label_key="target")
    make_trainer([mix], max_epochs=1, limit_val_batches=0).fit(model, DataLoader(Dicts(), batch_size=32))
    assert len(model.train_seen) == 2
    for k, batch in enumerate(model.train_seen):
        assert batch["target"].shape == (32, NUM_CLASSES) and batch["target"].dtype == torch.float32
        assert not torch.equal(batch["img"], TRAIN_X[32 * k:32 * (k + 1)])
        assert batch["name"] == [f"sample{i}" for i in range(32 * k, 32 * (k + 1))]


class StateProbe(pl.Callback):
    """Records MixBatch's generator state when training starts (after a checkpoint is restored)."""

    def __init__(self, mix):
        self.mix, self.at_start = mix, None

    def on_train_start(self, trainer, pl_module):
        self.at_start = self.mix.generator.get_state().tolist()


def _alternate():
    return mixkit.Alternate([mixkit.MixUp(alpha=1.0), mixkit.CutMix(alpha=1.0)], num_classes=NUM_CLASSES)


@pytest.mark.slow
def test_resume_restores_the_generator_and_continues_the_same_draws(tmp_path):
    # Uninterrupted: two epochs.
    torch.manual_seed(0)
    whole = Recorder()
    make_trainer([MixBatch(_alternate(), seed=5)]).fit(whole, train_loader(shuffle=False), val_loader())

    # Interrupted: one epoch, a checkpoint, then a new Trainer (and callback) resumes from it.
    torch.manual_seed(0)
    first, mix = Recorder(), MixBatch(_alternate(), seed=5)
    trainer = make_trainer([mix], max_epochs=1)
    trainer.fit(first, train_loader(shuffle=False), val_loader())
    path = tmp_path / "epoch1.ckpt"
    trainer.save_checkpoint(path)
    saved = torch.load(path, weights_only=False)["callbacks"]["MixBatch"]
    assert saved["generator"] == mix.generator.get_state().tolist()
    assert saved["mixer"] == mix.mixer.state_dict() and mix.mixer.step == 7 and saved["batches"] == 7

    second, resumed = Recorder(), MixBatch(_alternate(), seed=5)
    probe = StateProbe(resumed)
    make_trainer([resumed, probe]).fit(second, train_loader(shuffle=False), val_loader(), ckpt_path=path)
    assert probe.at_start == saved["generator"]                # restored: the state saved
    assert resumed.mixer.step == 14 and resumed.batches == 14  # Alternate's position went on
    # ... so epoch 2 after the resume mixes exactly as epoch 2 of the uninterrupted run.
    assert len(second.train_seen) == 7
    for (x, y, _), (wx, wy, _) in zip(second.train_seen, whole.train_seen[7:], strict=True):
        assert torch.equal(x, wx) and torch.equal(y, wy)


# ---------------------------------------------------------------------------------------------
# The hook and the state, without a Trainer


def _trainer(rank=0):
    return SimpleNamespace(global_rank=rank)


def _batch():
    return [TRAIN_X[:8].clone(), TRAIN_Y[:8].clone(), torch.arange(8)]


def test_list_batch_is_mixed_in_place_and_the_rest_kept():
    mix = MixBatch(mixkit.MixUp(num_classes=NUM_CLASSES), seed=0)
    batch = _batch()
    rest = batch[2]
    mix.on_train_batch_start(_trainer(), None, batch, 0)
    assert batch[1].shape == (8, NUM_CLASSES) and batch[2] is rest
    # The same draws as the mixer called with a generator seeded like rank 0's.
    expected = mixkit.MixUp(num_classes=NUM_CLASSES)(TRAIN_X[:8], TRAIN_Y[:8],
                                                     generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(batch[0], expected[0])
    torch.testing.assert_close(batch[1], expected[1])


def test_dict_batch_with_custom_keys():
    mix = MixBatch(mixkit.FMix(num_classes=NUM_CLASSES), seed=0, input_key="x", label_key="y")
    batch = {"x": TRAIN_X[:8].clone(), "y": TRAIN_Y[:8].clone(), "meta": "kept"}
    mix.on_train_batch_start(_trainer(), None, batch, 0)
    assert batch["y"].shape == (8, NUM_CLASSES) and batch["meta"] == "kept"
    assert not torch.equal(batch["x"], TRAIN_X[:8])
    with pytest.raises(ValueError, match=r"expected a dict with keys 'x' and 'y'.*got keys \['image', 'label'\]"):
        mix.on_train_batch_start(_trainer(), None, {"image": TRAIN_X[:8], "label": TRAIN_Y[:8]}, 0)


def test_keep_labels_passes_the_true_labels_on():
    mix = MixBatch(mixkit.CutMix(num_classes=NUM_CLASSES), seed=0, keep_labels=True)
    batch = _batch()
    index = batch[2]
    mix.on_train_batch_start(_trainer(), None, batch, 0)
    assert len(batch) == 4 and batch[2] is index and torch.equal(batch[3], TRAIN_Y[:8])
    # row i of the mixed batch is sample i: its own label carries the weight lam >= 0.5 or less,
    # but it always has weight in the soft row, which the true label gets too
    assert bool((batch[1].gather(1, batch[3][:, None]) > 0).all())
    d = MixBatch(mixkit.MixUp(num_classes=NUM_CLASSES), seed=0, keep_labels=True)
    batch = {"image": TRAIN_X[:8].clone(), "label": TRAIN_Y[:8].clone()}
    d.on_train_batch_start(_trainer(), None, batch, 0)
    assert torch.equal(batch["label_original"], TRAIN_Y[:8]) and batch["label"].shape == (8, NUM_CLASSES)
    with pytest.raises(ValueError, match=r"^batch: expected no key 'label_original'"):
        d.on_train_batch_start(_trainer(), None, {"image": TRAIN_X[:8], "label": TRAIN_Y[:8],
                                                  "label_original": 0}, 0)
    with pytest.raises(TypeError, match=r"^keep_labels: expected True or False, got 'yes'"):
        MixBatch(mixkit.MixUp(num_classes=NUM_CLASSES), keep_labels="yes")
    assert "keep_labels=True" in repr(d)


@pytest.mark.slow
def test_fit_with_keep_labels_gives_a_training_accuracy():
    """The path the issue found missing: a training accuracy on the mixed inputs against the true
    labels, with torchmetrics' MulticlassAccuracy where it is installed (it refuses soft targets)."""
    try:
        from torchmetrics.classification import MulticlassAccuracy
    except ImportError:
        MulticlassAccuracy = None

    class Accuracy(Recorder):
        def __init__(self):
            super().__init__()
            self.train_acc = []
            self.metric = MulticlassAccuracy(NUM_CLASSES, average="micro") if MulticlassAccuracy else None

        def training_step(self, batch, batch_idx):
            x, soft, index, y = batch
            assert torch.equal(y, TRAIN_Y[index])                  # the true labels of these rows
            logits = self(x)
            self.train_acc.append(float((logits.argmax(1) == y).float().mean()))
            if self.metric is not None:
                self.metric.update(logits, y)
            return mixkit.soft_target_cross_entropy(logits, soft)

    torch.manual_seed(0)
    model = Accuracy()
    make_trainer([MixBatch(mixkit.MixUp(alpha=1.0, num_classes=NUM_CLASSES), seed=0, keep_labels=True)],
                 max_epochs=2).fit(model, train_loader(), val_loader())
    assert len(model.train_acc) == 14 and all(0.0 <= a <= 1.0 for a in model.train_acc)
    assert sum(model.train_acc[-7:]) / 7 > 0.5, model.train_acc          # it learns (chance: 0.25)
    if model.metric is not None:
        assert float(model.metric.compute()) == pytest.approx(sum(model.train_acc) / 14, abs=1e-6)


def test_tuple_batch_is_refused_with_a_hint():
    mix = MixBatch(mixkit.MixUp(num_classes=NUM_CLASSES), seed=0)
    with pytest.raises(TypeError, match=r"expected a list \[inputs, labels, \.\.\.\] or a dict.*got a tuple "
                                        r"of 2; return lists from your collate_fn.*or use dict batches"):
        mix.on_train_batch_start(_trainer(), None, (TRAIN_X[:8], TRAIN_Y[:8]), 0)


@pytest.mark.parametrize("batch, error, match", [
    ([TRAIN_X[:8]], ValueError, r"expected a list \[inputs, labels, \.\.\.\], got a list of 1"),
    (TRAIN_X[:8], TypeError, r"expected a list \[inputs, labels, \.\.\.\] or a dict, got Tensor"),
])
def test_other_batches_are_refused(batch, error, match):
    with pytest.raises(error, match=match):
        MixBatch(mixkit.MixUp(num_classes=NUM_CLASSES)).on_train_batch_start(_trainer(), None, batch, 0)


def test_seed_gives_each_rank_its_own_draws_and_repeats():
    def draws(rank):
        mix = MixBatch(mixkit.MixUp(num_classes=NUM_CLASSES, mode="elem"), seed=7)
        mix.setup(_trainer(rank), None, "fit")
        batch = _batch()
        mix.on_train_batch_start(_trainer(rank), None, batch, 0)
        return batch[1]

    assert torch.equal(draws(0), draws(0)) and torch.equal(draws(1), draws(1))
    assert not torch.equal(draws(0), draws(1))


def test_state_dict_round_trip_without_a_trainer():
    mix = MixBatch(_alternate(), seed=3)
    for i in range(3):
        mix.on_train_batch_start(_trainer(), None, _batch(), i)
    state = mix.state_dict()
    assert state["mixer"] == mix.mixer.state_dict() and state["rank"] == 0 and state["batches"] == 3
    assert torch.tensor(state["generator"], dtype=torch.uint8).shape == mix.generator.get_state().shape

    # Loaded before the rank is known (no setup yet): applied when the rank is learnt.
    fresh = MixBatch(_alternate(), seed=3)
    fresh.load_state_dict(state)
    a, b = _batch(), _batch()
    mix.on_train_batch_start(_trainer(), None, a, 3)
    fresh.on_train_batch_start(_trainer(), None, b, 3)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and fresh.mixer.step == 4

    # Rank 1 given rank 0's state (Lightning saves rank 0's): reseeded, unlike rank 0.
    other = MixBatch(_alternate(), seed=3)
    other.setup(_trainer(1), None, "fit")
    other.load_state_dict(state)
    assert other.generator.get_state().tolist() != state["generator"]
    assert other.mixer.step == 3

    with pytest.raises(ValueError, match=r"expected a MixBatch state with a 'generator' entry, got \['step'\]"):
        fresh.load_state_dict({"step": 1})


def test_without_seed_or_generator_nothing_is_saved_and_global_rng_is_used():
    mix = MixBatch(mixkit.MixUp(num_classes=NUM_CLASSES))
    mix.on_train_batch_start(_trainer(), None, _batch(), 0)
    assert mix.state_dict()["generator"] is None and mix.generator is None


def test_own_generator_is_used_as_given():
    g = torch.Generator().manual_seed(11)
    mix = MixBatch(mixkit.MixUp(num_classes=NUM_CLASSES), generator=g)
    mix.setup(_trainer(3), None, "fit")
    assert mix.generator is g
    assert repr(mix) == "MixBatch(MixUp(num_classes=4), generator=torch.Generator(seed=11))"


# ---------------------------------------------------------------------------------------------
# Argument errors and the missing-Lightning message


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(mixer="mixup"), TypeError, r"mixer: expected a mixkit mixer .*got str"),
    (dict(generator=1), ValueError, r"generator: expected None or a CPU torch.Generator, got int"),
    pytest.param(dict(generator="cuda"), ValueError,
                 r"generator: expected None or a CPU torch.Generator, got one on cuda",
                 marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA generator")),
    (dict(seed=1.5), TypeError, r"seed: expected None or an int, got float"),
    (dict(seed=True), TypeError, r"seed: expected None or an int, got bool"),
    (dict(seed=-1), ValueError, r"seed: expected an int in \[0, 2\*\*63\), got -1"),
    (dict(seed=1, generator=torch.Generator()), ValueError, r"expected at most one of them, got both"),
    (dict(input_key=0), TypeError, r"input_key: expected a non-empty str .*got 0"),
    (dict(label_key=""), TypeError, r"label_key: expected a non-empty str .*got ''"),
    (dict(input_key="x", label_key="x"), ValueError, r"expected two different keys, got 'x' twice"),
])
def test_argument_errors(kwargs, error, match):
    mixer = kwargs.pop("mixer", mixkit.MixUp(num_classes=NUM_CLASSES))
    if kwargs.get("generator") == "cuda":
        kwargs["generator"] = torch.Generator(device="cuda")
    with pytest.raises(error, match=match):
        MixBatch(mixer, **kwargs)


def test_mixer_is_positional_the_rest_keyword_only():
    with pytest.raises(TypeError):
        MixBatch(mixkit.MixUp(num_classes=NUM_CLASSES), None)


def test_missing_lightning_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "lightning", None)
    monkeypatch.setitem(sys.modules, "lightning.pytorch", None)
    monkeypatch.delitem(sys.modules, "mixkit.compat.lightning")
    with pytest.raises(ImportError, match=r"pip install lightning"):
        importlib.import_module("mixkit.compat.lightning")
