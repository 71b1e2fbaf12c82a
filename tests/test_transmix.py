"""TransMix: the fast path (hooked, recomputed class-token row, batched lam) against a slow
reference (the layer's own softmax weights captured from a non-fused run, a Python loop over
samples and patch cells for lam), on timm and torchvision ViTs."""

import copy
import gc
import math

import pytest
import torch
from torch import nn

import mixkit
from mixkit.transmix import TransMix

timm = pytest.importorskip("timm")
tv_models = pytest.importorskip("torchvision.models")

C = 10


def _timm_vit(**kw):
    from timm.models.vision_transformer import VisionTransformer
    torch.manual_seed(0)
    args = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=C)
    args.update(kw)
    return VisionTransformer(**args).train()


def _tv_vit():
    torch.manual_seed(0)
    model = tv_models.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
                                        hidden_dim=32, mlp_dim=64, num_classes=C)
    nn.init.normal_(model.heads.head.weight, std=0.1)  # torchvision zero-inits the head
    return model.train()


def _batch(b=6, h=32, w=32, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, h, w, generator=g), torch.randint(0, C, (b,), generator=g)


# -- the slow reference --------------------------------------------------------------------------


def _timm_reference_rows(model, layer, mixed):
    """The layer's own softmax weights, from a copy running the non-fused path: (B, H, N, N)."""
    ref = copy.deepcopy(model)
    for mod in ref.modules():
        if hasattr(mod, "fused_attn"):
            mod.fused_attn = False
    seen = {}
    attn = dict(ref.named_modules())[layer]
    handle = attn.attn_drop.register_forward_hook(lambda m, a, o: seen.setdefault("w", a[0].detach()))
    with torch.no_grad():
        ref(mixed)
    handle.remove()
    return seen["w"]


def _tv_reference_rows(model, layer, mixed):
    """torch's own MultiheadAttention weights (need_weights=True, per head): (B, H, N, N)."""
    seen = {}
    mha = dict(model.named_modules())[layer]

    def grab(mod, args, kwargs, out):
        q = args[0]
        _, w = nn.MultiheadAttention.forward(mod, q, q, q, need_weights=True, average_attn_weights=False)
        seen["w"] = w.detach()

    handle = mha.register_forward_hook(grab, with_kwargs=True)
    with torch.no_grad():
        model(mixed)
    handle.remove()
    return seen["w"]


def _pixel_keep(params, i, h, w):
    """Sample i's pixel keep mask, written box by box / copied from the mask (no batching)."""
    if params.boxes is not None:
        box = params.boxes[i if params.boxes.shape[0] > 1 else 0]
        keep = torch.ones(h, w)
        (y0, y1), (x0, x1) = box.tolist()
        keep[y0:y1, x0:x1] = 0.0
        return keep
    return params.mask[i if params.mask.shape[0] > 1 else 0].float()


def _reference(weights, params, prefix, grid, hw, soft, area_weight):
    """Per-sample loop: lam_attn = attention on own cells / attention on all patch cells, cells
    kept by the nearest pixel (index floor(r * H / gh)); then the mixed targets."""
    b = weights.shape[0]
    gh, gw = grid
    h, w = hw
    lam_attn = torch.zeros(b, dtype=torch.float64)
    for i in range(b):
        row = weights[i, :, 0, :].double().mean(0)          # head average of the class token's row
        keep = _pixel_keep(params, i, h, w)
        own = total = 0.0
        for r in range(gh):
            for c in range(gw):
                a = float(row[prefix + r * gw + c])
                own += a * float(keep[math.floor(r * h / gh), math.floor(c * w / gw)])
                total += a
        lam_attn[i] = own / total
    lam = area_weight * params.lam.double() + (1 - area_weight) * lam_attn
    target = lam[:, None] * soft.double() + (1 - lam[:, None]) * soft.double()[params.index]
    return lam_attn, target


