"""Dict batches: mixers, combinations and MixingCollate take ``{"image": ..., "labels": ...}``
and give back the same keys, images mixed and labels as soft rows; the transformers collator."""

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import mixkit
from mixkit.compat.hf import MixingDataCollator

C = 4


def _seed(s=0):
    return torch.Generator().manual_seed(s)


def _batch(b=6):
    g = _seed(123)
    return torch.rand(b, 3, 16, 16, generator=g), torch.randint(0, C, (b,), generator=g)


MIXERS = [  # method-list: ok (the dict path is checked against the tuple path for several mixers)
    lambda: mixkit.MixUp(alpha=1.0, num_classes=C),
    lambda: mixkit.CutMix(alpha=1.0, num_classes=C, mode="elem"),
    lambda: mixkit.FMix(alpha=1.0, num_classes=C),
    lambda: mixkit.ZetaMixup(gamma=2.8, num_classes=C),
    lambda: mixkit.Compose([mixkit.CutMix(), mixkit.ZetaMixup(gamma=2.8)], num_classes=C),
    lambda: mixkit.RandomChoice([mixkit.MixUp(), mixkit.CutMix()], num_classes=C),
]


@pytest.mark.parametrize("make", MIXERS)
@pytest.mark.parametrize("keys", [("image", "label"), ("pixel_values", "labels"), ("images", "Labels")])
def test_dict_in_dict_out_equals_the_tuple_path(make, keys):
    x, y = _batch()
    image_key, labels_key = keys
    ids = ["a", "b", "c", "d", "e", "f"]
    out = make()({image_key: x, labels_key: y, "id": ids, "index": torch.arange(6)}, generator=_seed())
    mixed, soft = make()(x, y, generator=_seed())
    assert list(out) == [image_key, labels_key, "id", "index"]
    assert torch.equal(out[image_key], mixed) and torch.equal(out[labels_key], soft)
    assert out["id"] is ids and torch.equal(out["index"], torch.arange(6))  # passed through


def test_the_input_dict_is_left_as_it_came():
    x, y = _batch()
    batch = {"image": x, "label": y}
    out = mixkit.MixUp(num_classes=C)(batch, generator=_seed())
    assert batch["image"] is x and batch["label"] is y and out is not batch


def test_a_callable_labels_getter():
    x, y = _batch()
    batch = {"pixel_values": x, "target": y, "labels_text": ["cat"] * 6}
    out = mixkit.CutMix(num_classes=C)(batch, generator=_seed(), labels_getter=lambda b: b["target"])
    mixed, soft = mixkit.CutMix(num_classes=C)(x, y, generator=_seed())
    assert torch.equal(out["pixel_values"], mixed) and torch.equal(out["target"], soft)
    assert out["labels_text"] == ["cat"] * 6
    with pytest.raises(ValueError, match="labels_getter: expected it to return one of the batch's values"):
        mixkit.CutMix(num_classes=C)(batch, labels_getter=lambda b: b["target"].clone())
    with pytest.raises(ValueError, match="labels_getter: expected 'default' or a callable"):
        mixkit.CutMix(num_classes=C)(batch, labels_getter="labels")


def test_a_dict_without_image_or_labels_keys_is_refused():
    x, y = _batch()
    expected = (r"batch: expected a dict with an image key \('image', 'images', 'pixel_values'\) and a "
                r"labels key \('labels', 'label'\) for MixUp, got keys \['x', 'y'\]")
    with pytest.raises(ValueError, match=expected):
        mixkit.MixUp(num_classes=C)({"x": x, "y": y})
    with pytest.raises(ValueError, match=r"got keys \['image'\]"):
        mixkit.MixUp(num_classes=C)({"image": x})
    with pytest.raises(ValueError, match=r"for MixingCollate, got keys \['x', 'y'\]"):
        mixkit.MixingCollate(mixkit.MixUp(num_classes=C))([{"x": x[0], "y": 1}, {"x": x[1], "y": 2}])


class DictSamples(Dataset):
    """``{"image": (3, 8, 8), "label": int, "name": str}`` samples."""

    def __len__(self):
        return 16

    def __getitem__(self, i):
        return {"image": torch.full((3, 8, 8), float(i)), "label": i % C, "name": f"s{i}"}


@pytest.mark.parametrize("workers", [0, 2])
def test_mixing_collate_with_dict_samples(workers):
    collate = mixkit.MixingCollate(mixkit.MixUp(alpha=1.0, num_classes=C), generator=_seed())
    loader = DataLoader(DictSamples(), batch_size=8, num_workers=workers, collate_fn=collate)
    batches = list(loader)
    assert len(batches) == 2
    for k, batch in enumerate(batches):
        assert list(batch) == ["image", "label", "name"]
        assert batch["image"].shape == (8, 3, 8, 8) and batch["label"].shape == (8, C)
        assert batch["label"].dtype == torch.float32
        torch.testing.assert_close(batch["label"].sum(1), torch.ones(8))
        assert batch["name"] == [f"s{i}" for i in range(8 * k, 8 * k + 8)]
    if workers == 0:  # in the main process the collate draws from its own generator: replayable
        samples = [DictSamples()[i] for i in range(8)]
        x = torch.stack([s["image"] for s in samples])
        y = torch.tensor([s["label"] for s in samples])
        mixed, soft = mixkit.MixUp(alpha=1.0, num_classes=C)(x, y, generator=_seed())
        assert torch.equal(batches[0]["image"], mixed) and torch.equal(batches[0]["label"], soft)


