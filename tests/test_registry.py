"""The registry is the one list of methods: everything that lists methods derives from it, and a
new mixer registered here (a class defined in this file) is picked up by the harness, the test
grids, the gallery and the bench with no other edit. The README's method table and the API pages
agree with it."""

import pathlib
import re

import grid
import pytest
import torch

import mixkit
from mixkit import registry
from mixkit.base import BoxMixer
from mixkit.functional import sampling
from mixkit.params import MixParams

ROOT = pathlib.Path(__file__).resolve().parents[1]


class CornerMix(BoxMixer):
    """A planted method: the partner's top-left corner box of volume ``1 - lam``, lam ~
    Beta(alpha, alpha) (CutMix with the box anchored at the origin).

    Example:

    ```python
    >>> mixed, soft = CornerMix(num_classes=3)(torch.rand(4, 1, 8, 8), torch.arange(4) % 3)

    ```
    """

    def __init__(self, *, alpha: float = 1.0, num_classes=None, mode: str = "batch", p: float = 1.0,
                 inplace: bool = False, pairing: str = "permutation", label_smoothing: float = 0.0,
                 multilabel: bool = False):
        super().__init__(num_classes=num_classes, p=p, inplace=inplace, label_smoothing=label_smoothing,
                         multilabel=multilabel)
        self.alpha = mixkit.checks.positive("alpha", alpha)
        self.mode = mixkit.checks.mode(mode)
        self.pairing = mixkit.checks.pairing(pairing)

    def _sample(self, inputs, generator):
        b, dev, spatial, count, applied = self._start(inputs, generator)
        lam = sampling.sample_beta(self.alpha, size=count, generator=generator, device=dev)
        share = (1.0 - lam).clamp(0, 1) ** (1.0 / len(spatial))
        hi = torch.stack([(share * n).floor().long() for n in spatial], dim=1)
        boxes = torch.stack([torch.zeros_like(hi), hi], dim=2)
        boxes = self._where_applied(applied[:count], boxes, 0)
        kept = 1.0 - hi.double().prod(dim=1) / float(torch.tensor(spatial).prod())
        kept = self._where_applied(applied[:count], kept.float(), 1.0)
        index = sampling.sample_pairing(b, generator=generator, device=dev, kind=self.pairing)
        return MixParams(lam=kept.expand(b), applied=applied, index=index, boxes=boxes)


PLANTED = registry.Method(
    "cornermix", CornerMix, "CornerMix(alpha): the partner's corner box (a planted test method)",
    build=lambda o, k, m: CornerMix(alpha=o.alpha, num_classes=k, mode=o.mix_mode), baselines=("cutmix",),
    examples={"batch": {}, "elem": {"mode": "elem"}, "elem-inplace": {"mode": "elem", "inplace": True}})


@pytest.fixture
def planted():
    registry.register(PLANTED)
    try:
        yield PLANTED
    finally:
        registry.unregister("cornermix")


def test_a_planted_mixer_joins_the_test_grids(planted, monkeypatch):
    import test_dense
    import test_mixers_contract as contract

    cases = grid.mixers(contract.C)
    assert {"cornermix-batch", "cornermix-elem", "cornermix-elem-inplace"} <= set(cases)
    assert "cornermix-elem-inplace" in grid.select(cases, grid.inplace)
    assert "cornermix" in grid.modes(contract.C) and "cornermix-elem" in grid.modes(contract.C)
    # the contract tests, as their grid now builds them, pass for the new cases
    monkeypatch.setattr(contract, "FACTORIES", cases)
    monkeypatch.setattr(contract, "INPLACE", set(grid.select(cases, grid.inplace)))
    gen = torch.Generator().manual_seed(0)
    for name in ("cornermix-batch", "cornermix-elem", "cornermix-elem-inplace"):
        for shape in contract.SHAPES.values():
            contract.test_shape_labels_and_no_write(name, shape, gen, "cpu")
        contract.test_sample_then_apply_equals_call(name, gen, "cpu")
        contract.test_same_seed_same_output_and_global_rng_untouched(name, gen, "cpu")
        contract.test_pickles(name, "cpu")
    # and the dense-target grid: each mask pixel follows its image pixel
    dense = grid.select(grid.mixers(test_dense.K, masks=True), lambda m: not grid.inplace(m))
    assert "cornermix-elem" in dense
    monkeypatch.setattr(test_dense, "FACTORIES", dense)
    test_dense.test_every_mask_pixel_comes_from_its_image_pixel("cornermix-elem", "2d")


