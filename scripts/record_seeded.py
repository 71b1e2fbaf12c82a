"""Record (or check) mixkit's seeded outputs: the promise that the same arguments, inputs and
generator seed give the same result from one version to the next.

    python scripts/record_seeded.py --out tests/data/seeded_outputs.pt   # record on this code
    python scripts/record_seeded.py --check tests/data/seeded_outputs.pt # compare this code with it

Every case is a constructor spec (class name and keyword arguments, nested for combinations and
model-aware methods), an input shape and a seed. What is kept: the mixed batch, the soft labels,
every tensor of the parameters, mixed dense targets, and for model-aware methods the logits,
soft labels and losses of three steps. The cases live here, the outputs in the data file, and
``tests/test_seeded.py`` replays the file against the installed code. Re-record only for a
deliberate change, written in the CHANGELOG.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import torch
from torch import nn

import mixkit

C = 7
SHAPES = {"1d": (4, 2, 12), "2d": (4, 3, 8, 6), "3d": (2, 1, 4, 5, 6)}


def _m(cls, **kw):
    return {"cls": cls, "kw": kw}


def _combo(cls, parts, **kw):
    return {"cls": cls, "parts": parts, "kw": kw}


# input-space mixers: (id, spec, shapes it takes)
ANY = ("1d", "2d", "3d")
INPUT = [
    ("mixup-batch", _m("MixUp", alpha=1.0, num_classes=C), ANY),
    ("mixup-elem", _m("MixUp", alpha=0.4, num_classes=C, mode="elem"), ANY),
    ("mixup-elem-inplace", _m("MixUp", num_classes=C, mode="elem", inplace=True), ANY),
    ("mixup-p0.5", _m("MixUp", num_classes=C, mode="elem", p=0.5), ANY),
    ("mixup-roll", _m("MixUp", num_classes=C, pairing="roll", label_smoothing=0.1), ANY),
    ("mixup-flip-p0.3", _m("MixUp", num_classes=C, pairing="flip", p=0.3), ANY),
    ("zeta", _m("ZetaMixup", gamma=2.8, num_classes=C), ANY),
    ("zeta-n3", _m("ZetaMixup", gamma=1.5, num_classes=C, n_mix=3), ANY),
    ("zeta-p0.5", _m("ZetaMixup", num_classes=C, p=0.5), ANY),
    ("cutmix-batch", _m("CutMix", num_classes=C), ANY),
    ("cutmix-elem", _m("CutMix", num_classes=C, mode="elem"), ANY),
    ("cutmix-elem-inplace", _m("CutMix", num_classes=C, mode="elem", inplace=True), ANY),
    ("cutmix-nocorrect", _m("CutMix", num_classes=C, correct_lam=False, p=0.7), ANY),
    ("cutmix-elem-p0.5", _m("CutMix", num_classes=C, mode="elem", p=0.5, alpha=0.5), ANY),
    ("fmix-batch", _m("FMix", num_classes=C), ANY),
    ("fmix-elem", _m("FMix", num_classes=C, mode="elem"), ANY),
    ("fmix-elem-inplace", _m("FMix", num_classes=C, mode="elem", inplace=True), ANY),
    ("fmix-soft", _m("FMix", num_classes=C, mode="elem", max_soft=0.2), ANY),
    ("fmix-reformulate", _m("FMix", num_classes=C, reformulate=True), ANY),
    ("fmix-official", _m("FMix", num_classes=C, mode="elem", spectrum="official"), ANY),
    ("fmix-elem-p0.5", _m("FMix", num_classes=C, mode="elem", p=0.5, decay_power=2.0), ANY),
    ("resizemix-batch", _m("ResizeMix", num_classes=C), ANY),
    ("resizemix-elem", _m("ResizeMix", num_classes=C, mode="elem"), ANY),
    ("resizemix-nearest-p0.5", _m("ResizeMix", num_classes=C, mode="elem", resample="nearest", p=0.5), ANY),
    ("saliencymix-batch", _m("SaliencyMix", num_classes=C), ANY),
    ("saliencymix-elem-p0.5", _m("SaliencyMix", num_classes=C, mode="elem", p=0.5), ANY),
    ("gridmix-batch", _m("GridMix", num_classes=C), ANY),
    ("gridmix-elem", _m("GridMix", num_classes=C, mode="elem", holes=(1, 3)), ANY),
    ("gridmix-elem-p0.5", _m("GridMix", num_classes=C, mode="elem", p=0.5, area=0.8), ANY),
    ("smoothmix-batch", _m("SmoothMix", num_classes=C), ANY),
    ("smoothmix-elem-p0.5", _m("SmoothMix", num_classes=C, mode="elem", p=0.5), ANY),
    ("mixup+fmix", _combo("Alternate", [_m("MixUp"), _m("FMix")], num_classes=C), ANY),
    ("cutmix+zeta", _combo("Compose", [_m("CutMix"), _m("ZetaMixup")], num_classes=C), ANY),
    ("choice", _combo("RandomChoice", [_m("MixUp"), _m("CutMix", mode="elem")], num_classes=C), ANY),
    ("choice-p", _combo("RandomChoice", [_m("FMix"), _m("CutMix")], p=[0.3, 0.7], num_classes=C,
                        label_smoothing=0.1), ANY),
    ("multilabel-cutmix", _m("CutMix", num_classes=C, multilabel=True, mode="elem"), ("2d",)),
]
# dense targets: class maps mixed with the images (2-D, plus ClassMix which needs them)
DENSE = ["mixup-elem", "zeta", "cutmix-elem", "fmix-elem", "fmix-soft", "resizemix-elem",
         "saliencymix-elem-p0.5", "gridmix-elem", "smoothmix-elem-p0.5", "cutmix+zeta", "choice"]
CLASSMIX = [("classmix", _m("ClassMix", num_classes=C)),
            ("classmix-ignore-p0.5", _m("ClassMix", num_classes=C, ignore_index=0, p=0.5))]


def build(spec):
    cls = getattr(mixkit, spec["cls"])
    if "parts" in spec:
        return cls([build(p) for p in spec["parts"]], **spec["kw"])
    return cls(**spec["kw"])


def params_dict(params) -> dict:
    """Every tensor (and choice) of a parameter record, by field name; nested for combinations."""
    out = {}
    if hasattr(params, "parts"):
        out["choice"] = torch.tensor(-1 if params.choice is None else int(params.choice))
        for i, part in enumerate(params.parts):
            for k, v in params_dict(part).items():
                out[f"parts.{i}.{k}"] = v
        return out
    items = params.items() if hasattr(params, "items") else (
        (f.name, getattr(params, f.name)) for f in dataclasses.fields(params))
    for name, v in items:
        if isinstance(v, torch.Tensor):  # tensors only (not the drawn shape)
            out[name] = v.clone()
    return out


def _data(shape, seed, integer=False):
    g = torch.Generator().manual_seed(1000 + seed)
    x = torch.rand(shape, generator=g)
    if integer:
        x = (x * 255).round().to(torch.uint8)
    y = torch.randint(0, C, (shape[0],), generator=g)
    if shape[0] > 1:
        y[1] = y[0]
    return x, y


def input_cases():
    for cid, spec, shapes in INPUT:
        for sname in shapes:
            yield f"{cid}/{sname}", spec, SHAPES[sname], False, None
        if spec["cls"] != "ZetaMixup" and "inplace" not in cid:
            yield f"{cid}/2d-uint8", spec, SHAPES["2d"], True, None
    for cid, spec, _ in INPUT:
        if cid in DENSE:
            yield f"{cid}/2d-dense", spec, SHAPES["2d"], False, "maps"
    for cid, spec in CLASSMIX:
        for sname in ANY:
            yield f"{cid}/{sname}", spec, SHAPES[sname], False, "maps"


def run_input(spec, shape, integer, dense, seed):
    x, y = _data(shape, seed, integer)
    labels = y
    if spec["kw"].get("multilabel"):
        labels = (torch.rand(shape[0], C, generator=torch.Generator().manual_seed(seed)) > 0.6).float()
    mixer = build(spec)
    g = torch.Generator().manual_seed(seed)
    out = {}
    for step in range(2):  # two calls: Alternate's turn, the generator moving on
        kwargs = {}
        if dense:
            maps = torch.randint(0, C, (shape[0], *shape[2:]),
                                 generator=torch.Generator().manual_seed(seed + 7))
            kwargs["masks"] = maps
        params = mixer.sample(x, generator=g, **kwargs)
        res = mixer.apply(x.clone(), labels, params, **kwargs)
        out[f"{step}.mixed"] = res[0]
        out[f"{step}.soft"] = res[1]
        if dense:
            out[f"{step}.masks"] = res[2]
        for k, v in params_dict(params).items():
            out[f"{step}.params.{k}"] = v
    return out


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(8, C)

    def forward(self, x):
        return self.fc(self.flat(self.pool(self.block(self.stem(x)))))


class _ViT(nn.Module):
    """Two attention blocks over 4x4 patches of 16x16 images, a class token first."""

    def __init__(self):
        super().__init__()
        self.patch = nn.Conv2d(3, 16, 4, stride=4)
        self.cls = nn.Parameter(torch.randn(1, 1, 16) * 0.02)
        self.attn = nn.MultiheadAttention(16, 2, batch_first=True)
        self.head = nn.Linear(16, C)

    def forward(self, x):
        t = self.patch(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls.expand(t.shape[0], -1, -1), t], dim=1)
        t = t + self.attn(t, t, t, need_weights=False)[0]
        return self.head(t[:, 0])


def model_cases():
    yield "manifold", "manifold", {}
    yield "manifold-zeta", "manifold", {"mixer": _m("ZetaMixup", gamma=2.0, num_classes=C)}
    yield "synermix-intra", "synermix", {"beta": 0.5, "inter": None}
    yield "synermix-mixup", "synermix", {"beta": 0.1, "inter": _m("MixUp", alpha=1.0, num_classes=C)}
    yield "synermix-manifold", "synermix", {"beta": 0.1, "inter": "manifold"}
    yield "transmix-cutmix", "transmix", {"mixer": _m("CutMix", num_classes=C, mode="elem")}
    yield "transmix-fmix", "transmix", {"mixer": _m("FMix", num_classes=C), "area_weight": 0.0}
    yield "transmix-choice", "transmix", {"mixer": _combo("RandomChoice", [_m("MixUp"), _m("CutMix")],
                                                          num_classes=C)}


def run_model(kind, options, seed):
    torch.manual_seed(seed)
    model = _ViT() if kind == "transmix" else _Net()
    g = torch.Generator().manual_seed(seed)
    x, y = _data((6, 3, 16, 16), seed)
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    if kind == "manifold":
        extra = {"mixer": build(options["mixer"])} if "mixer" in options else {}
        method = mixkit.ManifoldMixup(model, ["", "stem", "block"], alpha=2.0, num_classes=C, **extra)
    elif kind == "synermix":
        inter = options["inter"]
        if inter == "manifold":
            inter = mixkit.ManifoldMixup(model, ["", "stem"], alpha=1.0, num_classes=C)
        elif inter is not None:
            inter = build(inter)
        method = mixkit.SynerMix(model, feature_layer="flat", head="fc", beta=options["beta"], inter=inter,
                                 num_classes=C)
    else:
        method = mixkit.TransMix(model, "attn", mixer=build(options["mixer"]), num_classes=C, prefix_tokens=1,
                                 **{k: v for k, v in options.items() if k != "mixer"})
    out = {}
    for step in range(3):
        aug = x.flip(-1) if kind == "synermix" else x
        if kind == "synermix":
            loss = method.loss(x, aug, y, generator=g)
        else:
            logits, soft = method(x, y, generator=g)
            out[f"{step}.logits"], out[f"{step}.soft"] = logits.detach(), soft.detach()
            loss = method.loss(x, y, generator=g)
        out[f"{step}.loss"] = loss.detach()
        loss.backward()
        out[f"{step}.grad"] = next(model.parameters()).grad.clone()
        model.zero_grad()
    return out


def record() -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # CPU kernels can split reductions differently with more threads
    try:
        return _record()
    finally:
        torch.set_num_threads(threads)


def _record() -> dict:
    cases = {}
    for i, (cid, spec, shape, integer, dense) in enumerate(input_cases()):
        cases[cid] = {"spec": repr(spec), "outputs": run_input(spec, shape, integer, dense, seed=i)}
    for i, (cid, kind, options) in enumerate(model_cases()):
        cases[cid] = {"spec": repr((kind, options)), "outputs": run_model(kind, options, seed=100 + i)}
    return {"torch": str(torch.__version__), "cases": cases}


def _close(a, b) -> bool:
    """For what passes through a model (logits, losses, gradients, TransMix's attention labels):
    equal to float32 rounding. The model's own matrix products take different CPU kernels on
    different processors (seen: 1e-8 apart in logits between two x86 machines), so these cases
    cannot be bit for bit across machines; the mixing they hold is, and is checked bit for bit
    in the input cases."""
    return _equal(a, b) or (a.is_floating_point()
                            and torch.allclose(a, b, rtol=1e-5, atol=1e-6, equal_nan=True))


PRODUCT_KEYS = ("mixed", "soft", "masks")
EPS32 = torch.finfo(torch.float32).eps


def _through_a_product(spec: str, key: str) -> bool:
    """ζ-mixup's mixed batch, soft labels and dense targets: ``W @ x`` over the flattened batch,
    a BLAS matrix product (``functional.mixing.blend_matrix``, ``labels.mix_labels_matrix``)."""
    return "'ZetaMixup'" in spec and key.rsplit(".", 1)[-1] in PRODUCT_KEYS


def _close_product(a, b) -> bool:
    """For a float ``W @ x`` with convex rows of ``W``: equal to float32 rounding of the product,
    ``|a - b| <= 8 eps max(1, max |b|)`` element by element (NaNs in the same places). BLAS picks
    its kernel, and with it the order of each row's sums, by processor: on a Xeon with AVX-512 FP16
    (2026-12-02) ten of these outputs came 1 ulp (<= 5.96e-08) from the recording. Integer outputs
    (a uint8 batch rounded after the product) and everything else stay bit for bit."""
    if _equal(a, b) or not a.is_floating_point():
        return _equal(a, b)
    fa, fb = a.isfinite(), b.isfinite()
    if not (torch.equal(fa, fb) and _equal(a[~fa], b[~fb])):     # NaN and inf in the same places
        return False
    bound = 8 * EPS32 * max(1.0, b[fb].abs().max().item() if fb.any() else 0.0)
    return bool(((a[fa].double() - b[fb].double()).abs() <= bound).all())


def _equal(a, b) -> bool:
    """Bit for bit, NaNs in the same places counting as equal."""
    if torch.equal(a, b):
        return True
    return a.is_floating_point() and torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(),
                                                                                     b.nan_to_num())


def compare(stored: dict, fresh: dict) -> list[str]:
    """Human-readable differences (empty when identical)."""
    problems = []
    through_a_model = {cid for cid, _, _ in model_cases()}
    for cid, case in stored["cases"].items():
        if cid not in fresh["cases"]:
            problems.append(f"{cid}: no longer recorded")
            continue
        new = fresh["cases"][cid]["outputs"]
        for key, old in case["outputs"].items():
            got = new.get(key)
            if got is None:
                problems.append(f"{cid}: {key} missing")
            elif got.shape != old.shape or got.dtype != old.dtype:
                problems.append(f"{cid}: {key} is {got.dtype} {tuple(got.shape)}, "
                                f"was {old.dtype} {tuple(old.shape)}")
            elif not (_close(got, old) if cid in through_a_model
                      else _close_product(got, old) if _through_a_product(case["spec"], key)
                      else _equal(got, old)):
                diff = (got.double() - old.double()).abs().max().item()
                problems.append(f"{cid}: {key} differs (max abs difference {diff:.3g})")
        extra = set(new) - set(case["outputs"])
        if extra:
            problems.append(f"{cid}: new outputs {sorted(extra)}")
    return problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--out", help="write the recording here")
    group.add_argument("--check", help="compare this code with the recording here")
    args = ap.parse_args(argv)
    fresh = record()
    if args.out:
        torch.save(fresh, args.out)
        print(f"recorded {len(fresh['cases'])} cases to {args.out}")
        return 0
    problems = compare(torch.load(args.check, weights_only=True), fresh)
    for line in problems:
        print(line)
    print(f"{len(fresh['cases'])} cases, {len(problems)} differences")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