def test_mixing_collate_with_pixel_values_and_a_labels_getter():
    samples = [{"pixel_values": torch.rand(3, 8, 8), "cls": i % C} for i in range(4)]
    collate = mixkit.MixingCollate(mixkit.CutMix(num_classes=C), labels_getter=lambda b: b["cls"])
    out = collate(samples)
    assert out["pixel_values"].shape == (4, 3, 8, 8) and out["cls"].shape == (4, C)


def test_the_hf_collator_stacks_features_and_renames_label():
    collator = MixingDataCollator(mixkit.CutMix(num_classes=C), generator=_seed())
    features = [{"pixel_values": torch.rand(3, 16, 16), "label": i % C} for i in range(6)]
    batch = collator(features)
    assert list(batch) == ["pixel_values", "labels"]
    assert batch["pixel_values"].shape == (6, 3, 16, 16) and batch["labels"].shape == (6, C)
    with pytest.raises(TypeError, match="features: expected a non-empty list of feature dicts"):
        collator([])


class PixelSamples(Dataset):
    """``{"pixel_values": (3, 16, 16), "labels": int}``: what an image processor's dataset yields."""

    def __init__(self, n=24):
        g = _seed(7)
        self.x, self.y = torch.rand(n, 3, 16, 16, generator=g), torch.randint(0, C, (n,), generator=g)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"pixel_values": self.x[i], "labels": int(self.y[i])}


def test_hf_trainer_with_the_mixing_collator(tmp_path):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    from transformers import (
        Trainer,
        TrainingArguments,
        ViTConfig,
        ViTForImageClassification,
        default_data_collator,
    )

    class SoftTargetTrainer(Trainer):  # as docs/integrations.md shows it
        loss_is_scaled_for_ga = False  # a per-batch mean: the Trainer divides it for accumulation

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs.pop("labels")  # soft rows (training) or class ids (evaluation)
            outputs = model(**inputs)
            loss = mixkit.soft_target_cross_entropy(outputs.logits, labels)
            return (loss, outputs) if return_outputs else loss

        def get_eval_dataloader(self, eval_dataset=None):
            mixing, self.data_collator = self.data_collator, default_data_collator  # unmixed
            try:
                return super().get_eval_dataloader(eval_dataset)
            finally:
                self.data_collator = mixing

    transformers.set_seed(0)
    model = ViTForImageClassification(ViTConfig(image_size=16, patch_size=8, hidden_size=32,
                                                num_hidden_layers=1, num_attention_heads=2,
                                                intermediate_size=37, num_labels=C))
    before = [p.detach().clone() for p in model.parameters()]
    collator = MixingDataCollator(mixkit.CutMix(alpha=1.0, num_classes=C),
                                  generator=torch.Generator().manual_seed(0))
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=3, per_device_train_batch_size=8,
                             learning_rate=1e-2, report_to="none", save_strategy="no", use_cpu=True,
                             logging_steps=1, dataloader_num_workers=0)
    trainer = SoftTargetTrainer(model=model, args=args, train_dataset=PixelSamples(),
                                eval_dataset=PixelSamples(8), data_collator=collator)
    result = trainer.train()
    assert result.global_step == 3
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, model.parameters(), strict=True))
    seen = []
    original = SoftTargetTrainer.compute_loss

    def spy(self, model, inputs, **kw):
        seen.append(inputs["labels"])
        return original(self, model, inputs, **kw)

    SoftTargetTrainer.compute_loss = spy
    metrics = trainer.evaluate()  # evaluation batches come unmixed, with their class ids
    assert torch.isfinite(torch.tensor(metrics["eval_loss"]))
    assert seen and all(not t.is_floating_point() and t.ndim == 1 for t in seen)
    # a batch from the collator is what the model is trained on: soft rows
    batch = collator([PixelSamples()[i] for i in range(8)])
    assert batch["labels"].shape == (8, C) and batch["labels"].is_floating_point()


def test_tv_images_geometry_and_masks_in_a_dict():
    tv = pytest.importorskip("torchvision.tv_tensors")
    x, y = _batch()
    out = mixkit.MixUp(num_classes=C)({"img": tv.Image(x), "label": y}, generator=_seed())
    assert isinstance(out["img"], tv.Image)  # the one Image among the values is the images
    boxes = tv.BoundingBoxes(torch.zeros(6, 4), format="XYXY", canvas_size=(16, 16))
    with pytest.raises(ValueError, match="BoundingBoxes under the passed-through key 'boxes'"):
        mixkit.MixUp(num_classes=C)({"image": x, "label": y, "boxes": boxes})
    seg = torch.randint(0, C, (6, 16, 16))
    out = mixkit.CutMix(num_classes=C)({"image": x, "label": y}, generator=_seed(), masks=seg)
    mixed, soft, mixed_seg = mixkit.CutMix(num_classes=C)(x, y, generator=_seed(), masks=seg)
    assert list(out) == ["image", "label", "masks"] and torch.equal(out["masks"], mixed_seg)