MIXERS = {
    "cutmix-batch": lambda: mixkit.CutMix(alpha=1.0, num_classes=C),
    "cutmix-elem": lambda: mixkit.CutMix(alpha=1.0, num_classes=C, mode="elem"),
    "fmix-batch": lambda: mixkit.FMix(alpha=1.0, num_classes=C),
    "fmix-elem": lambda: mixkit.FMix(alpha=1.0, num_classes=C, mode="elem"),
    "fmix-soft-elem": lambda: mixkit.FMix(alpha=1.0, num_classes=C, mode="elem", max_soft=0.2),
    "resizemix-elem": lambda: mixkit.ResizeMix(num_classes=C, mode="elem"),
}


def _check_against_reference(model, layer, mixer, x, y, prefix, grid, rows_fn, area_weight=0.5, seed=3):
    tm = TransMix(model, layer, mixer=mixer, area_weight=area_weight)
    logits, soft = tm(x, y, generator=torch.Generator().manual_seed(seed))
    params = mixer.sample(x, generator=torch.Generator().manual_seed(seed))   # the same draws
    mixed, area_soft = mixer.apply(x, y, params)
    with torch.no_grad():
        expected_logits = model(mixed)
    weights = rows_fn(model, layer, mixed)
    lam_attn, target = _reference(weights, params, prefix, grid, tuple(x.shape[-2:]),
                                  mixer.targets(x, y), area_weight)
    torch.testing.assert_close(logits.detach(), expected_logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(tm.last_lam_attn.double(), lam_attn, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(soft.double(), target, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(soft.sum(1), torch.ones(x.shape[0]))
    return tm, params, lam_attn, area_soft, soft


@pytest.mark.parametrize("kind", list(MIXERS))
def test_timm_vit_matches_reference(kind):
    # qk_norm, two register tokens and a 4 x 6 grid: the prefix, norms and grid orientation count
    model = _timm_vit(img_size=(32, 48), reg_tokens=2, qk_norm=True)
    assert model.blocks[1].attn.fused_attn  # the fast path runs on fused attention
    x, y = _batch(h=32, w=48)
    _, params, lam_attn, _, _ = _check_against_reference(
        model, "blocks.1.attn", MIXERS[kind](), x, y, prefix=3, grid=(4, 6), rows_fn=_timm_reference_rows)
    mixed_rows = (params.lam < 1) & (params.lam > 0)
    assert mixed_rows.any()
    assert not torch.allclose(lam_attn[mixed_rows].float(), params.lam[mixed_rows], atol=1e-3)


def test_timm_vit_tiny_by_name_matches_reference():
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8,
                              num_classes=C).train()
    x, y = _batch(b=4)
    _check_against_reference(model, "blocks.11.attn", MIXERS["cutmix-elem"](), x, y, prefix=1, grid=(4, 4),
                             rows_fn=_timm_reference_rows)


@pytest.mark.parametrize("kind", ["cutmix-batch", "fmix-elem", "resizemix-elem"])
def test_torchvision_vit_matches_reference(kind):
    model = _tv_vit()
    _check_against_reference(model, "encoder.layers.encoder_layer_1.self_attention", MIXERS[kind](),
                             *_batch(), prefix=1, grid=(4, 4), rows_fn=_tv_reference_rows)


def test_area_weight_ends():
    model = _tv_vit()
    layer = "encoder.layers.encoder_layer_1.self_attention"
    x, y = _batch()
    # area_weight=1: exactly the mixer's own (area) targets
    _, _, _, area_soft, soft = _check_against_reference(model, layer, MIXERS["cutmix-elem"](), x, y, 1, (4, 4),
                                                        _tv_reference_rows, area_weight=1.0)
    torch.testing.assert_close(soft, area_soft)
    # area_weight=0 (the paper's formula): the own label's weight is lam_attn itself
    tm, params, lam_attn, _, soft = _check_against_reference(model, layer, MIXERS["cutmix-elem"](), x, y, 1,
                                                             (4, 4), _tv_reference_rows, area_weight=0.0)
    torch.testing.assert_close(tm.last_lam, tm.last_lam_attn)
    partner_is_other = y[params.index] != y
    rows = torch.arange(len(y))[partner_is_other]
    torch.testing.assert_close(soft[rows, y[rows]].double(), lam_attn[rows], rtol=1e-5, atol=1e-6)


def test_unmixed_samples_keep_their_label():
    model = _timm_vit()
    tm = TransMix(model, "blocks.1.attn", mixer=mixkit.CutMix(alpha=1.0, num_classes=C, p=0.0))
    x, y = _batch()
    _, soft = tm(x, y, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(tm.last_lam_attn, torch.ones(6))
    torch.testing.assert_close(soft, torch.nn.functional.one_hot(y, C).float())


def test_label_smoothing_and_generator_replay():
    model = _timm_vit()
    tm = TransMix(model, "blocks.1.attn", mixer=mixkit.CutMix(alpha=1.0, num_classes=C, label_smoothing=0.1))
    x, y = _batch()
    a = tm(x, y, generator=torch.Generator().manual_seed(5))[1]
    b = tm(x, y, generator=torch.Generator().manual_seed(5))[1]
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a.sum(1), torch.ones(6))
    assert float(a.min()) >= 0.1 / C - 1e-6      # smoothed before mixing: no class below eps / C


@pytest.mark.parametrize("which", ["timm", "torchvision"])
def test_gradients_reach_every_parameter_and_labels_carry_none(which):
    if which == "timm":
        model, layer = _timm_vit(reg_tokens=1, qk_norm=True), "blocks.1.attn"
    else:
        model, layer = _tv_vit(), "encoder.layers.encoder_layer_1.self_attention"
    tm = TransMix(model, layer, num_classes=C)
    x, y = _batch()
    logits, soft = tm(x, y, generator=torch.Generator().manual_seed(0))
    assert not soft.requires_grad          # the attention weight is detached, as officially
    mixkit.soft_target_cross_entropy(logits, soft).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, name


def test_mixup_batches_pass_through_with_area_targets():
    model = _tv_vit()
    layer = "encoder.layers.encoder_layer_1.self_attention"
    x, y = _batch()
    mixup = mixkit.MixUp(alpha=0.8, num_classes=C)
    only_mixup = mixkit.RandomChoice([mixup, mixkit.CutMix(alpha=1.0)], p=[1.0, 0.0], num_classes=C)
    tm = TransMix(model, layer, mixer=only_mixup)
    logits, soft = tm(x, y, generator=torch.Generator().manual_seed(2))
    params = only_mixup.sample(x, generator=torch.Generator().manual_seed(2))
    mixed, area = only_mixup.apply(x, y, params)
    torch.testing.assert_close(soft, area)
    torch.testing.assert_close(logits.detach(), model(mixed).detach())
    assert tm.last_lam_attn is None
    # Alternate: MixUp first (area targets), then CutMix (re-weighted)
    alt = mixkit.Alternate([mixkit.MixUp(alpha=0.8), mixkit.CutMix(alpha=1.0)], num_classes=C)
    tm = TransMix(model, layer, mixer=alt, area_weight=0.0)
    tm(x, y, generator=torch.Generator().manual_seed(0))
    assert tm.last_lam is None
    tm(x, y, generator=torch.Generator().manual_seed(0))
    assert tm.last_lam is not None and tm.last_lam.shape == (6,)


def test_eval_mode_is_a_plain_forward_with_one_hot_targets():
    model = _timm_vit()
    tm = TransMix(model, "blocks.1.attn", num_classes=C)
    x, y = _batch()
    model.eval()
    logits, soft = tm(x, y, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(logits, model(x))
    torch.testing.assert_close(soft, torch.nn.functional.one_hot(y, C).float())
    assert tm.last_lam is None


def test_hooks_idle_outside_and_removed():
    model = _timm_vit()
    attn = model.blocks[1].attn
    x, y = _batch()
    before = model(x).detach()
    tm = TransMix(model, "blocks.1.attn", num_classes=C)
    assert len(attn._forward_hooks) == 1
    tm(x, y)
    torch.testing.assert_close(model(x).detach(), before)      # idle: plain forwards unchanged
    tm.taps.remove()
    assert len(attn._forward_hooks) == 0
    with pytest.raises(RuntimeError, match="removed"):
        tm(x, y)
    tm = TransMix(model, "blocks.1.attn", num_classes=C)
    assert len(attn._forward_hooks) == 1
    del tm
    gc.collect()
    assert len(attn._forward_hooks) == 0


def test_errors():
    model = _timm_vit()
    with pytest.raises(ValueError, match=r"layer: expected the name of a submodule.*got 'blocks.9.attn'"):
        TransMix(model, "blocks.9.attn", num_classes=C)
    with pytest.raises(ValueError, match=r"layer 'blocks.1.mlp': expected an attention module \(timm Attention "
                                         r"or torch.nn.MultiheadAttention\), got Mlp"):
        TransMix(model, "blocks.1.mlp", num_classes=C)
    with pytest.raises(ValueError, match="mixer: expected a mask mixer.*got MixUp"):
        TransMix(model, "blocks.1.attn", mixer=mixkit.MixUp(num_classes=C))
    with pytest.raises(ValueError, match="mixer: expected a mask mixer.*got ZetaMixup"):
        TransMix(model, "blocks.1.attn", mixer=mixkit.ZetaMixup(num_classes=C))
    with pytest.raises(ValueError, match=r"mixer.mixers\[1\]: expected a mask mixer.*got ZetaMixup"):
        TransMix(model, "blocks.1.attn",
                 mixer=mixkit.RandomChoice([mixkit.CutMix(), mixkit.ZetaMixup()], num_classes=C))
    with pytest.raises(ValueError, match="got Compose"):
        TransMix(model, "blocks.1.attn", mixer=mixkit.Compose([mixkit.CutMix(), mixkit.FMix()], num_classes=C))
    with pytest.raises(ValueError, match="reformulate=True"):
        TransMix(model, "blocks.1.attn", mixer=mixkit.FMix(reformulate=True, num_classes=C))
    with pytest.raises(TypeError, match="mixer: expected a mixer with sample"):
        TransMix(model, "blocks.1.attn", mixer=object())
    with pytest.raises(ValueError, match=r"num_classes: expected the mixer's num_classes \(10\), got 5"):
        TransMix(model, "blocks.1.attn", mixer=mixkit.CutMix(num_classes=C), num_classes=5)
    with pytest.raises(ValueError, match="area_weight: expected a number in"):
        TransMix(model, "blocks.1.attn", num_classes=C, area_weight=1.5)
    with pytest.raises(ValueError, match="prefix_tokens: expected an integer >= 1"):
        TransMix(model, "blocks.1.attn", num_classes=C, prefix_tokens=0)
    with pytest.raises(ValueError, match="class token"):
        TransMix(_timm_vit(class_token=False, global_pool="avg"), "blocks.1.attn", num_classes=C)
    tm = TransMix(model, "blocks.1.attn", num_classes=C)
    with pytest.raises(ValueError, match=r"inputs: expected images \(B, C, H, W\)"):
        tm(torch.rand(2, 3, 32), torch.tensor([0, 1]))


def test_token_count_not_a_grid_is_an_error():
    tm = TransMix(_tv_vit(), "encoder.layers.encoder_layer_1.self_attention", num_classes=C, prefix_tokens=2)
    with pytest.raises(ValueError, match=r"expected 2 prefix token\(s\) then a grid of patches for 32x32 "
                                         r"inputs, got 17 tokens"):
        tm(*_batch())


class _Twice(nn.Module):
    def __init__(self):
        super().__init__()
        self.vit = _tv_vit()
        self.spare = nn.MultiheadAttention(32, 2, batch_first=True)

    def forward(self, x):
        return self.vit(x) + self.vit(x.flip(-1))


def test_layer_not_run_or_run_twice_is_an_error():
    model = _Twice()
    x, y = _batch()
    tm = TransMix(model, "spare", num_classes=C, prefix_tokens=1)
    with pytest.raises(ValueError, match="expected layer 'spare' to run during the forward, got no call"):
        tm(x, y)
    tm = TransMix(model, "vit.encoder.layers.encoder_layer_1.self_attention", num_classes=C, prefix_tokens=1)
    with pytest.raises(ValueError, match="to run once per forward, got a second call"):
        tm(x, y)
    assert model.vit(x).shape == (6, C)   # still usable; the hook is idle again


def test_masked_attention_calls_are_refused():
    class Masked(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
            self.class_token = nn.Parameter(torch.zeros(1, 1, 8))

        def forward(self, x):
            tokens = torch.cat([self.class_token.expand(x.shape[0], -1, -1),
                                x.flatten(2).transpose(1, 2).repeat(1, 1, 8)[..., :8]], dim=1)
            mask = torch.zeros(tokens.shape[1], tokens.shape[1], dtype=torch.bool)
            return self.attn(tokens, tokens, tokens, attn_mask=mask)[0][:, 0, :C]

    tm = TransMix(Masked(), "attn", num_classes=8)
    x = torch.rand(2, 1, 4, 4)
    with pytest.raises(ValueError, match="expected an attention layer called without attn_mask"):
        tm(x, torch.tensor([0, 1]))


def test_compile_and_ddp_style_wrappers_resolve_plain_names():
    model = _timm_vit()
    compiled = torch.compile(model, backend="eager")
    tm = TransMix(compiled, "blocks.1.attn", num_classes=C)
    assert tm.taps.name == "blocks.1.attn" and len(model.blocks[1].attn._forward_hooks) == 1


@pytest.mark.slow
def test_compiled_model_matches_eager():
    torch._dynamo.reset()
    model = _timm_vit(qk_norm=True)
    eager = TransMix(model, "blocks.1.attn", num_classes=C)
    x, y = _batch()
    want_logits, want_soft = eager(x, y, generator=torch.Generator().manual_seed(4))
    eager.taps.remove()
    compiled = torch.compile(model, backend="aot_eager")
    tm = TransMix(compiled, "blocks.1.attn", num_classes=C)
    from torch._dynamo.utils import counters
    counters.clear()
    for _ in range(3):
        logits, soft = tm(x, y, generator=torch.Generator().manual_seed(4))
        torch.testing.assert_close(logits, want_logits, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(soft, want_soft, rtol=1e-4, atol=1e-5)
    tm.loss(x, y).backward()
    assert model.blocks[0].attn.qkv.weight.grad is not None
    # one graph for the armed forward, no graph break at the hook, none compiled again
    assert counters["frames"]["total"] == 1 and not counters["graph_break"]
    torch._dynamo.reset()


# --- the harness: a trained small ViT's picture ---------------------------------------------------


@pytest.mark.slow
def test_gallery_transmix_picture_from_a_trained_small_vit(tmp_path):
    """A one-epoch small-vit run on written Fashion-MNIST files: plot_transmix draws its
    attention over CutMix boxes; a run of another model, and a folder without a run, are refused
    with what was expected."""
    import numpy as np
    from test_datasets import make_fashion_dir

    from mixkit.harness.analysis.gallery import plot_transmix
    from mixkit.harness.cli import main

    arrays = make_fashion_dir(tmp_path / "fm", n_train=80, n_test=40)
    common = ["train", "--dataset", "fashion-mnist", "--data-dir", str(tmp_path / "fm"), "--epochs", "1",
              "--batch-size", "16", "--threads", "1"]
    vit, cnn = str(tmp_path / "vit"), str(tmp_path / "cnn")
    assert main([*common, "--model", "small-vit", "--method", "transmix", "--out", vit]) == 0
    assert main([*common, "--model", "small-cnn", "--out", cnn]) == 0
    images = torch.from_numpy(arrays["t10k-images-idx3-ubyte"]).float().div(255).unsqueeze(1)
    labels = torch.from_numpy(arrays["t10k-labels-idx1-ubyte"].astype(np.int64))
    path = plot_transmix(vit, images, labels, tmp_path / "transmix.png", generator=torch.Generator().manual_seed(0))
    assert (tmp_path / "transmix.png").stat().st_size > 5000
    assert path == str(tmp_path / "transmix.png")
    with pytest.raises(ValueError, match="expected a run trained with --model small-vit, got 'small-cnn'"):
        plot_transmix(cnn, images, labels, tmp_path / "x.png", generator=torch.Generator())
    with pytest.raises(ValueError, match="expected a mixkit run directory with checkpoint.pt"):
        plot_transmix(str(tmp_path / "none"), images, labels, tmp_path / "x.png", generator=torch.Generator())
    # mixkit show refuses a wrong --transmix-from before drawing anything
    assert main(["show", "--out", str(tmp_path / "gallery"), "--transmix-from", str(tmp_path / "none")]) == 2
    assert not (tmp_path / "gallery").exists()
