"""The examples in the public docstrings run and print what they say, and the README's Quickstart
runs as written."""

import doctest
import importlib
import math
import pkgutil
import re
import sys
import types
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

import mixkit
import mixkit.harness.models

README = Path(__file__).resolve().parents[1] / "README.md"



def _library_modules():
    """Every module of the library (not the harness), found by walking the package."""
    for info in pkgutil.walk_packages(mixkit.__path__, "mixkit."):
        if not info.name.startswith("mixkit.harness") and info.name != "mixkit.__main__":
            yield importlib.import_module(info.name)


# Modules whose docstrings hold examples: every library module that has a ">>>" in a docstring
# of its own, and the harness's model zoo.
MODULES_WITH_EXAMPLES = [m for m in _library_modules()
                         if doctest.DocTestFinder().find(m) and any(t.examples for t in doctest.DocTestFinder().find(m))]
MODULES_WITH_EXAMPLES.append(mixkit.harness.models)


def test_examples_are_found_in_every_method_module():
    with_examples = {m.__name__ for m in MODULES_WITH_EXAMPLES}
    for method in mixkit.registry.methods():
        if method.cls is not None:
            assert method.cls.__module__ in with_examples, f"{method.cls.__module__} has no runnable example"


@pytest.mark.parametrize("module", MODULES_WITH_EXAMPLES, ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{module.__name__}: no docstring example was run"
    assert result.failed == 0


def test_every_public_class_has_an_example():
    classes = [getattr(mixkit, n) for n in mixkit.__all__ if isinstance(getattr(mixkit, n), type)]
    classes = [c for c in classes if not c.__name__.startswith(("Soft", "Mix", "Composed"))
               or c.__name__ in ("MixUp", "MixingCollate")]
    for cls in classes:
        assert ">>>" in (cls.__doc__ or ""), f"{cls.__name__} has no runnable example"


# ---------------------------------------------------------------------------------------------
# README Quickstart


def _quickstart_blocks() -> list[str]:
    """The ```python blocks of README.md from "## Quickstart" up to the harness section."""
    text = README.read_text(encoding="utf-8")
    start = text.index("## Quickstart")
    end = text.index("## Training and comparing (the harness)", start)
    return re.findall(r"^```python\n(.*?)^```", text[start:end], flags=re.S | re.M)


class _TinyResNetLike(nn.Module):
    """The parts of a torchvision ResNet the README names: ``avgpool`` (penultimate) and ``fc``."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.layer1 = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.layer2 = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x):
        x = self.layer2(self.layer1(torch.relu(self.bn1(self.conv1(x)))))
        return self.fc(self.avgpool(x).flatten(1))


class _LabelledImages(Dataset):
    """A small torchvision-style dataset: ``(image, label)`` items and a ``targets`` list."""

    def __init__(self, n=128, shape=(3, 8, 8), num_classes=10, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.data = torch.rand(n, *shape, generator=g)
        self.targets = (torch.arange(n) % num_classes).tolist()

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return self.data[i], self.targets[i]


def _quickstart_namespace():
    g = torch.Generator().manual_seed(0)
    model = _TinyResNetLike()
    batches = [(torch.rand(8, 3, 32, 32, generator=g), torch.randint(0, 10, (8,), generator=g))
               for _ in range(2)]
    return {
        "__name__": "readme_quickstart",
        "model": model,
        "loader": batches,                                   # yields (images, labels), 10 classes
        "optimizer": torch.optim.SGD(model.parameters(), lr=0.1),
        "train_set": _LabelledImages(),
        "train_transform": lambda x: x.flip(-1),
        "plain_transform": lambda x: x,
        "images": batches[0][0],
        "labels": batches[0][1],
    }


@pytest.mark.filterwarnings("ignore:This DataLoader will create 4 worker processes")
def test_readme_quickstart_runs(monkeypatch):
    blocks = _quickstart_blocks()
    assert len(blocks) == 6, "the Quickstart's Python blocks changed: update this test's stand-ins"
    try:
        import torchvision.models  # noqa: F401  (the README builds a torchvision resnet18)
    except ImportError:  # without torchvision: a stand-in module with the same layer names
        fake = types.ModuleType("torchvision.models")
        fake.resnet18 = _TinyResNetLike
        monkeypatch.setitem(sys.modules, "torchvision", types.ModuleType("torchvision"))
        monkeypatch.setitem(sys.modules, "torchvision.models", fake)

    ns = _quickstart_namespace()
    first_model = ns["model"]
    before = [p.detach().clone() for p in first_model.parameters()]

    # 1. the training loop: mixes every batch, steps the optimizer
    exec(compile(blocks[0], "README.md (Quickstart, block 1)", "exec"), ns)
    assert ns["soft"].shape == (8, 10) and ns["soft"].dtype == torch.float32
    torch.testing.assert_close(ns["soft"].sum(1), torch.ones(8))
    assert ns["images"].shape == (8, 3, 32, 32)
    assert torch.isfinite(ns["loss"])
    assert any(not torch.equal(a, b) for a, b in zip(before, first_model.parameters(), strict=True))

    # 2. mixing in DataLoader workers: the loader is built (not iterated: no worker processes here);
    # its collate mixes a list of samples into (mixed images, soft labels)
    exec(compile(blocks[1], "README.md (Quickstart, block 2)", "exec"), ns)
    loader = ns["loader"]
    assert isinstance(loader, DataLoader) and loader.collate_fn is ns["collate"]
    assert loader.batch_size == 128 and loader.num_workers == 4
    mixed, soft = ns["collate"]([ns["train_set"][i] for i in range(8)])
    assert mixed.shape == (8, 3, 8, 8) and soft.shape == (8, 10)
    torch.testing.assert_close(soft.sum(1), torch.ones(8))

    # 3. parameters drawn, then applied
    exec(compile(blocks[2], "README.md (Quickstart, block 3)", "exec"), ns)
    params, images, labels = ns["params"], ns["images"], ns["labels"]
    assert params.weights.shape == (8, 8)                 # zeta-mixup's mixing matrix
    assert ns["mixed"].shape == images.shape
    assert torch.equal(ns["soft"], ns["mixer"].apply(images, labels, params)[1])

    # 4. Manifold Mixup and SynerMix on a resnet18
    exec(compile(blocks[3], "README.md (Quickstart, block 4)", "exec"), ns)
    assert ns["model"] is not first_model
    assert ns["mm"].last_layer in ("", "layer1", "layer2")
    assert ns["sampler"].batch_size == 128
    loss = ns["loss"]
    assert loss.ndim == 0 and torch.isfinite(loss)
    terms = ns["syner"].last_terms
    assert all(math.isfinite(v) for v in terms.values())
    assert loss.item() == pytest.approx(0.1 * terms["intra"] + 0.9 * terms["inter"], rel=1e-5)

    # 5. torchvision v2: a RandomChoice of mixkit mixers as the loader's collate
    pytest.importorskip("torchvision")
    exec(compile(blocks[4], "README.md (Quickstart, block 5)", "exec"), ns)
    mixed, soft = next(iter(ns["loader"]))
    assert mixed.shape == (128, 3, 8, 8) and soft.shape == (128, 10)
    assert bool(((soft != 0).sum(1) == 2).all())           # pairing="roll": every row mixes two

    # 6. the timm drop-in, with an extra FMix in the switch
    ns["samples"], ns["targets"] = torch.rand(8, 3, 32, 32), torch.arange(8)
    exec(compile(blocks[5], "README.md (Quickstart, block 6)", "exec"), ns)
    assert ns["samples"].shape == (8, 3, 32, 32) and ns["targets"].shape == (8, 1000)
    torch.testing.assert_close(ns["targets"].sum(1), torch.ones(8))
