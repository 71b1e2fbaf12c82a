"""TransMix: label weights from a vision transformer's class-token attention.

Chen, Sun, He, Torr, Yuille, Bai, "TransMix: Attend to Mix for Vision Transformers", CVPR 2022,
arXiv 2111.09833. Images are mixed by a mask mixer (CutMix by default), the model runs, and the
weight of each sample's own label is taken from the attention of the class token in the last
attention layer instead of from the pasted area:

```python
a      = mean over heads of softmax(q_cls k^T / sqrt(d_head))[patches]     (B, h*w)
M_down = nearest-neighbour downsampling of the pixel keep mask to the h x w patch grid
lam_attn = sum(a * M_down) / sum(a)
```

The attention is read by a forward hook on the named attention module, registered once and idle
outside a TransMix forward (``mixkit.hooks``), so compiled models keep their graphs.
The hook does not take the weights from the module (timm and torchvision use fused attention and
never materialise them); it recomputes the class token's row from the module's input and its own
projection weights, without gradient. The library imports neither timm nor torchvision: the
attention modules are recognised by their attributes.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .functional.mixing import mix_labels_pairs, no_autocast
from .hooks import Tap
from .mixers import CutMix
from .model import ModelMixer, agreed_num_classes, check_mixer, mix_soft, resolve_layer, unwrapped

__all__ = ["TransMix", "AttentionTap", "class_attention"]

_MHA_ARGS = ("query", "key", "value", "key_padding_mask", "need_weights", "attn_mask",
             "average_attn_weights", "is_causal")


# ---------------------------------------------------------------------------------------------
# the class token's attention row, recomputed from an attention module's input


def class_attention(q_cls: Tensor, k: Tensor, scale: float) -> Tensor:
    """Attention of the class token on every token, averaged over heads: ``(B, N)``.

    ``q_cls``: the class token's queries ``(B, H, 1, d)``; ``k``: the keys ``(B, H, N, d)``;
    ``softmax(scale * q_cls k^T)`` over the N keys (class and prefix tokens included, as in the
    layer), then the mean over the H heads. Computed in float32 (float64 stays float64).
    """
    work = torch.float64 if q_cls.dtype == torch.float64 else torch.float32
    with no_autocast(q_cls):
        logits = (q_cls.to(work) * scale) @ k.to(work).transpose(-2, -1)  # (B, H, 1, N)
        return logits.softmax(dim=-1).mean(dim=1)[:, 0]


def _no_masks(name: str, **given) -> None:
    for what, value in given.items():
        if value is not None and value is not False:
            raise ValueError(f"layer {name!r}: expected an attention layer called without {what} "
                             f"(TransMix reads an unmasked class-token row), got {what}={_shown(value)}")


def _shown(value) -> str:
    return f"a tensor of shape {tuple(value.shape)}" if isinstance(value, Tensor) else repr(value)


def _split_heads(t: Tensor, heads: int) -> Tensor:
    """``(B, L, H * d)`` -> ``(B, H, L, d)``."""
    b, length, width = t.shape
    return t.view(b, length, heads, width // heads).transpose(1, 2)


def _timm_row(module: nn.Module, name: str, args: tuple, kwargs: dict) -> Tensor:
    """timm ``Attention``: ``qkv`` projects x (B, N, C) to ``[3][heads][head_dim]`` channels."""
    x = args[0] if args else kwargs.get("x")
    rest = {k: v for k, v in kwargs.items() if k != "x"}
    _no_masks(name, attn_mask=rest.pop("attn_mask", None), is_causal=rest.pop("is_causal", None))
    _no_masks(name, **rest)  # rope=..., or any other extra input the recomputation would miss
    if not isinstance(x, Tensor) or x.ndim != 3:
        raise ValueError(f"layer {name!r}: expected tokens (B, N, C) as the attention's input, got "
                         f"{_shown(x) if isinstance(x, Tensor) else type(x).__name__}")
    heads = int(module.num_heads)
    proj = module.qkv
    if isinstance(proj, nn.Linear):  # only the class token's query and the keys are needed
        width = proj.out_features // 3
        bias = proj.bias
        q = F.linear(x[:, :1], proj.weight[:width], None if bias is None else bias[:width])
        k = F.linear(x, proj.weight[width:2 * width], None if bias is None else bias[width:2 * width])
    else:
        qkv = proj(x)
        width = qkv.shape[-1] // 3
        q, k = qkv[:, :1, :width], qkv[..., width:2 * width]
    q, k = _split_heads(q, heads), _split_heads(k, heads)
    q_norm, k_norm = getattr(module, "q_norm", None), getattr(module, "k_norm", None)
    if q_norm is not None:
        q = q_norm(q)
    if k_norm is not None:
        k = k_norm(k)
    return class_attention(q, k, float(module.scale))


def _mha_row(module: nn.MultiheadAttention, name: str, args: tuple, kwargs: dict) -> Tensor:
    """``torch.nn.MultiheadAttention`` (torchvision's ViT: self-attention, ``batch_first``)."""
    got = dict(zip(_MHA_ARGS, args, strict=False))
    got.update(kwargs)
    _no_masks(name, key_padding_mask=got.get("key_padding_mask"), attn_mask=got.get("attn_mask"),
              is_causal=got.get("is_causal"))
    query, key = got.get("query"), got.get("key")
    if not (isinstance(query, Tensor) and isinstance(key, Tensor) and query.ndim == 3 and key.ndim == 3):
        shapes = [_shown(t) if isinstance(t, Tensor) else type(t).__name__ for t in (query, key)]
        raise ValueError(f"layer {name!r}: expected batched query and key (3-D tensors), got "
                         f"{shapes[0]} and {shapes[1]}")
    if not module.batch_first:
        query, key = query.transpose(0, 1), key.transpose(0, 1)
    e = module.embed_dim
    if module._qkv_same_embed_dim:
        w_q, w_k = module.in_proj_weight[:e], module.in_proj_weight[e:2 * e]
    else:
        w_q, w_k = module.q_proj_weight, module.k_proj_weight
    bias = module.in_proj_bias
    q = F.linear(query[:, :1], w_q, None if bias is None else bias[:e])
    k = F.linear(key, w_k, None if bias is None else bias[e:2 * e])
    heads = module.num_heads
    return class_attention(_split_heads(q, heads), _split_heads(k, heads), (e // heads) ** -0.5)


def _attention_kind(module: nn.Module, name: str) -> str:
    """``"mha"`` or ``"timm"`` by type and attributes (timm is never imported), or a ValueError."""
    if isinstance(module, nn.MultiheadAttention):
        if module.bias_k is not None or module.add_zero_attn:
            raise ValueError(f"layer {name!r}: expected a MultiheadAttention without add_bias_kv and "
                             "add_zero_attn (their extra keys are not tokens of the image), "
                             "got one with them")
        return "mha"
    if all(hasattr(module, a) for a in ("qkv", "num_heads", "scale")) and callable(module.qkv):
        return "timm"
    raise ValueError(f"layer {name!r}: expected an attention module (timm Attention or "
                     f"torch.nn.MultiheadAttention), got {type(module).__name__}")


class AttentionTap(Tap):
    """A forward hook on one attention module that records the class token's attention row.

    Registered once and idle unless ``armed``: within ``with tap.armed(): model(x)`` the module's
    call is intercepted (its output is left as it is) and ``rows`` holds ``(B, N)``, the
    head-averaged attention of token 0 on all N tokens, computed without gradient. The hook goes
    when this object does, or at once with ``remove()`` (``mixkit.hooks.Tap``).
    """

    def __init__(self, module: nn.Module, name: str, kind: str):
        super().__init__({name: module}, "layer", owner="TransMix", with_kwargs=True,
                         once="name one attention module (e.g. the last block's)")
        self.name = name
        self._row = functools.partial(_mha_row if kind == "mha" else _timm_row, name=name)
        self.rows: Tensor | None = None

    def armed(self):
        """Record the row during the block; raises if the layer did not run exactly once."""
        self.rows = None
        return self.arm(self.name, self._record)

    def _record(self, module, args, kwargs, output):
        with torch.no_grad():
            self.rows = self._row(module, args=args, kwargs=kwargs)


# ---------------------------------------------------------------------------------------------
# which mixers carry a keep mask


def _regional() -> str:
    """The input mixers whose parameters say which pixels are whose (from the registry)."""
    from . import registry  # the registry imports this module

    return ", ".join(m.cls.__name__ for m in registry.methods("input") if m.traits.get("regional"))


def _mixer_kind(mixer, what: str = "mixer") -> str:
    """``"mask"`` (a regional mixer: a keep mask per pixel), ``"mixup"`` (pairs blended, no mask:
    passed through as the official code does), or ``"other"`` (checked when it runs); read from
    the mixer's traits, through combinations."""
    if not getattr(mixer, "mixes_labels", True):
        raise ValueError(f"{what}: expected a mixer that mixes both labels (TransMix sets both labels' "
                         f"weights), got {type(mixer).__name__} keeping the own label only "
                         "(reformulate=True)")
    parts = getattr(mixer, "mixers", None)
    if parts is not None and getattr(mixer, "sequential", False):
        raise ValueError(f"{what}: expected one mask mixer per batch ({_regional()}, or RandomChoice/"
                         f"Alternate of them and MixUp), got {type(mixer).__name__} (several in sequence)")
    if parts is not None:
        kinds = [_mixer_kind(m, f"{what}.mixers[{i}]") for i, m in enumerate(parts)]
        return "mask" if "mask" in kinds or "other" in kinds else "mixup"
    if getattr(mixer, "regional", False):
        return "mask"
    if getattr(mixer, "pairwise", False):
        return "mixup"
    if hasattr(mixer, "pairwise"):  # a mixkit mixer that blends several samples into each
        raise ValueError(f"{what}: expected a mask mixer ({_regional()}), got {type(mixer).__name__} "
                         "(each sample blends the whole batch; no pixel belongs to one image)")
    return "other"


def _leaf_params(mixer, params):
    """The parameters of the mixer that ran (through RandomChoice/Alternate choices)."""
    while hasattr(params, "parts") and hasattr(params, "choice") and params.choice is not None:
        mixer, params = mixer.mixers[params.choice], params.parts[0]
    return mixer, params


# ---------------------------------------------------------------------------------------------


class TransMix(ModelMixer):
    """TransMix (Chen et al., CVPR 2022, arXiv 2111.09833) for timm and torchvision ViTs.

    Per training forward: ``mixer`` (CutMix by default) mixes the images, keeping each sample's
    own pixels where its keep mask M is 1 and the partner's (``index``) elsewhere; the model runs;
    the class token's attention in ``layer`` (the last block's attention: ``"blocks.11.attn"``
    in timm's ViT-B, ``"encoder.layers.encoder_layer_11.self_attention"`` in torchvision's
    ``vit_b_16``) gives the weight of the sample's own label:

    ```python
    A        = softmax(q_cls K^T / sqrt(d)) averaged over heads, patch columns only  (B, h*w)
    lam_attn = sum(A * down(M)) / sum(A)           down = nearest-neighbour to the h x w grid
    lam      = area_weight * lam_area + (1 - area_weight) * lam_attn
    target   = lam * y + (1 - lam) * y[index]
    ```

    ``lam_area`` is the mixer's realised ``params.lam`` (the kept pixel share). The attention is
    the layer's softmax before attention dropout and carries no gradient.

    Facts from the official code (github.com/Beckschen/TransMix, ``transmix.py`` and its patched
    timm ``vision_transformer.py``, ``train.py``), followed here:

    - the attention of the last block only, ``attn.detach()`` before dropout,
      ``mean(attn[:, :, 0, 1:], dim=1)`` (class token's row, mean over heads);
    - the mask goes down to the grid by ``nn.Upsample(size=...)``, i.e. nearest neighbour
      (``F.interpolate(mode="nearest")`` here);
    - the final weight averages area and attention, ``lam = (lam0 + lam1) / 2``; the paper states
      the attention weight alone. ``area_weight=0.5`` (default) is the official code,
      ``area_weight=0.0`` the paper's formula;
    - when the batch is mixed by MixUp (timm's Mixup switching between MixUp and CutMix) the
      targets stay the area (blend) targets: here, a ``RandomChoice`` or ``Alternate`` holding
      ``MixUp`` passes MixUp batches through unchanged and re-weights the mask batches. The
      official setting is ``RandomChoice([MixUp(alpha=0.8, pairing="flip"), CutMix(alpha=1.0,
      pairing="flip")], label_smoothing=0.1)``.

    Deliberate differences: any number of prefix tokens (timm's ``num_prefix_tokens``: class and
    register tokens; the official ``1:`` would count a distillation token as a patch) with the
    class token first; rectangular patch grids (the official code assumes a square one); soft
    (FMix ``max_soft``) masks are used as fractional weights, binary ones exactly; ``mode="elem"``
    (one mask per sample) is supported (the official code is per batch); the partner is the
    mixer's ``index`` (timm pairs i with B - 1 - i, ``pairing="flip"``); the attention row is
    computed in float32.

    The model is not changed. One forward hook is registered on ``layer`` at construction (kept
    registered, idle outside a TransMix forward, so a ``torch.compile``d model compiles once;
    create TransMix before its first forward) and removed by ``tm.taps.remove()`` or when TransMix
    is garbage-collected. It recomputes the class token's row from the module's input: timm's
    ``Attention`` (``qkv``, ``num_heads``, ``q_norm``/``k_norm``, ``scale``) or
    ``torch.nn.MultiheadAttention`` (``in_proj_weight``/``in_proj_bias``, ``batch_first`` or not),
    so fused attention (which never materialises the weights) still works, at the cost of one
    key projection without gradient. Layers called with attention masks, key padding or rotary
    embeddings are refused. Names resolve through ``torch.compile`` / DDP wrappers as in
    ``ManifoldMixup``.

    ``prefix_tokens``: tokens before the patches (class token first); by default the model's
    ``num_prefix_tokens`` (timm) or 1 for a model with ``class_token`` (torchvision). The patch
    grid is ``(H // p, W // p)`` for the model's patch size (``patch_embed.patch_size`` or
    ``patch_size``), else the grid of the input's aspect ratio with as many cells as patch tokens.

    When ``model.training`` is False nothing is mixed: ``(model(inputs), one-hot targets)``.
    ``last_lam_attn`` / ``last_lam`` hold the (B,) attention and final weights of the last mixed
    forward (None for a MixUp batch or in eval), on the device, not synchronised.

    Example:

    ```python
    >>> import torch, mixkit
    >>> from mixkit.transmix import TransMix
    >>> from torchvision.models import VisionTransformer
    >>> vit = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
    ...                         hidden_dim=32, mlp_dim=64, num_classes=10)
    >>> tm = TransMix(vit, "encoder.layers.encoder_layer_1.self_attention", num_classes=10)
    >>> x, y = torch.rand(4, 3, 32, 32), torch.randint(0, 10, (4,))
    >>> logits, soft = tm(x, y, generator=torch.Generator().manual_seed(0))
    >>> logits.shape, bool(torch.allclose(soft.sum(1), torch.ones(4)))
    (torch.Size([4, 10]), True)
    >>> tm.loss(x, y).backward()

    ```
    """

    def __init__(self, model: nn.Module, layer: str, *, mixer=None, num_classes: int | None = None,
                 area_weight: float = 0.5, prefix_tokens: int | None = None):
        super().__init__(model)
        _attention_kind(resolve_layer(model, layer, "layer", allow_input=False), layer)
        self.layer = layer
        if mixer is None:
            mixer = CutMix(alpha=1.0, num_classes=num_classes)
        else:
            check_mixer(mixer)
        self._mixer_kind = _mixer_kind(mixer)
        if self._mixer_kind == "mixup":
            raise ValueError(f"mixer: expected a mask mixer ({_regional()}, or a RandomChoice/"
                             f"Alternate holding one), got {type(mixer).__name__} with no mask (TransMix "
                             "weighs each image's pixels by attention; a blend has no such pixels)")
        self.num_classes = agreed_num_classes(mixer, num_classes)
        self.mixer = mixer
        if isinstance(area_weight, bool) or not isinstance(area_weight, (int, float)) \
                or not 0.0 <= area_weight <= 1.0:
            raise ValueError(f"area_weight: expected a number in [0, 1], got {area_weight!r}")
        self.area_weight = float(area_weight)
        self.prefix_tokens = prefix_tokens
        self._prefix = self._count_prefix(prefix_tokens)
        self._patch = self._patch_size()
        self.last_lam_attn: Tensor | None = None
        self.last_lam: Tensor | None = None
        self._make_taps()

    def _make_taps(self) -> None:
        module = resolve_layer(self.model, self.layer, "layer", allow_input=False)
        self.taps = AttentionTap(module, self.layer, _attention_kind(module, self.layer))

    # -- model facts ---------------------------------------------------------------------------
    def _count_prefix(self, given) -> int:
        if given is not None:
            if isinstance(given, bool) or not isinstance(given, int) or given < 1:
                raise ValueError(f"prefix_tokens: expected an integer >= 1 (the class token and any "
                                 f"register tokens before the patches), got {given!r}")
            return given
        inner = unwrapped(self.model)
        if hasattr(inner, "num_prefix_tokens"):  # timm
            if getattr(inner, "cls_token", True) is None:
                raise ValueError("model: expected a ViT with a class token (timm class_token=True), "
                                 "got cls_token=None")
            count = inner.num_prefix_tokens
            if not isinstance(count, int) or count < 1:
                raise ValueError(f"model: expected num_prefix_tokens >= 1 (a class token), got {count!r}")
            return count
        if isinstance(getattr(inner, "class_token", None), Tensor):  # torchvision
            return 1
        raise ValueError(f"prefix_tokens: expected an int for a {type(inner).__name__} (the model has "
                         "neither num_prefix_tokens nor class_token), got None")

    def _patch_size(self) -> tuple[int, int] | None:
        inner = unwrapped(self.model)
        size = getattr(getattr(inner, "patch_embed", None), "patch_size", None)
        if size is None:
            size = getattr(inner, "patch_size", None)
        if isinstance(size, int) and not isinstance(size, bool):
            size = (size, size)
        if isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(s, int) for s in size):
            return (int(size[0]), int(size[1]))
        return None

    def _grid(self, tokens: int, height: int, width: int) -> tuple[int, int]:
        patches = tokens - self._prefix
        if self._patch is not None:
            gh, gw = height // self._patch[0], width // self._patch[1]
            if gh * gw != patches:  # padded patch embedding (timm dynamic_img_pad)
                gh, gw = -(-height // self._patch[0]), -(-width // self._patch[1])
        else:
            gh = max(1, round(math.sqrt(patches * height / width))) if patches > 0 else 0
            gw = patches // gh if gh else 0
        if patches < 1 or gh * gw != patches:
            raise ValueError(
                f"layer {self.layer!r}: expected {self._prefix} prefix token(s) then a grid of patches "
                f"for {height}x{width} inputs, got {tokens} tokens ({patches} after the prefix, "
                f"not a {gh}x{gw} grid); pass prefix_tokens=... if the count is wrong")
        return gh, gw

    # -- the objective ---------------------------------------------------------------------------
    def __call__(self, inputs: Tensor, labels: Tensor, generator: torch.Generator | None = None):
        """One training forward: ``(logits, soft)`` with ``soft`` re-weighted by attention."""
        if not isinstance(inputs, Tensor):
            raise TypeError(f"inputs: expected a torch.Tensor, got {type(inputs).__name__}")
        if inputs.ndim != 4:
            raise ValueError(f"inputs: expected images (B, C, H, W), got shape {tuple(inputs.shape)}")
        soft = self.targets(inputs, labels)
        self.last_lam_attn = self.last_lam = None
        if not self.model.training:
            return self.model(inputs), soft
        params = self.mixer.sample(inputs, generator=generator)
        mixed, soft_area = mix_soft(self.mixer, inputs, soft, params)
        keep, lam_area, index = self._keep_mask(params, tuple(inputs.shape[-2:]))
        if keep is None:  # a MixUp batch: area targets, as the official code
            return self.model(mixed), soft_area
        with self.taps.armed():
            logits = self.model(mixed)
        lam_attn = self._attention_lam(self.taps.rows, keep, inputs.shape)
        lam = self.area_weight * lam_area.to(lam_attn.dtype) + (1.0 - self.area_weight) * lam_attn
        self.last_lam_attn, self.last_lam = lam_attn, lam
        return logits, mix_labels_pairs(soft, index, lam)

    def _keep_mask(self, params, spatial: tuple[int, int]):
        """``(keep (B|1, H, W) float, lam_area (B,), index (B,))``; keep None for a MixUp batch."""
        mixer, leaf = _leaf_params(self.mixer, params)
        index, lam = getattr(leaf, "index", None), getattr(leaf, "lam", None)
        if index is not None and getattr(mixer, "regional", False):
            keep = mixer.keep_mask(leaf, spatial)
            if tuple(keep.shape[1:]) != spatial:
                raise ValueError(f"mixer: expected a keep mask (B or 1, {spatial[0]}, {spatial[1]}) for "
                                 f"images, got {tuple(keep.shape)}")
            return keep, lam, index
        if index is not None and getattr(mixer, "pairwise", False):
            return None, lam, index
        raise ValueError(f"mixer: expected parameters with index and boxes or mask (a mask mixer), got "
                         f"{type(mixer).__name__} parameters without them")

    def _attention_lam(self, rows: Tensor | None, keep: Tensor, shape) -> Tensor:
        b, height, width = shape[0], shape[-2], shape[-1]
        if rows is None or rows.ndim != 2 or rows.shape[0] != b:
            got = "nothing" if rows is None else f"shape {tuple(rows.shape)}"
            raise ValueError(f"layer {self.layer!r}: expected attention rows ({b}, tokens), got {got}")
        gh, gw = self._grid(rows.shape[1], height, width)
        patches = rows[:, self._prefix:]
        down = F.interpolate(keep.to(rows.device)[:, None], size=(gh, gw), mode="nearest")
        down = down.reshape(down.shape[0], gh * gw).to(patches.dtype)
        return (patches * down).sum(dim=1) / patches.sum(dim=1)