def test_a_planted_mixer_joins_the_harness(planted):
    from mixkit.harness.train import compare
    from mixkit.harness.train.config import TrainConfig, harness_methods, method_overrides
    from mixkit.harness.train.methods import InputMix, build_method

    assert "cornermix" in harness_methods()
    assert method_overrides("cornermix") == {"method": "cornermix"}
    assert ("cornermix", "cutmix") in registry.pairs()
    cfg = TrainConfig(method="cornermix", dataset="digits", epochs=1)
    cfg.validate()
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    method = build_method(cfg, net, 10)
    assert isinstance(method, InputMix) and isinstance(method.mixer, CornerMix)
    loss = method.loss(net, None, torch.rand(8, 1, 8, 8), torch.arange(8), torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and compare.DEFAULT_PAIRS is not None


@pytest.mark.slow
def test_a_planted_mixer_trains_through_the_command_line(planted, tmp_path):
    from mixkit.harness.cli import main

    out = tmp_path / "run"
    assert main(["train", "--dataset", "digits", "--model", "small-cnn", "--method", "cornermix", "--epochs", "1",
                 "--device", "cpu", "--out", str(out)]) == 0
    assert (out / "final.json").is_file()


def test_a_planted_mixer_joins_the_gallery_and_the_bench(planted):
    from mixkit.harness.analysis.gallery import _gallery_mixers
    from mixkit.harness.bench import entries

    assert any(title.startswith("cornermix\n") and isinstance(m, CornerMix) for title, m in _gallery_mixers())
    rows = [(name, mode) for name, impl, mode, _ in entries.mixkit_entries(4) if impl == "mixkit"]
    assert {("cornermix", "batch"), ("cornermix", "elem inplace")} <= set(rows)
    assert not any(name == "cornermix" for name, _ in [(r[0], r[2]) for r in entries.mixkit_entries(2)])


def test_register_refuses_what_it_cannot_take(planted):
    with pytest.raises(ValueError, match=r"method: expected a new name, got 'cornermix'"):
        registry.register(PLANTED)
    with pytest.raises(ValueError, match=r"method: expected a new name, got 'zeta-g2'"):
        registry.register(registry.Method("zeta-g2", CornerMix, "clashes with a variant"))
    with pytest.raises(TypeError, match=r"method: expected a mixkit.registry.Method, got dict"):
        registry.register({"name": "x"})
    with pytest.raises(ValueError, match=r"method: expected one of erm, mixup, .*, got 'nope'"):
        registry.get("nope")
    with pytest.raises(ValueError, match=r"method: expected a method the harness trains .* got 'classmix'"):
        registry.build("classmix", grid.DEFAULTS, 3)


# ---------------------------------------------------------------------------------------------
# what derives from the registry, and what is checked against it


def test_traits_come_from_the_classes():
    x, seg = torch.rand(4, 1, 8, 8), torch.zeros(4, 8, 8, dtype=torch.long)
    for method in registry.methods("input"):
        if not method.examples:
            continue
        mixer = method.cls(num_classes=3, **next(iter(method.examples.values())))
        params = mixer.sample(x, generator=torch.Generator().manual_seed(0), masks=seg)
        assert mixer.pairwise == (params.index is not None), method.name
        if mixer.regional:
            keep = mixer.keep_mask(params, (8, 8))
            torch.testing.assert_close(keep.flatten(1).mean(1).expand(4), params.lam)
        assert (mixer.spatial_dims is None) == (mixer._max_ndim is None), method.name
    for method in registry.methods("model"):
        assert method.cls.needs_model and method.traits["needs_model"]


def test_the_docs_home_page_shows_the_readme_method_table():
    # one table: the site's home page includes the README's (pymdownx.snippets)
    assert '--8<-- "README.md:methods"' in (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.index("[start:methods]") < readme.index("| method | class | paper |") < readme.index("[end:methods]")


@pytest.mark.parametrize("page", ["README.md"])
def test_the_method_tables_list_every_class(page):
    text = (ROOT / page).read_text(encoding="utf-8")
    table = text[text.index("| method | class | paper |"):text.index("\n\n", text.index("| method | class"))]
    listed = set(re.findall(r"`(\w+)`", table))
    for method in registry.methods():
        if method.cls is not None:
            assert method.cls.__name__ in listed, f"{page}'s method table has no row for {method.cls.__name__}"


def test_every_registered_class_is_exported_and_has_an_api_page():
    api = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "docs" / "api").glob("*.md"))
    for method in registry.methods():
        if method.cls is None:
            continue
        assert getattr(mixkit, method.cls.__name__) is method.cls
        assert f"::: mixkit.{method.cls.__name__}\n" in api, f"no API page shows mixkit.{method.cls.__name__}"


def test_the_cli_offers_every_harness_method():
    from mixkit.harness.cli import build_parser

    text = build_parser().format_help() + build_parser()._subparsers._group_actions[0].choices["compare"].format_help()
    for name in registry.names(harness=True):
        assert name in text
